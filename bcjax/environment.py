"""The process a result is computed in: its set-up, and what it ran with.

:func:`set_up_process` is the one place that sets what changes bits or
speed before JAX's backend starts (XLA's CPU thread pool, the BLAS threads
of jaxlib's LAPACK kernels); every binary and library entry point calls it.
:func:`record` keeps versions, commit, devices, host, times and those
settings in ``results.json`` beside the numbers, so that a table can be
traced to the code, machine and process that produced it.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys

import jax
import jaxlib
from absl import logging

import bcjax
from bcjax.errors import InputError

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")

# jaxlib releases (first, last) that compile float32 scatter-add on NVIDIA
# GPUs to a compare-and-swap loop, hundreds of times slower
# (jax-ml/jax#38806, fixed in 0.11.1): the atomic layout and every gradient
# of a gather run through it.
SLOW_SCATTER_JAXLIB = ((0, 10, 2), (0, 11, 0))


# jaxlib's batched LAPACK kernels on CPU (hanging in 0.10.2, not in 0.12.0.1)
# split their batch over the intra-op pool the executable's thunks already
# run on, then block until it is done. When as many of them run at
# once as the pool has threads (two on a 2-core machine: seeds vmapped through
# two QR gradients in joint-orthogonal-mloss from version 2 on), nothing is
# left to run their work and the process waits forever, idle. XLA sizes that
# pool from NPROC when it is set; a wider pool leaves threads to do the work.
# Only for seeds in a batch: unbatched kernels do not split, and the wider
# pool costs a 2-core machine 10-25% of a nobc epoch (ml-100k, 20 epochs).
# The pool's size also decides how XLA splits float sums (a vmapped MLP
# gradient differed by 2e-5 between NPROC 2 and 16), so a run and its resume
# are bit-identical only under one NPROC.
CPU_POOL_FIXED_JAXLIB = (0, 12, 0)
CPU_POOL_THREADS = 16
CPU_POOL_VARIABLE = "NPROC"

# Those LAPACK kernels call the OpenBLAS that scipy ships, which by default
# starts its own threads and hands every call to them. Called at once from
# XLA's pool threads, they spin and wait on each other: on 2 cores a vmapped
# QR gradient (10 seeds, three 64x64 QRs, 100 steps) took 17-47 s against
# 1.1-1.6 s with one BLAS thread per caller (jaxlib 0.10.2 and 0.12.0.1,
# bit-identical results; timed while a run shared the cores), and
# joint-orthogonal-mloss v3 on ml-100k 20.6 against 10.5 s an epoch. scipy
# loads that library at the first LAPACK call, so the variable still counts
# when set before it; numpy's own copy, loaded at import, keeps its threads
# for host-side work.
BLAS_THREADS_VARIABLE = "OPENBLAS_NUM_THREADS"

# The variables that change a run's bits or speed, recorded with its results.
PROCESS_VARIABLES = (
  CPU_POOL_VARIABLE,
  BLAS_THREADS_VARIABLE,
  "XLA_FLAGS",
  "JAX_PLATFORMS",
  "JAX_ENABLE_X64",
  "JAX_DEFAULT_MATMUL_PRECISION",
)


def set_up_process(seed_batch: int = 1, environ=None) -> dict:
  """Sets this process's thread pools before JAX's backend starts.

  A value the caller set is kept. Called too late (the backend is up, or a
  LAPACK kernel already loaded scipy's OpenBLAS), it sets nothing it can no
  longer change, warns once, and the record keeps the values in force.

  Args:
    seed_batch: seeds per program (``config.seed_batch``): batched LAPACK
      kernels on a jaxlib that hangs need XLA's CPU pool widened.
    environ: the process environment, set in place (``os.environ``).

  Returns:
    :func:`process_settings` after the set-up.
  """
  environ = os.environ if environ is None else environ
  late = []
  if needs_wide_cpu_pool(jaxlib.__version__, seed_batch, environ):
    wide = str(max(CPU_POOL_THREADS, os.cpu_count() or 1))
    if _backend_started():
      late.append(f"{CPU_POOL_VARIABLE}={wide} (JAX's backend is up)")
    else:
      environ[CPU_POOL_VARIABLE] = wide
  if BLAS_THREADS_VARIABLE not in environ:
    if _lapack_loaded():
      late.append(f"{BLAS_THREADS_VARIABLE}=1 (a LAPACK kernel already ran)")
    else:
      environ[BLAS_THREADS_VARIABLE] = "1"
  if late:
    logging.log_first_n(
      logging.WARNING,
      "bcjax set up this process too late to set %s: the results record the "
      "values in force; set them before JAX starts (a binary does)",
      1,
      ", ".join(late),
    )
  return process_settings(environ)


def needs_wide_cpu_pool(version: str, seed_batch: int, environ) -> bool:
  """Whether batched seeds on this jaxlib need XLA's CPU pool widened.

  Args:
    version: ``jaxlib.__version__``.
    seed_batch: seeds per program.
    environ: the environment (a caller's NPROC stands).
  """
  release = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
  fixed = release and tuple(map(int, release.groups())) >= CPU_POOL_FIXED_JAXLIB
  return not fixed and seed_batch > 1 and CPU_POOL_VARIABLE not in environ


def process_settings(environ=None) -> dict:
  """The process's settings that change bits or speed, as JSON-ready values.

  Every variable of :data:`PROCESS_VARIABLES` (None: unset; what
  :func:`set_up_process` could not set in time stays unset here too) and the
  host's core count, which sizes XLA's CPU pool where NPROC is unset.
  """
  environ = os.environ if environ is None else environ
  return {
    "variables": {name: environ.get(name) for name in PROCESS_VARIABLES},
    "cpu_count": os.cpu_count(),
  }


def settings_differences(recorded: dict | None, current: dict | None) -> list:
  """Where two :func:`process_settings` records differ.

  Returns:
    ``(name, recorded value, current value)`` per differing variable (and
    ``cpu_count``), sorted by name; none when either record is absent (made
    before they were recorded).
  """
  if recorded is None or current is None:
    return []

  def flat(settings):
    return {**settings.get("variables", {}), "cpu_count": settings.get("cpu_count")}

  a, b = flat(recorded), flat(current)
  return [
    (n, a.get(n), b.get(n)) for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)
  ]


def reuse_differences(what: str, recorded: dict | None, allowed: bool) -> list[str]:
  """Whether ``what``, made under the ``recorded`` process settings, may be
  reused by this process: one line per differing setting.

  Args:
    what: what was made, for the message (``"version 2 in /w/..."``).
    recorded: its :func:`process_settings` (None: made before they were
      recorded).
    allowed: ``config.allow_process_differences``.

  Raises:
    InputError: the settings differ and ``allowed`` is false, naming the
      first setting and both values.
  """
  differences = settings_differences(recorded, process_settings())
  if differences and not allowed:
    name, then, now = differences[0]
    raise InputError(
      f"{what} was made under {name}={then!r}, this process runs under "
      f"{now!r}: process settings change bits; expected the same settings "
      "(or --config.allow_process_differences=true, which results.json records)"
    )
  return [
    f"{what}: {name} {then!r} then, {now!r} now" for name, then, now in differences
  ]


def _backend_started() -> bool:
  """Whether JAX created its backends (after which XLA ignores NPROC).

  JAX has no public query for it; its ``xla_bridge`` has had this one since
  0.4 (to drop if a public one appears).
  """
  from jax._src import xla_bridge

  started = getattr(xla_bridge, "backends_are_initialized", None)
  return bool(started and started())


def _lapack_loaded() -> bool:
  """Whether a LAPACK kernel loaded scipy's OpenBLAS (its threads are set)."""
  return "scipy.linalg.cython_lapack" in sys.modules


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


def module_hashes() -> dict[str, str]:
  """``{module: sha256 of its source}`` of every bcjax module imported here.

  What a run's numbers were computed by: a later change to one of these
  marks the run as made by other code; a change to a module it never
  imported (``bcjax.data.movielens`` for a synthetic run, say) leaves it current.
  """
  out = {}
  for name, module in sorted(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if (name == "bcjax" or name.startswith("bcjax.")) and path:
      out[name] = source_hash(path)
  return out


def source_hash(path: str) -> str:
  """The sha256 of a source file, hex (the file's bytes as they are)."""
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


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
    "process": process_settings(),
    "modules": module_hashes(),
    "started": started,
    "finished": now(),
  }
