"""Deterministic segment sums as one Pallas (Triton) kernel.

``out[s] = sum(x[indices[e]] for e in range(starts[s], starts[s + 1]))``:
one program per segment and block of columns gathers ``width`` rows at a
time into a ``(width, block)`` accumulator and reduces it once at the end.
Every program adds its rows in the same order on every run, with no
atomics, so the sums are bit-identical from run to run; the gathers are
the only memory traffic (no padded copies, no bucket concatenation).

A segment of very high degree would hold one program for as long as all
the others together, so :class:`SegmentLists` cuts each receiver's senders
into pieces of at most ``piece`` edges and sums the pieces in a second,
equally deterministic, call.

Lowered for CUDA the kernel is compiled by Triton; for any other platform
it runs in Pallas's interpreter (for tests: it is slow). JAX deprecated the
Triton lowering in 0.11 (lowering it warns); its successor is the Mosaic GPU
kernel of :mod:`bcjax.models.mosaic_kernel`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import pallas as pl

try:
  from jax.experimental.pallas import triton as plgpu
except ImportError:  # a JAX whose Triton lowering is gone (deprecated in 0.11)
  plgpu = None

# Whether this JAX still has Pallas's Triton lowering.
TRITON = plgpu is not None

# Edges gathered per loop trip, widest column block, the most edges one
# program sums, and Triton warps per program. On an H200 at the
# Musical-Instruments size (dim 512) one relation's sum forward and back took
# 0.28 ms at width 4, 0.37 ms at 8, 0.44 ms at 16 (8 warps), and the whole
# step 3.67 ms at width 4 against 3.79 ms at 8 (benchmarks/results/
# h200_f638f25); in the next call (h200_36daea0) widths 2-8, pieces of 32 or
# 64 and 2 or 4 warps all came within 0.04 ms of one another (0.29-0.33 ms),
# about the spread between calls, so the defaults stayed.
DEFAULT_WIDTH = 4
DEFAULT_BLOCK = 512
DEFAULT_PIECE = 64
DEFAULT_WARPS = 4


def _kernel(starts_ref, indices_ref, x_ref, out_ref, *, width, block, dim):
  segment = pl.program_id(0)
  column = pl.program_id(1) * block
  begin = starts_ref[segment]
  end = starts_ref[segment + 1]
  lanes = jnp.arange(width, dtype=jnp.int32)
  # Column indices as an array rather than a slice: the interpreter gathers
  # only with all-array indices, and Triton sees the same contiguous loads.
  columns = column + jnp.arange(block, dtype=jnp.int32)
  in_dim = columns < dim

  def gather(trip, total):
    edge = begin + trip * width + lanes
    inside = edge < end
    rows = plgpu.load(indices_ref.at[edge], mask=inside, other=0)
    values = plgpu.load(
      x_ref.at[rows[:, None], columns[None, :]],
      mask=inside[:, None] & in_dim[None, :],
      other=0.0,
    )
    return total + values.astype(jnp.float32)

  trips = (end - begin + width - 1) // width
  total = jax.lax.fori_loop(0, trips, gather, jnp.zeros((width, block), jnp.float32))
  out_ref[...] = jnp.sum(total, axis=0).astype(out_ref.dtype)


def _check_powers(width: int, block: int) -> None:
  # Triton's tensors have power-of-two shapes; the interpreter would accept
  # others, so a mistake would show only on a GPU.
  for name, value in (("width", width), ("block", block)):
    if value < 1 or value & (value - 1):
      raise ValueError(f"{name} must be a power of two >= 1, got {value}")


def segment_sum(
  x: jax.Array,
  starts: jax.Array,
  indices: jax.Array,
  *,
  width: int = DEFAULT_WIDTH,
  block: int = DEFAULT_BLOCK,
  num_warps: int = DEFAULT_WARPS,
  num_stages: int = 1,
  out_dtype=None,
) -> jax.Array:
  """Sums of rows of ``x`` over contiguous runs of ``indices``.

  Args:
    x: ``(num_rows, dim)`` rows to sum.
    starts: ``(num_segments + 1,)`` int32, non-decreasing: segment ``s``
      sums ``x[indices[starts[s]:starts[s + 1]]]``.
    indices: ``(num_entries,)`` int32 rows of ``x``, each in range; at least
      ``width - 1`` entries past ``starts[-1]`` (the interpreter reads them,
      masked, where the GPU reads nothing).
    width: entries gathered per loop trip (a power of two).
    block: columns per program (a power of two; the last block is masked).
    num_warps: Triton warps per program.
    num_stages: Triton's software-pipelining stages of the loop.
    out_dtype: dtype of the sums; None: ``x``'s.

  Returns:
    ``(num_segments, dim)`` sums, accumulated in float32; zero rows for
    empty segments.

  Raises:
    ValueError: ``width`` or ``block`` is not a power of two.
    RuntimeError: this JAX has no Triton lowering.
  """
  _check_powers(width, block)
  if not TRITON:
    raise RuntimeError(
      f"jax {jax.__version__} has no Pallas Triton lowering: use layout "
      "'mosaic' (bcjax.models.mosaic_kernel) or 'sorted'"
    )
  out_dtype = out_dtype or x.dtype
  num_segments = starts.shape[0] - 1
  dim = x.shape[1]
  block = min(block, pl.next_power_of_2(dim))
  blocks = pl.cdiv(dim, block)
  call = functools.partial(
    pl.pallas_call,
    functools.partial(_kernel, width=width, block=block, dim=dim),
    out_shape=jax.ShapeDtypeStruct((num_segments, blocks * block), out_dtype),
    grid=(num_segments, blocks),
    in_specs=[pl.no_block_spec] * 3,
    out_specs=pl.BlockSpec((None, block), lambda s, c: (s, c)),
    compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages),
    name="segment_sum",
  )
  # Chosen by the platform the computation is lowered for, not the default
  # backend: compiled for CUDA, Pallas's interpreter elsewhere.
  out = jax.lax.platform_dependent(
    starts, indices, x, cuda=call(), default=call(interpret=True)
  )
  return out if blocks * block == dim else out[:, :dim]


@struct.dataclass
class SegmentLists:
  """A relation's senders grouped by receiver, summed by :func:`segment_sum`.

  Attributes:
    starts: ``(num_pieces + 1,)`` int32 bounds of each piece in ``senders``.
    senders: ``(num_edges + width,)`` int32 sender rows, by receiver, then
      ascending (so the sums do not depend on the order edges came in).
    piece_starts: ``(num_receivers + 1,)`` int32 bounds of each receiver's
      pieces, or None when every receiver is one piece.
    num_receivers: static number of output rows.
    width: static entries gathered per loop trip.
    block: static columns per program.
    warps: static Triton warps per program.
    stages: static Triton pipelining stages.
  """

  starts: jax.Array
  senders: jax.Array
  piece_starts: jax.Array | None
  num_receivers: int = struct.field(pytree_node=False)
  width: int = struct.field(pytree_node=False, default=DEFAULT_WIDTH)
  block: int = struct.field(pytree_node=False, default=DEFAULT_BLOCK)
  warps: int = struct.field(pytree_node=False, default=DEFAULT_WARPS)
  stages: int = struct.field(pytree_node=False, default=1)

  @classmethod
  def build(
    cls,
    senders,
    receivers,
    num_receivers: int,
    *,
    piece: int = DEFAULT_PIECE,
    width: int = DEFAULT_WIDTH,
    block: int = DEFAULT_BLOCK,
    warps: int = DEFAULT_WARPS,
    stages: int = 1,
  ) -> SegmentLists:
    """Groups host edges ``senders[e] -> receivers[e]`` by receiver.

    Args:
      senders: ``(num_edges,)`` sender rows.
      receivers: ``(num_edges,)`` receiver rows, each below
        ``num_receivers``.
      num_receivers: output rows.
      piece: the most edges one program sums.
      width: entries gathered per loop trip (a power of two).
      block: columns per program (a power of two).
      warps: Triton warps per program.
      stages: Triton pipelining stages.

    Raises:
      ValueError: ``piece`` < 1, or ``width`` or ``block`` not a power of
        two.
    """
    if piece < 1:
      raise ValueError(f"piece must be >= 1, got {piece}")
    _check_powers(width, block)
    starts, senders, piece_starts = group_by_receiver(
      senders, receivers, num_receivers, piece
    )
    return cls(
      starts=jnp.asarray(starts, jnp.int32),
      senders=jnp.asarray(
        np.concatenate([senders, np.zeros(width, np.int64)]), jnp.int32
      ),
      piece_starts=None
      if piece_starts is None
      else jnp.asarray(piece_starts, jnp.int32),
      num_receivers=num_receivers,
      width=width,
      block=block,
      warps=warps,
      stages=stages,
    )

  def sum(self, x: jax.Array) -> jax.Array:
    """``(num_receivers, dim)`` sums of the senders' rows of ``x``."""
    kernel = functools.partial(
      segment_sum,
      width=self.width,
      block=self.block,
      num_warps=self.warps,
      num_stages=self.stages,
    )
    if self.piece_starts is None:
      return kernel(x, self.starts, self.senders)
    # Piece sums stay float32 until the receiver's total, whatever x's dtype.
    pieces = kernel(x, self.starts, self.senders, out_dtype=jnp.float32)
    # A receiver's pieces are consecutive rows of ``pieces``.
    rows = jnp.arange(pieces.shape[0] + self.width, dtype=jnp.int32)
    return kernel(pieces, self.piece_starts, rows, out_dtype=x.dtype)


def sorted_rows_gradient(
  rows: jax.Array, cotangent: jax.Array, num_rows: int, *, width: int = DEFAULT_WIDTH
) -> jax.Array:
  """The gradient of ``x[rows]`` without atomics: sums of equal rows.

  Args:
    rows: ``(n,)`` int32 gathered rows of ``x``.
    cotangent: ``(n, dim)`` cotangent of the gathered rows.
    num_rows: rows of ``x``.
    width: entries gathered per loop trip.

  Returns:
    ``(num_rows, dim)``: row ``r`` sums ``cotangent[i]`` over ``rows[i] ==
    r`` in ascending ``i``.
  """
  starts, order = rows_in_order(rows, num_rows)
  order = jnp.concatenate([order, jnp.zeros(width, jnp.int32)])
  return segment_sum(cotangent, starts, order, width=width)


def group_by_receiver(senders, receivers, num_receivers: int, piece: int):
  """Host edges ``senders[e] -> receivers[e]`` as runs of one receiver.

  Args:
    senders: ``(num_edges,)`` sender rows.
    receivers: ``(num_edges,)`` receiver rows, each below ``num_receivers``.
    num_receivers: output rows.
    piece: the most edges one run holds.

  Returns:
    ``(starts, senders, piece_starts)`` as NumPy arrays: ``senders`` sorted
    by receiver, then ascending (so sums over them do not depend on the
    order edges came in); ``starts`` the ``(num_pieces + 1,)`` bounds of
    each run of at most ``piece`` of them; ``piece_starts`` the
    ``(num_receivers + 1,)`` bounds of each receiver's runs, or None when
    every receiver is one run (then ``num_pieces == num_receivers``).
  """
  senders, receivers = np.asarray(senders), np.asarray(receivers)
  senders = senders[np.lexsort((senders, receivers))]
  degree = np.bincount(receivers, minlength=num_receivers)
  bounds = np.concatenate([[0], np.cumsum(degree)])
  if degree.max(initial=0) <= piece:
    return bounds, senders, None
  pieces = -(-degree // piece)  # ceil; 0 for receivers without senders
  piece_starts = np.concatenate([[0], np.cumsum(pieces)])
  owner = np.repeat(np.arange(num_receivers), pieces)
  offset = np.arange(len(owner)) - piece_starts[owner]
  starts = np.append(bounds[owner] + offset * piece, bounds[-1])
  return starts, senders, piece_starts


def rows_in_order(rows: jax.Array, num_rows: int) -> tuple[jax.Array, jax.Array]:
  """Positions of ``rows`` grouped by row, for a segment sum per row.

  Args:
    rows: ``(n,)`` int32 rows, each below ``num_rows``.
    num_rows: the number of segments.

  Returns:
    ``(starts, order)``: ``(num_rows + 1,)`` and ``(n,)`` int32, such that
    ``order[starts[r]:starts[r + 1]]`` are the ``i`` with ``rows[i] == r``,
    ascending.
  """
  order = jnp.argsort(rows, stable=True).astype(jnp.int32)
  # Counting with integer adds is exact in any order, atomics or not; a
  # searchsorted here was a loop of small kernels (about 1 ms on an H200).
  counts = jnp.zeros(num_rows, jnp.int32).at[rows].add(1, mode="drop")
  starts = jnp.concatenate(
    [jnp.zeros(1, jnp.int32), jnp.cumsum(counts, dtype=jnp.int32)]
  )
  return starts, order
