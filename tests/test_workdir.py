"""Workdir guards: the lock and the recorded config."""

import os
import subprocess
import sys

import pytest

from bcjax.errors import InputError
from bcjax.workdir import CONFIG_NAME, LOCK_NAME, WorkdirLock, check_config
from experiments.configs import test as test_config

FIELDS = ("dataset", "dims", "learning_rate")


def test_lock_refuses_a_second_live_process(tmp_path):
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    (tmp_path / LOCK_NAME).write_text(str(sleeper.pid))
    with pytest.raises(InputError, match=f"in use by process {sleeper.pid}"):
      with WorkdirLock(str(tmp_path)):
        pass
  finally:
    sleeper.kill()
    sleeper.wait()


def test_stale_lock_of_a_dead_process_is_recovered(tmp_path):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  (tmp_path / LOCK_NAME).write_text(str(dead.pid))
  with WorkdirLock(str(tmp_path)):
    assert (tmp_path / LOCK_NAME).read_text() == str(os.getpid())
  assert not (tmp_path / LOCK_NAME).exists()


def test_lock_is_released_on_error(tmp_path):
  with pytest.raises(RuntimeError):
    with WorkdirLock(str(tmp_path)):
      raise RuntimeError
  assert not (tmp_path / LOCK_NAME).exists()


def test_config_change_names_the_differing_keys(tmp_path):
  config = test_config.get_config()
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


def test_fields_first_seen_later_are_recorded(tmp_path):
  config = test_config.get_config()
  check_config(str(tmp_path), config, ("dataset",))
  check_config(str(tmp_path), config, ("dataset", "consumer"))
  config.consumer.seeds = 7
  with pytest.raises(InputError, match="differing keys: consumer"):
    check_config(str(tmp_path), config, ("dataset", "consumer"))
