"""config.seed_batch: embedding seeds of a run trained together, on disk as alone.

A run of the test config with ``seed_batch = S`` must leave what the run seed
after seed leaves: seed i under ``seeds/<i>/``, one Orbax step per strategy
and version, its results.json; the numbers equal within the tolerance of
the seed axis of :mod:`bcjax.fitting.seed_axis` (see ``tests/test_seed_batch.py``) and the
kept epochs identical. A batched run is deterministic, and a killed one
resumes.
"""

import glob
import json
import os

import jax
import numpy as np
import pytest

from bcjax.errors import InputError
from bcjax.jobs import config as config_lib
from bcjax.jobs import runner, seed_lockstep
from bcjax.storage.checkpoints import VersionStore
from bcjax.storage.progress import FitProgress
from experiments.configs import test as test_config
from tests.conftest import assert_json_close

# The core's tolerance (tests/test_seed_batch.py): on parameters, absolute.
ATOL = 1e-5
# On results.json's numbers (losses, recalls, alignment errors): relative.
RTOL = 1e-5
# A post-hoc, a fine-tuning strategy and nobc (M_0 and M_k); a joint one's
# batched fits are the small runs' below (and the core's tests).
STRATEGIES = "nobc,finetune-m0,posthoc-linear-sloss"


class Killed(Exception):
  pass


def _config(num_seeds=3, seed_batch=None, strategy=STRATEGIES):
  config = test_config.get_config()
  config.strategy = strategy
  config.num_seeds = num_seeds
  with config.unlocked():
    # Deleted first: a value of another type (the bad ones) is then allowed.
    del config["seed_batch"]
    if seed_batch is not None:
      config.seed_batch = seed_batch
  return config


def _seed_dir(workdir, i):
  return workdir if i == 0 else os.path.join(workdir, "seeds", str(i))


def _results(workdir, i):
  with open(os.path.join(_seed_dir(workdir, i), "results.json")) as f:
    return json.load(f)


def _kept_epochs(results):
  return {
    name: [(v["best_epoch"], v.get("transform_best_epoch")) for v in versions]
    for name, versions in results["strategies"].items()
  }


def _compare_runs(a, b, num_seeds, strategies, atol=ATOL, rtol=RTOL):
  """Seed by seed: results.json's strategies and every saved version."""
  for i in range(num_seeds):
    ra, rb = _results(a, i), _results(b, i)
    assert ra["embedding_seed"] == rb["embedding_seed"] == i
    assert _kept_epochs(ra) == _kept_epochs(rb)
    assert_json_close(ra["strategies"], rb["strategies"], f"seed {i}", rtol=rtol)
    for name in strategies.split(","):
      path = os.path.join(_seed_dir(a, i), "checkpoints", name)
      with VersionStore(path) as sa, VersionStore(path.replace(a, b, 1)) as sb:
        assert sa.versions() == sb.versions() == [0, 1]
        for k in sa.versions():
          assert sa.metadata(k)["version"] == sb.metadata(k)["version"]
          for item in ("model", "embeddings") + (("transform",) if k else ()):
            x, y = sa.restore(k, item), sb.restore(k, item)
            close = np.testing.assert_array_equal
            if atol:
              close = lambda u, v: np.testing.assert_allclose(u, v, rtol=0, atol=atol)  # noqa: E731
            jax.tree.map(close, x, y)


@pytest.mark.parametrize(
  "value", [0, -2, 1.5, True, "2"], ids=["zero", "negative", "float", "bool", "str"]
)
def test_bad_seed_batch_is_refused_in_one_line(value):
  config = config_lib.with_component_sections(_config(seed_batch=value))
  # Of the wrong type: "must be an integer"; below 1: "a positive integer".
  with pytest.raises(
    InputError, match=r"config\.seed_batch must be (a positive|an) "
  ) as e:
    config_lib.validate(config)
  assert "\n" not in str(e.value)


def test_seed_batch_on_several_devices_is_refused():
  config = config_lib.with_component_sections(_config(seed_batch=2))
  config.num_devices = 2
  with pytest.raises(
    InputError, match=r"config\.seed_batch=2 .*config\.num_devices=2;"
  ) as e:
    config_lib.validate(config)
  assert "\n" not in str(e.value)


def test_one_seed_is_the_run_without_the_field(tmp_path):
  # num_seeds=1 with any seed_batch is today's run (a group of one fits
  # alone); seed_batch=1 is the default every other test runs.
  without, batched = str(tmp_path / "without"), str(tmp_path / "batched")
  runner.run(_config(num_seeds=1, strategy="nobc"), without)
  runner.run(_config(num_seeds=1, seed_batch=4, strategy="nobc"), batched)
  a, b = _results(without, 0), _results(batched, 0)
  assert b["config"].pop("seed_batch") == 4
  a.pop("environment"), b.pop("environment")
  assert_json_close(a, b, "seed 0")
  _compare_runs(without, batched, 1, "nobc", atol=0, rtol=0)


@pytest.fixture(scope="module")
def sequential_and_batched(tmp_path_factory):
  """The 3-seed run seed after seed, and with seed_batch=2 (groups 2 and 1)."""
  sequential = str(tmp_path_factory.mktemp("sequential"))
  runner.run(_config(), sequential)
  batched = str(tmp_path_factory.mktemp("batched"))
  calls = {"version": [], "posthoc": []}
  with pytest.MonkeyPatch.context() as m:
    # Spies that call through: which fits were batched, and how many seeds.
    for kind, name in (
      ("version", "fit_version_seeds"),
      ("posthoc", "fit_posthoc_seeds"),
    ):
      real = getattr(seed_lockstep, name)

      def spy(*args, _real=real, _kind=kind, **kwargs):
        out = _real(*args, **kwargs)
        calls[_kind].append(len(out))
        return out

      m.setattr(seed_lockstep, name, spy)
    runner.run(_config(seed_batch=2), batched)
  return sequential, batched, calls


def test_batched_seeds_equal_the_sequential_run(sequential_and_batched):
  sequential, batched, calls = sequential_and_batched
  # Seeds 0 and 1 fitted together: nobc v0 and v1, finetune-m0 v1, and
  # posthoc's B_1; seed 2, alone in its group, by the same drivers with S=1.
  assert calls == {"version": [2, 2, 2, 1, 1, 1], "posthoc": [2, 1]}
  assert sorted(os.listdir(os.path.join(batched, "seeds"))) == ["1", "2"]
  _compare_runs(sequential, batched, 3, STRATEGIES)


def test_seed_alone_in_its_group_is_bit_identical_to_sequential(
  sequential_and_batched,
):
  sequential, batched, _ = sequential_and_batched
  a, b = _results(sequential, 2), _results(batched, 2)
  assert_json_close(a["strategies"], b["strategies"], "seed 2")


SMALL = "nobc,joint-linear-sloss"
JOINT_DIR = os.sep + "joint-linear-sloss"


@pytest.fixture(scope="module")
def small_batched(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("small"))
  runner.run(_config(num_seeds=2, seed_batch=2, strategy=SMALL), workdir)
  return workdir


def test_batched_run_is_bit_identical_to_itself(small_batched, tmp_path):
  again = str(tmp_path / "again")
  runner.run(_config(num_seeds=2, seed_batch=2, strategy=SMALL), again)
  _compare_runs(small_batched, again, 2, SMALL, atol=0, rtol=0)


def test_killed_batched_run_resumes_to_the_uninterrupted_run(
  small_batched, tmp_path, monkeypatch
):
  workdir = str(tmp_path / "killed")
  config = _config(num_seeds=2, seed_batch=2, strategy=SMALL)
  save_epoch = FitProgress.save

  def die_in_joint_fit(self, epoch, *args):
    # Killed inside the batched joint fit, after seed 0 saved epoch 2.
    save_epoch(self, epoch, *args)
    if JOINT_DIR in self.directory and epoch == 2:
      raise Killed

  monkeypatch.setattr(FitProgress, "save", die_in_joint_fit)
  with pytest.raises(Killed):
    runner.run(config, workdir)
  # Under the strategy's fingerprint: progress/<strategy>/<fingerprint>/v1.
  (joint,) = glob.glob(
    os.path.join(workdir, "progress", "joint-linear-sloss", "*", "v1")
  )
  assert FitProgress(joint).latest_epoch() == 2
  monkeypatch.setattr(FitProgress, "save", save_epoch)

  # Killed in seed 0's thread, right after it saved its joint v1: seed 1's
  # joint v1, fitted but not saved, is fitted again (alone) by the rerun.
  save_version = VersionStore.save

  def die_after_save(self, k, **items):
    save_version(self, k, **items)
    if self.directory.endswith(JOINT_DIR) and k == 1:
      raise Killed

  monkeypatch.setattr(VersionStore, "save", die_after_save)
  with pytest.raises(Killed):
    runner.run(config, workdir)
  monkeypatch.setattr(VersionStore, "save", save_version)
  with VersionStore(os.path.join(workdir, "checkpoints", "joint-linear-sloss")) as s:
    assert s.versions() == [0, 1]
  seed1 = os.path.join(workdir, "seeds", "1", "checkpoints", "joint-linear-sloss")
  with VersionStore(seed1) as s:
    assert s.versions() == [0]

  runner.run(config, workdir)
  _compare_runs(small_batched, workdir, 2, SMALL)
