"""The environment record kept in results.json."""

import json
import subprocess

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
