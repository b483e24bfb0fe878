r"""bcjax ``align.fit(family="auto")`` against rebasis's ``auto``, pair by pair.

Command (bcjax's Python; rebasis runs in the peers' venv, Python >= 3.12,
``pip install '.[peers]'``; ``--peers_path`` adds folders to its ``sys.path``,
e.g. one where torch is installed for rebasis's ``residual_mlp``)::

  python -m benchmarks.align_peers --peers_python=/work/vpeers/bin/python \
      [--peers_path=/path/to/torch/site] [--seeds=10 --first_seed=10] \
      [--run_workdir=/work/runs/ml100k_nobc --run_strategy=nobc] \
      [--notes=benchmarks/results/align_peers_notes.md]
  # run pairs alone, added to the results already written:
  python -m benchmarks.align_peers --only_run --run_workdir=...
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
* ``<dataset>-<strategy>-v0-v4``: versions 0 and 4 of a bcjax run (each
  version's own item embeddings, written by ``experiments.export``), one
  pair per ``--run_workdir`` (with its ``--run_strategy``).

For each pair and split seed ``s``: the ids are split as
``experiments.align`` splits them (20% test); bcjax fits
``align.fit(old[train], new[train], seed=s)`` (``family="auto"``, choosing
family, hyper-parameters, centring and normalisation on its own validation
rows); rebasis fits every candidate it can (all six with torch) on the same
fit rows auto used, each is scored on auto's validation rows (searched among
auto's validation index) and rebasis picks by its own rule
(``rebasis.core.selection.select_best``: validation self-retrieval
Recall@10, scores within 0.005 of the best tie, fewest parameters wins); its
choice is refitted on all train rows, as auto refits its choice. The pick
that auto's rule would make among rebasis's candidates (paired
one-standard-error rule on the mean of self-retrieval and overlap) is
recorded too, as is every candidate's test score. Both are measured on the
test rows with :func:`bcjax.align.measures.evaluate` (index: every item's old
vector, plain cosine search for both: rebasis's CSLS is a re-scoring of the
index, not part of a bridge): self-retrieval Recall@10 and neighbour
overlap@10. The table gives each side's mean over seeds and the mean and 95%
Student-t interval of the per-seed difference (bcjax - rebasis). Writes
``benchmarks/results/align_peers.{json,md}`` (``--notes``'s text at the end).
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from bcjax import align
from bcjax.align.protocol import match, split_ids
from bcjax.evaluation.intervals import mean_interval, paired_difference
from bcjax.storage.atomic_files import atomic_open, write_json

FLAGS = flags.FLAGS


def define_flags():
  """Defines the binary's flags (when run, so tests may import this module)."""
  flags.DEFINE_string(
    "peers_python",
    sys.executable,
    "A Python (>= 3.12) with rebasis installed (pip install -e '.[peers]').",
  )
  flags.DEFINE_list(
    "peers_path", [], "Folders added to the rebasis worker's sys.path (e.g. torch)."
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


def rebasis_candidates(python: str, split: dict, path=()) -> tuple[dict, dict]:
  """Runs :mod:`benchmarks.rebasis_worker` on ``split``: ``(meta, arrays)``."""
  with tempfile.TemporaryDirectory() as tmp:
    source, target = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
    np.savez(source, **split)
    done = subprocess.run(
      [python, "-m", "benchmarks.rebasis_worker", source, target],
      cwd=HERE,
      capture_output=True,
      text=True,
      env=dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, *path])),
    )
    if done.returncode:
      raise RuntimeError(f"rebasis worker failed:\n{done.stderr[-3000:]}")
    with np.load(target) as f:
      return json.loads(str(f["meta"])), {k: f[k] for k in f.files if k != "meta"}


def rebasis_rule(recall: list[float], n_params: list[int]) -> int:
  """``select_best``: within TOLERANCE of the best recall, fewest parameters."""
  best = max(recall)
  tied = [i for i, r in enumerate(recall) if best - r <= TOLERANCE]
  return min(tied, key=lambda i: n_params[i])


def one_seed(old, new, seed: int, python: str, path=()) -> dict:
  """Both tools on one split of one pair: their choices and test measures."""
  train, test = split_ids(len(old), 0.2, seed)
  old_train, new_train = old[train], new[train]
  tick = time.perf_counter()
  bridge = align.fit(old_train, new_train, seed=seed)
  bcjax_seconds = time.perf_counter() - tick
  sel = bridge.selection
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
      "new_test": new[test],
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

  def measure(bridged):
    m = align.measures.evaluate(old, new, bridged, test, k=K, seed=seed)
    return {key: m[key] for key in MEASURES}

  tests = [measure(arrays[f"refit_test_{i}"]) for i in range(len(names))]
  return {
    "seed": seed,
    "rows": {"fit": len(sel.fit_rows), "validation": held, "test": len(test)},
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


def summarize(seeds: list[dict]) -> dict:
  """Per measure: each side's mean interval and the paired differences'.

  ``difference``: bcjax auto - rebasis's pick; ``difference_auto_rule``:
  bcjax auto - the rebasis candidate auto's rule picks (when recorded).
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
    if all("rebasis_auto_rule" in s for s in seeds):
      c = [s["rebasis_auto_rule"][key] for s in seeds]
      out[key]["rebasis_auto_rule"] = _interval(mean_interval(c))
      out[key]["difference_auto_rule"] = _interval(paired_difference(a, c))
  return out


def _interval(i) -> dict:
  return {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}


def _cell(i: dict) -> str:
  if i["low"] is None:
    return f"{i['mean']:+.4f}"
  return f"{i['mean']:+.4f} [{i['low']:+.4f}, {i['high']:+.4f}]"


def _bcjax_choice(s: dict) -> str:
  """``family`` with ``+centre``/``+L2`` for the preprocessing auto chose."""
  marks = ("+centre" if s.get("center") else "") + ("+L2" if s.get("normalize") else "")
  return s["family"] + marks


def _counts(names) -> str:
  counted = collections.Counter(names).most_common()
  return ", ".join(f"{name} ({n})" for name, n in counted) or "-"


def to_markdown(results: dict) -> str:
  """The per-pair table and each side's choices, as Markdown."""
  seeds = results.get("seed_list")
  lines = [
    "### bcjax align auto vs rebasis auto (test rows; mean over "
    f"{len(seeds) if seeds else results.get('seeds', '?')} split seeds"
    + (f" {seeds[0]}..{seeds[-1]}" if seeds else "")
    + "; differences: mean and 95% Student-t interval of the per-seed difference)",
    "",
    "| pair | measure | bcjax auto | rebasis | auto - rebasis | "
    "rebasis by auto's rule | auto - that |",
    "|---|---|---|---|---|---|---|",
  ]
  names = {"self_recall": f"self-retrieval@{K}", "neighbour_overlap": f"overlap@{K}"}
  for name, pair in results["pairs"].items():
    for key in MEASURES:
      s = pair["summary"][key]
      other = s.get("rebasis_auto_rule")
      lines.append(
        f"| {name} | {names[key]} | {s['bcjax']['mean']:.4f} | "
        f"{s['rebasis']['mean']:.4f} | {_cell(s['difference'])} | "
        f"{'-' if other is None else format(other['mean'], '.4f')} | "
        f"{'-' if other is None else _cell(s['difference_auto_rule'])} |"
      )
  lines += [
    "",
    "| pair | rows | auto's choices (seeds) | rebasis's choices | "
    "rebasis by auto's rule |",
    "|---|---|---|---|---|",
  ]
  for name, pair in results["pairs"].items():
    seeds_ = pair["seeds"]
    lines.append(
      f"| {name} | {pair['note']} | "
      f"{_counts(_bcjax_choice(s['bcjax']) for s in seeds_)} | "
      f"{_counts(s['rebasis']['method'] for s in seeds_)} | "
      f"{_counts(s['rebasis_auto_rule']['method'] for s in seeds_ if 'rebasis_auto_rule' in s)} |"
    )
  run = results.get("run")
  if run:
    lines += [
      "",
      f"rebasis {run['rebasis_version']}: candidates fitted: "
      f"{', '.join(run['rebasis_candidates'])}; skipped: "
      f"{', '.join(run['rebasis_skipped']) or 'none'} (torch "
      f"{'installed' if run['rebasis_torch'] else 'not installed'}). "
      f"Seconds per split (mean): bcjax auto {run['bcjax_seconds']:.1f} "
      f"(in-process, {run['bcjax_candidates']} candidates), rebasis "
      f"{run['rebasis_seconds']:.1f} (a subprocess, both fits).",
      "",
      f"Command: `{run['command']}`",
    ]
  if results.get("skipped"):
    lines += ["", f"Not run: {results['skipped']}"]
  if results.get("notes"):
    lines += ["", results["notes"].rstrip()]
  return "\n".join(lines) + "\n"


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
  seed_list = list(range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds))
  results = {"k": K, "seed_list": seed_list, "pairs": {}, "skipped": None}
  if FLAGS.only_run and os.path.exists(FLAGS.out + ".json"):
    # Adds the runs' pairs to a finished run of the others (same seeds, K).
    with open(FLAGS.out + ".json") as f:
      results = json.load(f)
    command = results.get("run", {}).get("command", "") + "; " + command
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
    seeds = [
      one_seed(old, new, s, FLAGS.peers_python, FLAGS.peers_path) for s in seed_list
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
