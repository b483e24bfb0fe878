"""Data-parallel training and row-sharded serving on 8 simulated CPU devices.

XLA's device count is fixed when JAX starts, so the checks run in a child
process started with ``JAX_NUM_CPU_DEVICES=8``.
"""

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent(
  """
    import json
    import jax
    import numpy as np
    from bcjax import sharding
    from bcjax.data.split import split_version
    from bcjax.data.synthetic import SyntheticSpec, generate
    from bcjax.models.pinsage import PinSAGE
    from bcjax.fitting.train import FitConfig
    from bcjax.fitting.version_fit import fit_version
    from bcjax.components.chains import collapse_linear

    assert jax.device_count() == 8, jax.devices()
    graph = generate(SyntheticSpec(num_users=150, num_items=90, num_interactions=3000, seed=3))
    split = split_version(graph, 1)
    config = FitConfig(epochs=4, eval_every=2, batch_size=256, learning_rate=1e-2)
    out = {}
    for name, mesh in (("single", None), ("sharded", sharding.make_mesh(0))):
      fit = fit_version(PinSAGE(dim=16, num_layers=2), split, config, jax.random.key(0), mesh=mesh)
      out[name] = {"history": fit.history, "recall": fit.recall[50]}
    mesh = sharding.make_mesh(8)
    z = np.random.default_rng(0).normal(size=(1003, 12)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(12, 5)).astype(np.float32)
    rows, n = sharding.shard_rows(z, mesh)
    served = np.asarray(jax.jit(lambda a: a @ w)(rows))[:n]
    out["serving_error"] = float(np.max(np.abs(served - z @ w)))
    out["row_shards"] = len(rows.sharding.device_set)

    import tempfile
    import jax.numpy as jnp
    from bcjax import registry
    from bcjax.storage.checkpoints import VersionStore
    path = tempfile.mkdtemp()
    with VersionStore(path) as store:
      for k, dim in enumerate((5, 12)):
        store.save(
            k,
            model={"params": {"w": jnp.ones(2)}},
            transform={"kernel": jnp.asarray(w)} if k else None,
            embeddings=(jnp.asarray(z[:, :dim]), jnp.asarray(z[:7, :dim])),
            metadata={"dim": dim, "transform": {"name": "linear", "d_in": 12, "d_out": 5}},
        )
    plain = registry.open(path).embeddings(version=0)
    sharded = registry.open(path, mesh).embeddings(version=0)
    out["registry_error"] = float(np.max(np.abs(plain - sharded)))
    out["registry_shape"] = list(sharded.shape)
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_training_and_serving_match_single_device():
  env = dict(os.environ, JAX_NUM_CPU_DEVICES="8")
  proc = subprocess.run(
    [sys.executable, "-c", CHILD],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
  out = json.loads(line[len("RESULT") :])
  single, sharded = out["single"], out["sharded"]
  for a, b in zip(single["history"], sharded["history"], strict=True):
    assert a["epoch"] == b["epoch"]
    assert abs(a["loss"] - b["loss"]) <= 1e-4 * abs(a["loss"]), (a, b)
    assert abs(a["recall@50"] - b["recall@50"]) <= 1e-3, (a, b)
  assert out["row_shards"] == 8
  assert out["serving_error"] < 1e-4
  assert out["registry_shape"] == [1003, 5] and out["registry_error"] < 1e-4


def _compare_with_devices(tmp_path, *overrides):
  return run_module(
    "experiments.compare",
    f"--workdir={tmp_path / 'w'}",
    "--config=test",
    *overrides,
    cwd=tmp_path,
    JAX_NUM_CPU_DEVICES="8",
  )


def test_a_device_count_that_does_not_divide_the_batch_is_one_error_line(tmp_path):
  proc = _compare_with_devices(tmp_path, "--config.num_devices=3")
  assert proc.returncode == 2
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert errors == [
    "error: config.batch_size=256 must be a multiple of the 3 devices it is "
    "sharded over"
  ], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


def test_more_devices_than_exist_is_one_error_line(tmp_path):
  proc = _compare_with_devices(tmp_path, "--config.num_devices=9")
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
    "error: config.num_devices=9 but 8 devices are visible; expected 0 (all) or 1..8"
  )
