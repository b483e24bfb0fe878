"""What a result was computed with: versions, commit, devices, host, times.

Recorded in ``results.json`` beside the numbers, so that a table can be
traced to the code and machine that produced it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess

import jax

import bcjax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def git_commit(path: str | None = None) -> str | None:
  """The commit of the checkout holding ``path`` (bcjax's by default), with a
  ``+dirty`` suffix when tracked files changed; None outside a checkout."""
  folder = path or os.path.dirname(os.path.abspath(bcjax.__file__))
  try:
    commit = subprocess.run(
      ["git", "-C", folder, "rev-parse", "HEAD"],
      capture_output=True,
      text=True,
      timeout=10,
      check=True,
    ).stdout.strip()
    dirty = subprocess.run(
      ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
      capture_output=True,
      text=True,
      timeout=10,
      check=True,
    ).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ("+dirty" if dirty else "")


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def now() -> str:
  """The current UTC time, ISO 8601."""
  return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def record(started: str | None = None) -> dict:
  """The environment of this process, as JSON-ready values.

  Args:
    started: when the job started (ISO 8601); the end time is now.
  """
  devices = jax.devices()
  return {
    "bcjax": bcjax.__version__,
    "git_commit": git_commit(),
    "packages": {name: _version(name) for name in PACKAGES},
    "python": platform.python_version(),
    "backend": jax.default_backend(),
    "device_kind": devices[0].device_kind,
    "device_count": len(devices),
    "process_count": jax.process_count(),
    # Of a multi-process job, the process that wrote the record (0).
    "process_index": jax.process_index(),
    "host": platform.node(),
    "started": started,
    "finished": now(),
  }
