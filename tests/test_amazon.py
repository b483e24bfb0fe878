"""Tests of the Amazon Review Data (2018) loader and its cache."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bcjax.data import amazon
from bcjax.data.amazon import load_amazon
from bcjax.errors import InputError

CATEGORY = "Musical_Instruments"
META_FILE = f"meta_{CATEGORY}.json.gz"
REVIEWS_FILE = f"{CATEGORY}_5.json.gz"
SPAN = '<span class="a-size-base a-color-secondary">Guitars</span>'


def _meta(asin, brand, category, **extra):
  return {
    "category": category,
    "tech1": "",
    "description": [f"About {asin}"],
    "title": f"Product {asin}",
    "also_buy": [],
    "brand": brand,
    "feature": [],
    "rank": "1,234 in Musical Instruments (",
    "also_view": [],
    "main_cat": "Musical Instruments",
    "price": "$9.99",
    "asin": asin,
    **extra,
  }


# Fender is on 5 reviewed products and stays; Boss is on 5 products of which 4
# are reviewed, so it goes, and so does the "Effects" category. A1's first
# line is superseded by its second. B5 has no review and is dropped.
META = [
  _meta("A1", "Old Name", ["Musical Instruments"]),
  *(
    _meta(asin, "Fender", ["Musical Instruments", "Guitars", SPAN])
    for asin in ("A1", "A2", "A3", "A4", "A5")
  ),
  *(
    _meta(asin, "Boss", ["Musical Instruments", "Effects"])
    for asin in ("B1", "B2", "B3", "B4", "B5")
  ),
  _meta("C1", "", ["Musical Instruments", "Guitars"]),
]
# (reviewerID, asin, overall, reviewTime) in file order.
REVIEWS = [
  ("U2", "A1", 5.0, "03 1, 2015"),
  ("U1", "B1", 4.0, "01 15, 2015"),
  ("U3", "Z9", 3.0, "01 1, 2014"),  # no metadata: dropped
  ("U1", "A2", 3.0, "01 15, 2015"),  # ties with B1, which stays first
  ("U2", "A3", 2.0, "12 31, 2014"),
  ("U3", "A4", 1.0, "02 2, 2015"),
  ("U3", "A5", 5.0, "02 2, 2015"),
  ("U1", "B2", 4.0, "04 10, 2016"),
  ("U2", "B3", 4.0, "04 10, 2016"),
  ("U2", "B4", 3.0, "05 5, 2016"),
  ("U3", "C1", 2.0, "06 30, 2016"),
]


def _review(user, asin, overall, time):
  return {
    "overall": overall,
    "verified": True,
    "reviewTime": time,
    "reviewerID": user,
    "asin": asin,
    "reviewerName": f"Name of {user}",
    "reviewText": "Works as described.",
    "summary": "Fine",
    "unixReviewTime": 1420070400,
  }


def write_gz_lines(path: Path, lines: list[str]) -> None:
  path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def write_amazon(folder: Path, meta=META, reviews=REVIEWS) -> Path:
  """Writes the two files in the layout of the Amazon Review Data (2018)."""
  folder.mkdir(parents=True, exist_ok=True)
  write_gz_lines(folder / META_FILE, [json.dumps(m) for m in meta])
  write_gz_lines(folder / REVIEWS_FILE, [json.dumps(_review(*r)) for r in reviews])
  return folder


def labels(attr) -> list[list[str]]:
  return [
    [attr.vocab[v] for v in attr.values[attr.offsets[i] : attr.offsets[i + 1]]]
    for i in range(attr.num_nodes)
  ]


def assert_same_graph(a, b) -> None:
  assert a.name == b.name
  for field in ("user", "item", "timestamp", "rating"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert a.item_attrs.keys() == b.item_attrs.keys()
  for kind in a.item_attrs:
    assert a.item_attrs[kind].vocab == b.item_attrs[kind].vocab
    np.testing.assert_array_equal(a.item_attrs[kind].values, b.item_attrs[kind].values)
    np.testing.assert_array_equal(
      a.item_attrs[kind].offsets, b.item_attrs[kind].offsets
    )


@pytest.fixture
def parses(monkeypatch) -> list[str]:
  """Records the name of each graph that is parsed from the source files."""
  calls = []
  parse = amazon._parse

  def counting(meta_path, reviews_path, name):
    calls.append(name)
    return parse(meta_path, reviews_path, name)

  monkeypatch.setattr(amazon, "_parse", counting)
  return calls


def test_log_is_filtered_sorted_and_remapped(tmp_path):
  graph = load_amazon(CATEGORY, str(write_amazon(tmp_path)))
  assert graph.name == "amazon-Musical_Instruments"
  # A3, B1, A2, A4, A5, A1, B2, B3, B4, C1 by stable date order; Z9 is gone.
  np.testing.assert_array_equal(
    graph.timestamp,
    [20141231, 20150115, 20150115, 20150202, 20150202, 20150301]
    + [20160410, 20160410, 20160505, 20160630],
  )
  np.testing.assert_array_equal(graph.rating, [2, 4, 3, 1, 5, 5, 4, 4, 3, 2])
  np.testing.assert_array_equal(graph.user, [0, 1, 1, 2, 2, 0, 1, 0, 0, 2])
  np.testing.assert_array_equal(graph.item, np.arange(10))
  assert graph.user_attrs == {}


def test_attributes_keep_values_on_five_kept_items(tmp_path):
  graph = load_amazon(CATEGORY, str(write_amazon(tmp_path)))
  assert set(graph.item_attrs) == {"brand", "category"}
  brand, category = graph.item_attrs["brand"], graph.item_attrs["category"]
  # Boss is on 5 products but only 4 reviewed ones; C1's brand is empty.
  assert brand.vocab == ("Fender",)
  fender = ["Fender"]
  assert labels(brand) == [fender, [], fender, fender, fender, fender, [], [], [], []]
  # "Effects" is on 4 reviewed products; the <span> entries are dropped.
  assert category.vocab == ("Musical Instruments", "Guitars")
  both, one = ["Musical Instruments", "Guitars"], ["Musical Instruments"]
  assert labels(category) == [both, one, both, both, both, both, one, one, one, both]


def test_an_empty_brand_is_a_brand_value(tmp_path):
  # As in the reference's counts: five reviewed products without a brand
  # share the value "", which passes the threshold like any brand.
  meta = [_meta(f"E{i}", "", ["Musical Instruments"]) for i in range(5)]
  meta += [_meta("F1", "Fender", ["Musical Instruments"])]
  reviews = [("U1", f"E{i}", 4.0, f"01 {i + 1}, 2015") for i in range(5)]
  reviews += [("U2", "F1", 5.0, "02 1, 2015")]
  graph = load_amazon(CATEGORY, str(write_amazon(tmp_path, meta, reviews)))
  brand = graph.item_attrs["brand"]
  assert brand.vocab == ("",)
  assert labels(brand) == [[""]] * 5 + [[]]


def test_cache_is_created_then_reused(tmp_path, parses):
  data = write_amazon(tmp_path / "data")
  cache = tmp_path / "cache"
  first = load_amazon(CATEGORY, str(data), str(cache))
  assert parses == ["amazon-Musical_Instruments"]
  assert sorted(os.listdir(cache)) == ["amazon-Musical_Instruments.npz"]
  second = load_amazon(CATEGORY, str(data), str(cache))
  assert len(parses) == 1
  assert_same_graph(first, second)


def test_cache_defaults_to_the_data_folder(tmp_path, parses):
  load_amazon(CATEGORY, str(write_amazon(tmp_path)))
  load_amazon(CATEGORY, str(tmp_path))
  assert len(parses) == 1
  assert (tmp_path / "amazon-Musical_Instruments.npz").is_file()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_is_rebuilt(tmp_path, parses, damage):
  data = write_amazon(tmp_path)
  reference = load_amazon(CATEGORY, str(data))
  path = tmp_path / "amazon-Musical_Instruments.npz"
  content = path.read_bytes()
  damaged = {
    "garbage": b"not a zip file at all",
    "truncated": content[: len(content) // 2],
    "empty": b"",
  }[damage]
  path.write_bytes(damaged)
  assert_same_graph(load_amazon(CATEGORY, str(data)), reference)
  assert len(parses) == 2
  assert path.read_bytes() != damaged
  load_amazon(CATEGORY, str(data))
  assert len(parses) == 2


def test_cache_is_rebuilt_when_a_source_changes(tmp_path, parses):
  data = write_amazon(tmp_path)
  load_amazon(CATEGORY, str(data))
  write_amazon(tmp_path, reviews=REVIEWS[:-1])
  assert load_amazon(CATEGORY, str(data)).num_edges == 9
  assert len(parses) == 2
  # Same size, new modification time.
  reviews = data / REVIEWS_FILE
  stat = reviews.stat()
  os.utime(reviews, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  load_amazon(CATEGORY, str(data))
  assert len(parses) == 3


def test_failed_cache_write_leaves_no_file(tmp_path, monkeypatch):
  data = write_amazon(tmp_path / "data")
  cache = tmp_path / "cache"

  def savez_then_fail(file, **arrays):
    file.write(b"PK\x03\x04 half of a cache")
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(amazon.np, "savez", savez_then_fail)
  with pytest.warns(UserWarning, match="could not write the cache"):
    graph = load_amazon(CATEGORY, str(data), str(cache))
  assert graph.num_edges == 10
  assert os.listdir(cache) == []


def test_cache_written_for_one_category_is_not_read_for_another(tmp_path, parses):
  data = write_amazon(tmp_path)
  for name in (META_FILE, REVIEWS_FILE):
    other = name.replace(CATEGORY, "Video_Games")
    (data / other).write_bytes((data / name).read_bytes())
  load_amazon(CATEGORY, str(data))
  load_amazon("Video_Games", str(data))
  assert parses == ["amazon-Musical_Instruments", "amazon-Video_Games"]


def _review_line(number: int, **changes) -> str:
  review = _review(*REVIEWS[number - 1])
  review.update(changes)
  return json.dumps({k: v for k, v in review.items() if v is not None})


def _reviews_with(number: int, line: str) -> list[str]:
  lines = [json.dumps(_review(*r)) for r in REVIEWS]
  lines[number - 1] = line
  return lines


def _meta_with(number: int, line: str) -> list[str]:
  lines = [json.dumps(m) for m in META]
  lines[number - 1] = line
  return lines


def _drop(obj: dict, key: str) -> str:
  return json.dumps({k: v for k, v in obj.items() if k != key})


# file -> replacement lines, and what the message must hold.
BAD_INPUT = {
  "malformed JSON": (
    REVIEWS_FILE,
    _reviews_with(3, '{"reviewerID": "U3", "asin": '),
    [f"{REVIEWS_FILE}:3", "malformed JSON (Expecting value at column"],
  ),
  "not an object": (
    META_FILE,
    _meta_with(2, '["A1", "Fender"]'),
    [f"{META_FILE}:2", "expected a JSON object"],
  ),
  "missing reviewerID": (
    REVIEWS_FILE,
    _reviews_with(4, _drop(_review(*REVIEWS[3]), "reviewerID")),
    [f"{REVIEWS_FILE}:4", "missing field 'reviewerID'"],
  ),
  "missing overall": (
    REVIEWS_FILE,
    _reviews_with(2, _drop(_review(*REVIEWS[1]), "overall")),
    [f"{REVIEWS_FILE}:2", "missing field 'overall'"],
  ),
  "missing reviewTime": (
    REVIEWS_FILE,
    _reviews_with(5, _drop(_review(*REVIEWS[4]), "reviewTime")),
    [f"{REVIEWS_FILE}:5", "missing field 'reviewTime'"],
  ),
  "missing brand": (
    META_FILE,
    _meta_with(3, _drop(META[2], "brand")),
    [f"{META_FILE}:3", "missing field 'brand'"],
  ),
  "missing category": (
    META_FILE,
    _meta_with(1, _drop(META[0], "category")),
    [f"{META_FILE}:1", "missing field 'category'"],
  ),
  "missing asin": (
    META_FILE,
    _meta_with(4, _drop(META[3], "asin")),
    [f"{META_FILE}:4", "missing field 'asin'"],
  ),
  "brand not a string": (
    META_FILE,
    _meta_with(2, json.dumps({**META[1], "brand": ["Fender"]})),
    [f"{META_FILE}:2", "field 'brand' is [\"Fender\"]; expected a string"],
  ),
  "category not a list": (
    META_FILE,
    _meta_with(2, json.dumps({**META[1], "category": "Guitars"})),
    [f"{META_FILE}:2", "expected a list"],
  ),
  "category of non-strings": (
    META_FILE,
    _meta_with(2, json.dumps({**META[1], "category": ["Guitars", 7]})),
    [f"{META_FILE}:2", "list of strings"],
  ),
  "non-numeric rating": (
    REVIEWS_FILE,
    _reviews_with(6, _review_line(6, overall="five")),
    [f"{REVIEWS_FILE}:6", "rating 'overall' is \"five\""],
  ),
  "boolean rating": (
    REVIEWS_FILE,
    _reviews_with(6, _review_line(6, overall=True)),
    [f"{REVIEWS_FILE}:6", "rating 'overall' is true"],
  ),
  "rating above 5": (
    REVIEWS_FILE,
    _reviews_with(1, _review_line(1, overall=5.5)),
    [f"{REVIEWS_FILE}:1", "expected a number in [1, 5]"],
  ),
  "rating 0": (
    REVIEWS_FILE,
    _reviews_with(7, _review_line(7, overall=0)),
    [f"{REVIEWS_FILE}:7", "rating 'overall' is 0"],
  ),
  "NaN rating": (
    REVIEWS_FILE,
    _reviews_with(7, _review_line(7, overall=float("nan"))),
    [f"{REVIEWS_FILE}:7", "rating 'overall' is NaN"],
  ),
  "ISO reviewTime": (
    REVIEWS_FILE,
    _reviews_with(8, _review_line(8, reviewTime="2016-04-10")),
    [f"{REVIEWS_FILE}:8", "reviewTime '2016-04-10' is not a date"],
  ),
  "month 13": (
    REVIEWS_FILE,
    _reviews_with(8, _review_line(8, reviewTime="13 10, 2016")),
    [f"{REVIEWS_FILE}:8", "'13 10, 2016'"],
  ),
  "February 30": (
    REVIEWS_FILE,
    _reviews_with(9, _review_line(9, reviewTime="02 30, 2016")),
    [f"{REVIEWS_FILE}:9", "'02 30, 2016'"],
  ),
  "reviewTime not a string": (
    REVIEWS_FILE,
    _reviews_with(9, _review_line(9, reviewTime=20160230)),
    [f"{REVIEWS_FILE}:9", "field 'reviewTime' is 20160230"],
  ),
  "no reviews left": (
    REVIEWS_FILE,
    [json.dumps(_review("U1", "Z9", 4.0, "01 1, 2015"))],
    [REVIEWS_FILE, "no reviews left", "none of its 1 reviews", META_FILE],
  ),
  "no reviews at all": (
    REVIEWS_FILE,
    [],
    [REVIEWS_FILE, "no reviews;"],
  ),
  "empty metadata": (META_FILE, [], [META_FILE, "no products"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_lines_name_file_and_line(tmp_path, case):
  name, lines, expected = BAD_INPUT[case]
  data = write_amazon(tmp_path)
  write_gz_lines(data / name, lines)
  with pytest.raises(InputError) as info:
    load_amazon(CATEGORY, str(data))
  for text in expected:
    assert text in str(info.value)


def _truncate(content: bytes) -> bytes:
  return content[: len(content) - 12]


def _flip_middle(content: bytes) -> bytes:
  middle = len(content) // 2
  return content[:middle] + bytes([content[middle] ^ 0xFF]) + content[middle + 1 :]


@pytest.mark.parametrize("name", [META_FILE, REVIEWS_FILE])
@pytest.mark.parametrize(
  "damage",
  [_truncate, _flip_middle, lambda content: b"plain text, not gzip\n"],
  ids=["truncated", "corrupt", "not-gzip"],
)
def test_damaged_gzip(tmp_path, name, damage):
  data = write_amazon(tmp_path)
  path = data / name
  path.write_bytes(damage(path.read_bytes()))
  with pytest.raises(InputError) as info:
    load_amazon(CATEGORY, str(data))
  message = str(info.value)
  assert f"{name}:" in message
  assert "gzip" in message or "malformed JSON" in message


def test_truncated_gzip_names_the_line(tmp_path):
  data = write_amazon(tmp_path)
  path = data / REVIEWS_FILE
  path.write_bytes(_truncate(path.read_bytes()))
  with pytest.raises(InputError, match=rf"{REVIEWS_FILE}:\d+: truncated or corrupt"):
    load_amazon(CATEGORY, str(data))


@pytest.mark.parametrize("name", [META_FILE, REVIEWS_FILE])
def test_missing_file(tmp_path, name):
  data = write_amazon(tmp_path)
  (data / name).unlink()
  with pytest.raises(InputError) as info:
    load_amazon(CATEGORY, str(data))
  assert name in str(info.value) and "no such file" in str(info.value)
  assert META_FILE in str(info.value) and REVIEWS_FILE in str(info.value)


@pytest.mark.parametrize("category", ["", "../Musical_Instruments", "a/b", "1x"])
def test_bad_category_name(tmp_path, category):
  with pytest.raises(InputError, match="Amazon category"):
    load_amazon(category, str(tmp_path))
