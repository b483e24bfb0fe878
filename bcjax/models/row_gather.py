"""Row lookups ``x[rows]`` whose gradient sums rows deterministically.

The BPR batch looks up user and item rows with repeats; autodiff turns that
gather into a scatter-add whose atomics, on a GPU, add in a varying order.
:func:`take_rows` keeps the forward gather and computes the gradient the way
an aggregation layout of :mod:`bcjax.models.aggregation` sums rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bcjax.models import mosaic_kernel
from bcjax.models.aggregation import LAYOUTS
from bcjax.models.segment_kernel import sorted_rows_gradient


def take_rows(x: jax.Array, rows: jax.Array, *, layout: str) -> jax.Array:
  """``x[rows]``, with a gradient computed the way ``layout`` sums rows.

  A gather's gradient is a scatter-add of the cotangent rows into ``x``; with
  repeated ``rows`` on a GPU its atomics add in a varying order. The
  deterministic gradients sort the rows and sum each run of equal rows in a
  fixed order: ``"sorted"`` with a segmented scan (a fixed tree of adds)
  whose sums are written once, ``"pallas"`` and ``"mosaic"`` with their
  segment-sum kernels.

  Args:
    x: ``(num_rows, dim)``.
    rows: ``(n,)`` int32 indices.
    layout: one of :data:`~bcjax.models.aggregation.LAYOUTS`; ``"scatter"`` keeps autodiff's
      scatter-add (deterministic on CPU and TPU).

  Returns:
    ``(n, dim)``.
  """
  if layout == "scatter":
    return x[rows]
  if layout == "sorted":
    return _take_rows(x, rows)
  if layout == "pallas":
    return _take_rows_kernel(x, rows)
  if layout == "mosaic":
    return _take_rows_mosaic(x, rows)
  raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


@jax.custom_vjp
def _take_rows(x, rows):
  return x[rows]


def _take_rows_fwd(x, rows):
  # A zero-size stand-in carries the static row count into the backward.
  return x[rows], (rows, jnp.zeros((x.shape[0], 0), x.dtype))


def _take_rows_bwd(residuals, cotangent):
  rows, like = residuals
  num_rows = like.shape[0]
  order = jnp.argsort(rows, stable=True)
  ordered, values = rows[order], cotangent[order]
  starts = jnp.concatenate([jnp.ones(1, bool), ordered[1:] != ordered[:-1]])

  def segmented_add(a, b):
    start_a, sum_a = a
    start_b, sum_b = b
    return start_a | start_b, jnp.where(start_b[:, None], sum_b, sum_a + sum_b)

  _, sums = jax.lax.associative_scan(segmented_add, (starts, values))
  last = jnp.concatenate([ordered[1:] != ordered[:-1], jnp.ones(1, bool)])
  # Each row is written once (the others go out of range and are dropped),
  # so the adds below have no order to vary.
  target = jnp.where(last, ordered, num_rows)
  grad = jnp.zeros((num_rows, cotangent.shape[1]), cotangent.dtype)
  grad = grad.at[target].add(sums, mode="drop")
  return grad, None


_take_rows.defvjp(_take_rows_fwd, _take_rows_bwd)


@jax.custom_vjp
def _take_rows_kernel(x, rows):
  return x[rows]


def _take_rows_kernel_bwd(residuals, cotangent):
  rows, like = residuals
  return sorted_rows_gradient(rows, cotangent, like.shape[0]), None


_take_rows_kernel.defvjp(_take_rows_fwd, _take_rows_kernel_bwd)


@jax.custom_vjp
def _take_rows_mosaic(x, rows):
  return x[rows]


def _take_rows_mosaic_bwd(residuals, cotangent):
  rows, like = residuals
  return mosaic_kernel.rows_gradient(rows, cotangent, like.shape[0]), None


_take_rows_mosaic.defvjp(_take_rows_fwd, _take_rows_mosaic_bwd)
