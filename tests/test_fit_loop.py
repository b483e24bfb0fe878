"""The host loop the fits share: evaluations, the kept epoch, divergence."""

import jax.numpy as jnp
import numpy as np
import pytest

from bcjax.errors import TrainingDivergedError
from bcjax.fitting.fit_loop import EpochParts, run_epochs
from bcjax.fitting.selection import BestEpoch, BestEpochs


def _parts(scores, losses=None, log=None, every=2, last=7):
  """A toy fit: the state counts epochs; epoch e has loss losses[e]."""
  log = [] if log is None else log
  losses = losses or {}

  def train(state, epoch):
    return state + 1, {"loss": jnp.float32(losses.get(epoch, 1.0 / epoch))}

  def evaluate(state, epoch, fetched):
    log.append(("evaluate", epoch, state, [float(m["loss"]) for m in fetched]))
    return scores[epoch], f"info{epoch}"

  return EpochParts(
    train=train,
    due=lambda epoch: epoch % every == 0 or epoch == last,
    evaluate=evaluate,
    keep=lambda state, epoch, info, taken: log.append(("keep", epoch, info)),
    after_evaluation=lambda state, epoch: log.append(("after", epoch)),
  )


def test_evaluates_when_due_with_every_epochs_metrics_and_keeps_the_best():
  log = []
  scores = {2: 0.5, 4: 0.9, 6: 0.7, 7: 0.95}
  selection = BestEpoch(keep_after=3, last_epoch=7)
  state, seconds = run_epochs(0, _parts(scores, log=log), selection, epochs=7)
  assert state == 7 and seconds >= 0.0
  evaluations = [e for e in log if e[0] == "evaluate"]
  assert [e[1] for e in evaluations] == [2, 4, 6, 7]
  # Each evaluation sees the state after its epoch and the losses since the last.
  assert evaluations[1] == ("evaluate", 4, 4, pytest.approx([1 / 3, 1 / 4]))
  assert evaluations[3][3] == pytest.approx([1 / 7])
  # Epoch 2 is not eligible (keep_after=3); 6 does not beat 4; 7 does.
  assert [e for e in log if e[0] == "keep"] == [
    ("keep", 4, "info4"),
    ("keep", 7, "info7"),
  ]
  assert (selection.epoch, selection.score) == (7, 0.95)
  # after_evaluation follows each evaluation and its keep.
  assert log.index(("after", 4)) == log.index(("keep", 4, "info4")) + 1


def test_resumes_from_a_later_epoch_with_the_restored_selection():
  log = []
  selection = BestEpoch(keep_after=0, last_epoch=7, epoch=4, score=0.9)
  state, _ = run_epochs(
    4, _parts({6: 0.8, 7: 0.91}, log=log), selection, epochs=7, first_epoch=5
  )
  assert state == 7
  assert [e[1] for e in log if e[0] == "evaluate"] == [6, 7]
  assert [e[1] for e in log if e[0] == "keep"] == [7]


def test_a_loss_that_is_not_finite_stops_the_fit_naming_the_epoch():
  log = []
  parts = _parts({2: 0.1, 4: 0.2}, losses={3: float("nan")}, log=log)
  with pytest.raises(TrainingDivergedError, match="toy: .* became nan by epoch 4"):
    run_epochs(0, parts, BestEpoch(0, 7), epochs=7, label="toy")
  # Epoch 3's NaN is found at the evaluation after epoch 4, before scoring it.
  assert [e[1] for e in log if e[0] == "evaluate"] == [2]


def test_best_epochs_keeps_each_models_best_and_never_a_nan():
  selection = BestEpochs.start(3)
  taken = selection.offer(1, np.array([0.5, np.nan, 0.2]))
  np.testing.assert_array_equal(taken, [True, False, True])
  taken = selection.offer(2, np.array([0.4, 0.3, 0.9]))
  np.testing.assert_array_equal(taken, [False, True, True])
  np.testing.assert_array_equal(selection.epochs, [1, 2, 2])
  np.testing.assert_array_equal(selection.scores, [0.5, 0.3, 0.9])
  # A model whose every score is NaN keeps no epoch.
  never = BestEpochs.start(1)
  never.offer(1, np.array([np.nan]))
  assert never.epochs[0] == 0 and never.scores[0] == -np.inf


def test_vmapped_models_keep_their_own_epochs_and_may_diverge():
  kept = []
  scores = {1: [0.1, 0.5], 2: [0.3, np.nan], 3: [0.2, 0.6]}

  def train(state, epoch):
    loss = jnp.array([1.0, np.nan if epoch >= 2 else 1.0])  # model 1 diverges
    return state, {"loss": loss}

  parts = EpochParts(
    train=train,
    due=lambda epoch: True,
    evaluate=lambda state, epoch, fetched: (np.array(scores[epoch]), None),
    keep=lambda state, epoch, info, taken: kept.append((epoch, list(taken))),
    stop_on_divergence=False,
  )
  selection = BestEpochs.start(2)
  run_epochs(None, parts, selection, epochs=3)
  assert kept == [(1, [True, True]), (2, [True, False]), (3, [False, True])]
  np.testing.assert_array_equal(selection.epochs, [2, 3])


def test_one_epoch_has_no_timed_epochs():
  parts = _parts({1: 0.3}, every=1, last=1)
  _, seconds = run_epochs(0, parts, BestEpoch(0, 1), epochs=1)
  assert seconds == 0.0


def test_patience_stops_at_the_first_evaluation_that_finds_the_kept_epoch_stale():
  log = []
  # Epoch 4 is the best; at epoch 8 it is 4 epochs old: patience 4 stops there.
  scores = {2: 0.5, 4: 0.9, 6: 0.8, 8: 0.85, 10: 0.99, 12: 0.99}
  selection = BestEpoch(keep_after=0, last_epoch=12)
  state, _ = run_epochs(
    0, _parts(scores, log=log, last=12), selection, epochs=12, patience=4
  )
  assert state == 8 and selection.epoch == 4
  assert [e[1] for e in log if e[0] == "evaluate"] == [2, 4, 6, 8]
  # Patience 0 (and a patience longer than the fit) trains every epoch.
  for patience in (0, 20):
    best = BestEpoch(keep_after=0, last_epoch=12)
    state, _ = run_epochs(
      0, _parts(scores, last=12), best, epochs=12, patience=patience
    )
    assert state == 12 and best.epoch == 10


def test_patience_waits_for_a_kept_epoch_and_a_stale_resume_runs_nothing():
  # keep_after=5: nothing is kept at 2 and 4, so nothing is stale there.
  scores = {2: 0.9, 4: 0.9, 6: 0.5, 8: 0.4, 10: 0.3, 12: 0.2}
  selection = BestEpoch(keep_after=5, last_epoch=12)
  state, _ = run_epochs(0, _parts(scores, last=12), selection, epochs=12, patience=4)
  assert state == 10 and selection.epoch == 6
  # Killed after saving at epoch 10 and resumed: the fit had already stopped.
  log = []
  restored = BestEpoch(keep_after=5, last_epoch=12, epoch=6, score=0.5)
  state, seconds = run_epochs(
    10,
    _parts(scores, log=log, last=12),
    restored,
    epochs=12,
    first_epoch=11,
    patience=4,
  )
  assert (state, seconds, log) == (10, 0.0, [])


def test_best_epochs_stop_each_model_once_stale_and_end_when_all_have():
  def two():
    best = BestEpochs.start(2)
    best.offer(2, np.array([0.5, 0.5]))
    best.offer(4, np.array([0.4, 0.6]))
    return best

  # Model 0 kept epoch 2, model 1 epoch 4: at 6 only model 0's is 3 old.
  best = two()
  assert not best.stale(6, 3) and best.running().tolist() == [False, True]
  # Stopped, model 0 is offered nothing more: its better 0.9 is not kept.
  assert best.offer(6, np.array([0.9, 0.7])).tolist() == [False, True]
  assert best.epochs.tolist() == [2, 6] and best.scores.tolist() == [0.5, 0.7]
  assert not best.stale(8, 3) and best.stale(9, 3)
  best = two()
  assert not best.stale(7, 4) and best.stale(8, 4)
  assert not two().stale(100, 0) and two().running().all()
  # A model with nothing kept (keep_after) never stops.
  late = BestEpochs.start(2, keep_after=5)
  late.offer(2, np.array([0.5, 0.5]))
  assert not late.stale(9, 3) and late.running().all()
