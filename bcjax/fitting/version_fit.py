"""The fit driver of a version's embedding model: S seeds, S = 1 a seed alone.

:func:`fit_version_seeds` trains one version's model for S embedding seeds
and keeps each seed's best epoch. The seeds' train states sit on a leading
axis (:class:`~bcjax.fitting.seed_axis.SeedAxis`) and every epoch is
:func:`bcjax.fitting.train.epoch_body` (jitted, or vmapped then jitted for
S > 1), so one driver serves a seed alone and a batch of seeds; the host loop
is :func:`bcjax.fitting.fit_loop.run_epochs`. :func:`fit_version` is the
one-seed call the methods make.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh

from bcjax import keys, sharding
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError
from bcjax.evaluation.recall import version_evaluators
from bcjax.fitting.fit_loop import EpochParts, run_epochs
from bcjax.fitting.seed_axis import SeedAxis, check_per_seed
from bcjax.fitting.selection import BestEpochs
from bcjax.fitting.train import (
  Alignment,
  AlignmentTarget,
  FitConfig,
  FitResult,
  create_train_state,
  epoch_body,
  make_train_epoch,
  progress_metadata,
  result_from_progress,
  steps_per_epoch,
)
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed, init_variables
from bcjax.storage.progress import FitProgress


def make_batched_epoch(
  model: PinSAGE,
  num_steps: int,
  batch_size: int,
  weight_decay: float,
  alignment: Alignment | None = None,
) -> Callable[..., tuple[Any, dict]]:
  """The jitted epoch of S > 1 seeds: ``(state, graph, keys, epoch, target)``.

  Args:
    model, num_steps, batch_size, weight_decay, alignment: as
      :func:`~bcjax.fitting.train.epoch_body`.

  Returns:
    ``train_epoch(state, graph, epoch_keys, epoch, target) -> (state,
    metrics)``: ``state`` (donated) and ``target`` (or None) have a leading
    seed axis, ``epoch_keys`` is ``(S,)`` the seeds' ``epochs`` streams and
    ``epoch`` the epoch number (an argument: one compilation for all
    epochs); seed i trains on ``fold_in(epoch_keys[i], epoch)``, its key
    alone. ``metrics`` are ``(S,)`` per name.
  """
  body = epoch_body(model, num_steps, batch_size, weight_decay, alignment)

  def one_seed(state, graph, epoch_key, epoch, target):
    return body(state, graph, keys.epoch_key(epoch_key, epoch), target)

  batched = jax.vmap(one_seed, in_axes=(0, None, 0, None, 0))
  return jax.jit(batched, donate_argnums=0)


def fit_version(
  model: PinSAGE,
  split: VersionSplit,
  config: FitConfig,
  key: jax.Array,
  *,
  variables: dict | None = None,
  transform_params: Any = None,
  target: AlignmentTarget | None = None,
  progress: FitProgress | None = None,
  label: str = "",
  report: Callable[[dict], str] | None = None,
  halves_seed: int = 0,
  alignment: Alignment | None = None,
  graph: BipartiteGraph | None = None,
  mesh: Mesh | None = None,
) -> FitResult:
  """:func:`fit_version_seeds` of one seed: its arguments, unwrapped."""

  def one(value):
    return None if value is None else [value]

  return fit_version_seeds(
    model,
    split,
    config,
    [key],
    variables=one(variables),
    transform_params=one(transform_params),
    targets=one(target),
    progress=one(progress),
    labels=[label],
    reports=[report],
    halves_seeds=[halves_seed],
    alignment=alignment,
    graph=graph,
    mesh=mesh,
  )[0]


def fit_version_seeds(
  model: PinSAGE,
  split: VersionSplit,
  config: FitConfig,
  seed_keys: Sequence[jax.Array],
  *,
  variables: Sequence[dict] | None = None,
  transform_params: Sequence[Any] | None = None,
  alignment: Alignment | None = None,
  targets: Sequence[AlignmentTarget] | None = None,
  progress: Sequence[FitProgress] | None = None,
  labels: Sequence[str] | None = None,
  reports: Sequence[Callable[[dict], str] | None] | None = None,
  graph: BipartiteGraph | None = None,
  halves_seeds: Sequence[int] | None = None,
  mesh: Mesh | None = None,
) -> list[FitResult]:
  """Trains ``model`` on a version's split for S seeds; each keeps its best epoch.

  Every per-seed argument is a sequence of S; the split, graph, model,
  alignment settings and config are shared. Seed i draws exactly the keys it
  draws alone, is evaluated by its own halves' evaluators, and keeps its own
  epoch (:class:`~bcjax.fitting.selection.BestEpochs`).

  Args:
    model: the embedding model of the version (every seed's).
    split: the version's training and validation interactions.
    config: optimisation settings.
    seed_keys: the S version keys; seed i's initialisation draws from its
      ``model_init`` stream and epoch ``e`` from ``fold_in`` of its
      ``epochs`` stream with ``e`` (:mod:`bcjax.keys`).
    variables: each seed's starting variables (fine-tuning); None: fresh
      ones.
    transform_params: each seed's starting ``B_k`` (joint strategies).
    alignment: the alignment loss of a joint strategy, or None for BPR only.
    targets: each seed's :class:`~bcjax.fitting.train.AlignmentTarget`
      (with ``alignment``).
    progress: each seed's epoch checkpoints, saved at every evaluation and
      resumed from (the caller clears them once the result is saved); a
      batch resumes from the epoch every seed saved last, and starts over
      (clearing them) when a kill left seeds at different epochs.
    labels: each seed's prefix of progress lines and errors (e.g.
      ``"nobc v2"``; default ``"seed <i>"``).
    reports: each seed's callback at every evaluation, given ``{"epoch",
      "epochs", "loss", "bpr", "reg", ("align",) "recall@K"...,
      "seconds"}``; what it returns ends the progress line (the job's
      position and ETA). None entries or None: none.
    graph: ``split``'s training graph on device, when the caller has built
      it (with ``config.layout``); None builds it.
    halves_seeds: each seed's held-out halves of the validation users (its
      embedding seed; see
      :func:`~bcjax.evaluation.recall.version_evaluators`); None: 0.
    mesh: train data-parallel over this mesh's devices (one seed only).

  Returns:
    S :class:`~bcjax.fitting.train.FitResult`, each of its kept epoch by
    the selection users' Recall@50. ``seconds_per_epoch`` and
    ``train_seconds`` are the batch's.

  Raises:
    InputError: when the per-seed sequences do not all have S entries, or a
      mesh is given for S > 1.
    TrainingDivergedError: when a seed's loss is not finite (naming it by
      its label); the batch stops, as a run of that seed alone would.
  """
  n = len(seed_keys)
  labels = list(labels) if labels is not None else [f"seed {i}" for i in range(n)]
  reports = list(reports) if reports is not None else [None] * n
  halves_seeds = list(halves_seeds) if halves_seeds is not None else [0] * n
  check_per_seed(
    "fit_version_seeds",
    n,
    variables=variables,
    transform_params=transform_params,
    targets=targets,
    progress=progress,
    labels=labels,
    reports=reports,
    halves_seeds=halves_seeds,
  )
  axis = SeedAxis(n)
  if mesh is not None and not axis.alone:
    raise InputError(
      f"fit_version_seeds: {n} seeds train on one device; a mesh takes one seed"
    )
  sharding.check_batch(config.batch_size, mesh)
  if graph is None:
    graph = BipartiteGraph.from_split(split, config.layout)
  evaluators = {  # each seed's halves of the validation users
    seed: version_evaluators(
      split, config.report_split, chunk_size=config.eval_chunk_size, seed=seed
    )
    for seed in dict.fromkeys(halves_seeds)
  }
  if variables is None:
    variables = [
      init_variables(model, graph, keys.stream(k, "model_init")) for k in seed_keys
    ]
  if transform_params is None:
    transform_params = [None] * n
  # Epochs donate the state: it trains on its own copies, never on the
  # caller's arrays, which stay the best model until an epoch beats them.
  # A fresh Adam state in every fit, also when fine-tuning; one tx, so the
  # seeds' states share their static fields.
  tx = optax.adam(config.learning_rate)
  states = [
    create_train_state(model, jax.tree.map(jnp.copy, v), tx, jax.tree.map(jnp.copy, t))
    for v, t in zip(variables, transform_params, strict=True)
  ]
  best = [FitResult(v, t, 0, {}, ()) for v, t in zip(variables, transform_params)]
  histories: list[list[dict]] = [[] for _ in range(n)]
  selection = BestEpochs.start(n, config.keep_after, config.epochs)
  first_epoch = 1
  if progress is not None:
    first_epoch = _resume(progress, states, best, histories, selection, labels)
  state = axis.stack(states)
  del states
  target = axis.stack(targets) if targets is not None else None
  state, graph, target = sharding.replicate((state, graph, target), mesh)
  epoch_streams = [keys.stream(k, "epochs") for k in seed_keys]
  num_steps = steps_per_epoch(split.num_train, config.batch_size)
  epoch_settings = (model, num_steps, config.batch_size, config.weight_decay, alignment)
  if axis.alone:
    one_epoch = make_train_epoch(*epoch_settings, mesh)

    def train(state, epoch):
      key = keys.epoch_key(epoch_streams[0], epoch)
      return one_epoch(state, graph, key, target)

    def embed_seeds(variables, graph):
      return embed(model, variables, graph)
  else:
    seeds_epoch = make_batched_epoch(*epoch_settings)
    stacked_streams = jnp.stack(epoch_streams)

    def train(state, epoch):
      return seeds_epoch(state, graph, stacked_streams, epoch, target)

    embed_seeds = jax.jit(jax.vmap(lambda v, g: embed(model, v, g), in_axes=(0, None)))
  start = time.perf_counter()

  def due(epoch):
    return epoch % config.eval_every == 0 or epoch == config.epochs

  def evaluate(state, epoch, fetched):
    current = {"params": state.params["model"], "batch_stats": state.batch_stats}
    tables = embed_seeds(current, graph)
    seed_tables = [axis.take(tables, i) for i in range(n)]
    recalls = [evaluators[halves_seeds[i]][0](*seed_tables[i]) for i in range(n)]
    elapsed = time.perf_counter() - start
    last_metrics = {name: axis.per_seed(value) for name, value in fetched[-1].items()}
    # A seed that stopped early (patience) ended its history there, as alone.
    for i in np.flatnonzero(selection.running()):
      last = {name: float(value[i]) for name, value in last_metrics.items()}
      recall = recalls[i]
      histories[i].append(
        dict(epoch=epoch, **last, **{"recall@50": recall[50], "seconds": elapsed})
      )
      suffix = ""
      if reports[i] is not None:
        named = {f"recall@{k}": float(v) for k, v in recall.items()}
        suffix = reports[i](
          dict(epoch=epoch, epochs=config.epochs, **last, **named, seconds=elapsed)
        )
      logging.info(
        "%s epoch %d/%d loss %.4f%s recall@50 %.4f time %.1fs%s",
        labels[i],
        epoch,
        config.epochs,
        last["loss"],
        f" align {last['align']:.5f}" if "align" in last else "",
        recall[50],
        elapsed,
        suffix,
      )
    score = np.array([r[50] for r in recalls])
    return score, (current, seed_tables, recalls)

  def keep(state, epoch, info, taken):
    current, seed_tables, recalls = info
    for i in np.flatnonzero(taken):
      evaluator, reporter = evaluators[halves_seeds[i]]
      reported = recalls[i]
      if reporter is not evaluator:
        reported = reporter(*seed_tables[i])
      # The state is donated to the next epoch, so the best model is copied.
      best[i] = FitResult(
        axis.take(current, i),
        axis.take(state.params["transform"], i),
        epoch,
        reported,
        (),
        selection_recall=recalls[i],
      )

  def save_progress(state, epoch):
    if progress is None or epoch == config.epochs:
      return
    for i in range(n):
      progress[i].save(
        epoch,
        axis.take(state, i),
        {"variables": best[i].variables, "transform": best[i].transform_params},
        progress_metadata(
          best[i],
          None if selection.epochs[i] == 0 else float(selection.scores[i]),
          histories[i],
        ),
      )

  # The last epoch is kept when keep_after left nothing else to keep.
  _, seconds_per_epoch = run_epochs(
    state,
    EpochParts(train, due, evaluate, keep, save_progress),
    selection,
    epochs=config.epochs,
    first_epoch=first_epoch,
    label=labels[0] if axis.alone else labels,
    patience=config.patience,
  )
  seconds = time.perf_counter() - start
  return [
    dataclasses.replace(
      b,
      history=tuple(h),
      train_seconds=seconds,
      seconds_per_epoch=seconds_per_epoch,
      max_epochs=config.epochs,
    )
    for b, h in zip(best, histories, strict=True)
  ]


def _resume(progress, states, best, histories, selection, labels) -> int:
  """Restores every seed's saved epoch in place; the first epoch to run.

  Seeds save one after the other, so a kill between two saves leaves them
  at different epochs, and each keeps only its newest: the batch then
  starts over (the replay draws the same keys, so only time is lost).
  """
  saved = [p.latest_epoch() for p in progress]
  if all(e is None for e in saved):
    return 1
  if len(set(saved)) > 1:
    logging.warning(
      "%s: seeds saved different epochs (%s); the batch starts over",
      ", ".join(labels),
      saved,
    )
    for p in progress:
      p.clear()
    return 1
  epoch = saved[0]
  for i, p in enumerate(progress):
    template = {"variables": best[i].variables, "transform": best[i].transform_params}
    states[i], restored, meta = p.restore(epoch, states[i], template)
    best[i] = result_from_progress(restored, meta)
    histories[i].extend(meta["history"])
    selection.epochs[i] = best[i].best_epoch
    if meta["best_score"] is not None:
      selection.scores[i] = meta["best_score"]
  logging.info("%s resumes after epoch %d", ", ".join(labels), epoch)
  return epoch + 1
