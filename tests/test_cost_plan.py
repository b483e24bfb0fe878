"""evidence.cost_plan: a report run's hours from measured records."""

import pytest

from evidence import cost_plan


def _version(seconds, epochs):
  history = [{"epoch": epochs}] if epochs else []
  return {"seconds_per_epoch": seconds, "history": history}


def test_epochs_are_the_largest_over_seeds_and_settings():
  seed = {
    "strategies": {
      "joint-linear-mloss@align_weight=1": [_version(1, 80), _version(1, 60)],
      "joint-linear-mloss@align_weight=4": [_version(1, 80), _version(1, 90)],
      "jointsolve-linear-mloss@align_weight=1": [_version(1, 80), _version(1, 70)],
    }
  }
  other = {
    "strategies": {
      "joint-linear-mloss@align_weight=1": [_version(1, 80), _version(1, 95)]
    }
  }
  run = {"per_seed": [seed, other]}
  assert cost_plan.epochs_run([run]) == {"joint-linear-mloss": [80, 95]}


def test_hours_scale_the_batched_epochs_and_skip_version_zero():
  tuned = {"nobc": [100, 200], "joint-linear-mloss": [100, 150], "fix-m0": [100, 0]}
  # M_0's epochs count for nobc alone; a kind not tuned runs its like's.
  assert cost_plan.fit_epochs("nobc", tuned) == [100, 200]
  assert cost_plan.fit_epochs("joint-orthogonal-mloss", tuned) == [0, 150]
  assert cost_plan.fit_epochs("finetune-m0", tuned) == [0, 200]
  # A post-hoc strategy trains no model: nothing beyond nobc.
  assert cost_plan.fit_epochs(cost_plan.KINDS["posthoc-mlp-sloss"], tuned) == [0, 0]
  # (2 * 100 + 4 * 200) seconds at 10 seeds; at 3 seeds, 3/10 of it.
  assert cost_plan.hours([2.0, 4.0], [100, 200], 10) == pytest.approx(1000 / 3600)
  assert cost_plan.hours([2.0, 4.0], [100, 200], 3) == pytest.approx(300 / 3600)
