"""The dynamic user-item interaction graph every loader produces.

A :class:`DynamicGraph` is an interaction log sorted by time, with user and
item ids remapped by first appearance, so that the users present at any time
slice are exactly ``range(num_users_at(tau))`` (and likewise for items). Node
attributes are ragged lists of categorical values, stored as CSR
``(values, offsets)`` pairs, one pair per attribute kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from bcjax.errors import InputError

TAUS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _frozen(array, dtype) -> np.ndarray:
  array = np.ascontiguousarray(array, dtype=dtype)
  array.setflags(write=False)
  return array


def time_array(values, name: str = "graph") -> np.ndarray:
  """Interaction times as the graph holds them: int64, or float64 if fractional.

  Times only order the log (a slice is a fraction of the interactions, not
  of the time span), so either type gives the same order and slices. Whole
  times, however typed (RecBole's ``timestamp:float`` columns included), stay
  int64: exact at any size, and the graphs and fingerprints of such data
  (ml-100k's committed results) are as before fractional times were read.
  Fractional times (RecBole writes them, e.g. ``1464220002.5``) are kept as
  float64 values rather than replaced by their ranks: the log is ordered by
  the value, ties stay ties (in file order), and the values remain seconds
  for anything that reads them (a time window, a gap), where ranks would
  silently mean something else; float64 resolves today's unix seconds to
  under a microsecond.

  Args:
    values: ``(num_edges,)`` numbers.
    name: the dataset's name, for messages.

  Raises:
    InputError: a time that is not a finite number.
  """
  array = np.asarray(values)
  if array.dtype.kind not in "iuf":
    try:
      array = array.astype(np.float64)
    except (TypeError, ValueError):
      raise InputError(
        f"{name}: timestamps must be numbers, got {array.dtype}"
      ) from None
  if array.dtype.kind != "f":
    return array.astype(np.int64)
  array = array.astype(np.float64)
  if not np.all(np.isfinite(array)):
    raise InputError(f"{name}: timestamps must be finite numbers")
  if np.all(array == np.floor(array)):
    return array.astype(np.int64)
  return array


@dataclasses.dataclass(frozen=True)
class RaggedAttribute:
  """Categorical attribute values of a node type, ragged per node.

  Attributes:
    values: ``(nnz,)`` int32 value ids in ``[0, len(vocab))``.
    offsets: ``(num_nodes + 1,)`` int32; node ``i`` has values
      ``values[offsets[i]:offsets[i + 1]]``.
    vocab: the name of each value id.
  """

  values: np.ndarray
  offsets: np.ndarray
  vocab: tuple[str, ...]

  def __post_init__(self):
    object.__setattr__(self, "values", _frozen(self.values, np.int32))
    object.__setattr__(self, "offsets", _frozen(self.offsets, np.int32))
    object.__setattr__(self, "vocab", tuple(self.vocab))
    if self.offsets.ndim != 1 or len(self.offsets) == 0 or self.offsets[0] != 0:
      raise ValueError("offsets must be a 1-d array starting at 0")
    if self.offsets[-1] != len(self.values) or np.any(np.diff(self.offsets) < 0):
      raise ValueError("offsets must be non-decreasing and end at len(values)")
    if len(self.values) and (
      self.values.min() < 0 or self.values.max() >= len(self.vocab)
    ):
      raise ValueError("attribute values must lie in [0, len(vocab))")

  @property
  def num_nodes(self) -> int:
    return len(self.offsets) - 1

  @classmethod
  def from_lists(
    cls, lists: Sequence[Sequence[int]], vocab: Sequence[str]
  ) -> RaggedAttribute:
    """Builds the CSR form from one list of value ids per node."""
    lengths = np.array([len(v) for v in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.fromiter(
      (x for v in lists for x in v), dtype=np.int64, count=int(offsets[-1])
    )
    return cls(values, offsets, tuple(vocab))

  @classmethod
  def from_labels(
    cls, labels: Sequence[Sequence[str]], min_count: int = 1
  ) -> RaggedAttribute:
    """Builds an attribute from string labels per node.

    Values seen on fewer than ``min_count`` nodes are dropped; the vocabulary is
    ordered by decreasing frequency, ties by name, so it is deterministic.
    """
    counts: dict[str, int] = {}
    for node_labels in labels:
      for label in dict.fromkeys(node_labels):
        counts[label] = counts.get(label, 0) + 1
    vocab = sorted(
      (v for v, c in counts.items() if c >= min_count),
      key=lambda v: (-counts[v], v),
    )
    index = {v: i for i, v in enumerate(vocab)}
    lists = [
      [index[x] for x in dict.fromkeys(node_labels) if x in index]
      for node_labels in labels
    ]
    return cls.from_lists(lists, vocab)

  def take(self, nodes: np.ndarray) -> RaggedAttribute:
    """The attribute restricted to ``nodes`` (in that order)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    starts, ends = self.offsets[nodes], self.offsets[nodes + 1]
    lists = [self.values[s:e] for s, e in zip(starts, ends)]
    values = np.concatenate(lists) if lists else np.zeros(0, np.int32)
    offsets = np.concatenate([[0], np.cumsum(ends - starts)])
    return RaggedAttribute(values, offsets, self.vocab)

  def head(self, num_nodes: int) -> RaggedAttribute:
    """The attribute of the first ``num_nodes`` nodes (a view)."""
    offsets = self.offsets[: num_nodes + 1]
    return RaggedAttribute(self.values[: offsets[-1]], offsets, self.vocab)


@dataclasses.dataclass(frozen=True)
class DynamicGraph:
  """An immutable, time-sorted interaction log with node attributes.

  Attributes:
    user: ``(num_edges,)`` int32 user ids, numbered by first appearance.
    item: ``(num_edges,)`` int32 item ids, numbered by first appearance.
    timestamp: ``(num_edges,)`` non-decreasing: int64, or float64 where the
      data has fractional times (:func:`time_array`).
    rating: ``(num_edges,)`` float32.
    item_attrs: attribute kind -> :class:`RaggedAttribute` over all items.
    user_attrs: attribute kind -> :class:`RaggedAttribute` over all users
      (empty where the data has none).
    name: the dataset name, for messages and metadata.
  """

  user: np.ndarray
  item: np.ndarray
  timestamp: np.ndarray
  rating: np.ndarray
  item_attrs: Mapping[str, RaggedAttribute]
  user_attrs: Mapping[str, RaggedAttribute] = dataclasses.field(default_factory=dict)
  name: str = "graph"

  def __post_init__(self):
    timestamp = time_array(self.timestamp, self.name)
    for field, dtype in (
      ("user", np.int32),
      ("item", np.int32),
      ("timestamp", timestamp.dtype),
      ("rating", np.float32),
    ):
      value = timestamp if field == "timestamp" else getattr(self, field)
      object.__setattr__(self, field, _frozen(value, dtype))
    object.__setattr__(self, "item_attrs", dict(self.item_attrs))
    object.__setattr__(self, "user_attrs", dict(self.user_attrs))
    n = len(self.user)
    if not (len(self.item) == len(self.timestamp) == len(self.rating) == n):
      raise ValueError("user, item, timestamp and rating must have one length")
    if n and np.any(np.diff(self.timestamp) < 0):
      raise ValueError("interactions must be sorted by timestamp")
    if not np.all(np.isfinite(self.rating)):
      raise InputError(f"{self.name}: ratings must be finite numbers")
    for ids, what in ((self.user, "user"), (self.item, "item")):
      # First-appearance numbering: each new id is exactly one past the max so
      # far, which is what makes every time slice a prefix of the id range.
      if n and (ids[0] != 0 or np.any(np.diff(np.maximum.accumulate(ids)) > 1)):
        raise ValueError(f"{what} ids must be numbered by first appearance")
    for kind, attr in self.item_attrs.items():
      if attr.num_nodes != self.num_items:
        raise ValueError(f"item attribute {kind!r} must cover every item")
    for kind, attr in self.user_attrs.items():
      if attr.num_nodes != self.num_users:
        raise ValueError(f"user attribute {kind!r} must cover every user")

  @property
  def num_edges(self) -> int:
    return len(self.user)

  @property
  def num_users(self) -> int:
    return int(self.user.max()) + 1 if self.num_edges else 0

  @property
  def num_items(self) -> int:
    return int(self.item.max()) + 1 if self.num_edges else 0

  def num_edges_at(self, tau: float) -> int:
    """Number of interactions ``i`` with ``i / (num_edges - 1) <= tau``."""
    if not 0.0 <= tau <= 1.0:
      raise InputError(f"time slice tau must lie in [0, 1], got {tau}")
    if self.num_edges < 2:
      return self.num_edges
    # The small slack absorbs float error in tau * (E - 1) for exact fractions.
    return min(self.num_edges, int(np.floor(tau * (self.num_edges - 1) + 1e-9)) + 1)

  def num_users_at(self, tau: float) -> int:
    n = self.num_edges_at(tau)
    return int(self.user[:n].max()) + 1 if n else 0

  def num_items_at(self, tau: float) -> int:
    n = self.num_edges_at(tau)
    return int(self.item[:n].max()) + 1 if n else 0

  def slice(self, tau: float) -> DynamicGraph:
    """The graph of the interactions up to ``tau`` (views, not copies)."""
    n = self.num_edges_at(tau)
    num_users, num_items = self.num_users_at(tau), self.num_items_at(tau)
    return DynamicGraph(
      user=self.user[:n],
      item=self.item[:n],
      timestamp=self.timestamp[:n],
      rating=self.rating[:n],
      item_attrs={k: a.head(num_items) for k, a in self.item_attrs.items()},
      user_attrs={k: a.head(num_users) for k, a in self.user_attrs.items()},
      name=f"{self.name}[:{tau}]",
    )

  def fingerprint(self) -> str:
    """A short hash of the log and attributes, stored with checkpoints."""
    h = hashlib.sha256()
    for array in (self.user, self.item, self.timestamp, self.rating):
      h.update(array.tobytes())
    for attrs in (self.item_attrs, self.user_attrs):
      for kind in sorted(attrs):
        h.update(kind.encode())
        h.update(attrs[kind].values.tobytes())
        h.update(attrs[kind].offsets.tobytes())
    return h.hexdigest()[:16]

  def summary(self) -> str:
    return (
      f"{self.name}: {self.num_users} users, {self.num_items} items, "
      f"{self.num_edges} interactions, item attributes "
      f"{ {k: len(a.vocab) for k, a in self.item_attrs.items()} }, "
      f"user attributes { {k: len(a.vocab) for k, a in self.user_attrs.items()} }"
    )


def from_raw_log(
  user_keys: Sequence,
  item_keys: Sequence,
  timestamp: np.ndarray,
  rating: np.ndarray,
  *,
  name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list, list]:
  """Sorts a raw log by time (stably) and numbers nodes by first appearance.

  Args:
    user_keys: ``(num_edges,)`` raw user identifiers (any hashable).
    item_keys: ``(num_edges,)`` raw item identifiers.
    timestamp: ``(num_edges,)`` times: numbers (:func:`time_array`).
    rating: ``(num_edges,)`` ratings.
    name: dataset name for error messages.

  Returns:
    ``(user, item, timestamp, rating, user_order, item_order)``: the sorted,
    remapped log, and the raw keys of users and items in id order.
  """
  timestamp = time_array(timestamp, name)
  if len(timestamp) == 0:
    raise InputError(f"{name}: the interaction log is empty")
  order = np.argsort(timestamp, kind="stable")

  def remap(keys):
    keys = np.asarray(keys)[order]
    uniques, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniques))
    return rank[inverse.reshape(-1)], list(uniques[np.argsort(first)])

  user, user_order = remap(user_keys)
  item, item_order = remap(item_keys)
  return (
    user,
    item,
    timestamp[order],
    np.asarray(rating, dtype=np.float32)[order],
    user_order,
    item_order,
  )
