"""The committed runs' parts and the commands that make and merge them."""

import copy
import os

from absl import flags

from evidence import runs
from experiments import merge


def test_every_part_runs_fix_m0_so_the_merge_can_check_it():
  folders = [part.folder for part in runs.every_part()]
  assert len(folders) == len(set(folders))
  for part in runs.every_part():
    # A tuning run adds nobc and fix-m0 itself (bcjax.jobs.weight_tuning).
    assert "fix-m0" in part.strategies or part.tuning, part.folder


def test_a_tuning_part_gives_its_choice_not_its_strategies():
  (run,) = runs.PROOF_RUNS
  tuning, report = [part for part, _ in run.parts]
  assert tuning.tuning and not report.tuning
  assert "--config.seed=100" in tuning.overrides
  assert "--config.seed" not in " ".join(report.overrides)
  # The merged run's strategies are the report part's, in table order.
  assert set(run.strategies()) == set(report.strategies)
  assert run.strategies()[:4] == (
    "fix-m0",
    "nobc",
    "posthoc-linear-sloss",
    "joint-linear-mloss",
  )


def test_a_main_run_covers_the_papers_eight_and_bcjaxs_own():
  for run in runs.RUNS:
    if run.anchored:
      assert run.strategies() == runs.ORDER
      assert not run.differ


def test_each_part_has_its_own_workdir():
  workdirs = [part.workdir for part in runs.every_part()]
  assert len(workdirs) == len(set(workdirs))
  for part in runs.every_part():
    assert f"cp {part.workdir}/results.json {part.path}/" in part.command()


def test_the_plan_lists_the_parts_to_make_and_merges_the_made(tmp_path):
  made = runs.every_part()[0]
  assert made.folder == "ml-100k/nobc"
  os.makedirs(tmp_path / made.path)
  (tmp_path / made.path / "results.json").write_text("{}")
  plan = runs.plan(str(tmp_path))
  assert f"# part {made.folder}\n" not in plan
  assert "# part ml-100k/posthoc\n" in plan and "# part synthetic/nobc\n" in plan
  assert "# run ml-100k_converged: 1 of 5 parts made\n" in plan
  assert (
    "--strategy=fix-m0,nobc,posthoc-linear-sloss,joint-linear-mloss \\\n"
    f"    {made.path}\n"
  ) in plan
  # A sweep whose weight's part is not made is not merged from nobc's alone.
  assert "# run ml-100k_converged_lambda4" not in plan
  # Nor is a weight's part merged without nobc's, the cells' reference.
  (weight,) = [p for p in runs.every_part() if p.folder == "synthetic/lambda4"]
  os.makedirs(tmp_path / weight.path)
  (tmp_path / weight.path / "results.json").write_text("{}")
  assert "# run synthetic_converged_lambda4" not in runs.plan(str(tmp_path))
  (tmp_path / "experiments/results/parts/synthetic/nobc").mkdir(parents=True)
  (tmp_path / "experiments/results/parts/synthetic/nobc/results.json").write_text("{}")
  assert "# run synthetic_converged_lambda4: 2 of 3 parts made\n" in runs.plan(
    str(tmp_path)
  )
  everything = runs.plan(str(tmp_path), everything=True)
  assert f"# part {made.folder}\n" in everything


def _merge_flags():
  """Copies of merge's own flags: the global FLAGS also holds the flags, some of
  them required, of every other binary a test session has imported."""
  own = flags.FlagValues()
  for flag in merge.FLAGS.get_flags_for_module(merge.__name__):
    own[flag.name] = copy.deepcopy(flag)
  return own


def test_merge_commands_are_the_merge_binarys_flags():
  for run in (*runs.RUNS, *runs.PROOF_RUNS):
    argv = run.merge_command().replace("\\\n", " ").split()
    assert argv[:3] == ["python", "-m", "experiments.merge"]
    parsed = _merge_flags()
    specs = parsed(["merge", *argv[3:]])[1:]
    assert parsed.out == f"experiments/results/{run.name}"
    assert parsed.strategy == list(run.strategies())
    assert parsed.differ == list(run.differ)
    assert specs == [
      part.path + (":" + ",".join(names) if names else "") for part, names in run.parts
    ]
