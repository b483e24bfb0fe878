"""PinSAGE message passing, item encoder and BPR against dense references."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.components.losses import bpr_loss
from bcjax.data.split import split_version
from bcjax.models import aggregation, mosaic_kernel
from bcjax.models.aggregation import (
  DETERMINISTIC_LAYOUTS,
  NeighbourLists,
  Relation,
  default_layout,
  relation_sum,
)
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import ItemEncoder, PinSAGE, embed, mean_aggregate
from bcjax.models.row_gather import take_rows
from bcjax.models.segment_kernel import TRITON
from tests.conftest import mosaic_param


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


LAYOUTS = [("scatter", 0), ("scatter", 64), ("scatter", 1000), ("scatter", 100_000)]
LAYOUTS += [("sorted", 0), ("pallas", 0)]
# Not "mosaic": Mosaic GPU's interpreter took 130 s here (240 receivers) and
# 190 s for the layers below; tests/test_mosaic_kernel.py checks its sums and
# gradients against NumPy on a smaller relation.


@pytest.mark.parametrize("layout,edge_chunk", LAYOUTS)
def test_aggregation_and_its_gradient_match_the_dense_product(
  small_graph, layout, edge_chunk
):
  split = split_version(small_graph, 2)
  graph = BipartiteGraph.from_split(split, layout, edge_chunk)
  forward = graph.adjacency.forward
  if layout == "scatter":
    edges = split.num_train
    if edge_chunk >= edges:  # one chunk holds every edge: no chunks, no padding
      assert forward.chunk == 0 and forward.senders.shape[0] == edges
    else:
      assert forward.chunk == edge_chunk
      assert forward.senders.shape[0] % max(edge_chunk, 1) == 0
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


def test_bad_layout_and_negative_edge_chunk_are_rejected(small_graph):
  split = split_version(small_graph, 0)
  with pytest.raises(ValueError, match="edge_chunk must be >= 0"):
    BipartiteGraph.from_split(split, "scatter", -1)
  with pytest.raises(ValueError, match="unknown layout 'dense'.*'pallas', 'mosaic'"):
    BipartiteGraph.from_split(split, "dense")
  with pytest.raises(ValueError, match="unknown layout 'dense'.*'mosaic'"):
    take_rows(jnp.ones((3, 2)), jnp.zeros(2, jnp.int32), layout="dense")


@pytest.mark.parametrize("growth", [1.3, 2.0, 8.0])
def test_neighbour_lists_sum_any_relation_like_numpy(growth):
  rng = np.random.default_rng(int(growth * 10))
  num_senders, num_receivers = 40, 30
  # Heavy-tailed degrees, repeated edges, and receivers with no sender.
  receivers = np.minimum(rng.zipf(1.6, size=300), num_receivers - 5) - 1
  senders = rng.integers(0, num_senders, size=300)
  lists = NeighbourLists.build(senders, receivers, num_senders, num_receivers, growth)
  widths = [b.shape[1] for b in lists.buckets]
  assert widths == sorted(widths)
  x = rng.normal(size=(num_senders, 3))
  want = np.zeros((num_receivers, 3))
  np.add.at(want, receivers, x[senders])
  got = lists.sum(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seeds,chunk", [(1, 64), (3, 64), (10, 96), (5, 0)])
def test_scatter_sum_over_seeds_is_each_seed_alone(seeds, chunk):
  # Seeds in lockstep vmap one relation over their rows; the chunked sum
  # folds them into its columns (EdgeList.sum_mapped), which must
  # add every column in the same edge order as each seed alone: forward and
  # gradient bit-identical, and like NumPy.
  rng = np.random.default_rng(seeds + chunk)
  num_senders, num_receivers, dim = 50, 40, 6
  senders = rng.integers(0, num_senders, size=700)
  receivers = np.minimum(rng.zipf(1.5, size=700), num_receivers - 3) - 1
  relation = Relation.build(
    senders, receivers, num_senders, num_receivers, "scatter", chunk
  )
  x = jnp.asarray(rng.normal(size=(seeds, num_senders, dim)), jnp.float32)

  def loss(rows):
    return jnp.sum(jnp.sin(relation_sum(rows, relation)))

  summed = jax.jit(jax.vmap(lambda rows: relation_sum(rows, relation)))(x)
  grads = jax.jit(jax.vmap(jax.grad(loss)))(x)
  for i in range(seeds):
    np.testing.assert_array_equal(summed[i], jax.jit(relation_sum)(x[i], relation))
    np.testing.assert_array_equal(grads[i], jax.jit(jax.grad(loss))(x[i]))
    want = np.zeros((num_receivers, dim))
    np.add.at(want, receivers, np.asarray(x[i], np.float64)[senders])
    np.testing.assert_allclose(summed[i], want, rtol=1e-5, atol=1e-5)
  # The layout's own sum stays differentiable (relation_sum's custom VJP
  # holds the folding, which has no autodiff rule).
  lists = relation.forward
  np.testing.assert_allclose(
    jax.grad(lambda rows: jnp.sum(lists.sum(rows)))(x[0]),
    np.bincount(senders, minlength=num_senders)[:, None] * np.ones((1, dim)),
  )
  # A second mapped axis (seeds x something) folds twice, to the same sums.
  twice = jax.vmap(jax.vmap(lambda rows: relation_sum(rows, relation)))(
    jnp.stack([x, 2 * x])
  )
  np.testing.assert_array_equal(twice[0], summed)
  np.testing.assert_allclose(twice[1], 2 * summed, rtol=1e-6, atol=1e-6)


def test_scatter_sum_over_a_batch_of_relations_is_each_alone():
  # A mapped relation (not what seeds share, but allowed) is vmapped plainly.
  rng = np.random.default_rng(0)
  built = [
    Relation.build(
      rng.integers(0, 9, size=30), rng.integers(0, 7, size=30), 9, 7, "scatter", 8
    )
    for _ in range(3)
  ]
  relations = jax.tree.map(lambda *leaves: jnp.stack(leaves), *built)
  x = jnp.asarray(rng.normal(size=(9, 4)), jnp.float32)
  summed = jax.vmap(relation_sum, in_axes=(None, 0))(x, relations)
  for i, relation in enumerate(built):
    np.testing.assert_allclose(summed[i], relation_sum(x, relation), rtol=1e-6)


@pytest.mark.parametrize("layout", ["sorted", "pallas"])
def test_deterministic_layouts_do_not_depend_on_edge_order(layout):
  # Both add each receiver's senders in ascending order, so a shuffled edge
  # list gives the same bits, values and gradients.
  rng = np.random.default_rng(5)
  senders = rng.integers(0, 50, size=400)
  receivers = rng.integers(0, 20, size=400)
  x = jnp.asarray(rng.normal(size=(50, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(20, 4)), jnp.float32)
  results = []
  for seed in range(3):
    order = np.random.default_rng(seed).permutation(400)
    relation = Relation.build(senders[order], receivers[order], 50, 20, layout)
    value, grad = jax.value_and_grad(
      lambda x, r=relation: jnp.sum(relation_sum(x, r) * w)
    )(x)
    results.append((np.asarray(value), np.asarray(grad)))
  for value, grad in results[1:]:
    assert value.tobytes() == results[0][0].tobytes()
    assert grad.tobytes() == results[0][1].tobytes()


def test_take_rows_gradient_sums_repeated_rows_like_numpy():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(12, 5)), jnp.float32)
  rows = jnp.asarray(rng.integers(0, 12, size=64), jnp.int32)
  cotangent = rng.normal(size=(64, 5))
  want = np.zeros((12, 5))
  np.add.at(want, np.asarray(rows), cotangent)
  layouts = ["scatter", "sorted", "pallas"]
  if mosaic_kernel.interpreter_available():
    layouts.append("mosaic")
  for layout in layouts:
    out, pullback = jax.vjp(lambda x, g=layout: take_rows(x, rows, layout=g), x)
    np.testing.assert_array_equal(out, np.asarray(x)[np.asarray(rows)])
    (grad,) = pullback(jnp.asarray(cotangent, jnp.float32))
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  "layout,edge_chunk", [("scatter", 128), ("sorted", 0), ("pallas", 0)]
)
def test_layers_and_gradients_agree_across_layouts(small_graph, layout, edge_chunk):
  # Every layout gives the single-pass scatter's embeddings in every layer,
  # and the same gradients of every parameter (item tables included).
  split = split_version(small_graph, 3)
  reference = BipartiteGraph.from_split(split, "scatter", 0)
  graph = BipartiteGraph.from_split(split, layout, edge_chunk)
  model = PinSAGE(dim=8, num_layers=3)
  variables = model.init(jax.random.key(2), reference, train=False)
  for want, got in zip(
    embed(model, variables, reference), embed(model, variables, graph), strict=True
  ):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

  def loss(params, graph):
    (users, items), _ = model.apply(
      {"params": params, "batch_stats": variables["batch_stats"]},
      graph,
      train=True,
      mutable=["batch_stats"],
    )
    return jnp.sum(users[:, :4] ** 2) + jnp.sum(jnp.sin(items))

  want = jax.grad(loss)(variables["params"], reference)
  got = jax.grad(loss)(variables["params"], graph)
  assert set(got["item_encoder"]) == {f"embed_{k}" for k in split.item_attrs}
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


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


@pytest.mark.parametrize(
  "layout", ["scatter", "sorted", "pallas", mosaic_param("mosaic")]
)
def test_relation_sum_refuses_x_with_other_rows_than_senders(layout):
  relation = Relation.build(np.array([0, 1, 2]), np.array([0, 0, 1]), 3, 2, layout)
  ok = jnp.ones((3, 4))
  assert relation_sum(ok, relation).shape == (2, 4)
  with pytest.raises(ValueError, match="x has 4 rows, the relation 3 senders"):
    relation_sum(jnp.ones((4, 4)), relation)
  with pytest.raises(ValueError, match="x has 4 rows"):  # the gradient's path too
    jax.grad(lambda x: jnp.sum(relation_sum(x, relation)))(jnp.ones((4, 4)))


@pytest.mark.parametrize(
  "layout", ["scatter", "sorted", "pallas", mosaic_param("mosaic")]
)
def test_relation_refuses_rows_out_of_range(layout):
  with pytest.raises(ValueError, match=r"senders must lie in \[0, 3\), got rows 0..5"):
    Relation.build(np.array([0, 5]), np.array([0, 1]), 3, 2, layout)
  with pytest.raises(
    ValueError, match=r"receivers must lie in \[0, 2\), got rows -1..1"
  ):
    Relation.build(np.array([0, 1]), np.array([-1, 1]), 3, 2, layout)


def test_default_layout_is_deterministic_where_scatter_is_not():
  # GPU scatter-adds are atomic: the GPU gets a kernel, the rest scatter. No
  # GPU here: "gpu" stands for a Hopper one.
  assert default_layout("gpu") == ("pallas" if TRITON else "mosaic")
  assert default_layout("cpu") == default_layout("tpu") == "scatter"
  assert {"pallas", "mosaic"} <= set(DETERMINISTIC_LAYOUTS)
  assert "scatter" not in DETERMINISTIC_LAYOUTS


@pytest.mark.parametrize(
  "platform,capability,triton,mosaic,want",
  [
    ("cuda 12.8", "9.0", True, True, "pallas"),  # measured; Triton still here
    ("cuda 12.8", "10.0", False, True, "mosaic"),  # Triton lowering gone
    ("cuda 12.8", "9.0", False, False, "sorted"),  # neither kernel
    ("cuda 12.8", "8.0", True, True, "sorted"),  # older than Hopper
    ("rocm 6.4", "gfx942", True, True, "sorted"),  # neither compiles for ROCm
  ],
)
def test_default_gpu_layout_follows_the_gpu_and_the_lowerings(
  monkeypatch, platform, capability, triton, mosaic, want
):
  device = types.SimpleNamespace(
    client=types.SimpleNamespace(platform_version=platform),
    compute_capability=capability,
  )
  monkeypatch.setattr(jax, "devices", lambda backend=None: [device])
  monkeypatch.setattr(aggregation, "TRITON", triton)
  monkeypatch.setattr(mosaic_kernel, "MOSAIC_GPU", mosaic)
  assert default_layout("gpu") == want
  assert default_layout("cpu") == "scatter"
