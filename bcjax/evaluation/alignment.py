"""How far apart two embedding versions are.

* ``alignment_mse_previous``: the mean of the user and the item MSE between
  ``B_k(z_k)`` and ``z_{k-1}`` (M_{k-1} re-run on version k's graph), the
  post-hoc selection criterion;
* ``alignment_mse_v0``: the same between ``B_{1..k}(z_k)`` and M_0 on
  version k's graph (fix-m0's embeddings);
* ``distance_to_fix_m0``: the mean L2 distance between those two over every
  node, users and items stacked as the rows of one matrix (the reference's
  ``torch.vstack``): the per-version value of the table's alignment error,
  the only quantity bcjax calls "alignment error".
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from bcjax.components.chains import compose
from bcjax.components.transforms import BackwardTransform


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


def pooled_mean_distance(
  outputs: tuple[jax.Array, ...], targets: tuple[jax.Array, ...]
) -> float:
  """Mean L2 distance over the rows of every table stacked into one matrix.

  Users and items count as nodes alike, so the kind with more rows weighs
  more (as the reference's ``torch.vstack``), unlike a mean of per-kind means.

  Args:
    outputs: ``(user, item)`` tables, ``(n_users, d)`` and ``(n_items, d)``.
    targets: the same shapes.

  Returns:
    ``mean_i ||outputs_i - targets_i||`` over all ``n_users + n_items`` rows.
  """
  return mean_distance(jnp.concatenate(outputs), jnp.concatenate(targets))


def version_alignment(
  transform: BackwardTransform,
  chain_params: tuple,
  current: tuple[jax.Array, jax.Array],
  previous: tuple[jax.Array, jax.Array],
  m0: tuple[jax.Array, jax.Array],
) -> dict[str, float]:
  """The alignment MSEs and distance of version k (see the module docstring).

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
    "alignment_mse_previous": alignment_error(
      transform, chain_params[-1], current, previous
    ),
    "alignment_mse_v0": embedding_mse(to_v0, m0),
    "distance_to_fix_m0": pooled_mean_distance(to_v0, m0),
  }
