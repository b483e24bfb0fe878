"""Sums of neighbour rows over a bipartite relation, and their gradients.

Message passing, the item encoder's embedding bags and the BPR batch's row
lookups all add rows of one array into rows of another. Done with scatter-add
(``jax.ops.segment_sum``, or the gradient of a gather) that is fast, but on a
GPU the adds are atomic and their order changes from run to run, so two runs
with the same seed part after a few steps. This module holds two layouts of a
relation "receiver ``r`` sums the rows of its senders":

* :class:`EdgeList` (``"scatter"``): receiver-sorted edges reduced by
  scatter-add, in cache-sized chunks on CPU (:func:`default_edge_chunk`).
  Deterministic on CPU and TPU, not on GPU.
* :class:`NeighbourLists` (``"sorted"``): each receiver's senders as a padded
  row, receivers bucketed by degree (so padding stays under a factor of
  ``growth``); every bucket is one gather reduced along its row, with no
  atomics, and a permutation puts the receivers back in order. Bit-identical
  from run to run on any backend.
* :class:`~bcjax.models.segment_kernel.SegmentLists` (``"pallas"``): the
  senders grouped by receiver and summed by one Pallas kernel that gathers
  and adds them in a fixed order. Bit-identical from run to run; compiled
  by Triton for CUDA GPUs only (elsewhere Pallas interprets it, for tests).
  JAX deprecated Pallas's Triton lowering in 0.11.
* :class:`~bcjax.models.mosaic_kernel.MosaicSegmentLists` (``"mosaic"``):
  the same grouping, summed by the kernel's Mosaic GPU port (the Triton
  lowering's successor; Hopper or newer). Bit-identical from run to run;
  off a GPU it runs in Mosaic GPU's interpreter, for tests.

A :class:`Relation` carries both directions, so that the gradient of a sum
is the sum over the transposed relation in the same layout: autodiff would
otherwise turn the forward's gather into a scatter-add in sender order.
Mapped over embedding seeds (which share the graph), :func:`relation_sum`
asks the layout for its own ``sum_mapped`` where it has one
(:meth:`EdgeList.sum_mapped` folds the seeds into its columns).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import struct

from bcjax.models import mosaic_kernel
from bcjax.models.mosaic_kernel import MosaicSegmentLists
from bcjax.models.segment_kernel import TRITON, SegmentLists

LAYOUTS = ("scatter", "sorted", "pallas", "mosaic")
DETERMINISTIC_LAYOUTS = ("sorted", "pallas", "mosaic")

# Widest over narrowest degree of a sorted layout's bucket. On an H200 at
# the Musical-Instruments size (dim 512) one relation's sum forward and back
# took 0.59 ms at growth 2 against 0.67 ms at 1.5
# (benchmarks/results/h200_a0b99bf).
DEFAULT_GROWTH = 2.0


def default_layout(backend: str | None = None) -> str:
  """The fastest layout that is deterministic on ``backend``.

  Scatter-add runs sequentially on CPU and TPU (deterministic there); on GPU
  its atomics are not, and the Pallas kernel is: on an H200 at the
  Musical-Instruments size its step took 1.04x the atomic one, the degree
  buckets' 1.70x (benchmarks/results/h200_36daea0, one process). So a CUDA
  GPU of compute capability 9.0 or newer (Hopper, where both kernels were
  meant to run) gets the Triton kernel ``"pallas"`` while this JAX still
  has Pallas's Triton lowering (deprecated since JAX 0.11, it warns when
  lowered); its Mosaic GPU port ``"mosaic"`` is not timed yet, nor run on a
  GPU, so it becomes the default only where the Triton lowering is gone.
  Older CUDA GPUs, ROCm GPUs (neither kernel is compiled for them), and a
  JAX with neither lowering, get the degree buckets. Where no GPU is
  visible, ``backend="gpu"`` is taken to mean a Hopper GPU.
  """
  if (backend or jax.default_backend()) != "gpu":
    return "scatter"
  if _gpu_generation() != "hopper":
    return "sorted"
  if TRITON:
    return "pallas"
  return "mosaic" if mosaic_kernel.MOSAIC_GPU else "sorted"


def _rocm() -> bool:
  return _gpu_generation() == "rocm"


def _gpu_generation() -> str:
  """``"rocm"``, ``"hopper"`` (CUDA, compute capability >= 9.0) or ``"older"``."""
  try:
    device = jax.devices("gpu")[0]
  except RuntimeError:  # no GPU here: asked about GPUs in general
    return "hopper"
  if "rocm" in device.client.platform_version.lower():
    return "rocm"
  capability = str(getattr(device, "compute_capability", "0"))
  return "hopper" if int(capability.split(".")[0]) >= 9 else "older"


def default_edge_chunk(backend: str | None = None) -> int:
  """Edges per scatter-add chunk that is fastest on ``backend``.

  On CPU, gathering all ``(num_edges, dim)`` messages before the scatter
  streams them through memory twice; in chunks of 4096 edges they stay in
  cache (ml-100k, dim 256: aggregation forward and backward 224 ms -> 15 ms
  on 2 cores). On accelerators the single fused pass is the fast one.

  Args:
    backend: a JAX backend name; None for the default backend.

  Returns:
    The chunk size, 0 for a single pass.
  """
  return 4096 if (backend or jax.default_backend()) == "cpu" else 0


@struct.dataclass
class EdgeList:
  """Receiver-sorted edges, summed by scatter-add.

  Attributes:
    senders: ``(num_slots,)`` int32 sender row of each edge; 0 in padding.
    receivers: ``(num_slots,)`` int32 receiver row, sorted;
      ``num_receivers`` in padding slots, which the scatter drops.
    num_receivers: static number of output rows.
    chunk: static edges per scatter (0: all edges in one pass); the slots
      are padded to a whole number of chunks.
  """

  senders: jax.Array
  receivers: jax.Array
  num_receivers: int = struct.field(pytree_node=False)
  chunk: int = struct.field(pytree_node=False)

  @classmethod
  def build(cls, senders, receivers, num_receivers: int, chunk: int) -> EdgeList:
    """Sorts host edges by receiver and pads them to whole chunks."""
    if len(senders) <= chunk:
      chunk = 0  # one pass over all edges, no padding
    # Stable: a receiver's senders keep the caller's order, and so does the
    # order of their adds.
    order = np.argsort(receivers, kind="stable")
    pad = (-len(senders)) % chunk if chunk else 0
    return cls(
      senders=jnp.asarray(
        np.concatenate([senders[order], np.zeros(pad, np.int64)]), jnp.int32
      ),
      receivers=jnp.asarray(
        np.concatenate([receivers[order], np.full(pad, num_receivers)]), jnp.int32
      ),
      num_receivers=num_receivers,
      chunk=chunk,
    )

  def sum(self, x: jax.Array) -> jax.Array:
    """``(num_receivers, dim)`` sums of the senders' rows of ``x``."""
    n = self.num_receivers
    if not self.chunk:
      return jax.ops.segment_sum(
        x[self.senders], self.receivers, num_segments=n, indices_are_sorted=True
      )

    # One chunk's messages at a time, so they never leave cache.
    def add_chunk(total, edges):
      senders, receivers = edges
      total = total.at[receivers].add(x[senders], mode="drop", indices_are_sorted=True)
      return total, None

    chunks = (
      self.senders.reshape(-1, self.chunk),
      self.receivers.reshape(-1, self.chunk),
    )
    summed, _ = jax.lax.scan(add_chunk, jnp.zeros((n, x.shape[1]), x.dtype), chunks)
    return summed

  def sum_mapped(self, x: jax.Array) -> jax.Array:
    """:meth:`sum` of each of ``x``'s ``(S, num_senders, ...)``, as one sum.

    Seeds in lockstep map one relation over their rows. XLA's CPU
    scatter-add of a vmapped ``(S, rows, dim)`` array falls off a cliff at
    some widths: an epoch of ten ml-100k seeds at the default config's dims
    took 2.5x (dim 40) and 3.5x (dim 56) the time of the ten seeds one by
    one. Here the seeds are folded into the columns, so every scatter adds
    contiguous rows of ``S * dim`` in the same edge order as each seed alone
    (the sums are bit-identical to it), in chunks smaller by the next power
    of two >= S, so that a chunk's gathered rows hold no more numbers than
    the unbatched chunk's and stay in cache. Only the chunked (CPU) sum
    folds, where this was measured; a one-pass sum (the GPU default) maps.
    """
    if not self.chunk:
      return jax.vmap(self.sum)(x)
    shrink = 1 << max(x.shape[0] - 1, 0).bit_length()
    chunk = max(self.chunk // shrink, 1)
    while self.chunk % chunk:  # the slots are whole chunks of the old size
      chunk -= 1
    rows = jnp.moveaxis(x, 0, 1)
    summed = _sum(self.replace(chunk=chunk), rows.reshape(rows.shape[0], -1))
    return jnp.moveaxis(summed.reshape(summed.shape[0], *rows.shape[1:]), 1, 0)


@struct.dataclass
class NeighbourLists:
  """Each receiver's senders as one padded row, receivers bucketed by degree.

  Attributes:
    buckets: one ``(receivers in bucket, width)`` int32 array of sender rows
      per degree bucket, padded with ``num_senders`` (which
      :meth:`sum` reads as a zero row appended to its input).
    position: ``(num_receivers,)`` int32 row of each receiver in the
      concatenated bucket sums; receivers without senders point one past
      the last, at a zero row.
    num_receivers: static number of output rows.
  """

  buckets: tuple[jax.Array, ...]
  position: jax.Array
  num_receivers: int = struct.field(pytree_node=False)

  @classmethod
  def build(
    cls,
    senders,
    receivers,
    num_senders: int,
    num_receivers: int,
    growth: float = DEFAULT_GROWTH,
  ) -> NeighbourLists:
    """Buckets host edges by receiver degree.

    Args:
      senders: ``(num_edges,)`` sender rows.
      receivers: ``(num_edges,)`` receiver rows.
      num_senders: rows of the summed array (the padding value).
      num_receivers: output rows.
      growth: the widest degree of a bucket is at most this times its
        narrowest, which bounds the padding.
    """
    if growth <= 1:
      raise ValueError(f"growth must be > 1, got {growth}")
    senders, receivers = np.asarray(senders), np.asarray(receivers)
    # Ascending senders within a receiver: the sums do not depend on the
    # order the edges came in.
    senders = senders[np.lexsort((senders, receivers))]
    degree = np.bincount(receivers, minlength=num_receivers)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    has = np.flatnonzero(degree)
    level = np.floor(np.log(degree[has]) / np.log(growth) + 1e-9).astype(np.int64)
    position = np.zeros(num_receivers, np.int64)
    buckets, row = [], 0
    for each in np.unique(level):
      members = has[level == each]
      width = int(degree[members].max())
      col = np.arange(width)
      inside = col[None, :] < degree[members][:, None]
      rows = np.full((len(members), width), num_senders, np.int64)
      rows[inside] = senders[(start[members][:, None] + col[None, :])[inside]]
      buckets.append(jnp.asarray(rows, jnp.int32))
      position[members] = row + np.arange(len(members))
      row += len(members)
    position[degree == 0] = row
    return cls(tuple(buckets), jnp.asarray(position, jnp.int32), num_receivers)

  def sum(self, x: jax.Array) -> jax.Array:
    """``(num_receivers, dim)`` sums of the senders' rows of ``x``."""
    # Padding reads an appended zero row, so every index is in bounds. A
    # gather in "fill" mode adds a mask and a select, which XLA materialised
    # and transposed before the reduction: on an H200 at the
    # Musical-Instruments size one relation's sum forward and back took
    # 0.90 ms that way and 0.67 ms this way, both at growth 1.5; the step
    # took 6.17 ms that way at growth 1.5 and 5.79 ms this way at growth 2
    # (benchmarks/results/h200_a0b99bf). Indices past the padding row would
    # read garbage, not zeros: relation_sum checks the rows of x.
    padded = jnp.concatenate([x, jnp.zeros((1, x.shape[1]), x.dtype)])
    sums = [
      jnp.sum(padded.at[rows].get(mode="promise_in_bounds"), axis=1)
      for rows in self.buckets
    ]
    sums.append(jnp.zeros((1, x.shape[1]), x.dtype))
    return jnp.concatenate(sums)[self.position]


@struct.dataclass
class Relation:
  """Both directions of one relation, in one layout.

  Attributes:
    forward: receivers sum their senders' rows.
    transpose: senders sum their receivers' rows (the forward's adjoint).
  """

  forward: EdgeList | NeighbourLists | SegmentLists | MosaicSegmentLists
  transpose: EdgeList | NeighbourLists | SegmentLists | MosaicSegmentLists

  @classmethod
  def build(
    cls,
    senders,
    receivers,
    num_senders: int,
    num_receivers: int,
    layout: str,
    edge_chunk: int = 0,
  ) -> Relation:
    """Both directions of host edges ``senders[e] -> receivers[e]``.

    The sorted, pallas and mosaic layouts add each receiver's senders in
    ascending order; the scatter layout in the order of the edges (sort them by
    ``(sender, receiver)`` for ascending senders in both directions).

    Args:
      senders: ``(num_edges,)`` int sender rows.
      receivers: ``(num_edges,)`` int receiver rows.
      num_senders: rows of the array that is summed.
      num_receivers: rows of the sum.
      layout: one of :data:`LAYOUTS`.
      edge_chunk: edges per scatter (``"scatter"`` only; 0: one pass).

    Raises:
      ValueError: a row outside its range, an unknown layout, or a negative
        ``edge_chunk``.
    """
    senders = np.asarray(senders, np.int64)
    receivers = np.asarray(receivers, np.int64)
    for name, rows, bound in (
      ("senders", senders, num_senders),
      ("receivers", receivers, num_receivers),
    ):
      # A GPU gather reads past the end unchecked: refuse such rows here.
      if len(rows) and (rows.min() < 0 or rows.max() >= bound):
        raise ValueError(
          f"{name} must lie in [0, {bound}), got rows {rows.min()}..{rows.max()}"
        )
    if layout == "scatter":
      if edge_chunk < 0:
        raise ValueError(f"edge_chunk must be >= 0 (0: no chunking), got {edge_chunk}")
      return cls(
        EdgeList.build(senders, receivers, num_receivers, edge_chunk),
        EdgeList.build(receivers, senders, num_senders, edge_chunk),
      )
    if layout == "sorted":
      return cls(
        NeighbourLists.build(senders, receivers, num_senders, num_receivers),
        NeighbourLists.build(receivers, senders, num_receivers, num_senders),
      )
    if layout == "pallas":
      if jax.default_backend() != "gpu" or _rocm():
        logging.log_first_n(
          logging.WARNING,
          "layout 'pallas' runs its kernel in Pallas's interpreter on %s (slow, "
          "for tests): use 'scatter' or 'sorted' there",
          1,
          jax.default_backend(),
        )
      return cls(
        SegmentLists.build(senders, receivers, num_receivers),
        SegmentLists.build(receivers, senders, num_senders),
      )
    if layout == "mosaic":
      if jax.default_backend() != "gpu" or _rocm():
        logging.log_first_n(
          logging.WARNING,
          "layout 'mosaic' runs its kernel in Mosaic GPU's interpreter on %s "
          "(slow, for tests; ROCm GPUs cannot compile it): use 'scatter' or "
          "'sorted' there",
          1,
          jax.default_backend(),
        )
      return cls(
        MosaicSegmentLists.build(senders, receivers, num_receivers),
        MosaicSegmentLists.build(receivers, senders, num_senders),
      )
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")

  @property
  def T(self) -> Relation:  # noqa: N802 (the matrix transpose's usual name)
    return Relation(self.transpose, self.forward)


@jax.custom_vjp
def relation_sum(x: jax.Array, relation: Relation) -> jax.Array:
  """``A @ x`` for the 0/1 matrix ``A`` of ``relation``.

  Args:
    x: ``(num_senders, dim)`` rows to sum.
    relation: which rows go into which.

  Returns:
    ``(num_receivers, dim)``; zero rows for receivers without senders.

  Raises:
    ValueError: ``x`` has not one row per sender of ``relation`` (checked
      while tracing: the deterministic layouts' gathers assume it, and
      on a GPU a row past the end is read unchecked).
  """
  _check_rows(x, relation)
  return _sum(relation.forward, x)


def _check_rows(x, relation):
  num_senders = relation.transpose.num_receivers
  if x.shape[0] != num_senders:
    raise ValueError(
      f"relation_sum: x has {x.shape[0]} rows, the relation {num_senders} senders"
    )


def _relation_sum_fwd(x, relation):
  _check_rows(x, relation)
  return _sum(relation.forward, x), relation


def _relation_sum_bwd(relation, cotangent):
  # The adjoint of summing over the relation is summing over its transpose,
  # in the same (deterministic, receiver-ordered) layout.
  return _sum(relation.transpose, cotangent), None


relation_sum.defvjp(_relation_sum_fwd, _relation_sum_bwd)


# custom_vmap has no autodiff rule: it sits inside relation_sum's custom VJP,
# whose forward and backward are never differentiated.
@jax.custom_batching.custom_vmap
def _sum(lists, x: jax.Array) -> jax.Array:
  """``lists.sum(x)``; mapped over ``x`` alone, ``lists.sum_mapped`` if any."""
  return lists.sum(x)


@_sum.def_vmap
def _sum_vmap(axis_size, in_batched, lists, x):
  del axis_size
  lists_batched, x_batched = in_batched
  mapped = getattr(lists, "sum_mapped", None)
  if x_batched and mapped is not None and not any(jax.tree.leaves(lists_batched)):
    return mapped(x), True
  axes = (
    jax.tree.map(lambda batched: 0 if batched else None, lists_batched),
    0 if x_batched else None,
  )
  return jax.vmap(type(lists).sum, in_axes=axes)(lists, x), True
