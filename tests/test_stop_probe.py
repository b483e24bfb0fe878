"""The stop-rule probe: patience replayed on whole curves, as the fits stop."""

import json
import os

import pytest

from bcjax.errors import InputError
from experiments import stop_probe
from experiments.configs import converged


def _curve(values, every=5):
  return [(every * (i + 1), v) for i, v in enumerate(values)]


def test_replay_stops_where_the_fit_would_and_keeps_its_epoch():
  # Rises to 0.30 at epoch 20, a dip of noise, then 0.32 at epoch 45.
  curve = _curve([0.1, 0.2, 0.25, 0.30, 0.29, 0.28, 0.29, 0.31, 0.32, 0.31])
  short = stop_probe.replay(curve, patience=15, keep_after=0)
  # Epochs 25, 30, 35 do not beat 20: stale at 35 (15 epochs), stopped there.
  assert (short["stop"], short["kept"], short["capped"]) == (35, 20, False)
  assert short["kept_score"] == 0.30 and short["best_score"] == 0.32
  long = stop_probe.replay(curve, patience=30, keep_after=0)
  assert (long["stop"], long["kept"], long["capped"]) == (50, 45, True)
  # keep_after: nothing before it is kept, so nothing before it is stale.
  late = stop_probe.replay(curve, patience=15, keep_after=25)
  assert late["kept"] == 45


def test_the_rising_statistic_reads_the_last_checks_up_to_the_stop():
  steady = _curve([0.1 + 0.01 * i for i in range(10)])
  assert stop_probe.replay(steady, patience=15, keep_after=0)["rising"]
  flat = _curve([0.3, 0.31, 0.29, 0.3, 0.31, 0.29, 0.3, 0.31])
  assert not stop_probe.replay(flat, patience=100, keep_after=0)["rising"]


def test_probe_summarises_each_rule_and_refuses_a_run_with_patience():
  history = [{"epoch": e, "recall@50": v} for e, v in _curve([0.1, 0.3, 0.2, 0.2, 0.4])]
  results = {
    "config": {"patience": 0, "dataset": "synthetic", "seed": 100, "epochs": 25},
    "strategies": {
      "nobc": [{"version": 0, "history": history}, {"version": 1, "history": history}],
      "fix-m0": [{"version": 1, "history": []}],
    },
  }
  record = stop_probe.probe(results, [5, 100])
  assert set(record["rules"]["5"]) == {"nobc"}  # fits after version 0 that trained
  short, whole = record["rules"]["5"]["nobc"], record["rules"]["100"]["nobc"]
  assert (short["median_stop"], short["capped"], short["epochs"]) == (15, 0, 15)
  assert short["regret_mean"] == pytest.approx(10.0)  # 0.4 at the cap, kept 0.3
  assert (whole["capped"], whole["regret_max"]) == (1, 0.0)
  assert "| 5 | nobc | 1 | 0 | 0 | 15 | 15 | 10.00 / 10.00 |" in stop_probe.to_markdown(
    record
  )
  results["config"]["patience"] = 15
  with pytest.raises(InputError, match="expected a run with --config.patience=0"):
    stop_probe.probe(results, [5])


def test_a_lower_cap_cuts_the_curves_and_costs_regret_against_the_whole():
  history = [
    {"epoch": e, "recall@50": v} for e, v in _curve([0.1, 0.2, 0.3, 0.31, 0.35, 0.4])
  ]
  results = {
    "config": {"patience": 0, "dataset": "synthetic", "seed": 100, "epochs": 30},
    "strategies": {"nobc": [{"version": 1, "history": history}]},
  }
  record = stop_probe.probe(results, [100], caps=[20])
  whole, capped = record["rules"]["100"]["nobc"], record["rules"]["100@20"]["nobc"]
  assert (whole["median_stop"], whole["regret_max"]) == (30, 0.0)
  # Capped at 20 it keeps 0.31 at epoch 20, 9 points below the curve's 0.40.
  assert (capped["median_stop"], capped["capped"]) == (20, 1)
  assert capped["regret_mean"] == pytest.approx(9.0)
  with pytest.raises(InputError, match="the curves end at epoch 30; expected caps"):
    stop_probe.probe(results, [100], caps=[30])


# Points of selection Recall@50 (set after reading the probe: patiences 15
# and 30 left fits 7 to 10 points below their curve's best).
MAX_REGRET = 4.0
PROBE_DIR = os.path.join(os.path.dirname(__file__), "..", "experiments", "results")


def test_the_committed_probe_follows_from_its_curves_and_backs_the_converged_rule():
  folder = os.path.join(PROBE_DIR, "stop_probe")
  with open(os.path.join(folder, "ml100k_300_probe.json")) as f:
    record = json.load(f)
  with open(os.path.join(folder, "ml100k_300", "results.json")) as f:
    run = json.load(f)
  patiences = sorted({int(key.split("@")[0]) for key in record["rules"]})
  caps = sorted({int(key.split("@")[1]) for key in record["rules"] if "@" in key})
  assert stop_probe.probe(run, patiences, caps)["rules"] == record["rules"]
  # The converged config's rule is the probe's choice: the smallest patience
  # (at the cap the curves ran to) that leaves no probed fit more than
  # MAX_REGRET points below its curve's best, with at most 10% of the fits
  # still rising at their stop and at most 10% capped, on every strategy.
  config = converged.get_config()
  assert config.epochs == run["config"]["epochs"]

  def meets(patience):
    rows = record["rules"][str(patience)].values()
    return all(
      r["regret_max"] < MAX_REGRET
      and r["rising"] <= 0.1 * r["fits"]
      and r["capped"] <= 0.1 * r["fits"]
      for r in rows
    )

  assert min(p for p in patiences if meets(p)) == config.patience
