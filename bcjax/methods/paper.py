"""The paper's methods (DESIGN §2), each one pure function and one entry.

* ``fix-m0``: M_0 unchanged on every later graph;
* ``finetune-m0``: the previous version fine-tuned, with a fresh Adam state;
* ``nobc``: M_k from scratch, no compatibility (its version 0 is M_0);
* ``posthoc``: nobc's M_k, then B_k fitted on the frozen embeddings;
* ``joint``: M_k and B_k trained together under ``BPR + lambda * alignment``.

Their hyperparameters are declared here (``config.method.<name>``); their
defaults are the paper's, the shipped configs set their own.
"""

from __future__ import annotations

import dataclasses

from bcjax.components.hparams import require
from bcjax.methods.base import M0_METHOD, Context, Version, register_method
from bcjax.methods.building_blocks import (
  fit_transform_posthoc,
  identity_params,
  train_from_scratch,
  train_jointly,
  with_posthoc_fit,
)


@dataclasses.dataclass(frozen=True)
class FinetuneHparams:
  """Hyperparameters of ``finetune-m0`` (``config.method.finetune_m0``).

  Attributes:
    epochs: fine-tuning epochs per update (paper: 250).
  """

  epochs: int = 250

  def __post_init__(self):
    _positive(self, "epochs")


# Where a post-hoc B_k's SGD may start, and the relative ridge of the
# closed-form start (closedform's own default).
POSTHOC_STARTS = ("init", "closed_form")
START_RIDGE = 1e-6


@dataclasses.dataclass(frozen=True)
class PosthocHparams:
  """Hyperparameters of ``posthoc`` (``config.method.posthoc``).

  Attributes:
    epochs: B_k's training epochs (paper: 200).
    keep_after: only epochs after this one may be kept (paper: 50).
    learning_rate: Adam's rate for B_k (the reference's fixed 1e-3, whatever
      the models' rate).
    patience: stop B_k's fit at the first check that finds its kept epoch
      this many epochs old; 0 trains every epoch (the reference).
    min_delta: keep a check only when its alignment error is below the kept
      one by more than this fraction of it; 0 keeps any lower error (the
      reference). With patience, a fit on a plateau stops there.
    start: where B_k's SGD starts: ``"init"``, the transform's
      initialisation (the reference), or ``"closed_form"``, the family's
      exact single-step solution where it has one (ridge least squares for
      ``linear`` at the relative ridge :data:`START_RIDGE`, Procrustes for
      ``orthogonal``; the others, which ``closedform-*`` cannot fit either,
      from their init). That solution also minimises the linear multi-step
      loss, whose curvature the older B's stretch over orders of magnitude
      where the embeddings have dead units: from ``"init"``, Adam stalls
      far from it there (``docs/strategies.md``).
  """

  epochs: int = 200
  keep_after: int = 50
  learning_rate: float = 1e-3
  patience: int = 0
  min_delta: float = 0.0
  start: str = "init"

  def __post_init__(self):
    _positive(self, "epochs")
    _non_negative(self, "keep_after")
    _non_negative(self, "patience")
    require(self.learning_rate > 0, "learning_rate", "positive", self.learning_rate)
    require(
      isinstance(self.min_delta, (int, float)) and 0 <= self.min_delta < 1,
      "min_delta",
      "a fraction in [0, 1)",
      self.min_delta,
    )
    require(
      self.keep_after < self.epochs,
      "keep_after",
      f"below epochs={self.epochs} (it leaves no epoch to keep)",
      self.keep_after,
    )
    require(
      self.start in POSTHOC_STARTS, "start", f"one of {POSTHOC_STARTS}", self.start
    )


@dataclasses.dataclass(frozen=True)
class JointHparams:
  """Hyperparameters of ``joint`` (``config.method.joint``).

  Attributes:
    align_weight: lambda, the alignment loss's weight (paper: 16).
    keep_after: only epochs after this one may be kept (paper: 50 of 500);
      below the run's ``config.epochs``.
  """

  align_weight: float = 16.0
  keep_after: int = 50

  def __post_init__(self):
    require(self.align_weight >= 0, "align_weight", ">= 0", self.align_weight)
    _non_negative(self, "keep_after")


def _positive(hparams, field: str) -> None:
  value = getattr(hparams, field)
  ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
  require(ok, field, "a positive integer", value)


def _non_negative(hparams, field: str) -> None:
  value = getattr(hparams, field)
  ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
  require(ok, field, "an integer >= 0", value)


def _needs_learned(transform, loss) -> str | None:
  del loss
  if transform.learned:
    return None
  return (
    "post-hoc training needs a learned transform; without one it is nobc "
    "(use nobc, or posthoc-linear-* / posthoc-mlp-*)"
  )


@register_method("fix-m0", takes_transform=False, keeps_m0=True)
def fix_m0(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """M_0 reused on version k's graph; only its Recall@K is measured."""
  del k
  m0 = earlier[-1]
  selection, report = ctx.evaluators()
  tables = ctx.embed(m0)
  recall = report(*tables)
  chosen_on = recall if selection is report else selection(*tables)
  result = ctx.result(m0.model, recall=recall, selection_recall=chosen_on)
  return Version(m0.model, m0.variables, identity_params(ctx, m0.model.dim), result)


@register_method(
  "finetune-m0", hparams=FinetuneHparams, takes_transform=False, keeps_m0=True
)
def finetune_m0(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """The previous version fine-tuned on version k's graph (fresh Adam state)."""
  del k
  previous = earlier[-1]
  fit = ctx.fit(
    previous.model,
    ctx.fit_config(epochs=ctx.hparams.epochs),
    variables=previous.variables,
  )
  params = identity_params(ctx, previous.model.dim)
  return Version(previous.model, fit.variables, params, ctx.result(previous.model, fit))


@register_method(M0_METHOD, takes_transform=False)
def nobc(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """M_k trained from scratch (BPR only); B_k reads its first d_{k-1} dims."""
  version = train_from_scratch(ctx, k)
  if k == 0:
    return version
  params = ctx.transform.init(None, version.model.dim, earlier[-1].model.dim)
  return dataclasses.replace(version, transform_params=params)


@register_method(
  "posthoc", hparams=PosthocHparams, reads=(M0_METHOD,), check=_needs_learned
)
def posthoc(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """nobc's M_k, then B_k fitted by SGD on the frozen embeddings."""
  hp = ctx.hparams
  current = ctx.version_of(M0_METHOD, k)
  start = None
  solve = ctx.transform.solvers.get("sloss")
  if hp.start == "closed_form" and solve is not None:
    start = solve(ctx.embed(current), ctx.embed(earlier[-1]), START_RIDGE)
  fit, seconds = fit_transform_posthoc(
    ctx,
    current,
    earlier,
    start=start,
    epochs=hp.epochs,
    keep_after=hp.keep_after,
    learning_rate=hp.learning_rate,
    patience=hp.patience,
    min_delta=hp.min_delta,
  )
  return with_posthoc_fit(ctx, current, fit, seconds)


@register_method("joint", hparams=JointHparams)
def joint(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """M_k and B_k trained together: ``BPR + lambda * loss(B_k(z_k), z_{k-1})``."""
  hp = ctx.hparams
  return train_jointly(ctx, k, earlier, hp.align_weight, hp.keep_after)
