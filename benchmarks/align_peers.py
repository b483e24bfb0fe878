r"""bcjax ``align.fit(family="auto")`` against rebasis's ``auto``, pair by pair.

Command (bcjax's Python; rebasis runs in the peers' venv, Python >= 3.12,
``pip install '.[peers]'``)::

  python -m benchmarks.align_peers --peers_python=/work/vpeers/bin/python \
      [--seeds=5] [--run_workdir=/tmp/ml100k_run --run_strategy=nobc]
  # pair (c) alone, added to the results already written:
  python -m benchmarks.align_peers --only_run --run_workdir=/tmp/ml100k_run

Pairs of (old, new) item embeddings, one row per item:

* ``rotation``: 4,000 clustered 64-dim old rows; new = old rotated by a
  random orthogonal matrix plus Gaussian noise of std 3 per dim (the
  signal's is about 1.4; the true inverse rotation scores self-retrieval@10
  of about 0.73).
* ``ml100k-svd``: MovieLens-100K items, old = a rank-32 truncated SVD of the
  user-item matrix of the first half of the interactions (by time), new = a
  rank-48 one of all of them (items seen in both windows).
* ``bcjax-v0-v4``: versions 0 and 4 of a small bcjax run on ml-100k (each
  version's own item embeddings, written by ``experiments.export``); only
  with ``--run_workdir``.

For each pair and split seed ``s``: the ids are split as
``experiments.align`` splits them (20% test); bcjax fits
``align.fit(old[train], new[train], family="auto", center=True, seed=s)``;
rebasis fits every candidate that needs no torch on the same fit rows auto
used, is scored on auto's validation rows by auto's criterion (validation
self-retrieval Recall@10 among the validation rows' old vectors plus
distractors) and picks by its own rule (``rebasis.core.selection.select_best``:
scores within 0.005 of the best tie, fewest parameters wins); its choice is
refitted on all train rows, as auto refits its choice (the unrefitted
candidate is recorded too). Both are measured on the test rows with
:func:`bcjax.align.measures.evaluate` (index: every item's old vector):
self-retrieval Recall@10 and neighbour overlap@10. As rebasis L2-normalises
rows before fitting, auto is also run with ``normalize=True`` on the same
split. The table gives each side's mean over seeds and the mean and 95%
Student-t interval of the per-seed difference (bcjax - rebasis).

Writes ``benchmarks/results/align_peers.json`` and ``align_peers.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from bcjax import align
from bcjax.evaluation.intervals import mean_interval, paired_difference
from bcjax.storage.atomic_files import atomic_open, write_json
from experiments.align import match, split_ids

FLAGS = flags.FLAGS


def define_flags():
  """Defines the binary's flags (when run, so tests may import this module)."""
  flags.DEFINE_string(
    "peers_python",
    sys.executable,
    "A Python (>= 3.12) with rebasis installed (pip install -e '.[peers]').",
  )
  flags.DEFINE_integer("seeds", 5, "Split seeds per pair.")
  flags.DEFINE_string(
    "data_dir",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ml-100k"),
    "ml-100k's files (default: the copy beside a checkout).",
  )
  flags.DEFINE_string("run_workdir", None, "A bcjax run on ml-100k (pair c).")
  flags.DEFINE_string("run_strategy", "nobc", "Its strategy.")
  flags.DEFINE_list("run_versions", ["0", "4"], "Its two versions, old then new.")
  flags.DEFINE_string("out", "benchmarks/results/align_peers", "Output path stem.")
  flags.DEFINE_bool(
    "only_run", False, "Run pair (c) alone, added to the results already at --out."
  )


K = 10
TOLERANCE = 0.005  # rebasis.core.selection.select_best's tie band
MEASURES = ("self_recall", "neighbour_overlap")
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def ml100k_pair(data_dir: str) -> tuple[np.ndarray, np.ndarray, str]:
  """``(old, new, note)``: rank-32 SVD of the first half by time vs rank-48 of all."""
  table = np.loadtxt(os.path.join(data_dir, "ml-100k.inter"), skiprows=1)
  users, items, when = table[:, 0].astype(int), table[:, 1].astype(int), table[:, 3]
  shape = (users.max() + 1, items.max() + 1)
  early = when <= np.median(when)
  old = _svd_items(users[early], items[early], shape, 32)
  new = _svd_items(users, items, shape, 48)
  both = np.intersect1d(items[early], items)  # seen in both windows
  note = (
    f"{len(both)} items; old: rank-32 SVD of the first half of the interactions "
    "by time, new: rank-48 SVD of all"
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


def rebasis_candidates(python: str, split: dict) -> tuple[dict, dict]:
  """Runs :mod:`benchmarks.rebasis_worker` on ``split``: ``(meta, arrays)``."""
  with tempfile.TemporaryDirectory() as tmp:
    source, target = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
    np.savez(source, **split)
    done = subprocess.run(
      [python, "-m", "benchmarks.rebasis_worker", source, target],
      cwd=HERE,
      capture_output=True,
      text=True,
      env=dict(os.environ, PYTHONPATH=HERE),
    )
    if done.returncode:
      raise RuntimeError(f"rebasis worker failed:\n{done.stderr[-3000:]}")
    with np.load(target) as f:
      return json.loads(str(f["meta"])), {k: f[k] for k in f.files if k != "meta"}


def one_seed(old, new, seed: int, python: str) -> dict:
  """Both tools on one split of one pair: their choices and test measures."""
  train, test = split_ids(len(old), 0.2, seed)
  tick = time.perf_counter()
  bridge = align.fit(old[train], new[train], family="auto", center=True, seed=seed)
  bcjax_seconds = time.perf_counter() - tick
  sel = bridge.selection
  held = len(sel.validation_rows)
  old_train, new_train = old[train], new[train]
  tick = time.perf_counter()
  meta, arrays = rebasis_candidates(
    python,
    {
      "new_fit": new_train[sel.fit_rows],
      "old_fit": old_train[sel.fit_rows],
      "new_val": new_train[sel.validation_rows],
      "new_train": new_train,
      "old_train": old_train,
      "new_test": new[test],
    },
  )
  rebasis_seconds = time.perf_counter() - tick
  index = old_train[sel.index_rows]
  scores = [
    align.measures.self_recall(
      index, arrays[f"val_{i}"], np.arange(held), K, max_queries=held
    )
    for i in range(len(meta["candidates"]))
  ]
  # rebasis's select_best: within TOLERANCE of the best, fewest parameters.
  best = max(scores)
  tied = [i for i, s in enumerate(scores) if best - s <= TOLERANCE]
  chosen = min(tied, key=lambda i: meta["candidates"][i]["n_params"])

  def measure(bridged):
    m = align.measures.evaluate(old, new, bridged, test, k=K, seed=seed)
    return {key: m[key] for key in MEASURES}

  # rebasis normalises rows before fitting; auto does when asked, on the
  # same split (the split depends on the seed and the row count only).
  tick = time.perf_counter()
  normalized = align.fit(
    old[train], new[train], family="auto", center=True, normalize=True, seed=seed
  )
  normalized_seconds = time.perf_counter() - tick

  return {
    "seed": seed,
    "rows": {"fit": len(sel.fit_rows), "validation": held, "test": len(test)},
    "bcjax": {
      "family": bridge.family,
      "hparams": str(bridge.hparams),
      "validation": sel.choice.score,
      "candidates": {f"{c.family} {c.hparams}": c.score for c in sel.candidates},
      "seconds": bcjax_seconds,
      **measure(bridge.apply(new[test])),
    },
    "bcjax_normalize": {
      "family": normalized.family,
      "hparams": str(normalized.hparams),
      "validation": normalized.selection.choice.score,
      "seconds": normalized_seconds,
      **measure(normalized.apply(new[test])),
    },
    "rebasis": {
      "method": meta["candidates"][chosen]["name"],
      "validation": scores[chosen],
      "candidates": {
        c["name"]: s for c, s in zip(meta["candidates"], scores, strict=True)
      },
      "skipped": meta["skipped"],
      "seconds": rebasis_seconds,
      **measure(arrays[f"refit_test_{chosen}"]),
      "unrefitted": measure(arrays[f"test_{chosen}"]),
    },
  }


def summarize(seeds: list[dict]) -> dict:
  """Per measure: each side's mean interval and the paired differences'.

  ``difference``: bcjax auto - rebasis; ``difference_normalize``: bcjax auto
  with ``normalize=True`` - rebasis (when the seeds have it).
  """
  out = {}
  for key in MEASURES:
    a = [s["bcjax"][key] for s in seeds]
    b = [s["rebasis"][key] for s in seeds]
    out[key] = {
      "bcjax": _interval(mean_interval(a)),
      "rebasis": _interval(mean_interval(b)),
      "difference": _interval(paired_difference(a, b)),
    }
    if all("bcjax_normalize" in s for s in seeds):
      c = [s["bcjax_normalize"][key] for s in seeds]
      out[key]["bcjax_normalize"] = _interval(mean_interval(c))
      out[key]["difference_normalize"] = _interval(paired_difference(c, b))
  return out


def _interval(i) -> dict:
  return {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}


def _cell(i: dict) -> str:
  if i["low"] is None:
    return f"{i['mean']:+.4f}"
  return f"{i['mean']:+.4f} [{i['low']:+.4f}, {i['high']:+.4f}]"


def to_markdown(results: dict) -> str:
  """The per-pair table and each side's choices, as Markdown."""
  lines = [
    "### bcjax align auto vs rebasis auto (test rows; mean over split seeds; "
    "differences: mean and 95% Student-t interval of the per-seed difference; "
    "auto is centred, `normalize` also L2-normalises rows as rebasis does)",
    "",
    "| pair | measure | bcjax auto | bcjax auto, normalize | rebasis | "
    "auto - rebasis | auto normalize - rebasis |",
    "|---|---|---|---|---|---|---|",
  ]
  names = {"self_recall": f"self-retrieval@{K}", "neighbour_overlap": f"overlap@{K}"}
  for name, pair in results["pairs"].items():
    for key in MEASURES:
      s = pair["summary"][key]
      normalized = s.get("bcjax_normalize")
      lines.append(
        f"| {name} | {names[key]} | {s['bcjax']['mean']:.4f} | "
        f"{'-' if normalized is None else format(normalized['mean'], '.4f')} | "
        f"{s['rebasis']['mean']:.4f} | {_cell(s['difference'])} | "
        f"{'-' if normalized is None else _cell(s['difference_normalize'])} |"
      )
  lines += [
    "",
    "| pair | rows | auto's choices | auto normalize's | rebasis's choices |",
    "|---|---|---|---|---|",
  ]
  for name, pair in results["pairs"].items():
    seeds = pair["seeds"]

    def chosen(side, key, seeds=seeds):
      return ", ".join(sorted({s[side][key] for s in seeds if side in s})) or "-"

    lines.append(
      f"| {name} | {pair['note']} | {chosen('bcjax', 'family')} | "
      f"{chosen('bcjax_normalize', 'family')} | {chosen('rebasis', 'method')} |"
    )
  if results.get("skipped"):
    lines += ["", f"Not run: {results['skipped']}"]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  pairs = {}
  if not FLAGS.only_run:
    pairs["rotation"] = rotation_pair()
    pairs["ml100k-svd"] = ml100k_pair(FLAGS.data_dir)
  results = {"k": K, "seeds": FLAGS.seeds, "pairs": {}, "skipped": None}
  if FLAGS.only_run and os.path.exists(FLAGS.out + ".json"):
    # Adds pair (c) to a finished run of the others (same seeds and K).
    with open(FLAGS.out + ".json") as f:
      results = json.load(f)
  if FLAGS.run_workdir:
    first, last = FLAGS.run_versions
    pairs[f"bcjax-v{first}-v{last}"] = run_pair(
      FLAGS.run_workdir, FLAGS.run_strategy, FLAGS.run_versions
    )
    results["skipped"] = None
  else:
    results["skipped"] = "bcjax-v0-v4 (no --run_workdir)"
  for name, (old, new, note) in pairs.items():
    seeds = [one_seed(old, new, s, FLAGS.peers_python) for s in range(FLAGS.seeds)]
    results["pairs"][name] = {"note": note, "seeds": seeds, "summary": summarize(seeds)}
    print(f"{name}: {json.dumps(results['pairs'][name]['summary'])}", flush=True)
  results["environment"] = {"python": sys.version.split()[0]}
  write_json(FLAGS.out + ".json", results)
  with atomic_open(FLAGS.out + ".md") as f:
    f.write(to_markdown(results))
  print(to_markdown(results))


if __name__ == "__main__":
  define_flags()
  app.run(main)
