"""Unintended-task metrics against scikit-learn and brute force."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bcjax.errors import InputError
from bcjax.evaluation.metrics import (
  METRICS,
  accuracy,
  evaluate_metric,
  mean_roc_auc,
  roc_auc,
)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_roc_auc_matches_sklearn(seed, decimals):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(2, 400))
  labels = rng.integers(0, 2, size=n)
  labels[:2] = [0, 1]
  scores = rng.normal(size=n) + 0.7 * labels
  if decimals is not None:
    # Rounding makes many ties, which need average ranks.
    scores = np.round(scores, decimals)
  assert roc_auc(labels, scores) == pytest.approx(
    roc_auc_score(labels, scores), abs=1e-12
  )


@pytest.mark.parametrize("labels", [[0, 1], [1, 0, 1, 1], [True, False, False]])
def test_roc_auc_of_all_equal_scores_is_one_half(labels):
  assert roc_auc(labels, np.full(len(labels), 0.3)) == 0.5


@pytest.mark.parametrize(
  "labels,scores,want",
  [
    ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),
    ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),
    # Pairs (pos, neg): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, *) ok: 3/4.
    ([0, 1, 0, 1], [0.1, 0.35, 0.4, 0.8], 0.75),
    # One tie out of four pairs counts one half: (1 + 1 + 0.5 + 1) / 4.
    ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], 0.875),
    ([0.0, 1.0], [2.0, 1.0], 0.0),
  ],
)
def test_roc_auc_hand_examples(labels, scores, want):
  assert roc_auc(labels, scores) == pytest.approx(want)


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], [False], []])
def test_roc_auc_undefined_is_none(labels):
  assert roc_auc(labels, np.arange(len(labels), dtype=float)) is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_roc_auc_rejects_nonfinite_scores(bad):
  with pytest.raises(InputError, match="scores contain NaN"):
    roc_auc([0, 1, 1], [0.1, bad, 0.3])


@pytest.mark.parametrize(
  "labels,scores",
  [([0, 1, 1], [0.1, 0.2]), ([[0, 1]], [[0.1, 0.2]]), ([0, 2], [0.1, 0.2])],
)
def test_roc_auc_rejects_bad_input(labels, scores):
  with pytest.raises(InputError):
    roc_auc(labels, scores)


def test_accuracy_matches_brute_force():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(300, 5))
  labels = rng.integers(0, 5, size=300)
  want = sum(int(np.argmax(row) == y) for row, y in zip(logits, labels)) / 300
  assert accuracy(labels, logits) == pytest.approx(want)
  assert accuracy(np.argmax(logits, axis=1), logits) == 1.0
  assert accuracy(np.zeros(0, int), np.zeros((0, 5))) is None


@pytest.mark.parametrize(
  "labels,logits",
  [
    ([0, 1], np.zeros((3, 2))),
    ([0, 2], np.zeros((2, 2))),
    ([0.5, 1], np.zeros((2, 2))),
    ([0, 1], [[0.0, np.nan], [1.0, 0.0]]),
  ],
)
def test_accuracy_rejects_bad_input(labels, logits):
  with pytest.raises(InputError):
    accuracy(labels, logits)


def test_mean_roc_auc_matches_sklearn_and_skips_one_class_columns():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, size=(200, 4))
  labels[:, 2] = 0  # AUC undefined: skipped, not counted as 0.5.
  scores = np.round(rng.normal(size=(200, 4)) + labels, 1)
  want = np.mean([roc_auc_score(labels[:, j], scores[:, j]) for j in (0, 1, 3)])
  assert mean_roc_auc(labels, scores) == pytest.approx(want, abs=1e-12)
  assert mean_roc_auc(np.ones((5, 3)), np.zeros((5, 3))) is None
  with pytest.raises(InputError):
    mean_roc_auc(labels, scores[:, :3])


def test_evaluate_metric_dispatches_and_names_valid_metrics():
  labels = np.array([0, 1, 1, 0])
  logits = np.array([0.2, 0.9, 0.4, 0.5])
  assert evaluate_metric("rocauc", labels, logits) == 0.75
  assert evaluate_metric("rocauc", labels, logits[:, None]) == 0.75
  assert evaluate_metric("accuracy", [1, 0], [[0.0, 1.0], [1.0, 0.0]]) == 1.0
  assert evaluate_metric("mean-rocauc", labels[:, None], logits[:, None]) == 0.75
  with pytest.raises(InputError, match="accuracy, mean-rocauc, rocauc"):
    evaluate_metric("auc", labels, logits)
  with pytest.raises(InputError):
    evaluate_metric("rocauc", labels, np.zeros((4, 2)))
  assert set(METRICS) == {"rocauc", "accuracy", "mean-rocauc"}
