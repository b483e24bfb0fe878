"""Shared fixtures: small graphs built by hand or by the generator.

Tests run on CPU whatever JAX build is installed: bit-reproducibility and the
8 simulated devices hold only there. ``BCJAX_TEST_PLATFORMS`` overrides this
with its value for ``JAX_PLATFORMS`` (empty: JAX's own choice).
"""

import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

from tests import deprecations
from tests.deprecations import (  # noqa: F401 (pytest's hooks, found by name)
  pytest_terminal_summary,
  pytest_warning_recorded,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Before anything imports jax, and in os.environ so that the processes tests
# start (compare, resume, sharding) inherit it.
os.environ["JAX_PLATFORMS"] = os.environ.get("BCJAX_TEST_PLATFORMS", "cpu")
# The suite runs in two pytest-xdist workers, and tests start processes of
# their own: on a GPU each would otherwise take 75% of its memory at start.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Every Python process a test starts imports the repository and follows the
# suite's deprecation rule (tests/deprecations.py): subprocess_site holds the
# sitecustomize that installs it, and the third-party deprecations those
# processes see come back through one log into the end-of-run summary.
os.environ["PYTHONPATH"] = os.pathsep.join(
  [os.path.join(ROOT, "tests", "subprocess_site"), ROOT]
  + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
if deprecations.LOG_VARIABLE not in os.environ:
  _log_dir = tempfile.mkdtemp(prefix="bcjax-tests-deprecations-")
  atexit.register(shutil.rmtree, _log_dir, ignore_errors=True)
  os.environ[deprecations.LOG_VARIABLE] = os.path.join(_log_dir, "log.jsonl")
# Many tests run the same small jobs, here and in the processes they start,
# and most of a small job's time is compilation: one JAX compilation cache
# for the session compiles each program once (a test-config comparison
# takes 20 s instead of 50 s with it warm). Every entry, however quick to
# compile. A cache the caller names is used and kept; the session's own is
# removed at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="bcjax-tests-jax-")
  atexit.register(
    shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True
  )
# The cache is cold on every CI run, and the suite's programs are tiny: it
# spends most of its time in XLA's CPU backend compiling them (LLVM), not
# running them. Level 0 skips LLVM's optimisation passes, the same HLO
# programs and the same code paths, at about half the compile time
# (test_versions' and test_compatibility's jobs: 3m47 -> 3m02 of wall,
# 3m47 -> 2m39 of CPU). Every process a test starts inherits it; a caller's
# own XLA_FLAGS stand.
if "XLA_FLAGS" not in os.environ:
  os.environ["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
if "jax" in sys.modules:
  # A plugin imported jax first; its backends are still unset until first use.
  config = sys.modules["jax"].config
  config.update("jax_platforms", os.environ["JAX_PLATFORMS"])
  config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
  config.update("jax_persistent_cache_min_compile_time_secs", 0)
  config.update("jax_persistent_cache_min_entry_size_bytes", -1)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bcjax.data.graph import DynamicGraph, RaggedAttribute, from_raw_log  # noqa: E402
from bcjax.data.synthetic import SyntheticSpec, generate  # noqa: E402
from bcjax.models import mosaic_kernel  # noqa: E402

# The backend starts here, before any test: a run called in this process then
# finds it up and leaves XLA's pool as it is (bcjax.environment.set_up_process
# would otherwise widen it, through NPROC, for every process started later,
# depending on which test ran first).
jax.devices()

# The mosaic layout off a GPU runs in Mosaic GPU's interpreter, which JAX
# has from 0.10 on; older supported JAX (the floor is 0.8) cannot run it.
needs_mosaic_interpreter = pytest.mark.skipif(
  not mosaic_kernel.interpreter_available(),
  reason=f"jax {jax.__version__} has no Mosaic GPU interpreter to run the kernel on CPU",
)


def mosaic_param(value):
  """A parametrize value that needs Mosaic GPU's interpreter."""
  return pytest.param(value, marks=needs_mosaic_interpreter)


def run_module(module, *args, cwd, **env):
  """Runs ``python -m module args`` in ``cwd`` with the repository importable.

  ``env`` adds variables; the output is captured as text.
  """
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    cwd=cwd,
    env=dict(os.environ, **env),
    capture_output=True,
    text=True,
    timeout=600,
  )


def lower_for_cuda(fun, *args):
  """The StableHLO text of ``jax.jit(fun)`` lowered for CUDA, without a GPU.

  From JAX 0.11 on, lowering a Pallas kernel for CUDA needs a GPU to target:
  an abstract H100 (Hopper, as Mosaic GPU needs) in an abstract mesh stands
  for it. Older JAX lowers without one.

  Args:
    fun: the function to lower.
    *args: ``jax.ShapeDtypeStruct`` of its arguments.
  """
  if jax.__version_info__ < (0, 11):
    return jax.jit(fun).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
  device = jax.sharding.AbstractDevice(
    device_kind="NVIDIA H100", num_cores=None, platform="gpu"
  )
  mesh = jax.sharding.AbstractMesh(
    (1,), ("devices",), (jax.sharding.AxisType.Explicit,), abstract_device=device
  )
  with jax.sharding.use_abstract_mesh(mesh):
    lowered = jax.jit(fun).trace(*args).lower(lowering_platforms=("cuda",))
  return lowered.as_text()


def assert_json_close(a, b, path="", *, atol=0.0, rtol=0.0):
  """Asserts JSON ``a == b``, timings (keys naming ``seconds``) aside.

  Floats agree within ``atol + rtol * |b|`` (exactly when both are 0; NaN
  matches NaN);
  everything else (keys, lengths, ints, strings, None) exactly. ``path``
  names the first entry that differs.
  """
  if isinstance(a, dict):
    assert sorted(a) == sorted(b), path
    for k in a:
      if "seconds" not in k:
        assert_json_close(a[k], b[k], f"{path}/{k}", atol=atol, rtol=rtol)
  elif isinstance(a, list):
    assert len(a) == len(b), path
    for j, (x, y) in enumerate(zip(a, b)):
      assert_json_close(x, y, f"{path}[{j}]", atol=atol, rtol=rtol)
  elif isinstance(a, float) and (atol or rtol):
    assert np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True), f"{path}: {a} vs {b}"
  else:
    assert a == b, f"{path}: {a!r} != {b!r}"


def graph_from_rows(rows, name="hand-made"):
  """A DynamicGraph from ``(user, item, timestamp, rating)`` rows of raw keys.

  Every item gets one attribute value of a two-value kind ``"kind"``.
  """
  users, items, times, ratings = zip(*rows)
  user, item, timestamp, rating, _, item_order = from_raw_log(
    users, items, np.array(times), np.array(ratings), name=name
  )
  attr = RaggedAttribute.from_lists(
    [[i % 2] for i in range(len(item_order))], ["even", "odd"]
  )
  return DynamicGraph(user, item, timestamp, rating, {"kind": attr}, name=name)


@pytest.fixture(scope="session")
def small_graph():
  """A synthetic graph of a few thousand interactions."""
  return generate(
    SyntheticSpec(num_users=150, num_items=90, num_interactions=3000, seed=3)
  )


@pytest.fixture
def scratch_registries(monkeypatch):
  """Components a test registers (a user's extension) are gone after it:
  every registry is restored in place, and extensions count as not loaded."""
  from bcjax import extensions
  from bcjax.align import families
  from bcjax.components import losses, transforms
  from bcjax.methods import base

  monkeypatch.setattr(extensions, "_loaded", set())
  with contextlib.ExitStack() as stack:
    for registry in (
      transforms.TRANSFORMS,
      losses.LOSSES,
      base.METHODS,
      families.FAMILIES,
    ):
      stack.enter_context(registry.scratch())
    yield


# Files whose tests (or module fixtures) take longest, slowest first: they
# start first, so that the two pytest-xdist workers, which take files in
# collection order, finish together instead of one waiting on the last
# heavy file. From the committed --durations (benchmarks/results/test_durations).
SLOW_FILES_FIRST = (
  "test_compatibility.py",
  "test_versions.py",
  "test_resume.py",
  "test_multihost.py",
  "test_extension_hparams.py",
  "test_seed_batch_runner.py",
  "test_merge.py",
  "test_consumers.py",
  "test_benchmarks.py",
  "test_seed_batch.py",
  "test_compare.py",
)


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
