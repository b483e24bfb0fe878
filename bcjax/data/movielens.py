"""MovieLens 100K, read from the GroupLens or the RecBole atomic layout.

Both layouts carry the same ratings, movies and users; :func:`load_ml100k`
reads either into one canonical :class:`DynamicGraph`, so that what a model
learns does not depend on where the files came from.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from pathlib import Path

from bcjax.data.graph import DynamicGraph, RaggedAttribute, from_raw_log
from bcjax.errors import InputError

NAME = "ml-100k"
ATOMIC_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
GROUPLENS_FILES = ("u.data", "u.item", "u.user")
# The genres of the 0/1 flags at the end of a u.item line, in file order.
GENRES = (
  "unknown",
  "Action",
  "Adventure",
  "Animation",
  "Children's",
  "Comedy",
  "Crime",
  "Documentary",
  "Drama",
  "Fantasy",
  "Film-Noir",
  "Horror",
  "Musical",
  "Mystery",
  "Romance",
  "Sci-Fi",
  "Thriller",
  "War",
  "Western",
)
ITEM_ATTRS = ("genre", "year")
USER_ATTRS = ("age", "gender", "occupation")

_GENRE_RANK = {genre: rank for rank, genre in enumerate(GENRES)}
_ITEM_FIELDS = (
  "movie id, title, release date, video release date, IMDb URL, 19 genre flags"
)
_USER_FIELDS = "user id, age, gender, occupation, zip code"
_RELEASE_DATE = re.compile(r"\d{1,2}-[A-Za-z]{3}-(\d{4})")
# Greedy, so that it finds the last "(...)" of a title like "Nikita (La Femme
# Nikita) (1990)".
_TITLE_YEAR = re.compile(r".*\(([^()]*)\)")
_YEAR = re.compile(r"\d{4}")


@dataclasses.dataclass(frozen=True)
class _Movie:
  genres: tuple[str, ...]
  year: str | None


@dataclasses.dataclass(frozen=True)
class _User:
  age: str
  gender: str
  occupation: str


@dataclasses.dataclass
class _Log:
  """The interactions of a file in file order, with their line numbers."""

  path: Path
  lines: list[int] = dataclasses.field(default_factory=list)
  users: list[str] = dataclasses.field(default_factory=list)
  items: list[str] = dataclasses.field(default_factory=list)
  timestamps: list[int] = dataclasses.field(default_factory=list)
  ratings: list[float] = dataclasses.field(default_factory=list)


def load_ml100k(data_dir: str) -> DynamicGraph:
  """Loads MovieLens 100K from either of its two layouts.

  The layout is detected from the files in ``data_dir``: the RecBole atomic
  files ``ml-100k.inter``, ``ml-100k.item``, ``ml-100k.user`` (preferred when
  both are complete) or the GroupLens files ``u.data``, ``u.item``,
  ``u.user``. Movies and users that have no rating are dropped.

  Args:
    data_dir: the folder that holds the files.

  Returns:
    The graph named ``"ml-100k"``, with item attributes ``"genre"`` (several
    per movie) and ``"year"`` (release year, none where unknown), and user
    attributes ``"age"``, ``"gender"`` and ``"occupation"`` (one each).

  Raises:
    InputError: a file is missing or malformed; the message names the file,
      the line and what was expected.
  """
  folder = Path(data_dir)
  if _layout(folder) == "atomic":
    inter, item, user = (folder / name for name in ATOMIC_FILES)
    log = _atomic_log(inter)
    movies = _atomic_movies(item)
    users = _atomic_users(user)
  else:
    inter, item, user = (folder / name for name in GROUPLENS_FILES)
    log = _grouplens_log(inter)
    movies = _grouplens_movies(item)
    users = _grouplens_users(user)
  return _build(log, movies, item, users, user)


def _layout(folder: Path) -> str:
  expected = (
    f"either {', '.join(ATOMIC_FILES)} (RecBole atomic layout) or "
    f"{', '.join(GROUPLENS_FILES)} (GroupLens layout)"
  )
  if not folder.is_dir():
    raise InputError(f"{folder}: no such folder; expected a folder with {expected}")
  layouts = {"atomic": ATOMIC_FILES, "grouplens": GROUPLENS_FILES}
  missing = {
    layout: [name for name in names if not (folder / name).is_file()]
    for layout, names in layouts.items()
  }
  for layout in layouts:
    if not missing[layout]:
      return layout
  closest = min(layouts, key=lambda layout: len(missing[layout]))
  raise InputError(
    f"{folder}: missing {', '.join(missing[closest])}; expected {expected}"
  )


def _lines(path: Path, encoding: str, expected: str) -> list[tuple[int, str]]:
  """The non-blank lines of a file, each with its 1-based line number."""
  try:
    data = path.read_bytes()
  except OSError as e:
    raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise InputError(
      f"{path}:{line}: not valid {encoding} text; expected {expected}"
    ) from None
  # str.splitlines would also break at U+0085 and friends, which latin-1 titles
  # may contain, and so shift every later line number.
  lines = [
    (number, line.rstrip("\r"))
    for number, line in enumerate(text.split("\n"), 1)
    if line.strip()
  ]
  if not lines:
    raise InputError(f"{path}: the file is empty; expected {expected}")
  return lines


def _atomic_rows(
  path: Path, columns: tuple[str, ...], what: str
) -> list[tuple[int, list[str]]]:
  """The named columns of each row of an atomic file, found by header name."""
  expected = f"a header of name:type fields with {', '.join(columns)}, then {what}"
  (header_line, header), *rows = _lines(path, "utf-8", expected)
  names = [field.split(":", 1)[0].strip() for field in header.split("\t")]
  position: dict[str, int] = {}
  for i, name in enumerate(names):
    if name in position:
      raise InputError(
        f"{path}:{header_line}: duplicate column {name!r} in the header "
        f"(fields {position[name] + 1} and {i + 1}); expected each column once"
      )
    position[name] = i
  absent = [column for column in columns if column not in position]
  if absent:
    raise InputError(
      f"{path}:{header_line}: the header lacks column {', '.join(absent)}; "
      f"expected name:type fields with {', '.join(columns)}, got {header!r}"
    )
  if not rows:
    raise InputError(f"{path}: the file has a header but no rows; expected {what}")
  picked = [position[column] for column in columns]
  table = []
  for number, line in rows:
    fields = line.split("\t")
    if len(fields) != len(names):
      raise InputError(
        f"{path}:{number}: expected {len(names)} tab-separated fields "
        f"({', '.join(names)}) as in the header, got {len(fields)}"
      )
    table.append((number, [fields[i].strip() for i in picked]))
  return table


def _split_rows(
  path: Path, sep: str | None, names: str, count: int, encoding: str
) -> list[tuple[int, list[str]]]:
  """The fields of each line of a GroupLens file, checked for their number.

  Args:
    path: the file.
    sep: the field separator; None for any whitespace.
    names: what the fields are, for messages.
    count: the number of fields on every line.
    encoding: the text encoding of the file.
  """
  sep_name = "tab" if sep is None else repr(sep)
  expected = f"lines of {count} {sep_name}-separated fields ({names})"
  rows = []
  for number, line in _lines(path, encoding, expected):
    fields = [field.strip() for field in line.split(sep)]
    if len(fields) != count:
      raise InputError(
        f"{path}:{number}: expected {expected}, got {len(fields)} fields"
      )
    rows.append((number, fields))
  return rows


def _atomic_log(path: Path) -> _Log:
  columns = ("user_id", "item_id", "rating", "timestamp")
  return _read_log(path, _atomic_rows(path, columns, "one row per rating"))


def _grouplens_log(path: Path) -> _Log:
  # u.data is tab-separated; splitting at any whitespace also accepts copies
  # whose tabs were turned into spaces, and no field can hold a space.
  rows = _split_rows(path, None, "user id, item id, rating, timestamp", 4, "ascii")
  return _read_log(path, rows)


def _read_log(path: Path, rows: list[tuple[int, list[str]]]) -> _Log:
  log = _Log(path)
  for number, (user, item, rating, timestamp) in rows:
    for key, what in ((user, "user id"), (item, "item id")):
      if not key:
        raise InputError(f"{path}:{number}: empty {what}; expected an id")
    log.lines.append(number)
    log.users.append(user)
    log.items.append(item)
    log.ratings.append(_rating(path, number, rating))
    log.timestamps.append(_timestamp(path, number, timestamp))
  return log


def _rating(path: Path, number: int, text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise InputError(
      f"{path}:{number}: rating {text!r} is not a number; expected a number in [1, 5]"
    ) from None
  if not 1.0 <= value <= 5.0:  # also false for NaN
    raise InputError(
      f"{path}:{number}: rating {text!r} is outside [1, 5]; expected a finite "
      "number in [1, 5]"
    )
  return value


def _timestamp(path: Path, number: int, text: str) -> int:
  try:
    return int(text)
  except ValueError:
    pass
  # RecBole types the column float, so accept "881250949.0" as well.
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not value.is_integer():
    raise InputError(
      f"{path}:{number}: timestamp {text!r} is not a whole number; expected "
      "unix seconds"
    )
  return int(value)


def _atomic_movies(path: Path) -> dict[str, _Movie]:
  rows = _atomic_rows(path, ("item_id", "release_year", "class"), "one row per movie")
  return _index(
    path,
    "item_id",
    (
      (number, key, _Movie(_canonical_genres(genres.split()), _atomic_year(year)))
      for number, (key, year, genres) in rows
    ),
  )


def _atomic_year(text: str) -> str | None:
  # RecBole took the year from the last parentheses of the u.item title, which
  # gave "unkonwn" for the untitled movie 267 and "V" for a video release, so
  # anything but a year means "no year" rather than bad input.
  return text if _YEAR.fullmatch(text) else None


def _grouplens_movies(path: Path) -> dict[str, _Movie]:
  rows = _split_rows(path, "|", _ITEM_FIELDS, 5 + len(GENRES), "latin-1")
  movies = []
  for number, fields in rows:
    flags = fields[5:]
    if any(flag not in ("0", "1") for flag in flags):
      raise InputError(
        f"{path}:{number}: genre flags {'|'.join(flags)!r} must each be 0 or 1"
      )
    genres = tuple(genre for genre, flag in zip(GENRES, flags) if flag == "1")
    year = _grouplens_year(path, number, title=fields[1], date=fields[2])
    movies.append((number, fields[0], _Movie(genres, year)))
  return _index(path, "movie id", movies)


def _grouplens_year(path: Path, number: int, title: str, date: str) -> str | None:
  """The release year of a u.item line, as the atomic layout has it.

  The atomic release_year is what the last parentheses of the title hold, and
  that is the film's year: the release date column is often a later (video)
  date, e.g. "Taxi Driver (1976)" has 16-Feb-1996. The date only stands in
  for a title without parentheses.
  """
  date_match = _RELEASE_DATE.fullmatch(date)
  if date and date_match is None:
    raise InputError(
      f"{path}:{number}: release date {date!r} is not like 01-Jan-1995; "
      "expected such a date or nothing"
    )
  title_match = _TITLE_YEAR.match(title)
  if title_match is not None:
    return _atomic_year(title_match.group(1).strip())
  return date_match.group(1) if date_match else None


def _canonical_genres(genres: Iterable[str]) -> tuple[str, ...]:
  # u.item flags have a fixed order and the atomic class column a free one;
  # one order for both keeps the attribute values identical across layouts.
  return tuple(sorted(set(genres), key=lambda g: (_GENRE_RANK.get(g, len(GENRES)), g)))


def _atomic_users(path: Path) -> dict[str, _User]:
  rows = _atomic_rows(
    path, ("user_id", "age", "gender", "occupation"), "one row per user"
  )
  return _index(
    path,
    "user_id",
    ((number, key, _User(*fields)) for number, (key, *fields) in rows),
  )


def _grouplens_users(path: Path) -> dict[str, _User]:
  rows = _split_rows(path, "|", _USER_FIELDS, 5, "latin-1")
  return _index(
    path,
    "user id",
    (
      (number, key, _User(age, gender, job))
      for number, (key, age, gender, job, _) in rows
    ),
  )


def _index(path: Path, what: str, rows: Iterable[tuple[int, str, object]]) -> dict:
  """Maps each key to its row, rejecting repeated keys."""
  table, first = {}, {}
  for number, key, row in rows:
    if key in table:
      raise InputError(
        f"{path}:{number}: duplicate {what} {key!r} (first on line "
        f"{first[key]}); expected each {what} once"
      )
    table[key], first[key] = row, number
  return table


def _build(
  log: _Log,
  movies: dict[str, _Movie],
  movie_path: Path,
  users: dict[str, _User],
  user_path: Path,
) -> DynamicGraph:
  for keys, table, path, what in (
    (log.items, movies, movie_path, "item"),
    (log.users, users, user_path, "user"),
  ):
    for number, key in zip(log.lines, keys):
      if key not in table:
        raise InputError(
          f"{log.path}:{number}: {what} {key!r} does not appear in {path}; "
          f"expected every rated {what} to be listed there"
        )
  user, item, timestamp, rating, user_order, item_order = from_raw_log(
    log.users, log.items, log.timestamps, log.ratings, name=NAME
  )
  rated_movies = [movies[key] for key in item_order]
  rated_users = [users[key] for key in user_order]
  item_attrs = {
    "genre": RaggedAttribute.from_labels([m.genres for m in rated_movies]),
    "year": RaggedAttribute.from_labels([_one(m.year) for m in rated_movies]),
  }
  user_attrs = {
    kind: RaggedAttribute.from_labels([_one(getattr(u, kind)) for u in rated_users])
    for kind in USER_ATTRS
  }
  return DynamicGraph(
    user=user,
    item=item,
    timestamp=timestamp,
    rating=rating,
    item_attrs=item_attrs,
    user_attrs=user_attrs,
    name=NAME,
  )


def _one(value: str | None) -> list[str]:
  return [value] if value else []
