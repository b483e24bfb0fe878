"""The run_intended binary end to end on the test config, and its errors."""

import json
import os
import subprocess
import sys

import pytest

from bcjax.errors import InputError
from bcjax.jobs import runner
from experiments.configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _binary(*args):
  return subprocess.run(
    [sys.executable, "-m", "experiments.run_intended", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )


def test_binary_writes_results_for_every_version(tmp_path):
  proc = _binary(
    f"--workdir={tmp_path}",
    "--config=experiments/configs/test.py",
    "--config.strategy=nobc",
  )
  assert proc.returncode == 0, proc.stderr
  results = json.loads((tmp_path / "results.json").read_text())
  config = test_config.get_config()
  entries = results["strategies"]["nobc"]
  assert [e["version"] for e in entries] == list(range(config.num_versions))
  for k, entry in enumerate(entries):
    assert entry["dim"] == config.dims[k] and entry["layers"] == config.layers[k]
    assert set(entry["recall"]) == {"10", "20", "50", "100"}
    assert 0.0 <= entry["recall"]["50"] <= 1.0
    assert 1 <= entry["best_epoch"] <= config.epochs
    assert entry["train_seconds"] > 0
  assert len(results["baselines"]["most-popular"]) == config.num_versions
  # Progress lines name the strategy, version, epoch, loss, recall and time.
  assert "nobc v1 epoch 4/4 loss" in proc.stderr and "recall@50" in proc.stderr
  assert "ETA" in proc.stderr


def test_run_is_deterministic_on_cpu(tmp_path):
  config = test_config.get_config()
  config.num_versions = 1
  config.strategy = "nobc"
  a = runner.run(config, str(tmp_path / "a"))
  b = runner.run(config, str(tmp_path / "b"))

  def strip(r):
    return [
      {k: v for k, v in e.items() if "seconds" not in k and k != "history"}
      for e in r["strategies"]["nobc"]
    ]

  assert strip(a) == strip(b)
  assert [h["loss"] for h in a["strategies"]["nobc"][0]["history"]] == [
    h["loss"] for h in b["strategies"]["nobc"][0]["history"]
  ]


@pytest.mark.parametrize(
  "override,message",
  [
    ("--config.dataset=nope", "unknown dataset 'nope'; valid dataset names:"),
    ("--config.strategy=bogus", "unknown strategy 'bogus'"),
    ("--config.num_versions=9", "config.num_versions must be an integer in [1, 5]"),
    ("--config.dataset=ml-100k", "dataset 'ml-100k' needs data_dir"),
    ("--config.epochs=0", "config.epochs must be a positive integer"),
  ],
)
def test_binary_rejects_bad_config_without_traceback(tmp_path, override, message):
  proc = _binary(
    f"--workdir={tmp_path}", "--config=experiments/configs/test.py", override
  )
  assert proc.returncode == 2
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr


def test_config_errors_name_the_field():
  config = test_config.get_config()
  config.dims = (8,)
  with pytest.raises(
    InputError, match=r"config.dims must be a list of one entry per version"
  ):
    runner.run(config, "/tmp/unused")


def test_binary_stops_on_a_diverged_loss_naming_strategy_version_epoch(tmp_path):
  proc = _binary(
    f"--workdir={tmp_path}",
    "--config=experiments/configs/test.py",
    "--config.strategy=nobc",
    "--config.learning_rate=1e30",
  )
  assert proc.returncode == 3
  assert "error: nobc v0: the training loss became nan by epoch 2" in proc.stderr
  assert "Traceback" not in proc.stderr
