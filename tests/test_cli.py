"""The binaries' command line: shipped config names, --help, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from bcjax import environment
from experiments import cli
from tests.conftest import ROOT, run_module


def run_binary(module, *args, cwd):
  # From another directory: shipped configs must resolve without the repo.
  return run_module(module, *args, cwd=cwd)


def test_help_lists_the_flags_and_every_config_field(tmp_path):
  proc = run_binary("experiments.compare", "--help", "--config=test", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "--workdir" in proc.stdout and "--config" in proc.stdout
  for field in cli.field_names(cli.load_config(cli.config_path("test"))):
    assert f"  {field} = " in proc.stdout
  assert "consumer.epochs = 2" in proc.stdout  # the test config's own value


@pytest.mark.parametrize(
  "override,expected",
  [
    ("--config.epoch=3", "no field 'epoch'; did you mean epochs"),
    (
      "--config.consumer.epoc=3",
      "no field 'consumer.epoc'; did you mean consumer.epochs",
    ),
    ("--config.epochs=abc", "bad --config override: flag --config.epochs=abc"),
    ("--config.num_seeds=0", "config.num_seeds must be a positive integer"),
  ],
)
def test_a_bad_override_is_one_error_line(tmp_path, override, expected):
  proc = run_binary(
    "experiments.compare", "--workdir=w", "--config=test", override, cwd=tmp_path
  )
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
  assert expected in lines[0]
  assert not (tmp_path / "w").exists()  # nothing ran


def test_an_unknown_config_is_one_error_line(tmp_path):
  proc = run_binary("experiments.compare", "--workdir=w", "--config=nope", cwd=tmp_path)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
    "error: --config='nope' is neither a shipped config ('default', "
    "'converged', 'paper', 'test') nor a file"
  ]


def test_shipped_config_by_name_runs_from_any_directory(tmp_path):
  proc = run_binary(
    "experiments.run_intended",
    f"--workdir={tmp_path / 'w'}",
    "--config=test",
    "--config.strategy=nobc",
    "--config.num_versions=1",
    "--config.epochs=2",
    cwd=tmp_path,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((tmp_path / "w" / "results.json").read_text())
  (version,) = results["strategies"]["nobc"]
  assert version["history"][-1]["epoch"] == 2  # the override took effect


def test_a_config_file_path_still_works(tmp_path):
  path = os.path.join(ROOT, "experiments", "configs", "test.py")
  assert cli.config_path(path) == path
  assert cli.config_path("paper").endswith(os.path.join("configs", "paper.py"))
  converged = cli.load_config(cli.config_path("converged"))
  assert (
    converged.patience > 0
    and converged.dims == cli.load_config(cli.config_path("default")).dims
  )
  assert cli.load_config(path).num_versions == 2


def _one_error_line(proc) -> str:
  """The ``error:`` line of a failed binary; the rest of stderr is its log."""
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, proc.stderr[-3000:]
  return errors[0]


@pytest.mark.parametrize(
  "args,env,expected",
  [
    (
      ["--config.num_devices=99"],
      {},
      "config.num_devices=99 but 1 devices are visible",
    ),
    (
      ["--config.num_devices=3"],
      {"JAX_NUM_CPU_DEVICES": "3"},
      "config.batch_size=256 must be a multiple of the 3 devices",
    ),
    (["--process_id=1"], {}, "--process_id needs --distributed"),
    (
      ["--distributed"],
      {},
      "cannot start JAX's distributed runtime: coordinator_address",
    ),
  ],
)
def test_bad_device_or_cluster_input_is_one_error_line(tmp_path, args, env, expected):
  # One device, whatever the calling shell set.
  env = {"JAX_NUM_CPU_DEVICES": "1", **env}
  proc = run_module(
    "experiments.compare",
    f"--workdir={tmp_path / 'w'}",
    "--config=test",
    "--config.strategy=nobc",
    *args,
    cwd=tmp_path,
    **env,
  )
  assert expected in _one_error_line(proc)


# An absl binary through cli.run_binary whose run() takes gradients of QRs on
# vmapped seeds: jaxlib 0.10.2's batched LAPACK kernels hang on a pool of two
# threads here (three independent QRs, 10 seeds, 64 x 64).
QR_BINARY = """
import jax
import jax.numpy as jnp
from experiments import cli

def orthonormal(v):
  q, r = jnp.linalg.qr(v)
  return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0)

def loss(params, x, y):
  a = x @ orthonormal(params[0])
  b = a @ orthonormal(params[1])
  c = x @ orthonormal(params[2])
  return jnp.mean((a - y) ** 2) + jnp.mean((b - y) ** 2) + jnp.mean((c - y) ** 2)

def run(config, workdir):
  keys = jax.random.split(jax.random.key(0), 5)
  params = [jax.random.normal(k, (10, 64, 64)) for k in keys[:3]]
  x, y = (jax.random.normal(k, (10, 2000, 64)) for k in keys[3:])
  step = jax.jit(jax.vmap(jax.grad(loss)))
  for _ in range(3):
    params = [p - 0.01 * g for p, g in zip(params, step(params, x, y))]
  jax.block_until_ready(params)
  print("finished")

cli.run_binary(run)
"""


def run_source_binary(source, tmp_path, *flags, env=None):
  """Runs a binary given as source on the test config; returns its stdout."""
  proc = subprocess.run(
    [sys.executable, "-c", source, f"--workdir={tmp_path}", "--config=test", *flags],
    cwd=tmp_path,
    env=env or os.environ,
    capture_output=True,
    text=True,
    timeout=300,  # seconds when it works; forever if a thread pool deadlocks
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_a_binary_finishes_batched_qr_gradients_on_a_two_thread_cpu(tmp_path):
  stdout = run_source_binary(QR_BINARY, tmp_path, "--config.seed_batch=2")
  assert "finished" in stdout


BLAS_BINARY = """
import ctypes

import jax
import jax.numpy as jnp

from experiments import cli


def scipy_blas_threads():
  paths = sorted({l.split()[-1] for l in open("/proc/self/maps") if "openblas" in l})
  for path in paths:
    library = ctypes.CDLL(path)
    if hasattr(library, "scipy_openblas_get_num_threads"):  # scipy's, not numpy's
      return library.scipy_openblas_get_num_threads()
  raise SystemExit(f"no scipy OpenBLAS loaded, only {paths}")


def run(config, workdir):
  jax.block_until_ready(jnp.linalg.qr(jnp.eye(8) + 1.0))  # loads scipy's OpenBLAS
  print("blas threads", scipy_blas_threads())

cli.run_binary(run)
"""


@pytest.mark.parametrize("caller_set,threads", [(None, "1"), ("2", "2")])
def test_jaxlibs_lapack_runs_one_blas_thread_per_caller_in_a_binary(
  tmp_path, caller_set, threads
):
  env = dict(os.environ)
  env.pop(environment.BLAS_THREADS_VARIABLE, None)
  if caller_set:
    env[environment.BLAS_THREADS_VARIABLE] = caller_set  # the caller's choice stands
  stdout = run_source_binary(BLAS_BINARY, tmp_path, env=env)
  assert f"blas threads {threads}" in stdout


@pytest.mark.parametrize(
  "version,seed_batch,environ,widened",
  [
    ("0.10.2", 10, {}, True),
    ("0.11.1.dev20260101", 2, {}, True),
    ("0.10.2", 1, {}, False),  # unbatched kernels do not split
    ("0.12.0", 10, {}, False),
    ("0.12.0.1", 10, {}, False),
    ("0.10.2", 10, {"NPROC": "3"}, False),  # the caller's choice stands
  ],
)
def test_the_cpu_pool_is_widened_only_for_batched_seeds_on_jaxlibs_that_hang(
  version, seed_batch, environ, widened
):
  assert environment.needs_wide_cpu_pool(version, seed_batch, environ) == widened
