"""Resuming: a fit killed after a checkpoint ends as if never stopped."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from bcjax.data.split import split_version
from bcjax.models.pinsage import PinSAGE
from bcjax.progress import FitProgress
from bcjax.train import FitConfig, fit_version


class Killed(Exception):
  pass


def test_fit_resumes_exactly_from_its_last_checkpoint(
  small_graph, tmp_path, monkeypatch
):
  split = split_version(small_graph, 1)
  model = PinSAGE(dim=8, num_layers=2)
  config = FitConfig(epochs=6, eval_every=2, batch_size=256, learning_rate=1e-2)
  whole = fit_version(model, split, config, jax.random.key(5))

  progress = FitProgress(str(tmp_path / "progress"))
  save = FitProgress.save

  def save_then_die(self, epoch, *args):
    save(self, epoch, *args)
    if epoch == 4:
      raise Killed

  monkeypatch.setattr(FitProgress, "save", save_then_die)
  with pytest.raises(Killed):
    fit_version(model, split, config, jax.random.key(5), progress=progress)
  monkeypatch.setattr(FitProgress, "save", save)
  assert progress.latest_epoch() == 4
  resumed = fit_version(model, split, config, jax.random.key(5), progress=progress)

  assert resumed.best_epoch == whole.best_epoch and resumed.recall == whole.recall
  strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
  assert strip(resumed.history) == strip(whole.history)
  jax.tree.map(np.testing.assert_array_equal, resumed.variables, whole.variables)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Enough evaluation epochs that kills land inside versions too.
OVERRIDES = ("--config.epochs=8", "--config.eval_every=2")


def _start(workdir):
  return subprocess.Popen(
    [
      sys.executable,
      "-m",
      "experiments.compare",
      f"--workdir={workdir}",
      "--config=experiments/configs/test.py",
      *OVERRIDES,
    ],
    cwd=ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )


def _without_timings(obj):
  if isinstance(obj, dict):
    return {k: _without_timings(v) for k, v in obj.items() if "seconds" not in k}
  if isinstance(obj, list):
    return [_without_timings(v) for v in obj]
  return obj


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return _without_timings(json.load(f))


def test_compare_killed_at_many_points_ends_with_the_same_results(tmp_path):
  reference = tmp_path / "reference"
  proc = _start(reference)
  _, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]

  killed = tmp_path / "killed"
  kills = 0
  for delay in (5, 9, 14, 20, 27, 35):
    proc = _start(killed)
    try:
      proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      kills += 1
    else:
      assert proc.returncode == 0, proc.stderr.read()[-3000:]
      break
  assert kills >= 3
  proc = _start(killed)
  _, err = proc.communicate(timeout=900)
  assert proc.returncode == 0, err[-3000:]
  assert _results(killed) == _results(reference)


def test_unfinished_checkpoint_folder_is_ignored(tmp_path):
  progress = FitProgress(str(tmp_path / "p"))
  progress.save(2, {"w": np.ones(3, np.float32)}, {}, {"epoch": 2})
  # What a kill during the save of epoch 4 leaves behind.
  os.makedirs(tmp_path / "p" / "4.orbax-checkpoint-tmp-1234" / "state")
  assert progress.latest_epoch() == 2
  state, _, meta = progress.restore(2, {"w": np.zeros(3, np.float32)}, {})
  np.testing.assert_array_equal(state["w"], 1.0)
  assert meta == {"epoch": 2}
