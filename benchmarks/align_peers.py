r"""bcjax ``align.fit(family="auto")`` against two peers, rebasis and vectormigrate.

Command (bcjax's Python; the peers run in their own venv, Python >= 3.12,
``pip install '.[peers]'`` (rebasis 0.1.0, vectormigrate 1.0.1);
``--peers_path`` adds folders to the workers' ``sys.path``, e.g. one where
torch is installed for rebasis's ``residual_mlp``)::

  python -m benchmarks.align_peers --peers_python=/work/vpeers/bin/python \
      [--peers_path=/path/to/torch/site] [--seeds=10 --first_seed=10] \
      [--run_workdir=/work/runs/ml100k_nobc --run_strategy=nobc] \
      [--notes=benchmarks/results/align_peers_notes.md]
  # run pairs alone, added to the results already written:
  python -m benchmarks.align_peers --only_run --run_workdir=...
  # keep the peers' sides --out's .json holds (same seeds), compute the rest
  # (a peer or a pair added since):
  python -m benchmarks.align_peers --reuse ...
  # the .md again from the .json, with notes:
  python -m benchmarks.align_peers --markdown_only --notes=...

Pairs of (old, new) item embeddings, one row per item:

* ``rotation``: 4,000 clustered 64-dim old rows; new = old rotated by a
  random orthogonal matrix plus Gaussian noise of std 3 per dim (the
  signal's is about 1.4; the true inverse rotation scores self-retrieval@10
  of about 0.73).
* ``ml100k-svd``: two different models of MovieLens-100K's items: old = a
  rank-32 truncated SVD of the user-item matrix of the first half of the
  interactions (by time), new = a rank-48 one of all of them (items seen in
  both windows).
* ``ml100k-svd-32``: the same with a rank-32 new model, so both widths are
  32: the one real pair vectormigrate's adapters accept.
* ``<dataset>-<strategy>-v0-v4``: versions 0 and 4 of a bcjax run (each
  version's own item embeddings, written by ``experiments.export``), one
  pair per ``--run_workdir`` (with its ``--run_strategy``).

For each pair and split seed ``s``: the ids are split as
``experiments.align`` splits them (20% test); bcjax fits
``align.fit(old[train], new[train], seed=s)`` (``family="auto"``, choosing
family, hyper-parameters, centring and normalisation on its own validation
rows). Each peer runs in a subprocess (:mod:`benchmarks.rebasis_worker`,
:mod:`benchmarks.vectormigrate_worker`), fits its candidates on the same fit
rows auto used and refits them on all train rows, as auto refits its choice;
each candidate is scored on auto's validation rows (searched among auto's
validation index).

* rebasis fits every candidate it can (all six with torch) and picks by its
  own rule (``rebasis.core.selection.select_best``: validation
  self-retrieval Recall@10, scores within 0.005 of the best tie, fewest
  parameters wins). The pick that auto's rule would make among them (paired
  one-standard-error rule on the mean of self-retrieval and overlap) is
  recorded too.
* vectormigrate has no rule of its own: its Procrustes, low-rank affine and
  residual MLP adapters, raw and L2-normalised, are picked by auto's rule
  (:mod:`benchmarks.align_vectormigrate`). Its adapters refuse pairs whose
  widths differ; the refusal's message is recorded in place of measures.

Every candidate's test score is recorded. The picks are measured on the test
rows with :func:`bcjax.align.measures.evaluate` (index: every item's old
vector, plain cosine search for all: rebasis's CSLS is a re-scoring of the
index, not part of a bridge): self-retrieval Recall@10 and neighbour
overlap@10. The table (:mod:`benchmarks.align_peers_report`) gives each
side's mean over seeds and the mean and 95% Student-t interval of the
per-seed difference (bcjax - peer). Writes
``benchmarks/results/align_peers.{json,md}`` (``--notes``'s text at the end).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from bcjax import align
from bcjax.align.protocol import match, split_ids
from bcjax.storage.atomic_files import atomic_open, write_json
from benchmarks import align_vectormigrate as vm
from benchmarks.align_peers_report import MEASURES, summarize, to_markdown

FLAGS = flags.FLAGS


def define_flags():
  """Defines the binary's flags (when run, so tests may import this module)."""
  flags.DEFINE_string(
    "peers_python",
    sys.executable,
    "A Python (>= 3.12) with rebasis and vectormigrate (pip install -e '.[peers]').",
  )
  flags.DEFINE_list(
    "peers_path", [], "Folders added to the peers' workers' sys.path (e.g. torch)."
  )
  flags.DEFINE_integer("seeds", 5, "Split seeds per pair.")
  flags.DEFINE_integer("first_seed", 0, "The first split seed.")
  flags.DEFINE_string(
    "data_dir",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ml-100k"),
    "ml-100k's files (default: the copy beside a checkout).",
  )
  flags.DEFINE_list("run_workdir", [], "bcjax runs, one pair each (versions below).")
  flags.DEFINE_list(
    "run_strategy", ["nobc"], "Their strategies (one: the same for every run)."
  )
  flags.DEFINE_list("run_versions", ["0", "4"], "Their two versions, old then new.")
  flags.DEFINE_string("out", "benchmarks/results/align_peers", "Output path stem.")
  flags.DEFINE_string("notes", None, "A Markdown file appended to the table.")
  flags.DEFINE_bool(
    "only_run", False, "Run the runs' pairs alone, added to the results at --out."
  )
  flags.DEFINE_bool(
    "markdown_only", False, "Rewrite --out's .md from its .json (and --notes)."
  )
  flags.DEFINE_bool(
    "reuse",
    False,
    "Keep the peers' sides of the seeds --out's .json holds; compute the rest.",
  )


K = 10
TOLERANCE = 0.005  # rebasis.core.selection.select_best's tie band


def rotation_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
  """``(old, new, note)``: a random rotation plus noise of std 3 per dim."""
  rng = np.random.default_rng([seed, 25])
  labels = rng.integers(0, 40, size=4000)
  old = rng.normal(size=(40, 64))[labels] + rng.normal(size=(4000, 64))
  q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
  new = old @ q + 3.0 * rng.normal(size=old.shape)
  note = "4000 rows, 64 -> 64 dims, 40 clusters; new = old Q + N(0, 3^2) per dim"
  return old.astype(np.float32), new.astype(np.float32), note


def _svd_items(users, items, shape, rank) -> np.ndarray:
  """``(num_items, rank)`` item factors ``V sqrt(S)`` of a 0/1 user-item matrix."""
  matrix = np.zeros(shape)
  matrix[users, items] = 1.0
  _, s, vt = np.linalg.svd(matrix, full_matrices=False)
  return (vt[:rank].T * np.sqrt(s[:rank])).astype(np.float32)


def ml100k_pair(data_dir: str, new_rank=48) -> tuple[np.ndarray, np.ndarray, str]:
  """``(old, new, note)``: rank-32 SVD of the first half by time vs one of all."""
  table = np.loadtxt(os.path.join(data_dir, "ml-100k.inter"), skiprows=1)
  users, items, when = table[:, 0].astype(int), table[:, 1].astype(int), table[:, 3]
  shape = (users.max() + 1, items.max() + 1)
  early = when <= np.median(when)
  old = _svd_items(users[early], items[early], shape, 32)
  new = _svd_items(users, items, shape, new_rank)
  both = np.intersect1d(items[early], items)  # seen in both windows
  note = (
    f"{len(both)} items; old: rank-32 SVD of the first half of the interactions "
    f"by time, new: rank-{new_rank} SVD of all"
  )
  return old[both], new[both], note


def run_pair(workdir, strategy, versions) -> tuple[np.ndarray, np.ndarray, str]:
  """``(old, new, note)``: two versions' own item embeddings, via experiments.export."""
  from experiments import export

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for v in versions:
      path = os.path.join(tmp, f"v{v}.npz")
      export.export(workdir, strategy, int(v), path, from_version=int(v))
      with np.load(path) as f:
        rows.append((f["ids"], f["embeddings"]))
  (old_ids, old), (new_ids, new) = rows
  # A later version's graph has more nodes: the items both versions have.
  old_rows, new_rows = match(old_ids, new_ids)
  old, new = old[old_rows], new[new_rows]
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)["config"]
  note = (
    f"{len(old)} {config['dataset']} items; versions {versions[0]} "
    f"({old.shape[1]} dims) and {versions[1]} ({new.shape[1]} dims) of "
    f"{strategy} ({config['epochs']} epochs per version, layers "
    f"{config['layers']}), exported by experiments.export"
  )
  return old, new, note


def rebasis_candidates(python: str, split: dict, path=()) -> tuple[dict, dict]:
  """Runs :mod:`benchmarks.rebasis_worker` on ``split``: ``(meta, arrays)``."""
  return vm.run_worker("benchmarks.rebasis_worker", python, split, path)


def rebasis_rule(recall: list[float], n_params: list[int]) -> int:
  """``select_best``: within TOLERANCE of the best recall, fewest parameters."""
  best = max(recall)
  tied = [i for i, r in enumerate(recall) if best - r <= TOLERANCE]
  return min(tied, key=lambda i: n_params[i])


def one_seed(old, new, seed: int, python: str, path=(), previous=None) -> dict:
  """Auto and the peers on one split of one pair: their choices and test measures.

  ``previous``: this seed's entry of an earlier run on the same pair; its
  peers' sides are kept (the split and the rows each peer is given depend on
  the seed alone) and only the missing ones are computed. Auto is fitted
  again, since its rows say what the peers are given; ``reused`` records
  whether its test measures came out as before.
  """
  train, test = split_ids(len(old), 0.2, seed)
  old_train, new_train = old[train], new[train]
  tick = time.perf_counter()
  bridge = align.fit(old=old_train, new=new_train, seed=seed)
  bcjax_seconds = time.perf_counter() - tick
  sel = bridge.selection

  def measure(bridged):
    m = align.measures.evaluate(old, new, bridged, test, k=K, seed=seed)
    return {key: m[key] for key in MEASURES}

  out = {
    "seed": seed,
    "rows": {
      "fit": len(sel.fit_rows),
      "validation": len(sel.validation_rows),
      "test": len(test),
    },
    "bcjax": {
      "family": bridge.family,
      "hparams": str(bridge.hparams),
      "center": bridge.center,
      "normalize": bridge.normalize,
      "validation": sel.choice.score,
      "candidates": len(sel.candidates),
      "seconds": bcjax_seconds,
      **measure(bridge.apply(new[test])),
    },
  }
  kept = {}
  if previous is not None:
    if previous["seed"] != seed or previous["rows"] != out["rows"]:
      raise ValueError(f"seed {seed}: the earlier run split the rows otherwise")
    kept = {
      key: value
      for key, value in previous.items()
      if key.startswith(("rebasis", "vectormigrate"))
    }
    before = {key: previous["bcjax"][key] for key in MEASURES}
    same = before == {key: out["bcjax"][key] for key in MEASURES}
    out["reused"] = {
      "sides": sorted({key.split("_")[0] for key in kept}),
      "bcjax_reproduced": same,
      **({} if same else {"bcjax_before": before}),
    }
  if "rebasis" not in kept:
    kept.update(
      rebasis_side(old_train, new_train, new[test], sel, measure, python, path)
    )
  if "vectormigrate" not in kept:
    kept.update(vm.side(old, new, train, test, sel, seed, python, measure, K, path))
  return {**out, **kept}


def rebasis_side(old_train, new_train, new_test, sel, measure, python, path) -> dict:
  """rebasis's candidates on one split: its pick, auto's rule's, every candidate."""
  held = len(sel.validation_rows)
  tick = time.perf_counter()
  meta, arrays = rebasis_candidates(
    python,
    {
      "new_fit": new_train[sel.fit_rows],
      "old_fit": old_train[sel.fit_rows],
      "new_val": new_train[sel.validation_rows],
      "new_train": new_train,
      "old_train": old_train,
      "new_test": new_test,
    },
    path,
  )
  rebasis_seconds = time.perf_counter() - tick
  # Every rebasis candidate on auto's validation queries and index.
  index, rows = old_train[sel.index_rows], np.arange(held)
  truth = align.measures.query_truth(index, rows, K)
  names = [c["name"] for c in meta["candidates"]]
  n_params = [c["n_params"] for c in meta["candidates"]]
  scored = [
    align.measures.query_scores(index, arrays[f"val_{i}"], rows, K, truth=truth)
    for i in range(len(names))
  ]
  hits, overlaps = [h for h, _ in scored], [o for _, o in scored]
  chosen = rebasis_rule([float(h.mean()) for h in hits], n_params)
  by_auto_rule, _ = align.choose(
    [(h + o) / 2 for h, o in zip(hits, overlaps, strict=True)], n_params
  )
  tests = [measure(arrays[f"refit_test_{i}"]) for i in range(len(names))]
  return {
    "rebasis": {
      "method": names[chosen],
      "validation": float(hits[chosen].mean()),
      "seconds": rebasis_seconds,
      **tests[chosen],
      "unrefitted": measure(arrays[f"test_{chosen}"]),
    },
    "rebasis_auto_rule": {"method": names[by_auto_rule], **tests[by_auto_rule]},
    "rebasis_candidates": {
      name: {
        "n_params": n,
        "validation_recall": float(h.mean()),
        "validation_overlap": float(o.mean()),
        **t,
      }
      for name, n, h, o, t in zip(names, n_params, hits, overlaps, tests, strict=True)
    },
    "rebasis_skipped": meta["skipped"],
    "rebasis_torch": meta["torch"],
    "rebasis_version": meta["version"],
  }


def _run_summary(results: dict, command: str) -> dict:
  every = [s for pair in results["pairs"].values() for s in pair["seeds"]]
  first = every[0]
  return {
    "command": command,
    "rebasis_version": first.get("rebasis_version", "?"),
    "rebasis_candidates": list(first.get("rebasis_candidates", {})),
    "rebasis_skipped": first.get("rebasis_skipped", []),
    "rebasis_torch": first.get("rebasis_torch", False),
    "bcjax_seconds": float(np.mean([s["bcjax"]["seconds"] for s in every])),
    "bcjax_candidates": first["bcjax"].get("candidates", 0),
    "rebasis_seconds": float(np.mean([s["rebasis"]["seconds"] for s in every])),
    **_vectormigrate_summary(every),
  }


def _vectormigrate_summary(every: list[dict]) -> dict:
  ran = [s for s in every if "vectormigrate" in s]
  if not ran:
    return {}
  fitted = [s for s in ran if "vectormigrate_candidates" in s]
  names = list(fitted[0]["vectormigrate_candidates"]) if fitted else []
  return {
    "vectormigrate_version": ran[0]["vectormigrate_version"],
    # Ranks differ by width: low_rank_affine_r4, _r16, _r32 -> low_rank_affine.
    "vectormigrate_candidates": list(
      dict.fromkeys(re.sub(r"_r\d+$", "", n) for n in names if "+L2" not in n)
    ),
    "vectormigrate_seconds": float(
      np.mean([s["vectormigrate"]["seconds"] for s in ran])
    ),
  }


def main(argv):
  del argv  # absl's, less the flags: the command is sys.argv's
  if FLAGS.markdown_only:
    with open(FLAGS.out + ".json") as f:
      results = json.load(f)
    _write(results)
    return
  command = "python -m benchmarks.align_peers " + " ".join(
    shlex.quote(a) for a in sys.argv[1:]
  )
  pairs = {}
  if not FLAGS.only_run:
    pairs["rotation"] = rotation_pair()
    pairs["ml100k-svd"] = ml100k_pair(FLAGS.data_dir)
    # Equal widths: the one real pair vectormigrate's adapters accept.
    pairs["ml100k-svd-32"] = ml100k_pair(FLAGS.data_dir, new_rank=32)
  seed_list = list(range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds))
  results = {"k": K, "seed_list": seed_list, "pairs": {}, "skipped": None}
  earlier = {}
  if (FLAGS.only_run or FLAGS.reuse) and os.path.exists(FLAGS.out + ".json"):
    with open(FLAGS.out + ".json") as f:
      before = json.load(f)
    if FLAGS.reuse:
      if (before["k"], before["seed_list"]) != (K, seed_list):
        raise app.UsageError(f"--reuse: {FLAGS.out}.json ran other seeds or K")
      earlier = before["pairs"]
    if FLAGS.only_run:  # adds the runs' pairs to a finished run of the others
      results = before
    command = before.get("run", {}).get("command", "") + "; " + command
  strategies = FLAGS.run_strategy * (
    len(FLAGS.run_workdir) if len(FLAGS.run_strategy) == 1 else 1
  )
  for workdir, strategy in zip(FLAGS.run_workdir, strategies, strict=True):
    old, new, note = run_pair(workdir, strategy, FLAGS.run_versions)
    with open(os.path.join(workdir, "config.json")) as f:
      dataset = json.load(f)["config"]["dataset"]
    first, last = FLAGS.run_versions
    pairs[f"{dataset}-{strategy}-v{first}-v{last}"] = (old, new, note)
  results["skipped"] = (
    None if FLAGS.run_workdir else "a bcjax run's versions (no --run_workdir)"
  )
  for name, (old, new, note) in pairs.items():
    kept = earlier.get(name, {"note": note, "seeds": []})
    if kept["note"] != note:
      raise ValueError(f"--reuse: {name} was made otherwise: {kept['note']}")
    kept = {s["seed"]: s for s in kept["seeds"]}
    seeds = [
      one_seed(old, new, s, FLAGS.peers_python, FLAGS.peers_path, kept.get(s))
      for s in seed_list
    ]
    results["pairs"][name] = {"note": note, "seeds": seeds, "summary": summarize(seeds)}
    print(f"{name}: {json.dumps(results['pairs'][name]['summary'])}", flush=True)
  results["environment"] = {"python": sys.version.split()[0]}
  results["run"] = _run_summary(results, command)
  _write(results)


def _write(results: dict) -> None:
  """``--out``'s .json and .md, with ``--notes``'s text."""
  if FLAGS.notes:
    with open(FLAGS.notes) as f:
      results["notes"] = f.read()
  write_json(FLAGS.out + ".json", results)
  with atomic_open(FLAGS.out + ".md") as f:
    f.write(to_markdown(results))
  print(to_markdown(results))


if __name__ == "__main__":
  define_flags()
  app.run(main)
