r"""Bring your own embeddings: fit a bridge new -> old and measure it on test rows.

Usage::

  python -m experiments.align --workdir=/tmp/align --old=old.npy --new=new.npy \
      [--labels=labels.csv] [--family=auto] [--center] [--normalize] [--seed=0]

``old.npy`` ``(N, d_old)`` and ``new.npy`` ``(N, d_new)`` are float arrays
matched by row: row ``i`` of both is item ``i`` (its id). Ids are split
(seeded) into a test part (``--test_fraction``) and the rest, which
:func:`bcjax.align.fit` receives alone; with ``--family=auto`` it splits its
own validation part from those rows (the fit / validation / test sizes are
all reported). The test rows are the queries of every measure
(:func:`bcjax.align.measures.evaluate`), the index being every row's old
vector. ``labels.csv`` has a header with a ``label`` column and optionally an
``id`` column (row ids; else line order), one label for every row; with it,
class retrieval and retention are measured too.

Writes ``WORKDIR/results.json`` (flags, split sizes, the bridge, auto's
candidates, the measures), ``WORKDIR/table.md``, ``WORKDIR/bridge.npz``
(:func:`bcjax.align.load` reads it) and, for an affine bridge,
``WORKDIR/bridge_affine.npz`` (matrix, bias and means for a vector store).
Bad input is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time

import numpy as np
from absl import app, flags, logging

from bcjax import align
from bcjax.atomic_files import atomic_open, write_json
from bcjax.errors import InputError, exit_on_user_error

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags, defined when it runs, not when tests import it.

  Other binaries of ``experiments`` define ``--workdir`` too; defined at
  import, two of them in one process (a test session) would collide.
  """
  flags.DEFINE_string("workdir", None, "Folder for the outputs.")
  flags.DEFINE_string("old", None, "(N, d_old) .npy: old-version embeddings.")
  flags.DEFINE_string(
    "new", None, "(N, d_new) .npy: new-version embeddings, same rows."
  )
  flags.DEFINE_string("labels", None, "CSV with a label per row (header: [id,]label).")
  flags.DEFINE_string("family", "auto", "Bridge family, or auto.")
  flags.DEFINE_bool("center", False, "Centre both sides (an affine bridge).")
  flags.DEFINE_bool(
    "normalize", False, "L2-normalise rows before fitting and applying."
  )
  flags.DEFINE_integer("seed", 0, "Seeds the test split, auto's split and SGD.")
  flags.DEFINE_float("test_fraction", 0.2, "Share of the ids held out as test rows.")
  flags.DEFINE_integer(
    "k", 10, "K of Recall@K, neighbour overlap@K, class retrieval@K."
  )
  flags.DEFINE_integer("max_queries", 10_000, "Test queries sampled at most.")
  flags.mark_flags_as_required(["workdir", "old", "new"])


MEASURES = (
  ("mse", "MSE (bridged vs old)"),
  ("mean_cosine", "mean cosine (bridged vs old)"),
  ("self_recall", "self-retrieval Recall@{k}"),
  ("neighbour_overlap", "neighbour overlap@{k}"),
  ("class_retrieval", "class retrieval@{k}, bridged vs old index"),
  ("class_retrieval_old", "class retrieval@{k}, old vs old index"),
  ("class_retrieval_reindexed", "class retrieval@{k}, re-indexed (new vs new)"),
  ("retention", "retention (bridged / re-indexed)"),
)


def load_array(flag: str, path: str) -> np.ndarray:
  """The ``.npy`` array at ``path``, or one error line naming the flag."""
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise InputError(f"--{flag}={path}: not a readable .npy array ({e})") from e


def load_labels(path: str, n: int) -> np.ndarray:
  """``(n,)`` labels (strings) from a CSV with a ``label`` and maybe an ``id`` column."""
  try:
    with open(path, newline="") as f:
      lines = list(csv.reader(f))
  except OSError as e:
    raise InputError(f"--labels={path}: cannot be read ({e})") from e
  if not lines or "label" not in lines[0]:
    raise InputError(f"{path} line 1: expected a header with a 'label' column")
  header = lines[0]
  at_label = header.index("label")
  at_id = header.index("id") if "id" in header else None
  labels = np.full(n, None, object)
  for number, line in enumerate(lines[1:], start=2):
    if len(line) != len(header):
      raise InputError(
        f"{path} line {number}: {len(line)} fields, header has {len(header)}"
      )
    row = number - 2
    if at_id is not None:
      try:
        row = int(line[at_id])
      except ValueError as e:
        raise InputError(
          f"{path} line {number}: id {line[at_id]!r} is not an integer"
        ) from e
    if not 0 <= row < n:
      raise InputError(f"{path} line {number}: id {row} is not a row 0..{n - 1}")
    labels[row] = line[at_label]
  missing = np.flatnonzero(labels == None)  # noqa: E711 (elementwise)
  if len(missing):
    raise InputError(
      f"{path} labels {n - len(missing)} of {n} rows; every row needs one "
      f"(first missing ids: {missing[:5].tolist()})"
    )
  return labels.astype(str)


def split_ids(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``(train, test)`` sorted row ids, seeded."""
  if not 0.0 < test_fraction < 1.0:
    raise InputError(f"--test_fraction must be in (0, 1), got {test_fraction}")
  held = min(max(1, round(test_fraction * n)), n - 1)
  order = np.random.default_rng([seed, 25]).permutation(n)
  return np.sort(order[held:]), np.sort(order[:held])


def run(
  workdir: str,
  old_path: str,
  new_path: str,
  labels_path: str | None = None,
  *,
  family: str = "auto",
  center: bool = False,
  normalize: bool = False,
  seed: int = 0,
  test_fraction: float = 0.2,
  k: int = 10,
  max_queries: int = 10_000,
) -> dict:
  """Splits, fits on the train ids, measures on the test ids, writes outputs."""
  old = align.check_rows("old", load_array("old", old_path))
  new = align.check_rows("new", load_array("new", new_path))
  if len(old) != len(new):
    raise InputError(
      f"--old has {len(old)} rows but --new has {len(new)}; rows must match one to one"
    )
  labels = None if labels_path is None else load_labels(labels_path, len(old))
  train, test = split_ids(len(old), test_fraction, seed)
  tick = time.perf_counter()
  bridge = align.fit(
    old[train], new[train], family=family, center=center, normalize=normalize, seed=seed
  )
  fit_seconds = time.perf_counter() - tick
  logging.info("fitted a %s bridge in %.1fs", bridge.family, fit_seconds)
  measures = align.measures.evaluate(
    old,
    new,
    bridge.apply(new[test]),
    test,
    labels=labels,
    k=k,
    max_queries=max_queries,
    seed=seed,
  )
  os.makedirs(workdir, exist_ok=True)
  bridge.save(os.path.join(workdir, "bridge.npz"))
  if bridge.affine:
    bridge.export_npz(os.path.join(workdir, "bridge_affine.npz"))
  selection = bridge.selection.summary() if bridge.selection else None
  fit_rows = len(train) if selection is None else selection["fit_rows"]
  results = {
    "old": os.path.abspath(old_path),
    "new": os.path.abspath(new_path),
    "labels": None if labels_path is None else os.path.abspath(labels_path),
    "seed": seed,
    "rows": {
      "fit": fit_rows,
      "validation": len(train) - fit_rows,
      "test": len(test),
    },
    "bridge": {
      "family": bridge.family,
      "hparams": dataclasses.asdict(bridge.hparams),
      "center": bridge.center,
      "normalize": bridge.normalize,
      "d_new": bridge.d_new,
      "d_old": bridge.d_old,
      "num_params": bridge.num_params,
      "fit_seconds": fit_seconds,
    },
    "selection": selection,
    "measures": measures,
  }
  write_json(os.path.join(workdir, "results.json"), results)
  with atomic_open(os.path.join(workdir, "table.md")) as f:
    f.write(to_markdown(results))
  return results


def to_markdown(results: dict) -> str:
  """The measures on the test rows, and auto's candidates, as Markdown."""
  b, rows, m = results["bridge"], results["rows"], results["measures"]
  lines = [
    f"### Bridge {b['d_new']} -> {b['d_old']} dims: {b['family']} "
    f"{b['hparams'] or ''}".rstrip(),
    "",
    f"rows: {rows['fit']} fit, {rows['validation']} validation, {rows['test']} "
    f"test (queries; the index is all {m['index']} old vectors); centred: "
    f"{b['center']}, normalised: {b['normalize']}",
    "",
    "| measure (test rows) | value |",
    "|---|---|",
  ]
  for key, name in MEASURES:
    if key in m:
      lines.append(f"| {name.format(k=m['k'])} | {m[key]:.4f} |")
  if results["selection"]:
    s = results["selection"]
    lines += [
      "",
      f"auto: validation Recall@{s['k']} on {s['validation_rows']} rows; "
      f"ties within one standard error ({s['standard_error']:.4f}) go to "
      "fewer parameters",
      "",
      "| family | hparams | parameters | validation score | chosen |",
      "|---|---|---|---|---|",
    ]
    for i, c in enumerate(s["candidates"]):
      chosen = "yes" if i == s["chosen"] else ""
      lines.append(
        f"| {c['family']} | {c['hparams']} | {c['num_params']} | "
        f"{c['score']:.4f} | {chosen} |"
      )
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  with exit_on_user_error():
    results = run(
      FLAGS.workdir,
      FLAGS.old,
      FLAGS.new,
      FLAGS.labels,
      family=FLAGS.family,
      center=FLAGS.center,
      normalize=FLAGS.normalize,
      seed=FLAGS.seed,
      test_fraction=FLAGS.test_fraction,
      k=FLAGS.k,
      max_queries=FLAGS.max_queries,
    )
  print(to_markdown(results))


if __name__ == "__main__":
  define_flags()
  app.run(main)
