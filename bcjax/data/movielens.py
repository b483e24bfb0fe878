"""MovieLens 100K, read from the GroupLens or the RecBole atomic layout.

Both layouts carry the same ratings, movies and users; :func:`load_ml100k`
reads either into one canonical :class:`DynamicGraph`, so that what a model
learns does not depend on where the files came from. The atomic layout is
the generic RecBole reader (:mod:`bcjax.data.recbole`) under ml-100k's own
:data:`SPEC`; the GroupLens files are read here into the same fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from bcjax.data.atomic_tables import Log, Side
from bcjax.data.graph import DynamicGraph
from bcjax.data.recbole import AtomicSpec, build_graph, load_atomic
from bcjax.data.textfiles import index_rows, parse_rating, parse_timestamp, read_lines
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


# How the atomic fields become ml-100k's attributes: the genres in u.item's
# flag order and 4-digit years only, so that both layouts give one graph.
SPEC = AtomicSpec(
  item_fields={"class": "genre", "release_year": "year"},
  user_fields={kind: kind for kind in USER_ATTRS},
  # Every year and genre stays, however rare, as before RecBole support.
  min_item_count=1,
  rating_bounds=(1.0, 5.0),
  every_node_listed=True,
  # MovieLens times are whole unix seconds: a fraction means a damaged file.
  whole_timestamps=True,
  normalize={
    "genre": lambda genres: _canonical_genres(genres),
    "year": lambda years: [y for y in years if _atomic_year(y)],
  },
)


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
    return load_atomic(data_dir, NAME, NAME, SPEC)
  inter, item, user = (folder / name for name in GROUPLENS_FILES)
  return build_graph(
    NAME, _grouplens_log(inter), _grouplens_movies(item), _grouplens_users(user), SPEC
  )


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
  for number, line in read_lines(path, encoding, expected):
    fields = [field.strip() for field in line.split(sep)]
    if len(fields) != count:
      raise InputError(
        f"{path}:{number}: expected {expected}, got {len(fields)} fields"
      )
    rows.append((number, fields))
  return rows


def _grouplens_log(path: Path) -> Log:
  # u.data is tab-separated; splitting at any whitespace also accepts copies
  # whose tabs were turned into spaces, and no field can hold a space.
  rows = _split_rows(path, None, "user id, item id, rating, timestamp", 4, "ascii")
  log = Log(path)
  for number, (user, item, rating, timestamp) in rows:
    log.append(
      number,
      user,
      item,
      parse_timestamp(path, number, timestamp),
      parse_rating(path, number, rating, SPEC.rating_bounds),
    )
  return log


def _atomic_year(text: str) -> str | None:
  # RecBole took the year from the last parentheses of the u.item title, which
  # gave "unkonwn" for the untitled movie 267 and "V" for a video release, so
  # anything but a year means "no year" rather than bad input.
  return text if _YEAR.fullmatch(text) else None


def _grouplens_movies(path: Path) -> Side:
  """The movies of u.item, as the atomic fields class and release_year."""
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
    labels = {"class": genres, "release_year": (year,) if year else ()}
    movies.append((number, fields[0], labels))
  types = {"item_id": "token", "class": "token_seq", "release_year": "token"}
  return Side(path, "item_id", types, index_rows(path, "movie id", movies))


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


def _grouplens_users(path: Path) -> Side:
  """The users of u.user, as the atomic fields (zip code left out)."""
  rows = _split_rows(path, "|", _USER_FIELDS, 5, "latin-1")
  users = (
    (number, key, {kind: (value,) for kind, value in zip(USER_ATTRS, values) if value})
    for number, (key, *values, _) in rows
  )
  types = {"user_id": "token", **{kind: "token" for kind in USER_ATTRS}}
  return Side(path, "user_id", types, index_rows(path, "user id", users))
