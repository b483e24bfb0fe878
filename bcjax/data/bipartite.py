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

# Redraws of negatives that hit a known positive; after this many rounds the
# chance that a draw is still a positive is below (max density) ** 32.
_MAX_NEGATIVE_ROUNDS = 32


@struct.dataclass
class AttributeBag:
  """One item attribute kind as an embedding bag.

  Attributes:
    values: ``(nnz,)`` int32 value ids.
    segment: ``(nnz,)`` int32 item of each value.
    inv_count: ``(num_items,)`` float32 ``1 / (values of the item)``, 0 where
      the item has none, so the bag is a mean.
    vocab_size: number of distinct values (static).
  """

  values: jax.Array
  segment: jax.Array
  inv_count: jax.Array
  vocab_size: int = struct.field(pytree_node=False)

  @classmethod
  def from_ragged(cls, attr: RaggedAttribute) -> AttributeBag:
    counts = np.diff(attr.offsets)
    segment = np.repeat(np.arange(attr.num_nodes, dtype=np.int32), counts)
    inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return cls(
      values=jnp.asarray(attr.values, jnp.int32),
      segment=jnp.asarray(segment, jnp.int32),
      inv_count=jnp.asarray(inv, jnp.float32),
      vocab_size=max(len(attr.vocab), 1),
    )


@struct.dataclass
class BipartiteGraph:
  """The training graph of one version, as device arrays.

  Attributes:
    senders: ``(2 * num_train,)`` int32 source node of each directed edge;
      users are nodes ``[0, num_users)``, item ``i`` is node ``num_users + i``.
    receivers: ``(2 * num_train,)`` int32 target node of each edge.
    inv_degree: ``(num_users + num_items,)`` float32 ``1 / in-degree``, 0 for
      isolated nodes, so that aggregation is a mean.
    item_attrs: attribute kind -> :class:`AttributeBag`.
    pos_indptr: ``(num_users + 1,)`` int32 CSR row pointers of the distinct
      training positives by user.
    pos_items: ``(num_pos,)`` int32 items of each user's positives, sorted
      within the user.
    active_users: ``(num_active,)`` int32 users with at least one positive.
    num_users: static node count of users.
    num_items: static node count of items.
    max_degree: static largest number of positives of one user.
  """

  senders: jax.Array
  receivers: jax.Array
  inv_degree: jax.Array
  item_attrs: Mapping[str, AttributeBag]
  pos_indptr: jax.Array
  pos_items: jax.Array
  active_users: jax.Array
  num_users: int = struct.field(pytree_node=False)
  num_items: int = struct.field(pytree_node=False)
  max_degree: int = struct.field(pytree_node=False)

  @property
  def num_nodes(self) -> int:
    return self.num_users + self.num_items

  @classmethod
  def from_split(cls, split: VersionSplit) -> BipartiteGraph:
    """Builds the device graph from a version's training interactions."""
    nu, ni = split.num_users, split.num_items
    user = split.train_user.astype(np.int64)
    item = split.train_item.astype(np.int64)
    senders = np.concatenate([user, nu + item])
    receivers = np.concatenate([nu + item, user])
    degree = np.bincount(receivers, minlength=nu + ni)
    inv_degree = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0)

    pairs = np.unique(user * ni + item)
    pos_user, pos_item = pairs // ni, pairs % ni
    counts = np.bincount(pos_user, minlength=nu)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return cls(
      senders=jnp.asarray(senders, jnp.int32),
      receivers=jnp.asarray(receivers, jnp.int32),
      inv_degree=jnp.asarray(inv_degree, jnp.float32),
      item_attrs={k: AttributeBag.from_ragged(a) for k, a in split.item_attrs.items()},
      pos_indptr=jnp.asarray(indptr, jnp.int32),
      pos_items=jnp.asarray(pos_item, jnp.int32),
      active_users=jnp.asarray(np.flatnonzero(counts), jnp.int32),
      num_users=nu,
      num_items=ni,
      max_degree=int(counts.max()),
    )


def is_positive(graph: BipartiteGraph, user: jax.Array, item: jax.Array) -> jax.Array:
  """Whether each ``(user[n], item[n])`` is a training positive.

  A vectorised binary search inside each user's sorted CSR row, with a static
  number of halvings, so it works for any graph size in int32.

  Args:
    graph: the training graph.
    user: ``(n,)`` int32 users.
    item: ``(n,)`` int32 items.

  Returns:
    ``(n,)`` bool.
  """
  lo = graph.pos_indptr[user]
  end = graph.pos_indptr[user + 1]
  hi = end
  for _ in range(math.ceil(math.log2(graph.max_degree + 1)) + 1):
    mid = (lo + hi) // 2
    go_right = graph.pos_items[jnp.minimum(mid, graph.pos_items.shape[0] - 1)] < item
    active = lo < hi
    lo = jnp.where(active & go_right, mid + 1, lo)
    hi = jnp.where(active & ~go_right, mid, hi)
  found = graph.pos_items[jnp.minimum(lo, graph.pos_items.shape[0] - 1)] == item
  return (lo < end) & found


def sample_bpr_triples(
  graph: BipartiteGraph, key: jax.Array, num_samples: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Draws ``(user, positive item, negative item)`` training triples.

  Users are drawn uniformly among those with positives (so each positive
  pair is weighted by ``1 / degree`` of its user), then one of their
  positives uniformly, then a negative item uniformly among the items that are
  not a known positive of that user (by rejection).

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

  def draw(key, neg, redraw):
    fresh = jax.random.randint(key, neg.shape, 0, graph.num_items)
    return jnp.where(redraw, fresh, neg)

  def cond(carry):
    _, _, redraw, rounds = carry
    return jnp.any(redraw) & (rounds < _MAX_NEGATIVE_ROUNDS)

  def body(carry):
    key, neg, redraw, rounds = carry
    key, sub = jax.random.split(key)
    neg = draw(sub, neg, redraw)
    return key, neg, redraw & is_positive(graph, user, neg), rounds + 1

  neg = jnp.zeros((num_samples,), jnp.int32)
  redraw = jnp.ones((num_samples,), bool)
  _, neg, _, _ = jax.lax.while_loop(cond, body, (k_neg, neg, redraw, 0))
  return user, pos, neg
