"""The environment record kept in results.json."""

import json
import os
import subprocess
import sys

import jax
import pytest

import bcjax
from bcjax import environment


def test_record_names_versions_devices_and_times():
  started = environment.now()
  got = environment.record(started)
  json.dumps(got)  # JSON-ready
  assert got["bcjax"] == bcjax.__version__
  assert got["packages"]["jax"] == jax.__version__
  assert got["device_count"] == jax.device_count()
  assert got["backend"] == jax.default_backend()
  assert got["started"] == started <= got["finished"]


def test_git_commit_of_a_checkout_and_outside_one(tmp_path):
  assert environment.git_commit(str(tmp_path)) is None
  repo = tmp_path / "repo"
  repo.mkdir()

  def git(*args):
    return subprocess.run(
      ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()

  git("init", "-q")
  (repo / "a.txt").write_text("1")
  git("add", "a.txt")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
  head = git("rev-parse", "HEAD")
  assert environment.git_commit(str(repo)) == head
  (repo / "a.txt").write_text("2")
  assert environment.git_commit(str(repo)) == head + "+dirty"


@pytest.mark.parametrize(
  "jaxlib_version,platform,affected",
  [
    ("0.10.2", "gpu", True),
    ("0.11.0", "cuda", True),
    ("0.10.7.dev20260101", "gpu", True),
    ("0.10.1", "gpu", False),
    ("0.11.1", "gpu", False),
    ("0.12.0.1", "gpu", False),
    ("0.10.2", "cpu", False),
    ("0.10.2", "tpu", False),
  ],
)
def test_the_slow_scatter_jaxlibs_warn_on_gpus_only(jaxlib_version, platform, affected):
  warning = environment.slow_scatter_warning(jaxlib_version, platform)
  assert (warning is not None) == affected
  if affected:
    assert jaxlib_version in warning and "jax-ml/jax#38806" in warning
    assert "'.[cuda]'" in warning


SET_UP = """
import json, os, sys
from absl import logging
for name in ("NPROC", "OPENBLAS_NUM_THREADS"):
  os.environ.pop(name, None)
from bcjax import environment
import jax, jax.numpy as jnp
if sys.argv[1] == "late":
  jax.block_until_ready(jnp.linalg.qr(jnp.eye(4) + 1.0))  # backend up, LAPACK loaded
logging.use_absl_handler()
for _ in range(2):  # the second call warns no more
  settings = environment.set_up_process(seed_batch=4)
print("RECORD" + json.dumps(environment.record()["process"]))
print("SET_UP" + json.dumps(settings))
"""


@pytest.mark.parametrize("when", ["early", "late"])
def test_the_process_is_set_up_before_jax_starts_or_says_it_was_too_late(when):
  proc = subprocess.run(
    [sys.executable, "-c", SET_UP, when], capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = dict(
    (line[:6], json.loads(line[6:]))
    for line in proc.stdout.splitlines()
    if line[:6] in ("RECORD", "SET_UP")
  )
  record, settings = lines["RECORD"], lines["SET_UP"]
  assert record == settings  # results.json keeps what the set-up left in force
  variables = record["variables"]
  widen = environment.needs_wide_cpu_pool(environment.jaxlib.__version__, 4, {})
  wide = str(max(environment.CPU_POOL_THREADS, os.cpu_count()))
  warnings = proc.stderr.count("too late to set")
  if when == "early":
    assert variables["OPENBLAS_NUM_THREADS"] == "1"
    assert variables["NPROC"] == (wide if widen else None)
    assert warnings == 0
  else:
    # Nothing set that could no longer take effect; one warning for both calls.
    assert variables["OPENBLAS_NUM_THREADS"] is None
    assert variables["NPROC"] is None
    assert warnings == 1
    assert "OPENBLAS_NUM_THREADS=1 (a LAPACK kernel already ran)" in proc.stderr


def test_the_record_hashes_the_bcjax_modules_imported_and_no_others():
  got = environment.record()["modules"]
  assert got["bcjax.environment"] == environment.source_hash(environment.__file__)
  assert all(name == "bcjax" or name.startswith("bcjax.") for name in got)
  # A process that imported only the environment module records only what
  # it imported (bcjax.align, imported by this suite, is not in it).
  proc = subprocess.run(
    [
      sys.executable,
      "-c",
      "import json; from bcjax import environment; "
      "print(json.dumps(sorted(environment.module_hashes())))",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout) == ["bcjax", "bcjax.environment", "bcjax.errors"]
