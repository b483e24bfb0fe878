"""Plots of the compatibility analytics (:mod:`bcjax.compatibility`).

As :mod:`bcjax.evaluation.plots`, figures are ``matplotlib.figure.Figure``
objects on their own Agg canvas, never pyplot's global state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bcjax.evaluation.plots import save_figures


def _grid(cells: Mapping[str, Mapping[str, Any]], size: int) -> np.ndarray:
  """A ``(size, size)`` array of ``cells[j][k]``, NaN where absent or None."""
  out = np.full((size, size), np.nan)
  for j, row in cells.items():
    for k, value in row.items():
      if value is not None and math.isfinite(value):
        out[int(j), int(k)] = value
  return out


def _heatmap(ax, values: np.ndarray, title: str, fmt: str, label: str, fig):
  """A heat map of a triangular ``(j, k)`` matrix, each cell annotated.

  Rows ``j = 0..K-2`` against columns ``k = 1..K-1``: the cells ``j < k``.
  """
  values = values[:-1, 1:]
  finite = values[np.isfinite(values)]
  bound = float(np.abs(finite).max()) if finite.size else 0.0
  bound = bound or 1.0
  image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=-bound, vmax=bound)
  for (row, col), value in np.ndenumerate(values):
    if np.isfinite(value):
      # Dark cells get white text, so every number stays readable.
      color = "white" if abs(value) > 0.6 * bound else "black"
      ax.text(
        col, row, format(value, fmt), ha="center", va="center", fontsize=8, color=color
      )
  ax.set_xticks(range(values.shape[1]), [str(k + 1) for k in range(values.shape[1])])
  ax.set_yticks(range(values.shape[0]), [str(j) for j in range(values.shape[0])])
  ax.set_xlabel("version k")
  ax.set_ylabel("start / index version j")
  ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, label=label, shrink=0.8)


def _new_figure(width: float, height: float) -> Figure:
  fig = Figure(figsize=(width, height))
  FigureCanvasAgg(fig)
  return fig


def _file_name(prefix: str, strategy: str) -> str:
  return f"{prefix}_{re.sub(r'[^A-Za-z0-9_.-]', '_', strategy)}.png"


def figures(result: Mapping[str, Any], num_versions: int) -> dict[str, Figure]:
  """The analytics' figures by PNG file name.

  - ``compat_consumers_<strategy>.png``: per strategy, the heat map of the
    mean core-task metric of consumers that start at ``j`` and read version
    ``k``, relative to the same consumers on frozen ``M_j`` (%);
  - ``compat_retrieval.png``: per strategy, the heat map of new-query /
    old-index minus old-query / old-index Recall@50 (positive: BCT's
    criterion holds);
  - ``compat_drift.png``: mean relative drift against chain length ``k - j``,
    one line per strategy;
  - ``compat_blend.png`` and ``compat_backfill.png``: per strategy, the
    blending and backfilling curves (:func:`serving_figures`).

  Args:
    result: the output of :func:`bcjax.compatibility.analyze`.
    num_versions: K, the size of the matrices.
  """
  out = {}
  for strategy, summary in (result.get("consumers") or {}).items():
    fig = _new_figure(5.5, 4.5)
    _heatmap(
      fig.add_subplot(),
      _grid(summary["relative_matrix"], num_versions),
      f"{strategy}: consumers from version j at version k\n"
      "(core-task metric vs frozen M_j)",
      ".1f",
      "%",
      fig,
    )
    fig.tight_layout()
    out[_file_name("compat_consumers", strategy)] = fig
  retrieval = result.get("retrieval") or {}
  if retrieval:
    cols = min(4, len(retrieval))
    rows = -(-len(retrieval) // cols)
    fig = _new_figure(4.2 * cols, 3.6 * rows)
    for i, (strategy, pairs) in enumerate(retrieval.items()):
      cells: dict[int, dict[int, float | None]] = {}
      for p in pairs:
        margin = None if p["new_old"] is None else 100.0 * (p["new_old"] - p["old_old"])
        cells.setdefault(p["index_version"], {})[p["query_version"]] = margin
      _heatmap(
        fig.add_subplot(rows, cols, i + 1),
        _grid(cells, num_versions),
        f"{strategy}\nRecall@50 new/old - old/old",
        ".1f",
        "points (x100)",
        fig,
      )
    fig.tight_layout()
    out["compat_retrieval.png"] = fig
  drift = result.get("drift") or {}
  if drift:
    fig = _new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    lengths = set()
    for strategy, pairs in drift.items():
      by_length: dict[int, list[float]] = {}
      for p in pairs:
        if p["drift"] is not None and math.isfinite(p["drift"]):
          by_length.setdefault(int(p["length"]), []).append(p["drift"])
      xs = sorted(by_length)
      lengths.update(xs)
      ax.plot(
        xs, [float(np.mean(by_length[x])) for x in xs], marker="o", label=strategy
      )
    ax.set_xticks(sorted(lengths))
    ax.set_xlabel("chain length k - j")
    ax.set_ylabel("||B(z_k) - z_j|| / ||z_j|| (mean)")
    ax.set_title("Drift along the backward chain")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    out["compat_drift.png"] = fig
  out.update(serving_figures(result))
  return out


# Line styles of the backfilling orders; colours are index versions.
_ORDER_STYLES = {"bridge residual": "-", "forward residual": "--", "random": ":"}


def _panels(count: int, blocks: int = 1) -> tuple[Figure, int, int]:
  """A figure for ``count`` panels in up to 4 columns, ``blocks`` times over."""
  cols = min(4, count)
  rows = -(-count // cols)
  return _new_figure(4.2 * cols, 3.6 * rows * blocks), rows, cols


def _consumer_mean(row: Mapping[str, Any]) -> dict[str, list[float]] | None:
  """Order -> the mean curve over the tasks defined at every fraction.

  None without consumers' curves (:mod:`bcjax.compatibility.backfill_consumers`).
  """
  tasks = [
    c["curves"]
    for c in ((row.get("consumers") or {}).get("tasks") or {}).values()
    if "skipped" not in c
  ]
  orders = tasks[0] if tasks else {}
  out = {}
  for order in orders:
    defined = [t[order] for t in tasks if None not in t[order]]
    if defined:
      out[order] = np.mean(np.asarray(defined, np.float64), axis=0).tolist()
  return out or None


def serving_figures(result: Mapping[str, Any]) -> dict[str, Figure]:
  """The blending and backfilling figures, a panel per strategy.

  - ``compat_blend.png``: Recall@50 of the test users against ``alpha``, a
    line per index version ``j`` (the validation users' dashed, the chosen
    ``alpha`` circled);
  - ``compat_backfill.png``: Recall@50 against the backfilled fraction, a
    colour per index version ``j``, a line style per order; with the
    consumers' curves, a second row of panels below: the newest version's
    consumers' task metric on their selection examples, averaged over the
    tasks defined at every fraction (each task's curves are in
    ``compatibility.md``).
  """
  out = {}
  blending = {
    s: [r for r in rows if "skipped" not in r]
    for s, rows in (result.get("blending") or {}).items()
  }
  if any(blending.values()):
    fig, rows, cols = _panels(len(blending))
    for i, (strategy, entries) in enumerate(blending.items()):
      ax = fig.add_subplot(rows, cols, i + 1)
      for n, r in enumerate(entries):
        color = f"C{n}"
        for part, style in (("test", "-"), ("validation", "--")):
          alphas = sorted(r[part], key=float)
          ax.plot(
            [float(a) for a in alphas],
            [r[part][a] for a in alphas],
            style,
            color=color,
            lw=1.5 if part == "test" else 0.8,
            label=f"j = {r['index_version']}" if part == "test" else None,
          )
        ax.plot(r["alpha"], r["blended"], "o", color=color, mfc="none", ms=8)
      ax.set_xlabel("alpha (0: stored z_j, 1: B(z_k))")
      ax.set_ylabel("Recall@50")
      ax.set_title(
        f"{strategy}: blending toward the newest version\n"
        "(solid: test users, dashed: choosing users, o: chosen alpha)",
        fontsize=9,
      )
      ax.grid(True, alpha=0.3)
      ax.legend(fontsize="x-small", loc="best")
    fig.tight_layout()
    out["compat_blend.png"] = fig
  backfilling = {
    s: [r for r in rows if r.get("curves")]
    for s, rows in (result.get("backfilling") or {}).items()
  }
  if any(backfilling.values()):
    means = {s: [_consumer_mean(r) for r in rows] for s, rows in backfilling.items()}
    with_consumers = any(m for ms in means.values() for m in ms)
    fig, rows, cols = _panels(len(backfilling), 2 if with_consumers else 1)
    for i, (strategy, entries) in enumerate(backfilling.items()):
      if with_consumers:
        ax = fig.add_subplot(2 * rows, cols, rows * cols + i + 1)
        for n, (r, mean) in enumerate(zip(entries, means[strategy], strict=True)):
          for order, values in (mean or {}).items():
            ax.plot(
              r["consumers"]["fractions"],
              values,
              _ORDER_STYLES.get(order, "-."),
              color=f"C{n}",
              label=f"j = {r['index_version']}, {order}",
            )
        ax.set_xlabel("backfilled fraction of version j's items")
        ax.set_ylabel("task metric, mean over tasks")
        ax.set_title(
          f"{strategy}: consumers of the newest version\n(selection examples)",
          fontsize=9,
        )
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="xx-small", loc="best")
      ax = fig.add_subplot(rows * (2 if with_consumers else 1), cols, i + 1)
      for n, r in enumerate(entries):
        for order, values in r["curves"].items():
          ax.plot(
            r["fractions"],
            values,
            _ORDER_STYLES.get(order, "-."),
            color=f"C{n}",
            label=f"j = {r['index_version']}, {order}",
          )
      ax.set_xlabel("backfilled fraction of version j's items")
      ax.set_ylabel("Recall@50 (queries z_k)")
      ax.set_title(f"{strategy}: backfilling to the newest version", fontsize=9)
      ax.grid(True, alpha=0.3)
      ax.legend(fontsize="xx-small", loc="best")
    fig.tight_layout()
    out["compat_backfill.png"] = fig
  return out


def write_plots(result: Mapping[str, Any], outdir: str) -> list[str]:
  """Writes :func:`figures` as PNG files (atomically); returns their paths."""
  num_versions = 1 + max(
    [p["query_version"] for ps in (result.get("retrieval") or {}).values() for p in ps]
    + [p["from_version"] for ps in (result.get("drift") or {}).values() for p in ps]
    + [
      int(k)
      for c in (result.get("consumers") or {}).values()
      for row in c["matrix"].values()
      for k in row
    ],
    default=0,
  )
  return save_figures(figures(result, num_versions), outdir, dpi=110)
