"""Training losses of the embedding models, as pure functions.

BPR trains every embedding model; an alignment loss ties M_k (through B_k) to
the previous version. Alignment losses are registered by name with the
dataclass of their hyperparameters (``@register_loss(name, hparams=...)``,
fields in ``config.loss.<name>``) and share one signature::

  fn(transform, params, old_params, previous, current, hparams) -> scalar

The registered :class:`AlignmentLoss` binds ``hparams``; joint training and
post-hoc fitting call it as ``loss(transform, params, old_params, previous,
current)``, which adds the transform family's penalty where it has one
(``BackwardTransform.penalty``: a registered loss knows nothing of it),

with ``old_params`` the frozen ``B_{k-1}, ..., B_1`` (newest first, of the
same family as ``transform``) and ``previous`` / ``current`` per-group
embeddings of M_{k-1} and M_k (users, positive and negative items in joint
training; users and items in post-hoc fitting).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from bcjax.components import hparams as hparams_lib
from bcjax.components.registries import Entry, Registry
from bcjax.components.transforms import BackwardTransform
from bcjax.errors import InputError, check_new_name


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
  """A registered alignment loss bound to its hyperparameters.

  Attributes:
    name: the name used in strategy names (``sloss``, ``mloss``, ...).
    fn: ``(transform, params, old_params, previous, current, hparams) ->
      scalar``.
    check: ``transform -> reason or None``: why the loss is no valid
      combination with a transform family (None: it is).
    hparams: the values this loss is called with (an instance of its
      entry's :attr:`RegisteredLoss.hparams`).
    source: where it was registered from (:func:`bcjax.extensions.source_of`).
  """

  name: str
  fn: Callable[..., jax.Array]
  check: Callable[[BackwardTransform], str | None]
  hparams: Any
  source: str

  def __call__(self, transform, params, old_params, previous, current):
    """``fn``'s value, plus the transform's penalty where it has one.

    The penalty (``transform.penalty``, scale-free) is weighed by the
    targets' mean square ``sum_g mean(previous_g^2)``, the squared-error
    losses' value at the zero map, so that beside them a strength means the
    same at any embedding scale (the objective is a constant times
    ``loss / loss(0) + penalty``).
    """
    value = self.fn(transform, params, old_params, previous, current, self.hparams)
    if transform.penalty is None:
      return value
    scale = jax.lax.stop_gradient(sum(jnp.mean(jnp.square(y)) for y in previous))
    return value + scale * transform.penalty(params)


def _valid_with_any(transform: BackwardTransform) -> str | None:
  del transform
  return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegisteredLoss(Entry):
  """A registered alignment loss (:class:`~bcjax.components.registries.Entry`).

  Attributes:
    fn: the loss, ``(transform, params, old_params, previous, current,
      hparams) -> scalar``; its hyperparameters' fields are
      ``config.loss.<name>``.
    check: ``transform -> reason or None``: why the loss is no valid
      combination with a transform family (None: it is).
  """

  check: Callable[[BackwardTransform], str | None] = _valid_with_any

  def build(self, hparams: Any = None) -> AlignmentLoss:
    """The loss bound to ``hparams`` (an instance of :attr:`hparams`; None:
    defaults)."""
    hparams = self.hparams() if hparams is None else hparams
    if not isinstance(hparams, self.hparams):
      raise InputError(
        f"alignment loss {self.name!r} takes {self.hparams.__name__} "
        f"hparams, got {type(hparams).__name__}"
      )
    return AlignmentLoss(self.name, self.fn, self.check, hparams, self.source)


LOSSES: Registry[RegisteredLoss] = Registry("alignment loss")


def register_loss(
  name: str,
  *,
  hparams: type = hparams_lib.NoHparams,
  check: Callable[[BackwardTransform], str | None] | None = None,
) -> Callable[[Callable[..., jax.Array]], AlignmentLoss]:
  """A decorator that registers ``fn`` as alignment loss ``name``.

  The grammar, the config (``config.loss.<name>.<field>``) and the CLI pick
  it up. The decorated name becomes the :class:`AlignmentLoss` with default
  hyperparameters.

  Args:
    name: the loss name used in strategy names (no ``-``).
    hparams: the frozen dataclass of its hyperparameters (defaults for all).
    check: ``transform -> reason or None`` (default: valid with any family).

  Raises:
    InputError: as :meth:`Registry.add <bcjax.components.registries.Registry.add>`
      does (a name with ``-``, one taken by another function, bad hparams).
  """
  check_new_name("alignment loss", name)
  hparams_lib.check_class("alignment loss", name, hparams)

  def register(fn: Callable[..., jax.Array]) -> AlignmentLoss:
    entry = RegisteredLoss(
      name=name, fn=fn, hparams=hparams, check=check or _valid_with_any
    )
    return LOSSES.add(entry).build()

  return register


def get_loss(name: str) -> AlignmentLoss:
  """The registered alignment loss ``name``, with default hyperparameters."""
  return LOSSES[name].build()


def from_config(name: str, config) -> AlignmentLoss:
  """Loss ``name`` with its hyperparameters from ``config.loss.<name>``."""
  entry = LOSSES[name]
  values = (config.get("loss") or {}).get(hparams_lib.section_key(name))
  return entry.build(
    hparams_lib.from_section(entry.hparams, values, f"config.loss.{name}")
  )


def _needs_learned(transform: BackwardTransform) -> str | None:
  if transform.learned:
    return None
  return (
    "without a transform every older version is a prefix of the newest "
    "one, so the multi-step loss has nothing to add (use *-notrans-sloss)"
  )


@register_loss("sloss")
def sloss(transform, params, old_params, previous, current, hparams):
  """The single-step loss (:func:`single_step_loss`); older versions unused."""
  del old_params, hparams
  return single_step_loss(transform, params, previous, current)


@register_loss("mloss", check=_needs_learned)
def mloss(transform, params, old_params, previous, current, hparams):
  """The multi-step loss (:func:`multi_step_loss`), old B's of the same family."""
  del hparams
  return multi_step_loss(transform, params, transform, old_params, previous, current)
