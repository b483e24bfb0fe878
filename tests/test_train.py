"""The jitted training epoch and the fit loop."""

import dataclasses

import jax
import numpy as np
import optax
import pytest

from bcjax.data.split import split_version
from bcjax.errors import TrainingDivergedError
from bcjax.evaluation.recall import version_evaluators
from bcjax.fitting.train import (
  FitConfig,
  create_train_state,
  make_train_epoch,
  steps_per_epoch,
)
from bcjax.fitting.version_fit import fit_version
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed, init_variables


def _state(model, graph, seed=0):
  variables = init_variables(model, graph, jax.random.key(seed))
  return create_train_state(model, variables, optax.adam(1e-2))


def test_train_epoch_compiles_once_and_lowers_the_loss(small_graph):
  split = split_version(small_graph, 0)
  graph = BipartiteGraph.from_split(split)
  model = PinSAGE(dim=16, num_layers=2)
  train_epoch = make_train_epoch(
    model, steps_per_epoch(split.num_train, 256), 256, 1e-2
  )
  state = _state(model, graph)
  losses = []
  for epoch in range(6):
    state, metrics = train_epoch(state, graph, jax.random.key(epoch), None)
    losses.append(float(metrics["loss"]))
  assert train_epoch._cache_size() == 1
  assert losses[-1] < losses[0]
  assert set(metrics) == {"loss", "bpr", "reg"}


def test_batch_stats_are_updated_by_training(small_graph):
  split = split_version(small_graph, 0)
  graph = BipartiteGraph.from_split(split)
  model = PinSAGE(dim=8, num_layers=1)
  state = _state(model, graph)
  before = jax.tree.map(np.asarray, state.batch_stats)
  state, _ = make_train_epoch(model, 2, 64, 1e-2)(state, graph, jax.random.key(0), None)
  after = jax.tree.map(np.asarray, state.batch_stats)
  assert not np.allclose(before["norm_0"]["mean"], after["norm_0"]["mean"])


def test_fit_is_deterministic_and_keeps_the_best_epoch(small_graph):
  split = split_version(small_graph, 1)
  model = PinSAGE(dim=16, num_layers=2)
  config = FitConfig(epochs=6, eval_every=2, batch_size=256, learning_rate=1e-2)
  a = fit_version(model, split, config, jax.random.key(7))
  b = fit_version(model, split, config, jax.random.key(7))
  assert a.recall == b.recall and a.best_epoch == b.best_epoch
  jax.tree.map(np.testing.assert_array_equal, a.variables, b.variables)
  evaluated = {h["epoch"]: h["recall@50"] for h in a.history}
  assert sorted(evaluated) == [2, 4, 6]
  assert a.recall[50] == max(evaluated.values())
  assert evaluated[a.best_epoch] == a.recall[50]


def test_held_out_report_split_selects_on_one_half_and_reports_the_other(
  small_graph,
):
  split = split_version(small_graph, 1)
  model = PinSAGE(dim=16, num_layers=2)
  config = FitConfig(
    epochs=6,
    eval_every=2,
    batch_size=256,
    learning_rate=1e-2,
    report_split="held_out",
  )
  fit = fit_version(model, split, config, jax.random.key(7))
  select, report = version_evaluators(split, "held_out")
  evaluated = {h["epoch"]: h["recall@50"] for h in fit.history}
  assert evaluated[fit.best_epoch] == max(evaluated.values())
  graph = BipartiteGraph.from_split(split)
  kept = embed(model, fit.variables, graph)
  assert select(*kept)[50] == pytest.approx(evaluated[fit.best_epoch], abs=1e-6)
  assert fit.recall == report(*kept)
  assert fit.recall[50] != select(*kept)[50]


def test_keep_after_excludes_early_epochs(small_graph):
  split = split_version(small_graph, 1)
  config = FitConfig(epochs=4, eval_every=1, batch_size=256, keep_after=3)
  fit = fit_version(PinSAGE(dim=8, num_layers=1), split, config, jax.random.key(0))
  assert fit.best_epoch == 4


def test_non_finite_loss_stops_with_a_clear_message(small_graph):
  split = split_version(small_graph, 0)
  graph = BipartiteGraph.from_split(split)
  model = PinSAGE(dim=8, num_layers=1)
  variables = init_variables(model, graph, jax.random.key(0))
  variables["params"]["user_embedding"] = variables["params"]["user_embedding"] * np.nan
  config = FitConfig(epochs=2, eval_every=1, batch_size=256)
  with pytest.raises(TrainingDivergedError, match="nobc v0: .* by epoch 1"):
    fit_version(
      model, split, config, jax.random.key(0), variables=variables, label="nobc v0"
    )


def test_patience_stops_a_fit_once_its_kept_epoch_is_stale(small_graph):
  split = split_version(small_graph, 1)
  model = PinSAGE(dim=16, num_layers=2)
  full = FitConfig(epochs=30, eval_every=1, batch_size=256, learning_rate=5e-2)
  whole = fit_version(model, split, full, jax.random.key(3))
  early = fit_version(
    model, split, dataclasses.replace(full, patience=2), jax.random.key(3)
  )
  recall = [h["recall@50"] for h in whole.history]
  # Brute force on the whole fit's curve: the first epoch whose best so far
  # is 2 epochs old (the kept one is the first best, ties kept earlier).
  stop = next(e for e in range(1, 31) if e - (int(np.argmax(recall[:e])) + 1) >= 2)
  assert [h["epoch"] for h in early.history] == list(range(1, stop + 1))
  assert early.best_epoch == int(np.argmax(recall[:stop])) + 1 < stop < 30
  assert [h["recall@50"] for h in early.history] == recall[:stop]
  jax.tree.map(
    np.testing.assert_array_equal,
    early.variables,
    fit_version(
      model,
      split,
      dataclasses.replace(full, epochs=early.best_epoch),
      jax.random.key(3),
    ).variables,
  )
