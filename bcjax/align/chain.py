"""Chains of bridges: the newest embeddings served at any older version.

For versions ``v0..vK`` with ``bridges[k - 1]`` mapping version ``k`` to
version ``k - 1``, a consumer of version ``j`` reads
``B_{j+1}(B_{j+2}(... B_K(z_K)))``. Affine bridges (linear families, centred
or not) collapse into one matrix and one bias per target version, computed
once and cached, so serving any version costs one matmul per chunk:
``z W_K + b_K`` then ``(.) W_{K-1} + b_{K-1}`` is ``z (W_K W_{K-1}) +
(b_K W_{K-1} + b_{K-1})``. A chain collapses when every bridge on it is
affine and only its first (newest) bridge normalises its input: a
normalisation in the middle is not affine. Otherwise it is applied step by
step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np

from bcjax.align.bridge import Bridge, check_rows, load
from bcjax.align.moments import normalize_rows
from bcjax.components.chains import BackwardChain
from bcjax.errors import InputError


class Chain:
  """The bridges of versions ``0..K``, newest served at any version.

  Attributes:
    bridges: ``bridges[k - 1]`` maps version ``k`` to version ``k - 1``.
    dims: the width of each version ``0..K``.
    latest_version: ``K``.
  """

  def __init__(self, bridges: Sequence[Bridge]):
    self.bridges = tuple(bridges)
    if not self.bridges:
      raise InputError("a chain needs at least one bridge (versions 0 and 1)")
    for k in range(1, len(self.bridges)):
      below, above = self.bridges[k - 1], self.bridges[k]
      if above.d_old != below.d_new:
        raise InputError(
          f"bridge {k + 1} maps to {above.d_old} dims but bridge {k} reads "
          f"{below.d_new}: version {k} must have one width"
        )
    self.dims = (self.bridges[0].d_old,) + tuple(b.d_new for b in self.bridges)
    self.latest_version = len(self.bridges)
    self._collapsed: dict[int, BackwardChain] = {}
    self._stepped: dict[int, BackwardChain] = {}

  def _check_version(self, version) -> int:
    if not isinstance(version, (int, np.integer)) or isinstance(version, bool):
      raise InputError(f"to_version must be an integer, got {version!r}")
    if not 0 <= version <= self.latest_version:
      raise InputError(
        f"to_version {version} does not exist; versions are 0..{self.latest_version}"
      )
    return int(version)

  def why_not_affine(self, to_version: int) -> str | None:
    """Why the chain to ``to_version`` does not collapse, or None if it does."""
    steps = self.bridges[to_version:][::-1]
    for i, bridge in enumerate(steps):
      k = self.latest_version - i
      if not bridge.affine:
        return f"bridge {k} ({bridge.family}) is not affine"
      if i > 0 and bridge.normalize:
        return f"bridge {k} normalises its input in the middle of the chain"
    return None

  def affine(self, to_version: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(M, b, normalize)``: version ``K`` to ``to_version`` as one map.

    ``z -> (z / ||z|| if normalize) @ M + b``, in float64.

    Raises:
      InputError: when the chain is not affine (the reason in one line).
    """
    to_version = self._check_version(to_version)
    reason = self.why_not_affine(to_version)
    if reason is not None:
      raise InputError(f"the chain to version {to_version} cannot collapse: {reason}")
    matrix = np.eye(self.dims[-1])
    bias = np.zeros(self.dims[-1])
    for bridge in self.bridges[to_version:][::-1]:
      w, c = bridge.matrix_and_bias()
      matrix, bias = matrix @ w, bias @ w + c
    normalize = to_version < self.latest_version and self.bridges[-1].normalize
    return matrix, bias, normalize

  def apply(self, z, to_version: int, *, collapse: bool | None = None) -> np.ndarray:
    """Version ``K`` rows ``(n, d_K)`` served as version ``to_version``.

    Args:
      z: the newest embeddings.
      to_version: the version ``j`` to serve.
      collapse: True: one matrix and bias (refused if not affine); False:
        bridge by bridge; None: collapse when the chain is affine.
    """
    to_version = self._check_version(to_version)
    z = check_rows("embeddings", z, self.dims[-1])
    if to_version == self.latest_version:
      return z
    if collapse is None:
      collapse = self.why_not_affine(to_version) is None
    if collapse:
      if to_version not in self._collapsed:
        matrix, bias, normalize = self.affine(to_version)
        weights = (matrix.astype(np.float32), bias.astype(np.float32))
        self._collapsed[to_version] = BackwardChain(_affine_fn(normalize), weights)
      return self._collapsed[to_version](z)
    if to_version not in self._stepped:
      steps = self.bridges[to_version:][::-1]

      @jax.jit
      def fn(rows, weights):
        del weights  # the bridges' arrays are constants of this chain's function
        for bridge in steps:
          rows = bridge.apply_jax(rows)
        return rows

      self._stepped[to_version] = BackwardChain(fn, ())
    return self._stepped[to_version](z)

  def save(self, directory: str) -> None:
    """Writes ``bridge_1.npz`` .. ``bridge_K.npz`` under ``directory``."""
    for k, bridge in enumerate(self.bridges, start=1):
      bridge.save(os.path.join(directory, f"bridge_{k}.npz"))


def load_chain(directory: str) -> Chain:
  """The chain :meth:`Chain.save` wrote: ``bridge_1.npz`` upwards, no gaps."""
  bridges, k = [], 1
  while os.path.exists(os.path.join(directory, f"bridge_{k}.npz")):
    bridges.append(load(os.path.join(directory, f"bridge_{k}.npz")))
    k += 1
  if not bridges:
    raise InputError(f"no bridge_1.npz in {directory}: not a saved chain")
  return Chain(bridges)


def _affine_fn(normalize: bool):
  @jax.jit
  def fn(z, weights):
    matrix, bias = weights
    if normalize:
      z = normalize_rows(z)
    return z @ matrix + bias

  return fn
