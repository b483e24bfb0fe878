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
  probe = {
    "strategies": {
      "nobc": [_version(2.0, 10), _version(4.0, 10)],
      "posthoc-linear-sloss": [_version(None, 0), _version(0.5, 30)],
      "joint-linear-mloss": [_version(2.0, 10), _version(6.0, 10)],
    }
  }
  tuned = {"nobc": [100, 200], "joint-linear-mloss": [100, 150]}
  # M_0's epochs count for nobc alone; a joint fit runs its kind's epochs.
  assert cost_plan.fit_epochs("nobc", probe, tuned) == [100, 200]
  assert cost_plan.fit_epochs("joint-orthogonal-mloss", probe, tuned) == [0, 150]
  # A post-hoc fit stops by its own rule: the probe's epochs.
  assert cost_plan.fit_epochs("posthoc-linear-sloss", probe, tuned) == [0, 30]
  # (2 * 100 + 4 * 200) seconds at 10 seeds; at 3 seeds, 3/10 of it.
  assert cost_plan.hours([2.0, 4.0], [100, 200], 10) == pytest.approx(1000 / 3600)
  assert cost_plan.hours([2.0, 4.0], [100, 200], 3) == pytest.approx(300 / 3600)
