"""Bridge, re-index, or no upgrade needed: an answer from stated thresholds.

Two ratios of class retrieval decide (labels required; :data:`NO_LABELS`):

* the **upgrade gain**, re-indexed over old: new queries against a new
  index, over old queries against the old index. Is the new model better on
  these rows at all?
* the **retention**, bridged over re-indexed: bridged queries against the
  old index, over the re-index. How much of the new model does the bridge
  carry into the old space?

One split's ratios are noisy, so each is measured over several test splits
(:func:`replicate`: the served bridge's family, hyper-parameters and
preprocessing refitted on each split's training rows) and judged by its 95%
Student-t interval over them (:func:`decide`):

1. the gain's interval lies below ``min_gain``: **no upgrade needed**;
2. else, if it straddles ``min_gain``: **unresolved** (more rows or splits
   would settle whether the upgrade is worth anything);
3. else the retention's interval at or above ``min_retention``: **bridge**;
   below it: **re-index**; straddling it: **unresolved**.

The defaults (:class:`Thresholds`) are rebasis's: an upgrade worth migrating
for is 2% better (``UPGRADE_GAIN_FLOOR = 1.02``), and a bridge that keeps 95%
of it is sufficient (its top decision band).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from bcjax.align.bridge import Bridge
from bcjax.align.fitting import fit
from bcjax.align.measures import MAX_QUERIES, class_retrieval, retention
from bcjax.errors import InputError
from bcjax.evaluation.intervals import Interval, mean_interval

NO_LABELS = (
  "no upgrade gain, retention or bridge / re-index / no-upgrade answer: "
  "they compare class retrieval, which needs labels (--labels)"
)


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """The thresholds of :func:`decide`.

  Attributes:
    min_gain: the least re-indexed / old class retrieval worth upgrading for.
    min_retention: the least bridged / re-indexed class retrieval for which
      a bridge serves the upgrade well enough.
  """

  min_gain: float = 1.02
  min_retention: float = 0.95

  def __post_init__(self):
    if not (self.min_gain > 0 and self.min_retention > 0):
      raise InputError(
        f"thresholds must be positive, got min_gain={self.min_gain} and "
        f"min_retention={self.min_retention}"
      )


def replicate(
  old,
  new,
  labels,
  bridge: Bridge,
  splits: Sequence[tuple[np.ndarray, np.ndarray]],
  *,
  k: int = 10,
  max_queries: int = MAX_QUERIES,
  seeds: Sequence[int] | None = None,
) -> list[dict]:
  """Class retrieval and its ratios on each split's test rows.

  Args:
    old: ``(N, d_old)`` every row's old vector (the old index).
    new: ``(N, d_new)`` every row's new vector (the re-indexed index).
    labels: ``(N,)`` a label per row.
    bridge: the served bridge; its family, hyper-parameters, centring and
      normalisation are refitted on each split's training rows.
    splits: ``(train_rows, test_rows)`` per split.
    k: neighbours looked at.
    max_queries: test queries sampled at most.
    seeds: per split, the seed of its refit and query sample (None: the
      split's position).

  Returns:
    Per split: ``old``, ``reindexed`` and ``bridged`` class retrieval@k
    (a query's own row left out), ``upgrade_gain`` (reindexed / old) and
    ``retention`` (bridged / reindexed).
  """
  old, new, labels = np.asarray(old), np.asarray(new), np.asarray(labels)
  seeds = range(len(splits)) if seeds is None else seeds
  out = []
  for seed, (train, test) in zip(seeds, splits, strict=True):
    refit = fit(
      old=old[train],
      new=new[train],
      family=bridge.family,
      hparams=bridge.hparams,
      center=bridge.center,
      normalize=bridge.normalize,
      seed=seed,
    )

    def classes(index, queries, test=test, seed=seed):
      return class_retrieval(
        index,
        queries,
        labels,
        labels[test],
        k,
        rows=test,
        max_queries=max_queries,
        seed=seed,
      )

    row = {
      "old": classes(old, old[test]),
      "reindexed": classes(new, new[test]),
      "bridged": classes(old, refit.apply(new[test])),
    }
    row["upgrade_gain"] = retention(row["reindexed"], row["old"])
    row["retention"] = retention(row["bridged"], row["reindexed"])
    out.append(row)
  return out


def decide(replicates: Sequence[dict], thresholds: Thresholds | None = None) -> dict:
  """The answer of the rule in the module docstring, with its evidence.

  Args:
    replicates: what :func:`replicate` returns (one or more splits; with one
      there is no interval and the means decide).
    thresholds: the thresholds (None: :class:`Thresholds`' defaults).

  Returns:
    ``answer`` (``"bridge"``, ``"re-index"``, ``"no upgrade needed"`` or
    ``"unresolved"``), ``reason`` (one sentence), the thresholds, and
    ``upgrade_gain`` and ``retention`` as ``{mean, low, high, n}``.
  """
  if not replicates:
    raise InputError("decide needs one or more splits' measures, got none")
  for r in replicates:
    if not (np.isfinite(r["upgrade_gain"]) and np.isfinite(r["retention"])):
      raise InputError(
        "a split's upgrade gain or retention is not finite (a class retrieval of "
        f"0 below a ratio): {r}; the labels must be shared by the rows' neighbours"
      )
  gain = mean_interval([r["upgrade_gain"] for r in replicates])
  kept = mean_interval([r["retention"] for r in replicates])
  t = thresholds or Thresholds()
  g_low, g_high = _ends(gain)
  r_low, r_high = _ends(kept)
  if g_high < t.min_gain:
    answer, reason = (
      "no upgrade needed",
      f"the upgrade gain's interval lies below {t.min_gain:g}: the new model "
      "does not retrieve enough better to migrate for",
    )
  elif g_low < t.min_gain:
    answer, reason = (
      "unresolved",
      f"the upgrade gain's interval contains {t.min_gain:g}: whether the new "
      "model is worth migrating for is not settled by these splits",
    )
  elif r_low >= t.min_retention:
    answer, reason = (
      "bridge",
      f"the upgrade is real and the retention's interval lies at or above "
      f"{t.min_retention:g}: the bridge carries it into the old space",
    )
  elif r_high < t.min_retention:
    answer, reason = (
      "re-index",
      f"the upgrade is real but the retention's interval lies below "
      f"{t.min_retention:g}: the bridge loses too much of it",
    )
  else:
    answer, reason = (
      "unresolved",
      f"the upgrade is real but the retention's interval contains "
      f"{t.min_retention:g}: bridge or re-index is not settled by these splits",
    )
  return {
    "answer": answer,
    "reason": reason,
    "thresholds": dataclasses.asdict(t),
    "upgrade_gain": _summary(gain),
    "retention": _summary(kept),
    "splits": len(replicates),
  }


def _ends(interval: Interval) -> tuple[float, float]:
  if interval.low is None:
    return interval.mean, interval.mean
  return interval.low, interval.high


def _summary(interval: Interval) -> dict:
  return {
    "mean": interval.mean,
    "low": interval.low,
    "high": interval.high,
    "n": interval.n,
  }
