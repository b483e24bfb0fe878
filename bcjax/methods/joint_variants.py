"""Joint training's variants, candidates to beat BC-Aligner at its tuned weight.

BC-Aligner (``joint-linear-mloss``) trains M_k and B_k together under
``BPR + lambda * L_multi``: on the synthetic data its small weights keep the
consumers' scores that the post-hoc maps lose, but every weight pays an
intended cost, which on MovieLens-100K is its whole loss (issue 42). Each
method here keeps joint training's alignment of M_k and changes one thing
that may lower that cost or the alignment error left with it:

* ``warmjoint``: post-hoc first, then a short joint fine-tune. M_k starts
  from nobc's (the intended task's best model) and B_k from the family's
  exact single-step fit to it; ``epochs`` of joint training at
  ``align_weight`` then pull M_k towards the old space.
* ``jointsolve``: joint training, then B_k re-solved in closed form on the
  M_k it kept: the exact minimiser of the single-step error (and of the
  linear multi-step one) for that M_k, which a jointly trained B_k only
  approaches, the less so the smaller the weight.
* ``schedjoint``: joint training whose weight follows a schedule over the
  versions, ``align_weight * growth**(k - 1)`` at version k.
* ``softjoint``: joint training of a linear B_k with the soft-orthogonal
  family's gated Gram penalty (:mod:`bcjax.components.softorthogonal`) at a
  strength that is a method field, so that one run sweeps it with the
  ``@`` grammar (``softjoint-linear-mloss@strength=0.1``); B_k is served as
  ``linear`` (the penalty shapes the fit, never the map).

Each has ``align_weight``, so a tuning run (``config.tuning.weights``)
chooses it as it chooses BC-Aligner's (:mod:`bcjax.jobs.weight_tuning`).
Every fit is one call of the version-fit driver
(:func:`~bcjax.fitting.version_fit.fit_version_seeds`, through
``ctx.fit``): no epoch hook. A B_k re-solved *between* epochs would need one
outside the jitted epoch; ``jointsolve`` re-solves once, after the fit, in
the method itself (a host solve on the kept M_k's embeddings).
"""

from __future__ import annotations

import dataclasses
import math
import time

from absl import logging

from bcjax.components import softorthogonal as softorthogonal_lib
from bcjax.components.hparams import require
from bcjax.methods.base import M0_METHOD, Context, Version, register_method
from bcjax.methods.building_blocks import train_jointly, with_transform

# The relative ridge of every closed-form B_k here (closedform's default).
RIDGE = 1e-6


def _weight(hp) -> None:
  value = hp.align_weight
  ok = isinstance(value, int | float) and not isinstance(value, bool)
  require(ok and math.isfinite(value) and value >= 0, "align_weight", ">= 0", value)


def _epochs(hp, field: str, low: int) -> None:
  value = getattr(hp, field)
  ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
  require(ok, field, "a positive integer" if low else "an integer >= 0", value)


@dataclasses.dataclass(frozen=True)
class WarmJointHparams:
  """Hyperparameters of ``warmjoint`` (``config.method.warmjoint``).

  Attributes:
    align_weight: lambda of the fine-tune's alignment loss.
    epochs: the fine-tune's cap (the run's ``patience`` may stop it sooner).
    keep_after: only epochs after this one may be kept; below ``epochs``,
      so that the kept model has been pulled towards the old space (the
      selection recall would otherwise keep the first check, nearest nobc).
  """

  align_weight: float = 16.0
  epochs: int = 50
  keep_after: int = 25

  def __post_init__(self):
    _weight(self)
    _epochs(self, "epochs", 1)
    _epochs(self, "keep_after", 0)
    require(
      self.keep_after < self.epochs,
      "keep_after",
      f"below epochs={self.epochs} (it leaves no epoch to keep)",
      self.keep_after,
    )


@dataclasses.dataclass(frozen=True)
class JointSolveHparams:
  """Hyperparameters of ``jointsolve`` (``config.method.jointsolve``).

  Attributes:
    align_weight: lambda of the joint fit.
    keep_after: only epochs after this one may be kept (the shipped
      configs' ``method.joint.keep_after``).
    ridge: the re-solve's ridge, relative to the mean diagonal of ``Z^T Z``.
  """

  align_weight: float = 16.0
  keep_after: int = 5
  ridge: float = RIDGE

  def __post_init__(self):
    _weight(self)
    _epochs(self, "keep_after", 0)
    ok = isinstance(self.ridge, int | float) and math.isfinite(self.ridge)
    require(ok and self.ridge >= 0, "ridge", "a finite number >= 0", self.ridge)


@dataclasses.dataclass(frozen=True)
class ScheduledJointHparams:
  """Hyperparameters of ``schedjoint`` (``config.method.schedjoint``).

  Attributes:
    align_weight: lambda at version 1.
    growth: the factor of lambda from one version to the next (1: joint).
    keep_after: only epochs after this one may be kept.
  """

  align_weight: float = 16.0
  growth: float = 0.5
  keep_after: int = 5

  def __post_init__(self):
    _weight(self)
    ok = isinstance(self.growth, int | float) and not isinstance(self.growth, bool)
    require(
      ok and math.isfinite(self.growth) and self.growth > 0,
      "growth",
      "a finite number > 0",
      self.growth,
    )
    _epochs(self, "keep_after", 0)


@dataclasses.dataclass(frozen=True)
class SoftJointHparams:
  """Hyperparameters of ``softjoint`` (``config.method.softjoint``).

  Attributes:
    align_weight: lambda of the alignment loss (penalty included).
    strength: the gated Gram penalty's weight relative to the loss
      (:func:`~bcjax.components.softorthogonal.gram_penalty`); 0 is joint.
    tolerance: the deviation ``||G - I||_F`` left free.
    keep_after: only epochs after this one may be kept.
  """

  align_weight: float = 16.0
  strength: float = 1.0
  tolerance: float = 0.0
  keep_after: int = 5

  def __post_init__(self):
    _weight(self)
    # The family's own dataclass checks strength and tolerance (one message).
    softorthogonal_lib.SoftOrthogonalHparams(self.strength, self.tolerance)
    _epochs(self, "keep_after", 0)


def version_weight(align_weight: float, growth: float, k: int) -> float:
  """``schedjoint``'s lambda at version ``k >= 1``: ``align_weight * growth**(k-1)``."""
  return float(align_weight) * float(growth) ** (k - 1)


def _solvable(transform, loss) -> str | None:
  # The single-step solution minimises the linear multi-step loss too, so a
  # family with an exact sloss fit serves either loss.
  del loss
  if "sloss" in transform.solvers:
    return None
  return (
    f"the {transform.name} transform has no exact single-step fit to start "
    "from or re-solve with (linear and orthogonal have one)"
  )


def _linear_only(transform, loss) -> str | None:
  del loss
  if transform.name == "linear":
    return None
  return (
    f"softjoint adds the soft-orthogonal penalty to a linear B_k; got the "
    f"{transform.name} transform (expected softjoint-linear-<loss>)"
  )


def exact_transform(ctx: Context, current: Version, previous: Version, ridge: float):
  """B_k solved exactly: the family's single-step fit of ``current`` to ``previous``.

  Both are embedded on version k's graph (users ``(n_u, d)``, items
  ``(n_i, d)``), weighed as the post-hoc criterion weighs them (the mean of
  the user and the item MSE; :mod:`bcjax.components.solvers`).

  Returns:
    B_k's parameters (``{"kernel": (d_k, d_{k-1})}`` for linear families).
  """
  solve = ctx.transform.solvers["sloss"]
  return solve(ctx.embed(current), ctx.embed(previous), ridge)


@register_method(
  "warmjoint", hparams=WarmJointHparams, reads=(M0_METHOD,), check=_solvable
)
def warmjoint(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """nobc's M_k and its exact B_k, then a joint fine-tune of both at lambda."""
  hp = ctx.hparams
  current = ctx.version_of(M0_METHOD, k)
  start_params = exact_transform(ctx, current, earlier[-1], RIDGE)
  return train_jointly(
    ctx,
    k,
    earlier,
    hp.align_weight,
    hp.keep_after,
    start=current,
    start_params=start_params,
    epochs=hp.epochs,
  )


@register_method("jointsolve", hparams=JointSolveHparams, check=_solvable)
def jointsolve(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """Joint training at lambda, then B_k re-solved exactly on the kept M_k."""
  hp = ctx.hparams
  joint = train_jointly(ctx, k, earlier, hp.align_weight, hp.keep_after)
  tick = time.perf_counter()
  params = exact_transform(ctx, joint, earlier[-1], hp.ridge)
  seconds = time.perf_counter() - tick
  logging.info("%s B_%d re-solved in closed form (%.2fs)", ctx.label, k, seconds)
  # The kept epoch stays M_k's; B_k has no epoch of its own (0).
  return with_transform(ctx, joint, params, 0, seconds)


@register_method("schedjoint", hparams=ScheduledJointHparams)
def schedjoint(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """Joint training at ``align_weight * growth**(k - 1)`` at version k."""
  hp = ctx.hparams
  weight = version_weight(hp.align_weight, hp.growth, k)
  return train_jointly(ctx, k, earlier, weight, hp.keep_after)


def soft_family(hp: SoftJointHparams):
  """The soft-orthogonal family at ``hp``'s strength and tolerance (its init
  unused: B_k starts as the strategy's ``linear`` does)."""
  return softorthogonal_lib.softorthogonal(strength=hp.strength, tolerance=hp.tolerance)


@register_method("softjoint", hparams=SoftJointHparams, check=_linear_only)
def softjoint(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """Joint training of a linear B_k under the gated Gram penalty at ``strength``."""
  hp = ctx.hparams
  return train_jointly(
    ctx, k, earlier, hp.align_weight, hp.keep_after, alignment_transform=soft_family(hp)
  )
