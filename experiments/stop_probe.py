r"""Which stop rule noise does not trip: patience replayed on whole curves.

A fit stopped by patience never shows what came after its stop, so a stop
rule is judged on fits that ran to their cap: a run made with
``--config.patience=0`` (on tuning seeds, which no report reads) records
every fit's whole selection curve, and this command replays each candidate
patience on those curves with the fits' own rule
(:class:`bcjax.fitting.selection.BestEpoch`: the same ``keep_after`` and
ties). Per rule and strategy it reports, over the embedding fits after
version 0:

* the fits still rising at the stop: the least-squares slope of the
  selection curve over the last :data:`experiments.convergence.SLOPE_CHECKS`
  checks up to the stop has a 95% interval above 0 (the results page's
  statistic, which no rule here defines);
* the fits that reach the cap;
* the median stop epoch, and the epochs trained over all fits (the cost);
* the regret: the best selection Recall@50 of the whole curve minus the
  kept epoch's, in points (mean and largest).

With ``--caps``, each rule is also replayed under each lower cap (the curves
cut there), its regret still measured against the whole curve: what a
lower cap costs.

Usage::

  python -m experiments.run_intended --workdir=/tmp/bcjax_stop_probe \
      --config=converged --config.dataset=ml-100k \
      --config.data_dir=../shared/data/ml-100k --config.seed=100 \
      --config.num_seeds=3 --config.seed_batch=3 --config.patience=0 \
      --config.strategy=nobc,joint-linear-mloss
  python -m experiments.stop_probe --run=/tmp/bcjax_stop_probe \
      --patience=15,30,45,60 --caps=200 \
      --record=experiments/results/stop_probe.json

Bad input is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import json
import os
import statistics
import sys

from absl import app, flags

from bcjax.errors import InputError, exit_on_user_error
from bcjax.fitting.selection import BestEpoch
from bcjax.storage import atomic_files
from experiments.convergence import SLOPE_CHECKS, slope_interval

flags.DEFINE_string("run", None, "A run made with --config.patience=0.")
flags.DEFINE_list("patience", ["15", "30", "45", "60"], "Patiences to replay (epochs).")
flags.DEFINE_list(
  "caps", [], "Lower caps to replay each patience under as well (epochs)."
)
flags.DEFINE_string("record", None, "Where to write the JSON record (default: none).")
FLAGS = flags.FLAGS
# The curve a rule reads: the selection half's Recall@50 at each check.
SCORE = "recall@50"


def whole_curves(results: dict) -> dict[str, list[list[tuple[int, float]]]]:
  """Per strategy, every fit's ``(epoch, selection Recall@50)`` checks.

  Only fits after version 0 of methods that train (a version with no check
  is M_0's or a copy), over every seed.

  Raises:
    InputError: a run made with patience, whose curves end at their stop.
  """
  if (results.get("config") or {}).get("patience", 0):
    raise InputError(
      f"the run was made with config.patience={results['config']['patience']}: "
      "its curves end at their stops; expected a run with --config.patience=0"
    )
  out: dict[str, list] = {}
  for seed in results.get("per_seed") or [results]:
    for strategy, versions in seed["strategies"].items():
      for v in versions:
        if v["version"] > 0 and v.get("history"):
          curve = [(int(h["epoch"]), float(h[SCORE])) for h in v["history"]]
          out.setdefault(strategy, []).append(curve)
  return out


def replay(curve: list[tuple[int, float]], patience: int, keep_after: int) -> dict:
  """One fit under ``patience``: where it stops and what it keeps.

  Returns:
    ``stop`` (the epoch it stops after), ``kept`` and ``kept_score``,
    ``best_score`` (of the whole curve, cap included), ``capped`` (it ran
    to the last check) and ``rising`` (the slope statistic at the stop).
  """
  cap = curve[-1][0]
  rule = BestEpoch(keep_after=keep_after, last_epoch=cap)
  seen = []
  for epoch, score in curve:
    seen.append((epoch, score))
    rule.offer(epoch, score)
    if rule.stale(epoch, patience):
      break
  interval = slope_interval(seen[-SLOPE_CHECKS:])
  best = max(s for e, s in curve if e > keep_after or e == cap)
  return {
    "stop": seen[-1][0],
    "kept": rule.epoch,
    "kept_score": rule.score,
    "best_score": best,
    "capped": seen[-1][0] == cap,
    "rising": interval is not None and interval[1] > 0,
  }


def summary(
  curves: list[list[tuple[int, float]]],
  patience: int,
  keep_after: int,
  cap: int | None = None,
) -> dict:
  """The rule over a strategy's fits (see the module doc), under ``cap``
  (None: the curves' own end); the regret is against the whole curve."""
  fits = [replay(cut(c, cap), patience, keep_after) for c in curves]
  whole = [replay(c, 0, keep_after)["best_score"] for c in curves]
  regret = [100 * (b - f["kept_score"]) for f, b in zip(fits, whole, strict=True)]
  return {
    "fits": len(fits),
    "rising": sum(f["rising"] for f in fits),
    "capped": sum(f["capped"] for f in fits),
    "median_stop": statistics.median(f["stop"] for f in fits),
    "epochs": sum(f["stop"] for f in fits),
    "regret_mean": statistics.fmean(regret),
    "regret_max": max(regret),
  }


def cut(curve: list[tuple[int, float]], cap: int | None) -> list[tuple[int, float]]:
  """The curve as a fit capped at ``cap`` epochs would have seen it."""
  return curve if cap is None else [(e, s) for e, s in curve if e <= cap]


def describe(results: dict, curves: dict) -> str:
  """Which fits a probe replays: the run they come from, in words."""
  config = results["config"]
  commit = (results.get("environment") or {}).get("git_commit", "?")[:7]
  fits = ", ".join(f"{s} ({len(c)} fits)" for s, c in curves.items())
  return (
    f"{fits} after version 0 of a run_intended at commit {commit} "
    f"({config.get('dataset')}, {len(results.get('per_seed') or [results])} "
    f"seeds of config.seed {config.get('seed')}, up to {config.get('epochs')} "
    "epochs, --config.patience=0)"
  )


def probe(results: dict, patiences: list[int], caps: list[int] = ()) -> dict:
  """Every rule on every strategy's fits of ``results``; with ``caps``,
  also under each of them (keys ``"<patience>@<cap>"``).

  Raises:
    InputError: no curve, or a cap not below every curve's end.
  """
  curves = whole_curves(results)
  if not curves:
    raise InputError("the run has no fit after version 0 with a curve")
  end = min(c[-1][0] for cs in curves.values() for c in cs)
  for cap in caps:
    if not 0 < cap < end:
      raise InputError(
        f"--caps={cap}: the curves end at epoch {end}; expected caps below it"
      )
  config = results["config"]
  keep_after = {
    s: (config.get("method") or {}).get("joint", {}).get("keep_after", 0)
    if s.startswith("joint-")
    else 0
    for s in curves
  }
  return {
    "run_config": {
      k: config.get(k) for k in ("dataset", "seed", "epochs", "eval_every")
    },
    "num_seeds": len(results.get("per_seed") or [results]),
    "rules": {
      str(p) if cap is None else f"{p}@{cap}": {
        s: summary(c, p, keep_after[s], cap) for s, c in curves.items()
      }
      for cap in (None, *caps)
      for p in patiences
    },
    "curves": describe(results, curves),
  }


def to_markdown(record: dict) -> str:
  """The probe as one table: a row per patience and strategy."""
  lines = [
    "| patience | strategy | fits | still rising | capped | median stop | "
    "epochs | regret mean / max (points) |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for p, per in record["rules"].items():
    for s, r in per.items():
      lines.append(
        f"| {p} | {s} | {r['fits']} | {r['rising']} | {r['capped']} | "
        f"{r['median_stop']:g} | {r['epochs']} | "
        f"{r['regret_mean']:.2f} / {r['regret_max']:.2f} |"
      )
  return "\n".join(lines)


def main(argv):
  del argv
  with exit_on_user_error():
    if not FLAGS.run:
      raise InputError("--run is required: a run made with --config.patience=0")
    path = os.path.join(FLAGS.run, "results.json")
    if not os.path.exists(path):
      raise InputError(
        f"--run={FLAGS.run} has no results.json; expected a run's folder"
      )
    try:
      patiences = [int(p) for p in FLAGS.patience]
      caps = [int(c) for c in FLAGS.caps]
    except ValueError:
      raise InputError(
        f"--patience={FLAGS.patience} --caps={FLAGS.caps}: expected integers"
      ) from None
    with open(path) as f:
      record = probe(json.load(f), patiences, caps)
    record["made_by"] = " ".join(["python -m experiments.stop_probe", *sys.argv[1:]])
    if FLAGS.record:
      atomic_files.write_json(FLAGS.record, record)
  print(to_markdown(record))


if __name__ == "__main__":
  app.run(main)
