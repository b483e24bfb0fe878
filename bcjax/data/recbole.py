"""Any dataset in RecBole's atomic-file format, as a :class:`DynamicGraph`.

A dataset ``NAME`` is a folder with ``NAME.inter`` (the interactions),
``NAME.item`` (the items' fields) and, optionally, ``NAME.user``. Each file is
tab-separated text whose first line names the columns as ``name:type``, the
type one of ``token``, ``token_seq`` (space-separated tokens), ``float`` or
``float_seq``.

* ``user_id``, ``item_id``, ``rating`` and ``timestamp`` of the ``.inter``
  file give the log; the timestamp orders it, ties in file order. RecBole
  types the timestamp float: fractional times (``1464220002.5``) are read
  as they are (:func:`bcjax.data.graph.time_array` says how they are held).
* Item ``token`` / ``token_seq`` fields become the item attribute bags
  (brand, categories, genres): the model has no id embeddings and sees an
  item only through them. A field qualifies when its values repeat, unlike
  ids and titles: at least 2 distinct values, fewer than half as many
  distinct values as items (both among the rated items), and only the values
  that at least :data:`MIN_ITEM_COUNT` items carry are kept (the Amazon
  threshold), of which there must be one.
* User ``token`` fields with 2 to :data:`MAX_USER_CLASSES` classes become
  user attributes, and with them attribute tasks; a zip code does not.

:class:`AtomicSpec` overrides these rules per dataset: MovieLens 100K is this
reader with its own field names and checks (:mod:`bcjax.data.movielens`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bcjax.data import atomic_tables
from bcjax.data.atomic_tables import Log, Side
from bcjax.data.graph import DynamicGraph, RaggedAttribute, from_raw_log
from bcjax.errors import InputError

# As many items must carry a value for it to stay, as in the Amazon loader.
MIN_ITEM_COUNT = 5
# A user field with more classes than this is an id, a zip code or a free
# text, not a class a consumer could learn to predict.
MAX_USER_CLASSES = 30
_LABEL_TYPES = ("token", "token_seq")


@dataclasses.dataclass(frozen=True)
class AtomicSpec:
  """How a dataset's fields become attributes, and what its files must hold.

  Attributes:
    item_fields: item field -> attribute kind, in order; None chooses the
      fields by the rule of the module docstring.
    user_fields: user field -> attribute kind; None chooses by the rule.
    min_item_count: item attribute values carried by fewer items are dropped.
    rating_bounds: the inclusive range of a rating; None for any finite one.
    every_node_listed: whether a user or item of the log that the side file
      lacks is an error (else it has no attribute values).
    whole_timestamps: whether a fractional timestamp is an error (else it is
      read as it is).
    normalize: attribute kind -> a function from a node's labels to the
      labels kept, in order.
  """

  item_fields: Mapping[str, str] | None = None
  user_fields: Mapping[str, str] | None = None
  min_item_count: int = MIN_ITEM_COUNT
  rating_bounds: tuple[float, float] | None = None
  every_node_listed: bool = False
  whole_timestamps: bool = False
  normalize: Mapping[str, Callable[[Sequence[str]], Sequence[str]]] = dataclasses.field(
    default_factory=dict
  )


def find_stem(data_dir: str) -> str:
  """The ``NAME`` of the one ``NAME.inter`` file in ``data_dir``.

  Raises:
    InputError: the folder holds no ``.inter`` file, or several.
  """
  folder = Path(data_dir)
  stems = sorted(path.stem for path in folder.glob("*.inter") if path.is_file())
  if len(stems) != 1:
    found = f"found {', '.join(s + '.inter' for s in stems)}" if stems else "none"
    raise InputError(
      f"{folder}: expected exactly one NAME.inter file of a RecBole atomic "
      f"dataset ({found}); name the dataset as recbole-NAME to choose"
    )
  return stems[0]


def load_recbole(
  data_dir: str,
  stem: str | None = None,
  item_fields: Sequence[str] | None = None,
) -> DynamicGraph:
  """Loads the RecBole atomic dataset ``stem`` from ``data_dir``.

  Args:
    data_dir: the folder of ``STEM.inter``, ``STEM.item`` and, optionally,
      ``STEM.user``.
    stem: the file names' stem; None for the folder's one ``.inter`` file.
    item_fields: the item fields to use as attributes; None or empty to
      choose them by the rule of the module docstring.

  Returns:
    The graph named ``recbole-STEM``.

  Raises:
    InputError: a file is missing or malformed, or a chosen field is not an
      item token field; the message names the file, line or field.
  """
  stem = stem or find_stem(data_dir)
  fields = {field: field for field in item_fields} if item_fields else None
  return load_atomic(data_dir, stem, f"recbole-{stem}", AtomicSpec(item_fields=fields))


def load_atomic(data_dir: str, stem: str, name: str, spec: AtomicSpec) -> DynamicGraph:
  """Loads ``stem``'s atomic files under ``spec``; see :func:`load_recbole`."""
  folder = Path(data_dir)
  paths = {ext: folder / f"{stem}.{ext}" for ext in ("inter", "item", "user")}
  if not folder.is_dir():
    raise InputError(f"{folder}: no such folder; expected {stem}.inter, {stem}.item")
  for ext in ("inter", "item"):
    if not paths[ext].is_file():
      raise InputError(
        f"{folder}: missing {stem}.{ext}; expected the RecBole atomic files "
        f"{stem}.inter, {stem}.item and, optionally, {stem}.user"
      )
  log = atomic_tables.read_log(
    paths["inter"], spec.rating_bounds, spec.whole_timestamps
  )
  items = atomic_tables.read_side(paths["item"], "item_id", "one row per item")
  users = (
    atomic_tables.read_side(paths["user"], "user_id", "one row per user")
    if paths["user"].is_file()
    else None
  )
  return build_graph(name, log, items, users, spec)


def build_graph(
  name: str, log: Log, items: Side, users: Side | None, spec: AtomicSpec
) -> DynamicGraph:
  """The graph of ``log``, with the attributes ``spec`` picks from the sides.

  Args:
    name: the graph's name.
    log: the interactions, in file order.
    items: the item fields.
    users: the user fields, or None where the dataset has none.
    spec: which fields become attributes, and how.

  Returns:
    The time-sorted graph.

  Raises:
    InputError: a node of the log is not listed where ``spec`` requires it,
      or the chosen item fields are unusable.
  """
  sides = [(log.items, items, "item")]
  if users is not None:
    sides.append((log.users, users, "user"))
  if spec.every_node_listed:
    for keys, side, what in sides:
      for number, key in zip(log.lines, keys):
        if key not in side.labels:
          raise InputError(
            f"{log.path}:{number}: {what} {key!r} does not appear in "
            f"{side.path}; expected every rated {what} to be listed there"
          )
  user, item, timestamp, rating, user_order, item_order = from_raw_log(
    log.users, log.items, log.timestamps, log.ratings, name=name
  )
  item_kinds = _item_fields(items, item_order, spec)
  item_attrs = {
    kind: _attribute(items, field, kind, item_order, spec, spec.min_item_count)
    for field, kind in item_kinds.items()
  }
  empty = [kind for kind, attr in item_attrs.items() if not attr.vocab]
  if empty:
    raise InputError(
      f"{items.path}: item field {', '.join(empty)} has no value that "
      f"{spec.min_item_count} or more rated items carry; expected a field whose "
      "values repeat"
    )
  user_attrs = {}
  if users is not None:
    for field, kind in _user_fields(users, user_order, spec).items():
      user_attrs[kind] = _attribute(users, field, kind, user_order, spec, 1)
  return DynamicGraph(
    user=user,
    item=item,
    timestamp=timestamp,
    rating=rating,
    item_attrs=item_attrs,
    user_attrs=user_attrs,
    name=name,
  )


def _attribute(
  side: Side, field: str, kind: str, order: Sequence, spec: AtomicSpec, min_count: int
) -> RaggedAttribute:
  """Attribute ``kind`` of the nodes in ``order``, from ``field``."""
  labels = [side.node_labels(key, field) for key in order]
  normalize = spec.normalize.get(kind)
  if normalize is not None:
    labels = [normalize(node) for node in labels]
  return RaggedAttribute.from_labels(labels, min_count=min_count)


def _item_fields(items: Side, order: Sequence, spec: AtomicSpec) -> dict[str, str]:
  """Item field -> attribute kind: the spec's, or those that repeat."""
  candidates = [f for f, t in items.fields.items() if t in _LABEL_TYPES]
  candidates = [f for f in candidates if f != items.key]
  if spec.item_fields is not None:
    for field in spec.item_fields:
      if field not in candidates:
        raise InputError(
          f"{items.path}: item field {field!r} is not a token or token_seq "
          f"field of the file; expected one of {', '.join(candidates) or 'none'}"
        )
    return dict(spec.item_fields)
  chosen = {}
  half = len(order) / 2
  for field in candidates:
    counts = _value_counts(items, field, order)
    distinct = len(counts)
    frequent = sum(1 for c in counts.values() if c >= spec.min_item_count)
    if 2 <= distinct < half and frequent:
      chosen[field] = field
  if not chosen:
    raise InputError(
      f"{items.path}: no item field is an attribute (token or token_seq fields "
      f"{', '.join(candidates) or 'none'}; an attribute has 2 or more distinct "
      f"values, fewer than half as many as the {len(order)} rated items, some "
      f"carried by {spec.min_item_count} or more items); the model sees items "
      "only through their attributes: choose fields with item_fields"
    )
  return chosen


def _user_fields(users: Side, order: Sequence, spec: AtomicSpec) -> dict[str, str]:
  """User field -> attribute kind: the spec's, or the few-class tokens."""
  if spec.user_fields is not None:
    for field in spec.user_fields:
      if field not in users.fields:
        raise InputError(
          f"{users.path}: the header lacks user field {field!r}; expected "
          f"one of {', '.join(users.fields)}"
        )
    return dict(spec.user_fields)
  return {
    field: field
    for field, type_ in users.fields.items()
    if type_ == "token"
    and field != users.key
    and 2 <= len(_value_counts(users, field, order)) <= MAX_USER_CLASSES
  }


def _value_counts(side: Side, field: str, order: Sequence) -> dict[str, int]:
  """How many of the nodes in ``order`` carry each value of ``field``."""
  counts: dict[str, int] = {}
  for key in order:
    for value in dict.fromkeys(side.node_labels(key, field)):
      counts[value] = counts.get(value, 0) + 1
  return counts
