"""Exact closed-form fits of a backward transform to frozen embeddings.

The post-hoc objective is weighed as the post-hoc selection criterion weighs
it: the mean of the user MSE and the item MSE, each over every node of the
version's graph. For ``groups`` of rows ``(Z_g, Y_g)`` (users, items) the fits
minimise ``1/2 sum_g mean_rows ||Z_g W - Y_g||^2`` (plus a ridge term for the
unconstrained fit), with ``Z`` the version-k embeddings ``(n_g, d_k)`` and
``Y`` the version-(k-1) ones ``(n_g, d_{k-1})``, both on version k's graph.

Everything is computed in float64 on the host (NumPy): the Gram matrices are
small (``d_k x d_k``), and solving in float32 would lose digits for nothing.
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


def least_squares(current: Sequence, previous: Sequence, ridge: float) -> np.ndarray:
  """Ridge least squares: the ``W`` of the normal equations.

  Minimises ``1/2 sum_g mean_rows ||Z_g W - Y_g||^2 + rho ||W||_F^2`` with
  ``rho = ridge * mean(diag(A))``, ``A = sum_g Z_g^T Z_g / n_g``: the ridge is
  relative, so it means the same at any embedding scale. The normal equations
  are ``(A + 2 rho I) W = sum_g Z_g^T Y_g / n_g``.

  Args:
    current: per group, ``(n_g, d_k)`` embeddings ``Z_g``.
    previous: per group, ``(n_g, d_{k-1})`` embeddings ``Y_g``.
    ridge: the relative ridge (>= 0).

  Returns:
    ``W``, ``(d_k, d_{k-1})`` float32.
  """
  gram, cross = _moments(current, previous, 0)
  rho = ridge * float(np.mean(np.diag(gram)))
  w = np.linalg.solve(gram + 2.0 * rho * np.eye(gram.shape[0]), cross)
  return w.astype(np.float32)


def procrustes(current: Sequence, previous: Sequence) -> np.ndarray:
  """Orthogonal Procrustes in the padded square form.

  ``R`` in ``O(d_k)`` minimises ``sum_g mean_rows ||Z_g R - [Y_g, 0]||^2``
  (``Y`` padded with zeros to ``d_k`` columns). As ``||Z_g R||`` does not
  depend on ``R``, that is maximising ``tr(R^T M)`` with
  ``M = sum_g Z_g^T [Y_g, 0] / n_g``, solved by ``R = U V^T`` for the SVD
  ``M = U S V^T``. ``W`` is the first ``d_{k-1}`` columns of ``R``: a served
  embedding is the first ``d_{k-1}`` coordinates of an isometry of ``z_k``.

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
  _, cross = _moments(current, previous, d_in)
  u, _, vt = np.linalg.svd(cross)
  return (u @ vt)[:, :d_out].astype(np.float32)
