"""The preprocessing of matched rows and their moments, in one chunked pass.

Every bridge normalises and centres its rows the same way
(:class:`Preprocessing`); the moment families (:mod:`bcjax.align.families`)
are fitted from ``A = X^T X / n`` and ``C = X^T Y / n`` of the preprocessed
rows (:func:`moments`), computed in chunks so that a fit of millions of rows
holds one chunk at a time beyond the inputs.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

# Rows per chunk of the moment pass: a (65536, 1024) float32 block is 256 MiB.
MOMENT_CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """What every bridge does to rows before and after its map.

  ``x -> (x / ||x||  if normalize) - mean_new``, then the family's map, then
  ``+ mean_old``; the old rows of the fit get the same treatment with
  ``mean_old``. Without centring the means are zero.

  Attributes:
    normalize: L2-normalise rows (both sides when fitting, the input when
      applying; the output is not renormalised, so an affine bridge stays
      one matrix and one bias after the normalisation).
    mean_new: ``(d_new,)`` float32.
    mean_old: ``(d_old,)`` float32.
  """

  normalize: bool
  mean_new: np.ndarray
  mean_old: np.ndarray

  @property
  def center(self) -> bool:
    return bool(np.any(self.mean_new) or np.any(self.mean_old))


def normalize_rows(z):
  """Rows over their L2 norms; all-zero rows stay zero. NumPy or JAX."""
  xp = jnp if isinstance(z, jax.Array) else np
  norm = xp.linalg.norm(z, axis=-1, keepdims=True)
  return z / xp.maximum(norm, 1e-30)


def _chunks(n: int, rows: np.ndarray | None, chunk: int):
  for start in range(0, n if rows is None else len(rows), chunk):
    stop = start + chunk
    yield slice(start, stop) if rows is None else rows[start:stop]


def row_means(z: np.ndarray, rows=None, *, normalize: bool, chunk=MOMENT_CHUNK):
  """``(d,)`` mean of the (normalised) ``rows`` of ``z`` (all when None), float32."""
  total, count = np.zeros(z.shape[1], np.float64), 0
  for part in _chunks(len(z), rows, chunk):
    block = np.asarray(z[part], np.float32)
    if normalize:
      block = normalize_rows(block)
    total += block.sum(axis=0, dtype=np.float64)
    count += len(block)
  return (total / max(count, 1)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Moments:
  """The sufficient statistics of the moment families, in float64.

  Attributes:
    gram: ``(d_new, d_new)`` ``A = X^T X / n``.
    cross: ``(d_new, d_old)`` ``C = X^T Y / n``.
    target: ``mean_rows ||y||^2``, the error of the zero map.
    rows: ``n``.
  """

  gram: np.ndarray
  cross: np.ndarray
  target: float
  rows: int


def moments(
  new: np.ndarray,
  old: np.ndarray,
  prep: Preprocessing,
  rows: np.ndarray | None = None,
  chunk: int = MOMENT_CHUNK,
) -> Moments:
  """``A``, ``C`` and ``mean ||y||^2`` of the preprocessed ``rows``, in one pass.

  Each chunk is copied once into a ``[X_c, Y_c]`` float32 buffer (normalised
  and centred in place), then one GEMM ``[X_c, Y_c]^T X_c`` gives both
  ``X_c^T X_c`` and ``Y_c^T X_c``: faster than two products on a few cores.
  Chunk sums are accumulated in float64, so the rounding of a sum of ``n``
  rows is that of one chunk, not of ``n / chunk`` chunks. Centring happens
  per chunk before the product rather than by subtracting ``n mu mu^T``
  afterwards, which would cancel digits when the means are large.

  Args:
    new: ``(N, d_new)`` raw new rows.
    old: ``(N, d_old)`` raw old rows.
    prep: the normalisation and means to apply.
    rows: which rows to use (all when None).
    chunk: rows per product.
  """
  d_new, d_old = new.shape[1], old.shape[1]
  gram = np.zeros((d_new, d_new), np.float64)
  cross = np.zeros((d_new, d_old), np.float64)
  buffer = np.empty((min(chunk, len(new)), d_new + d_old), np.float32)
  target, n = 0.0, 0
  for part in _chunks(len(new), rows, chunk):
    x_raw = new[part]
    both = buffer[: len(x_raw)]
    x, y = both[:, :d_new], both[:, d_new:]
    x[...], y[...] = x_raw, old[part]
    if prep.normalize:
      x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
      y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-30)
    if prep.center:
      x -= prep.mean_new
      y -= prep.mean_old
    product = both.T @ x
    gram += product[:d_new]
    cross += product[d_new:].T
    target += float(np.einsum("ij,ij->", y, y, dtype=np.float64))
    n += len(x)
  return Moments(gram / n, cross / n, target / n, n)


def prepare(z, prep: Preprocessing, side: str) -> np.ndarray:
  """Rows of ``side`` (``"new"`` or ``"old"``) normalised and centred, float32."""
  z = np.asarray(z, np.float32)
  if prep.normalize:
    z = normalize_rows(z)
  return z - (prep.mean_new if side == "new" else prep.mean_old)
