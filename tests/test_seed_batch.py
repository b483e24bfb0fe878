"""Embedding seeds as a batch dimension: seed i of a batch is seed i alone.

One seed (S = 1) carries no axis and is the plain jitted epoch, bit for bit.

Tolerance. A batch runs each seed's epoch under ``jax.vmap``, so XLA may
lower its matmuls and reductions (batched dots, segment sums, means over a
batch) with another association order than the one-seed program; float32
results then differ in their last bits and the gap grows a little with every
Adam step. Measured on these fits (6 epochs, PinSAGE d=16, 2 layers, lr
1e-2): at most 8.3e-7 absolute on any parameter or batch-norm statistic
(BPR and joint fits alike), losses equal to ~1e-7
relative, and identical kept epochs and Recall@K. On jax 0.12 (Python 3.12)
the joint fit's epoch-mean loss differed by 1.7e-5 relative (0.4524399
against 0.4524324), its variables still within 1e-5. The tests allow 1e-5
absolute on variables (~12x the gap measured on jax 0.10, and 1000x below
one Adam step at lr 1e-2, which is what a real bug such as a wrong key or a
state shared between seeds moves parameters by) and 1e-4 relative on losses
(~6x the gap measured on jax 0.12).
"""

import dataclasses

import jax
import numpy as np
import optax
import pytest

from bcjax import keys
from bcjax.components.losses import get_loss
from bcjax.components.transforms import get_transform
from bcjax.data.split import split_version
from bcjax.errors import InputError, TrainingDivergedError
from bcjax.evaluation.recall import RecallEvaluator
from bcjax.fitting.posthoc import PosthocConfig, fit_posthoc, fit_posthoc_seeds
from bcjax.fitting.seed_axis import SeedAxis
from bcjax.fitting.selection import BestEpoch, BestEpochs
from bcjax.fitting.train import (
  Alignment,
  AlignmentTarget,
  FitConfig,
  create_train_state,
  make_train_epoch,
  steps_per_epoch,
)
from bcjax.fitting.version_fit import fit_version, fit_version_seeds, make_batched_epoch
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed, init_variables
from bcjax.storage.progress import FitProgress

ATOL = 1e-5  # on variables; see the module docstring
RTOL = 1e-4  # on losses

MODEL = PinSAGE(dim=16, num_layers=2)
CONFIG = FitConfig(epochs=6, eval_every=2, batch_size=256, learning_rate=1e-2)
# Keys whose fits alone keep different epochs (4, 6 and 4).
KEYS = (7, 8, 9)


def _keys():
  return [jax.random.key(k) for k in KEYS]


@pytest.fixture(scope="module")
def split(small_graph):
  return split_version(small_graph, 1)


@pytest.fixture(scope="module")
def batched(split):
  return fit_version_seeds(MODEL, split, CONFIG, _keys())


@pytest.fixture(scope="module")
def batched_two(split):
  return fit_version_seeds(MODEL, split, CONFIG, _keys()[:2])


@pytest.fixture(scope="module")
def alone(split):
  return [fit_version(MODEL, split, CONFIG, k) for k in _keys()]


def _assert_same_fit(a, b):
  assert a.best_epoch == b.best_epoch
  assert a.recall == pytest.approx(b.recall, abs=1e-9)
  assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history]
  for ha, hb in zip(a.history, b.history, strict=True):
    for name in ("loss", "bpr", "reg", "align"):
      if name in ha:
        assert hb[name] == pytest.approx(ha[name], rel=RTOL)
    assert hb["recall@50"] == pytest.approx(ha["recall@50"], abs=1e-9)
  close = lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=ATOL)  # noqa: E731
  jax.tree.map(close, a.variables, b.variables)
  jax.tree.map(close, a.transform_params, b.transform_params)


def test_each_seed_of_a_batch_is_that_seed_alone(batched, alone):
  for a, b in zip(alone, batched, strict=True):
    _assert_same_fit(a, b)


def test_seeds_keep_their_own_epochs(batched, alone, split):
  epochs = [f.best_epoch for f in batched]
  assert epochs == [f.best_epoch for f in alone]
  assert len(set(epochs)) > 1, "the keys were chosen to keep different epochs"
  graph = BipartiteGraph.from_split(split)
  for fit in batched:
    evaluated = {h["epoch"]: h["recall@50"] for h in fit.history}
    assert fit.recall[50] == max(evaluated.values()) == evaluated[fit.best_epoch]
    # What is kept is that seed's model of that epoch, not another's.
    kept = RecallEvaluator(split)(*embed(MODEL, fit.variables, graph))
    assert kept[50] == pytest.approx(fit.recall[50], abs=1e-6)


def test_a_batch_is_bit_identical_to_itself(batched, split):
  again = fit_version_seeds(MODEL, split, CONFIG, _keys())
  strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
  for a, b in zip(batched, again, strict=True):
    assert a.best_epoch == b.best_epoch and a.recall == b.recall
    assert strip(a.history) == strip(b.history)
    jax.tree.map(np.testing.assert_array_equal, a.variables, b.variables)


def test_one_seed_is_the_plain_jitted_epoch_bit_for_bit(split):
  """S = 1 carries no seed axis: a hand-rolled loop of the jitted epoch
  (fresh variables from the key's model_init stream, epoch e on fold_in of
  its epochs stream, the best evaluation kept) gives the same bits."""
  key = _keys()[1]
  (fit,) = fit_version_seeds(MODEL, split, CONFIG, [key])
  graph = BipartiteGraph.from_split(split)
  variables = init_variables(MODEL, graph, keys.stream(key, "model_init"))
  state = create_train_state(MODEL, variables, optax.adam(CONFIG.learning_rate))
  train_epoch = make_train_epoch(
    MODEL,
    steps_per_epoch(split.num_train, CONFIG.batch_size),
    CONFIG.batch_size,
    CONFIG.weight_decay,
  )
  evaluator = RecallEvaluator(split, chunk_size=CONFIG.eval_chunk_size)
  kept, kept_recall, losses = None, -1.0, []
  for epoch in range(1, CONFIG.epochs + 1):
    epoch_key = keys.epoch_key(keys.stream(key, "epochs"), epoch)
    state, metrics = train_epoch(state, graph, epoch_key, None)
    if epoch % CONFIG.eval_every:
      continue
    current = {"params": state.params["model"], "batch_stats": state.batch_stats}
    recall = evaluator(*embed(MODEL, current, graph))
    losses.append(float(metrics["loss"]))
    if recall[50] > kept_recall:
      kept, kept_recall = (epoch, jax.tree.map(np.array, current)), recall[50]
  assert [h["loss"] for h in fit.history] == losses
  assert fit.best_epoch == kept[0] and fit.recall[50] == kept_recall
  jax.tree.map(np.testing.assert_array_equal, fit.variables, kept[1])


def test_with_patience_each_seed_stops_where_it_would_alone(split):
  config = dataclasses.replace(CONFIG, epochs=12, eval_every=1, patience=2)
  alone = [fit_version(MODEL, split, config, k) for k in _keys()]
  stops = [f.history[-1]["epoch"] for f in alone]
  assert min(stops) < max(stops), "the keys should stop at different epochs"
  batched = fit_version_seeds(MODEL, split, config, _keys())
  for a, b in zip(alone, batched, strict=True):
    _assert_same_fit(a, b)


def test_joint_fits_batch_with_their_own_targets_and_transforms(split):
  graph = BipartiteGraph.from_split(split)
  previous = PinSAGE(dim=8, num_layers=1)
  transform = get_transform("linear")
  alignment = Alignment(transform, get_loss("sloss"), 1.0)
  targets, starts = [], []
  for i in range(len(KEYS)):
    old = init_variables(previous, graph, jax.random.key(100 + i))
    targets.append(AlignmentTarget(*embed(previous, old, graph)))
    starts.append(transform.init(jax.random.key(200 + i), MODEL.dim, previous.dim))
  settings = dict(alignment=alignment)
  alone = [
    fit_version(MODEL, split, CONFIG, k, transform_params=p, target=t, **settings)
    for k, p, t in zip(_keys(), starts, targets, strict=True)
  ]
  batched = fit_version_seeds(
    MODEL, split, CONFIG, _keys(), transform_params=starts, targets=targets, **settings
  )
  for a, b in zip(alone, batched, strict=True):
    assert "align" in b.history[0]
    _assert_same_fit(a, b)
  # Each seed trained its own B_k towards its own target.
  w = [np.asarray(jax.tree.leaves(b.transform_params)[0]) for b in batched]
  assert not np.allclose(w[0], w[1])


def test_the_batched_epoch_compiles_once(split):
  graph = BipartiteGraph.from_split(split)
  tx = optax.adam(1e-2)
  states = [
    create_train_state(MODEL, init_variables(MODEL, graph, k), tx) for k in _keys()
  ]
  train_epoch = make_batched_epoch(MODEL, 2, 64, 1e-2)
  state = SeedAxis(len(states)).stack(states)
  epoch_keys = jax.numpy.stack(_keys())
  for epoch in range(1, 4):
    state, metrics = train_epoch(state, graph, epoch_keys, epoch, None)
  assert train_epoch._cache_size() == 1
  assert metrics["loss"].shape == (len(KEYS),)


def test_a_diverged_seed_is_named(split):
  graph = BipartiteGraph.from_split(split)
  model = PinSAGE(dim=8, num_layers=1)
  variables = [init_variables(model, graph, k) for k in _keys()[:2]]
  table = variables[1]["params"]["user_embedding"]
  variables[1]["params"]["user_embedding"] = table * np.nan
  config = FitConfig(epochs=2, eval_every=1, batch_size=256)
  with pytest.raises(TrainingDivergedError, match="nobc v1 seed 1: .* by epoch 1"):
    fit_version_seeds(
      model,
      split,
      config,
      _keys()[:2],
      variables=variables,
      labels=["nobc v1 seed 0", "nobc v1 seed 1"],
    )


def test_per_seed_arguments_must_match_the_keys(split):
  with pytest.raises(InputError, match="labels has 1 entries; expected one per seed"):
    fit_version_seeds(MODEL, split, CONFIG, _keys(), labels=["a"])


class Killed(Exception):
  pass


@pytest.mark.parametrize("die_after_seed", [1, 0])
def test_a_killed_batch_resumes(
  split, batched_two, tmp_path, monkeypatch, die_after_seed
):
  """Killed after every seed saved epoch 4 (resumes from it), or after seed 0
  only (seeds at different epochs: starts over); either way the same fits."""
  keys2 = _keys()[:2]
  progress = [FitProgress(str(tmp_path / f"seed{i}")) for i in range(2)]
  save = FitProgress.save

  def save_then_die(self, epoch, *args):
    save(self, epoch, *args)
    if epoch == 4 and self.directory == progress[die_after_seed].directory:
      raise Killed

  monkeypatch.setattr(FitProgress, "save", save_then_die)
  with pytest.raises(Killed):
    fit_version_seeds(MODEL, split, CONFIG, keys2, progress=progress)
  monkeypatch.setattr(FitProgress, "save", save)
  saved = [p.latest_epoch() for p in progress]
  assert saved == ([4, 4] if die_after_seed == 1 else [4, 2])
  resumed = fit_version_seeds(MODEL, split, CONFIG, keys2, progress=progress)
  strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
  for a, b in zip(batched_two, resumed, strict=True):
    assert a.best_epoch == b.best_epoch and a.recall == b.recall
    assert strip(a.history) == strip(b.history)
    jax.tree.map(np.testing.assert_array_equal, a.variables, b.variables)


def test_best_epochs_follows_best_epoch_per_model():
  """BestEpochs with keep_after is BestEpoch run per model (brute force)."""
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(8, 5))
  scores[:, 3] = -np.inf  # a model no epoch improves: the last one is kept
  rules = [BestEpoch(keep_after=3, last_epoch=8) for _ in range(5)]
  batch = BestEpochs.start(5, keep_after=3, last_epoch=8)
  for epoch in range(1, 9):
    taken = batch.offer(epoch, scores[epoch - 1])
    assert list(taken) == [r.offer(epoch, s) for r, s in zip(rules, scores[epoch - 1])]
  assert list(batch.epochs) == [r.epoch for r in rules]
  assert batch.epochs[3] == 0  # -inf never beats -inf, alone or batched
  assert len(set(batch.epochs)) > 1


def test_min_delta_keeps_only_epochs_that_beat_the_kept_by_the_margin():
  """BestEpoch and BestEpochs with min_delta against a brute-force rule."""
  rng = np.random.default_rng(1)
  # Errors (scores are minus them) that fall, then creep down by 0-0.2% an
  # epoch: below the margin of 0.3% mostly, above it over a few epochs.
  errors = np.cumprod(1 - rng.uniform(0.0, 0.002, size=(30, 4)), axis=0)
  errors[:5] *= np.linspace(3, 1.2, 5)[:, None]
  min_delta = 0.003
  rules = [
    BestEpoch(keep_after=0, last_epoch=30, min_delta=min_delta) for _ in range(4)
  ]
  batch = BestEpochs.start(4, 0, 30, min_delta=min_delta)
  for epoch in range(1, 31):
    taken = batch.offer(epoch, -errors[epoch - 1])
    assert list(taken) == [r.offer(epoch, -e) for r, e in zip(rules, errors[epoch - 1])]
  for m in range(4):
    # Brute force: an epoch is kept when its error is below the kept one's
    # by more than min_delta of it.
    kept, kept_error = 0, np.inf
    for epoch, e in enumerate(errors[:, m], 1):
      if e < kept_error * (1 - min_delta):
        kept, kept_error = epoch, e
    assert batch.epochs[m] == rules[m].epoch == kept
    assert -batch.scores[m] == pytest.approx(kept_error)
    # Within the margin of the best error seen.
    assert kept_error * (1 - min_delta) <= errors[:, m].min() <= kept_error
  # The margin matters: some model keeps an epoch before its lowest error.
  assert np.any(batch.epochs != np.argmin(errors, axis=0) + 1)


@pytest.mark.parametrize(
  "config",
  [
    # Checked every 2 epochs after epoch 2, at a rate that makes the error
    # wander: the seeds keep different epochs.
    PosthocConfig(
      epochs=12, keep_after=2, eval_every=2, batch_size=64, learning_rate=0.3
    ),
    # No multiple of eval_every after keep_after: only the last is checked.
    PosthocConfig(epochs=10, keep_after=8, eval_every=4, batch_size=64),
    # Stopped on a plateau: each seed stops at its own check, as alone.
    PosthocConfig(
      epochs=40,
      keep_after=2,
      eval_every=2,
      batch_size=64,
      learning_rate=0.3,
      patience=4,
      min_delta=0.01,
    ),
  ],
  ids=["wandering", "last-only", "patience"],
)
def test_each_seed_of_a_posthoc_batch_is_that_seed_alone(split, config):
  graph = BipartiteGraph.from_split(split)
  transform = get_transform("linear")
  rng = np.random.default_rng(0)
  n = 3

  def table(rows, dim):
    return rng.normal(size=(rows, dim)).astype(np.float32)

  current = [(table(split.num_users, 6), table(split.num_items, 6)) for _ in range(n)]
  previous = [(table(split.num_users, 4), table(split.num_items, 4)) for _ in range(n)]
  params = [transform.init(jax.random.key(10 + i), 6, 4) for i in range(n)]
  seed_keys = [jax.random.key(20 + i) for i in range(n)]
  alone = [
    fit_posthoc(
      transform, p, c, q, graph, config, k, loss=get_loss("sloss"), label=f"s{i}"
    )
    for i, (p, c, q, k) in enumerate(zip(params, current, previous, seed_keys))
  ]
  batched = fit_posthoc_seeds(
    transform,
    params,
    current,
    previous,
    graph,
    config,
    seed_keys,
    loss=get_loss("sloss"),
  )
  for a, b in zip(alone, batched, strict=True):
    assert b.best_epoch == a.best_epoch and b.steps_per_epoch == a.steps_per_epoch
    assert [e for e, _ in b.checked] == [e for e, _ in a.checked]
    np.testing.assert_allclose(
      [err for _, err in b.checked], [err for _, err in a.checked], rtol=RTOL
    )
    assert b.error == pytest.approx(a.error, rel=RTOL)
    close = lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=ATOL)  # noqa: E731
    jax.tree.map(close, a.params, b.params)
  if config.keep_after == 2:
    assert len({f.best_epoch for f in batched}) > 1, "seeds keep different epochs"
  if config.patience:
    # Every seed stopped before the last epoch, not all at the same check.
    stops = [f.checked[-1][0] for f in batched]
    assert max(stops) < config.epochs and len(set(stops)) > 1, stops
