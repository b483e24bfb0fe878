r"""Issue 43's cost plan, computed from measured records, never typed.

A report run trains every strategy on 10 embedding seeds batched; its cost
is, per version k of each fit, the seconds of one batched epoch times the
epochs the converged stop runs. Both are read from committed records:

* seconds per epoch at 10 seeds batched: a cost probe per dataset
  (``experiments.compare`` at the report runs' shape, 10 epochs without
  patience; each version's ``seconds_per_epoch``);
* epochs per fit: the tuning runs of the same config (3 seeds of
  ``config.seed`` 100, converged stop): each version's epochs run, the
  largest over its seeds (a batch trains until its last seed stops; 10
  seeds stop no sooner than 3, so this is a lower bound).

A strategy the probe did not train is costed as the kind it trains like
(:data:`KINDS`); a kind the tuning runs did not train takes the epochs of
the kind that stops as it does (:data:`EPOCHS_LIKE`). A post-hoc or
closed-form strategy reuses nobc's versions and fits B_k alone on their
stored embeddings (its record's history is nobc's): costed as fix-m0,
nothing beyond the run's nobc. Version 0 is M_0: trained once per run,
costed under nobc. Prints the table and writes it between the markers of
``docs/evidence_plan.md``.

Command::

  python -m evidence.cost_plan --docs=docs/evidence_plan.md
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

from evidence.report import replaced

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
BEGIN, END = "<!-- cost_plan:begin -->", "<!-- cost_plan:end -->"

# Per dataset: the probe's record, and the tuning records epochs are read from.
SOURCES = {
  "synthetic": (
    "cost_probe/synthetic",
    ("screening/synthetic_A", "screening/synthetic_B"),
  ),
  "ml-100k": (
    "cost_probe/ml-100k",
    ("screening/ml-100k_C", "screening/ml-100k_D"),
  ),
}

# A strategy trains like the probed strategy it maps to (its fit's shape:
# the embedding model alone, the model with a B_k beside it, or B_k alone).
KINDS = {
  "fix-m0": "fix-m0",
  "nobc": "nobc",
  "finetune-m0": "finetune-m0",
  # B_k fitted on nobc's stored versions: seconds, not a model's epochs.
  "posthoc-linear-sloss": "fix-m0",
  "posthoc-linear-mloss": "fix-m0",
  "posthoc-orthogonal-sloss": "fix-m0",
  "posthoc-mlp-sloss": "fix-m0",
  "closedform-linear-sloss": "fix-m0",  # a host solve on nobc's versions
  "closedform-orthogonal-sloss": "fix-m0",
  "joint-notrans-sloss": "joint-linear-mloss",
  "joint-linear-sloss": "joint-linear-mloss",
  "joint-linear-mloss": "joint-linear-mloss",
  "jointsolve-linear-mloss": "joint-linear-mloss",
  "joint-orthogonal-mloss": "joint-orthogonal-mloss",
  "warmjoint-linear-mloss": "warmjoint-linear-mloss",
}

# Whose tuning epochs a kind runs.
EPOCHS_LIKE = {
  "fix-m0": "fix-m0",
  "nobc": "nobc",
  "finetune-m0": "nobc",  # its updates stop by the same patience
  "joint-linear-mloss": "joint-linear-mloss",
  "joint-orthogonal-mloss": "joint-linear-mloss",
  "warmjoint-linear-mloss": "warmjoint-linear-mloss",
}

# What issue 43 lists for each dataset: (strategy, settings at 10 report
# seeds, settings at 3 tuning seeds). A joint strategy is reported at its
# chosen weight (BC-Aligner at 16 too) and tuned over (1, 4, 16).
WANTED = (
  ("fix-m0", 1, 0),
  ("finetune-m0", 1, 0),
  ("nobc", 1, 1),
  ("posthoc-linear-sloss", 1, 0),
  ("posthoc-linear-mloss", 1, 0),
  ("joint-notrans-sloss", 1, 3),
  ("joint-linear-sloss", 1, 3),
  ("joint-linear-mloss", 2, 3),
  ("closedform-linear-sloss", 1, 0),
  ("closedform-orthogonal-sloss", 1, 0),
  ("posthoc-orthogonal-sloss", 1, 0),
  ("posthoc-mlp-sloss", 1, 0),
  ("joint-orthogonal-mloss", 1, 3),
  ("jointsolve-linear-mloss", 1, 3),
  ("warmjoint-linear-mloss", 1, 3),
)
REPORT_SEEDS, TUNING_SEEDS = 10, 3


def _load(relative: str) -> dict | None:
  path = RESULTS / relative / "results.json"
  return json.loads(path.read_text()) if path.exists() else None


def _seeds(results: dict) -> list[dict]:
  return results.get("per_seed") or [results]


def _base(name: str) -> str:
  return name.split("@", 1)[0]


def seconds_per_epoch(probe: dict) -> dict[str, list[float]]:
  """Per probed strategy, each version's seconds per batched epoch."""
  return {
    name: [v["seconds_per_epoch"] or 0.0 for v in versions]
    for name, versions in probe["strategies"].items()
  }


def _epochs(versions: list[dict]) -> list[int]:
  return [v["history"][-1]["epoch"] if v.get("history") else 0 for v in versions]


def epochs_run(tuning: list[dict]) -> dict[str, list[int]]:
  """Per strategy kind, each version's epochs run: the largest over every
  seed and setting of the tuning runs."""
  out: dict[str, list[int]] = {}
  for results in tuning:
    for seed in _seeds(results):
      for name, versions in seed["strategies"].items():
        kind = KINDS.get(_base(name), _base(name))
        best = out.setdefault(kind, [0] * len(versions))
        out[kind] = [max(a, b) for a, b in zip(best, _epochs(versions), strict=True)]
  return out


def fit_epochs(kind: str, tuned: dict[str, list[int]]) -> list[int]:
  """The epochs each version of ``kind`` runs in a report run; version 0
  counts for nobc alone (M_0)."""
  epochs = list(tuned[EPOCHS_LIKE[kind]])
  if kind != "nobc":
    epochs[0] = 0
  return epochs


def hours(per_epoch: list[float], epochs: list[int], seeds: int) -> float:
  """Hours of one setting, scaled from 10 batched seeds to ``seeds``."""
  seconds = math.fsum(s * e for s, e in zip(per_epoch, epochs, strict=True))
  return seconds * seeds / REPORT_SEEDS / 3600


def render() -> str:
  """The plan's Markdown: each dataset's settings, hours and totals."""
  lines, grand = [], 0.0
  for dataset, (probe_path, tuning_paths) in SOURCES.items():
    probe = _load(probe_path)
    tuning = [r for r in map(_load, tuning_paths) if r is not None]
    if probe is None or not tuning:
      missing = [probe_path] if probe is None else list(tuning_paths)
      lines += [f"**{dataset}**: not costed: no record at {', '.join(missing)}.", ""]
      continue
    per_epoch, epochs = seconds_per_epoch(probe), epochs_run(tuning)
    lines += [
      f"**{dataset}**: seconds per epoch from `{probe_path}` (commit "
      f"{probe['environment']['git_commit'][:7]}, 10 seeds batched); epochs "
      f"from {', '.join(f'`{p}`' for p in tuning_paths)}.",
      "",
      "| strategy | costed as | epochs per version | report hours | tuning hours |",
      "|---|---|---|---|---|",
    ]
    total_report = total_tuning = 0.0
    for name, report, tuned in WANTED:
      kind = KINDS[name]
      fit = fit_epochs(kind, epochs)
      h = hours(per_epoch[kind], fit, REPORT_SEEDS)
      t = hours(per_epoch[kind], fit, TUNING_SEEDS)
      total_report += report * h
      total_tuning += tuned * t
      lines.append(
        f"| {name} | {kind} | {', '.join(map(str, fit))} | "
        f"{report} x {h:.2f} | {tuned} x {t:.2f} |"
      )
    lines += [
      "",
      f"{dataset}: {total_report:.1f} hours of report runs and "
      f"{total_tuning:.1f} of tuning runs, one process each (the "
      "consumers aside).",
      "",
    ]
    grand += total_report + total_tuning
  lines.append(f"Both datasets: {grand:.1f} hours.")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  text = render()
  print(text)
  for path in (
    pathlib.Path(a.split("=", 1)[1]) for a in argv if a.startswith("--docs=")
  ):
    path.write_text(replaced(path.read_text(), f"{BEGIN}\n{text}\n{END}", BEGIN, END))


if __name__ == "__main__":
  main(sys.argv[1:])
