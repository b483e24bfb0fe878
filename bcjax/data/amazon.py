"""Amazon Review Data (2018), one category, parsed once into a cached .npz.

The preprocessing is the paper's: reviews of products that have metadata,
dated yyyymmdd from ``reviewTime``, and brand and category attributes that
keep only values seen on at least five of the reviewed products.
"""

from __future__ import annotations

import datetime
import gzip
import json
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bcjax.data.graph import DynamicGraph, RaggedAttribute, from_raw_log
from bcjax.errors import InputError
from bcjax.storage.atomic_files import atomic_open

ITEM_ATTRS = ("brand", "category")
MIN_COUNT = 5
# Bump when the parsing changes, so that caches of the old parse are rebuilt.
_CACHE_FORMAT = 2  # 2: an empty brand is a brand value
_CATEGORY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_REVIEW_TIME = re.compile(r"(\d{1,2}) (\d{1,2}), (\d{4})")


def load_amazon(
  category: str, data_dir: str, cache_dir: str | None = None
) -> DynamicGraph:
  """Loads one category of the Amazon Review Data (2018).

  Reads ``meta_<category>.json.gz`` and ``<category>_5.json.gz`` from
  ``data_dir`` the first time, and a cache ``amazon-<category>.npz`` in
  ``cache_dir`` after that, for as long as the two files keep their size and
  modification time.

  Args:
    category: the category as the file names spell it, e.g.
      ``"Musical_Instruments"``.
    data_dir: the folder that holds the two files.
    cache_dir: where the cache lives; ``data_dir`` when None.

  Returns:
    The graph named ``"amazon-<category>"``: users are reviewers, items are
    products, timestamps are yyyymmdd integers, ratings are the stars; item
    attributes ``"brand"`` (at most one per item; the empty brand is a value
    like any other) and ``"category"`` (several).

  Raises:
    InputError: a file is missing, truncated or malformed; the message names
      the file, the line and what was expected.
  """
  if not _CATEGORY.fullmatch(category):
    raise InputError(
      f"Amazon category {category!r} is not a file-name stem like "
      "Musical_Instruments (letters, digits and underscores)"
    )
  name = f"amazon-{category}"
  folder = Path(data_dir)
  meta_path = folder / f"meta_{category}.json.gz"
  reviews_path = folder / f"{category}_5.json.gz"
  key = _source_key(name, meta_path, reviews_path)
  cache_path = Path(data_dir if cache_dir is None else cache_dir) / f"{name}.npz"
  graph = _read_cache(cache_path, key, name)
  if graph is None:
    graph = _parse(meta_path, reviews_path, name)
    _write_cache(cache_path, key, graph)
  return graph


def _source_key(name: str, *paths: Path) -> str:
  """What the cache must match: the format and each source's size and mtime."""
  parts = [f"format={_CACHE_FORMAT}", name]
  for path in paths:
    try:
      stat = path.stat()
    except OSError:
      raise InputError(
        f"{path}: no such file; {name} needs {' and '.join(p.name for p in paths)} "
        f"in {path.parent}"
      ) from None
    parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
  return "|".join(parts)


def _parse(meta_path: Path, reviews_path: Path, name: str) -> DynamicGraph:
  """Parses the two source files into the graph (the slow path)."""
  meta = {}
  for number, obj in _json_lines(meta_path):
    asin = _field(meta_path, number, obj, "asin", str)
    brand = _field(meta_path, number, obj, "brand", str)
    categories = _field(meta_path, number, obj, "category", list)
    if not all(isinstance(c, str) for c in categories):
      raise InputError(
        f"{meta_path}:{number}: field 'category' holds a non-string; expected a "
        "list of strings"
      )
    # Entries holding "</span>" are HTML debris of the crawl, not categories.
    categories = [c for c in categories if "</span>" not in c]
    # The files repeat some products; the last line wins, as in the paper.
    # An empty brand is a value of its own, as in the reference's counts: the
    # brandless products share one learned "no brand" embedding.
    meta[asin] = ([brand], categories)
  if not meta:
    raise InputError(f"{meta_path}: no products; expected one JSON object a line")

  users, items, times, ratings = [], [], [], []
  num_reviews = 0
  for number, obj in _json_lines(reviews_path):
    num_reviews += 1
    user = _field(reviews_path, number, obj, "reviewerID", str)
    asin = _field(reviews_path, number, obj, "asin", str)
    rating = _rating(reviews_path, number, obj)
    time = _yyyymmdd(reviews_path, number, obj)
    if asin in meta:
      users.append(user)
      items.append(asin)
      times.append(time)
      ratings.append(rating)
  if not num_reviews:
    raise InputError(f"{reviews_path}: no reviews; expected one JSON object a line")
  if not users:
    raise InputError(
      f"{reviews_path}: no reviews left: none of its {num_reviews} reviews is of "
      f"a product listed in {meta_path.name}"
    )

  user, item, timestamp, rating, _, item_order = from_raw_log(
    users, items, times, ratings, name=name
  )
  brands, categories = zip(*(meta[asin] for asin in item_order))
  return DynamicGraph(
    user=user,
    item=item,
    timestamp=timestamp,
    rating=rating,
    item_attrs={
      "brand": RaggedAttribute.from_labels(brands, min_count=MIN_COUNT),
      "category": RaggedAttribute.from_labels(categories, min_count=MIN_COUNT),
    },
    name=name,
  )


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
  """Yields ``(1-based line number, object)`` for each line of a .json.gz."""
  number = 0
  try:
    with gzip.open(path, "rb") as f:
      for number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          obj = json.loads(line.strip())
        except ValueError as e:
          # The decoder's own "line 1" would only confuse next to ours.
          detail = (
            f"{e.msg} at column {e.colno}"
            if isinstance(e, json.JSONDecodeError)
            else str(e)
          )
          raise InputError(
            f"{path}:{number}: malformed JSON ({detail}); expected one JSON "
            "object a line"
          ) from None
        if not isinstance(obj, dict):
          raise InputError(
            f"{path}:{number}: a JSON {type(obj).__name__}; expected a JSON object"
          )
        yield number, obj
  except (OSError, EOFError, zlib.error) as e:
    raise InputError(
      f"{path}:{number + 1}: truncated or corrupt gzip data ({e}); expected a "
      "whole gzip file of JSON lines"
    ) from None


def _field(path: Path, number: int, obj: dict, key: str, kind: type):
  if key not in obj:
    raise InputError(f"{path}:{number}: missing field {key!r}")
  value = obj[key]
  if not isinstance(value, kind):
    raise InputError(
      f"{path}:{number}: field {key!r} is {_shown(value)}; expected a "
      f"{'string' if kind is str else 'list'}"
    )
  return value


def _shown(value) -> str:
  text = json.dumps(value)
  return text if len(text) <= 40 else f"{text[:37]}..."


def _rating(path: Path, number: int, obj: dict) -> float:
  if "overall" not in obj:
    raise InputError(f"{path}:{number}: missing field 'overall'")
  value = obj["overall"]
  # JSON true/false arrive as bool, which isinstance counts as int.
  numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
  if not numeric or not 1.0 <= value <= 5.0:  # the range test fails for NaN
    raise InputError(
      f"{path}:{number}: rating 'overall' is {_shown(value)}; expected a number "
      "in [1, 5]"
    )
  return float(value)


def _yyyymmdd(path: Path, number: int, obj: dict) -> int:
  """The review date as yyyymmdd, from a ``reviewTime`` like "10 17, 2015"."""
  text = _field(path, number, obj, "reviewTime", str)
  match = _REVIEW_TIME.fullmatch(text.strip())
  if match is not None:
    month, day, year = map(int, match.groups())
    if _is_date(year, month, day):
      return year * 10000 + month * 100 + day
  raise InputError(
    f"{path}:{number}: reviewTime {text!r} is not a date; expected "
    "'month day, year' like '10 17, 2015'"
  )


def _is_date(year: int, month: int, day: int) -> bool:
  try:
    datetime.date(year, month, day)
  except ValueError:
    return False
  return True


def _read_cache(path: Path, key: str, name: str) -> DynamicGraph | None:
  """The cached graph, or None when there is none or it is stale or corrupt."""
  try:
    with np.load(path, allow_pickle=False) as cache:
      if str(cache["key"]) != key:
        return None
      return DynamicGraph(
        user=cache["user"],
        item=cache["item"],
        timestamp=cache["timestamp"],
        rating=cache["rating"],
        item_attrs={
          kind: RaggedAttribute(
            cache[f"{kind}_values"],
            cache[f"{kind}_offsets"],
            tuple(cache[f"{kind}_vocab"].tolist()),
          )
          for kind in ITEM_ATTRS
        },
        name=name,
      )
  except FileNotFoundError:
    return None
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
    # A damaged cache costs only a parse: the source files are the truth.
    return None


def _write_cache(path: Path, key: str, graph: DynamicGraph) -> None:
  arrays = {
    "key": np.array(key),
    "user": graph.user,
    "item": graph.item,
    "timestamp": graph.timestamp,
    "rating": graph.rating,
  }
  for kind, attr in graph.item_attrs.items():
    arrays[f"{kind}_values"] = attr.values
    arrays[f"{kind}_offsets"] = attr.offsets
    arrays[f"{kind}_vocab"] = np.array(attr.vocab, dtype=str)
  try:
    with atomic_open(str(path), "wb") as f:
      np.savez(f, **arrays)
  except OSError as e:
    # The graph is good; a cache that cannot be written only costs time later.
    warnings.warn(
      f"could not write the cache {path} ({e}); the next load parses again",
      stacklevel=3,
    )
