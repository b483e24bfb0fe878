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

from bcjax.models.aggregation import relation_sum
from bcjax.models.device_graph import AttributeBag, BipartiteGraph


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
  nu = graph.num_users
  summed = relation_sum(x[nu:], graph.adjacency)
  if not into_users_only:
    summed = jnp.concatenate([summed, relation_sum(x[:nu], graph.adjacency.T)])
  return summed * graph.inv_degree[: summed.shape[0], None]


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
      table = _Table(bag.vocab_size, self.dim, name=f"embed_{kind}")()
      out = out + relation_sum(table, bag.values) * bag.inv_count[:, None]
    return out


class _Table(nn.Module):
  """An embedding table under ``nn.Embed``'s parameter name and init.

  The bag sums table rows through :func:`relation_sum`, whose gradient stays
  a sum in the bag's layout; ``nn.Embed`` would gather (a scatter-add back).
  """

  num_embeddings: int
  features: int

  @nn.compact
  def __call__(self) -> jax.Array:
    return self.param(
      "embedding", nn.initializers.normal(1.0), (self.num_embeddings, self.features)
    )


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
