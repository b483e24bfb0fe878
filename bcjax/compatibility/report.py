"""The analytics as Markdown and files: tables, JSON and plots."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from bcjax.compatibility.measures import mean_of_defined
from bcjax.compatibility.stores import RETRIEVAL_K
from bcjax.storage import atomic_files

# -- reports ---------------------------------------------------------------------------


def mean_drift_by_length(pairs: Sequence[Mapping]) -> dict[int, float]:
  """Chain length ``k - j`` -> mean drift over the pairs of that length."""
  lengths = sorted({p["length"] for p in pairs})
  return {
    n: mean_of_defined(p["drift"] for p in pairs if p["length"] == n) for n in lengths
  }


def to_markdown(result: Mapping) -> str:
  """The three analytics as Markdown tables.

  Args:
    result: the output of :func:`analyze` (JSON keys are strings).
  """
  lines = []

  def table(header, body):
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in body)

  consumers = result.get("consumers") or {}
  if consumers:
    starts = [str(j) for j in result["start_versions"]]
    lines += [
      "## Compatibility: consumers that start at version j",
      "",
      "Mean core-task metric over the versions after each task's selection "
      "version, relative to the same consumers on the frozen M_j (%); the "
      "j = 0 column is the comparison table's unintended column.",
      "",
    ]
    table(
      ["strategy", *(f"j = {j} (%)" for j in starts), "mean (%)"],
      [
        [
          s,
          *(format_value(c["per_start"].get(j, {}).get("relative"), 2) for j in starts),
          format_value(c["relative"], 2),
        ]
        for s, c in consumers.items()
      ],
    )
    lines += ["", "Mean core-task metric at (start j, version k):", ""]
    for s, c in consumers.items():
      ks = sorted({int(k) for row in c["matrix"].values() for k in row})
      lines += [f"{s}:", ""]
      table(
        ["j \\ k", *map(str, ks)],
        [
          [j, *(format_value(row.get(str(k))) for k in ks)]
          for j, row in sorted(c["matrix"].items(), key=lambda x: int(x[0]))
        ],
      )
      lines.append("")
  retrieval = result.get("retrieval") or {}
  if retrieval:
    pairs = [
      (p["index_version"], p["query_version"]) for p in next(iter(retrieval.values()))
    ]
    lines += [
      "## Compatibility: retrieval against an old index",
      "",
      f"Recall@{RETRIEVAL_K} of version k's validation users against version "
      "j's item index: new query / old index minus old query / old index "
      "(BCT's criterion holds when positive: yes), and new query / new index "
      "for the same users and targets.",
      "",
    ]
    table(
      ["strategy", *(f"{j} <- {k}" for j, k in pairs)],
      [
        [
          s,
          *(
            "n/a"
            if p["compatible"] is None
            else f"{'yes' if p['compatible'] else 'no'} "
            f"({p['new_old'] - p['old_old']:+.4f}; new/new {p['new_new']:.4f})"
            for p in ps
          ),
        ]
        for s, ps in retrieval.items()
      ],
    )
    lines.append("")
  drift = result.get("drift") or {}
  if drift:
    lengths = sorted({p["length"] for ps in drift.values() for p in ps})
    lines += [
      "## Compatibility: drift along the chain",
      "",
      "Mean L2 distance between B_{j+1..k}(z_k) and the saved z_j (users and "
      "items pooled) over the mean norm of z_j, averaged over the pairs of "
      "each chain length k - j.",
      "",
    ]
    table(
      ["strategy", *(f"length {n}" for n in lengths)],
      [
        [s, *(format_value(mean_drift_by_length(ps).get(n)) for n in lengths)]
        for s, ps in drift.items()
      ],
    )
    lines.append("")
  return "\n".join(lines) + ("\n" if lines else "")


def write_outputs(result: dict, outdir: str) -> dict:
  """Writes ``compatibility.json``, ``compatibility.md`` and the plots.

  Returns:
    ``result`` with ``plots`` (file names) added.
  """
  from bcjax.evaluation.compatibility_plots import write_plots

  result = dict(
    result, plots=[os.path.basename(p) for p in write_plots(result, outdir)]
  )
  atomic_files.write_json(os.path.join(outdir, "compatibility.json"), result)
  with atomic_files.atomic_open(os.path.join(outdir, "compatibility.md")) as f:
    f.write(to_markdown(result))
  return result


def format_value(value, decimals: int = 4) -> str:
  if value is None or not math.isfinite(value):
    return "n/a"
  text = f"{value:.{decimals}f}"
  return text[1:] if text.startswith("-") and float(text) == 0 else text
