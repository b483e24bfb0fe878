"""The environment record kept in results.json."""

import json
import subprocess

import jax

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
