"""Downloads MovieLens 100K into a folder and checks what it got.

Usage::

  python -m bcjax.data.fetch ml-100k --dest=DIR [--url=URL] [--nofallback]

The GroupLens archive is the source. Where its host cannot be reached, the
atomic copy inside the ``recbole==1.2.1`` wheel on PyPI stands in (fetched
with ``pip download``, never installed). Files are checked before they land
in DIR (GroupLens: the md5 GroupLens publishes beside the archive, in
``ml-100k.zip.md5``, where that can be fetched, and 100,000 ratings by 943
users of 1,682 movies; atomic: the sha256 of each file), and land by rename,
so DIR never holds a half-written file; a second call finds them and does
nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from absl import app, flags
from absl import logging as absl_logging

from bcjax.data.movielens import ATOMIC_FILES, GROUPLENS_FILES, load_ml100k
from bcjax.errors import InputError

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# GroupLens publishes each archive's md5 at the archive's URL plus this.
MD5_SUFFIX = ".md5"
_MD5 = re.compile(r"\b[0-9a-fA-F]{32}\b")
RECBOLE_WHEEL = "recbole==1.2.1"
# Where the wheel keeps the atomic files.
WHEEL_FOLDER = "recbole/dataset_example/ml-100k"
# As listed in ../shared/data/ml-100k/README.md.
ATOMIC_SHA256 = {
  "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
  "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
  "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
# (ratings, users, movies) of MovieLens 100K.
EXPECTED_COUNTS = (100_000, 943, 1_682)
OPTIONAL_GROUPLENS_FILES = ("u.genre",)
DOWNLOAD_TIMEOUT_S = 60
PIP_TIMEOUT_S = 600

log = logging.getLogger(__name__)
FLAGS = flags.FLAGS


def fetch_ml100k(
  dest: str, url: str = GROUPLENS_URL, allow_fallback: bool = True
) -> str:
  """Puts MovieLens 100K into ``dest``, unless a checked copy is there.

  Args:
    dest: the folder to fill (created if needed).
    url: where the GroupLens ``ml-100k.zip`` lies (``file://`` works too).
    allow_fallback: whether the RecBole wheel on PyPI may stand in when
      ``url`` cannot be downloaded.

  Returns:
    ``dest``, ready for :func:`bcjax.data.movielens.load_ml100k`.

  Raises:
    InputError: nothing usable could be fetched, or what came fails its
      checks; ``dest`` then holds no new file.
  """
  folder = Path(dest)
  if folder.exists() and not folder.is_dir():
    raise InputError(f"{dest}: not a folder; expected a folder for MovieLens 100K")
  folder.mkdir(parents=True, exist_ok=True)
  present = _checked_copy(folder)
  if present:
    log.info("%s already holds MovieLens 100K (%s); nothing to do", dest, present)
    return dest

  # Staging inside dest keeps the final renames on one file system, so each
  # file appears whole or not at all.
  with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
    staging = Path(tmp) / "files"
    staging.mkdir()
    try:
      archive = _download(url, Path(tmp) / "ml-100k.zip")
    except InputError as e:
      if not allow_fallback:
        raise
      log.info("%s; trying the copy in the %s wheel from PyPI", e, RECBOLE_WHEEL)
      names = _fetch_from_wheel(Path(tmp), staging, reason=str(e))
    else:
      _check_md5(archive, url, Path(tmp))
      names = _extract_grouplens(archive, staging, source=url)
    for name in names:
      (staging / name).replace(folder / name)
  log.info("wrote %s to %s", ", ".join(names), dest)
  return dest


def _checked_copy(folder: Path) -> str | None:
  """Which checked layout ``folder`` already holds, or None."""
  if all((folder / name).is_file() for name in ATOMIC_FILES):
    if not _sha256_mismatch(folder):
      return "RecBole atomic layout, sha256 checked"
  elif all((folder / name).is_file() for name in GROUPLENS_FILES):
    try:
      _check_counts(folder, source=str(folder))
    except InputError:
      return None
    return "GroupLens layout, counts checked"
  return None


def _download(url: str, path: Path) -> Path:
  """Saves ``url`` to ``path``; InputError when it cannot be had."""
  try:
    with (
      urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
      open(path, "wb") as f,
    ):
      shutil.copyfileobj(response, f)
  except (OSError, ValueError, http.client.HTTPException) as e:
    raise InputError(f"cannot download {url} ({e})") from None
  return path


def _check_md5(archive: Path, url: str, tmp: Path) -> None:
  """Checks ``archive`` by the md5 published beside ``url``, if there is one.

  Where the checksum file cannot be fetched or holds no md5, the archive is
  checked by its counts alone (:func:`_check_counts`, which runs anyway).

  Raises:
    InputError: the archive's md5 is not the published one.
  """
  md5_url = url + MD5_SUFFIX
  try:
    text = _download(md5_url, tmp / "ml-100k.zip.md5").read_text(errors="replace")
  except InputError as e:
    log.info("%s; checking the archive by its counts alone", e)
    return
  # GNU ("<md5>  ml-100k.zip") and BSD ("MD5 (ml-100k.zip) = <md5>") styles.
  match = _MD5.search(text)
  if match is None:
    log.info("%s holds no md5; checking the archive by its counts alone", md5_url)
    return
  expected = match.group(0).lower()
  got = hashlib.md5(archive.read_bytes()).hexdigest()
  if got != expected:
    raise InputError(
      f"{url}: the download has md5 {got}; expected {expected}, as {md5_url} "
      "publishes (a damaged or altered archive)"
    )
  log.info("%s: md5 %s matches %s", url, got, md5_url)


def _extract_grouplens(archive: Path, staging: Path, source: str) -> list[str]:
  """Extracts and checks the GroupLens files of ``ml-100k.zip``."""
  wanted = GROUPLENS_FILES + OPTIONAL_GROUPLENS_FILES
  members = {}
  for member in _member_names(archive, source):
    name = PurePosixPath(member).name
    if name in wanted:
      members.setdefault(name, member)
  missing = [name for name in GROUPLENS_FILES if name not in members]
  if missing:
    raise InputError(
      f"{source}: the archive lacks {', '.join(missing)}; expected the GroupLens "
      f"ml-100k.zip with {', '.join(GROUPLENS_FILES)}"
    )
  _extract(archive, {member: name for name, member in members.items()}, staging, source)
  _check_counts(staging, source)
  return list(members)


def _fetch_from_wheel(tmp: Path, staging: Path, reason: str) -> list[str]:
  """Extracts and checks the atomic files of the RecBole wheel."""
  try:
    wheel = _download_wheel(tmp)
  except InputError as e:
    raise InputError(f"{reason}; and the fallback failed too: {e}") from None
  members = {f"{WHEEL_FOLDER}/{name}": name for name in ATOMIC_FILES}
  _extract(wheel, members, staging, source=wheel.name)
  bad = _sha256_mismatch(staging)
  if bad:
    name, got = bad
    raise InputError(
      f"{wheel.name}: {WHEEL_FOLDER}/{name} has sha256 {got}; expected "
      f"{ATOMIC_SHA256[name]}"
    )
  return list(ATOMIC_FILES)


def _download_wheel(tmp: Path) -> Path:
  """Downloads the RecBole wheel into ``tmp`` with pip (no install)."""
  command = [
    sys.executable,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--disable-pip-version-check",
    "--quiet",
    "--dest",
    str(tmp),
    RECBOLE_WHEEL,
  ]
  try:
    done = subprocess.run(
      command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
    )
  except (OSError, subprocess.TimeoutExpired) as e:
    raise InputError(f"pip download {RECBOLE_WHEEL} failed ({e})") from None
  if done.returncode != 0:
    detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
    raise InputError(
      f"pip download {RECBOLE_WHEEL} failed (exit {done.returncode}: {detail})"
    )
  wheels = sorted(tmp.glob("recbole-*.whl"))
  if not wheels:
    raise InputError(f"pip download {RECBOLE_WHEEL} left no wheel in {tmp}")
  return wheels[0]


def _member_names(archive: Path, source: str) -> list[str]:
  try:
    with zipfile.ZipFile(archive) as z:
      return z.namelist()
  except (zipfile.BadZipFile, OSError) as e:
    raise InputError(f"{source}: not a readable zip archive ({e})") from None


def _extract(
  archive: Path, members: Mapping[str, str], staging: Path, source: str
) -> None:
  """Copies each archive member to ``staging / members[member]``."""
  try:
    with zipfile.ZipFile(archive) as z:
      missing = sorted(set(members) - set(z.namelist()))
      if missing:
        raise InputError(f"{source}: the archive lacks {', '.join(missing)}")
      for member, name in members.items():
        with z.open(member) as src, open(staging / name, "wb") as dst:
          shutil.copyfileobj(src, dst)
  except (zipfile.BadZipFile, zlib.error, EOFError) as e:
    raise InputError(f"{source}: a damaged zip archive ({e})") from None


def _check_counts(folder: Path, source: str) -> None:
  try:
    graph = load_ml100k(str(folder))
  except InputError as e:
    raise InputError(f"{source}: unusable MovieLens files: {e}") from None
  got = (graph.num_edges, graph.num_users, graph.num_items)
  if got != EXPECTED_COUNTS:
    raise InputError(
      f"{source}: expected MovieLens 100K with {_counts(EXPECTED_COUNTS)}, "
      f"got {_counts(got)}"
    )


def _counts(counts: tuple[int, int, int]) -> str:
  ratings, users, movies = counts
  return f"{ratings:,} ratings, {users:,} users, {movies:,} movies"


def _sha256_mismatch(folder: Path) -> tuple[str, str] | None:
  """The first atomic file whose sha256 is not the expected one, and its sha256."""
  for name, expected in ATOMIC_SHA256.items():
    got = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    if got != expected:
      return name, got
  return None


def _define_flags() -> None:
  # Defined only when run as a binary, so that importing this module leaves
  # absl's global flags to the binary that imports it.
  flags.DEFINE_string("dest", None, "The folder to fill.", required=True)
  flags.DEFINE_string("url", GROUPLENS_URL, "Where ml-100k.zip lies (file:// works).")
  flags.DEFINE_bool(
    "fallback", True, f"Fall back to the {RECBOLE_WHEEL} wheel from PyPI."
  )


def main(argv: list[str]) -> None:
  """Fetches the data set named on the command line; errors exit 2."""
  if argv[1:] != ["ml-100k"]:
    raise app.UsageError(
      f"expected one data set, ml-100k; got {' '.join(argv[1:]) or 'none'}"
    )
  absl_logging.set_verbosity(absl_logging.INFO)
  try:
    fetch_ml100k(FLAGS.dest, url=FLAGS.url, allow_fallback=FLAGS.fallback)
  except InputError as e:
    # A user error: its message says what to fix; a traceback would bury it.
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
