"""The embedding model M_k: an attribute item encoder and PinSAGE layers.

As in the reference implementation of Hu et al. (KDD 2022): items enter the
graph through their attributes (a mean embedding bag per attribute kind,
summed over kinds), users through one shared learned vector (so the model is
inductive for both), and ``num_layers`` SAGE convolutions over the bipartite
graph mix them, each followed by batch norm, with ReLU between layers and none
after the last. Scores are dot products of user and item embeddings.

Batch norm sees the whole node set in every step, so its batch statistics are
full-graph statistics; the running averages (collection ``batch_stats``) are
used at inference, which keeps a frozen model's embeddings a function of its
variables and the graph alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from bcjax.data.bipartite import AttributeBag, BipartiteGraph


def mean_aggregate(
  x: jax.Array, graph: BipartiteGraph, *, into_users_only: bool = False
) -> jax.Array:
  """Mean of the in-neighbours' features of every node.

  Args:
    x: ``(num_nodes, dim)`` node features.
    graph: the graph whose edges carry the messages.
    into_users_only: aggregate into the users alone (their neighbours are
      items), skipping the edges into items.

  Returns:
    ``(num_nodes, dim)``, or ``(num_users, dim)`` with ``into_users_only``;
    zero for nodes without neighbours.
  """
  return _mean_aggregate(x, graph, "users" if into_users_only else "all")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _mean_aggregate(x, graph: BipartiteGraph, part: str):
  first, n = _receivers(graph, part)
  return _neighbour_sum(x, graph, part) * graph.inv_degree[first : first + n, None]


def _mean_aggregate_fwd(x, graph, part):
  return _mean_aggregate(x, graph, part), graph


def _mean_aggregate_bwd(part, graph, cotangent):
  # Every interaction is an edge both ways, so the transpose of summing over
  # the edges into users is summing over the edges into items (and "all" is
  # its own transpose): the backward pass runs the forward's receiver-sorted
  # sum instead of autodiff's scatter in sender order.
  scaled = cotangent * graph.inv_degree[: cotangent.shape[0], None]
  if part == "all":
    grad = _neighbour_sum(scaled, graph, "all")
  else:
    items = _neighbour_sum(scaled, graph, "items")
    grad = jnp.concatenate([jnp.zeros_like(scaled), items])
  return grad, None


_mean_aggregate.defvjp(_mean_aggregate_fwd, _mean_aggregate_bwd)


def _receivers(graph: BipartiteGraph, part: str) -> tuple[int, int]:
  """First node id and number of the receivers of ``part``."""
  if part == "users":
    return 0, graph.num_users
  if part == "items":
    return graph.num_users, graph.num_items
  return 0, graph.num_nodes


def _neighbour_sum(x: jax.Array, graph: BipartiteGraph, part: str) -> jax.Array:
  """Sum of ``x[sender]`` over the edges of ``part`` into each receiver.

  Args:
    x: features indexed by the senders' node ids (the users' rows suffice
      for ``"items"``, whose senders are users).
    graph: the graph.
    part: ``"all"``, ``"users"`` (the edges into users) or ``"items"``.

  Returns:
    ``(receivers of part, dim)``.
  """
  first, n = _receivers(graph, part)
  start, stop = {
    "all": (0, graph.senders.shape[0]),
    "users": (0, graph.num_user_edge_slots),
    "items": (graph.num_user_edge_slots, graph.senders.shape[0]),
  }[part]
  senders = graph.senders[start:stop]
  # Padding receivers (num_nodes) stay out of range after the shift: dropped.
  receivers = graph.receivers[start:stop] - first
  if not graph.edge_chunk:
    return jax.ops.segment_sum(
      x[senders], receivers, num_segments=n, indices_are_sorted=True
    )

  # One chunk's messages at a time, so they never leave cache (see
  # default_edge_chunk).
  def add_chunk(total, edges):
    chunk_senders, chunk_receivers = edges
    total = total.at[chunk_receivers].add(
      x[chunk_senders], mode="drop", indices_are_sorted=True
    )
    return total, None

  chunks = (
    senders.reshape(-1, graph.edge_chunk),
    receivers.reshape(-1, graph.edge_chunk),
  )
  summed, _ = jax.lax.scan(add_chunk, jnp.zeros((n, x.shape[1]), x.dtype), chunks)
  return summed


class ItemEncoder(nn.Module):
  """Sum over attribute kinds of the mean embedding of the item's values.

  Attributes:
    dim: output dimension.
  """

  dim: int

  @nn.compact
  def __call__(self, bags: Mapping[str, AttributeBag], num_items: int) -> jax.Array:
    """Returns ``(num_items, dim)`` item input features."""
    out = jnp.zeros((num_items, self.dim), jnp.float32)
    for kind in sorted(bags):
      bag = bags[kind]
      table = nn.Embed(
        bag.vocab_size,
        self.dim,
        embedding_init=nn.initializers.normal(1.0),
        name=f"embed_{kind}",
      )
      summed = jax.ops.segment_sum(
        table(bag.values), bag.segment, num_segments=num_items
      )
      out = out + summed * bag.inv_count[:, None]
    return out


class SAGEConv(nn.Module):
  """``W_neigh mean_{j in N(i)} x_j + W_root x_i`` (GraphSAGE, mean).

  PyG's SAGEConv adds a bias; here every convolution is followed by batch
  norm, whose shift absorbs it. A bias before batch norm gets gradients that
  are zero up to rounding, which Adam scales up to full steps, so it would
  drift with float noise and move the running mean that inference uses.

  Attributes:
    dim: output dimension.
  """

  dim: int

  @nn.compact
  def __call__(
    self, x: jax.Array, graph: BipartiteGraph, user_vector: jax.Array | None = None
  ) -> jax.Array:
    """Convolves ``(num_nodes, d_in)`` features into ``(num_nodes, dim)``.

    With ``user_vector`` (``(1, d_in)``), every user's row of ``x`` is that
    vector. Then an item's neighbour mean is the vector itself and each user
    row of ``W_root x`` is one product, so only the edges into users are
    aggregated and the two products run over one node set each instead of
    both: half the work of the first layer, same result.
    """
    neighbour = nn.Dense(self.dim, use_bias=False, name="neighbour")
    root = nn.Dense(self.dim, use_bias=False, name="root")
    if user_vector is None:
      return neighbour(mean_aggregate(x, graph)) + root(x)
    nu = graph.num_users
    users = neighbour(mean_aggregate(x, graph, into_users_only=True)) + root(
      user_vector
    )
    has_neighbour = (graph.inv_degree[nu:, None] > 0).astype(x.dtype)
    items = neighbour(user_vector) * has_neighbour + root(x[nu:])
    return jnp.concatenate([users, items], axis=0)


class PinSAGE(nn.Module):
  """User and item embeddings of a bipartite interaction graph.

  Attributes:
    dim: embedding dimension ``d_k``.
    num_layers: number of SAGE convolutions.
    momentum: batch-norm running-average momentum (PyTorch's 0.1 is 0.9).
  """

  dim: int
  num_layers: int
  momentum: float = 0.9

  @nn.compact
  def __call__(
    self, graph: BipartiteGraph, *, train: bool
  ) -> tuple[jax.Array, jax.Array]:
    """Embeds every node of ``graph``.

    Args:
      graph: the training graph of the version.
      train: normalise with the batch statistics (and update the running
        averages) rather than with the running averages.

    Returns:
      ``(user_emb, item_emb)`` of shapes ``(num_users, dim)`` and
      ``(num_items, dim)``.
    """
    user_vector = self.param(
      "user_embedding", nn.initializers.normal(0.1), (1, self.dim)
    )
    users = jnp.broadcast_to(user_vector, (graph.num_users, self.dim))
    items = ItemEncoder(self.dim, name="item_encoder")(
      graph.item_attrs, graph.num_items
    )
    x = jnp.concatenate([users, items], axis=0)
    for layer in range(self.num_layers):
      shared = user_vector if layer == 0 else None
      x = SAGEConv(self.dim, name=f"conv_{layer}")(x, graph, shared)
      x = nn.BatchNorm(
        use_running_average=not train,
        momentum=self.momentum,
        epsilon=1e-5,
        name=f"norm_{layer}",
      )(x)
      if layer < self.num_layers - 1:
        x = nn.relu(x)
    return x[: graph.num_users], x[graph.num_users :]


def init_variables(model: PinSAGE, graph: BipartiteGraph, key: jax.Array) -> dict:
  """Initial ``{"params", "batch_stats"}`` of ``model`` for ``graph``."""
  return dict(model.init(key, graph, train=False))


@functools.partial(jax.jit, static_argnums=0)
def embed(model: PinSAGE, variables: dict, graph: BipartiteGraph):
  """Inference embeddings ``(user_emb, item_emb)`` with running statistics.

  Jitted with the (hashable) module static: one compilation per architecture
  and graph size, then every evaluation epoch reuses it.
  """
  return model.apply(variables, graph, train=False)
