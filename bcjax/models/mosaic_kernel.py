"""Deterministic segment sums as one Mosaic GPU kernel, for Hopper GPUs.

``out[s] = sum(x[indices[e]] for e in range(starts[s], starts[s + 1]))``,
the contract of :func:`bcjax.models.segment_kernel.segment_sum`, on Pallas's
Mosaic GPU lowering, the successor of the Triton lowering that JAX
deprecated in 0.11. One kernel instance (a CUDA block of one warpgroup,
128 threads) per segment and block of columns walks the segment's entries
in order and adds each gathered row into a float32 accumulator held in
registers, every thread owning the same few columns all along. So every
output element is ``((0 + x[i0]) + x[i1]) + ...`` in entry order, on every
run and for any ``width`` or ``block``: no atomics, bit-identical run to run.

How rows are gathered: with plain vector loads from global memory (a read
of a dynamically indexed row of the GMEM ref), ``width`` rows issued before
the first of their adds, not with per-row TMA copies into shared memory. A
row is one contiguous run of ``block`` elements read once by 128 threads
side by side (coalesced), nothing is reused, and an instance is small
(registers only, no shared memory), so many instances share an SM and hide
each other's latency: a ring of TMA copies, barriers and shared-memory
slots would add synchronisation without saving traffic. That is untimed: a
GPU session compares it with the Triton kernel
(``benchmarks/aggregation_probe.py``'s ``mosaic`` candidates).

Mosaic GPU spreads a row block over the 128 threads of a warpgroup, so
blocks are multiples of 128 columns; ``x`` is padded with zero columns to
such a width when it has another (one extra copy of ``x``).

Off a GPU the kernel runs in Mosaic GPU's interpreter (slow, for tests).
Which is chosen at trace time, not by the lowering platform as the Triton
kernel is: the interpreter carries an ordered IO effect, and a
``lax.platform_dependent`` holding it would put that effect on the GPU
program too (tokens threaded through every step; ordered effects are
refused on more than one device).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import struct
from jax.experimental import pallas as pl

from bcjax.models.segment_kernel import group_by_receiver, rows_in_order

try:
  from jax.experimental.pallas import mosaic_gpu as plgpu
except ImportError:  # a JAX without Mosaic GPU
  plgpu = None

# Whether this JAX has Mosaic GPU kernels (``plgpu.kernel``).
MOSAIC_GPU = plgpu is not None and hasattr(plgpu, "kernel")

# Threads of a warpgroup: a row block is spread over them, so a block is a
# multiple of this many columns.
LANES = 128
# The widest load of one thread, in bytes: 16 (LDG.128) lets 128 threads
# read 2048 bytes of a row in one instruction each.
VECTOR_BYTES = 16
# Rows loaded per loop trip before their adds (loads in flight per thread),
# widest column block, the most edges one instance sums. Untimed: the Triton
# kernel's measured defaults (bcjax.models.segment_kernel).
DEFAULT_WIDTH = 4
DEFAULT_BLOCK = 512
DEFAULT_PIECE = 64


def _interpret_params():
  """Mosaic GPU's interpreter settings, or None where JAX has none."""
  params = getattr(plgpu, "InterpretGPUParams", None)
  if params is None:
    try:  # JAX 0.10 has the interpreter but does not export it yet
      from jax._src.pallas.mosaic_gpu.interpret.params import (  # noqa: PLC0415
        InterpretGPUParams as params,
      )
    except ImportError:
      return None
  return params()


def interpreter_available() -> bool:
  """Whether this JAX can run the kernel off a GPU (tests, CPU runs)."""
  return MOSAIC_GPU and _interpret_params() is not None


def _kernel(
  starts_ref, indices_ref, x_ref, out_ref, *, width, block, vector, interpreted
):
  segment = jax.lax.axis_index("segment")
  column = pl.multiple_of(jax.lax.axis_index("column") * block, block)
  columns = pl.ds(column, block)
  # Thread t owns the runs t, t + 128, ... of ``vector`` columns: the loads
  # are coalesced, and each element is summed by one thread, in one order.
  # Set explicitly so that the accumulator has the loads' layout from the
  # first trip on (a zero splat would not match them as a loop carry).
  layout = plgpu.Layout.WG_STRIDED((block,), vec_size=vector)

  def in_layout(values):
    # Layouts place values on threads, which the interpreter does not model
    # (and JAX 0.10's interpreter has no rule for layout_cast).
    return values if interpreted else plgpu.layout_cast(values, layout)

  begin = starts_ref[segment]
  end = starts_ref[segment + 1]

  def row(entry):
    # A plain ref read (``plgpu.load`` changed its signature after JAX 0.10)
    # in the loads' layout: one vector load per thread and register vector.
    values = in_layout(x_ref[indices_ref[entry], columns])
    return values.astype(jnp.float32)

  def trip(step, total):
    first = begin + step * width
    # All loads before any add: ``width`` rows in flight per thread. The adds
    # then go in entry order, so the sum is the same whatever ``width``.
    rows = [row(first + lane) for lane in range(width)]
    for values in rows:
      total = total + values
    return total

  total = in_layout(jnp.zeros((block,), jnp.float32))
  full = (end - begin) // width
  total = jax.lax.fori_loop(0, full, trip, total)
  # The last ``(end - begin) % width`` entries one at a time: no masks (the
  # loads have none) and nothing read past the segment.
  total = jax.lax.fori_loop(
    begin + full * width, end, lambda entry, total: total + row(entry), total
  )
  out_ref[segment, columns] = total.astype(out_ref.dtype)


def _check_shape(width: int, block: int) -> None:
  if width < 1:
    raise ValueError(f"width must be >= 1, got {width}")
  if block < LANES or block % LANES:
    raise ValueError(f"block must be a positive multiple of {LANES}, got {block}")


def _interpret(interpret: bool | None):
  """The ``interpret`` argument of ``plgpu.kernel``, or an error."""
  if interpret is None:
    interpret = jax.default_backend() != "gpu"
  if not interpret:
    return None
  params = _interpret_params()
  if params is None:
    raise RuntimeError(
      f"jax {jax.__version__} has no Mosaic GPU interpreter: the mosaic "
      "layout runs on CUDA GPUs only here"
    )
  return params


def segment_sum(
  x: jax.Array,
  starts: jax.Array,
  indices: jax.Array,
  *,
  width: int = DEFAULT_WIDTH,
  block: int = DEFAULT_BLOCK,
  out_dtype=None,
  interpret: bool | None = None,
) -> jax.Array:
  """Sums of rows of ``x`` over contiguous runs of ``indices``.

  Args:
    x: ``(num_rows, dim)`` rows to sum.
    starts: ``(num_segments + 1,)`` int32, non-decreasing: segment ``s``
      sums ``x[indices[starts[s]:starts[s + 1]]]``.
    indices: ``(num_entries,)`` int32 rows of ``x``, each in range (a GPU
      reads a row past the end unchecked); none is read past ``starts[-1]``.
    width: rows loaded per loop trip (any ``>= 1``).
    block: columns per kernel instance, a multiple of 128; lowered to the
      largest multiple of 128 that divides ``dim`` rounded up to 128.
    out_dtype: dtype of the sums; None: ``x``'s.
    interpret: run in Mosaic GPU's interpreter; None: when the default
      backend is not a GPU.

  Returns:
    ``(num_segments, dim)`` sums, accumulated in float32 in entry order;
    zero rows for empty segments.

  Raises:
    ValueError: ``width`` < 1, or ``block`` not a multiple of 128.
    RuntimeError: interpreted, on a JAX without Mosaic GPU's interpreter.
  """
  _check_shape(width, block)
  if not MOSAIC_GPU:
    raise RuntimeError(f"jax {jax.__version__} has no Mosaic GPU (plgpu.kernel)")
  out_dtype = out_dtype or x.dtype
  num_segments = starts.shape[0] - 1
  dim = x.shape[1]
  padded = -(-dim // LANES) * LANES
  if padded != dim:
    x = jnp.pad(x, ((0, 0), (0, padded - dim)))
  block = LANES * math.gcd(block // LANES, padded // LANES)
  # The widest power-of-two vector that splits the block evenly over the
  # threads (a bfloat16 row is read 8 elements at a time, float32 4).
  vector = max(1, VECTOR_BYTES // x.dtype.itemsize)
  while (block // LANES) % vector:
    vector //= 2
  interpret = _interpret(interpret)
  body = functools.partial(
    _kernel,
    width=width,
    block=block,
    vector=vector,
    interpreted=interpret is not None,
  )
  call = plgpu.kernel(
    body,
    out_type=jax.ShapeDtypeStruct((num_segments, padded), out_dtype),
    # The last grid axis is CUDA's x, the one of up to 2**31 - 1 blocks:
    # segments there, and a segment's column blocks run side by side.
    grid=(padded // block, num_segments),
    grid_names=("column", "segment"),
    interpret=interpret,
    kernel_name="mosaic_segment_sum",
  )
  out = call(starts, indices, x)
  return out if padded == dim else out[:, :dim]


@struct.dataclass
class MosaicSegmentLists:
  """A relation's senders grouped by receiver, summed by :func:`segment_sum`.

  The layout ``"mosaic"`` of :mod:`bcjax.models.aggregation`: the grouping
  of :class:`~bcjax.models.segment_kernel.SegmentLists`, summed by the
  Mosaic GPU kernel.

  Attributes:
    starts: ``(num_pieces + 1,)`` int32 bounds of each piece in ``senders``.
    senders: ``(max(num_edges, 1),)`` int32 sender rows, by receiver, then
      ascending (so the sums do not depend on the order edges came in).
    piece_starts: ``(num_receivers + 1,)`` int32 bounds of each receiver's
      pieces, or None when every receiver is one piece.
    num_receivers: static number of output rows.
    width: static rows loaded per loop trip.
    block: static columns per kernel instance.
  """

  starts: jax.Array
  senders: jax.Array
  piece_starts: jax.Array | None
  num_receivers: int = struct.field(pytree_node=False)
  width: int = struct.field(pytree_node=False, default=DEFAULT_WIDTH)
  block: int = struct.field(pytree_node=False, default=DEFAULT_BLOCK)

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
  ) -> MosaicSegmentLists:
    """Groups host edges ``senders[e] -> receivers[e]`` by receiver.

    A receiver of more than ``piece`` senders is cut into pieces, so that
    one heavy receiver does not hold one kernel instance for as long as all
    the others together; a second call sums its pieces.

    Args:
      senders: ``(num_edges,)`` sender rows.
      receivers: ``(num_edges,)`` receiver rows, each below
        ``num_receivers``.
      num_receivers: output rows.
      piece: the most edges one kernel instance sums.
      width: rows loaded per loop trip.
      block: columns per kernel instance (a multiple of 128).

    Raises:
      ValueError: ``piece`` or ``width`` < 1, or ``block`` not a multiple
        of 128.
    """
    if piece < 1:
      raise ValueError(f"piece must be >= 1, got {piece}")
    _check_shape(width, block)
    starts, senders, piece_starts = group_by_receiver(
      senders, receivers, num_receivers, piece
    )
    return cls(
      starts=jnp.asarray(starts, jnp.int32),
      # One entry at least: no zero-size operand for the kernel.
      senders=jnp.asarray(senders if len(senders) else [0], jnp.int32),
      piece_starts=None
      if piece_starts is None
      else jnp.asarray(piece_starts, jnp.int32),
      num_receivers=num_receivers,
      width=width,
      block=block,
    )

  def sum(self, x: jax.Array, *, interpret: bool | None = None) -> jax.Array:
    """``(num_receivers, dim)`` sums of the senders' rows of ``x``.

    ``interpret`` as in :func:`segment_sum`.
    """
    kernel = functools.partial(
      segment_sum, width=self.width, block=self.block, interpret=interpret
    )
    if self.piece_starts is None:
      return kernel(x, self.starts, self.senders)
    # Piece sums stay float32 until the receiver's total, whatever x's dtype.
    pieces = kernel(x, self.starts, self.senders, out_dtype=jnp.float32)
    # A receiver's pieces are consecutive rows of ``pieces``.
    rows = jnp.arange(pieces.shape[0], dtype=jnp.int32)
    return kernel(pieces, self.piece_starts, rows, out_dtype=x.dtype)


def rows_gradient(
  rows: jax.Array,
  cotangent: jax.Array,
  num_rows: int,
  *,
  width: int = DEFAULT_WIDTH,
  interpret: bool | None = None,
) -> jax.Array:
  """The gradient of ``x[rows]`` without atomics: sums of equal rows.

  Args:
    rows: ``(n,)`` int32 gathered rows of ``x``, ``n >= 1``.
    cotangent: ``(n, dim)`` cotangent of the gathered rows.
    num_rows: rows of ``x``.
    width: rows loaded per loop trip.
    interpret: as in :func:`segment_sum`.

  Returns:
    ``(num_rows, dim)``: row ``r`` sums ``cotangent[i]`` over ``rows[i] ==
    r`` in ascending ``i``.
  """
  starts, order = rows_in_order(rows, num_rows)
  return segment_sum(cotangent, starts, order, width=width, interpret=interpret)
