"""Chains of backward transforms, as ``optax.chain`` is of gradient transforms.

``compose(B_a, ..., B_b)`` is ``B_a o ... o B_b``: it applies ``B_b`` first,
which is the order of the paper's ``B_{a..b}`` (newest version innermost).
A chain of linear transforms collapses into one matrix
(:func:`collapse_linear`), which is how serving maps the newest embeddings to
an old version in one matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax

from bcjax.components.transforms import BackwardTransform
from bcjax.errors import InputError


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
