"""What a result was computed with: versions, commit, devices, host, times.

Recorded in ``results.json`` beside the numbers, so that a table can be
traced to the code and machine that produced it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import subprocess

import jax

import bcjax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")

# jaxlib releases (first, last) that compile float32 scatter-add on NVIDIA
# GPUs to a compare-and-swap loop, hundreds of times slower
# (jax-ml/jax#38806, fixed in 0.11.1): the atomic layout and every gradient
# of a gather run through it.
SLOW_SCATTER_JAXLIB = ((0, 10, 2), (0, 11, 0))


def slow_scatter_warning(jaxlib_version: str, platform: str) -> str | None:
  """One line when this jaxlib on this platform has the slow scatter-add.

  Args:
    jaxlib_version: ``jaxlib.__version__``.
    platform: JAX's default backend (``"gpu"``, ``"cuda"``, ``"cpu"``, ...)
      or a device's platform name.

  Returns:
    The warning, naming the versions and the fix; None when unaffected.
  """
  if platform not in ("gpu", "cuda"):
    return None
  release = re.match(r"(\d+)\.(\d+)\.(\d+)", jaxlib_version)
  first, last = SLOW_SCATTER_JAXLIB
  if not release or not first <= tuple(map(int, release.groups())) <= last:
    return None
  return (
    f"jaxlib {jaxlib_version} compiles float32 scatter-add on NVIDIA GPUs to a "
    "compare-and-swap loop, hundreds of times slower (jax-ml/jax#38806, "
    "jaxlib 0.10.2 to 0.11.0): on Python >= 3.12 `pip install -e '.[cuda]'` "
    "installs jax[cuda13]>=0.11.1"
  )


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
