"""The extension contract: a method, a transform and a loss from outside.

Everything a user would write lives in this file: ``register()`` adds (with
the registries' decorators, called) a toy
transform family (``scaled``: ``z @ W * s``, a linear family), a toy
alignment loss (``absloss``: the mean absolute error per group) and a toy
method (``nudge``: nobc's M_k and B_k from a few gradient steps of the loss
on every node). No file of the package is edited: ``compare`` loads them
through ``config.imports`` (and the entry-point group), parses their names
and runs them end to end.
"""

import importlib
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bcjax import extensions, registry
from bcjax.components import losses, transforms
from bcjax.jobs import comparison
from bcjax.methods import Version, register_method, strategies
from experiments.configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = "tests.test_extensions:register"


def scaled(hparams) -> transforms.BackwardTransform:
  """``z @ W * s``: a linear family with a learned scale."""
  del hparams

  def init(key, d_in, d_out):
    del key
    return {"kernel": jnp.eye(d_in, d_out), "scale": jnp.ones(())}

  def as_matrix(params):
    return params["kernel"] * params["scale"]

  return transforms.BackwardTransform(
    init, lambda p, z: z @ as_matrix(p), "scaled", as_matrix=as_matrix
  )


def absloss(transform, params, old_params, previous, current, hparams):
  """Sum over groups of the mean absolute error (older versions ignored)."""
  del old_params, hparams
  return sum(
    jnp.mean(jnp.abs(p - transform.apply(params, c))) for p, c in zip(previous, current)
  )


def nudge(ctx, k, earlier):
  """nobc's M_k; B_k from 20 gradient steps of the strategy's loss."""
  current = ctx.version_of("nobc", k)
  z, y = ctx.embed(current), ctx.embed(earlier[-1])
  params = ctx.transform.init(ctx.key, current.model.dim, earlier[-1].model.dim)
  grad = jax.jit(jax.grad(lambda p: ctx.loss(ctx.transform, p, (), y, z)))
  for _ in range(20):
    params = jax.tree.map(lambda a, g: a - 0.1 * g, params, grad(params))
  return Version(current.model, current.variables, params, current.result)


def register():
  transforms.register_transform("scaled")(scaled)
  losses.register_loss("absloss")(absloss)
  register_method("nudge", reads=("nobc",))(nudge)


@pytest.fixture
def isolated(scratch_registries):
  """Registries as they are now, restored after the test."""
  return scratch_registries


def test_extension_runs_compare_end_to_end(isolated, tmp_path):
  config = test_config.get_config()
  config.imports = TARGET
  config.strategy = "nobc,fix-m0,nudge-scaled-absloss,joint-scaled-absloss"
  results = comparison.run(config, str(tmp_path))

  assert "nudge-scaled-sloss" in strategies.valid_names()
  rows = {row["strategy"]: row for row in results["table"]["rows"]}
  assert set(rows) == {"nobc", "fix-m0", "nudge-scaled-absloss", "joint-scaled-absloss"}
  for name in ("nudge-scaled-absloss", "joint-scaled-absloss"):
    entries = results["strategies"][name]
    assert [e["version"] for e in entries] == [0, 1]
    assert np.isfinite(entries[1]["alignment_mse_previous"])
    assert rows[name]["intended"] is not None and rows[name]["unintended"] is not None
    # The registry rebuilds the toy family from the checkpoint and collapses
    # its chain into one matrix through its as_matrix.
    reg = registry.open(str(tmp_path / "checkpoints" / name))
    chain = reg.chain(1, 0)
    assert np.shape(chain.weights) == (config.dims[1], config.dims[0])
    z = reg.embeddings(version=1, kind="item")
    np.testing.assert_allclose(
      reg.embeddings(version=0, kind="item"), z @ chain.weights, rtol=1e-5, atol=1e-5
    )
    reg.close()
  # The toy method's fit moved B_1 away from its start (the truncation).
  nudged = results["strategies"]["nudge-scaled-absloss"][1]
  nobc = results["strategies"]["nobc"][1]
  assert nudged["alignment_mse_previous"] < nobc["alignment_mse_previous"]


def test_entry_point_group_loads_an_installed_extension(
  isolated, tmp_path, monkeypatch
):
  dist = tmp_path / "toy_extension-1.0.dist-info"
  dist.mkdir()
  (dist / "METADATA").write_text(
    "Metadata-Version: 2.1\nName: toy-extension\nVersion: 1.0\n"
  )
  (dist / "entry_points.txt").write_text(f"[bcjax.extensions]\ntoy = {TARGET}\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  importlib.invalidate_caches()
  assert "nudge-scaled-absloss" not in strategies.valid_names()
  extensions.load()
  assert "nudge-scaled-absloss" in strategies.valid_names()
  assert "joint-scaled-absloss" in strategies.valid_names()


def test_binary_loads_config_imports_and_reports_bad_ones(tmp_path):
  def binary(*args):
    return subprocess.run(
      [
        sys.executable,
        "-m",
        "experiments.run_intended",
        f"--workdir={tmp_path}",
        "--config=experiments/configs/test.py",
        *args,
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
    )

  # A bad strategy after the extension loaded: the message lists its names.
  proc = binary(f"--config.imports={TARGET}", "--config.strategy=nudge-scaled-xloss")
  assert proc.returncode == 2
  assert "nudge-scaled-absloss" in proc.stderr and "Traceback" not in proc.stderr
  proc = binary("--config.imports=no_such_module")
  assert proc.returncode == 2
  assert "error: config.imports: cannot import 'no_such_module'" in proc.stderr
