"""Per-version curves of the comparison, as PNG files.

Figures are built as ``matplotlib.figure.Figure`` objects with their own Agg
canvas rather than through pyplot, so writing plots neither needs a display
nor changes the backend or the current figure of any other pyplot user in the
process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bcjax.atomic_files import atomic_open
from bcjax.evaluation.table import (
  INTENDED_REFERENCE,
  RECALL_KEY,
  UNINTENDED_REFERENCE,
  finite_or_none,
  mean_of_defined,
  relative_percent,
)

Series = dict[str, tuple[list[int], list[float]]]


def _relative_series(
  per_version: Mapping[str, list[float | None]], reference: str
) -> Series:
  """Per strategy, ``100 * (value / reference value - 1)`` per version.

  Args:
    per_version: strategy -> values indexed by version (None = undefined).
    reference: the strategy whose values are the 100 % line.

  Returns:
    Strategy -> (versions, percentages), over the versions where both the
    strategy's value and the reference's are defined.
  """
  ref = per_version[reference]
  out = {}
  for strategy, values in per_version.items():
    points = [
      (k, relative_percent(v, ref[k] if k < len(ref) else None))
      for k, v in enumerate(values)
    ]
    points = [(k, p) for k, p in points if p is not None]
    if points:
      out[strategy] = ([k for k, _ in points], [p for _, p in points])
  return out


def _unintended_per_version(table: Mapping[str, Any]) -> dict[str, list]:
  """Per strategy, the mean core-task metric at each version.

  A task counts at version ``k`` only when ``k`` is after its selection
  version, as in the table's unintended column.
  """
  core = {t: spec for t, spec in table["tasks"].items() if spec["core"]}
  out = {}
  for strategy, series in table["per_version"].items():
    length = max((len(series[t]) for t in core), default=0)
    out[strategy] = [
      mean_of_defined(
        series[t][k]
        for t, spec in core.items()
        if k > spec["selection_version"] and k < len(series[t])
      )
      for k in range(length)
    ]
  return out


def _figure(series: Series, title: str, ylabel: str, zero_line: bool) -> Figure:
  """One line plot, one line per strategy labelled with its name."""
  fig = Figure(figsize=(7.5, 4.5))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  versions = sorted({k for ks, _ in series.values() for k in ks})
  for strategy, (ks, ys) in series.items():
    ax.plot(ks, ys, marker="o", label=strategy)
  if zero_line:
    ax.axhline(0.0, color="gray", linewidth=0.8, linestyle="--")
  ax.set_xticks(versions)
  ax.set_xlabel("version")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small", loc="best")
  fig.tight_layout()
  return fig


def figures(results: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Figure]:
  """The per-version curves of every strategy, by PNG file name.

  - ``recall50_vs_nobc.png``: Recall@50 per version relative to nobc (%);
    skipped without nobc.
  - ``unintended_vs_fix_m0.png``: mean core-task metric per version relative
    to fix-m0 (%); skipped without fix-m0 or without core tasks.
  - ``alignment_error.png``: ``distance_to_fix_m0`` per version ``k >= 1``;
    skipped when no strategy has one.

  Each figure has one axes with one line per strategy (label: the strategy),
  its points at the versions where the value is defined.

  Args:
    results: the main job's results dict (see
      :func:`bcjax.evaluation.table.comparison_table`).
    table: ``comparison_table(results)``.

  Returns:
    File name -> figure, for the figures not skipped.
  """
  out = {}
  recall = {s: v[RECALL_KEY] for s, v in table["per_version"].items()}
  relative_figures = (
    (
      recall,
      INTENDED_REFERENCE,
      "recall50_vs_nobc.png",
      "Intended task: Recall@50 relative to nobc",
      "Recall@50 vs nobc (%)",
    ),
    (
      _unintended_per_version(table),
      UNINTENDED_REFERENCE,
      "unintended_vs_fix_m0.png",
      "Unintended tasks: mean core-task metric relative to fix-m0",
      "metric vs fix-m0 (%)",
    ),
  )
  for values, reference, name, title, ylabel in relative_figures:
    series = _relative_series(values, reference) if reference in values else None
    if series:
      out[name] = _figure(series, title, ylabel, zero_line=True)

  distances = {}
  for strategy, entries in results["strategies"].items():
    points = [
      (int(e["version"]), finite_or_none(e.get("distance_to_fix_m0")))
      for e in entries
      if int(e["version"]) >= 1
    ]
    points = [(k, d) for k, d in points if d is not None]
    if points:
      distances[strategy] = ([k for k, _ in points], [d for _, d in points])
  if distances:
    out["alignment_error.png"] = _figure(
      distances,
      "Alignment error: distance to fix-m0's embeddings",
      "mean L2 distance to fix-m0",
      zero_line=False,
    )
  return out


def write_plots(
  results: Mapping[str, Any], table: Mapping[str, Any], outdir: str
) -> list[str]:
  """Writes :func:`figures` as PNG files, each atomically.

  Args:
    results: the main job's results dict (see
      :func:`bcjax.evaluation.table.comparison_table`).
    table: ``comparison_table(results)``.
    outdir: the folder to write to (created if needed).

  Returns:
    The paths written.
  """
  return save_figures(figures(results, table), outdir, dpi=120)


def save_figures(named: dict, outdir: str, dpi: int) -> list[str]:
  """Writes each ``{file name: figure}`` as a PNG in ``outdir``, atomically.

  Returns:
    The paths written.
  """
  os.makedirs(outdir, exist_ok=True)
  written = []
  for name, fig in named.items():
    path = os.path.join(outdir, name)
    with atomic_open(path, "wb") as f:
      fig.savefig(f, format="png", dpi=dpi)
    written.append(path)
  return written
