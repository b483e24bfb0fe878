"""The Pallas segment-sum kernel against NumPy, in Pallas's interpreter.

The interpreter runs the kernel's program logic (loop bounds, masks,
gathers) on CPU; that the same kernel also lowers to Triton is checked by
lowering it for CUDA here, which needs no GPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.models.segment_kernel import SegmentLists, segment_sum, sorted_rows_gradient


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


def test_segment_lists_sum_is_bit_identical_under_shuffled_edges():
  rng, senders, receivers = _edges(3)
  x = jnp.asarray(rng.normal(size=(40, 6)), jnp.float32)
  sums = []
  for seed in range(3):
    order = np.random.default_rng(seed).permutation(len(senders))
    lists = SegmentLists.build(senders[order], receivers[order], 30, piece=5, width=2)
    sums.append(np.asarray(lists.sum(x)).tobytes())
  assert sums[1:] == sums[:1] * 2


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
    (dict(piece=0), "piece must be >= 1"),
    (dict(width=3), "width, block powers of two"),
    (dict(block=48), "block=48"),
  ],
)
def test_segment_lists_refuse_bad_shapes(kwargs, message):
  with pytest.raises(ValueError, match=message):
    SegmentLists.build(np.array([0]), np.array([0]), 1, **kwargs)


def test_kernel_lowers_to_triton_for_cuda():
  # The Triton lowering (Pallas -> Triton IR) runs without a GPU; a kernel
  # the interpreter accepts can still fail there.
  _, senders, receivers = _edges(5)
  lists = SegmentLists.build(senders, receivers, 30, piece=8)

  def both(x):
    return segment_sum(x, lists.starts, lists.senders, interpret=False)

  lowered = (
    jax.jit(both)
    .trace(jax.ShapeDtypeStruct((40, 512), jnp.float32))
    .lower(lowering_platforms=("cuda",))
  )
  text = lowered.as_text()
  assert "triton" in text and "segment_sum" in text
