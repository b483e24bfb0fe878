"""bcjax.align.consumers and bcjax.align.decision: consumers across a bridge,
and the bridge / re-index / no-upgrade answer from thresholds and intervals."""

import math

import numpy as np
import pytest

from bcjax import align
from bcjax.align import backfill, consumers, decision
from bcjax.errors import InputError

# Student-t 97.5% quantile with 4 degrees of freedom, from the tables.
T_975_DF4 = 2.7764451051977987


def _clusters(n=400, d=8, classes=4, noise=0.6, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, classes, size=n)
  centres = rng.normal(size=(classes, d)) * 2
  x = (centres[labels] + noise * rng.normal(size=(n, d))).astype(np.float32)
  return x, labels


@pytest.mark.parametrize("name", sorted(consumers.CONSUMERS))
def test_a_consumer_learns_separable_classes(name):
  x, y = _clusters()
  model = consumers.train(x[:300], y[:300], 4, consumers.CONSUMERS[name], seed=1)
  accuracy = np.mean(model.predict(x[300:]) == y[300:])
  assert accuracy > 0.9
  assert 0 < model.best_step <= consumers.CONSUMERS[name].steps
  # Same seed, same consumer: training is deterministic.
  again = consumers.train(x[:300], y[:300], 4, consumers.CONSUMERS[name], seed=1)
  np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_consumers_see_directions_only():
  x, y = _clusters()
  model = consumers.train(x, y, 4, seed=0)
  scaled = x * np.random.default_rng(3).uniform(0.1, 10, size=(len(x), 1))
  np.testing.assert_array_equal(model.predict(scaled), model.predict(x))


def test_negative_flip_rate_counts_right_then_wrong():
  rng = np.random.default_rng(0)
  truth, before, after = (rng.integers(0, 3, size=500) for _ in range(3))
  want = sum(b == t and a != t for t, b, a in zip(truth, before, after)) / 500
  assert consumers.negative_flip_rate(truth, before, after) == pytest.approx(want)


def test_consumer_results_across_a_perfect_and_a_useless_bridge():
  x, y = _clusters(seed=2)
  new = x @ np.random.default_rng(4).normal(size=(8, 8)).astype(np.float32)
  labels = np.asarray([f"c{v}" for v in y])
  train, test = np.arange(300), np.arange(300, 400)
  small = {"lr": consumers.ConsumerHP(steps=200)}
  perfect = consumers.consumer_results(
    x, new, x[test], labels, train, test, blended=x[test], consumers=small
  )["lr"]
  assert perfect["accuracy_bridged"] == perfect["accuracy_old"] > 0.9
  assert perfect["negative_flip_rate"] == perfect["negative_flip_rate_blended"] == 0
  noise = np.random.default_rng(5).normal(size=(100, 8)).astype(np.float32)
  useless = consumers.consumer_results(
    x, new, noise, labels, train, test, consumers=small
  )["lr"]
  # Brute force: the same consumer (same rows, labels, seed) predicts by hand.
  classes, codes = np.unique(labels, return_inverse=True)
  model = consumers.train(x[train], codes[train], len(classes), small["lr"], 0)
  right = model.predict(x[test]) == codes[test]
  wrong = model.predict(noise) != codes[test]
  assert useless["negative_flip_rate"] == pytest.approx(np.mean(right & wrong))
  assert useless["accuracy_bridged"] < 0.6 and "accuracy_blended" not in useless
  retrained = consumers.train(new[train], codes[train], len(classes), small["lr"], 0)
  assert useless["accuracy_retrained"] == pytest.approx(
    np.mean(retrained.predict(new[test]) == codes[test])
  )


def test_a_consumer_refuses_rows_without_labels():
  with pytest.raises(InputError, match="one label each"):
    consumers.train(np.zeros((5, 3)), np.zeros(4, int), 2)


def _replicates(gains, retentions):
  return [
    {"upgrade_gain": g, "retention": r} for g, r in zip(gains, retentions, strict=True)
  ]


@pytest.mark.parametrize(
  "gains, retentions, answer",
  [
    ([0.96, 0.98, 0.97, 0.99, 0.98], [0.99] * 5, "no upgrade needed"),
    ([0.98, 1.06, 1.01, 1.04, 1.0], [0.99] * 5, "unresolved"),
    ([1.1, 1.12, 1.09, 1.11, 1.1], [0.97, 0.98, 0.96, 0.975, 0.97], "bridge"),
    ([1.1, 1.12, 1.09, 1.11, 1.1], [0.8, 0.82, 0.79, 0.81, 0.8], "re-index"),
    ([1.1, 1.12, 1.09, 1.11, 1.1], [0.91, 0.99, 0.95, 0.97, 0.93], "unresolved"),
  ],
)
def test_the_answer_follows_the_intervals(gains, retentions, answer):
  got = decision.decide(_replicates(gains, retentions))
  assert got["answer"] == answer and got["splits"] == 5
  for key, values in (("upgrade_gain", gains), ("retention", retentions)):
    mean = sum(values) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    half = T_975_DF4 * sd / math.sqrt(5)
    assert got[key]["mean"] == pytest.approx(mean)
    assert got[key]["low"] == pytest.approx(mean - half)
    assert got[key]["high"] == pytest.approx(mean + half)


def test_stated_thresholds_change_the_answer():
  reps = _replicates([1.05, 1.06, 1.04, 1.05, 1.05], [0.9, 0.91, 0.89, 0.9, 0.9])
  assert decision.decide(reps)["answer"] == "re-index"
  loose = decision.Thresholds(min_gain=1.02, min_retention=0.8)
  assert decision.decide(reps, loose)["answer"] == "bridge"
  strict = decision.Thresholds(min_gain=1.2, min_retention=0.8)
  assert decision.decide(reps, strict)["answer"] == "no upgrade needed"
  # One split: no interval, the means decide.
  one = decision.decide(reps[:1], loose)
  assert one["answer"] == "bridge" and one["retention"]["low"] is None


def test_bad_thresholds_and_ratios_are_one_line():
  with pytest.raises(InputError, match="thresholds must be positive"):
    decision.Thresholds(min_gain=0)
  with pytest.raises(InputError, match="not finite"):
    decision.decide(_replicates([1.1, float("nan")], [0.9, 0.9]))
  with pytest.raises(InputError, match="got none"):
    decision.decide([])


def test_replicate_refits_the_family_on_each_split():
  x, y = _clusters(n=300, seed=6)
  rng = np.random.default_rng(7)
  new = x @ rng.normal(size=(8, 6)).astype(np.float32)
  labels = np.asarray([str(v) for v in y])
  bridge = align.fit(old=x[:200], new=new[:200], family="linear", center=True)
  splits = [
    (np.arange(200), np.arange(200, 300)),
    (np.arange(100, 300), np.arange(100)),
  ]
  reps = decision.replicate(x, new, labels, bridge, splits, k=5)
  for (train, test), rep in zip(splits, reps, strict=True):
    refit = align.fit(old=x[train], new=new[train], family="linear", center=True)

    def classes(index, queries, test=test):
      # A query's own row left out, its 5 nearest by cosine, share of its label.
      a = index / np.linalg.norm(index, axis=1, keepdims=True)
      q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
      scores = q @ a.T
      scores[np.arange(len(test)), test] = -np.inf
      top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
      return np.mean(labels[top] == labels[test][:, None])

    assert rep["old"] == pytest.approx(classes(x, x[test]))
    assert rep["reindexed"] == pytest.approx(classes(new, new[test]))
    assert rep["bridged"] == pytest.approx(classes(x, refit.apply(new[test])), abs=0.01)
    assert rep["upgrade_gain"] == pytest.approx(rep["reindexed"] / rep["old"])
    assert rep["retention"] == pytest.approx(rep["bridged"] / rep["reindexed"])


def test_backfill_curves_mix_forwarded_and_new_rows_as_the_order_goes():
  x, y = _clusters(n=300, seed=8)
  rng = np.random.default_rng(9)
  new = x @ rng.normal(size=(8, 8)).astype(np.float32)
  forwarded = rng.normal(size=new.shape).astype(np.float32)  # a useless F
  labels = np.asarray([f"c{v}" for v in y])
  train, test = np.arange(200), np.arange(200, 300)
  orders = {"given": rng.permutation(300), "reversed": np.arange(300)[::-1]}
  small = {"lr": consumers.ConsumerHP(steps=200)}
  fractions = (0.0, 0.5, 1.0)
  got = consumers.backfill_curves(
    new, forwarded, labels, train, test, orders, fractions, consumers=small
  )["lr"]
  classes, codes = np.unique(labels, return_inverse=True)
  model = consumers.train(new[train], codes[train], len(classes), small["lr"], 0)
  for name, order in orders.items():
    for f, value in zip(fractions, got[name], strict=True):
      mixed = backfill.gallery_at(new, forwarded, order, f)[test]
      assert value == pytest.approx(np.mean(model.predict(mixed) == codes[test]))
  # The reversed order backfills the test rows (the last 100) first.
  assert got["reversed"][1] == got["reversed"][2] > got["reversed"][0]
