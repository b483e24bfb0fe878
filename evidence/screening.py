r"""The screening of issue 42's candidates, rendered from tuning runs' records.

A screening part is a tuning run (``config.tuning.weights``) on tuning seeds
that no report reads; every number here is from its selection halves (each
seed's ``selection_table``), the halves that chose each kept epoch and
weight. This prints, from the committed ``results.json`` of the parts:

* per part, the config it ran (seeds, halves, commit) and for each tuned
  strategy and weight the selection total per seed and its mean, with the
  mean intended and unintended (the weight chosen as
  ``bcjax.jobs.weight_tuning`` chose it: best mean total);
* that the parts are paired: within each seed, nobc's and fix-m0's
  selection numbers are the same in every part (the same M_0 and versions);
* each candidate at its chosen weight minus BC-Aligner at its chosen weight,
  per seed and on the mean (positive: the candidate is ahead). Both are
  chosen on these numbers, so a difference leans towards the strategy with
  more weights to choose from; it ranks candidates, it proves nothing.

Command (``--docs`` rewrites the block between the screening markers of
``docs/strategies.md``)::

  python -m evidence.screening experiments/results/screening/synthetic_A \
      experiments/results/screening/synthetic_B --docs=docs/strategies.md
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

from bcjax.jobs.weight_tuning import variant
from evidence.report import replaced

REFERENCE = "joint-linear-mloss"
# Issue 42's goal, as the least mean lead over REFERENCE, per dataset (on
# ml-100k: ahead on the mean). Screening numbers only rank candidates.
GOALS = {"synthetic": 1.5, "ml-100k": 0.0}
BEGIN, END = "<!-- screening:begin -->", "<!-- screening:end -->"


def _rows(results: dict) -> list[dict[str, dict]]:
  """Per seed, the selection table's rows by strategy."""
  seeds = results.get("per_seed") or [results]
  return [{r["strategy"]: r for r in s["selection_table"]["rows"]} for s in seeds]


def _mean(values) -> float:
  values = list(values)
  return math.fsum(values) / len(values)


def _fmt(values) -> str:
  return ", ".join(f"{v:.2f}" for v in values)


def render(parts: list[pathlib.Path]) -> str:
  """The screening's Markdown, from each part's ``results.json``: one
  section per dataset, its parts paired by seed."""
  by_dataset: dict[str, list[tuple[pathlib.Path, dict]]] = {}
  for part in parts:
    results = json.loads((part / "results.json").read_text())
    by_dataset.setdefault(results["config"]["dataset"], []).append((part, results))
  lines = []
  for dataset, recorded in by_dataset.items():
    if len(by_dataset) > 1:
      lines += [f"#### {dataset}", ""]
    lines += _dataset(dataset, recorded)
  return "\n".join(lines)


def _dataset(dataset: str, recorded: list[tuple[pathlib.Path, dict]]) -> list[str]:
  """One dataset's parts: their tables, pairing, differences and goal."""
  lines, chosen, references = [], {}, {}
  for part, results in recorded:
    config, env = results["config"], results["environment"]
    rows = _rows(results)
    references[part.name] = rows
    lines += [
      f"**{part.name}** (`{part}`): {config['dataset']}, config.seed "
      f"{config['seed']}, {len(rows)} embedding seeds, report_split="
      f"{config['report_split']}, weights {tuple(config['tuning']['weights'])}, "
      f"commit {env['git_commit'][:7]}, {env['started']} to {env['finished']}.",
      "",
      "| strategy | weight | selection total, mean | per seed | intended | unintended |",
      "|---|---|---|---|---|---|",
    ]
    for name, record in results["weight_selection"].items():
      for w in record["weight_scores"]:
        row = variant(name, record["field"], float(w))
        per = [seed[row] for seed in rows]
        mark = " (chosen)" if float(w) == record["chosen_weight"] else ""
        total = [r["total"] for r in per]
        lines.append(
          f"| {name} | {w}{mark} | {_mean(total):.2f} | {_fmt(total)} | "
          f"{_mean(r['intended'] for r in per):.2f} | "
          f"{_mean(r['unintended'] for r in per):.2f} |"
        )
      best = variant(name, record["field"], record["chosen_weight"])
      chosen[name] = [seed[best]["total"] for seed in rows]
    lines.append("")
  lines += _pairing(references)
  if REFERENCE not in chosen:
    return lines
  base = chosen[REFERENCE]
  lines += [
    f"Each candidate at its chosen weight minus {REFERENCE} at its chosen "
    "weight, selection total (positive: the candidate is ahead):",
    "",
    "| candidate | mean | per seed |",
    "|---|---|---|",
  ]
  gaps = {}
  for name, totals in chosen.items():
    if name == REFERENCE:
      continue
    diff = [a - b for a, b in zip(totals, base, strict=True)]
    gaps[name] = _mean(diff)
    lines.append(f"| {name} | {gaps[name]:.2f} | {_fmt(diff)} |")
  lines.append("")
  ranked = sorted(gaps, key=gaps.get, reverse=True)
  if dataset in GOALS and ranked:
    goal = GOALS[dataset]
    reached = [n for n in ranked if gaps[n] >= goal]
    lines += [
      f"Issue 42's goal on {dataset}: a mean lead of at least {goal:g} points "
      f"over {REFERENCE}. Reached on these selection halves by: "
      f"{', '.join(reached) or 'none'}. Best two by mean difference: "
      f"{', '.join(ranked[:2])}.",
      "",
    ]
  return lines


def _pairing(references: dict[str, list[dict]]) -> list[str]:
  """One line: are nobc's and fix-m0's selection rows equal across parts?"""
  names = list(references)
  if len(names) < 2:
    return []
  fields = ("mean_recall50", "mean_unintended")
  same = all(
    references[a][i][s][f] == references[names[0]][i][s][f]
    for a in names[1:]
    for i in range(len(references[names[0]]))
    for s in ("nobc", "fix-m0")
    for f in fields
  )
  verdict = "equal" if same else "NOT equal"
  return [
    f"Pairing: within each seed, nobc's and fix-m0's selection {' and '.join(fields)}"
    f" are {verdict} in parts {', '.join(names)}.",
    "",
  ]


def main(argv: list[str]) -> None:
  docs = [a.split("=", 1)[1] for a in argv if a.startswith("--docs=")]
  parts = [pathlib.Path(a) for a in argv if not a.startswith("--")]
  text = render(parts)
  print(text)
  for path in map(pathlib.Path, docs):
    path.write_text(replaced(path.read_text(), f"{BEGIN}\n{text}\n{END}", BEGIN, END))


if __name__ == "__main__":
  main(sys.argv[1:])
