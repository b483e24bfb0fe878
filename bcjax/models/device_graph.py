"""Device-side arrays of one version's training graph, and negative sampling.

:class:`BipartiteGraph` is the pytree that the jitted training and evaluation
functions take as an argument: message-passing edges over the joint node set
(users first, then items), attribute bags for the item encoder, and the
training positives in CSR form for sampling. Node counts are static fields, so
a jitted function compiles once per version and shapes never depend on data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bcjax.data.graph import RaggedAttribute
from bcjax.data.split import VersionSplit
from bcjax.models.aggregation import (
  DETERMINISTIC_LAYOUTS,
  LAYOUTS,
  Relation,
  default_edge_chunk,
  default_layout,
)


@struct.dataclass
class AttributeBag:
  """One item attribute kind as an embedding bag.

  Attributes:
    values: ``items <- value ids``: item ``i`` sums the embeddings of its
      values (both directions, so the table's gradient is a sum too).
    inv_count: ``(num_items,)`` float32 ``1 / (values of the item)``, 0 where
      the item has none, so the bag is a mean.
    vocab_size: number of distinct values (static).
  """

  values: Relation
  inv_count: jax.Array
  vocab_size: int = struct.field(pytree_node=False)

  @classmethod
  def from_ragged(
    cls, attr: RaggedAttribute, layout: str = "scatter", edge_chunk: int = 0
  ) -> AttributeBag:
    counts = np.diff(attr.offsets)
    segment = np.repeat(np.arange(attr.num_nodes), counts)
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    vocab_size = max(len(attr.vocab), 1)
    return cls(
      values=Relation.build(
        attr.values, segment, vocab_size, attr.num_nodes, layout, edge_chunk
      ),
      inv_count=jnp.asarray(inv, jnp.float32),
      vocab_size=vocab_size,
    )


@struct.dataclass
class BipartiteGraph:
  """The training graph of one version, as device arrays.

  Users are nodes ``[0, num_users)`` and item ``i`` is node ``num_users + i``;
  every training interaction is an edge both ways.

  Attributes:
    adjacency: ``users <- items``: user ``u`` sums the rows of its items
      (``adjacency.T``: items sum their users), one entry per interaction,
      in the layout :attr:`layout`.
    inv_degree: ``(num_users + num_items,)`` float32 ``1 / in-degree``, 0 for
      isolated nodes, so that aggregation is a mean.
    item_attrs: attribute kind -> :class:`AttributeBag`.
    pos_indptr: ``(num_users + 1,)`` int32 CSR row pointers of the distinct
      training positives by user.
    pos_items: ``(num_pos,)`` int32 items of each user's positives, sorted
      within the user.
    pos_gaps: ``(num_pos,)`` int32 ``pos_items[j] - (j - pos_indptr[u])``: the
      number of the user's non-positive items below each positive, which
      turns "the r-th non-positive item" into a binary search.
    active_users: ``(num_active,)`` int32 users with at least one positive.
    num_users: static node count of users.
    num_items: static node count of items.
    num_interactions: static number of training interactions.
    max_degree: static largest number of positives of one user.
    layout: static layout of every sum of rows in a step (see
      :mod:`bcjax.models.aggregation`): ``"sorted"``, ``"pallas"`` and
      ``"mosaic"`` are deterministic on every backend, ``"scatter"`` on CPU
      and TPU only.
  """

  adjacency: Relation
  inv_degree: jax.Array
  item_attrs: Mapping[str, AttributeBag]
  pos_indptr: jax.Array
  pos_items: jax.Array
  pos_gaps: jax.Array
  active_users: jax.Array
  num_users: int = struct.field(pytree_node=False)
  num_items: int = struct.field(pytree_node=False)
  num_interactions: int = struct.field(pytree_node=False)
  max_degree: int = struct.field(pytree_node=False)
  layout: str = struct.field(pytree_node=False)

  @property
  def num_nodes(self) -> int:
    return self.num_users + self.num_items

  @property
  def deterministic(self) -> bool:
    """Whether the step's sums of rows avoid scatter-add atomics."""
    return self.layout in DETERMINISTIC_LAYOUTS

  @classmethod
  def from_split(
    cls,
    split: VersionSplit,
    layout: str | None = None,
    edge_chunk: int | None = None,
  ) -> BipartiteGraph:
    """Builds the device graph from a version's training interactions.

    Args:
      split: the version's split.
      layout: one of :data:`~bcjax.models.aggregation.LAYOUTS`; None picks
        :func:`~bcjax.models.aggregation.default_layout` for the default
        backend.
      edge_chunk: edges per scatter-add (``"scatter"`` only); None picks
        :func:`~bcjax.models.aggregation.default_edge_chunk`.
    """
    layout = layout or default_layout()
    if layout not in LAYOUTS:
      raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if edge_chunk is None:
      edge_chunk = default_edge_chunk()
    nu, ni = split.num_users, split.num_items
    user = split.train_user.astype(np.int64)
    item = split.train_item.astype(np.int64)
    # Sorted by (user, item), so every node adds its neighbours in ascending
    # order in both directions.
    order = np.lexsort((item, user))
    adjacency = Relation.build(item[order], user[order], ni, nu, layout, edge_chunk)
    degree = np.bincount(np.concatenate([user, nu + item]), minlength=nu + ni)
    inv_degree = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0)

    pairs = np.unique(user * ni + item)
    pos_user, pos_item = pairs // ni, pairs % ni
    counts = np.bincount(pos_user, minlength=nu)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    rank_in_row = np.arange(len(pos_item)) - indptr[pos_user]
    return cls(
      adjacency=adjacency,
      inv_degree=jnp.asarray(inv_degree, jnp.float32),
      item_attrs={
        k: AttributeBag.from_ragged(a, layout, edge_chunk)
        for k, a in split.item_attrs.items()
      },
      pos_indptr=jnp.asarray(indptr, jnp.int32),
      pos_items=jnp.asarray(pos_item, jnp.int32),
      pos_gaps=jnp.asarray(pos_item - rank_in_row, jnp.int32),
      active_users=jnp.asarray(np.flatnonzero(counts), jnp.int32),
      num_users=nu,
      num_items=ni,
      num_interactions=len(user),
      max_degree=int(counts.max()),
      layout=layout,
    )


def _search_rows(
  graph: BipartiteGraph,
  keys: jax.Array,
  user: jax.Array,
  value: jax.Array,
  *,
  right: bool,
) -> jax.Array:
  """First position in each user's CSR row whose key is > (or >=) ``value``.

  A vectorised binary search with a static number of halvings (enough for
  the longest row), so it needs no data-dependent loop.

  Args:
    graph: the training graph (row pointers and the longest row).
    keys: ``(num_pos,)`` keys, sorted within each row.
    user: ``(n,)`` rows to search.
    value: ``(n,)`` values to search for.
    right: find the first key ``> value`` (else ``>= value``).

  Returns:
    ``(n,)`` absolute positions in ``[row start, row end]``.
  """
  lo = graph.pos_indptr[user]
  hi = graph.pos_indptr[user + 1]
  last = keys.shape[0] - 1
  for _ in range(math.ceil(math.log2(graph.max_degree + 1)) + 1):
    mid = (lo + hi) // 2
    key = keys[jnp.clip(mid, 0, last)]
    go_right = (key <= value) if right else (key < value)
    active = lo < hi
    lo = jnp.where(active & go_right, mid + 1, lo)
    hi = jnp.where(active & ~go_right, mid, hi)
  return lo


def is_positive(graph: BipartiteGraph, user: jax.Array, item: jax.Array) -> jax.Array:
  """Whether each ``(user[n], item[n])`` is a training positive.

  Args:
    graph: the training graph.
    user: ``(n,)`` int32 users.
    item: ``(n,)`` int32 items.

  Returns:
    ``(n,)`` bool.
  """
  at = _search_rows(graph, graph.pos_items, user, item, right=False)
  found = graph.pos_items[jnp.clip(at, 0, graph.pos_items.shape[0] - 1)] == item
  return (at < graph.pos_indptr[user + 1]) & found


def sample_negatives(graph: BipartiteGraph, key: jax.Array, user: jax.Array):
  """One item per user drawn uniformly among its non-positive items.

  Exact and loop-free: draw ``r`` uniform in ``[0, num_items - degree)`` and
  return the ``r``-th non-positive item, ``r + j`` where ``j`` counts the
  user's positives with fewer than ``r + 1`` non-positives below them.
  A user who has interacted with every item has no negative; it gets an
  arbitrary item.

  Args:
    graph: the training graph.
    key: a PRNG key, used once.
    user: ``(n,)`` int32 users.

  Returns:
    ``(n,)`` int32 items.
  """
  start = graph.pos_indptr[user]
  degree = graph.pos_indptr[user + 1] - start
  free = jnp.maximum(graph.num_items - degree, 1)
  r = jnp.floor(jax.random.uniform(key, user.shape) * free).astype(jnp.int32)
  r = jnp.minimum(r, free - 1)
  below = _search_rows(graph, graph.pos_gaps, user, r, right=True) - start
  return jnp.minimum(r + below, graph.num_items - 1)


def sample_bpr_triples(
  graph: BipartiteGraph, key: jax.Array, num_samples: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Draws ``(user, positive item, negative item)`` training triples.

  Users are drawn uniformly among those with positives (so each positive
  pair is weighted by ``1 / degree`` of its user), then one of their
  positives uniformly, then a negative uniformly among the items that are
  not a known positive of that user.

  Args:
    graph: the training graph.
    key: a PRNG key, used once.
    num_samples: static number of triples.

  Returns:
    ``(user, pos, neg)``, each ``(num_samples,)`` int32.
  """
  k_user, k_pos, k_neg = jax.random.split(key, 3)
  slot = jax.random.randint(k_user, (num_samples,), 0, graph.active_users.shape[0])
  user = graph.active_users[slot]
  start = graph.pos_indptr[user]
  degree = graph.pos_indptr[user + 1] - start
  offset = jnp.floor(jax.random.uniform(k_pos, (num_samples,)) * degree)
  pos = graph.pos_items[start + jnp.minimum(offset.astype(jnp.int32), degree - 1)]
  return user, pos, sample_negatives(graph, k_neg, user)
