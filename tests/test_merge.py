"""A run merged from parts equals the run of every strategy at once.

One module fixture runs the tiny test config with two seeds (in lockstep) on
four strategies, then two parts of it on copies of its workdir (versions and
consumers reused, the parts' records and tables made anew): nobc's family,
and fix-m0 with BC-Aligner. That separately trained parts agree bit for bit
rests on bit-identical reruns (tests/test_seed_batch_runner.py).
"""

import json
import os
import shutil
import subprocess

import pytest

import bcjax.jobs.comparison as comparison
from bcjax.errors import InputError
from experiments import merge, provenance
from experiments.configs import test as test_config
from tests.conftest import assert_json_close, run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL = "nobc,fix-m0,posthoc-linear-sloss,joint-linear-mloss"
PARTS = ("nobc,fix-m0,posthoc-linear-sloss", "fix-m0,joint-linear-mloss")


def config(strategy):
  config = test_config.get_config()
  config.strategy = strategy
  config.tasks = "binary-edge-rating,user-activity"
  config.num_seeds = 2
  config.seed_batch = 2
  return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The whole run's folder and results, and the two parts' folders."""
  root = tmp_path_factory.mktemp("merge")
  whole = str(root / "whole")
  results = comparison.run(config(ALL), whole)
  # Made from this checkout's commit, whatever its uncommitted changes (the
  # merge refuses those).
  head = _git(ROOT, "rev-parse", "HEAD")
  parts = []
  for i, strategy in enumerate(PARTS):
    part = str(root / f"part{i}")
    shutil.copytree(whole, part)
    made = comparison.run(config(strategy), part)
    made["environment"]["git_commit"] = head
    with open(os.path.join(part, "results.json"), "w") as f:
      json.dump(made, f)
    parts.append(part)
  return whole, results, parts


def _outcome(results):
  return {k: v for k, v in results.items() if k not in ("environment", "plots")}


def test_merged_parts_are_the_whole_run(runs, tmp_path):
  whole, results, parts = runs
  merged, seeds = merge.merge(parts)
  assert list(merged["strategies"]) == ALL.split(",")
  assert merged["config"]["strategy"] == ALL
  # Every seed's table, recomputed from the parts' records, and the table
  # over seeds are the whole run's, number for number.
  assert_json_close(_outcome(merged), _outcome(results))
  merge.write(str(tmp_path), merged, seeds)
  with open(tmp_path / "table.md") as f, open(os.path.join(whole, "table.md")) as g:
    assert f.read() == g.read()
  with open(tmp_path / "table.csv") as f, open(os.path.join(whole, "table.csv")) as g:
    assert f.read() == g.read()
  assert "tradeoff.png" in os.listdir(tmp_path)
  env = merged["environment"]["parts"]
  assert [p["strategies"] for p in env] == [s.split(",") for s in PARTS]


def test_a_part_can_give_some_of_its_strategies(runs):
  _, results, parts = runs
  merged, _ = merge.merge([f"{parts[0]}:nobc,fix-m0", parts[1]])
  assert list(merged["strategies"]) == ["nobc", "fix-m0", "joint-linear-mloss"]
  for seed in merged["per_seed"]:
    for task in seed["unintended"].values():
      assert set(task["per_strategy"]) == {"nobc", "fix-m0", "joint-linear-mloss"}


def test_the_merged_run_keeps_the_order_asked(runs):
  _, _, parts = runs
  order = ["fix-m0", "joint-linear-mloss", "nobc"]
  merged, seeds = merge.merge(parts, order=order)
  assert list(merged["strategies"]) == order
  assert [row["strategy"] for row in merged["table"]["rows"]] == order
  assert list(merged["per_seed"][1]["strategies"]) == order
  with pytest.raises(InputError, match="no part ran finetune-m0"):
    merge.merge(parts, order=["nobc", "finetune-m0"])


def _tampered(tmp_path, part, edit, name="tampered"):
  """A copy of ``part``'s results.json, edited."""
  with open(os.path.join(part, "results.json")) as f:
    results = json.load(f)
  edit(results)
  folder = tmp_path / name
  folder.mkdir()
  with open(folder / "results.json", "w") as f:
    json.dump(results, f)
  return str(folder)


def test_parts_made_under_other_process_settings_are_refused_or_printed(runs, tmp_path):
  _, _, parts = runs
  assert merge.merge(parts)[0]["environment"].get("process_differences") is None

  def edit(results):
    results["environment"]["process"]["variables"]["NPROC"] = "3"

  other = _tampered(tmp_path, parts[1], edit)
  with open(os.path.join(parts[0], "results.json")) as f:
    nproc = json.load(f)["environment"]["process"]["variables"]["NPROC"]
  with pytest.raises(InputError) as error:
    merge.merge([parts[0], other])
  assert str(error.value) == (
    f"parts {parts[0]!r} and {other!r} ran under NPROC {nproc!r} and '3': "
    "process settings change bits; expected parts made under the same ones (or "
    "merge with --allow_process_differences, which the results page prints)"
  )
  merged, _ = merge.merge([parts[0], other], allow_process_differences=True)
  (line,) = merged["environment"]["process_differences"]
  assert line.startswith(f"parts {parts[0]!r} and {other!r} ran under NPROC")
  assert line in provenance.provenance(merged)


def test_parts_whose_shared_strategy_differs_are_refused(runs, tmp_path):
  _, _, parts = runs

  def edit(results):
    results["per_seed"][1]["strategies"]["fix-m0"][1]["recall"]["50"] += 1e-7

  with pytest.raises(
    InputError, match="both ran fix-m0 and differ at embedding seed 1"
  ):
    merge.merge([parts[0], _tampered(tmp_path, parts[1], edit)])


def test_parts_of_another_setting_are_refused_unless_allowed(runs, tmp_path):
  _, _, parts = runs

  def edit(results):
    results["config"]["method"]["joint"]["align_weight"] = 4.0

  weighted = _tampered(tmp_path, parts[1], edit)
  with pytest.raises(InputError, match="differ in config"):
    merge.merge([parts[0], weighted])
  merged, _ = merge.merge(
    [weighted, f"{parts[0]}:nobc"], differ=["method.joint.align_weight"]
  )
  # The first part's config is the merged run's.
  assert merged["config"]["method"]["joint"]["align_weight"] == 4.0
  assert list(merged["strategies"]) == ["fix-m0", "joint-linear-mloss", "nobc"]

  def moved(results):
    # Fields no stored number depends on (the data's folder) may differ.
    results["config"]["data_dir"] = "/elsewhere"
    results["config"]["seed_batch"] = 1

  merge.merge([parts[0], _tampered(tmp_path, parts[1], moved, "moved")])


def test_parts_of_other_consumers_are_refused(runs, tmp_path):
  _, _, parts = runs

  def edit(results):
    consumer = results["per_seed"][0]["unintended"]["user-activity"]["consumer"]
    consumer["hidden"] += 1

  with pytest.raises(InputError, match="differ in consumers"):
    merge.merge([parts[0], _tampered(tmp_path, parts[1], edit)])


def _git(repo, *args):
  return subprocess.run(
    ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
  ).stdout.strip()


def _commit(repo, path, text):
  (repo / path).parent.mkdir(parents=True, exist_ok=True)
  (repo / path).write_text(text)
  _git(repo, "add", "-A")
  _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", path)
  return _git(repo, "rev-parse", "HEAD")


def test_parts_of_other_code_are_refused(runs, tmp_path):
  _, _, parts = runs
  repo = tmp_path / "repo"
  repo.mkdir()
  _git(repo, "init", "-q")
  first = _commit(repo, "bcjax/model.py", "a = 1\n")
  docs = _commit(repo, "docs/page.md", "words\n")
  code = _commit(repo, "experiments/configs/default.py", "epochs = 2\n")

  def at(commit, name):
    def edit(results):
      results["environment"]["git_commit"] = commit

    return _tampered(tmp_path, parts[1], edit, name)

  def first_at(commit, name):
    def edit(results):
      results["environment"]["git_commit"] = commit

    return _tampered(tmp_path, parts[0], edit, name)

  base = first_at(first, "base")
  # A commit that changed only docs has the same code.
  merge.merge([base, at(docs, "docs")], root=str(repo))
  with pytest.raises(InputError, match="the parts' code differs: commits"):
    merge.merge([base, at(code, "code")], root=str(repo))
  with pytest.raises(InputError, match="uncommitted changes"):
    merge.merge([first_at(first + "+dirty", "dirty"), at(first + "+dirty", "d2")])


def test_a_tuning_run_merges_as_the_part_that_chose_the_weight(runs, tmp_path):
  """A tuning run of BC-Aligner at lambda 1 and 16, under another config.seed
  and one seed, gives the merged report run its weight_selection."""
  _, results, parts = runs
  tuning = config("joint-linear-mloss")
  tuning.seed, tuning.num_seeds, tuning.seed_batch = 5, 1, 1
  tuning.tuning.weights = (1, 16)
  tuning.tasks = "binary-edge-rating"  # which tasks run is the part's own
  folder = str(tmp_path / "tuning")
  made = comparison.run(tuning, folder)
  made["environment"]["git_commit"] = _git(ROOT, "rev-parse", "HEAD")
  with open(os.path.join(folder, "results.json"), "w") as f:
    json.dump(made, f)
  # Chosen on the tuning seed's selection half, by hand: the best total.
  totals = {row["strategy"]: row["total"] for row in made["selection_table"]["rows"]}
  scores = {w: totals[f"joint-linear-mloss@align_weight={w}"] for w in (1, 16)}
  record = made["weight_selection"]["joint-linear-mloss"]
  assert record["weight_scores"] == {str(w): [v] for w, v in scores.items()}
  assert record["chosen_weight"] == max(scores, key=scores.get)
  assert record["tuning_seeds"] == {"seed": 5, "embedding_seeds": [0]}
  with open(os.path.join(folder, "table.md")) as f:
    assert "## Weights chosen on tuning seeds" in f.read()

  merged, seeds = merge.merge([*parts, folder])
  assert merged["weight_selection"] == made["weight_selection"]
  tuning_part = merged["environment"]["parts"][-1]
  assert tuning_part["path"] == folder and tuning_part["strategies"] == []
  assert tuning_part["gives"] == "weight_selection"
  # The report's numbers are its parts' alone.
  assert_json_close(_outcome(merged)["table"], results["table"])
  assert list(merged["strategies"]) == ALL.split(",")
  merge.write(str(tmp_path / "out"), merged, seeds)
  with open(tmp_path / "out" / "table.md") as f:
    assert "| align_weight | mean | per seed |" in f.read()

  def same_seed(r):
    r["config"]["seed"] = results["config"]["seed"]

  with pytest.raises(InputError, match="its tuning seeds are reported ones"):
    merge.merge([*parts, _tampered(tmp_path, folder, same_seed, "same_seed")])

  def other_setting(r):
    r["config"]["epochs"] += 1

  with pytest.raises(InputError, match="expected a tuning run of the report's setting"):
    merge.merge([*parts, _tampered(tmp_path, folder, other_setting, "other")])


def test_a_part_that_adds_nothing_is_refused(runs, tmp_path):
  _, _, parts = runs
  # A failed part run copied nobc's results.json: every strategy a repeat.
  with pytest.raises(InputError, match="gives no strategy that an earlier part"):
    merge.merge([parts[0], f"{parts[0]}:fix-m0,nobc"])


def test_fix_m0_is_compared_even_when_not_taken(runs, tmp_path):
  _, _, parts = runs

  def edit(results):
    results["per_seed"][0]["strategies"]["fix-m0"][1]["recall"]["50"] += 1e-7

  tampered = _tampered(tmp_path, parts[1], edit)
  with pytest.raises(
    InputError, match="both ran fix-m0 and differ at embedding seed 0"
  ):
    merge.merge([f"{parts[0]}:nobc", f"{tampered}:joint-linear-mloss"])

  def forget(results):
    for seed in results["per_seed"]:
      del seed["strategies"]["fix-m0"]
    del results["strategies"]["fix-m0"]

  with pytest.raises(InputError, match="did not run fix-m0; every part runs it"):
    merge.merge([parts[0], _tampered(tmp_path, parts[1], forget, "forgot")])


def test_the_binary_names_what_is_wrong(runs, tmp_path):
  _, _, parts = runs
  out = run_module(
    "experiments.merge",
    f"--out={tmp_path / 'out'}",
    f"{parts[0]}:finetune-m0",
    cwd=ROOT,
  )
  assert out.returncode == 2
  assert "did not run finetune-m0; it ran nobc, fix-m0, posthoc-linear-sloss" in (
    out.stderr
  )
  assert not os.path.exists(tmp_path / "out")
