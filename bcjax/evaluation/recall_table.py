"""The intended task per version: Recall@50 of every strategy and of the
most-popular baseline, as a Markdown table for ``table.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def recall_rows(results: Mapping[str, Any], k: int = 50) -> list[list]:
  """``[name, recall at v0, v1, ...]`` rows: the baseline first, then each
  strategy in the order of ``results["strategies"]``; None where a version
  has no value."""
  baseline = results.get("baselines", {}).get("most-popular", [])
  versions = max(
    [len(baseline), *(len(v) for v in results["strategies"].values())], default=0
  )

  def row(name, entries):
    by_version = {e["version"]: e["recall"].get(str(k)) for e in entries}
    return [name, *(by_version.get(v) for v in range(versions))]

  rows = [row("most popular", baseline)] if baseline else []
  rows += [row(name, entries) for name, entries in results["strategies"].items()]
  return rows


def to_markdown(results: Mapping[str, Any], k: int = 50) -> str:
  """The per-version Recall@``k`` table, with a heading."""
  rows = recall_rows(results, k)
  if not rows:
    return ""
  versions = len(rows[0]) - 1
  lines = [
    f"## Recall@{k} per version (validation window of each version)",
    "",
    "| strategy | " + " | ".join(f"v{v}" for v in range(versions)) + " |",
    "|---|" + "---|" * versions,
  ]
  for name, *values in rows:
    cells = ["n/a" if x is None else f"{x:.4f}" for x in values]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
