"""vectormigrate's side of ``benchmarks.align_peers``, and the peers' worker call.

vectormigrate 1.0.1's adapters (:mod:`benchmarks.vectormigrate_worker`) are
fitted in the peers' venv on the fit rows of bcjax auto's first fold, each
raw and L2-normalised, and refitted on all train rows. vectormigrate has no
rule that picks among them, so they are scored on that fold's validation
queries (searched among its validation index) and picked by auto's rule
(:func:`bcjax.align.choose`: the paired one-standard-error rule on the mean
of self-retrieval hit@K and overlap@K, ties to fewer parameters). The pick by
vectormigrate's own measure (highest validation ``mean_cosine_similarity``)
is recorded beside it. Where vectormigrate refuses the pair (its adapters
need equal widths), its message is recorded instead of any measure.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import numpy as np

from bcjax import align

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = "benchmarks.vectormigrate_worker"


def run_worker(
  module: str, python: str, split: dict, path=(), env=None
) -> tuple[dict, dict]:
  """Runs ``python -m module IN.npz OUT.npz`` on ``split``: ``(meta, arrays)``.

  Args:
    module: a worker module of this folder (``benchmarks.rebasis_worker``).
    python: the peers' Python.
    split: name -> array, written to ``IN.npz``.
    path: folders added to the worker's ``sys.path`` (after this checkout).
    env: more environment variables for the worker.
  """
  with tempfile.TemporaryDirectory() as tmp:
    source, target = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
    np.savez(source, **split)
    done = subprocess.run(
      [python, "-m", module, source, target],
      cwd=HERE,
      capture_output=True,
      text=True,
      env={
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([HERE, *path]),
      },
    )
    if done.returncode:
      raise RuntimeError(f"{module} failed:\n{done.stderr[-3000:]}")
    with np.load(target) as f:
      return json.loads(str(f["meta"])), {k: f[k] for k in f.files if k != "meta"}


def refusal(meta: dict, d_new: int, d_old: int) -> str | None:
  """vectormigrate's refusal of the pair (None when some candidate fitted)."""
  if meta["candidates"]:
    return None
  if not meta["refused"]:
    raise RuntimeError(f"no vectormigrate candidate fitted: {meta['failed']}")
  messages = sorted({r["error"] for r in meta["refused"]})
  return f"{'; '.join(messages)} (new {d_new} dims, old {d_old} dims)"


def side(old, new, train, test, selection, seed, python, measure, k, path=()):
  """vectormigrate on one split: its picks, their test measures, every candidate.

  Args:
    old, new: ``(N, d_old)``, ``(N, d_new)`` the pair's rows.
    train, test: the split's row ids.
    selection: auto's ``bridge.selection`` on ``train`` (its fit, validation
      and index rows, positions in ``train``).
    seed: the split seed (the MLPs' initialisation).
    python: the peers' Python; ``path``: its extra ``sys.path``.
    measure: ``bridged test rows -> {measure: value}``, as auto is measured.
    k: the K of the validation scores.

  Returns:
    The seed's ``vectormigrate*`` entries: ``vectormigrate`` (auto's rule's
    pick and its test measures, or ``refused``), ``vectormigrate_cosine_rule``,
    ``vectormigrate_candidates``, ``vectormigrate_failed`` and
    ``vectormigrate_version``.
  """
  sel = selection
  new_train, old_train = new[train], old[train]
  tick = time.perf_counter()
  meta, arrays = run_worker(
    WORKER,
    python,
    {
      "new_fit": new_train[sel.fit_rows],
      "old_fit": old_train[sel.fit_rows],
      "new_val": new_train[sel.validation_rows],
      "old_val": old_train[sel.validation_rows],
      "new_train": new_train,
      "old_train": old_train,
      "new_test": new[test],
      "seed": np.asarray(seed),
    },
    path,
    # Its MLPs' small matrix products ran ~10x slower with OpenBLAS's threads
    # on a loaded 2-core machine; the results are the same.
    env={"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")},
  )
  seconds = time.perf_counter() - tick
  out = {
    "vectormigrate_failed": meta["failed"],
    "vectormigrate_version": meta["version"],
  }
  refused = refusal(meta, new.shape[1], old.shape[1])
  if refused is not None:
    return {**out, "vectormigrate": {"refused": refused, "seconds": seconds}}
  index, rows = old_train[sel.index_rows], np.arange(len(sel.validation_rows))
  truth = align.measures.query_truth(index, rows, k)
  names = [c["name"] for c in meta["candidates"]]
  scored = [
    align.measures.query_scores(index, arrays[f"val_{i}"], rows, k, truth=truth)
    for i in range(len(names))
  ]
  per_query = [(h + o) / 2 for h, o in scored]
  chosen, _ = align.choose(per_query, [c["n_params"] for c in meta["candidates"]])
  by_cosine = int(np.argmax([c["validation_cosine"] for c in meta["candidates"]]))
  tests = [measure(arrays[f"refit_test_{i}"]) for i in range(len(names))]
  return {
    **out,
    "vectormigrate": {
      "method": names[chosen],
      "validation": float(per_query[chosen].mean()),
      "seconds": seconds,
      **tests[chosen],
    },
    "vectormigrate_cosine_rule": {"method": names[by_cosine], **tests[by_cosine]},
    "vectormigrate_candidates": {
      c["name"]: {
        "n_params": c["n_params"],
        "validation_recall": float(h.mean()),
        "validation_overlap": float(o.mean()),
        "validation_cosine": c["validation_cosine"],
        **t,
      }
      for c, (h, o), t in zip(meta["candidates"], scored, tests, strict=True)
    },
  }


def pair_refusal(seeds: list[dict]) -> str | None:
  """The refusal every seed of a pair got (None when vectormigrate fitted)."""
  refused = {s.get("vectormigrate", {}).get("refused") for s in seeds}
  if refused == {None}:
    return None
  if len(refused) != 1:
    raise ValueError(f"vectormigrate refused some seeds of a pair only: {refused}")
  return refused.pop()
