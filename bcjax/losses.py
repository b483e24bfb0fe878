"""Training losses of the embedding models, as pure functions.

BPR trains every embedding model; an alignment loss ties M_k (through B_k) to
the previous version. Alignment losses are registered by name
(:func:`register_loss`) and share one signature, used both by joint training
and by post-hoc fitting::

  loss(transform, params, old_params, previous, current) -> scalar

with ``old_params`` the frozen ``B_{k-1}, ..., B_1`` (newest first, of the
same family as ``transform``) and ``previous`` / ``current`` per-group
embeddings of M_{k-1} and M_k (users, positive and negative items in joint
training; users and items in post-hoc fitting).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from bcjax.errors import check_new_name, unknown_name
from bcjax.transforms import BackwardTransform


def bpr_loss(
  user_emb: jax.Array,
  pos_emb: jax.Array,
  neg_emb: jax.Array,
  weight_decay: float = 1e-2,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Bayesian personalised ranking loss with the paper's embedding L2.

  ``mean(softplus(<u, n> - <u, p>)) + weight_decay * reg`` where
  ``reg = (|U|^2 + |P|^2 + |N|^2) / (2 * batch)`` over the batch embeddings.

  Args:
    user_emb: ``(batch, dim)`` embeddings of the users.
    pos_emb: ``(batch, dim)`` embeddings of their positive items.
    neg_emb: ``(batch, dim)`` embeddings of their negative items.
    weight_decay: weight of the embedding L2 term.

  Returns:
    The scalar loss and ``{"bpr", "reg"}``, its two parts.
  """
  pos_scores = jnp.sum(user_emb * pos_emb, axis=-1)
  neg_scores = jnp.sum(user_emb * neg_emb, axis=-1)
  bpr = jnp.mean(jax.nn.softplus(neg_scores - pos_scores))
  reg = (
    0.5
    * (jnp.sum(user_emb**2) + jnp.sum(pos_emb**2) + jnp.sum(neg_emb**2))
    / user_emb.shape[0]
  )
  return bpr + weight_decay * reg, {"bpr": bpr, "reg": reg}


def group_mse(targets: Sequence[jax.Array], outputs: Sequence[jax.Array]) -> jax.Array:
  """Sum over groups of the element-wise mean squared error.

  The paper's alignment error of a batch: one group each for the users, the
  positive items and the negative items; each group's mean runs over rows and
  dimensions, so the weight of the loss does not scale with the dimension.

  Args:
    targets: per group, ``(n_g, d)`` embeddings to match.
    outputs: per group, ``(n_g, d)`` embeddings that should match them.

  Returns:
    The scalar error.
  """
  return sum(jnp.mean((t - o) ** 2) for t, o in zip(targets, outputs, strict=True))


def single_step_loss(
  transform: BackwardTransform,
  params,
  previous: Sequence[jax.Array],
  current: Sequence[jax.Array],
) -> jax.Array:
  """``sum_g mean((z_{k-1}[g] - B_k(z_k[g]))^2)``.

  Args:
    transform: the family of ``B_k``.
    params: ``B_k``'s parameters.
    previous: per group, ``(n_g, d_{k-1})`` embeddings of ``M_{k-1}``.
    current: per group, ``(n_g, d_k)`` embeddings of ``M_k``.
  """
  return group_mse(previous, [transform.apply(params, z) for z in current])


def multi_step_loss(
  transform: BackwardTransform,
  params,
  old_transform: BackwardTransform,
  old_params: Sequence,
  previous: Sequence[jax.Array],
  current: Sequence[jax.Array],
) -> jax.Array:
  """The mean over ``j = 0..k-1`` of the alignment error in version ``j``'s space.

  The error of step ``j`` compares ``B_{j+1..k-1}(z_{k-1})`` with
  ``B_{j+1..k}(z_k)``; both sides share the old chain, so it is pushed through
  one old transform at a time and every step costs one application per side.
  Written for any transform; for linear ones it equals pushing the residual
  ``z_{k-1} - B_k(z_k)`` through the old matrices.

  Args:
    transform: the family of ``B_k``.
    params: ``B_k``'s parameters.
    old_transform: the family of the frozen ``B_{k-1}, ..., B_1``.
    old_params: their parameters, newest first: ``(B_{k-1}, ..., B_1)``.
    previous: per group, embeddings of ``M_{k-1}`` on the current graph.
    current: per group, embeddings of ``M_k``.

  Returns:
    The scalar loss.
  """
  a = list(previous)
  b = [transform.apply(params, z) for z in current]
  errors = [group_mse(a, b)]
  for p in old_params:
    p = jax.lax.stop_gradient(p)
    a = [old_transform.apply(p, z) for z in a]
    b = [old_transform.apply(p, z) for z in b]
    errors.append(group_mse(a, b))
  return sum(errors) / len(errors)


@dataclasses.dataclass(frozen=True)
class AlignmentLoss:
  """A registered alignment loss.

  Attributes:
    name: the name used in strategy names (``sloss``, ``mloss``, ...).
    fn: ``(transform, params, old_params, previous, current) -> scalar``.
    check: ``transform -> reason or None``: why the loss is no valid
      combination with a transform family (None: it is).
  """

  name: str
  fn: Callable[..., jax.Array]
  check: Callable[[BackwardTransform], str | None] = lambda transform: None

  def __call__(self, transform, params, old_params, previous, current):
    return self.fn(transform, params, old_params, previous, current)


LOSSES: dict[str, AlignmentLoss] = {}


def register_loss(
  name: str,
  fn: Callable[..., jax.Array],
  check: Callable[[BackwardTransform], str | None] | None = None,
) -> AlignmentLoss:
  """Registers an alignment loss: the grammar and the CLI pick it up.

  Args:
    name: the loss name used in strategy names (no ``-``).
    fn: ``(transform, params, old_params, previous, current) -> scalar``.
    check: ``transform -> reason or None`` (default: valid with any family).

  Raises:
    InputError: for a name with ``-`` or one already registered.
  """
  check_new_name("alignment loss", name, LOSSES)
  loss = AlignmentLoss(name, fn, check or (lambda transform: None))
  LOSSES[name] = loss
  return loss


def get_loss(name: str) -> AlignmentLoss:
  """The registered alignment loss ``name``."""
  if name not in LOSSES:
    raise unknown_name("alignment loss", name, LOSSES)
  return LOSSES[name]


def _needs_learned(transform: BackwardTransform) -> str | None:
  if transform.learned:
    return None
  return (
    "without a transform every older version is a prefix of the newest "
    "one, so the multi-step loss has nothing to add (use *-notrans-sloss)"
  )


register_loss(
  "sloss",
  lambda transform, params, old_params, previous, current: single_step_loss(
    transform, params, previous, current
  ),
)
register_loss(
  "mloss",
  lambda transform, params, old_params, previous, current: multi_step_loss(
    transform, params, transform, old_params, previous, current
  ),
  _needs_learned,
)
