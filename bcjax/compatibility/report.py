"""The analytics as Markdown and files: tables, JSON and plots."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from bcjax.compatibility.measures import mean_of_defined
from bcjax.compatibility.serving import BACKFILL_ORDERS
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
  """The analytics as Markdown tables.

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
  lines += _serving_markdown(result)
  return "\n".join(lines) + ("\n" if lines else "")


def _serving_markdown(result: Mapping) -> list[str]:
  """The blending and backfilling sections (:mod:`bcjax.compatibility.serving`)."""
  lines = []

  def table(header, body):
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in body)

  blending = result.get("blending") or {}
  if blending:
    lines += [
      "## Compatibility: blending toward the newest version",
      "",
      f"Recall@{RETRIEVAL_K} against version j's item index of the newest "
      "version k's validation users that have a stored version-j vector: the "
      "stored query z_j (alpha = 0), the bridged one B(z_k) (alpha = 1) and "
      "slerp(z_j, B(z_k), alpha) at the alpha chosen by Recall@50 on half of "
      "those users (ties to the smaller alpha), all measured on the other half.",
      "",
    ]
    body = []
    for s, rows in blending.items():
      for r in rows:
        pair = f"{r['index_version']} <- {r['query_version']}"
        if "skipped" in r:
          body.append([s, pair, "0", "n/a", "n/a", "n/a", "n/a"])
          continue
        body.append(
          [
            s,
            pair,
            f"{r['validation_users']} / {r['test_users']}",
            f"{r['alpha']:g}",
            *(format_value(r[key]) for key in ("stored", "bridged", "blended")),
          ]
        )
    table(
      [
        "strategy",
        "j <- k",
        "users (choose / test)",
        "alpha",
        "stored",
        "bridged",
        "blended",
      ],  # fmt: skip
      body,
    )
    lines.append("")
  backfilling = result.get("backfilling") or {}
  if backfilling:
    lines += [
      "## Compatibility: partial backfilling to the newest version",
      "",
      f"Recall@{RETRIEVAL_K} of the newest version k's validation users "
      "(M_k's z_k) against version j's item index as it moves to M_k: no "
      "backfill (f = 0: every item served F(z_j), F linear old -> new), "
      "full (f = 1: every item's z_k), and the area under the curve over the "
      "backfilled fraction f in [0, 1] for each order: largest chain "
      "residual ||B(z_k) - z_j|| first, largest forward residual "
      "||F(z_j) - z_k|| first, random (the control).",
      "",
    ]
    body = []
    for s, rows in backfilling.items():
      for r in rows:
        curves, areas = r.get("curves"), r.get("area") or {}
        ends = [None, None]
        if curves:
          first = curves[BACKFILL_ORDERS[0]]
          ends = [first[0], first[-1]]
        body.append(
          [
            s,
            f"{r['index_version']} <- {r['query_version']}",
            *(format_value(v) for v in ends),
            *(format_value(areas.get(o)) for o in BACKFILL_ORDERS),
          ]
        )
    table(
      [
        "strategy",
        "j <- k",
        "f = 0",
        "f = 1",
        *(f"area: {o}" for o in BACKFILL_ORDERS),
      ],  # fmt: skip
      body,
    )
    lines.append("")
    lines += _consumer_backfill_markdown(backfilling)
  return lines


def _consumer_backfill_markdown(backfilling: Mapping) -> list[str]:
  """The consumers' backfilling tables, one per strategy and index version.

  Args:
    backfilling: strategy -> backfilling rows, those with ``consumers``
      (:mod:`bcjax.compatibility.backfill_consumers`) shown.
  """
  rows = [(s, r) for s, rs in backfilling.items() for r in rs if r.get("consumers")]
  if not rows:
    return []
  lines = [
    "Consumers of the newest version k reading the same backfilling index "
    "(users z_k; items z_k once backfilled, F(z_j) before): each task's "
    "consumers trained on z_k and scored on their own selection examples at "
    "version k (they chose its epoch and grid point, so the level is "
    "optimistic; every order and fraction is scored on the same examples). "
    "The task metric at f = 0, 0.5 and 1, and the area under the curve.",
    "",
  ]
  skipped = {
    t: c["skipped"] for t, c in rows[0][1]["consumers"]["tasks"].items()
    if "skipped" in c
  }  # fmt: skip
  for s, r in rows:
    fractions = r["consumers"]["fractions"]
    points = [fractions.index(f) if f in fractions else None for f in (0, 0.5, 1)]
    lines += [f"{s}, index version {r['index_version']}:", ""]
    body = []
    for t, c in r["consumers"]["tasks"].items():
      if "skipped" in c:
        continue
      for o, curve in c["curves"].items():
        body.append(
          [
            t,
            o,
            *(format_value(None if i is None else curve[i]) for i in points),
            format_value(c["area"][o]),
          ]
        )
    _table(lines, ["task", "order", "f = 0", "f = 0.5", "f = 1", "area"], body)
    lines.append("")
  if skipped:
    lines += [
      "Skipped: " + "; ".join(f"{t} ({why})" for t, why in skipped.items()) + ".",
      "",
    ]
  return lines


def _table(lines: list[str], header: Sequence[str], body) -> None:
  """Appends a Markdown table to ``lines``."""
  lines.append("| " + " | ".join(header) + " |")
  lines.append("|" + "|".join("---" for _ in header) + "|")
  lines.extend("| " + " | ".join(row) + " |" for row in body)


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
