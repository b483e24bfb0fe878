"""PinSAGE message passing, item encoder and BPR against dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.data.bipartite import BipartiteGraph
from bcjax.data.split import split_version
from bcjax.losses import bpr_loss
from bcjax.models.pinsage import ItemEncoder, PinSAGE, embed, mean_aggregate


def dense_adjacency(split):
  n = split.num_users + split.num_items
  adj = np.zeros((n, n))
  for u, i in zip(split.train_user, split.train_item):
    # Repeated interactions count as parallel edges, as in the edge list.
    adj[u, split.num_users + i] += 1
    adj[split.num_users + i, u] += 1
  return adj


def test_mean_aggregate_equals_normalised_dense_product(small_graph):
  split = split_version(small_graph, 2)
  graph = BipartiteGraph.from_split(split)
  x = np.random.default_rng(0).normal(size=(graph.num_nodes, 5))
  adj = dense_adjacency(split)
  degree = adj.sum(axis=1, keepdims=True)
  want = np.where(degree > 0, adj @ x / np.maximum(degree, 1), 0.0)
  got = mean_aggregate(jnp.asarray(x, jnp.float32), graph)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edge_chunk", [0, 64, 1000, 100_000])
def test_chunked_aggregation_and_its_gradient_match_the_dense_product(
  small_graph, edge_chunk
):
  split = split_version(small_graph, 2)
  graph = BipartiteGraph.from_split(split, edge_chunk)
  edges = 2 * split.num_train
  if edge_chunk >= edges:  # one chunk holds every edge: no chunks, no padding
    assert graph.edge_chunk == 0 and graph.senders.shape[0] == edges
  else:
    assert graph.edge_chunk == edge_chunk
    assert graph.senders.shape[0] % max(edge_chunk, 1) == 0
  adj = dense_adjacency(split)
  mean_op = adj / np.maximum(adj.sum(axis=1, keepdims=True), 1)
  rng = np.random.default_rng(1)
  x = rng.normal(size=(graph.num_nodes, 5))
  w = rng.normal(size=(graph.num_nodes, 5))

  def objective(x):
    return jnp.sum(mean_aggregate(x, graph) * w)

  np.testing.assert_allclose(
    mean_aggregate(jnp.asarray(x, jnp.float32), graph), mean_op @ x, atol=1e-5
  )
  # d/dx sum(M x * w) = M^T w.
  grad = jax.grad(objective)(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(grad, mean_op.T @ w, atol=1e-5)
  nu = split.num_users
  into_users = mean_aggregate(jnp.asarray(x, jnp.float32), graph, into_users_only=True)
  np.testing.assert_allclose(into_users, (mean_op @ x)[:nu], atol=1e-5)
  grad = jax.grad(
    lambda x: jnp.sum(mean_aggregate(x, graph, into_users_only=True) * w[:nu])
  )(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(grad, mean_op[:nu].T @ w[:nu], atol=1e-5)


def test_negative_edge_chunk_is_rejected(small_graph):
  with pytest.raises(ValueError, match="edge_chunk must be >= 0"):
    BipartiteGraph.from_split(split_version(small_graph, 0), -1)


@pytest.mark.parametrize("edge_chunk", [0, 128])
def test_layers_agree_across_edge_chunks(small_graph, edge_chunk):
  # Chunked scans give the embeddings of the single-pass aggregation, in
  # every layer (the dense-formula test above covers the first layer).
  split = split_version(small_graph, 3)
  reference = BipartiteGraph.from_split(split, 0)
  graph = BipartiteGraph.from_split(split, edge_chunk)
  model = PinSAGE(dim=8, num_layers=3)
  variables = model.init(jax.random.key(2), reference, train=False)
  for want, got in zip(
    embed(model, variables, reference), embed(model, variables, graph), strict=True
  ):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_item_encoder_is_mean_bag_summed_over_kinds(small_graph):
  split = split_version(small_graph, 0)
  graph = BipartiteGraph.from_split(split)
  encoder = ItemEncoder(dim=6)
  variables = encoder.init(jax.random.key(0), graph.item_attrs, graph.num_items)
  got = np.asarray(encoder.apply(variables, graph.item_attrs, graph.num_items))
  want = np.zeros((split.num_items, 6))
  for kind, attr in split.item_attrs.items():
    table = np.asarray(variables["params"][f"embed_{kind}"]["embedding"])
    for i in range(split.num_items):
      values = attr.values[attr.offsets[i] : attr.offsets[i + 1]]
      if len(values):
        want[i] += table[values].mean(axis=0)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pinsage_layer_matches_dense_formula(small_graph):
  split = split_version(small_graph, 1)
  graph = BipartiteGraph.from_split(split)
  model = PinSAGE(dim=8, num_layers=1)
  variables = model.init(jax.random.key(1), graph, train=False)
  users, items = embed(model, variables, graph)
  assert users.shape == (split.num_users, 8) and items.shape == (split.num_items, 8)

  params = jax.tree.map(np.asarray, variables["params"])
  x_items = np.asarray(
    ItemEncoder(8).apply(
      {"params": params["item_encoder"]}, graph.item_attrs, graph.num_items
    )
  )
  x = np.concatenate(
    [np.repeat(params["user_embedding"], split.num_users, axis=0), x_items]
  )
  adj = dense_adjacency(split)
  mean = adj @ x / np.maximum(adj.sum(1, keepdims=True), 1)
  conv = params["conv_0"]
  assert "bias" not in conv["neighbour"]  # batch norm's shift absorbs it
  h = mean @ conv["neighbour"]["kernel"]
  h = h + x @ conv["root"]["kernel"]
  # Fresh running statistics are mean 0, variance 1.
  norm = params["norm_0"]
  h = h / np.sqrt(1 + 1e-5) * norm["scale"] + norm["bias"]
  np.testing.assert_allclose(users, h[: split.num_users], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(items, h[split.num_users :], rtol=1e-4, atol=1e-4)


def test_bpr_loss_against_numpy():
  rng = np.random.default_rng(0)
  u, p, n = (rng.normal(size=(16, 4)) for _ in range(3))
  loss, parts = bpr_loss(jnp.asarray(u), jnp.asarray(p), jnp.asarray(n), 0.5)
  bpr = np.mean(np.log1p(np.exp(np.sum(u * n, 1) - np.sum(u * p, 1))))
  reg = 0.5 * (np.sum(u**2) + np.sum(p**2) + np.sum(n**2)) / 16
  assert float(parts["bpr"]) == pytest.approx(bpr, rel=1e-5)
  assert float(parts["reg"]) == pytest.approx(reg, rel=1e-5)
  assert float(loss) == pytest.approx(bpr + 0.5 * reg, rel=1e-5)
