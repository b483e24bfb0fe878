r"""One run from parts: ``experiments.compare`` runs of one setting, split by strategy.

A 10-seed run of every strategy on MovieLens-100K takes longer on 2 CPU
cores than one working session, and a workdir's checkpoints do not outlive
it. So the committed runs are made in parts: each part is an
``experiments.compare`` run of some of the strategies (nobc and the
post-hoc strategies that reuse its versions in one, the joint models in
another), on the same data, seeds and config, and commits its
``results.json``. This command merges the parts' per-seed records and
recomputes every seed's table (:func:`bcjax.evaluation.table.comparison_table`)
and the table over seeds from them, as one run of every strategy would.

What makes it one run is checked, not assumed:

* the parts' configs are equal but for the fields no stored number depends
  on (:data:`bcjax.storage.workdir.UNFINGERPRINTED_FIELDS`, such as the
  strategies and the data's folder) and those given by ``--differ`` (a
  sweep's own field, e.g. ``method.joint.align_weight``);
* they have the same seeds, data, most-popular baseline and consumers (each
  task's consumer choice and selection scores);
* every part ran fix-m0 (the unintended reference, free to run), and its
  records are the same in each, bit for bit, timings aside: the same M_0
  and the same consumers scored it; so are those of any strategy taken
  from two parts;
* each part adds a strategy the earlier ones did not give (a part copied
  from a failed run adds none);
* their ``bcjax/`` and ``experiments/configs/`` are the same code: the same
  commit, or commits that ``git diff`` finds equal there, none with
  uncommitted changes.

A part is a folder holding a ``results.json``; ``PATH:NAME,NAME`` takes only
those strategies of it, and ``--strategy`` orders the merged run's. A
tuning run (``config.tuning``, :mod:`bcjax.jobs.weight_tuning`) is a part
too: it gives its ``weight_selection``, not its strategies, and it is
checked to be of the same setting but for ``config.seed``, which must differ
(no tuning seed is reported), and that the report ran every tuned strategy
at its chosen weight or at the config's own, never at another. The
merged run's config is the first part's, with the merged strategies; its
``environment`` is the first part's with every part's under ``parts``.

Usage::

  python -m experiments.merge --out=experiments/results/ml-100k_converged \
      experiments/results/parts/ml-100k_converged/nobc \
      experiments/results/parts/ml-100k_converged/joint

Writes ``results.json``, ``table.md``, ``table.csv`` and the plots into
``--out``. Bad input is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess

from absl import app, flags

from bcjax import environment
from bcjax.errors import InputError, exit_on_user_error
from bcjax.evaluation import seed_table
from bcjax.evaluation.table import UNINTENDED_REFERENCE as REFERENCE
from bcjax.evaluation.table import comparison_table
from bcjax.evaluation.table_records import read_table
from bcjax.jobs import experiment as experiment_lib
from bcjax.jobs import outputs, weight_tuning
from bcjax.storage.workdir import UNFINGERPRINTED_FIELDS
from experiments.provenance import CODE_PATHS

flags.DEFINE_string("out", None, "The merged run's folder.")
flags.DEFINE_list(
  "differ", [], "Config fields (dotted) that may differ between the parts."
)
flags.DEFINE_list(
  "strategy", [], "The merged run's strategies, in this order (default: all)."
)
flags.DEFINE_bool(
  "allow_process_differences",
  False,
  "Merge parts made under other process settings (NPROC, OPENBLAS_NUM_THREADS, "
  "XLA_FLAGS, ...), recording the differences; the results page prints them.",
)
flags.mark_flags_as_required(["out"])
FLAGS = flags.FLAGS


def read_part(spec: str) -> tuple[str, dict, list[str]]:
  """``PATH[:NAME,NAME]`` -> (path, its results, the strategies taken)."""
  path, _, names = spec.partition(":")
  file = os.path.join(path, "results.json")
  if not os.path.exists(file):
    raise InputError(f"part {path!r} has no results.json; expected a run's folder")
  with open(file) as f:
    results = json.load(f)
  try:
    # Parts made by older code are read by their schema's reader.
    experiment_lib.recorded(results)
  except InputError as e:
    raise InputError(f"part {path!r}: {e}") from None
  ran = list(results.get("strategies") or {})
  taken = [n.strip() for n in names.split(",") if n.strip()] or ran
  if missing := [n for n in taken if n not in ran]:
    raise InputError(
      f"part {path!r} did not run {', '.join(missing)}; it ran {', '.join(ran)}"
    )
  if REFERENCE not in ran:
    raise InputError(
      f"part {path!r} did not run {REFERENCE}; every part runs it, so that the "
      "merge can check the parts share M_0 and the consumers"
    )
  return path, results, taken


def seeds_of(results: dict) -> list[dict]:
  """Each embedding seed's ``strategies`` and ``unintended``, seed 0 first."""
  if results.get("per_seed"):
    return results["per_seed"]
  return [{"embedding_seed": 0, **results}]


def _timeless(record):
  """A record without its timings, which differ between identical runs."""
  if isinstance(record, dict):
    return {k: _timeless(v) for k, v in record.items() if "seconds" not in k}
  if isinstance(record, list):
    return [_timeless(v) for v in record]
  return record


def _flat(config: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out |= _flat(value, f"{prefix}{key}.")
    else:
      out[f"{prefix}{key}"] = value
  return out


def _check_same(parts, what: str, read) -> None:
  first_path, first, _ = parts[0]
  for path, results, _ in parts[1:]:
    if read(results) != read(first):
      raise InputError(f"parts {first_path!r} and {path!r} differ in {what}")


def _check_code(parts, root: str) -> None:
  commits = {(r.get("environment") or {}).get("git_commit") for _, r, _ in parts}
  if None in commits:
    raise InputError("a part recorded no git commit; its code cannot be checked")
  if dirty := sorted(c for c in commits if c.endswith("+dirty")):
    raise InputError(
      f"a part was made from a checkout with uncommitted changes ({dirty[0]}); "
      "its code cannot be checked: expected parts made from commits"
    )
  first, *others = sorted(commits)
  for other in others:
    diff = subprocess.run(
      ["git", "diff", "--quiet", first, other, "--", *CODE_PATHS],
      cwd=root,
      capture_output=True,
    )
    if diff.returncode != 0:
      raise InputError(
        f"the parts' code differs: commits {first[:7]} and {other[:7]} differ in "
        f"{' or '.join(CODE_PATHS)} (or are not in this checkout)"
      )


def _setting(results: dict, allowed) -> dict:
  """The run's config, flat, without the fields (or sections) ``allowed``
  to differ."""
  return {
    k: v
    for k, v in _flat(results["config"]).items()
    if not any(k == a or k.startswith(a + ".") for a in allowed)
  }


def check_parts(parts, differ=(), root: str = ".") -> None:
  """Raises InputError unless the parts are pieces of one run (module doc)."""
  allowed = (*UNFINGERPRINTED_FIELDS, *differ)
  _check_same(
    parts,
    "config (beyond the unfingerprinted fields and --differ)",
    lambda r: _setting(r, allowed),
  )
  _check_same(parts, "dataset", lambda r: r.get("dataset"))
  _check_same(parts, "baselines", lambda r: r.get("baselines"))
  _check_same(parts, "embedding seeds", lambda r: len(seeds_of(r)))
  _check_same(
    parts,
    "consumers",
    lambda r: [
      {
        t: {k: v for k, v in spec.items() if k != "per_strategy"}
        for t, spec in (s.get("unintended") or {}).items()
      }
      for s in seeds_of(r)
    ],
  )
  _check_code(parts, root)


def _record(seed: dict, name: str):
  """A strategy's records of one seed, timings aside: versions and scores."""
  scores = {t: spec["per_strategy"].get(name) for t, spec in seed["unintended"].items()}
  return _timeless(seed["strategies"][name]), scores


def merged_seed(parts, i: int) -> dict:
  """Seed ``i``'s ``strategies`` and ``unintended``, over every part.

  fix-m0 (every part's) and every strategy taken from two parts must have
  the same records in each.
  """
  strategies, unintended, source = {}, {}, {}
  halves = seeds_of(parts[0][1])[i].get("halves")
  for path, results, taken in parts:
    seed = seeds_of(results)[i]
    if seed.get("halves") != halves:
      raise InputError(
        f"parts {parts[0][0]!r} and {path!r} chose and reported on different "
        f"halves at embedding seed {i} (config.report_split or its ids); "
        "expected parts of one protocol"
      )
    for name in dict.fromkeys([*taken, REFERENCE]):
      record = _record(seed, name)
      if name in source:
        if record != source[name][1]:
          raise InputError(
            f"parts {source[name][0]!r} and {path!r} both ran {name} and differ "
            f"at embedding seed {i}: they are not the same run"
          )
        continue
      source[name] = (path, record)
      if name not in taken:
        continue
      strategies[name] = seed["strategies"][name]
      for t, spec in seed["unintended"].items():
        task = unintended.setdefault(t, {**spec, "per_strategy": {}})
        if record[1][t] is not None:
          task["per_strategy"][name] = record[1][t]
  return _with_selection_table(
    {"strategies": strategies, "unintended": unintended}, halves
  )


def _with_selection_table(seed: dict, halves: dict | None) -> dict:
  """A merged seed with its halves and, for a held-out run, the table of its
  selection halves (what weights are chosen on), as a compared seed has."""
  if halves is None:
    return seed
  seed["halves"] = halves
  if halves.get("report_split") == "held_out":
    seed["selection_table"] = comparison_table(seed, half="selection").to_json()
  return seed


def _ordered(seed: dict, order) -> dict:
  """Seed records with their strategies in ``order`` (only those)."""
  if missing := [s for s in order if s not in seed["strategies"]]:
    raise InputError(
      f"no part ran {', '.join(missing)}; they ran {', '.join(seed['strategies'])}"
    )
  unintended = {
    t: {
      **spec,
      "per_strategy": {
        s: spec["per_strategy"][s] for s in order if s in spec["per_strategy"]
      },
    }
    for t, spec in seed["unintended"].items()
  }
  return _with_selection_table(
    {"strategies": {s: seed["strategies"][s] for s in order}, "unintended": unintended},
    seed.get("halves"),
  )


def merge(
  specs,
  differ=(),
  root: str = ".",
  order=(),
  allow_process_differences: bool = False,
) -> tuple[dict, list]:
  """The merged results and, per seed, ``(results, table)`` for the plots.

  Args:
    specs: the parts, ``PATH[:NAME,NAME]`` each.
    differ: config fields (dotted) that may differ between the parts.
    root: the repository, whose git compares the parts' code.
    order: the merged run's strategies, in order (empty: every one, in the
      parts' order).
    allow_process_differences: merge parts made under other process
      settings (:func:`process_differences`), recording the differences in
      ``environment.process_differences``; else they are refused.
  """
  everything = [read_part(spec) for spec in specs]
  tuning = [p for p in everything if "weight_selection" in p[1]]
  parts = [p for p in everything if "weight_selection" not in p[1]]
  if not parts:
    raise InputError("no part given; expected one or more run folders")
  given = set()
  for path, _, taken in parts:
    if not set(taken) - given:
      raise InputError(
        f"part {path!r} gives no strategy that an earlier part did not "
        f"({', '.join(taken)}): expected each part to add its own"
      )
    given |= set(taken)
  check_parts(parts, differ, root)
  selection = check_tuning(tuning, parts, differ)
  if tuning:
    _check_code(everything, root)
  differences = process_differences(everything)
  if differences and not allow_process_differences:
    raise InputError(
      f"{differences[0]}: process settings change bits; expected parts made "
      "under the same ones (or merge with --allow_process_differences, which the "
      "results page prints)"
    )
  first = parts[0][1]
  runs = []
  for i in range(len(seeds_of(first))):
    seed = merged_seed(parts, i)
    if order:
      seed = _ordered(seed, order)
    runs.append((seed, comparison_table(seed)))
  results = copy.deepcopy(first)
  # The first part's analytics cover its strategies alone.
  for key in ("per_seed", "compatibility", "plots"):
    results.pop(key, None)
  results.update(runs[0][0])
  results["config"]["strategy"] = ",".join(runs[0][0]["strategies"])
  table = seed_table.seed_table([t for _, t in runs])
  results["table"] = table.to_json()
  if len(runs) > 1:
    results["per_seed"] = [
      {
        "embedding_seed": i,
        "workdir": seeds_of(first)[i].get("workdir"),
        "table": t.to_json(),
        **r,
      }
      for i, (r, t) in enumerate(runs)
    ]
  results["environment"] = dict(first.get("environment") or {})
  # In the order given; a tuning part gives its weight_selection, no strategy.
  results["environment"]["parts"] = [
    {
      "path": path,
      "strategies": [] if "weight_selection" in r else taken,
      **({"gives": "weight_selection"} if "weight_selection" in r else {}),
      "environment": r.get("environment"),
    }
    for path, r, taken in everything
  ]
  if differences:
    results["environment"]["process_differences"] = differences
  if selection:
    weight_tuning.check_report_names(list(results["strategies"]), selection)
    results["weight_selection"] = selection
  return results, runs


def check_tuning(tuning, parts, differ=()) -> dict:
  """The tuning parts' ``weight_selection``, merged, once they are checked.

  A tuning part is of the report's setting (its config equal but for the
  unfingerprinted fields, ``--differ`` and ``seed``; the same data) under
  another ``config.seed``, so that none of its seeds is a reported one.
  """
  if not tuning:
    return {}
  report_path, report, _ = parts[0]
  allowed = (*UNFINGERPRINTED_FIELDS, *differ, "seed")
  selection = {}
  for path, results, _ in tuning:
    if _setting(results, allowed) != _setting(report, allowed) or results.get(
      "dataset"
    ) != report.get("dataset"):
      raise InputError(
        f"tuning part {path!r} and part {report_path!r} differ in config (beyond "
        "the unfingerprinted fields, --differ and seed) or dataset; expected a "
        "tuning run of the report's setting"
      )
    seed = results["config"]["seed"]
    if seed == report["config"]["seed"]:
      raise InputError(
        f"tuning part {path!r} ran under config.seed={seed}, the report's: its "
        "tuning seeds are reported ones; expected a tuning run under another "
        "config.seed"
      )
    for name, record in results["weight_selection"].items():
      if name in selection:
        raise InputError(f"two tuning parts chose a weight of {name}; expected one")
      selection[name] = record
  return selection


def process_differences(parts) -> list[str]:
  """Where the parts' recorded process settings differ, one line each.

  The settings are ``environment.process`` (:func:`bcjax.environment.set_up_process`:
  NPROC, OPENBLAS_NUM_THREADS, XLA_FLAGS, ...). Parts made before they were
  recorded are compared only with each other's absence.
  """
  first_path, first, _ = parts[0]
  lines = []
  for path, results, _ in parts[1:]:
    differences = environment.settings_differences(_settings(first), _settings(results))
    lines += [
      f"parts {first_path!r} and {path!r} ran under {name} {a!r} and {b!r}"
      for name, a, b in differences
    ]
  return lines


def _settings(results: dict) -> dict:
  # A part made before the settings were recorded differs from one after.
  return (results.get("environment") or {}).get("process") or {}


def write(out: str, results: dict, runs: list) -> None:
  """The merged run's files, as ``experiments.compare`` writes its own."""
  outputs.write_outputs(out, results, runs, read_table(results["table"]))


def main(argv):
  with exit_on_user_error():
    results, runs = merge(
      argv[1:],
      FLAGS.differ,
      order=FLAGS.strategy,
      allow_process_differences=FLAGS.allow_process_differences,
    )
    write(FLAGS.out, results, runs)
  print(f"merged {len(argv) - 1} parts into {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
