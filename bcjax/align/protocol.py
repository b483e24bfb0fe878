"""The protocol of ``experiments.align``: splits by id, one bridge, a chain.

* :func:`match` pairs two versions' rows by id; :func:`split_ids` and
  :func:`step_splits` hold test ids out, seeded, an id held out of every
  bridge of a chain or of none.
* :func:`fit_step` fits one bridge on its training rows and measures it on
  its test rows: :mod:`bcjax.align.measures`, blending
  (:mod:`bcjax.align.blend`), the forward map and backfilling
  (:mod:`bcjax.align.backfill`), the costs and, with labels,
  :func:`labelled_results`: the consumers (:mod:`bcjax.align.consumers`) and
  the bridge / re-index / no-upgrade answer (:mod:`bcjax.align.decision`).
* :func:`chain_results` serves the newest test rows at every older version
  through the chain.
"""

from __future__ import annotations

import time

import numpy as np
from absl import logging

from bcjax.align import blend, decision, report
from bcjax.align.backfill import backfill_results
from bcjax.align.bridge import Bridge
from bcjax.align.chain import Chain
from bcjax.align.consumers import consumer_results
from bcjax.align.fitting import fit
from bcjax.align.measures import evaluate
from bcjax.errors import InputError


def split_ids(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``(train, test)`` sorted row ids, seeded."""
  if not 0.0 < test_fraction < 1.0:
    raise InputError(f"--test_fraction must be in (0, 1), got {test_fraction}")
  held = min(max(1, round(test_fraction * n)), n - 1)
  order = np.random.default_rng([seed, 25]).permutation(n)
  return np.sort(order[held:]), np.sort(order[:held])


# The fewest rows a family's fit takes: auto splits a validation part of at
# least 2 rows off at least 2 fit rows; the mlp family splits its own
# validation rows; every other family solves from one row up.
FIT_ROWS = {"auto": 4, "mlp": 2}


def matched_rows_needed(family: str, test_fraction: float, k: int) -> tuple[int, str]:
  """The fewest matched rows a bridge can be fitted and measured on, and why.

  The rows are split into test rows (:func:`split_ids`: at least one) and fit
  rows (``FIT_ROWS`` of the family); the measures search an index of every
  row's old vector but the query's own, so it needs ``k + 1`` rows.

  Returns:
    ``(rows, reason)``, the reason naming the binding requirement.
  """
  if not 0.0 < test_fraction < 1.0:
    raise InputError(f"--test_fraction must be in (0, 1), got {test_fraction}")
  fit_rows = FIT_ROWS.get(family, 1)
  n = 2
  while n - min(max(1, round(test_fraction * n)), n - 1) < fit_rows:
    n += 1
  if k + 1 > n:
    return k + 1, f"--k={k} searches an index of every other row: {k + 1} rows"
  return n, (
    f"family {family} fits on at least {fit_rows} rows after "
    f"--test_fraction={test_fraction} holds out its test rows"
  )


def step_splits(
  ids: list[np.ndarray], test_fraction: float, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
  """``(train, test)`` rows of each bridge, an id held out in all or none.

  Args:
    ids: bridge ``k``'s matched ids (``ids[k - 1]``, in its rows' order).
    test_fraction: the share of each bridge's rows held out.
    seed: the splits' seed.

  Returns:
    Per bridge, sorted training and test rows. The newest bridge's split is
    :func:`split_ids` of its rows; an older bridge holds out the ids the
    newest holds out, and splits the ids the newest does not match on their
    own (:func:`split_ids`, same seed), so a chain's test queries were never
    fitted on by any bridge of the chain.
  """
  newest = ids[-1]
  newest_split = split_ids(len(newest), test_fraction, seed)
  test = newest_split[1]
  out = []
  for step in ids[:-1]:
    held = np.isin(step, newest[test])
    alone = np.flatnonzero(~np.isin(step, newest))
    if len(alone) >= 2:
      held[alone[split_ids(len(alone), test_fraction, seed)[1]]] = True
    out.append((np.flatnonzero(~held), np.flatnonzero(held)))
  return out + [newest_split]


def chain_results(
  chain: Chain,
  newest: tuple[np.ndarray, np.ndarray],
  indexes: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
  test_ids: np.ndarray,
  *,
  k: int,
  max_queries: int,
  seed: int,
) -> list[dict]:
  """The newest test rows served through the chain at each version ``j <= K - 2``.

  Args:
    chain: the bridges.
    newest: ``(ids, rows)`` of version ``K``.
    indexes: per bridge ``j + 1``: its matched ids, their version-``j``
      vectors (the index its own measures use) and labels (or None).
    test_ids: the newest bridge's test ids (held out of every bridge).
    k, max_queries, seed: as :func:`bcjax.align.measures.evaluate`.

  Returns:
    Per version ``j``: ``version``, ``bridges`` (how many the chain applies)
    and ``measures`` (:func:`bcjax.align.measures.evaluate` with no
    re-indexed side), or ``skipped`` when no test id reaches version ``j``.
  """
  newest_ids, newest_rows = newest
  where = {key: row for row, key in enumerate(newest_ids.tolist())}
  out = []
  for j in range(chain.latest_version - 1):
    ids, old, labels = indexes[j]
    rows = np.flatnonzero(np.isin(ids, test_ids) & np.isin(ids, newest_ids))
    entry = {"version": j, "bridges": chain.latest_version - j}
    if not len(rows):
      out.append(
        {
          **entry,
          "skipped": f"no test id of version {chain.latest_version} "
          f"is in version {j}'s index",
        }
      )
      continue
    served = chain.apply(newest_rows[[where[key] for key in ids[rows].tolist()]], j)
    entry["measures"] = evaluate(
      old, None, served, rows, labels=labels, k=k, max_queries=max_queries, seed=seed
    )
    out.append(entry)
  return out


def match(old_ids: np.ndarray, new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(old_rows, new_rows)`` of the ids both versions have, in the new version's order."""
  if len(old_ids) == len(new_ids) and np.array_equal(old_ids, new_ids):
    rows = np.arange(len(new_ids))
    return rows, rows
  where = {key: row for row, key in enumerate(old_ids.tolist())}
  pairs = [
    (where[key], row) for row, key in enumerate(new_ids.tolist()) if key in where
  ]
  if not pairs:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  old_rows, new_rows = np.asarray(pairs, np.int64).T
  return old_rows, new_rows


def fit_step(
  old: np.ndarray,
  new: np.ndarray,
  labels: np.ndarray | None,
  *,
  family: str,
  center: bool | None,
  normalize: bool | None,
  seed: int,
  test_fraction: float,
  k: int,
  max_queries: int,
  hparams=None,
  backfill: bool = True,
  consumers: bool = True,
  decision_splits: int = 5,
  thresholds: decision.Thresholds | None = None,
  split: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Bridge, dict]:
  """Splits matched rows, fits on the train ids, measures on the test ids.

  Args:
    old: ``(N, d_old)`` the older version's rows.
    new: ``(N, d_new)`` the newer version's rows of the same ids.
    labels: ``(N,)`` labels, or None.
    family, center, normalize, seed, test_fraction, k, max_queries,
      backfill, consumers, decision_splits, thresholds: see
      :func:`run_versions`.
    hparams: the family's hyper-parameters (None: its defaults; not for
      ``auto``), for the bridge and the forward map alike.
    split: ``(train, test)`` rows (None: :func:`split_ids` of ``seed``).

  Returns:
    The bridge, and its results (split sizes, bridge, selection, measures).
  """
  train, test = split or split_ids(len(old), test_fraction, seed)
  tick = time.perf_counter()
  bridge = fit(
    old=old[train],
    new=new[train],
    family=family,
    hparams=hparams,
    center=center,
    normalize=normalize,
    seed=seed,
  )
  fit_seconds = time.perf_counter() - tick
  logging.info("fitted a %s bridge in %.1fs", bridge.family, fit_seconds)
  measures = evaluate(
    old,
    new,
    bridge.apply(new[test]),
    test,
    labels=labels,
    k=k,
    max_queries=max_queries,
    seed=seed,
  )
  blended = blend.blend_results(
    old,
    new,
    train,
    test,
    labels,
    bridge,
    measures.get("class_retrieval_reindexed"),
    k=k,
    max_queries=max_queries,
    seed=seed,
  )
  forward = {}
  if backfill:
    forward = backfill_results(
      old,
      new,
      train,
      test,
      labels,
      bridge,
      measures.get("class_retrieval_reindexed"),
      k=k,
      max_queries=max_queries,
      seed=seed,
      family=family,
      hparams=hparams,
      center=center,
      normalize=normalize,
      consumers=consumers,
    )
  judged = {"decision": {"skipped": decision.NO_LABELS}}
  if labels is not None:
    judged = labelled_results(
      old,
      new,
      labels,
      bridge,
      train,
      test,
      blended.get("alpha"),
      seed=seed,
      test_fraction=test_fraction,
      k=k,
      max_queries=max_queries,
      consumers=consumers,
      decision_splits=decision_splits,
      thresholds=thresholds,
    )
  selection = bridge.selection.summary() if bridge.selection else None
  fit_rows = len(train) if selection is None else selection["fit_rows"]
  return bridge, {
    "rows": {
      "fit": fit_rows,
      "validation": len(train) - fit_rows,
      "test": len(test),
    },
    "bridge": {
      **report.bridge_summary(bridge, fit_seconds),
      "serve_seconds_per_million": serving_seconds_per_million(bridge, new),
    },
    "selection": selection,
    "measures": measures,
    "blend": blended,
    **judged,
    **forward,
  }


def labelled_results(
  old,
  new,
  labels,
  bridge: Bridge,
  train,
  test,
  alpha: float | None,
  *,
  seed: int,
  test_fraction: float,
  k: int,
  max_queries: int,
  consumers: bool,
  decision_splits: int,
  thresholds: decision.Thresholds | None,
) -> dict:
  """The consumers across the bridge and the bridge / re-index answer.

  The answer's splits are ``split_ids`` of seeds ``seed .. seed +
  decision_splits - 1`` (the first is the served bridge's own split), each
  refitting the served bridge's family on its training rows
  (:func:`bcjax.align.decision.replicate`).
  """
  if decision_splits < 1:
    raise InputError(f"--decision_splits must be 1 or more, got {decision_splits}")
  seeds = range(seed, seed + decision_splits)
  splits = [split_ids(len(old), test_fraction, s) for s in seeds]
  replicates = decision.replicate(
    old, new, labels, bridge, splits, k=k, max_queries=max_queries, seeds=seeds
  )
  out = {
    "decision": {**decision.decide(replicates, thresholds), "per_split": replicates}
  }
  if consumers:
    bridged = bridge.apply(new[test])
    out["consumers"] = consumer_results(
      old,
      new,
      bridged,
      labels,
      train,
      test,
      blended=None if alpha is None else blend.slerp(old[test], bridged, alpha),
      seed=seed,
    )
  return out


def serving_seconds_per_million(bridge: Bridge, new, rows: int = 1 << 17) -> float:
  """Seconds :meth:`Bridge.apply` takes per million rows, best of three.

  ``rows`` rows (``new``'s, repeated) are applied once to compile and warm
  up, then timed three times; the best time over ``rows``, scaled to 10^6.
  """
  block = np.asarray(new)[np.arange(rows) % len(new)]
  bridge.apply(block)
  best = float("inf")
  for _ in range(3):
    tick = time.perf_counter()
    bridge.apply(block)
    best = min(best, time.perf_counter() - tick)
  return best / rows * 1e6
