"""A forward map and partial backfilling: an index moved to the new model row by row.

The **forward map** ``F: old -> new`` is a bridge fitted the other way round
(:func:`fit_forward`; any family of :mod:`bcjax.align.families`): it serves
queries or index rows that have only an old vector in the new space.

**Backfilling** (following FastFill, Jaeckle et al., ICLR 2023): the index
is to move to the new model, and re-embedding costs, so it happens row by
row. At any moment the index (gallery) is a mix: a fraction ``f`` of its
``N`` rows is **backfilled**, holding the row's new vector ``z_new``, and the
rest hold the forward-mapped old vector ``F(z_old)``; queries are embedded
by the new model (``z_new``). The rows backfilled at ``f`` are the first
``round(f N)`` of an **order**:

* ``bridge residual``: largest ``||B(z_new) - z_old||`` first, the served
  bridge's error (ties by row);
* ``forward residual``: largest ``||F(z_old) - z_new||`` first, the error a
  not-yet-backfilled row carries in this index;
* ``random``: a seeded permutation, the control.

Both residual orders read every row's new vector. FastFill predicts the
forward map's error from the old vector alone, because a live system does
not have the new vectors before it re-embeds; where both versions are given
(bring your own embeddings) the residual orders say what ordering can gain
at best, and ``random`` what no ordering gains.

The **backfilling curve** is a retrieval measure of the queries against the
mixed index at ``f = 0, 0.1, ..., 1``: class retrieval@K with labels (a
query's own row left out), self-retrieval Recall@K without (a query finding
its own row, which a backfilled row answers exactly). At ``f = 0`` it is the
no-backfill measure (new queries, forward-mapped index), at ``f = 1`` the
full re-index measure (new vs new, what
:func:`bcjax.align.measures.evaluate` reports as ``class_retrieval_reindexed``).
Its **area** (:func:`area`, trapezoids over ``f`` in ``[0, 1]``) is in the
measure's own units: a curve that reaches the re-indexed score sooner has
the larger area.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bcjax.align.bridge import Bridge, check_rows
from bcjax.align.consumers import backfill_curves
from bcjax.align.fitting import fit
from bcjax.align.measures import (
  MAX_QUERIES,
  class_retrieval,
  mean_cosine,
  mse,
  retention,
  self_recall,
)
from bcjax.errors import InputError

FRACTIONS = tuple(i / 10 for i in range(11))
ORDERS = ("bridge residual", "forward residual", "random")


def fit_forward(old, new, **fit_kwargs) -> Bridge:
  """``F``: a bridge from ``old`` rows to the matching ``new`` rows.

  Args:
    old: ``(n, d_old)`` old-version rows: ``F``'s input.
    new: ``(n, d_new)`` new-version rows of the same ids: its target.
    **fit_kwargs: as :func:`bcjax.align.fit` takes them (``family``,
      ``hparams``, ``center``, ``normalize``, ``seed``, ...).

  Returns:
    A :class:`bcjax.align.Bridge` whose ``d_new`` is the old width (its input)
    and ``d_old`` the new width (its output).
  """
  return fit(old=new, new=old, **fit_kwargs)


def residuals(predicted, actual) -> np.ndarray:
  """``(n,)`` float64 ``||predicted_i - actual_i||``."""
  predicted = check_rows("predicted", predicted)
  actual = check_rows("actual", actual, predicted.shape[1])
  if len(predicted) != len(actual):
    raise InputError(
      f"predicted has {len(predicted)} rows but actual has {len(actual)}"
    )
  diff = predicted.astype(np.float64) - actual
  return np.sqrt(np.sum(diff * diff, axis=1))


def residual_order(residual) -> np.ndarray:
  """Rows by ``residual``, largest first; ties by row (a stable sort)."""
  residual = np.asarray(residual, np.float64)
  if residual.ndim != 1 or not np.isfinite(residual).all():
    raise InputError(f"residual must be 1-d and finite, got shape {residual.shape}")
  return np.argsort(-residual, kind="stable")


def random_order(n: int, seed: int = 0) -> np.ndarray:
  """A seeded permutation of ``n`` rows, the control order."""
  return np.random.default_rng([seed, 5]).permutation(n)


def gallery_at(new, forwarded, order, fraction: float) -> np.ndarray:
  """The index once ``round(fraction N)`` rows of ``order`` are backfilled.

  Args:
    new: ``(N, d)`` every row's new vector.
    forwarded: ``(N, d)`` every row's ``F(z_old)``.
    order: ``(N,)`` a permutation of the rows: backfilled first to last.
    fraction: in ``[0, 1]``.

  Returns:
    ``(N, d)``: ``new`` at the first ``round(fraction N)`` rows of ``order``,
    ``forwarded`` elsewhere.
  """
  new, forwarded = np.asarray(new), np.asarray(forwarded)
  order = np.asarray(order)
  if new.shape != forwarded.shape:
    raise InputError(f"new {new.shape} and forwarded {forwarded.shape} must match")
  if not np.array_equal(np.sort(order), np.arange(len(new))):
    raise InputError(f"order must be a permutation of the {len(new)} rows")
  if not 0.0 <= fraction <= 1.0:
    raise InputError(f"fraction must be in [0, 1], got {fraction}")
  done = order[: round(fraction * len(new))]
  out = forwarded.copy()
  out[done] = new[done]
  return out


def curve(
  new,
  forwarded,
  queries,
  order,
  *,
  labels=None,
  fractions=FRACTIONS,
  k: int = 10,
  max_queries: int = MAX_QUERIES,
  seed: int = 0,
) -> np.ndarray:
  """The backfilling curve: the queries' measure at each ``fraction``.

  Args:
    new: ``(N, d)`` every row's new vector.
    forwarded: ``(N, d)`` every row's ``F(z_old)``.
    queries: ``(n_q,)`` the query rows; their new vectors are the queries.
    order: ``(N,)`` the backfilling order.
    labels: ``(N,)`` a label per row: class retrieval@k (own row left out);
      None: self-retrieval Recall@k.
    fractions: increasing, in ``[0, 1]``.
    k, max_queries, seed: as the measures of :mod:`bcjax.align.measures`.

  Returns:
    ``(len(fractions),)`` float64.
  """
  new, queries = np.asarray(new), np.asarray(queries)
  sample = {"max_queries": max_queries, "seed": seed}
  values = []
  for fraction in fractions:
    index = gallery_at(new, forwarded, order, fraction)
    if labels is None:
      values.append(self_recall(index, new[queries], queries, k, **sample))
    else:
      labels = np.asarray(labels)
      values.append(
        class_retrieval(
          index, new[queries], labels, labels[queries], k, rows=queries, **sample
        )
      )
  return np.asarray(values, np.float64)


def area(fractions, values) -> float:
  """The area under a curve over ``[0, 1]``, by trapezoids.

  Args:
    fractions: ``(m,)`` strictly increasing, from 0 to 1.
    values: ``(m,)`` the curve there.
  """
  x, y = np.asarray(fractions, np.float64), np.asarray(values, np.float64)
  if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
    raise InputError(
      f"fractions and values must be 1-d of one length >= 2, got {x.shape} "
      f"and {y.shape}"
    )
  if x[0] != 0.0 or x[-1] != 1.0 or not (np.diff(x) > 0).all():
    raise InputError(f"fractions must rise strictly from 0 to 1, got {x.tolist()}")
  return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def backfill_results(
  old,
  new,
  train,
  test,
  labels,
  bridge: Bridge,
  reindexed: float | None = None,
  *,
  fractions=FRACTIONS,
  k: int = 10,
  max_queries: int = MAX_QUERIES,
  seed: int = 0,
  consumers: bool = True,
  **fit_kwargs,
) -> dict:
  """The forward map fitted on ``train``, measured on ``test``, and the curves.

  Args:
    old: ``(N, d_old)`` every row's old vector.
    new: ``(N, d_new)`` every row's new vector.
    train: ``(n_train,)`` rows ``F`` is fitted on.
    test: ``(n_test,)`` the query rows.
    labels: ``(N,)`` a label per row, or None.
    bridge: the served bridge ``B``, for the bridge-residual order.
    reindexed: class retrieval re-indexed (new vs new), for retention.
    fractions, k, max_queries, seed: see :func:`curve`.
    consumers: with labels, also the consumers' curves
      (:func:`bcjax.align.consumers.backfill_curves`).
    **fit_kwargs: for :func:`fit_forward` (``family``, ``center``, ...).

  Returns:
    ``forward``: ``F``'s family, hparams and measures (MSE and mean cosine
    of ``F(z_old)`` against ``z_new``; self-retrieval and, with labels, class
    retrieval and retention of forward-mapped old test queries against the
    new index). ``backfill``: the measure, ``fractions``, each order's curve
    and area, and with labels and ``consumers`` under ``consumers``: consumer
    name -> ``curves`` (order -> accuracy per fraction) and ``area``.
  """
  old, new = np.asarray(old), np.asarray(new)
  train, test = np.asarray(train), np.asarray(test)
  forward = fit_forward(old[train], new[train], seed=seed, **fit_kwargs)
  forwarded = forward.apply(old)
  sample = {"max_queries": max_queries, "seed": seed}
  measures = {
    "mse": mse(forwarded[test], new[test]),
    "mean_cosine": mean_cosine(forwarded[test], new[test]),
    "self_recall": self_recall(new, forwarded[test], test, k, **sample),
  }
  if labels is not None:
    labels = np.asarray(labels)
    score = class_retrieval(
      new, forwarded[test], labels, labels[test], k, rows=test, **sample
    )
    measures["class_retrieval"] = score
    if reindexed is not None:
      measures["retention"] = retention(score, reindexed)
  orders = {
    "bridge residual": residual_order(residuals(bridge.apply(new), old)),
    "forward residual": residual_order(residuals(forwarded, new)),
    "random": random_order(len(new), seed),
  }
  curves = {
    name: curve(
      new, forwarded, test, order, labels=labels, fractions=fractions, k=k, **sample
    )
    for name, order in orders.items()
  }
  backfill = {
    "measure": "self_recall" if labels is None else "class_retrieval",
    "k": k,
    "fractions": [float(f) for f in fractions],
    "curves": {name: c.tolist() for name, c in curves.items()},
    "area": {name: area(fractions, c) for name, c in curves.items()},
  }
  if labels is not None and consumers:
    accuracy = backfill_curves(
      new, forwarded, labels, train, test, orders, fractions, seed=seed
    )
    backfill["consumers"] = {
      name: {
        "curves": per_order,
        "area": {order: area(fractions, c) for order, c in per_order.items()},
      }
      for name, per_order in accuracy.items()
    }
  return {
    "forward": {
      "family": forward.family,
      "hparams": dataclasses.asdict(forward.hparams),
      "num_params": forward.num_params,
      "measures": measures,
    },
    "backfill": backfill,
  }
