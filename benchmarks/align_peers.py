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

Pairs (:mod:`benchmarks.align_pairs`; ``--pairs`` picks among those made
here): ``rotation`` (synthetic), ``ml100k-svd`` and ``ml100k-svd-32`` (SVDs
of MovieLens-100K), ``digits-pca-isomap`` and ``digits-mlp-kpca``
(scikit-learn's digits embedded by two model families), and
``<dataset>-<strategy>-v0-v4`` per ``--run_workdir`` (two versions of a
bcjax run). Each pair's closed-form R^2 (least squares, both directions)
is recorded beside it.

For each pair and split seed ``s``: the ids are split as
``experiments.align`` splits them (20% test); bcjax fits
``align.fit(old[train], new[train], seed=s)`` (``family="auto"``, choosing
family, hyper-parameters, centring and normalisation by 5-fold validation
over the train ids; what its first fold alone chooses, auto with
``folds=1``, is measured too). Each peer runs in a subprocess
(:mod:`benchmarks.rebasis_worker`, :mod:`benchmarks.vectormigrate_worker`),
fits its candidates on auto's first fold's fit rows and refits them on all
train rows, as auto refits its choice; each candidate is scored on that
fold's validation rows (searched among its validation index).

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
overlap@10. The tables (:mod:`benchmarks.align_peers_report`) give each
side's mean over seeds, the mean and 95% Student-t interval of the per-seed
difference (bcjax - peer) with Holm's correction over pairs x measures, the
gap to the best rebasis candidate chosen in hindsight, and how stable
auto's choice is. Writes
``benchmarks/results/align_peers.{json,md}`` (``--notes``'s text at the end).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time

import numpy as np
from absl import app, flags

from bcjax import align
from bcjax.align.protocol import split_ids
from bcjax.storage.atomic_files import atomic_open, write_json
from benchmarks import align_vectormigrate as vm
from benchmarks.align_pairs import (
  digits_pairs,
  ml100k_pair,
  r_squared,
  rotation_pair,
  run_pair,
)
from benchmarks.align_peers_report import MEASURES, seed_line, summarize, to_markdown

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
  flags.DEFINE_list(
    "pairs", list(PAIRS), "The pairs made here to run (with --reuse, others stay)."
  )
  flags.DEFINE_list(
    "rerun",
    [],
    "With --reuse: pairs whose peers are run anew (their rows changed, e.g. "
    "a run retrained).",
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
PAIRS = (
  "rotation",
  "ml100k-svd",
  "ml100k-svd-32",
  "digits-pca-isomap",
  "digits-mlp-kpca",
)
TOLERANCE = 0.005  # rebasis.core.selection.select_best's tie band


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

  ``bcjax`` is auto as it is (k-fold validation over the train ids);
  ``bcjax_one_split`` is the choice its first fold alone makes, which is
  auto with ``folds=1``, the rule before folds, refitted on all train ids;
  ``bcjax_folds`` what each fold alone chose. The peers are given auto's
  first fold: its fit rows to fit on, its validation rows to pick on.

  ``previous``: this seed's entry of an earlier run on the same pair; its
  peers' sides are kept (the split and the rows each peer is given depend on
  the seed alone) and only the missing ones are computed. Auto is fitted
  again, since its rows say what the peers are given; ``reused`` records
  whether its test measures came out as before (an entry from before folds
  holds the one-split auto as ``bcjax``).
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

  def described(c) -> dict:
    return {
      "family": c.family,
      "hparams": str(c.hparams),
      "center": c.center,
      "normalize": c.normalize,
    }

  ours = measure(bridge.apply(new[test]))
  first = sel.candidates[sel.fold_chosen[0]]
  if sel.fold_chosen[0] == sel.chosen:
    one_split = ours
  else:
    alone = align.fit(
      old=old_train,
      new=new_train,
      family=first.family,
      hparams=first.hparams,
      center=first.center,
      normalize=first.normalize,
      seed=seed,
    )
    one_split = measure(alone.apply(new[test]))
  out = {
    "seed": seed,
    "rows": {
      "fit": len(sel.fit_rows),
      "validation": len(sel.validation_rows),
      "test": len(test),
    },
    "bcjax": {
      **described(sel.choice),
      "validation": sel.choice.score,
      "candidates": len(sel.candidates),
      "folds": len(sel.folds),
      "seconds": bcjax_seconds,
      **ours,
    },
    "bcjax_one_split": {**described(first), **one_split},
    "bcjax_folds": {
      "chosen": [_name(sel.candidates[i]) for i in sel.fold_chosen],
      "agreement": sel.fold_agreement,
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
    side = "bcjax_one_split" if "bcjax_one_split" not in previous else "bcjax"
    before = {key: previous["bcjax"][key] for key in MEASURES}
    same = before == {key: out[side][key] for key in MEASURES}
    out["reused"] = {
      "sides": sorted({key.split("_")[0] for key in kept}),
      "bcjax_reproduced": same,
      "compared": side,
      **({} if same else {"bcjax_before": before}),
    }
  if "rebasis" not in kept:
    kept.update(
      rebasis_side(old_train, new_train, new[test], sel, measure, python, path)
    )
  if "vectormigrate" not in kept:
    kept.update(vm.side(old, new, train, test, sel, seed, python, measure, K, path))
  return {**out, **kept}


def _name(c) -> str:
  """A candidate as the tables name it: ``family{hparams}+centre+L2``."""
  marks = ("+centre" if c.center else "") + ("+L2" if c.normalize else "")
  return f"{c.family}{c.hparams}{marks}"


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
  # Every rebasis candidate on auto's first fold's validation queries and index.
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


def built_in_pairs(names, data_dir) -> dict:
  """The pairs ``--pairs`` names that this module makes itself."""
  made = {}
  if "rotation" in names:
    made["rotation"] = rotation_pair()
  if "ml100k-svd" in names:
    made["ml100k-svd"] = ml100k_pair(data_dir)
  if "ml100k-svd-32" in names:
    # Equal widths: a real pair vectormigrate's adapters accept.
    made["ml100k-svd-32"] = ml100k_pair(data_dir, new_rank=32)
  if any(n.startswith("digits-") for n in names):
    made.update({n: p for n, p in digits_pairs().items() if n in names})
  unknown = sorted(set(names) - set(made))
  if unknown:
    raise app.UsageError(f"--pairs: no pair {unknown[0]!r}; see {PAIRS}")
  return made


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
  pairs = {} if FLAGS.only_run else built_in_pairs(FLAGS.pairs, FLAGS.data_dir)
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
    # The pairs not run now stay as they were (each says what made it).
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
  has_run = any(re.search(r"-v\d+-v\d+$", n) for n in [*results["pairs"], *pairs])
  results["skipped"] = None if has_run else "a bcjax run's versions (no --run_workdir)"
  for name, (old, new, note) in pairs.items():
    fresh = {"note": note, "seeds": []}
    kept = fresh if name in FLAGS.rerun else earlier.get(name, fresh)
    if kept["note"] != note:
      raise ValueError(f"--reuse: {name} was made otherwise: {kept['note']}")
    kept = {s["seed"]: s for s in kept["seeds"]}
    seeds = []
    for s in seed_list:
      seeds.append(
        one_seed(old, new, s, FLAGS.peers_python, FLAGS.peers_path, kept.get(s))
      )
      print(f"{name} seed {s}: {seed_line(seeds[-1])}", flush=True)
    results["pairs"][name] = {
      "note": note,
      "r_squared": {
        "new_to_old": r_squared(new, old),
        "old_to_new": r_squared(old, new),
      },
      "command": command.rsplit("; ", 1)[-1],
      "seeds": seeds,
      "summary": summarize(seeds),
    }
    # Written after every pair: a run stopped later keeps what it finished.
    results["environment"] = {"python": sys.version.split()[0]}
    results["run"] = _run_summary(results, command)
    _write(results, quiet=True)
  _write(results)


def _write(results: dict, quiet: bool = False) -> None:
  """``--out``'s .json and .md, with ``--notes``'s text (printed unless quiet)."""
  if FLAGS.notes:
    with open(FLAGS.notes) as f:
      results["notes"] = f.read()
  write_json(FLAGS.out + ".json", results)
  with atomic_open(FLAGS.out + ".md") as f:
    f.write(to_markdown(results))
  if not quiet:
    print(to_markdown(results))


if __name__ == "__main__":
  define_flags()
  app.run(main)
