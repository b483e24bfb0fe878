"""How far apart two embedding versions are: the alignment errors.

* ``alignment_error_previous``: the mean of the user and the item MSE between
  ``B_k(z_k)`` and ``z_{k-1}`` (M_{k-1} re-run on version k's graph), the
  post-hoc selection criterion;
* ``alignment_error_v0``: the same between ``B_{1..k}(z_k)`` and M_0 on
  version k's graph (fix-m0's embeddings);
* ``distance_to_fix_m0``: the mean over users and items of the mean L2
  distance between those two, the table's alignment error.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bcjax.transforms import BackwardTransform, compose


def embedding_mse(
  outputs: tuple[jax.Array, jax.Array], targets: tuple[jax.Array, jax.Array]
) -> float:
  """Mean of the user and the item MSE between two ``(user, item)`` pairs."""
  errors = [jnp.mean((o - t) ** 2) for o, t in zip(outputs, targets, strict=True)]
  return float(sum(errors) / len(errors))


def alignment_error(
  transform: BackwardTransform,
  params: Any,
  current: tuple[jax.Array, jax.Array],
  previous: tuple[jax.Array, jax.Array],
) -> float:
  """Mean of the user and the item MSE between ``B(z_k)`` and ``z_{k-1}``.

  Args:
    transform: the family of ``B``.
    params: its parameters.
    current: ``(user, item)`` embeddings ``z_k``, ``(n, d_k)`` each.
    previous: ``(user, item)`` embeddings ``z_{k-1}``, ``(n, d_{k-1})`` each.
  """
  return embedding_mse(tuple(transform.apply(params, z) for z in current), previous)


def mean_distance(a: jax.Array, b: jax.Array) -> float:
  """Mean over rows of the L2 distance between ``a`` and ``b`` (same shape)."""
  return float(jnp.mean(jnp.linalg.norm(a - b, axis=-1)))


def version_alignment(
  transform: BackwardTransform,
  chain_params: tuple,
  current: tuple[jax.Array, jax.Array],
  previous: tuple[jax.Array, jax.Array],
  m0: tuple[jax.Array, jax.Array],
) -> dict[str, float]:
  """The three alignment errors of version k (see the module docstring).

  Args:
    transform: the family of every ``B_j`` of the strategy.
    chain_params: the parameters of ``B_1, ..., B_k`` (oldest first).
    current: ``(user, item)`` embeddings ``z_k`` on version k's graph.
    previous: M_{k-1}'s embeddings on the same graph.
    m0: M_0's embeddings on the same graph.
  """
  chain = compose(*([transform] * len(chain_params)))
  to_v0 = tuple(chain.apply(chain_params, z) for z in current)
  return {
    "alignment_error_previous": alignment_error(
      transform, chain_params[-1], current, previous
    ),
    "alignment_error_v0": embedding_mse(to_v0, m0),
    "distance_to_fix_m0": 0.5
    * (mean_distance(to_v0[0], m0[0]) + mean_distance(to_v0[1], m0[1])),
  }
