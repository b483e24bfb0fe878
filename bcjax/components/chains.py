"""Chains of backward transforms, as ``optax.chain`` is of gradient transforms.

``compose(B_a, ..., B_b)`` is ``B_a o ... o B_b``: it applies ``B_b`` first,
which is the order of the paper's ``B_{a..b}`` (newest version innermost).
A chain of linear transforms collapses into one matrix
(:func:`collapse_linear`), which is how serving maps the newest embeddings to
an old version in one matmul.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from bcjax.components.transforms import BackwardTransform
from bcjax.errors import InputError

# Rows served per call: a bigger input is applied in chunks of this many.
_SERVE_CHUNK = 1 << 16


def compose(*transforms: BackwardTransform) -> BackwardTransform:
  """``B_1 o ... o B_n``: applies ``B_n`` first; params are a tuple in order.

  ``init(key, d_n_in, ..., d_0)`` takes the dims of the chain from the
  innermost input (``B_n``'s) to the outermost output (``B_1``'s). With no
  transforms, it is the identity.
  """

  def init(key, *dims):
    if len(dims) != len(transforms) + 1:
      raise InputError(
        f"compose of {len(transforms)} transforms needs {len(transforms) + 1} "
        f"dims, got {dims}"
      )
    keys = jax.random.split(key, max(len(transforms), 1))
    # transforms[i] maps dims[n - i - 1] -> dims[n - i].
    n = len(transforms)
    return tuple(
      t.init(keys[i], dims[n - i - 1], dims[n - i]) for i, t in enumerate(transforms)
    )

  def apply(params, z):
    for t, p in zip(reversed(transforms), reversed(params), strict=True):
      z = t.apply(p, z)
    return z

  return BackwardTransform(init, apply, "compose")


def collapse_linear(kernels: Sequence[jax.Array]) -> jax.Array:
  """One matrix for a chain of linear transforms ``B_1 o ... o B_n``.

  Args:
    kernels: ``W_1, ..., W_n`` with ``W_i`` of shape ``(d_i, d_{i-1})``.

  Returns:
    ``W_n @ ... @ W_1`` of shape ``(d_n, d_0)``: ``z @ M`` equals applying
    ``B_n`` first and ``B_1`` last.
  """
  matrix = kernels[-1]
  for kernel in reversed(kernels[:-1]):
    matrix = matrix @ kernel
  return matrix


@dataclasses.dataclass(frozen=True)
class BackwardChain:
  """A jitted ``fn(z, weights)`` with its weights: a backward chain.

  Attributes:
    fn: ``(z (n, d_k), weights) -> (n, d_j)``, jitted.
    weights: the collapsed matrix ``(d_k, d_j)``, or the parameters of each
      transform of the chain, newest first.
  """

  fn: Callable
  weights: object

  def __call__(self, z) -> np.ndarray:
    """Applies the chain to host rows, in bucketed chunks."""
    return _bucketed(self.fn, z, self.weights)

  def on_device(self, z: jax.Array) -> jax.Array:
    """Applies the chain to rows already placed (e.g. sharded) on devices."""
    return self.fn(z, self.weights)


def _bucketed(fn: Callable, z, weights) -> np.ndarray:
  """``fn(z, weights)`` in chunks padded to power-of-two row counts."""
  z = np.asarray(z, np.float32)
  out = []
  for start in range(0, z.shape[0], _SERVE_CHUNK):
    part = z[start : start + _SERVE_CHUNK]
    n = part.shape[0]
    bucket = min(max(256, 1 << max(n - 1, 0).bit_length()), _SERVE_CHUNK)
    part = np.pad(part, ((0, bucket - n), (0, 0)))
    out.append(np.asarray(fn(part, weights))[:n])
  return np.concatenate(out)
