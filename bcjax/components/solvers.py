"""Exact closed-form fits of a backward transform to frozen embeddings.

The post-hoc objective is weighed as the post-hoc selection criterion weighs
it: the mean of the user MSE and the item MSE, each over every node of the
version's graph. For ``groups`` of rows ``(Z_g, Y_g)`` (users, items) the fits
minimise ``1/2 sum_g mean_rows ||Z_g W - Y_g||^2`` (plus a ridge term for the
unconstrained fit), with ``Z`` the version-k embeddings ``(n_g, d_k)`` and
``Y`` the version-(k-1) ones ``(n_g, d_{k-1})``, both on version k's graph.

Everything is computed in float64 on the host (NumPy): the Gram matrices are
small (``d_k x d_k``), and solving in float32 would lose digits for nothing.

The solves themselves work on the two moments, ``A = Z^T Z / n`` and
``C = Z^T Y / n`` (:func:`ridge_solve`, :func:`polar`), so that align's bridge
families (:mod:`bcjax.align.families`), which stream their moments over
millions of preprocessed rows, fit with the same solvers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bcjax.errors import InputError


def _moments(current: Sequence, previous: Sequence, width: int):
  """``sum_g Z_g^T Z_g / n_g`` and ``sum_g Z_g^T Y_g / n_g`` (``Y`` padded)."""
  gram, cross = 0.0, 0.0
  for z, y in zip(current, previous, strict=True):
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    if z.shape[0] != y.shape[0] or z.shape[0] == 0:
      raise InputError(
        f"a closed-form fit needs the same non-zero number of rows on both "
        f"sides, got {z.shape[0]} and {y.shape[0]}"
      )
    if y.shape[1] < width:
      y = np.pad(y, ((0, 0), (0, width - y.shape[1])))
    gram = gram + z.T @ z / z.shape[0]
    cross = cross + z.T @ y / z.shape[0]
  return gram, cross


def ridge_solve(gram: np.ndarray, cross: np.ndarray, ridge: float) -> np.ndarray:
  """``(A + rho I)^+ C`` with ``rho = ridge * mean(diag(A))``, by ``eigh``.

  The minimiser of ``mean_rows ||Z W - Y||^2 + rho ||W||_F^2`` given the
  moments ``A = Z^T Z / n`` and ``C = Z^T Y / n``. The ridge is relative, so
  it means the same at any embedding scale. The pseudo-inverse (eigenvalues
  below ``1e-12`` of the largest dropped) gives the minimum-norm solution
  where ``A`` is singular (fewer rows than columns, dead units, constant
  columns) instead of a solve's noise.

  Args:
    gram: ``(d, d)`` ``A``, symmetric positive semi-definite.
    cross: ``(d, d_out)`` ``C``.
    ridge: the relative ridge (>= 0).

  Returns:
    ``W``, ``(d, d_out)`` float64.
  """
  rho = ridge * float(np.mean(np.diag(gram)))
  values, vectors = np.linalg.eigh(gram)
  values = values + rho
  keep = values > 1e-12 * max(float(values.max()), 1e-300)
  inverse = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
  return vectors @ (inverse[:, None] * (vectors.T @ cross))


def polar(cross: np.ndarray) -> np.ndarray:
  """The semi-orthogonal ``W`` maximising ``tr(W^T C)``: ``U V^T`` (thin SVD).

  When ``d <= d_out``, ``W W^T = I`` makes ``||Z W||`` constant, so this is
  the exact least-squares optimum. When ``d > d_out``, it is the first
  ``d_out`` columns of the square Procrustes rotation fitted to ``Y`` padded
  with zeros (:func:`procrustes`): the padded cross moment is ``[C, 0]``.

  Args:
    cross: ``(d, d_out)`` ``C = Z^T Y / n``.

  Returns:
    ``W``, ``(d, d_out)`` float64, orthonormal along its shorter side.
  """
  u, _, vt = np.linalg.svd(cross, full_matrices=False)
  return u @ vt


def least_squares(current: Sequence, previous: Sequence, ridge: float) -> np.ndarray:
  """Ridge least squares: the ``W`` of the normal equations.

  Minimises ``1/2 sum_g mean_rows ||Z_g W - Y_g||^2 + rho ||W||_F^2`` with
  ``rho = ridge * mean(diag(A))``, ``A = sum_g Z_g^T Z_g / n_g``: the ridge is
  relative, so it means the same at any embedding scale. The normal equations
  are ``(A + 2 rho I) W = sum_g Z_g^T Y_g / n_g``, solved by
  :func:`ridge_solve` (minimum-norm where ``A`` is singular).

  Args:
    current: per group, ``(n_g, d_k)`` embeddings ``Z_g``.
    previous: per group, ``(n_g, d_{k-1})`` embeddings ``Y_g``.
    ridge: the relative ridge (>= 0).

  Returns:
    ``W``, ``(d_k, d_{k-1})`` float32.
  """
  gram, cross = _moments(current, previous, 0)
  return ridge_solve(gram, cross, 2.0 * ridge).astype(np.float32)


def procrustes(current: Sequence, previous: Sequence) -> np.ndarray:
  """Orthogonal Procrustes in the padded square form.

  ``R`` in ``O(d_k)`` minimises ``sum_g mean_rows ||Z_g R - [Y_g, 0]||^2``
  (``Y`` padded with zeros to ``d_k`` columns). As ``||Z_g R||`` does not
  depend on ``R``, that is maximising ``tr(R^T M)`` with
  ``M = sum_g Z_g^T [Y_g, 0] / n_g``, solved by ``R = U V^T`` for the SVD
  ``M = U S V^T``. ``W`` is the first ``d_{k-1}`` columns of ``R``: a served
  embedding is the first ``d_{k-1}`` coordinates of an isometry of ``z_k``,
  which is :func:`polar` of the unpadded moment.

  Args:
    current: per group, ``(n_g, d_k)`` embeddings ``Z_g``.
    previous: per group, ``(n_g, d_{k-1})`` embeddings ``Y_g``, ``d_{k-1} <= d_k``.

  Returns:
    ``W``, ``(d_k, d_{k-1})`` float32 with orthonormal columns.
  """
  d_in, d_out = np.shape(current[0])[1], np.shape(previous[0])[1]
  if d_out > d_in:
    raise InputError(
      f"orthogonal Procrustes maps {d_in} dims to at most {d_in}, not {d_out}"
    )
  _, cross = _moments(current, previous, 0)
  return polar(cross).astype(np.float32)
