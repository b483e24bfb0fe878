"""Embedding seeds as a batch dimension: S fits of one version as one program.

The S embedding seeds of a strategy train the same model on the same graph
with different keys (and, past version 0, different starting variables and
alignment targets: each seed's own earlier versions). Instead of S fits one
after the other, :func:`fit_versions_batched` stacks their train states on a
leading seed axis and runs :func:`bcjax.fitting.train.epoch_body` (the very
epoch :func:`~bcjax.fitting.train.fit_version` jits) under ``jax.vmap``: one
compilation per version shape, one dispatch per epoch for every seed, the
graph shared. Each seed draws exactly the keys it draws alone, is evaluated
by the same evaluator, and keeps its own best epoch (:class:`BestEpochs`
with :class:`BestEpoch`'s rule), so seed i of a batch is seed i alone up to
how XLA rounds the vmapped program's reductions (see
``tests/test_seed_batch.py`` for the measured gap). That gap is not bounded
over long fits: on ml-100k v0 (default config, lr 1e-2) embedding seed 1
matched alone to 1.4e-6 after 3 epochs but drifted to 0.089 (a ``conv_0``
kernel entry; Recall@50 0.2198 batched, 0.2128 alone) after 10: rounding
amplified by training, so "batched == alone" holds at rounding level early,
in distribution later.

:func:`fit_posthoc_batched` does the same for the post-hoc fit of ``B_k``
(:func:`bcjax.fitting.posthoc.posthoc_epoch_body` vmapped), each seed checked
at the epochs it is checked alone (measured bit-identical to alone on CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from bcjax import keys
from bcjax.components.losses import AlignmentLoss
from bcjax.components.transforms import BackwardTransform
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError, TrainingDivergedError
from bcjax.evaluation.alignment import alignment_error
from bcjax.evaluation.recall import version_evaluators
from bcjax.fitting.fit_loop import EpochParts, run_epochs
from bcjax.fitting.posthoc import PosthocConfig, PosthocFit, posthoc_epoch_body
from bcjax.fitting.selection import BestEpochs
from bcjax.fitting.train import (
  Alignment,
  AlignmentTarget,
  FitConfig,
  FitResult,
  create_train_state,
  epoch_body,
  progress_metadata,
  result_from_progress,
  steps_per_epoch,
)
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed, init_variables
from bcjax.storage.progress import FitProgress


def stack(trees: Sequence[Any]) -> Any:
  """Pytrees of one structure stacked on a new leading axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, i: int) -> Any:
  """Slice ``i`` of a stacked pytree (new arrays: safe from donation)."""
  return jax.tree.map(lambda a: a[i], tree)


def make_batched_epoch(
  model: PinSAGE,
  num_steps: int,
  batch_size: int,
  weight_decay: float,
  alignment: Alignment | None = None,
) -> Callable[..., tuple[Any, dict]]:
  """The jitted epoch of S seeds: ``(state, graph, keys, epoch, target)``.

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


def fit_versions_batched(
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
) -> list[FitResult]:
  """:func:`~bcjax.fitting.train.fit_version` of S seeds as one program.

  Every per-seed argument is a sequence of S, seed i's being what
  ``fit_version`` of seed i alone takes; the split, graph, model and config
  are shared. No mesh: batched seeds train on one device.

  Args:
    model: the embedding model of the version (every seed's).
    split: the version's training and validation interactions.
    config: optimisation settings.
    seed_keys: the S version keys (``keys.version_key(..., embedding_seed=i)``).
    variables: each seed's starting variables; None: fresh ones from each
      key's ``model_init`` stream.
    transform_params: each seed's starting ``B_k`` (joint strategies).
    alignment: the alignment loss of a joint strategy (shared settings).
    targets: each seed's :class:`AlignmentTarget` (with ``alignment``).
    progress: each seed's epoch checkpoints; a batch resumes from the
      epoch every seed saved last, and starts over (clearing them) when a
      kill left seeds at different epochs.
    labels: each seed's label in progress lines and errors (default
      ``"seed <i>"``).
    reports: each seed's ``report`` (see ``fit_version``); None entries or
      None: none.
    graph: ``split``'s training graph on device (None builds it).
    halves_seeds: each seed's ``halves_seed`` (see ``fit_version``); None:
      0 for every seed.

  Returns:
    S :class:`FitResult`, each with its own kept epoch by validation
    Recall@50. ``seconds_per_epoch`` and ``train_seconds`` are the batch's.

  Raises:
    InputError: when the per-seed sequences do not all have S entries.
    TrainingDivergedError: when a seed's loss is not finite (naming it by
      its label); the batch stops, as a run of that seed alone would.
  """
  n = len(seed_keys)
  labels = list(labels) if labels is not None else [f"seed {i}" for i in range(n)]
  reports = list(reports) if reports is not None else [None] * n
  given = dict(
    variables=variables,
    transform_params=transform_params,
    targets=targets,
    progress=progress,
    labels=labels,
    reports=reports,
  )
  for name, value in given.items():
    if value is not None and len(value) != n:
      raise InputError(
        f"fit_versions_batched: {name} has {len(value)} entries; expected one "
        f"per seed key ({n})"
      )
  if n == 0:
    raise InputError("fit_versions_batched: expected at least one seed key")
  if graph is None:
    graph = BipartiteGraph.from_split(split, config.layout)
  halves_seeds = list(halves_seeds) if halves_seeds is not None else [0] * n
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
  tx = optax.adam(config.learning_rate)
  # Each seed's state as fit_version makes it (on copies: the state is
  # donated), stacked: one tx, so the states share their static fields.
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
  state = stack(states)
  del states
  target = stack(targets) if targets is not None else None
  epoch_keys = jnp.stack([keys.stream(k, "epochs") for k in seed_keys])
  num_steps = steps_per_epoch(split.num_train, config.batch_size)
  train_epoch = make_batched_epoch(
    model, num_steps, config.batch_size, config.weight_decay, alignment
  )
  embed_seeds = jax.jit(jax.vmap(lambda v, g: embed(model, v, g), in_axes=(0, None)))
  start = time.perf_counter()

  def train(state, epoch):
    return train_epoch(state, graph, epoch_keys, epoch, target)

  def due(epoch):
    return epoch % config.eval_every == 0 or epoch == config.epochs

  def evaluate(state, epoch, fetched):
    current = {"params": state.params["model"], "batch_stats": state.batch_stats}
    users, items = embed_seeds(current, graph)
    recalls = [evaluators[halves_seeds[i]][0](users[i], items[i]) for i in range(n)]
    elapsed = time.perf_counter() - start
    # A seed that stopped early (patience) ended its history there, as alone.
    for i in np.flatnonzero(selection.running()):
      last = {name: float(value[i]) for name, value in fetched[-1].items()}
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
    return score, (current, (users, items), recalls)

  def keep(state, epoch, info, taken):
    current, (users, items), recalls = info
    for i in np.flatnonzero(taken):
      evaluator, reporter = evaluators[halves_seeds[i]]
      reported = recalls[i]
      if reporter is not evaluator:
        reported = reporter(users[i], items[i])
      best[i] = FitResult(
        unstack(current, i),
        unstack(state.params["transform"], i),
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
        unstack(state, i),
        {"variables": best[i].variables, "transform": best[i].transform_params},
        progress_metadata(
          best[i],
          None if selection.epochs[i] == 0 else float(selection.scores[i]),
          histories[i],
        ),
      )

  _, seconds_per_epoch = run_epochs(
    state,
    EpochParts(train, due, evaluate, keep, save_progress),
    selection,
    epochs=config.epochs,
    first_epoch=first_epoch,
    label=labels,
    patience=config.patience,
  )
  seconds = time.perf_counter() - start
  return [
    FitResult(
      b.variables,
      b.transform_params,
      b.best_epoch,
      b.recall,
      tuple(h),
      train_seconds=seconds,
      seconds_per_epoch=seconds_per_epoch,
      selection_recall=b.selection_recall,
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
  logging.info("%s resume after epoch %d", ", ".join(labels), epoch)
  return epoch + 1


def fit_posthoc_batched(
  transform: BackwardTransform,
  params: Sequence[Any],
  current: Sequence[tuple[jax.Array, jax.Array]],
  previous: Sequence[tuple[jax.Array, jax.Array]],
  graph: BipartiteGraph,
  config: PosthocConfig,
  seed_keys: Sequence[jax.Array],
  *,
  loss: AlignmentLoss,
  old_params: Sequence[tuple] | None = None,
  labels: Sequence[str] | None = None,
) -> list[PosthocFit]:
  """:func:`~bcjax.fitting.posthoc.fit_posthoc` of S seeds as one program.

  Seed i's arguments are what ``fit_posthoc`` of seed i alone takes (its
  ``key`` is ``seed_keys[i]``); the graph, transform family, loss and
  config are shared. Each seed is checked at the epochs it would be alone
  (:meth:`PosthocConfig.checks` per seed) and keeps its own epoch.

  Returns:
    S :class:`PosthocFit`.

  Raises:
    InputError: when the per-seed sequences do not all have S entries.
    TrainingDivergedError: when a seed's loss or alignment error is not
      finite (naming it by its label).
  """
  n = len(seed_keys)
  labels = list(labels) if labels is not None else [f"seed {i}" for i in range(n)]
  old_params = list(old_params) if old_params is not None else [()] * n
  given = dict(params=params, current=current, previous=previous, old_params=old_params)
  for name, value in dict(given, labels=labels).items():
    if len(value) != n:
      raise InputError(
        f"fit_posthoc_batched: {name} has {len(value)} entries; expected one "
        f"per seed key ({n})"
      )
  num_steps = steps_per_epoch(graph.num_interactions, config.batch_size)
  tx = optax.adam(config.learning_rate)
  body = posthoc_epoch_body(transform, loss, tx, num_steps, config.batch_size)

  def one_seed(p, opt_state, key, epoch, graph, cur, prev, old):
    return body(p, opt_state, keys.epoch_key(key, epoch), graph, cur, prev, old)

  train_epoch = jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None, None, 0, 0, 0)))
  stacked = {name: stack(value) for name, value in given.items()}
  epoch_keys = jnp.stack(list(seed_keys))
  best = BestEpochs.start(
    n, config.keep_after, config.epochs, min_delta=config.min_delta
  )
  best_params = list(params)
  checked: list[list] = [[] for _ in range(n)]

  def checks(epoch):
    # PosthocConfig.checks of each seed's own BestEpoch, before the offer;
    # a seed stopped by patience is checked no more, as alone.
    regular = epoch % config.eval_every == 0
    last = (epoch == config.epochs) & (best.epochs == 0)
    eligible = (epoch > best.keep_after) | last
    return eligible & (regular | last) & best.running()

  def train(state, epoch):
    p, opt_state, loss_ = train_epoch(
      *state,
      epoch_keys,
      epoch,
      graph,
      stacked["current"],
      stacked["previous"],
      stacked["old_params"],
    )
    return (p, opt_state), {"loss": loss_}

  def evaluate(state, epoch, fetched):
    scores = np.full(n, np.nan)  # NaN never beats a kept epoch: not checked
    for i in np.flatnonzero(checks(epoch)):
      error = alignment_error(transform, unstack(state[0], i), current[i], previous[i])
      if not np.isfinite(error):
        raise TrainingDivergedError(
          f"{labels[i]}: the post-hoc transform's alignment error became {error} "
          f"by epoch {epoch}; nothing of this version was saved"
        )
      checked[i].append((epoch, error))
      scores[i] = -error
    return scores, None

  def keep(state, epoch, info, taken):
    for i in np.flatnonzero(taken):
      best_params[i] = unstack(state[0], i)

  run_epochs(
    (stacked["params"], jax.vmap(tx.init)(stacked["params"])),
    EpochParts(train, lambda epoch: bool(np.any(checks(epoch))), evaluate, keep),
    best,
    epochs=config.epochs,
    label=labels,
    patience=config.patience,
  )
  return [
    PosthocFit(
      best_params[i],
      int(best.epochs[i]),
      float(-best.scores[i]),
      num_steps,
      tuple(checked[i]),
      config.epochs,
    )
    for i in range(n)
  ]
