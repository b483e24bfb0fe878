"""The compare main job end to end on the test config, and its reruns."""

import json
import os
import subprocess
import sys

import pytest

import bcjax.jobs.comparison as comparison
import bcjax.methods.base as methods_base
from bcjax.errors import InputError
from bcjax.jobs.metric_writer import read_scalars
from bcjax.methods.strategies import PAPER_STRATEGIES
from experiments.configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("compare"))
  return workdir, comparison.run(test_config.get_config(), workdir)


def test_compare_writes_every_output(compared):
  workdir, results = compared
  for name in (
    "results.json",
    "table.md",
    "table.csv",
    "recall50_vs_nobc.png",
    "unintended_vs_fix_m0.png",
    "alignment_error.png",
    "tradeoff.png",
  ):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  on_disk = json.loads(open(os.path.join(workdir, "results.json")).read())
  assert set(on_disk["strategies"]) == set(PAPER_STRATEGIES)
  assert [row["strategy"] for row in on_disk["table"]["rows"]] == list(PAPER_STRATEGIES)
  assert "binary-edge-rating" in on_disk["unintended"]
  edge = on_disk["unintended"]["binary-edge-rating"]["per_strategy"]
  assert set(edge) == set(PAPER_STRATEGIES)
  # fix-m0 and nobc are the references of the two columns.
  rows = {row["strategy"]: row for row in on_disk["table"]["rows"]}
  assert rows["nobc"]["intended"] == 0.0 and rows["fix-m0"]["unintended"] == 0.0
  table_md = open(os.path.join(workdir, "table.md")).read()
  assert "| bc-aligner" not in table_md and "| joint-linear-mloss |" in table_md
  # The per-version Recall@50 table, the most-popular baseline first.
  assert "## Recall@50 per version" in table_md
  assert "(`config.report_split=held_out`" in table_md.splitlines()[0]
  nobc_v1 = on_disk["strategies"]["nobc"][1]["recall"]["50"]
  assert "| nobc | " in table_md and f"{nobc_v1:.4f} |" in table_md
  assert "| most popular | " in table_md


def test_held_out_halves_are_recorded_disjoint_and_one_side_per_user(compared):
  """The protocol an outsider checks: no id both chooses and reports, and a
  user sits on one side in the intended recall and in every user task."""
  _, results = compared
  halves = results["halves"]
  assert halves["report_split"] == "held_out" and halves["seed"] == 0
  side = {}
  for version in halves["intended"].values():
    chose, reported = set(version["selection_users"]), set(version["report_users"])
    assert chose and reported and not chose & reported
    side.update({u: "selection" for u in chose} | {u: "report" for u in reported})
  for task, record in halves["tasks"].items():
    for version in record["versions"].values():
      chose, reported = set(version["selection_ids"]), set(version["report_ids"])
      assert not chose & reported, task
      if record["by"] == "user":
        assert all(side.get(u, "selection") == "selection" for u in chose), task
        assert all(side.get(u, "report") == "report" for u in reported), task
  # Both halves scored; the selection half's table is there, never reported.
  edge = results["unintended"]["binary-edge-rating"]["per_strategy"]["nobc"]
  assert set(edge) == {"per_version", "selection_per_version"}
  for versions in results["strategies"].values():
    for v in versions:
      assert set(v["selection_recall"]) == set(v["recall"])
  nobc_v1 = results["strategies"]["nobc"][1]
  assert nobc_v1["selection_recall"] != nobc_v1["recall"]
  selection_rows = {r["strategy"]: r for r in results["selection_table"]["rows"]}
  assert selection_rows.keys() == {r["strategy"] for r in results["table"]["rows"]}
  assert selection_rows["nobc"]["intended"] == 0.0
  assert selection_rows["nobc"]["mean_recall50"] != pytest.approx(
    {r["strategy"]: r for r in results["table"]["rows"]}["nobc"]["mean_recall50"]
  )


def test_curves_in_tensorboard_and_metrics_jsonl_match_results(compared):
  workdir, results = compared
  scalars = read_scalars(os.path.join(workdir, "tensorboard"))
  lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
  for name, versions in results["strategies"].items():
    for version in versions:
      tag = f"intended/{name}/v{version['version']}"
      for entry in version["history"]:
        # Versions trained by another strategy (M_0, nobc's for post-hoc)
        # are logged under that strategy's tag.
        if f"{tag}/loss" not in scalars:
          continue
        logged = dict(scalars[f"{tag}/recall_at_50"])
        assert logged[entry["epoch"]] == pytest.approx(entry["recall@50"], rel=1e-6)
        assert dict(scalars[f"{tag}/loss"])[entry["epoch"]] == pytest.approx(
          entry["loss"], rel=1e-6
        )
  assert "intended/nobc/v1/loss" in scalars and "intended/nobc/v0/loss" in scalars
  for row in results["table"]["rows"]:
    if row["total"] is not None:
      assert scalars[f"table/{row['strategy']}/total"] == [
        (0, pytest.approx(row["total"], rel=1e-6))
      ]
  # The consumers' curves: a selection metric per (dropout, seed) per epoch.
  edge = [x for x in lines if x["tag"].startswith("consumers/binary-edge-rating/")]
  assert [x["step"] for x in edge] == [1, 2]
  assert "train_loss" in edge[0] and "selection/d0_s0" in edge[0]
  intended = [x for x in lines if x["tag"] == "intended/nobc/v1"]
  assert [x["epoch"] if "epoch" in x else x["step"] for x in intended] == [2, 4]
  assert intended[-1]["strategy"] == "nobc" and intended[-1]["version"] == 1


def test_results_record_schema_and_environment(compared):
  _, results = compared
  assert results["schema_version"] == 4
  env = results["environment"]
  assert env["bcjax"] and env["packages"]["jax"] and env["device_count"] >= 1
  assert env["started"] <= env["finished"]


def test_activity_tasks_without_later_versions_are_reported_not_crashing(compared):
  _, results = compared
  # The test config has two versions, so the activity tasks (selected on
  # version 1) have nothing to evaluate: a note, not a NaN.
  assert any("user-activity" in note for note in results["table"]["notes"])
  assert results["table"]["per_task"]["fix-m0"]["user-activity"] is None


def test_rerun_retrains_nothing(compared, monkeypatch):
  workdir, results = compared

  def fail(*args, **kwargs):
    raise AssertionError("finished work was redone")

  # Every method fits through Context.fit and Context.fit_posthoc.
  monkeypatch.setattr(methods_base, "fit_version", fail)
  monkeypatch.setattr(methods_base, "fit_posthoc", fail)
  monkeypatch.setattr(comparison, "fit_consumer", fail)
  again = comparison.run(test_config.get_config(), workdir)
  assert again["table"] == results["table"]
  assert again["unintended"] == results["unintended"]


def test_unknown_task_fails_before_training(tmp_path):
  config = test_config.get_config()
  config.tasks = "binary-edge-rating,fraud"
  with pytest.raises(InputError, match="unknown task 'fraud'; valid task names"):
    comparison.run(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


def test_binary_reports_bad_input_in_one_line(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.compare",
      f"--workdir={tmp_path}",
      "--config=experiments/configs/test.py",
      "--config.strategy=paper,fast",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 2
  assert "error: unknown strategy 'fast'" in proc.stderr
  assert "Traceback" not in proc.stderr
