"""The Pallas segment-sum kernel against NumPy, in Pallas's interpreter.

The interpreter runs the kernel's program logic (loop bounds, masks,
gathers) on CPU; that the same kernel also lowers to Triton is checked by
lowering it for CUDA here, which needs no GPU.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.models.segment_kernel import (
  TRITON,
  SegmentLists,
  segment_sum,
  sorted_rows_gradient,
)
from tests.conftest import lower_for_cuda


def _edges(seed, num_senders=40, num_receivers=30, num_edges=300):
  rng = np.random.default_rng(seed)
  # Heavy-tailed degrees, repeated edges, receivers with no sender.
  receivers = np.minimum(rng.zipf(1.5, size=num_edges), num_receivers - 5) - 1
  senders = rng.integers(0, num_senders, size=num_edges)
  return rng, senders, receivers


@pytest.mark.parametrize(
  "piece,width,block,dim",
  [(1000, 8, 512, 5), (4, 4, 8, 20), (7, 2, 4, 4), (1, 1, 2, 3)],
)
def test_segment_lists_sum_any_relation_like_numpy(piece, width, block, dim):
  rng, senders, receivers = _edges(piece + width)
  lists = SegmentLists.build(
    senders, receivers, 30, piece=piece, width=width, block=block
  )
  # A receiver of more than ``piece`` senders is summed in pieces.
  assert (lists.piece_starts is None) == (np.bincount(receivers).max() <= piece)
  x = rng.normal(size=(40, dim)).astype(np.float32)
  want = np.zeros((30, dim))
  np.add.at(want, receivers, x[senders].astype(np.float64))
  got = lists.sum(jnp.asarray(x))
  assert got.shape == (30, dim) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_segment_sum_of_empty_segments_is_zero_and_keeps_the_dtype():
  x = jnp.arange(12, dtype=jnp.bfloat16).reshape(4, 3)
  starts = jnp.asarray([0, 0, 2, 2], jnp.int32)
  indices = jnp.asarray([3, 1] + [0] * 8, jnp.int32)
  got = segment_sum(x, starts, indices)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_array_equal(
    np.asarray(got, np.float32), [[0, 0, 0], [12, 14, 16], [0, 0, 0]]
  )


def test_sorted_rows_gradient_sums_repeated_rows_like_numpy():
  rng = np.random.default_rng(4)
  rows = jnp.asarray(rng.integers(0, 9, size=50), jnp.int32)
  cotangent = rng.normal(size=(50, 7)).astype(np.float32)
  want = np.zeros((12, 7))
  np.add.at(want, np.asarray(rows), cotangent)
  got = sorted_rows_gradient(rows, jnp.asarray(cotangent), 12, width=4)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  "kwargs,message",
  [
    (dict(piece=0), "piece must be >= 1, got 0"),
    (dict(width=3), "width must be a power of two >= 1, got 3"),
    (dict(block=48), "block must be a power of two >= 1, got 48"),
    (dict(block=0), "block must be a power of two >= 1, got 0"),
  ],
)
def test_segment_lists_refuse_bad_shapes(kwargs, message):
  with pytest.raises(ValueError, match=message):
    SegmentLists.build(np.array([0]), np.array([0]), 1, **kwargs)


def test_a_width_triton_cannot_take_is_refused_before_the_gpu():
  x, starts = jnp.ones((3, 2)), jnp.asarray([0, 3], jnp.int32)
  with pytest.raises(ValueError, match="width must be a power of two >= 1, got 3"):
    segment_sum(x, starts, jnp.zeros(6, jnp.int32), width=3)


def test_pieces_of_a_bfloat16_sum_add_up_in_float32():
  # 64 rows of 1 + 2**-8 in pieces of 4: bfloat16 piece sums would round.
  x = jnp.full((64, 2), 1 + 2**-8, jnp.bfloat16)
  lists = SegmentLists.build(np.arange(64), np.zeros(64, int), 1, piece=4)
  want = np.asarray(jnp.asarray(64 * (1 + 2**-8), jnp.bfloat16), np.float32)
  np.testing.assert_array_equal(np.asarray(lists.sum(x), np.float32), [[want] * 2])


@pytest.mark.parametrize(
  "what,dim,dtype",
  [
    ("relation", 512, jnp.float32),
    ("relation in pieces", 48, jnp.bfloat16),
    ("rows gradient", 600, jnp.float32),
  ],
)
def test_kernel_lowers_to_triton_for_cuda(what, dim, dtype):
  # The Triton lowering (Pallas -> Triton IR) runs without a GPU, and
  # catches what the interpreter accepts but Triton does not (shapes that
  # are not powers of two, say): the masked last block (48, 600), both
  # passes of a relation cut into pieces, and the rows gradient.
  if not TRITON:
    pytest.skip(f"jax {jax.__version__} has no Pallas Triton lowering any more")
  _, senders, receivers = _edges(5)
  lists = SegmentLists.build(
    senders, receivers, 30, piece=8 if "pieces" in what else 1000
  )
  assert (lists.piece_starts is not None) == ("pieces" in what)

  def run(x):
    if what == "rows gradient":
      return sorted_rows_gradient(jnp.asarray(senders[:64], jnp.int32), x[:64], 40)
    return lists.sum(x)

  # JAX 0.11 deprecated the Triton lowering: lowering it warns (from inside
  # JAX), which is expected here and nowhere else.
  deprecated = (
    pytest.warns(DeprecationWarning, match="Pallas Triton backend is deprecated")
    if jax.__version_info__ >= (0, 11)
    else contextlib.nullcontext()
  )
  with deprecated:
    text = lower_for_cuda(run, jax.ShapeDtypeStruct((40, dim), dtype))
  calls = text.count("__gpu$xla.gpu.triton")
  assert calls == (2 if "pieces" in what else 1), text[:2000]
