"""The pieces methods are built of, public for methods of one's own.

The paper's methods (:mod:`bcjax.methods.paper`) and the closed-form fits
(:mod:`bcjax.methods.closedform`) are made of these, and so can a user's: a
two-stage method, say, is :func:`train_jointly` followed by
:func:`fit_transform_posthoc` on the jointly trained M_k::

  @register_method("twostage", hparams=TwoStage)
  def twostage(ctx, k, earlier):
    hp = ctx.hparams
    joint = train_jointly(ctx, k, earlier, hp.align_weight, hp.keep_after)
    fit, seconds = fit_transform_posthoc(
      ctx, joint, earlier, epochs=hp.refit_epochs, keep_after=hp.refit_keep_after
    )
    return with_posthoc_fit(ctx, joint, fit, seconds)

Every key comes from ``ctx.key`` through :mod:`bcjax.keys`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from absl import logging

from bcjax import keys
from bcjax.components.transforms import BackwardTransform
from bcjax.fitting.posthoc import PosthocConfig, PosthocFit
from bcjax.fitting.train import Alignment, AlignmentTarget
from bcjax.methods.base import Context, Version


def old_params(earlier: list[Version]) -> tuple:
  """The parameters of ``B_{k-1}, ..., B_1``, newest first.

  Args:
    earlier: the strategy's versions ``0..k-1``.
  """
  return tuple(v.transform_params for v in reversed(earlier[1:]))


def identity_params(ctx: Context, d: int):
  """Parameters of the strategy's (unlearned) transform from ``d`` to ``d``."""
  return ctx.transform.init(ctx.transform_key, d, d)


def with_transform(
  ctx: Context, current: Version, params, best_epoch: int, seconds: float
) -> Version:
  """Version ``current`` (an M_k made elsewhere) served through B_k ``params``.

  Args:
    ctx: version k's context.
    current: the version whose model and variables are kept.
    params: B_k's parameters.
    best_epoch: the epoch B_k was kept at (0: not fitted by epochs).
    seconds: how long B_k's fit took.
  """
  result = current.result.replace(
    strategy=ctx.strategy.name,
    transform_best_epoch=best_epoch,
    transform_seconds=seconds,
  )
  return Version(current.model, current.variables, params, result)


def with_posthoc_fit(
  ctx: Context, current: Version, fit: PosthocFit, seconds: float
) -> Version:
  """:func:`with_transform` of B_k's SGD fit, its checks and cap recorded
  (the results page reads them: still falling at the stop, capped)."""
  version = with_transform(ctx, current, fit.params, fit.best_epoch, seconds)
  result = version.result.replace(
    transform_history=fit.checked, transform_max_epochs=fit.max_epochs
  )
  return dataclasses.replace(version, result=result)


def posthoc_config(ctx: Context, **settings) -> PosthocConfig:
  """A post-hoc fit's settings: these, with the run's batch size and cadence.

  Args:
    ctx: version k's context (``config.eval_every``, ``config.batch_size``).
    **settings: the other :class:`~bcjax.fitting.posthoc.PosthocConfig`
      fields: ``epochs`` and ``keep_after``, and where given
      ``learning_rate`` (the reference fits B_k at 1e-3 whatever the models'
      rate), ``patience`` and ``min_delta``.
  """
  return PosthocConfig(
    eval_every=ctx.config.eval_every, batch_size=ctx.config.batch_size, **settings
  )


def fit_transform_posthoc(
  ctx: Context,
  current: Version,
  earlier: list[Version],
  start=None,
  **settings,
) -> tuple[PosthocFit, float]:
  """B_k fitted by SGD on ``current``'s frozen embeddings to the previous version.

  B_k starts from ``start``, else from the transform's init (key
  ``ctx.transform_key``); the fit draws from the ``posthoc`` stream of
  ``ctx.key``, with the strategy's loss (the older transforms frozen).

  Args:
    ctx: version k's context.
    current: the version whose M_k is frozen (another strategy's, or this
      method's own first stage).
    earlier: the strategy's versions ``0..k-1``.
    start: B_k's parameters to start from, e.g. a jointly trained B_k
      (``current.transform_params``) to refine; None: a fresh init.
    **settings: :func:`posthoc_config`'s (``epochs``, ``keep_after``, ...).

  Returns:
    The fit and the seconds it took.
  """
  previous = earlier[-1]
  k = ctx.split.version
  params = start
  if params is None:
    params = ctx.transform.init(
      ctx.transform_key, current.model.dim, previous.model.dim
    )
  tick = time.perf_counter()
  fit = ctx.fit_posthoc(
    params,
    ctx.embed(current),
    ctx.embed(previous),
    posthoc_config(ctx, **settings),
    keys.stream(ctx.key, "posthoc"),
    old_params=old_params(earlier),
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
  return fit, seconds


def train_from_scratch(ctx: Context, k: int, **fit_settings) -> Version:
  """A fresh M_k trained with BPR only (B_k: None, set by the caller).

  Args:
    ctx: version k's context.
    k: the version.
    **fit_settings: :meth:`Context.fit_config`'s ``epochs`` and
      ``keep_after``.
  """
  model = ctx.model(k)
  fit = ctx.fit(model, ctx.fit_config(**fit_settings))
  return Version(model, fit.variables, None, ctx.result(model, fit))


def train_jointly(
  ctx: Context,
  k: int,
  earlier: list[Version],
  align_weight: float,
  keep_after: int,
  *,
  start: Version | None = None,
  start_params: Any = None,
  epochs: int | None = None,
  alignment_transform: BackwardTransform | None = None,
) -> Version:
  """M_k and B_k trained together: ``BPR + align_weight * loss(B_k(z_k), z_{k-1})``.

  Args:
    ctx: version k's context (the strategy's transform and loss).
    k: the version.
    earlier: the strategy's versions ``0..k-1``.
    align_weight: lambda, the alignment loss's weight.
    keep_after: only epochs after this one may be kept.
    start: M_k's starting model and variables (None: a fresh M_k).
    start_params: B_k's start (None: the strategy's init).
    epochs: the fit's cap (None: the run's ``epochs``).
    alignment_transform: the family the loss sees (its penalty); None: the
      strategy's. Its ``apply`` must be the strategy's, which serves B_k.
  """
  previous = earlier[-1]
  model = ctx.model(k) if start is None else start.model
  user_prev, item_prev = ctx.embed(previous)
  params = start_params
  if params is None:
    params = ctx.transform.init(ctx.transform_key, model.dim, previous.model.dim)
  fit = ctx.fit(
    model,
    ctx.fit_config(epochs=epochs, keep_after=keep_after),
    transform_params=params,
    alignment=Alignment(alignment_transform or ctx.transform, ctx.loss, align_weight),
    target=AlignmentTarget(user_prev, item_prev, old_params(earlier)),
    variables=None if start is None else start.variables,
  )
  return Version(model, fit.variables, fit.transform_params, ctx.result(model, fit))
