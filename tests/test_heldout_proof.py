"""The committed held-out proof run (issue 40 item 8), recomputed from its files.

``experiments/results/ml-100k_heldout`` merges a tuning part (BC-Aligner's
weight chosen on config.seed 100's seeds) and a report part (3 seeds). An
outsider can check every choice from the records: the halves are disjoint,
the weight is the best mean selection total, each kept epoch is the one the
fits' rule keeps on the selection curve, and the tables follow from the
per-seed records.
"""

import json
import math
import os

import pytest

from bcjax.evaluation.table import comparison_table
from bcjax.fitting.selection import BestEpoch
from tests.conftest import assert_json_close

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results")


def _read(*path):
  with open(os.path.join(RESULTS, *path, "results.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def proof():
  return _read("ml-100k_heldout"), _read("parts", "ml-100k_heldout", "tuning")


def test_selection_and_report_ids_are_disjoint_in_every_seed(proof):
  merged, tuning = proof
  for run in (merged, tuning):
    assert run["config"]["report_split"] == "held_out"
    for seed in run["per_seed"]:
      halves = seed["halves"]
      for k, users in halves["intended"].items():
        chosen, reported = set(users["selection_users"]), set(users["report_users"])
        assert chosen and reported and not chosen & reported, (
          k,
          seed["embedding_seed"],
        )
      for task, record in halves["tasks"].items():
        for k, ids in record["versions"].items():
          assert not set(ids["selection_ids"]) & set(ids["report_ids"]), (task, k)


def test_the_weight_is_the_best_mean_selection_total_of_unreported_seeds(proof):
  merged, tuning = proof
  assert tuning["config"]["seed"] != merged["config"]["seed"]
  record = merged["weight_selection"]["joint-linear-mloss"]
  assert record == tuning["weight_selection"]["joint-linear-mloss"]
  means = {}
  for weight, scores in record["weight_scores"].items():
    name = f"joint-linear-mloss@align_weight={weight}"
    totals = [
      next(r["total"] for r in s["selection_table"]["rows"] if r["strategy"] == name)
      for s in tuning["per_seed"]
    ]
    assert totals == scores
    means[float(weight)] = math.fsum(totals) / len(totals)
  assert record["chosen_weight"] == max(means, key=means.get)
  # The report ran it at the chosen weight (and at the config's own).
  assert (
    f"joint-linear-mloss@align_weight={record['chosen_weight']:g}"
    in merged["strategies"]
  )


def test_every_kept_epoch_is_the_rules_on_the_selection_curve(proof):
  merged, _ = proof
  config = merged["config"]
  patience = config["patience"]
  checked = 0
  for seed in merged["per_seed"]:
    for strategy, versions in seed["strategies"].items():
      base = strategy.partition("@")[0]
      keep_after = (
        config["method"]["joint"]["keep_after"] if base.startswith("joint") else 0
      )
      for v in versions:
        if not v["history"]:
          continue
        rule = BestEpoch(keep_after=keep_after, last_epoch=v["max_epochs"])
        for check in v["history"]:
          rule.offer(check["epoch"], check["recall@50"])
        assert v["best_epoch"] == rule.epoch, (strategy, v["version"])
        assert v["selection_recall"]["50"] == pytest.approx(rule.score, abs=1e-12)
        last = v["history"][-1]["epoch"]
        assert rule.stale(last, patience) or last == v["max_epochs"]
        checked += 1
  assert checked > 0


def test_every_seeds_tables_follow_from_its_records(proof):
  merged, _ = proof
  for seed in merged["per_seed"]:
    assert_json_close(comparison_table(seed).to_json(), seed["table"])
    assert_json_close(
      comparison_table(seed, half="selection").to_json(), seed["selection_table"]
    )
  process = merged["environment"]["process"]["variables"]
  assert process["NPROC"] and process["OPENBLAS_NUM_THREADS"]
