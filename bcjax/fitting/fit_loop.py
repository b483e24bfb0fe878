"""The host loop every fit shares: epochs, evaluations, the kept epoch.

An embedding fit (:func:`bcjax.fitting.version_fit.fit_version_seeds`) and a
post-hoc fit (:func:`bcjax.fitting.posthoc.fit_posthoc_seeds`), each of S
seeds, differ in what an epoch trains, when
they evaluate and what they score, not in how they loop: run the jitted
epochs without waiting for them, fetch their metrics only at an
evaluation, stop on a loss that is not finite, offer the score to the
selection rule (:class:`bcjax.fitting.selection.BestEpoch`) and keep the epoch it
takes, and time the epochs without the first one's compilation or the
evaluations. :func:`run_epochs` is that loop; the fits pass the parts.

The consumers' grid (:func:`bcjax.fitting.consumers.fit_consumer`) runs the same
loop with a selection rule per vmapped model
(:class:`bcjax.fitting.selection.BestEpochs`), evaluating every epoch, and without
stopping on a diverged model: it just has no selection metric.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import jax
import numpy as np
from absl import logging

from bcjax.errors import TrainingDivergedError
from bcjax.fitting.selection import BestEpoch, BestEpochs

State = TypeVar("State")
Info = TypeVar("Info")


@dataclasses.dataclass(frozen=True)
class EpochParts(Generic[State, Info]):
  """What one fit's epochs and evaluations are.

  Attributes:
    train: ``(state, epoch) -> (state, metrics)``: runs epoch ``epoch``
      (dispatched, not waited for); ``metrics`` is a dict of device arrays
      with at least ``"loss"`` (a scalar, or one per vmapped model).
    due: ``epoch -> bool``: whether to evaluate after ``epoch``.
    evaluate: ``(state, epoch, metrics) -> (score, info)``: evaluates the
      state after ``epoch``, given the metrics of every epoch since the last
      evaluation (fetched to the host, oldest first); higher scores are
      better, and ``info`` goes to ``keep``.
    keep: ``(state, epoch, info, taken) -> None``: the selection rule took
      ``epoch`` (``taken`` is True, or for :class:`BestEpochs` the mask of
      the models it took it for); copy what must outlive the state (the
      next epoch may donate it).
    after_evaluation: ``(state, epoch) -> None``, called after every
      evaluation and its ``keep`` (e.g. to save progress); None for nothing.
    stop_on_divergence: whether a loss that is not finite stops the fit.
  """

  train: Callable[[State, int], tuple[State, Mapping[str, Any]]]
  due: Callable[[int], bool]
  evaluate: Callable[[State, int, Sequence[Mapping[str, Any]]], tuple[Any, Info]]
  keep: Callable[[State, int, Info, Any], None]
  after_evaluation: Callable[[State, int], None] | None = None
  stop_on_divergence: bool = True


def run_epochs(
  state: State,
  parts: EpochParts[State, Any],
  selection: BestEpoch | BestEpochs,
  *,
  epochs: int,
  first_epoch: int = 1,
  label: str | Sequence[str] = "",
  patience: int = 0,
) -> tuple[State, float]:
  """Runs epochs ``first_epoch..epochs`` of one fit, or stops early.

  Args:
    state: the fit's state before ``first_epoch``.
    parts: its epochs and evaluations.
    selection: the selection rule, offered each evaluation's score (resumed
      fits pass it as restored); with :class:`BestEpochs` the scores are
      one per model.
    epochs: the last epoch.
    first_epoch: the first epoch to run (after a restored one).
    label: names the fit in the error raised on divergence; a sequence
      names each vmapped model (losses one per model), and the error the
      first model that diverged.
    patience: stop after the first evaluation that finds the kept epoch
      ``patience`` or more epochs old (``selection.stale``); 0 never stops
      early. A resumed fit that was stale when saved runs no epoch, so a
      killed early-stopped fit resumes to the same result.

  Returns:
    The state after the last epoch, and the mean seconds of a training
    epoch: the first epoch (which compiles) and the evaluations left out,
    0.0 when no other epoch ran.

  Raises:
    TrainingDivergedError: when a loss fetched at an evaluation (of any
      epoch since the one before) is not finite, unless
      ``parts.stop_on_divergence`` is False.
  """
  pending = []
  epoch_seconds, timed_epochs = 0.0, 0
  if first_epoch > 1 and selection.stale(first_epoch - 1, patience):
    return state, 0.0
  for epoch in range(first_epoch, epochs + 1):
    state, metrics = parts.train(state, epoch)
    pending.append(metrics)
    if epoch == first_epoch:
      # Compilation happens in the first epoch; keep it out of the epoch time.
      jax.block_until_ready(metrics)
      segment_start, segment_epochs = time.perf_counter(), 0
    else:
      segment_epochs += 1
    if not parts.due(epoch):
      continue
    fetched = jax.device_get(pending)
    pending = []
    epoch_seconds += time.perf_counter() - segment_start
    timed_epochs += segment_epochs
    if parts.stop_on_divergence:
      _check_losses(fetched, epoch, label)
    score, info = parts.evaluate(state, epoch, fetched)
    taken = selection.offer(epoch, score)
    if np.any(taken):
      parts.keep(state, epoch, info, taken)
    if parts.after_evaluation is not None:
      parts.after_evaluation(state, epoch)
    if selection.stale(epoch, patience):
      logging.info(
        "%s stops after epoch %d: no better epoch in %d", label, epoch, patience
      )
      break
    segment_start, segment_epochs = time.perf_counter(), 0
  return state, epoch_seconds / timed_epochs if timed_epochs else 0.0


def _check_losses(
  fetched: Sequence[Mapping[str, Any]], epoch: int, label: str | Sequence[str]
):
  # (epochs,) for one model, (epochs, models) for vmapped ones.
  losses = np.array([m["loss"] for m in fetched])
  if np.all(np.isfinite(losses)):
    return
  bad = np.argwhere(~np.isfinite(losses))[0]
  if not isinstance(label, str):
    label = label[int(bad[1])] if losses.ndim > 1 else label[0]
  raise TrainingDivergedError(
    f"{label}: the training loss became {losses[tuple(bad)]} by "
    f"epoch {epoch}; training stopped, and nothing of this version was saved"
  )
