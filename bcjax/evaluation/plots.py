"""Per-version curves of the comparison and its trade-off, as PNG files.

Over several embedding seeds each curve is the mean over seeds of the
per-seed values, with a band of the Student-t 95% interval over seeds; the
trade-off plot has interval bars. One seed has neither.

Figures are built as ``matplotlib.figure.Figure`` objects with their own Agg
canvas rather than through pyplot, so writing plots neither needs a display
nor changes the backend or the current figure of any other pyplot user in the
process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bcjax.evaluation.intervals import mean_interval
from bcjax.evaluation.table import (
  INTENDED_REFERENCE,
  RECALL_KEY,
  UNINTENDED_REFERENCE,
  mean_of_defined,
  relative_percent,
)
from bcjax.evaluation.table_records import ComparisonTable, finite_or_none
from bcjax.storage.atomic_files import atomic_open

Series = dict[str, tuple[list[int], list[float]]]
# A strategy's band: (versions, lows, highs), over the versions of 2+ seeds.
Bands = dict[str, tuple[list[int], list[float], list[float]]]
Run = tuple[Mapping[str, Any], ComparisonTable]


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


def _unintended_per_version(table: ComparisonTable) -> dict[str, list]:
  """Per strategy, the mean core-task metric at each version.

  A task counts at version ``k`` only when ``k`` is after its selection
  version, as in the table's unintended column.
  """
  core = {t: spec for t, spec in table.tasks.items() if spec["core"]}
  out = {}
  for strategy, series in table.per_version.items():
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


def _over_seeds(per_seed: Sequence[Series]) -> tuple[Series, Bands]:
  """The mean over seeds of each strategy's value per version, and its band.

  Args:
    per_seed: one series per seed.

  Returns:
    The mean series (over the seeds defined at each version) and, where two
    or more seeds are defined, the ends of the 95% t-interval.
  """
  means: Series = {}
  bands: Bands = {}
  for strategy in dict.fromkeys(s for series in per_seed for s in series):
    values: dict[int, list[float]] = {}
    for series in per_seed:
      for k, y in zip(*series.get(strategy, ([], [])), strict=True):
        values.setdefault(k, []).append(y)
    ks = sorted(values)
    intervals = [mean_interval(values[k]) for k in ks]
    means[strategy] = (ks, [i.mean for i in intervals])
    banded = [(k, i) for k, i in zip(ks, intervals, strict=True) if i.low is not None]
    if banded:
      bands[strategy] = (
        [k for k, _ in banded],
        [i.low for _, i in banded],
        [i.high for _, i in banded],
      )
  return means, bands


def _figure(
  series: Series, title: str, ylabel: str, zero_line: bool, bands: Bands | None = None
) -> Figure:
  """One line plot, one line per strategy labelled with its name.

  ``bands`` shades each strategy's interval over seeds in its line's colour.
  """
  fig = Figure(figsize=(7.5, 4.5))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  versions = sorted({k for ks, _ in series.values() for k in ks})
  for strategy, (ks, ys) in series.items():
    (line,) = ax.plot(ks, ys, marker="o", label=strategy)
    if bands and strategy in bands:
      band_ks, lows, highs = bands[strategy]
      ax.fill_between(band_ks, lows, highs, color=line.get_color(), alpha=0.2)
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


def _alignment_series(results: Mapping[str, Any]) -> Series:
  """Per strategy, ``distance_to_fix_m0`` per version (0 at version 0).

  Version 0 is M_0, fix-m0's embeddings: at distance 0 when not recorded, as
  in the table's alignment error.
  """
  out = {}
  for strategy, entries in results["strategies"].items():
    points = []
    for e in entries:
      k = int(e["version"])
      d = finite_or_none(e.get("distance_to_fix_m0"))
      if k == 0 and "distance_to_fix_m0" not in e:
        d = 0.0
      if d is not None:
        points.append((k, d))
    if points:
      out[strategy] = ([k for k, _ in points], [d for _, d in points])
  return out


def _tradeoff_figure(tables: Sequence[ComparisonTable]) -> Figure | None:
  """Intended (%) against unintended (%) per strategy, with interval bars.

  Each point is the mean over seeds of the strategy's table cells; over two
  or more seeds, bars span the 95% t-intervals of both. None when no
  strategy has both cells.
  """
  names = tables[0].strategies
  points = {}
  for s in names:
    cells = []
    for column in ("unintended", "intended"):
      values = [t.row(s).cell(column) for t in tables if t.row(s) is not None]
      values = [v for v in values if v is not None]
      cells.append(mean_interval(values) if values else None)
    if None not in cells:
      points[s] = cells
  if not points:
    return None
  fig = Figure(figsize=(7.5, 5.5))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for s, (x, y) in points.items():
    (line,) = ax.plot([x.mean], [y.mean], marker="o", linestyle="none", label=s)
    if x.low is not None:
      ax.errorbar(
        [x.mean],
        [y.mean],
        xerr=[[x.mean - x.low], [x.high - x.mean]],
        yerr=[[y.mean - y.low], [y.high - y.mean]],
        fmt="none",
        ecolor=line.get_color(),
        alpha=0.6,
      )
    ax.annotate(
      s, (x.mean, y.mean), fontsize="x-small", xytext=(4, 4), textcoords="offset points"
    )
  ax.axhline(0.0, color="gray", linewidth=0.8, linestyle="--")
  ax.axvline(0.0, color="gray", linewidth=0.8, linestyle="--")
  ax.set_xlabel("unintended: metric vs fix-m0 (%)")
  ax.set_ylabel("intended: Recall@50 vs nobc (%)")
  seeds = f", mean ± 95% interval over {len(tables)} seeds" if len(tables) > 1 else ""
  ax.set_title(f"Trade-off: intended against unintended{seeds}")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small", loc="best")
  fig.tight_layout()
  return fig


def figures(runs: Sequence[Run]) -> dict[str, Figure]:
  """The per-version curves of every strategy and the trade-off, by file name.

  - ``recall50_vs_nobc.png``: Recall@50 per version relative to nobc (%);
    skipped without nobc.
  - ``unintended_vs_fix_m0.png``: mean core-task metric per version relative
    to fix-m0 (%); skipped without fix-m0 or without core tasks.
  - ``alignment_error.png``: ``distance_to_fix_m0`` per version (0 at
    version 0); skipped when no strategy has one.
  - ``tradeoff.png``: intended (%) against unintended (%) per strategy;
    skipped when no strategy has both.

  Each per-version figure has one axes with one line per strategy (label:
  the strategy), its points at the versions where the value is defined;
  values relative to a reference are relative within each seed, then
  averaged over seeds, with a band over two or more seeds.

  Args:
    runs: per embedding seed, ``(results, comparison_table(results))``
      (see :func:`bcjax.evaluation.table.comparison_table`).

  Returns:
    File name -> figure, for the figures not skipped.
  """
  out = {}
  per_seed = {"recall50_vs_nobc.png": [], "unintended_vs_fix_m0.png": []}
  for _, table in runs:
    recall = {s: v[RECALL_KEY] for s, v in table.per_version.items()}
    for values, reference, name in (
      (recall, INTENDED_REFERENCE, "recall50_vs_nobc.png"),
      (
        _unintended_per_version(table),
        UNINTENDED_REFERENCE,
        "unintended_vs_fix_m0.png",
      ),
    ):
      if reference in values:
        per_seed[name].append(_relative_series(values, reference))
  titles = {
    "recall50_vs_nobc.png": (
      "Intended task: Recall@50 relative to nobc",
      "Recall@50 vs nobc (%)",
    ),
    "unintended_vs_fix_m0.png": (
      "Unintended tasks: mean core-task metric relative to fix-m0",
      "metric vs fix-m0 (%)",
    ),
  }
  # Over several seeds, the title says what the line and the band are.
  over = f" (mean, 95% band over {len(runs)} seeds)" if len(runs) > 1 else ""
  for name, series in per_seed.items():
    means, bands = _over_seeds(series)
    if means:
      title, ylabel = titles[name]
      out[name] = _figure(means, title + over, ylabel, zero_line=True, bands=bands)
  means, bands = _over_seeds([_alignment_series(results) for results, _ in runs])
  if means:
    out["alignment_error.png"] = _figure(
      means,
      "Alignment error: distance to fix-m0's embeddings" + over,
      "mean L2 distance to fix-m0",
      zero_line=False,
      bands=bands,
    )
  tradeoff = _tradeoff_figure([table for _, table in runs])
  if tradeoff is not None:
    out["tradeoff.png"] = tradeoff
  return out


def write_plots(runs: Sequence[Run], outdir: str) -> list[str]:
  """Writes :func:`figures` as PNG files, each atomically.

  Args:
    runs: per embedding seed, ``(results, comparison_table(results))``.
    outdir: the folder to write to (created if needed).

  Returns:
    The paths written.
  """
  return save_figures(figures(runs), outdir, dpi=120)


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
