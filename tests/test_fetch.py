"""Tests of the MovieLens 100K download, without network access."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bcjax.data import fetch
from bcjax.data.movielens import ATOMIC_FILES, GENRES, load_ml100k
from bcjax.errors import InputError
from tests.test_movielens import (
  RATINGS,
  SHARED_ML100K,
  assert_same_graph,
  write_atomic,
  write_grouplens,
)

# (ratings, users, movies) of the small rows of test_movielens.
SMALL_COUNTS = (len(RATINGS), 3, 3)
needs_shared = pytest.mark.skipif(
  not SHARED_ML100K.is_dir(), reason=f"no real MovieLens 100K copy at {SHARED_ML100K}"
)


def grouplens_zip(path: Path, files: Path) -> Path:
  """Zips GroupLens files as ml-100k.zip has them, with some extra members."""
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("ml-100k/", "")
    for name in sorted(os.listdir(files)):
      z.write(files / name, f"ml-100k/{name}")
    z.writestr("ml-100k/u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)))
    z.writestr("ml-100k/u1.base", "1\t1\t5\t874965758\n")
    z.writestr("ml-100k/README", "MovieLens 100K\n")
  return path


def fake_wheel(folder: Path, files: dict[str, bytes]) -> Path:
  """A stand-in for the recbole wheel, holding ``files`` where it keeps them."""
  wheel = folder / "recbole-1.2.1-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as z:
    z.writestr("recbole/__init__.py", "")
    for name, content in files.items():
      z.writestr(f"recbole/dataset_example/ml-100k/{name}", content)
    z.writestr("recbole-1.2.1.dist-info/METADATA", "Name: recbole\n")
  return wheel


def unreachable(url: str, path: Path) -> Path:
  raise InputError(f"cannot download {url} (no network in tests)")


def use_wheel(monkeypatch, files: dict[str, bytes]) -> list[Path]:
  """Makes downloads fail and the wheel come from ``files``; logs each call."""
  calls = []

  def download_wheel(tmp: Path) -> Path:
    calls.append(tmp)
    return fake_wheel(tmp, files)

  monkeypatch.setattr(fetch, "_download", unreachable)
  monkeypatch.setattr(fetch, "_download_wheel", download_wheel)
  return calls


def real_atomic_files() -> dict[str, bytes]:
  return {name: (SHARED_ML100K / name).read_bytes() for name in ATOMIC_FILES}


@pytest.fixture
def small_zip(tmp_path) -> Path:
  return grouplens_zip(tmp_path / "ml-100k.zip", write_grouplens(tmp_path / "src"))


def test_fetches_a_grouplens_zip_from_a_file_url(
  tmp_path, small_zip, monkeypatch, caplog
):
  monkeypatch.setattr(fetch, "EXPECTED_COUNTS", SMALL_COUNTS)
  dest = tmp_path / "dest"
  with caplog.at_level(logging.INFO, logger=fetch.__name__):
    fetch.fetch_ml100k(str(dest), url=small_zip.as_uri(), allow_fallback=False)
  assert sorted(os.listdir(dest)) == ["u.data", "u.genre", "u.item", "u.user"]
  assert "wrote u.data" in caplog.text
  # No ml-100k.zip.md5 beside the archive: counts alone, and it says so.
  assert "checking the archive by its counts alone" in caplog.text
  reference = load_ml100k(str(write_grouplens(tmp_path / "reference")))
  assert_same_graph(load_ml100k(str(dest)), reference)


def test_second_call_finds_the_files_and_does_nothing(
  tmp_path, small_zip, monkeypatch, caplog
):
  monkeypatch.setattr(fetch, "EXPECTED_COUNTS", SMALL_COUNTS)
  dest = tmp_path / "dest"
  fetch.fetch_ml100k(str(dest), url=small_zip.as_uri())
  before = {name: (dest / name).stat().st_mtime_ns for name in os.listdir(dest)}
  small_zip.unlink()
  with caplog.at_level(logging.INFO, logger=fetch.__name__):
    fetch.fetch_ml100k(str(dest), url=small_zip.as_uri(), allow_fallback=False)
  assert "already holds MovieLens 100K" in caplog.text
  assert {name: (dest / name).stat().st_mtime_ns for name in os.listdir(dest)} == before


def _md5(path: Path) -> str:
  return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
  "style", ["{md5}  ml-100k.zip\n", "MD5 (ml-100k.zip) = {md5}\n", "{MD5}"]
)
def test_the_published_md5_is_checked(tmp_path, small_zip, monkeypatch, caplog, style):
  monkeypatch.setattr(fetch, "EXPECTED_COUNTS", SMALL_COUNTS)
  md5 = _md5(small_zip)
  # Served from the archive's folder, as GroupLens serves it beside the zip.
  Path(f"{small_zip}.md5").write_text(style.format(md5=md5, MD5=md5.upper()))
  dest = tmp_path / "dest"
  with caplog.at_level(logging.INFO, logger=fetch.__name__):
    fetch.fetch_ml100k(str(dest), url=small_zip.as_uri(), allow_fallback=False)
  assert f"md5 {md5} matches {small_zip.as_uri()}.md5" in caplog.text
  assert "counts alone" not in caplog.text
  assert "u.data" in os.listdir(dest)


def test_an_archive_with_another_md5_is_rejected_and_nothing_lands(
  tmp_path, small_zip, monkeypatch
):
  monkeypatch.setattr(fetch, "EXPECTED_COUNTS", SMALL_COUNTS)
  published = hashlib.md5(b"the archive GroupLens published").hexdigest()
  Path(f"{small_zip}.md5").write_text(f"{published}  ml-100k.zip\n")
  dest = tmp_path / "dest"
  with pytest.raises(InputError) as info:
    # No fallback either: a damaged download is an error, not a detour.
    fetch.fetch_ml100k(str(dest), url=small_zip.as_uri())
  message = str(info.value)
  assert message.startswith(f"{small_zip.as_uri()}: the download has md5 ")
  assert _md5(small_zip) in message
  assert f"expected {published}, as {small_zip.as_uri()}.md5 publishes" in message
  assert len(message.splitlines()) == 1
  assert os.listdir(dest) == []


def test_a_checksum_file_without_an_md5_falls_back_to_counts(
  tmp_path, small_zip, monkeypatch, caplog
):
  monkeypatch.setattr(fetch, "EXPECTED_COUNTS", SMALL_COUNTS)
  Path(f"{small_zip}.md5").write_text("<html>Not Found</html>\n")
  with caplog.at_level(logging.INFO, logger=fetch.__name__):
    fetch.fetch_ml100k(str(tmp_path / "dest"), url=small_zip.as_uri())
  assert "holds no md5; checking the archive by its counts alone" in caplog.text
  # Counts still decide: with the real ones expected, the same zip fails.
  monkeypatch.setattr(fetch, "EXPECTED_COUNTS", (100_000, 943, 1_682))
  with pytest.raises(InputError, match="got 5 ratings, 3 users, 3 movies"):
    fetch.fetch_ml100k(str(tmp_path / "dest2"), url=small_zip.as_uri())


def test_wrong_counts_are_rejected_and_nothing_lands(tmp_path, small_zip):
  dest = tmp_path / "dest"
  with pytest.raises(InputError) as info:
    fetch.fetch_ml100k(str(dest), url=small_zip.as_uri(), allow_fallback=False)
  message = str(info.value)
  assert small_zip.as_uri() in message
  assert "100,000 ratings, 943 users, 1,682 movies" in message
  assert "got 5 ratings, 3 users, 3 movies" in message
  assert os.listdir(dest) == []


def test_a_zip_without_the_files_is_rejected(tmp_path):
  archive = tmp_path / "ml-100k.zip"
  with zipfile.ZipFile(archive, "w") as z:
    z.writestr("ml-100k/u.data", "1\t1\t5\t1\n")
  with pytest.raises(InputError, match=r"lacks u\.item, u\.user"):
    fetch.fetch_ml100k(str(tmp_path / "dest"), url=archive.as_uri())


def test_a_file_that_is_no_zip_is_rejected(tmp_path):
  archive = tmp_path / "ml-100k.zip"
  archive.write_text("<html>Not Found</html>")
  with pytest.raises(InputError, match="not a readable zip archive"):
    fetch.fetch_ml100k(str(tmp_path / "dest"), url=archive.as_uri())


@needs_shared
def test_real_counts_pass(tmp_path):
  src = _atomic_to_grouplens(SHARED_ML100K, tmp_path / "src")
  archive = grouplens_zip(tmp_path / "ml-100k.zip", src)
  dest = fetch.fetch_ml100k(str(tmp_path / "dest"), url=archive.as_uri())
  # The two layouts of the same data load into the same graph.
  assert_same_graph(load_ml100k(dest), load_ml100k(str(SHARED_ML100K)))


def _atomic_to_grouplens(src: Path, dst: Path) -> Path:
  """Writes the atomic files back in the GroupLens layout they came from."""
  dst.mkdir()

  def rows(name):
    lines = (src / name).read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t") for line in lines]

  (dst / "u.data").write_text(
    "".join("\t".join(r) + "\n" for r in rows(ATOMIC_FILES[0]))
  )
  items = []
  for item, title, year, classes in rows(ATOMIC_FILES[1]):
    # RecBole split "title (year)" at the last parentheses, and spelled the
    # year of the untitled movie "unkonwn".
    full_title = "unknown" if year == "unkonwn" else f"{title} ({year})"
    date = f"01-Jan-{year}" if year.isdigit() else ""
    flags = "|".join("1" if g in classes.split() else "0" for g in GENRES)
    items.append(f"{item}|{full_title}|{date}||http://us.imdb.com/|{flags}\n")
  (dst / "u.item").write_bytes("".join(items).encode("latin-1"))
  (dst / "u.user").write_text(
    "".join("|".join(r) + "\n" for r in rows(ATOMIC_FILES[2]))
  )
  return dst


@needs_shared
def test_falls_back_to_the_recbole_wheel(tmp_path, monkeypatch, caplog):
  calls = use_wheel(monkeypatch, real_atomic_files())
  dest = tmp_path / "dest"
  with caplog.at_level(logging.INFO, logger=fetch.__name__):
    fetch.fetch_ml100k(str(dest))
  assert len(calls) == 1
  assert "no network in tests" in caplog.text and "recbole==1.2.1" in caplog.text
  assert sorted(os.listdir(dest)) == sorted(ATOMIC_FILES)
  for name in ATOMIC_FILES:
    digest = hashlib.sha256((dest / name).read_bytes()).hexdigest()
    assert digest == fetch.ATOMIC_SHA256[name]
  graph = load_ml100k(str(dest))
  assert (graph.num_edges, graph.num_users, graph.num_items) == (100_000, 943, 1_682)
  # Found and checked the second time: no download at all.
  caplog.clear()
  with caplog.at_level(logging.INFO, logger=fetch.__name__):
    fetch.fetch_ml100k(str(dest))
  assert len(calls) == 1 and "nothing to do" in caplog.text


@needs_shared
def test_damaged_atomic_files_in_dest_are_fetched_again(tmp_path, monkeypatch):
  calls = use_wheel(monkeypatch, real_atomic_files())
  dest = write_atomic(tmp_path / "dest")
  fetch.fetch_ml100k(str(dest))
  assert len(calls) == 1
  assert fetch._sha256_mismatch(dest) is None


def test_wheel_files_with_a_wrong_sha256_are_rejected(tmp_path, monkeypatch):
  small = write_atomic(tmp_path / "small")
  use_wheel(monkeypatch, {name: (small / name).read_bytes() for name in ATOMIC_FILES})
  dest = tmp_path / "dest"
  with pytest.raises(InputError) as info:
    fetch.fetch_ml100k(str(dest))
  message = str(info.value)
  assert "recbole-1.2.1-py3-none-any.whl" in message
  assert "ml-100k.inter has sha256" in message
  assert fetch.ATOMIC_SHA256["ml-100k.inter"] in message
  assert os.listdir(dest) == []


@needs_shared
def test_one_wrong_atomic_file_is_named(tmp_path, monkeypatch):
  files = real_atomic_files()
  files["ml-100k.user"] = files["ml-100k.user"].replace(b"technician", b"engineer", 1)
  use_wheel(monkeypatch, files)
  with pytest.raises(InputError, match=r"ml-100k/ml-100k\.user has sha256"):
    fetch.fetch_ml100k(str(tmp_path / "dest"))


def test_wheel_without_the_files_is_rejected(tmp_path, monkeypatch):
  use_wheel(monkeypatch, {"ml-100k.inter": b"x"})
  with pytest.raises(InputError, match=r"lacks recbole/dataset_example/ml-100k/"):
    fetch.fetch_ml100k(str(tmp_path / "dest"))


def test_no_fallback_reports_the_download_error(tmp_path, monkeypatch):
  monkeypatch.setattr(fetch, "_download_wheel", pytest.fail)
  url = (tmp_path / "missing.zip").as_uri()
  with pytest.raises(InputError, match="cannot download"):
    fetch.fetch_ml100k(str(tmp_path / "dest"), url=url, allow_fallback=False)


def test_failed_fallback_reports_both_errors(tmp_path, monkeypatch):
  def no_pip(tmp: Path) -> Path:
    raise InputError("pip download recbole==1.2.1 failed (exit 1: no index)")

  monkeypatch.setattr(fetch, "_download", unreachable)
  monkeypatch.setattr(fetch, "_download_wheel", no_pip)
  with pytest.raises(InputError) as info:
    fetch.fetch_ml100k(str(tmp_path / "dest"))
  assert "no network in tests" in str(info.value)
  assert "fallback failed too" in str(info.value) and "no index" in str(info.value)


def test_wheel_download_uses_pip_download_only(tmp_path, monkeypatch):
  commands = []

  def run(command, **kwargs):
    commands.append(command)
    (tmp_path / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"")
    return subprocess.CompletedProcess(command, 0, "", "")

  monkeypatch.setattr(fetch.subprocess, "run", run)
  assert fetch._download_wheel(tmp_path).name == "recbole-1.2.1-py3-none-any.whl"
  (command,) = commands
  assert command[:4] == [sys.executable, "-m", "pip", "download"]
  assert "--no-deps" in command and "recbole==1.2.1" in command
  assert "install" not in command


def test_pip_failure_is_an_input_error(tmp_path, monkeypatch):
  def run(command, **kwargs):
    return subprocess.CompletedProcess(
      command, 1, "", "ERROR: No matching distribution"
    )

  monkeypatch.setattr(fetch.subprocess, "run", run)
  with pytest.raises(InputError, match="exit 1: ERROR: No matching distribution"):
    fetch._download_wheel(tmp_path)


def test_dest_that_is_a_file(tmp_path):
  dest = tmp_path / "file"
  dest.write_text("")
  with pytest.raises(InputError, match="not a folder"):
    fetch.fetch_ml100k(str(dest))


def test_command_line_error_is_one_line_and_exit_2(tmp_path):
  missing = (tmp_path / "missing.zip").as_uri()
  done = subprocess.run(
    [sys.executable, "-m", "bcjax.data.fetch", "ml-100k", f"--dest={tmp_path}"]
    + [f"--url={missing}", "--nofallback"],
    capture_output=True,
    text=True,
    cwd=Path(__file__).parents[1],
    timeout=60,
    check=False,
  )
  assert done.returncode == 2
  assert done.stderr.startswith("error: cannot download")
  assert len(done.stderr.strip().splitlines()) == 1
  assert "Traceback" not in done.stderr
  assert sorted(os.listdir(tmp_path)) == []


def _fetch_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, "-m", "bcjax.data.fetch", *args],
    capture_output=True,
    text=True,
    cwd=cwd,
    timeout=120,
    check=False,
  )


@needs_shared
def test_command_line_fetches_and_checks_the_md5_from_any_folder(tmp_path):
  src = _atomic_to_grouplens(SHARED_ML100K, tmp_path / "src")
  archive = grouplens_zip(tmp_path / "ml-100k.zip", src)
  Path(f"{archive}.md5").write_text(f"MD5 (ml-100k.zip) = {_md5(archive)}\n")
  dest = tmp_path / "dest"
  done = _fetch_command(
    "ml-100k",
    f"--dest={dest}",
    f"--url={archive.as_uri()}",
    "--nofallback",
    cwd=tmp_path,
  )
  assert done.returncode == 0, done.stderr
  # absl's log lines, like the other binaries'.
  assert "md5 " in done.stderr and " matches " in done.stderr
  assert "wrote u.data" in done.stderr
  assert sorted(os.listdir(dest)) == ["u.data", "u.genre", "u.item", "u.user"]


def test_command_line_help_lists_the_flags(tmp_path):
  # absl ends --help with exit status 1, as for every absl binary.
  done = _fetch_command("--help", cwd=tmp_path)
  for flag in ("--dest", "--url", "--[no]fallback"):
    assert flag in done.stdout


def test_command_line_needs_the_data_set_name(tmp_path):
  done = _fetch_command(f"--dest={tmp_path}", "ml-1m", cwd=tmp_path)
  assert done.returncode != 0
  assert "expected one data set, ml-100k; got ml-1m" in done.stderr
  assert os.listdir(tmp_path) == []
