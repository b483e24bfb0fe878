r"""Bring your own embeddings: fit bridges new -> old, measure them, store the chain.

Usage::

  python -m experiments.align --workdir=/tmp/align --old=old.npy --new=new.npy \
      [--labels=labels.csv] [--family=auto] [--[no]center] [--[no]normalize] [--seed=0]
  python -m experiments.align --workdir=/tmp/align --versions=v0.npz,v1.npz,v2.npz
  python -m experiments.align migrate --db=DIR --table=items --new=new.csv \
      [--order=bridge_residual] [--batch_size=1000] [--max_batches=0] [--rollback]

Each version is a file of float rows, oldest first (``--old``, ``--new`` is
two versions): an ``.npy`` ``(N, d)`` whose row ``i`` is id ``i``, or an
``.npz`` with ``embeddings`` ``(N, d)`` and ``ids`` ``(N,)`` (distinct
integers or strings; what ``experiments.export`` writes). Bridge ``k`` maps
version ``k`` to ``k - 1``, fitted on the ids both have (``.npy`` rows match
by row). For each bridge the ids are split (seeded) into a test part
(``--test_fraction``) and the rest, which :func:`bcjax.align.fit` receives
alone; with ``--family=auto`` it validates by 5 folds of those rows alone
(the first fold's fit / validation sizes and the test size are reported) and, unless
``--center`` / ``--nocenter`` and ``--normalize`` / ``--nonormalize`` fix
them, chooses there whether to centre and to L2-normalise too. The test rows
are the queries of every measure (:func:`bcjax.align.measures.evaluate`), the
index being every row's old vector. ``labels.csv`` has a header with a
``label`` column and optionally an ``id`` column holding the files' ids (row
numbers of an ``.npy``; without the column, line ``i`` labels the oldest
version's row ``i``): every id a bridge matches needs a label, and a label's
id must be in some version's file. With labels, class retrieval and retention
are measured too, and
blending (:mod:`bcjax.align.blend`): the test rows' old vectors moved toward
their bridged new ones, ``slerp(old, bridged, alpha)``, with ``alpha``
chosen by class retrieval on validation rows split from the training rows
(without labels there is no blending row, and the table says so).

With labels, two more results (:mod:`bcjax.align.protocol`'s
``labelled_results``): consumers (a logistic regression and a small MLP,
:mod:`bcjax.align.consumers`) trained on the training rows' old vectors and
scored on the test rows' bridged ones, with their negative-flip rate (off
with ``--noconsumers``); and the answer bridge / re-index / no upgrade
needed (:mod:`bcjax.align.decision`) from ``--min_gain`` (re-indexed over
old class retrieval) and ``--min_retention`` (bridged over re-indexed),
judged by their 95% intervals over ``--decision_splits`` test splits (seeds
``seed, seed + 1, ...``, the served family refitted on each). Without
labels the table says in one line that these need labels. Every bridge's
fit time and serving time per million rows are reported.

With three or more versions an id is a test id of every bridge or of none
(:func:`bcjax.align.protocol.step_splits`), and the newest version's test
rows are also served through the whole chain at each older version and
measured there (``chains``).

With ``--backfill`` (the default) a forward map ``F: old -> new`` is fitted
on the training rows too (the same family flags) and measured on the test
rows' old vectors, and the backfilling curves of :mod:`bcjax.align.backfill`
are measured: new test queries against an index moving from ``F(old)`` to
new vectors row by row, in residual orders and a random one.

Writes ``WORKDIR/results.json`` (flags, split sizes, the newest bridge,
auto's candidates, the measures, ``blend``, ``forward``, ``backfill``; with
three or more versions every bridge's under ``steps`` and the chains' under
``chains``), ``WORKDIR/table.md``,
``WORKDIR/backfill_<k>.png`` (bridge ``k``'s backfilling curves),
``WORKDIR/bridge.npz`` (the newest bridge; :func:`bcjax.align.load` reads it),
for an affine bridge ``WORKDIR/bridge_affine.npz`` (matrix, bias and means for
a vector store), and ``WORKDIR/store``: the chain, the newest rows with their
ids and every older version's rows (:mod:`bcjax.align.store`), which
``bcjax.registry.open(WORKDIR)`` serves at any version, by id or by row, and
blended (``blend=True``: the newest bridge's ``alpha``, at version ``K - 1``).
Bad input is one ``error:`` line and exit status 2.

``migrate`` moves the LanceDB table ``--table`` of ``--db`` (columns ``id``
and ``vector``, old-model vectors) to the new vectors of ``--new``
(:func:`bcjax.align.lancedb_table.migrate`): it tags the table's version
(``--tag``), rewrites it with ``old_vector``, ``vector`` (the forward map of
``--family`` applied to the old vectors), ``migrated`` and ``rank`` (the
``--order``), then puts in the new vectors ``--batch_size`` rows per commit,
printing each commit and the self-retrieval@``--k`` of ``--measure_queries``
ids at each tenth. A rerun goes on where a stopped or killed run left off;
``--rollback`` restores the tagged version. No ``--workdir``: the table is
the state.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from bcjax import align, environment, extensions
from bcjax.align import decision, families, lancedb_table, report
from bcjax.align.inputs import TABLE_SUFFIXES, labels_of, load_labels, load_version
from bcjax.align.protocol import (
  chain_results,
  fit_step,
  match,
  matched_rows_needed,
  step_splits,
)
from bcjax.components import hparams as hparams_lib
from bcjax.errors import InputError, exit_on_user_error
from bcjax.storage.atomic_files import atomic_open, write_json

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags, defined when it runs, not when tests import it.

  Other binaries of ``experiments`` define ``--workdir`` too, and benchmarks
  import this module beside flags of their own: defined at import, two of
  them in one process (a test session) would collide.
  """
  flags.DEFINE_string("workdir", None, "Folder for the outputs.")
  flags.DEFINE_string(
    "old", None, "Old-version embeddings: .npy, .npz, .csv or .parquet."
  )
  flags.DEFINE_string(
    "new", None, "New-version embeddings: .npy, .npz, .csv or .parquet."
  )
  flags.DEFINE_string("id_column", "id", "The id column of a .csv or .parquet version.")
  flags.DEFINE_list(
    "columns",
    [],
    "The vector's columns of a .csv or .parquet version (empty: every column "
    "but the id, or a Parquet file's one list column).",
  )
  flags.DEFINE_list(
    "versions", None, "Files of versions 0..K, oldest first (not with --old/--new)."
  )
  flags.DEFINE_string(
    "kind", "item", "What the rows are (item or user), as the store serves them."
  )
  flags.DEFINE_string(
    "labels", None, "CSV of a label per id (header: [id,]label; ids as the files')."
  )
  flags.DEFINE_string("family", "auto", "Bridge family, or auto.")
  flags.DEFINE_string(
    "imports",
    "",
    "Comma-separated modules (or module:function) that register bridge "
    "families of your own, loaded before the flags are read.",
  )
  # Every registered family's hyper-parameters, generated from its dataclass
  # as compare's component sections are: --hparams.reducedrank.rank=8.
  load_imports(sys.argv)
  sections = ml_collections.ConfigDict(
    {
      name: hparams_lib.section(family.hparams)
      for name, family in families.FAMILIES.items()
      if dataclasses.fields(family.hparams)
    }
  )
  listed = ", ".join(
    f"{name}.{field}={value!r}"
    for name, section in sections.items()
    for field, value in section.items()
  )
  config_flags.DEFINE_config_dict(
    "hparams",
    sections,
    "Hyper-parameters of --family (not of auto), --hparams.<family>.<field>="
    f"value: {listed}.",
  )
  flags.DEFINE_bool(
    "center",
    None,
    "Centre both sides (an affine bridge); unset: auto tries both (one "
    "family: not centred).",
  )
  flags.DEFINE_bool(
    "normalize",
    None,
    "L2-normalise rows before fitting and applying; unset: as --center.",
  )
  flags.DEFINE_integer("seed", 0, "Seeds the test split, auto's folds and SGD.")
  flags.DEFINE_float("test_fraction", 0.2, "Share of the ids held out as test rows.")
  flags.DEFINE_integer(
    "k", 10, "K of Recall@K, neighbour overlap@K, class retrieval@K."
  )
  flags.DEFINE_integer("max_queries", 10_000, "Test queries sampled at most.")
  flags.DEFINE_bool(
    "backfill", True, "Fit the forward map (old -> new) and measure backfilling."
  )
  flags.DEFINE_bool(
    "consumers",
    True,
    "With labels: train consumers on old vectors, score them on bridged ones.",
  )
  flags.DEFINE_integer(
    "decision_splits", 5, "With labels: test splits the bridge / re-index answer uses."
  )
  flags.DEFINE_float(
    "min_gain", 1.02, "The least re-indexed / old class retrieval worth upgrading for."
  )
  flags.DEFINE_float(
    "min_retention", 0.95, "The least bridged / re-indexed class retrieval to bridge."
  )
  # python -m experiments.align migrate: a LanceDB table moved to --new
  # (bcjax.align.lancedb_table); --new, --id_column, --columns, --family,
  # --hparams, --center, --normalize, --seed and --k serve it too.
  flags.DEFINE_string("db", None, "migrate: the LanceDB folder.")
  flags.DEFINE_string(
    "table", None, "migrate: the table of old-model vectors (columns id, vector)."
  )
  flags.DEFINE_enum(
    "order", "bridge_residual", lancedb_table.ORDERS, "migrate: the backfilling order."
  )
  flags.DEFINE_integer("batch_size", 1000, "migrate: rows per merge_insert commit.")
  flags.DEFINE_integer(
    "max_batches", 0, "migrate: stop after this many commits (0: all); rerun to go on."
  )
  flags.DEFINE_string(
    "bridge",
    None,
    "migrate: a saved bridge (WORKDIR/bridge.npz) for the bridge_residual order; "
    "unset: one fitted with --family.",
  )
  flags.DEFINE_integer(
    "measure_queries",
    1000,
    "migrate: ids whose self-retrieval@k is measured at each tenth (0: none).",
  )
  flags.DEFINE_string(
    "tag", lancedb_table.TAG, "migrate: the tag of the version before the migration."
  )
  flags.DEFINE_bool("rollback", False, "migrate: restore the tagged version instead.")
  # --workdir is needed but by migrate, wherever its word stands among the
  # flags (main checks a value given as "migrate").
  if "migrate" not in sys.argv[1:]:
    flags.mark_flags_as_required(["workdir"])


def run(
  workdir: str,
  old_path: str,
  new_path: str,
  labels_path: str | None = None,
  **kwargs,
) -> dict:
  """Two versions: :func:`run_versions` of ``[old_path, new_path]``."""
  return run_versions(
    workdir, [old_path, new_path], labels_path, names=("old", "new"), **kwargs
  )


def run_versions(
  workdir: str,
  paths: list[str],
  labels_path: str | None = None,
  *,
  family: str = "auto",
  center: bool | None = None,
  normalize: bool | None = None,
  seed: int = 0,
  test_fraction: float = 0.2,
  k: int = 10,
  max_queries: int = 10_000,
  backfill: bool = True,
  consumers: bool = True,
  decision_splits: int = 5,
  thresholds: decision.Thresholds | None = None,
  kind: str = "item",
  names: tuple[str, ...] | None = None,
  hparams=None,
  id_column: str = "id",
  columns: tuple[str, ...] = (),
) -> dict:
  """Fits and measures bridge ``k`` for each version ``k >= 1``, writes outputs.

  Args:
    workdir: the folder of the outputs.
    paths: the files of versions ``0..K``, oldest first.
    labels_path: a labels CSV (see the module docstring), or None.
    family, center, normalize, seed: as :func:`bcjax.align.fit` takes them.
    test_fraction: the share of each bridge's ids held out as test rows.
    k: K of the measures.
    max_queries: test queries sampled at most.
    backfill: fit the forward map and measure backfilling.
    consumers: with labels, train consumers on old vectors and score them on
      bridged ones (:mod:`bcjax.align.consumers`).
    decision_splits: with labels, the test splits the bridge / re-index /
      no-upgrade answer is judged over (:mod:`bcjax.align.decision`).
    thresholds: that answer's thresholds.
    kind: ``"item"`` or ``"user"``: what the store serves.
    names: the flags that named the files, for messages (default
      ``versions[k]``).
    hparams: ``family``'s hyper-parameters (None: its defaults).
    id_column, columns: a table version's id column and vector columns
      (:func:`bcjax.align.inputs.load_version`).

  Returns:
    The results (the newest bridge's at the top level; every bridge's under
    ``steps`` with three or more versions).
  """
  started = environment.now()
  if len(paths) < 2:
    raise InputError(f"need two or more versions (oldest first), got {len(paths)}")
  if kind not in ("item", "user"):
    raise InputError(f"--kind must be item or user, got {kind!r}")
  names = names or [f"versions[{v}]" for v in range(len(paths))]
  loaded = [
    load_version(n, p, id_column=id_column, columns=columns)
    for n, p in zip(names, paths, strict=True)
  ]
  for v in range(1, len(paths)):
    # Rows of .npy files are their ids: rows of two lengths are a mistake
    # more often than two id sets.
    a, b = loaded[v - 1][1], loaded[v][1]
    keyed = any(p.endswith((".npz", *TABLE_SUFFIXES)) for p in paths[v - 1 : v + 1])
    if not keyed and len(a) != len(b):
      raise InputError(
        f"--{names[v - 1]} has {len(a)} rows but --{names[v]} has {len(b)}; rows "
        "must match one to one"
      )
  labels = None
  if labels_path is not None:
    labels = load_labels(labels_path, [ids for ids, _ in loaded])
  matched = []
  for version in range(1, len(paths)):
    (old_ids, _), (new_ids, _) = loaded[version - 1], loaded[version]
    old_rows, new_rows = match(old_ids, new_ids)
    needed, why = matched_rows_needed(family, test_fraction, k)
    if len(new_rows) < needed:
      raise InputError(
        f"--{names[version - 1]} and --{names[version]} match {len(new_rows)} ids; "
        f"a bridge here needs at least {needed} matched rows ({why})"
      )
    matched.append((old_rows, new_rows))
  splits = step_splits(
    [loaded[v][0][matched[v - 1][1]] for v in range(1, len(paths))],
    test_fraction,
    seed,
  )
  steps, bridges, indexes = [], [], []
  for version in range(1, len(paths)):
    (old_ids, old_all), (new_ids, new_all) = loaded[version - 1], loaded[version]
    old_rows, new_rows = matched[version - 1]
    old, new = old_all[old_rows], new_all[new_rows]
    ids = new_ids[new_rows]
    step_labels = None if labels is None else labels_of(labels, ids, labels_path)
    bridge, step = fit_step(
      old,
      new,
      step_labels,
      split=splits[version - 1],
      family=family,
      center=center,
      normalize=normalize,
      seed=seed,
      test_fraction=test_fraction,
      k=k,
      max_queries=max_queries,
      backfill=backfill,
      consumers=consumers,
      decision_splits=decision_splits,
      thresholds=thresholds,
      hparams=hparams,
    )
    step = {
      "old": os.path.abspath(paths[version - 1]),
      "new": os.path.abspath(paths[version]),
      "version": version,
      "ids": {
        "matched": len(new_rows),
        "old_only": len(old_ids) - len(old_rows),
        "new_only": len(new_ids) - len(new_rows),
      },
      **step,
    }
    steps.append(step)
    bridges.append(bridge)
    indexes.append((ids, old, step_labels))
  chains = []
  if len(bridges) > 1:
    test_ids = indexes[-1][0][splits[-1][1]]
    chains = chain_results(
      align.Chain(bridges),
      loaded[-1],
      indexes,
      test_ids,
      k=k,
      max_queries=max_queries,
      seed=seed,
    )
  os.makedirs(workdir, exist_ok=True)
  bridge = bridges[-1]
  bridge.save(os.path.join(workdir, "bridge.npz"))
  if bridge.affine:
    bridge.export_npz(os.path.join(workdir, "bridge_affine.npz"))
  chosen = steps[-1]["blend"]  # the newest bridge's alpha is version K - 1's
  align.store.write(
    os.path.join(workdir, align.store.STORE_DIR),
    align.Chain(bridges),
    loaded[-1][0],
    loaded[-1][1],
    kind=kind,
    sources=paths,
    stored={v: loaded[v] for v in range(len(paths) - 1)},
    blend_alphas={len(paths) - 2: chosen["alpha"]} if "alpha" in chosen else {},
  )
  results = {
    **steps[-1],
    "environment": environment.record(started),
    "versions": [os.path.abspath(p) for p in paths],
    "labels": None if labels_path is None else os.path.abspath(labels_path),
    "seed": seed,
  }
  if len(steps) > 1:
    results["steps"] = steps
    results["chains"] = chains
  report.plot_steps(workdir, steps)
  write_json(os.path.join(workdir, "results.json"), results)
  with atomic_open(os.path.join(workdir, "table.md")) as f:
    f.write(report.to_markdown(results))
  return results


def load_imports(argv: list[str]) -> None:
  """Loads ``--imports``' modules (and the entry points) before flags exist.

  A family of the user's own must be registered before ``--hparams`` is
  defined, for its section to be there to set.
  """
  targets = [a.split("=", 1)[1] for a in argv if a.startswith("--imports=")]
  targets += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--imports"]
  with exit_on_user_error():
    extensions.load(",".join(targets))


def hparams_of(family: str, sections: ml_collections.ConfigDict):
  """``family``'s hyper-parameters from ``--hparams`` (None: all at defaults).

  Raises:
    InputError: for ``auto`` with a hyper-parameter set (it tries each
      family's own grid), or a value the family's dataclass refuses.
  """
  if family == "auto":
    changed = [
      f"--hparams.{name}.{field}"
      for name, section in sections.items()
      for field, value in section.items()
      if value != hparams_lib.section(families.FAMILIES[name].hparams)[field]
    ]
    if changed:
      raise InputError(
        f"{changed[0]} sets a hyper-parameter, but --family=auto tries each "
        "family's own grid; name the family (--family=...)"
      )
    return None
  cls = families.get_family(family).hparams
  return hparams_lib.from_section(cls, sections.get(family), f"--hparams.{family}")


def migrate_main() -> None:
  """``migrate``: --table of --db moved to the vectors of --new, or rolled back."""
  with exit_on_user_error():
    if not FLAGS.db or not FLAGS.table:
      raise InputError("migrate needs --db (a LanceDB folder) and --table")
    if FLAGS.old or FLAGS.versions:
      raise InputError(
        "migrate reads the old vectors from --table, not --old/--versions"
      )
    if FLAGS.rollback:
      version = lancedb_table.rollback(FLAGS.db, FLAGS.table, FLAGS.tag)
      print(f"rolled {FLAGS.table!r} back to {FLAGS.tag!r}: now version {version}")
      return
    if not FLAGS.new:
      raise InputError("migrate needs --new, the new model's vectors")
    for name in ("max_batches", "measure_queries"):
      if getattr(FLAGS, name) < 0:
        raise InputError(f"--{name} must be 0 or more, got {getattr(FLAGS, name)}")
    done = lancedb_table.migrate(
      FLAGS.db,
      FLAGS.table,
      FLAGS.new,
      order=FLAGS.order,
      batch_size=FLAGS.batch_size,
      max_batches=FLAGS.max_batches or None,
      bridge=align.load(FLAGS.bridge) if FLAGS.bridge else None,
      tag=FLAGS.tag,
      seed=FLAGS.seed,
      id_column=FLAGS.id_column,
      columns=tuple(FLAGS.columns),
      k=FLAGS.k,
      measure_queries=FLAGS.measure_queries,
      log=lambda line: print(line, flush=True),  # a killed run has said its last
      family=FLAGS.family,
      center=FLAGS.center,
      normalize=FLAGS.normalize,
      hparams=hparams_of(FLAGS.family, FLAGS.hparams),
    )
  print(
    f"{done['migrated']}/{done['planned']} rows migrated ({done['batches']} "
    f"batches this run), table version {done['version']}"
  )


def main(argv):
  if argv[1:] == ["migrate"]:
    logging.set_verbosity(logging.WARNING)
    environment.set_up_process()
    return migrate_main()
  if len(argv) > 1:
    raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
  if FLAGS.workdir is None:
    raise app.UsageError("--workdir is needed (migrate is the only mode without)")
  logging.set_verbosity(logging.INFO)
  environment.set_up_process()
  with exit_on_user_error():
    given = [FLAGS.old, FLAGS.new]
    if FLAGS.versions and any(given):
      raise InputError("give --versions or --old and --new, not both")
    if not FLAGS.versions and not all(given):
      raise InputError("give --old and --new, or --versions=v0,v1,... (oldest first)")
    results = run_versions(
      FLAGS.workdir,
      FLAGS.versions or given,
      FLAGS.labels,
      kind=FLAGS.kind,
      names=None if FLAGS.versions else ("old", "new"),
      family=FLAGS.family,
      center=FLAGS.center,
      normalize=FLAGS.normalize,
      seed=FLAGS.seed,
      test_fraction=FLAGS.test_fraction,
      k=FLAGS.k,
      max_queries=FLAGS.max_queries,
      backfill=FLAGS.backfill,
      consumers=FLAGS.consumers,
      decision_splits=FLAGS.decision_splits,
      thresholds=decision.Thresholds(FLAGS.min_gain, FLAGS.min_retention),
      id_column=FLAGS.id_column,
      columns=tuple(FLAGS.columns),
      hparams=hparams_of(FLAGS.family, FLAGS.hparams),
    )
  print(report.to_markdown(results))


if __name__ == "__main__":
  define_flags()
  app.run(main)
