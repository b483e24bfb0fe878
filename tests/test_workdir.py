"""Workdir guards: the lock and the recorded config."""

import json
import os
import subprocess
import sys

import pytest

from bcjax.errors import InputError
from bcjax.workdir import (
  CONFIG_NAME,
  LOCK_NAME,
  WorkdirLock,
  check_config,
  check_schema,
)
from experiments.configs import test as test_config

FIELDS = ("dataset", "dims", "learning_rate")


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


def test_config_change_names_the_differing_keys(tmp_path):
  config = test_config.get_config()
  (tmp_path / "results.json").write_text("{}")  # the workdir holds results
  check_config(str(tmp_path), config, FIELDS)
  assert (tmp_path / CONFIG_NAME).exists()
  check_config(str(tmp_path), config, FIELDS)  # the same config passes
  config.dims = (8, 8)
  config.learning_rate = 0.5
  with pytest.raises(InputError) as error:
    check_config(str(tmp_path), config, FIELDS)
  message = str(error.value)
  assert "differing keys: dims: [16, 24] in the workdir, [8, 8] now" in message
  assert "learning_rate: 0.01 in the workdir, 0.5 now" in message
  assert "dataset" not in message


def test_a_workdir_without_results_takes_the_new_config(tmp_path):
  config = test_config.get_config()
  config.dataset = "ml-100K"  # a typo that failed before anything ran
  check_config(str(tmp_path), config, FIELDS)
  config.dataset = "synthetic"
  check_config(str(tmp_path), config, FIELDS)


def test_fields_first_seen_later_are_recorded(tmp_path):
  config = test_config.get_config()
  (tmp_path / "results.json").write_text("{}")
  check_config(str(tmp_path), config, ("dataset",))
  check_config(str(tmp_path), config, ("dataset", "consumer"))
  config.consumer.seeds = 7
  with pytest.raises(InputError, match="differing keys: consumer"):
    check_config(str(tmp_path), config, ("dataset", "consumer"))


def test_seeds_may_grow_never_shrink(tmp_path):
  config = test_config.get_config()
  (tmp_path / "results.json").write_text("{}")
  check_config(str(tmp_path), config, FIELDS, num_seeds=1)
  check_config(str(tmp_path), config, FIELDS, num_seeds=3)  # more: recorded
  assert json.loads((tmp_path / CONFIG_NAME).read_text())["num_seeds"] == 3
  with pytest.raises(InputError, match="holds results of 3 embedding seeds; config"):
    check_config(str(tmp_path), config, FIELDS, num_seeds=2)


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
  check_config(str(tmp_path), test_config.get_config(), FIELDS, schema_version=3)
  check_schema(str(tmp_path), 3, changes)
  with pytest.raises(InputError, match="newer bcjax"):
    check_schema(str(tmp_path), 2, changes)
