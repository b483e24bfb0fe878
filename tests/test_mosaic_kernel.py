"""The Mosaic GPU segment-sum kernel against NumPy, in its interpreter.

Mosaic GPU's interpreter runs the kernel's program (loop bounds, row
gathers, the order of the adds) on CPU; that the same kernel lowers to a
Mosaic GPU module for a Hopper GPU is checked by lowering it for CUDA,
which needs no GPU. The kernel adds a segment's rows one after another in
entry order, so its sums equal NumPy's sequential float32 sums bit for bit.
Interpreted kernels are slow: the sizes stay tiny.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.models import mosaic_kernel
from bcjax.models.aggregation import Relation, relation_sum
from bcjax.models.mosaic_kernel import MosaicSegmentLists, rows_gradient, segment_sum
from bcjax.models.row_gather import take_rows
from tests.conftest import lower_for_cuda

if not mosaic_kernel.interpreter_available():
  pytest.skip(
    f"jax {jax.__version__} has no Mosaic GPU interpreter", allow_module_level=True
  )


def _edges(seed, num_senders=40, num_receivers=30, num_edges=300):
  rng = np.random.default_rng(seed)
  # Heavy-tailed degrees, repeated edges, receivers 25-29 with no sender.
  receivers = np.minimum(rng.zipf(1.5, size=num_edges), num_receivers - 5) - 1
  senders = rng.integers(0, num_senders, size=num_edges)
  return rng, senders, receivers


def _in_order(x, senders, receivers, num_receivers, piece):
  """NumPy's float32 sums in the kernel's order: senders ascending, in pieces."""
  out = np.zeros((num_receivers, x.shape[1]), np.float32)
  for r in range(num_receivers):
    rows = x[np.sort(senders[receivers == r])].astype(np.float32)
    if len(rows):
      # np.cumsum adds one row after another (no pairwise tree).
      pieces = [
        np.cumsum(rows[i : i + piece], 0)[-1] for i in range(0, len(rows), piece)
      ]
      out[r] = np.cumsum(np.stack(pieces), 0)[-1]
  return out


@pytest.mark.parametrize(
  "piece,width,block,dim,dtype",
  [
    (1000, 4, 512, 5, jnp.float32),  # one piece per receiver, padded columns
    (8, 3, 256, 300, jnp.float32),  # pieces, 3 column blocks of 128, odd width
    (8, 4, 512, 130, jnp.bfloat16),  # bfloat16 pieces summed in float32
  ],
)
def test_mosaic_lists_sum_in_entry_order_like_numpy(piece, width, block, dim, dtype):
  rng, senders, receivers = _edges(piece + width)
  lists = MosaicSegmentLists.build(
    senders, receivers, 30, piece=piece, width=width, block=block
  )
  # A receiver of more than ``piece`` senders is summed in pieces.
  assert (lists.piece_starts is None) == (np.bincount(receivers).max() <= piece)
  x = jnp.asarray(rng.normal(size=(40, dim)), dtype)
  got = jax.jit(lists.sum)(x)
  assert got.shape == (30, dim) and got.dtype == dtype
  host = np.asarray(x, np.float32)
  want = _in_order(host, senders, receivers, 30, piece)
  # Bit for bit: float32 adds in entry order, one rounding to the dtype.
  np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.asarray(want, dtype)))
  exact = np.zeros((30, dim))
  np.add.at(exact, receivers, host[senders].astype(np.float64))
  tolerance = 1e-5 if dtype == jnp.float32 else 5e-2
  np.testing.assert_allclose(
    np.asarray(got, np.float64), exact, rtol=tolerance, atol=tolerance
  )
  # Receivers without senders are zero rows.
  assert not np.asarray(got[25:], np.float32).any()


def test_segment_sum_of_empty_segments_is_zero_and_keeps_the_dtype():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(4, 3)), jnp.bfloat16)
  starts = jnp.asarray([0, 0, 2, 2, 3], jnp.int32)
  indices = jnp.asarray([3, 1, 3], jnp.int32)
  got = segment_sum(x, starts, indices, out_dtype=jnp.float32)
  host = np.asarray(x, np.float32)
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(
    got, [np.zeros(3), host[3] + host[1], np.zeros(3), host[3]]
  )


def test_pieces_of_a_bfloat16_sum_add_up_in_float32():
  # 64 rows of 1 + 2**-8 in pieces of 4: bfloat16 piece sums would round.
  x = jnp.full((64, 2), 1 + 2**-8, jnp.bfloat16)
  lists = MosaicSegmentLists.build(np.arange(64), np.zeros(64, int), 1, piece=4)
  want = np.asarray(jnp.asarray(64 * (1 + 2**-8), jnp.bfloat16), np.float32)
  np.testing.assert_array_equal(np.asarray(lists.sum(x), np.float32), [[want] * 2])


def test_sums_and_gradients_do_not_depend_on_edge_order():
  rng, senders, receivers = _edges(7, num_edges=200)
  x = jnp.asarray(rng.normal(size=(40, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(30, 6)), jnp.float32)
  results = []
  for seed in range(2):
    order = np.random.default_rng(seed).permutation(len(senders))
    relation = Relation.build(senders[order], receivers[order], 40, 30, "mosaic")
    value, grad = jax.jit(
      jax.value_and_grad(lambda x, r: jnp.sum(relation_sum(x, r) * w))
    )(x, relation)
    results.append((np.asarray(value), np.asarray(grad)))
  assert results[0][0].tobytes() == results[1][0].tobytes()
  assert results[0][1].tobytes() == results[1][1].tobytes()
  # d/dx sum((A x) * w) = A^T w, A the 0/1 matrix with parallel edges.
  adjacency = np.zeros((30, 40))
  np.add.at(adjacency, (receivers, senders), 1)
  np.testing.assert_allclose(results[0][1], adjacency.T @ np.asarray(w), atol=1e-4)


def test_take_rows_gradient_sums_repeated_rows_like_numpy():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(12, 5)), jnp.float32)
  # Row 3 taken 40 times: one long segment of the gradient's sum.
  rows = np.concatenate([rng.integers(0, 12, size=24), np.full(40, 3)])
  rows = jnp.asarray(rng.permutation(rows), jnp.int32)
  cotangent = rng.normal(size=(64, 5)).astype(np.float32)
  out, pullback = jax.vjp(lambda x: take_rows(x, rows, layout="mosaic"), x)
  np.testing.assert_array_equal(out, np.asarray(x)[np.asarray(rows)])
  (grad,) = pullback(jnp.asarray(cotangent))
  want = np.zeros((12, 5), np.float32)
  for r in range(12):  # in ascending positions, one add after another
    taken = cotangent[np.asarray(rows) == r]
    if len(taken):
      want[r] = np.cumsum(taken, 0)[-1]
  np.testing.assert_array_equal(grad, want)


@pytest.mark.parametrize(
  "kwargs,message",
  [
    (dict(piece=0), "piece must be >= 1, got 0"),
    (dict(width=0), "width must be >= 1, got 0"),
    (dict(block=64), "block must be a positive multiple of 128, got 64"),
    (dict(block=200), "block must be a positive multiple of 128, got 200"),
  ],
)
def test_mosaic_lists_refuse_bad_shapes(kwargs, message):
  with pytest.raises(ValueError, match=message):
    MosaicSegmentLists.build(np.array([0]), np.array([0]), 1, **kwargs)


@pytest.mark.parametrize(
  "what,dim,dtype",
  [
    ("relation", 512, jnp.float32),
    ("relation in pieces", 200, jnp.bfloat16),
    ("rows gradient", 600, jnp.float32),
  ],
)
def test_kernel_lowers_to_mosaic_gpu_for_cuda(what, dim, dtype):
  # The lowering to a Mosaic GPU module runs without a GPU and catches what
  # the interpreter accepts but Mosaic GPU does not (layouts, loop carries,
  # loads from GMEM): padded columns (200, 600), both passes of a relation
  # cut into pieces, and the rows gradient.
  _, senders, receivers = _edges(5)
  lists = MosaicSegmentLists.build(
    senders, receivers, 30, piece=8 if "pieces" in what else 1000
  )
  assert (lists.piece_starts is not None) == ("pieces" in what)

  def run(x):
    if what == "rows gradient":
      rows = jnp.asarray(senders[:64], jnp.int32)
      return rows_gradient(rows, x[:64], 40, interpret=False)
    return lists.sum(x, interpret=False)

  text = lower_for_cuda(run, jax.ShapeDtypeStruct((40, dim), dtype))
  calls = text.count("custom_call @mosaic_gpu")
  assert calls == (2 if "pieces" in what else 1), text[:2000]
