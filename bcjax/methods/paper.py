"""The paper's methods (DESIGN §2), each one pure function and one entry.

* ``fix-m0``: M_0 unchanged on every later graph;
* ``finetune-m0``: the previous version fine-tuned, with a fresh Adam state;
* ``nobc``: M_k from scratch, no compatibility (its version 0 is M_0);
* ``posthoc``: nobc's M_k, then B_k fitted on the frozen embeddings;
* ``joint``: M_k and B_k trained together under ``BPR + lambda * alignment``.
"""

from __future__ import annotations

import time

from absl import logging

from bcjax import keys
from bcjax.evaluation.recall import version_evaluators
from bcjax.methods.base import M0_METHOD, Context, Version, register_method
from bcjax.posthoc import PosthocConfig, fit_posthoc
from bcjax.train import Alignment, AlignmentTarget, fit_version


def _identity(ctx: Context, d: int):
  """Parameters of the strategy's (unlearned) transform from ``d`` to ``d``."""
  return ctx.transform.init(ctx.transform_key, d, d)


def _old_params(earlier: list[Version]) -> tuple:
  """The parameters of ``B_{k-1}, ..., B_1``, newest first."""
  return tuple(v.transform_params for v in reversed(earlier[1:]))


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
  _, reporter = version_evaluators(
    ctx.split,
    ctx.config.get("report_split", "validation"),
    chunk_size=ctx.config.eval_chunk_size,
  )
  recall = reporter(*ctx.embed(m0))
  params = _identity(ctx, m0.model.dim)
  return Version(m0.model, m0.variables, params, ctx.result(m0.model, recall=recall))


@register_method("finetune-m0", takes_transform=False, keeps_m0=True)
def finetune_m0(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """The previous version fine-tuned on version k's graph (fresh Adam state)."""
  del k
  previous = earlier[-1]
  fit = fit_version(
    previous.model,
    ctx.split,
    ctx.fit_config(epochs=ctx.config.finetune_epochs),
    ctx.key,
    variables=previous.variables,
    progress=ctx.progress,
    report=ctx.report,
    mesh=ctx.mesh,
    label=ctx.label,
  )
  params = _identity(ctx, previous.model.dim)
  return Version(previous.model, fit.variables, params, ctx.result(previous.model, fit))


@register_method(M0_METHOD, takes_transform=False)
def nobc(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """M_k trained from scratch (BPR only); B_k reads its first d_{k-1} dims."""
  model = ctx.model(k)
  fit = fit_version(
    model,
    ctx.split,
    ctx.fit_config(),
    ctx.key,
    progress=ctx.progress,
    report=ctx.report,
    mesh=ctx.mesh,
    label=ctx.label,
  )
  params = None
  if k > 0:
    params = ctx.transform.init(None, model.dim, earlier[-1].model.dim)
  return Version(model, fit.variables, params, ctx.result(model, fit))


@register_method("posthoc", reads=(M0_METHOD,), check=_needs_learned)
def posthoc(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """nobc's M_k, then B_k fitted by SGD on the frozen embeddings."""
  c, previous = ctx.config, earlier[-1]
  current = ctx.version_of(M0_METHOD, k)
  params = ctx.transform.init(ctx.transform_key, current.model.dim, previous.model.dim)
  tick = time.perf_counter()
  fit = fit_posthoc(
    ctx.transform,
    params,
    ctx.embed(current),
    ctx.embed(previous),
    ctx.graph,
    PosthocConfig(
      epochs=c.posthoc_epochs,
      keep_after=c.posthoc_keep_after,
      eval_every=c.eval_every,
      batch_size=c.batch_size,
      # The reference fits B_k at Adam 1e-3 whatever the models' rate.
      learning_rate=c.get("posthoc_learning_rate", 1e-3),
    ),
    keys.stream(ctx.key, "posthoc"),
    loss=ctx.loss,
    old_params=_old_params(earlier),
    label=ctx.label,
  )
  seconds = time.perf_counter() - tick
  logging.info(
    "%s B_%d: best epoch %d alignment error %.5f (%.1fs)",
    ctx.label,
    k,
    fit.best_epoch,
    fit.error,
    seconds,
  )
  return with_transform(ctx, current, fit.params, fit.best_epoch, seconds)


def with_transform(
  ctx: Context, current: Version, params, best_epoch: int, seconds: float
) -> Version:
  """Version ``current`` (another strategy's M_k) served through B_k ``params``."""
  result = current.result.replace(
    strategy=ctx.strategy.name,
    transform_best_epoch=best_epoch,
    transform_seconds=seconds,
  )
  return Version(current.model, current.variables, params, result)


@register_method("joint")
def joint(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """M_k and B_k trained together: ``BPR + lambda * loss(B_k(z_k), z_{k-1})``."""
  previous = earlier[-1]
  model = ctx.model(k)
  user_prev, item_prev = ctx.embed(previous)
  params = ctx.transform.init(ctx.transform_key, model.dim, previous.model.dim)
  fit = fit_version(
    model,
    ctx.split,
    ctx.fit_config(keep_after=ctx.config.joint_keep_after),
    ctx.key,
    transform_params=params,
    alignment=Alignment(ctx.transform, ctx.loss, ctx.config.align_weight),
    target=AlignmentTarget(user_prev, item_prev, _old_params(earlier)),
    progress=ctx.progress,
    report=ctx.report,
    mesh=ctx.mesh,
    label=ctx.label,
  )
  return Version(model, fit.variables, fit.transform_params, ctx.result(model, fit))
