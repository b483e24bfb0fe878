"""Tests of the MovieLens 100K loader on both layouts and on the real copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bcjax.data.graph import DynamicGraph, RaggedAttribute
from bcjax.data.movielens import GENRES, load_ml100k
from bcjax.errors import InputError

SHARED_ML100K = Path(__file__).parents[2] / "shared/data/ml-100k"

# (user, item, rating, timestamp) in file order. Sorted stably by time, users
# appear as 5, 3, 7 and items as 20, 10, 30: neither is raw id order.
RATINGS = [
  (7, 30, 4, 200),
  (5, 20, 5, 100),
  (3, 10, 3, 100),  # ties with the line above, which stays first
  (5, 30, 2, 300),
  (3, 10, 1, 200),  # ties with the first line, which stays first
]
# (id, title without year, year, release date, genres). Movie 20 is like
# movie 267 of the real data: no title, no date. Movie 30's date is a later
# re-release, as is common in u.item; the year is the title's. Movie 40 has
# no rating and must be dropped.
MOVIES = [
  (10, "Toy Story", "1995", "01-Jan-1995", ("Animation", "Children's", "Comedy")),
  (20, "unknown", None, "", ("unknown",)),
  (30, "Misérables, Les", "1995", "22-Jan-1996", ("Drama", "Musical")),
  (40, "Never Rated", "1971", "01-Jan-1971", ("Comedy", "Western")),
]
# (id, age, gender, occupation, zip). User 9 has no rating and must be dropped.
USERS = [
  (3, 24, "M", "technician", "85711"),
  (5, 53, "F", "other", "94043"),
  (7, 24, "M", "writer", "32067"),
  (9, 33, "F", "lawyer", "15213"),
]


def write_atomic(folder: Path, ratings=RATINGS, movies=MOVIES, users=USERS) -> Path:
  """Writes rows in the RecBole atomic layout, as RecBole 1.2.1 ships it."""
  folder.mkdir(parents=True, exist_ok=True)
  lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
  lines += [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in ratings]
  _write(folder / "ml-100k.inter", lines)
  lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
  for item, title, year, _, genres in movies:
    # RecBole's spelling of a missing year; the genres in a free order.
    lines.append(f"{item}\t{title}\t{year or 'unkonwn'}\t{' '.join(reversed(genres))}")
  _write(folder / "ml-100k.item", lines)
  lines = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
  lines += ["\t".join(map(str, user)) for user in users]
  _write(folder / "ml-100k.user", lines)
  return folder


def write_grouplens(folder: Path, ratings=RATINGS, movies=MOVIES, users=USERS) -> Path:
  """Writes rows in the GroupLens layout of ml-100k.zip."""
  folder.mkdir(parents=True, exist_ok=True)
  _write(folder / "u.data", [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in ratings])
  lines = []
  for item, title, year, date, genres in movies:
    full_title = f"{title} ({year})" if year else title
    flags = "|".join("1" if genre in genres else "0" for genre in GENRES)
    url = f"http://us.imdb.com/M/title-exact?{item}"
    lines.append(f"{item}|{full_title}|{date}||{url}|{flags}")
  _write(folder / "u.item", lines, encoding="latin-1")
  _write(folder / "u.user", ["|".join(map(str, user)) for user in users])
  return folder


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
  path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def labels(attr: RaggedAttribute) -> list[list[str]]:
  """The value names of each node."""
  return [
    [attr.vocab[v] for v in attr.values[attr.offsets[i] : attr.offsets[i + 1]]]
    for i in range(attr.num_nodes)
  ]


def assert_same_graph(a: DynamicGraph, b: DynamicGraph) -> None:
  assert a.name == b.name
  for field in ("user", "item", "timestamp", "rating"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  for attrs_a, attrs_b in ((a.item_attrs, b.item_attrs), (a.user_attrs, b.user_attrs)):
    assert attrs_a.keys() == attrs_b.keys()
    for kind in attrs_a:
      assert attrs_a[kind].vocab == attrs_b[kind].vocab, kind
      np.testing.assert_array_equal(attrs_a[kind].values, attrs_b[kind].values)
      np.testing.assert_array_equal(attrs_a[kind].offsets, attrs_b[kind].offsets)


def _replace_line(path: Path, number: int, text: str, encoding: str = "utf-8") -> None:
  lines = path.read_bytes().decode(encoding).split("\n")
  lines[number - 1] = text
  path.write_bytes("\n".join(lines).encode(encoding))


def _delete_line(path: Path, number: int) -> None:
  lines = path.read_bytes().split(b"\n")
  del lines[number - 1]
  path.write_bytes(b"\n".join(lines))


WRITERS = {"atomic": write_atomic, "grouplens": write_grouplens}


@pytest.fixture(params=sorted(WRITERS))
def graph(request, tmp_path) -> DynamicGraph:
  return load_ml100k(str(WRITERS[request.param](tmp_path)))


def test_sorts_stably_by_time_and_numbers_by_first_appearance(graph):
  # File order 1, 2, 0, 4, 3 after a stable sort by timestamp.
  assert graph.name == "ml-100k"
  np.testing.assert_array_equal(graph.timestamp, [100, 100, 200, 200, 300])
  np.testing.assert_array_equal(graph.rating, [5, 3, 4, 1, 2])
  np.testing.assert_array_equal(graph.user, [0, 1, 2, 1, 0])  # raw 5, 3, 7
  np.testing.assert_array_equal(graph.item, [0, 1, 2, 1, 2])  # raw 20, 10, 30
  assert graph.rating.dtype == np.float32 and graph.timestamp.dtype == np.int64


def test_item_attributes(graph):
  assert set(graph.item_attrs) == {"genre", "year"}
  # Items 20, 10, 30; movie 40 has no rating, so Western is nowhere.
  assert labels(graph.item_attrs["genre"]) == [
    ["unknown"],
    ["Animation", "Children's", "Comedy"],
    ["Drama", "Musical"],
  ]
  assert graph.item_attrs["genre"].vocab == (
    "Animation",
    "Children's",
    "Comedy",
    "Drama",
    "Musical",
    "unknown",
  )
  assert labels(graph.item_attrs["year"]) == [[], ["1995"], ["1995"]]
  assert graph.item_attrs["year"].vocab == ("1995",)


def test_user_attributes(graph):
  assert set(graph.user_attrs) == {"age", "gender", "occupation"}
  # Users 5, 3, 7; user 9 has no rating, so 33 and lawyer are nowhere.
  assert labels(graph.user_attrs["age"]) == [["53"], ["24"], ["24"]]
  assert graph.user_attrs["age"].vocab == ("24", "53")
  assert labels(graph.user_attrs["gender"]) == [["F"], ["M"], ["M"]]
  assert labels(graph.user_attrs["occupation"]) == [
    ["other"],
    ["technician"],
    ["writer"],
  ]


def test_both_layouts_give_the_same_graph(tmp_path):
  atomic = load_ml100k(str(write_atomic(tmp_path / "atomic")))
  grouplens = load_ml100k(str(write_grouplens(tmp_path / "grouplens")))
  assert_same_graph(atomic, grouplens)
  assert atomic.fingerprint() == grouplens.fingerprint()


def test_atomic_columns_are_found_by_header_name(tmp_path):
  reference = load_ml100k(str(write_atomic(tmp_path / "a")))
  folder = write_atomic(tmp_path / "b")
  lines = ["timestamp:float\trating:float\titem_id:token\tuser_id:token\textra:token"]
  lines += [f"{t}\t{r}\t{i}\t{u}\tx" for u, i, r, t in RATINGS]
  _write(folder / "ml-100k.inter", lines)
  assert_same_graph(load_ml100k(str(folder)), reference)


def test_atomic_layout_wins_when_both_are_complete(tmp_path):
  folder = write_grouplens(write_atomic(tmp_path))
  (folder / "u.data").write_text("garbage\n")
  assert load_ml100k(str(folder)).num_edges == len(RATINGS)


def test_grouplens_year_falls_back_to_the_release_date(tmp_path):
  movies = [(10, "No Year In Title", None, "01-Jan-1971", ("Drama",))]
  folder = write_grouplens(tmp_path, ratings=[(3, 10, 4, 1)], movies=movies)
  assert labels(load_ml100k(str(folder)).item_attrs["year"]) == [["1971"]]


def test_real_copy():
  if not SHARED_ML100K.is_dir():
    pytest.skip(f"no real MovieLens 100K copy at {SHARED_ML100K}")
  graph = load_ml100k(str(SHARED_ML100K))
  assert (graph.num_edges, graph.num_users, graph.num_items) == (100_000, 943, 1_682)
  assert set(graph.item_attrs["genre"].vocab) == set(GENRES)
  # Movies 267 ("unkonwn") and 1412 ("V") have no year in the atomic file.
  assert int(np.sum(np.diff(graph.item_attrs["year"].offsets) == 0)) == 2
  assert graph.user_attrs["gender"].vocab == ("M", "F")
  assert len(graph.user_attrs["occupation"].vocab) == 21
  assert np.all(np.diff(graph.timestamp) >= 0)


def test_missing_folder_and_files(tmp_path):
  with pytest.raises(InputError, match="no such folder"):
    load_ml100k(str(tmp_path / "nowhere"))
  with pytest.raises(InputError) as info:
    load_ml100k(str(tmp_path))
  for name in ("ml-100k.inter", "u.data", "u.item", "u.user"):
    assert name in str(info.value)
  folder = write_atomic(tmp_path / "partial")
  (folder / "ml-100k.user").unlink()
  with pytest.raises(InputError, match=r"missing ml-100k\.user"):
    load_ml100k(str(folder))


def _header(path, text):
  _replace_line(path, 1, text)


# (layout, file, change, what the message must hold). Atomic rows start on
# line 2, below the header; GroupLens rows on line 1.
BAD_INPUT = {
  "missing column": (
    "atomic",
    "ml-100k.inter",
    lambda p: _header(p, "user_id:token\titem_id:token\tstars:float\ttimestamp:float"),
    ["ml-100k.inter:1", "lacks column rating"],
  ),
  "duplicate column": (
    "atomic",
    "ml-100k.user",
    lambda p: _header(
      p, "user_id:token\tage:token\tgender:token\tage:token\tzip:token"
    ),
    ["ml-100k.user:1", "duplicate column 'age'"],
  ),
  "atomic field count": (
    "atomic",
    "ml-100k.inter",
    lambda p: _replace_line(p, 3, "5\t20\t5"),
    ["ml-100k.inter:3", "expected 4 tab-separated fields", "got 3"],
  ),
  "u.data field count": (
    "grouplens",
    "u.data",
    lambda p: _replace_line(p, 2, "5\t20\t5\t100\t7"),
    ["u.data:2", "expected lines of 4", "got 5"],
  ),
  "u.item field count": (
    "grouplens",
    "u.item",
    lambda p: _replace_line(p, 3, "30|Les Miserables (1995)|22-Jan-1996", "latin-1"),
    ["u.item:3", "24 '|'-separated fields", "got 3"],
  ),
  "u.user field count": (
    "grouplens",
    "u.user",
    lambda p: _replace_line(p, 2, "5|53|F|other"),
    ["u.user:2", "5 '|'-separated fields", "got 4"],
  ),
  "non-numeric rating": (
    "atomic",
    "ml-100k.inter",
    lambda p: _replace_line(p, 4, "3\t10\tgood\t100"),
    ["ml-100k.inter:4", "rating 'good' is not a number"],
  ),
  "non-numeric timestamp": (
    "grouplens",
    "u.data",
    lambda p: _replace_line(p, 5, "3\t10\t1\tyesterday"),
    ["u.data:5", "timestamp 'yesterday'"],
  ),
  "fractional timestamp": (
    "atomic",
    "ml-100k.inter",
    lambda p: _replace_line(p, 2, "7\t30\t4\t200.5"),
    ["ml-100k.inter:2", "timestamp '200.5' is not a whole number"],
  ),
  "rating above 5": (
    "grouplens",
    "u.data",
    lambda p: _replace_line(p, 1, "7\t30\t6\t200"),
    ["u.data:1", "rating '6' is outside [1, 5]"],
  ),
  "rating below 1": (
    "atomic",
    "ml-100k.inter",
    lambda p: _replace_line(p, 2, "7\t30\t0.5\t200"),
    ["ml-100k.inter:2", "outside [1, 5]"],
  ),
  "NaN rating": (
    "atomic",
    "ml-100k.inter",
    lambda p: _replace_line(p, 2, "7\t30\tnan\t200"),
    ["ml-100k.inter:2", "rating 'nan'", "finite"],
  ),
  "infinite rating": (
    "grouplens",
    "u.data",
    lambda p: _replace_line(p, 1, "7\t30\tinf\t200"),
    ["u.data:1", "rating 'inf'"],
  ),
  "empty interactions": (
    "grouplens",
    "u.data",
    lambda p: p.write_bytes(b""),
    ["u.data", "the file is empty"],
  ),
  "empty atomic items": (
    "atomic",
    "ml-100k.item",
    lambda p: p.write_bytes(b"\n\n"),
    ["ml-100k.item", "the file is empty"],
  ),
  "header only": (
    "atomic",
    "ml-100k.user",
    lambda p: p.write_text(
      "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    ),
    ["ml-100k.user", "header but no rows"],
  ),
  "rated item not in the item file": (
    "atomic",
    "ml-100k.item",
    lambda p: _delete_line(p, 4),  # movie 30, first rated on inter line 2
    ["ml-100k.inter:2", "item '30' does not appear in", "ml-100k.item"],
  ),
  "rating user not in the user file": (
    "grouplens",
    "u.user",
    lambda p: _delete_line(p, 2),  # user 5, first on u.data line 2
    ["u.data:2", "user '5' does not appear in", "u.user"],
  ),
  "duplicate movie": (
    "grouplens",
    "u.item",
    lambda p: _replace_line(p, 4, _grouplens_line(p, 1), "latin-1"),
    ["u.item:4", "duplicate movie id '10'", "first on line 1"],
  ),
  "bad genre flag": (
    "grouplens",
    "u.item",
    lambda p: _replace_line(p, 1, _grouplens_line(p, 1)[:-1] + "2", "latin-1"),
    ["u.item:1", "must each be 0 or 1"],
  ),
  "bad release date": (
    "grouplens",
    "u.item",
    lambda p: _replace_line(
      p, 1, _grouplens_line(p, 1).replace("01-Jan-1995", "1995-01-01"), "latin-1"
    ),
    ["u.item:1", "release date '1995-01-01'"],
  ),
  "invalid utf-8": (
    "atomic",
    "ml-100k.item",
    lambda p: p.write_bytes(p.read_bytes().replace("é".encode(), b"\xe9")),
    ["ml-100k.item:4", "not valid utf-8"],
  ),
}


def _grouplens_line(path: Path, number: int) -> str:
  return path.read_bytes().decode("latin-1").split("\n")[number - 1]


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_names_file_and_line(tmp_path, case):
  layout, name, change, expected = BAD_INPUT[case]
  folder = WRITERS[layout](tmp_path)
  change(folder / name)
  with pytest.raises(InputError) as info:
    load_ml100k(str(folder))
  for text in expected:
    assert text in str(info.value)
