"""Workdir guards: the lock, the recorded config and its fingerprint."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import bcjax.methods.base as methods_base
from bcjax.data import spec
from bcjax.errors import InputError
from bcjax.jobs import runner
from bcjax.jobs.experiment import resolve
from bcjax.jobs.run_data import RunData
from bcjax.storage.checkpoints import VersionStore
from bcjax.storage.workdir import (
  CONFIG_KEY,
  CONFIG_NAME,
  FINGERPRINT_KEY,
  LOCK_NAME,
  UNFINGERPRINTED_FIELDS,
  WorkdirLock,
  check_config,
  check_fingerprint,
  check_schema,
  config_fingerprint,
  fingerprinted_config,
)
from experiments.configs import test as test_config

HOLD = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.write(str(os.getpid())); f.flush()
print("held", flush=True)
time.sleep(60)
"""


def _holder(path):
  proc = subprocess.Popen(
    [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
  )
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_lock_refuses_a_second_process(tmp_path):
  holder = _holder(tmp_path / LOCK_NAME)
  try:
    with pytest.raises(InputError, match=f"in use by process {holder.pid}"):
      with WorkdirLock(str(tmp_path)):
        pass
  finally:
    holder.kill()
    holder.wait()
  # The kernel dropped the killed holder's lock: the workdir is free again.
  with WorkdirLock(str(tmp_path)):
    assert (tmp_path / LOCK_NAME).read_text() == str(os.getpid())


def test_lock_is_released_on_error(tmp_path):
  with pytest.raises(RuntimeError):
    with WorkdirLock(str(tmp_path)):
      raise RuntimeError
  with WorkdirLock(str(tmp_path)):
    pass


def _fields(config, data="5c2b41dbf52ae873"):
  return fingerprinted_config(config, data)


def _refusal(tmp_path, config, data="5c2b41dbf52ae873") -> str:
  with pytest.raises(InputError) as error:
    check_config(str(tmp_path), _fields(config, data))
  return str(error.value)


def test_config_change_names_every_differing_field_with_both_values(tmp_path):
  config = test_config.get_config()
  # A field of the user's own, as an extension's hyperparameter would be.
  config.transform_rank = 4
  (tmp_path / "results.json").write_text("{}")  # the workdir holds results
  check_config(str(tmp_path), _fields(config))
  recorded = json.loads((tmp_path / CONFIG_NAME).read_text())
  assert recorded[CONFIG_KEY]["eval_chunk_size"] == 64
  assert recorded[FINGERPRINT_KEY] == config_fingerprint(_fields(config))
  check_config(str(tmp_path), _fields(config))  # the same config passes
  config.eval_chunk_size = 7
  config.transform.linear.init = "identity"
  config.transform_rank = 8
  config.consumer.seeds = 3
  config.dims = (8, 8)
  assert _refusal(tmp_path, config) == (
    f"workdir {tmp_path} holds results of another config: consumer.seeds 1 -> 3, "
    "dims [16, 24] -> [8, 8], eval_chunk_size 64 -> 7, transform.linear.init "
    "'uniform' -> 'identity', transform_rank 4 -> 8; use a fresh workdir, or the config it "
    "was made with"
  )


def test_a_field_added_or_removed_is_a_difference(tmp_path):
  config = test_config.get_config()
  (tmp_path / "results.json").write_text("{}")
  check_config(str(tmp_path), _fields(config))
  config.transform_rank = 4
  assert "another config: transform_rank unset -> 4;" in _refusal(tmp_path, config)
  del config["transform_rank"]
  del config.method.closedform["ridge"]
  assert "method.closedform.ridge 1e-06 -> unset;" in _refusal(tmp_path, config)


def test_other_data_content_is_refused(tmp_path):
  config = test_config.get_config()
  (tmp_path / "results.json").write_text("{}")
  check_config(str(tmp_path), _fields(config, "aaaa"))
  assert "another config: dataset_fingerprint 'aaaa' -> 'bbbb';" in _refusal(
    tmp_path, config, "bbbb"
  )


def test_fields_that_cannot_change_a_number_are_not_fingerprinted(tmp_path):
  config = test_config.get_config()
  (tmp_path / "results.json").write_text("{}")
  check_config(str(tmp_path), _fields(config))
  # The same data in another folder, more seeds, other strategies and tasks,
  # the analytics switched on, seeds batched, reuse under other process
  # settings allowed, a weight tuned, an extension loaded: the workdir's numbers stay valid.
  config.data_dir = "/elsewhere"
  config.num_seeds = 2
  config.seed_batch = 2
  config.strategy = "nobc"
  config.tasks = "binary-edge-rating"
  config.compatibility.enabled = True
  config.allow_process_differences = True
  config.tuning.weights = (1, 4)
  config.imports = "tests.myext"
  assert set(UNFINGERPRINTED_FIELDS) == {
    "tuning",
    "imports",
    "data_dir",
    "num_seeds",
    "seed_batch",
    "strategy",
    "tasks",
    "compatibility",
    "allow_process_differences",
  }
  assert not set(UNFINGERPRINTED_FIELDS) & set(_fields(config))
  check_config(str(tmp_path), _fields(config))


def test_a_workdir_without_results_takes_the_new_config(tmp_path):
  config = test_config.get_config()
  config.dataset = "ml-100K"  # a typo that failed before anything ran
  check_config(str(tmp_path), _fields(config))
  config.dataset = "synthetic"
  check_config(str(tmp_path), _fields(config))


def test_a_workdir_of_an_older_bcjax_is_refused_naming_it(tmp_path):
  # config.json as bcjax wrote it before the whole config was recorded: some
  # fields, no config or fingerprint.
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / CONFIG_NAME).write_text(
    json.dumps({"dataset": "synthetic", "schema_version": 3, "num_seeds": 1})
  )
  message = _refusal(tmp_path, test_config.get_config())
  assert message == (
    f"workdir {tmp_path} was made by an older bcjax, which recorded some of the "
    "config's fields, not the whole config, so it cannot be checked against "
    "this config; use a fresh workdir"
  )
  # A version saved by it: its fingerprint is named.
  with pytest.raises(InputError) as error:
    check_fingerprint(
      "version 1 in /w", None, "0a1b", _fields(test_config.get_config())
    )
  assert str(error.value) == (
    "version 1 in /w was made by an older bcjax, which stored config fingerprint "
    "0a1b of some of the config's fields, not the fields themselves, so it "
    "cannot be checked against this config; use a fresh workdir"
  )


def test_a_value_json_cannot_hold_is_refused_naming_the_field():
  config = test_config.get_config()
  config.scale = np.float32(0.5)  # NumPy values are fine
  assert _fields(config)["scale"] == 0.5
  config.hook = object()
  with pytest.raises(InputError, match=r"^config.hook holds <object object"):
    _fields(config)


def test_seeds_may_grow_never_shrink(tmp_path):
  config = test_config.get_config()
  (tmp_path / "results.json").write_text("{}")
  check_config(str(tmp_path), _fields(config), num_seeds=1)
  check_config(str(tmp_path), _fields(config), num_seeds=3)  # more: recorded
  assert json.loads((tmp_path / CONFIG_NAME).read_text())["num_seeds"] == 3
  with pytest.raises(InputError, match="holds results of 3 embedding seeds; config"):
    check_config(str(tmp_path), _fields(config), num_seeds=2)


def test_a_workdir_of_an_older_schema_is_refused_saying_why(tmp_path):
  changes = {3: "its table formula and its B init differ"}
  check_schema(str(tmp_path), 3, changes)  # empty: nothing to refuse
  # A workdir made before schema 3: config.json without a schema, results
  # of schema 2.
  (tmp_path / CONFIG_NAME).write_text(json.dumps({"dataset": "synthetic"}))
  (tmp_path / "results.json").write_text(json.dumps({"schema_version": 2}))
  with pytest.raises(InputError) as error:
    check_schema(str(tmp_path), 3, changes)
  message = str(error.value)
  assert "older bcjax (results schema 2, this bcjax writes 3)" in message
  assert "table formula and its B init differ" in message
  assert "use a fresh workdir" in message
  # The schema recorded by this bcjax's check_config: accepted.
  (tmp_path / CONFIG_NAME).unlink()
  (tmp_path / "results.json").unlink()
  (tmp_path / "checkpoints").mkdir()
  check_config(str(tmp_path), _fields(test_config.get_config()), schema_version=3)
  check_schema(str(tmp_path), 3, changes)
  with pytest.raises(InputError, match="newer bcjax"):
    check_schema(str(tmp_path), 2, changes)


# End to end: a finished run_intended on the seconds-sized config.


def _intended_config():
  config = test_config.get_config()
  config.strategy = "nobc"
  # A field of the user's own, as an extension's hyperparameter would be.
  config.transform_rank = 4
  return config


@pytest.fixture(scope="module")
def intended(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("intended"))
  return workdir, runner.run(_intended_config(), workdir)


def test_rerun_with_changed_fields_is_refused_naming_them(intended):
  workdir, _ = intended
  config = _intended_config()
  config.eval_chunk_size = 7
  config.transform_rank = 8
  with pytest.raises(InputError) as error:
    runner.run(config, workdir)
  assert str(error.value) == (
    f"workdir {workdir} holds results of another config: eval_chunk_size 64 -> 7, "
    "transform_rank 4 -> 8; use a fresh workdir, or the config it was made with"
  )


def test_rerun_with_other_data_is_refused(intended, monkeypatch):
  workdir, _ = intended
  load = spec.load_dataset

  def one_rating_changed(*args):
    graph = load(*args)
    rating = graph.rating.copy()
    rating[0] += 1
    return dataclasses.replace(graph, rating=rating)

  monkeypatch.setattr(spec, "load_dataset", one_rating_changed)
  with pytest.raises(
    InputError, match=r"another config: dataset_fingerprint '\w+' -> "
  ):
    runner.run(_intended_config(), workdir)


def test_rerun_with_unfingerprinted_fields_changed_reuses_every_version(
  intended, monkeypatch
):
  workdir, results = intended

  def fail(*args, **kwargs):
    raise AssertionError("a saved version was retrained")

  # Every method fits through Context.fit.
  monkeypatch.setattr(methods_base, "fit_version", fail)
  config = _intended_config()
  config.data_dir = "/elsewhere"  # unread by synthetic data: the same content
  config.tasks = "binary-edge-rating"
  config.compatibility.enabled = True
  again = runner.run(config, workdir)
  assert again["strategies"] == results["strategies"]


def test_a_saved_version_of_another_config_is_refused_naming_the_fields(
  intended, tmp_path
):
  workdir, _ = intended
  with VersionStore(os.path.join(workdir, "checkpoints", "nobc")) as store:
    metadata = store.metadata(1)
  assert metadata[CONFIG_KEY]["run"]["transform_rank"] == 4
  assert metadata[FINGERPRINT_KEY] == config_fingerprint(metadata[CONFIG_KEY])
  # The versions alone, read by a runner of another config (no workdir check
  # before it): their own record refuses them.
  shutil.copytree(os.path.join(workdir, "checkpoints"), tmp_path / "checkpoints")
  config = _intended_config()
  config.eval_chunk_size = 7
  job = runner.Runner(RunData.load(resolve(config), str(tmp_path)))
  with pytest.raises(InputError) as error:
    job.version(job.strategy("nobc"), 0)
  assert str(error.value) == (
    f"version 0 in {tmp_path}/checkpoints/nobc holds results of another config: "
    "run.eval_chunk_size 64 -> 7; use a fresh workdir, or the config it was made with"
  )
