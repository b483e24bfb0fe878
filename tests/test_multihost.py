"""Multi-process data parallelism: two CPU processes, one global mesh.

Each child process starts JAX's distributed runtime on a local coordinator
(``sharding.initialize_distributed``), builds the mesh over both processes'
devices and fits a version; the result must match a single-process fit.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIT = textwrap.dedent(
  """
    import json, sys
    import jax
    from bcjax import sharding
    distributed = sys.argv[1] != "single"
    if distributed:
      sharding.initialize_distributed(
          f"127.0.0.1:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1])
      )
    from bcjax.data.split import split_version
    from bcjax.data.synthetic import SyntheticSpec, generate
    from bcjax.models.pinsage import PinSAGE
    from bcjax.train import FitConfig, fit_version

    spec = SyntheticSpec(num_users=150, num_items=90, num_interactions=3000, seed=3)
    split = split_version(generate(spec), 1)
    config = FitConfig(epochs=4, eval_every=2, batch_size=256, learning_rate=1e-2)
    mesh = sharding.make_mesh(0) if distributed else None
    fit = fit_version(
        PinSAGE(dim=16, num_layers=2), split, config, jax.random.key(0), mesh=mesh
    )
    print(json.dumps({
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "losses": [h["loss"] for h in fit.history],
        "recall": fit.recall[50],
    }))
  """
)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one device per process
  return subprocess.Popen(
    [sys.executable, "-c", FIT, *args],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _result(proc):
  try:
    out, err = proc.communicate(timeout=300)
  except subprocess.TimeoutExpired:
    pytest.fail("a process of the multi-process fit did not finish in 300 s")
  assert proc.returncode == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


def test_two_processes_fit_like_one():
  port = str(_free_port())
  workers = [_start(str(pid), port) for pid in (0, 1)]
  try:
    results = [_result(w) for w in workers]
  finally:
    # A failed worker leaves its peer waiting on the coordinator.
    for w in workers:
      if w.poll() is None:
        w.kill()
        w.wait()
  single = _result(_start("single"))
  assert single["devices"] == 1
  for result in results:
    assert result["devices"] == 2 and result["processes"] == 2
    assert result["losses"] == pytest.approx(single["losses"], rel=1e-4, abs=1e-5)
    assert result["recall"] == pytest.approx(single["recall"], abs=1e-4)
