"""Multi-process data parallelism: two CPU processes, one global mesh.

Each child process starts JAX's distributed runtime on a local coordinator
(``sharding.initialize_distributed``), builds the mesh over both processes'
devices and fits a version; the result must match a single-process fit.
"""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest

from bcjax.storage.workdir import WorkdirLock

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
    from bcjax.fitting.train import FitConfig
    from bcjax.fitting.version_fit import fit_version

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
  env.pop("JAX_NUM_CPU_DEVICES", None)  # one device per process
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


# The tiny test config, two strategies and two unintended tasks (an edge task
# and a user task): every stage of ``compare`` at the least cost.
COMPARE = (
  "-m",
  "experiments.compare",
  "--config=test",
  "--config.strategy=nobc,bc-aligner",
  "--config.tasks=binary-edge-rating,user-activity",
)


def _start_compare(workdir, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("JAX_NUM_CPU_DEVICES", None)  # one device per process
  return subprocess.Popen(
    [sys.executable, *COMPARE, f"--workdir={workdir}", *args],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _finish(proc) -> str:
  """Waits for a ``compare`` process; returns its log (stderr)."""
  try:
    _, err = proc.communicate(timeout=400)
  except subprocess.TimeoutExpired:
    pytest.fail("a compare process did not finish in 400 s")
  assert proc.returncode == 0, err[-3000:]
  return err


def _files(workdir) -> set[str]:
  """What a job wrote under ``workdir``, relative.

  Inside a version checkpoint only the step folder counts: Orbax's files
  there differ by design (each process writes its own share); event file
  names are stripped of the writer's pid and time, Orbax's data files of
  their random names.
  """
  out = set()
  for path in workdir.rglob("*"):
    name = path.relative_to(workdir)
    if name.parts[0] == "checkpoints":
      if len(name.parts) == 3:
        out.add(str(name))
    elif path.is_file():
      name = re.sub("[0-9a-f]{32}", "<hash>", str(name))
      out.add("tensorboard/<events>" if "tfevents" in name else name)
  return out


def _metric_lines(workdir) -> list[tuple[str, int]]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return sorted((r["tag"], r["step"]) for r in map(json.loads, lines))


def _start_pair(workdir, port: str):
  """Both processes of a two-process ``compare`` into ``workdir``."""
  return [
    _start_compare(
      workdir,
      "--config.num_devices=0",
      "--distributed",
      f"--coordinator_address=127.0.0.1:{port}",
      "--num_processes=2",
      f"--process_id={pid}",
    )
    for pid in (0, 1)
  ]


def test_two_processes_compare_like_one(tmp_path):
  shared, alone = tmp_path / "shared", tmp_path / "alone"
  port = str(_free_port())
  workers = _start_pair(shared, port)
  # Beside the pair, so the test costs one run's time, not two.
  single = _start_compare(alone)
  try:
    logs = [_finish(w) for w in workers]
    _finish(single)
  finally:
    # A failed worker leaves its peer waiting on the coordinator.
    for proc in (*workers, single):
      if proc.poll() is None:
        proc.kill()
        proc.wait()

  # Process 0 alone wrote the outputs; process 1 wrote nothing that the
  # one-process run does not (its checkpoint writes are Orbax's, coordinated).
  assert _files(shared) == _files(alone)
  assert [p.name for p in shared.rglob("results.json")] == ["results.json"]
  assert [p.name for p in shared.rglob("table.md")] == ["table.md"]
  assert "comparison table" in logs[0] and "comparison table" not in logs[1]
  results = json.loads((shared / "results.json").read_text())
  assert results["environment"]["process_count"] == 2
  assert results["environment"]["process_index"] == 0
  assert results["environment"]["device_count"] == 2
  # Metrics: one writer (event files are named by the writer's pid), and the
  # same records as one process writes. Process 1 never took the lock: it
  # ran while process 0 held it, and a second taker is refused.
  (events,) = (shared / "tensorboard").iterdir()
  assert f".{workers[0].pid}." in events.name
  assert _metric_lines(shared) == _metric_lines(alone)

  expected = json.loads((alone / "results.json").read_text())
  for name, versions in expected["strategies"].items():
    for want, got in zip(versions, results["strategies"][name], strict=True):
      for h_want, h_got in zip(want["history"], got["history"], strict=True):
        for key in ("loss", "bpr", "align"):
          if key in h_want:
            assert h_got[key] == pytest.approx(h_want[key], rel=1e-4, abs=1e-5)
      assert got["best_epoch"] == want["best_epoch"]
      assert got["recall"] == pytest.approx(want["recall"], abs=1e-4)
      assert got["distance_to_fix_m0"] == pytest.approx(
        want["distance_to_fix_m0"], rel=1e-4, abs=1e-5
      )
  # The consumers train on embeddings that differ in the last bits (the
  # gradient all-reduce sums in another order); their ROC AUCs over a few
  # dozen examples move by 1/(positives x negatives) per flipped pair, so a
  # pair or two (~1e-3 here) is the agreement to expect.
  for task, want in expected["unintended"].items():
    got = results["unintended"][task]
    assert got["consumer"]["selection"] == pytest.approx(
      want["consumer"]["selection"], abs=5e-3
    )
    for name, per_version in want["per_strategy"].items():
      assert got["per_strategy"][name]["per_version"] == pytest.approx(
        per_version["per_version"], abs=5e-3
      )


def test_a_refused_workdir_stops_every_process_with_one_line(tmp_path):
  # Process 0 finds the workdir locked by another job; process 1, which
  # takes no lock, must stop too rather than wait in the first collective.
  port = str(_free_port())
  with WorkdirLock(str(tmp_path)):
    workers = _start_pair(tmp_path, port)
    try:
      errors = []
      for proc in workers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err[-3000:]
        errors.append([line for line in err.splitlines() if line.startswith("error:")])
    finally:
      for proc in workers:
        if proc.poll() is None:
          proc.kill()
          proc.wait()
  assert len(errors[0]) == 1 and "is in use by process" in errors[0][0]
  assert errors[1] == [
    "error: process 0 refused the job (its log has the reason); this process stops too"
  ]
