"""The RecBole atomic reader on hand-made datasets of two shapes, and ml-100k.

Every dataset is written by the test in RecBole's atomic format: tab-separated
UTF-8, a ``name:type`` header, space-separated ``token_seq`` fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bcjax.data.datasets import load_dataset
from bcjax.data.split import split_version
from bcjax.errors import InputError
from bcjax.fitting.tasks import available_tasks, build_task
from tests.test_movielens import SHARED_ML100K, labels

NUM_ITEMS = 12
NUM_USERS = 40
ITEM_HEADER = [
  "item_id:token",
  "title:token_seq",
  "price:float",
  "sales_type:token",
  "categories:token_seq",
  "brand:token",
]
USER_HEADER = ["user_id:token", "age:float", "gender:token", "country:token"]
USER_HEADER += ["zip_code:token"]
COUNTRIES = ("US", "DE", "JP")


def write_file(path: Path, header: list[str], rows: list[list]) -> Path:
  """One atomic file: the header line, then one tab-separated line per row."""
  lines = ["\t".join(header)] + ["\t".join(map(str, row)) for row in rows]
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path


def _brand(i: int) -> str:
  # Fender on 6 items, Yamaha on 5, Roland on 1: below the threshold of 5.
  return "Fender" if i < 6 else "Yamaha" if i < 11 else "Roland"


def _categories(i: int) -> str:
  extra = " Theremins" if i == NUM_ITEMS - 1 else ""
  return f"Instruments {'Guitars' if i % 2 == 0 else 'Keyboards'}{extra}"


def amazon_rows() -> list[tuple[str, str, int, int]]:
  """(user, item, rating, timestamp) in file order; time is not file order."""
  rows = []
  for u in range(NUM_USERS):
    for j in range(3):
      t = 1_400_000_000 + ((u * 7 + j * 13) % 97) * 3600
      rows.append((f"A{u:03d}", f"B{(u + 5 * j) % NUM_ITEMS:02d}", 1 + (u + j) % 5, t))
  return rows


def write_amazon_like(folder: Path, stem: str = "amz", with_user: bool = True) -> Path:
  """An Amazon-like dataset: brand and categories, as RecBole's Amazon files."""
  folder.mkdir(parents=True, exist_ok=True)
  header = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
  write_file(folder / f"{stem}.inter", header, amazon_rows())
  items = [
    [f"B{i:02d}", f"Model{i} Deluxe Edition", f"{10 + i}.99", "Musical Instruments"]
    + [_categories(i), _brand(i)]
    for i in range(NUM_ITEMS)
  ]
  write_file(folder / f"{stem}.item", ITEM_HEADER, items)
  if with_user:
    users = [
      [f"A{u:03d}", 20 + u, "MF"[u % 2], COUNTRIES[u % 3], f"{10000 + 37 * u}"]
      for u in range(NUM_USERS)
    ]
    write_file(folder / f"{stem}.user", USER_HEADER, users)
  return folder


# A listening log without a .user file; columns in another order than
# RecBole's usual one, an extra column, and timestamps typed float.
PLAYS_HEADER = [
  "timestamp:float",
  "item_id:token",
  "user_id:token",
  "rating:float",
  "comment:token_seq",
]
PLAYS = [  # (timestamp, item, user, rating)
  ("300.0", "s03", "carol", 4),
  ("100", "s01", "bob", 5),
  ("200", "s02", "alice", 2),
  ("100", "s02", "carol", 3),  # ties with bob's line above, and stays after it
] + [(str(400 + i), f"s{i:02d}", "dave", 1 + i % 5) for i in range(4, 12)]


def _artist(i: int) -> str:
  return "Abba" if i % 2 else "Bach"


def _tags(i: int) -> str:
  # Of the rated songs s01..s11: rock on 5, pop on 6, live on 1 (dropped).
  return ("rock" if i < 6 else "pop") + (" live" if i == 1 else "")


def write_plays(folder: Path) -> Path:
  folder.mkdir(parents=True, exist_ok=True)
  rows = [[t, item, user, r, "nice tune"] for t, item, user, r in PLAYS]
  write_file(folder / "plays.inter", PLAYS_HEADER, rows)
  items = [[f"s{i:02d}", _artist(i), _tags(i), f"Song {i}"] for i in range(12)]
  header = ["item_id:token", "artist:token", "tags:token_seq", "name:token_seq"]
  write_file(folder / "plays.item", header, items)
  return folder


def _item_order(rows) -> list[str]:
  """Raw item keys by first appearance in time order (a stable sort)."""
  ordered = sorted(rows, key=lambda row: row[3])
  return list(dict.fromkeys(item for _, item, _, _ in ordered))


def test_amazon_like_brand_and_categories(tmp_path):
  graph = load_dataset("recbole", str(write_amazon_like(tmp_path)))
  assert graph.name == "recbole-amz"
  assert (graph.num_edges, graph.num_users, graph.num_items) == (120, 40, 12)
  # title (14 distinct words), sales_type (one value) and price (a float) are
  # not attributes; the two that repeat are, in header order.
  assert list(graph.item_attrs) == ["categories", "brand"]
  order = [int(key[1:]) for key in _item_order(amazon_rows())]
  brands = labels(graph.item_attrs["brand"])
  assert graph.item_attrs["brand"].vocab == ("Fender", "Yamaha")
  assert brands == [[] if i == 11 else [_brand(i)] for i in order]
  categories = labels(graph.item_attrs["categories"])
  assert graph.item_attrs["categories"].vocab == ("Instruments", "Guitars", "Keyboards")
  assert categories == [_categories(i).split()[:2] for i in order]


def test_the_timestamp_orders_the_log(tmp_path):
  graph = load_dataset("recbole", str(write_amazon_like(tmp_path)))
  rows = amazon_rows()
  np.testing.assert_array_equal(graph.timestamp, sorted(t for *_, t in rows))
  assert np.all(np.diff(graph.timestamp) >= 0)
  ordered = sorted(rows, key=lambda row: row[3])
  np.testing.assert_array_equal(graph.rating, [r for _, _, r, _ in ordered])


def test_user_token_fields_with_few_classes_become_attributes_and_tasks(tmp_path):
  graph = load_dataset("recbole-amz", str(write_amazon_like(tmp_path)))
  # zip_code has 40 classes (> 30), age is a float: neither is an attribute.
  assert list(graph.user_attrs) == ["gender", "country"]
  users = list(dict.fromkeys(u for u, *_ in sorted(amazon_rows(), key=lambda r: r[3])))
  countries = labels(graph.user_attrs["country"])
  assert countries == [[COUNTRIES[int(u[1:]) % 3]] for u in users]
  tasks = available_tasks(graph)
  assert "user-gender" in tasks and "user-country" in tasks
  assert not any("zip" in task or "age" in task for task in tasks)
  splits = [split_version(graph, k) for k in range(2)]
  task = build_task("user-country", graph, splits)
  assert (task.input, task.kind, task.num_outputs) == ("user", "multiclass", 3)
  vocab = graph.user_attrs["country"].vocab
  expected = [COUNTRIES.index(vocab[v]) for v in range(3)]
  for user, label in zip(task.train.user, task.train.labels):
    assert expected[label] == int(users[user][1:]) % 3


def test_without_a_user_file(tmp_path):
  graph = load_dataset("recbole", str(write_plays(tmp_path)))
  assert graph.name == "recbole-plays" and graph.user_attrs == {}
  # Time order, ties in file order: bob (100), carol (100), alice (200), ...
  np.testing.assert_array_equal(graph.timestamp[:4], [100, 100, 200, 300])
  np.testing.assert_array_equal(graph.user[:4], [0, 1, 2, 1])
  np.testing.assert_array_equal(graph.rating[:4], [5, 3, 2, 4])
  assert list(graph.item_attrs) == ["artist", "tags"]
  assert graph.item_attrs["tags"].vocab == ("pop", "rock")
  # Items by first appearance: s01, s02, s03, then dave's s04..s11; s00 has
  # no rating and is dropped.
  assert graph.num_items == 11
  assert labels(graph.item_attrs["tags"]) == [["rock"]] * 5 + [["pop"]] * 6
  assert labels(graph.item_attrs["artist"])[:2] == [["Abba"], ["Bach"]]
  assert "user-gender" not in available_tasks(graph)


# A log as RecBole writes one with fractional times: string ids, a
# token_seq column, no .user file. (time, user, item, rating) in file order.
FRACTIONAL = [
  ("1464220002.5", "u-ana", "i/a", 4),
  ("1464220001.25", "u-bo", "i/b", 5),
  ("1464220002.5", "u-cy", "i/c", 3),  # ties with ana's line, stays after it
  ("1464220002", "u-bo", "i/a", 2),  # a whole time among fractional ones
  ("1464220001.75", "u-ana", "i/d", 1),
] + [
  (f"{1464220003 + i}.{i}", ("u-ana", "u-bo", "u-cy")[i % 3], f"i/{chr(101 + i)}", 3)
  for i in range(8)
]


def test_fractional_timestamps_order_the_log_as_written(tmp_path):
  header = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
  header.append("tags:token_seq")
  rows = [[u, i, r, t, "late night"] for t, u, i, r in FRACTIONAL]
  write_file(tmp_path / "sessions.inter", header, rows)
  items = sorted({i for _, _, i, _ in FRACTIONAL})
  write_file(
    tmp_path / "sessions.item",
    ["item_id:token", "genre:token_seq"],
    [[i, "jazz blues" if n % 2 else "rock"] for n, i in enumerate(items)],
  )
  graph = load_dataset("recbole", str(tmp_path))
  assert graph.name == "recbole-sessions" and graph.user_attrs == {}
  # Held as float64 seconds, in time order, ties in file order.
  assert graph.timestamp.dtype == np.float64
  times = [float(t) for t, *_ in FRACTIONAL]
  order = sorted(range(len(FRACTIONAL)), key=lambda n: times[n])
  np.testing.assert_array_equal(graph.timestamp, [times[n] for n in order])
  np.testing.assert_array_equal(
    graph.timestamp[:5],
    [1464220001.25, 1464220001.75, 1464220002.0, 1464220002.5, 1464220002.5],
  )
  # bo, ana, bo, ana, cy: ids by first appearance in time order.
  np.testing.assert_array_equal(graph.user[:5], [0, 1, 0, 1, 2])
  np.testing.assert_array_equal(graph.rating[:5], [5, 1, 2, 4, 3])
  assert list(graph.item_attrs) == ["genre"]
  # The slices are fractions of the log, as for whole times.
  split = split_version(graph, 0)
  assert split.tau_train == 0.5 and graph.num_edges_at(0.5) == 7
  assert graph.slice(0.5).timestamp.dtype == np.float64


def test_whole_timestamps_stay_int64(tmp_path):
  graph = load_dataset("recbole", str(write_plays(tmp_path)))  # "300.0", "100"
  assert graph.timestamp.dtype == np.int64
  with_fraction = write_plays(tmp_path / "fraction")
  _replace(with_fraction / "plays.inter", 2, "300.5\ts03\tcarol\t4\tnice tune")
  assert load_dataset("recbole", str(with_fraction)).timestamp.dtype == np.float64


def test_item_fields_choose_the_attributes(tmp_path):
  folder = str(write_amazon_like(tmp_path))
  graph = load_dataset("recbole", folder, item_fields="brand, title")
  assert list(graph.item_attrs) == ["brand", "title"]
  # The threshold of 5 items still holds: only Deluxe and Edition stay.
  assert graph.item_attrs["title"].vocab == ("Deluxe", "Edition")
  with pytest.raises(InputError) as info:
    load_dataset("recbole", folder, item_fields=["price"])
  message = str(info.value)
  assert "amz.item: item field 'price' is not a token or token_seq field" in message
  assert "expected one of title, sales_type, categories, brand" in message


def test_ml100k_through_the_generic_reader():
  if not SHARED_ML100K.is_dir():
    pytest.skip(f"no real MovieLens 100K copy at {SHARED_ML100K}")
  graph = load_dataset("recbole", str(SHARED_ML100K))
  reference = load_dataset("ml-100k", str(SHARED_ML100K))
  # movie_title's words are near-unique (2,652 for 1,682 movies): no attribute.
  assert list(graph.item_attrs) == ["release_year", "class"]
  # 61 ages and 795 zip codes are more than 30 classes.
  assert list(graph.user_attrs) == ["gender", "occupation"]
  for field in ("user", "item", "timestamp", "rating"):
    np.testing.assert_array_equal(getattr(graph, field), getattr(reference, field))


def test_ml100k_stays_as_it_was():
  if not SHARED_ML100K.is_dir():
    pytest.skip(f"no real MovieLens 100K copy at {SHARED_ML100K}")
  graph = load_dataset("ml-100k", str(SHARED_ML100K))
  assert list(graph.item_attrs) == ["genre", "year"]
  assert list(graph.user_attrs) == ["age", "gender", "occupation"]
  # The fingerprint of the graph the ml-100k reader gave before RecBole support.
  assert graph.fingerprint() == "5c2b41dbf52ae873"


def _replace(path: Path, number: int, text: str) -> None:
  lines = path.read_text(encoding="utf-8").split("\n")
  lines[number - 1] = text
  path.write_text("\n".join(lines), encoding="utf-8")


INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
BAD_INPUT = {
  "unknown type": (
    "amz.inter",
    lambda p: _replace(p, 1, INTER_HEADER.replace("rating:float", "rating:double")),
    [
      "amz.inter:1: header field 3 'rating:double' has unknown type 'double'",
      "one of token, token_seq, float, float_seq",
    ],
  ),
  "no type": (
    "amz.item",
    lambda p: _replace(p, 1, "\t".join(ITEM_HEADER).replace("brand:token", "brand")),
    ["amz.item:1: header field 6 'brand' has no type"],
  ),
  "missing timestamp column": (
    "amz.inter",
    lambda p: _replace(p, 1, INTER_HEADER.replace("timestamp", "time")),
    ["amz.inter:1: the header lacks column timestamp (the timestamp orders the log)"],
  ),
  "missing timestamp value": (
    "amz.inter",
    lambda p: _replace(p, 3, "A000\tB05\t2\t"),
    ["amz.inter:3: missing timestamp; expected unix seconds"],
  ),
  "infinite timestamp": (
    "amz.inter",
    lambda p: _replace(p, 3, "A000\tB05\t2\tinf"),
    ["amz.inter:3: timestamp 'inf' is not finite; expected unix seconds"],
  ),
  "non-numeric timestamp": (
    "amz.inter",
    lambda p: _replace(p, 3, "A000\tB05\t2\tmonday"),
    ["amz.inter:3: timestamp 'monday' is not a number; expected unix seconds"],
  ),
  "ragged interaction": (
    "amz.inter",
    lambda p: _replace(p, 4, "A000\tB10\t3"),
    ["amz.inter:4: expected 4 tab-separated fields", "got 3"],
  ),
  "ragged item": (
    "amz.item",
    lambda p: _replace(p, 5, "B03\tModel3 Deluxe Edition\t13.99\tFender"),
    ["amz.item:5: expected 6 tab-separated fields", "as in the header, got 4"],
  ),
  "ragged user": (
    "amz.user",
    lambda p: _replace(p, 2, "A000\t20\tM\tUS\t10000\textra"),
    ["amz.user:2: expected 5 tab-separated fields", "got 6"],
  ),
  "infinite rating": (
    "amz.inter",
    lambda p: _replace(p, 2, "A000\tB00\tinf\t1400000000"),
    ["amz.inter:2: rating 'inf' is not finite; expected a finite number"],
  ),
  "duplicate item": (
    "amz.item",
    lambda p: _replace(p, 3, p.read_text().split("\n")[1]),
    ["amz.item:3: duplicate item_id 'B00' (first on line 2)"],
  ),
  "missing item file": (
    "amz.item",
    lambda p: p.unlink(),
    ["missing amz.item; expected the RecBole atomic files"],
  ),
  "no attribute field": (
    "amz.item",
    lambda p: write_file(
      p, ["item_id:token", "brand:token"], [[f"B{i:02d}", i] for i in range(12)]
    ),
    ["amz.item: no item field is an attribute (token or token_seq fields brand"],
  ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_naming_file_and_line(tmp_path, case):
  name, change, expected = BAD_INPUT[case]
  folder = write_amazon_like(tmp_path)
  change(folder / name)
  with pytest.raises(InputError) as info:
    load_dataset("recbole", str(folder))
  message = str(info.value)
  assert len(message.splitlines()) == 1
  for text in expected:
    assert text in message


def test_the_dataset_folder_must_hold_one_inter_file(tmp_path):
  with pytest.raises(InputError, match=r"expected exactly one NAME\.inter .*none"):
    load_dataset("recbole", str(tmp_path))
  write_amazon_like(tmp_path, stem="amz")
  write_plays(tmp_path)
  with pytest.raises(InputError, match=r"found amz\.inter, plays\.inter"):
    load_dataset("recbole", str(tmp_path))
  assert load_dataset("recbole-plays", str(tmp_path)).name == "recbole-plays"
  with pytest.raises(InputError, match=r"missing nope\.inter"):
    load_dataset("recbole-nope", str(tmp_path))
