"""Metrics of the unintended tasks: ROC-AUC, accuracy and mean ROC-AUC.

All metrics are exact and computed in NumPy on the host: the consumer models'
outputs are small (one score per example), and a sort is all ROC-AUC needs.
A metric that is undefined on its input (no examples, or labels of one class
only) is ``None`` rather than NaN, so that results stay valid JSON and means
over versions can skip it explicitly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bcjax.errors import InputError, unknown_name


def _check_finite(name: str, values: np.ndarray) -> None:
  """Raises InputError when ``values`` hold NaN or inf."""
  if not np.all(np.isfinite(values)):
    raise InputError(
      f"{name} contain NaN or inf ({int(np.sum(~np.isfinite(values)))} of "
      f"{values.size} values); a metric needs finite model outputs"
    )


def _binary_labels(labels: np.ndarray) -> np.ndarray:
  """``labels`` as bool, after checking that every value is 0 or 1."""
  if labels.dtype == np.bool_:
    return labels
  valid = (labels == 0) | (labels == 1)
  if not np.all(valid):
    bad = labels[~valid][0]
    raise InputError(f"labels must be 0 or 1 (or bool), got {bad!r}")
  return labels == 1


def roc_auc(labels, scores) -> float | None:
  """Exact ROC-AUC, with tied scores counted as half a correct pair.

  This is the Mann-Whitney U statistic over ``n_pos * n_neg``, with tied
  scores given their average rank; it equals
  ``sklearn.metrics.roc_auc_score``. One sort: O(n log n).

  Args:
    labels: ``(n,)`` in {0, 1}: bool, int or float.
    scores: ``(n,)`` float; higher means more likely positive.

  Returns:
    The AUC in [0, 1], or None when ``n == 0`` or the labels hold one class
    only (the AUC is undefined).

  Raises:
    InputError: shapes that are not ``(n,)`` and ``(n,)``, labels other
      than 0/1, or NaN/inf scores.
  """
  labels = np.asarray(labels)
  scores = np.asarray(scores, dtype=np.float64)
  if labels.ndim != 1 or scores.shape != labels.shape:
    raise InputError(
      f"roc_auc needs labels and scores of one shape (n,), got labels "
      f"{labels.shape} and scores {scores.shape}"
    )
  _check_finite("scores", scores)
  positive = _binary_labels(labels)
  n_pos = int(positive.sum())
  n_neg = positive.size - n_pos
  if n_pos == 0 or n_neg == 0:
    return None
  # The average rank (1-based) of a group of ties is the rank of its last
  # member minus half the group's size less one.
  _, group, counts = np.unique(scores, return_inverse=True, return_counts=True)
  ends = np.cumsum(counts, dtype=np.float64)
  ranks = (ends - (counts - 1) / 2.0)[group.reshape(-1)]
  u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))


def accuracy(labels, logits) -> float | None:
  """Fraction of examples whose highest logit is at their label.

  Args:
    labels: ``(n,)`` integer classes in ``[0, c)``.
    logits: ``(n, c)`` float.

  Returns:
    The accuracy in [0, 1], or None when ``n == 0``.

  Raises:
    InputError: mismatched shapes, labels that are not integers in
      ``[0, c)``, or NaN/inf logits.
  """
  labels = np.asarray(labels)
  logits = np.asarray(logits, dtype=np.float64)
  if labels.ndim != 1 or logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
    raise InputError(
      f"accuracy needs labels (n,) and logits (n, c), got labels "
      f"{labels.shape} and logits {logits.shape}"
    )
  if labels.size == 0:
    return None
  _check_finite("logits", logits)
  num_classes = logits.shape[1]
  if not np.issubdtype(labels.dtype, np.integer):
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
      raise InputError(f"accuracy needs integer labels, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
  if np.any(labels < 0) or np.any(labels >= num_classes):
    raise InputError(
      f"accuracy labels must lie in [0, {num_classes}), got values in "
      f"[{labels.min()}, {labels.max()}]"
    )
  return float(np.mean(np.argmax(logits, axis=1) == labels))


def mean_roc_auc(labels, scores) -> float | None:
  """Mean ROC-AUC over the label columns where it is defined (multi-label).

  Args:
    labels: ``(n, L)`` in {0, 1}.
    scores: ``(n, L)`` float.

  Returns:
    The mean of the per-column :func:`roc_auc` over the columns that hold
    both classes, or None when no column does.

  Raises:
    InputError: shapes that are not ``(n, L)`` and ``(n, L)``, labels other
      than 0/1, or NaN/inf scores.
  """
  labels = np.asarray(labels)
  scores = np.asarray(scores, dtype=np.float64)
  if labels.ndim != 2 or scores.shape != labels.shape:
    raise InputError(
      f"mean_roc_auc needs labels and scores of one shape (n, L), got labels "
      f"{labels.shape} and scores {scores.shape}"
    )
  aucs = [roc_auc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
  defined = [a for a in aucs if a is not None]
  if not defined:
    return None
  return float(np.mean(defined))


def _rocauc_from_outputs(labels, outputs) -> float | None:
  """ROC-AUC of a binary task whose model emits ``(n,)`` or ``(n, 1)`` logits."""
  outputs = np.asarray(outputs)
  if outputs.ndim == 2 and outputs.shape[1] == 1:
    outputs = outputs[:, 0]
  return roc_auc(labels, outputs)


METRICS: dict[str, Callable[..., float | None]] = {
  "rocauc": _rocauc_from_outputs,
  "accuracy": accuracy,
  "mean-rocauc": mean_roc_auc,
}


def evaluate_metric(name: str, labels, outputs) -> float | None:
  """The metric ``name`` of a task's model ``outputs`` against ``labels``.

  Args:
    name: ``"rocauc"`` (outputs ``(n,)`` or ``(n, 1)``), ``"accuracy"``
      (outputs ``(n, c)``) or ``"mean-rocauc"`` (outputs ``(n, L)``).
    labels: the labels, shaped as the metric expects.
    outputs: the model's logits or scores.

  Returns:
    The metric, or None where it is undefined.

  Raises:
    InputError: an unknown metric name (the message lists the valid ones),
      or inputs the metric rejects.
  """
  if name not in METRICS:
    raise unknown_name("metric", name, METRICS)
  return METRICS[name](labels, outputs)
