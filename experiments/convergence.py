"""Fits at their stop, read from a run's records.

* :func:`last_epoch_counts` and :func:`last_epoch_line`: fits that kept
  their last epoch (still improving when they stopped, by the stop rule's
  own measure);
* :func:`convergence` and :func:`convergence_lines`: per strategy, its
  embedding fits and its post-hoc B_k fits still moving at their stop by a
  statistic the stop rule does not define (the least-squares slope of the
  selection curve over the last checks, with its 95% interval), the fits
  stopped by their cap, and the median stop epoch.
"""

from __future__ import annotations

import math
import statistics

from bcjax.evaluation.intervals import t_quantile


def _seed_strategies(results: dict) -> list[dict]:
  """Every embedding seed's ``strategies`` (the run's own for one seed)."""
  seeds = results.get("per_seed") or []
  return [s.get("strategies") or {} for s in seeds] or [results.get("strategies") or {}]


def last_epoch_counts(results: dict) -> dict[str, tuple[int, int]]:
  """Per strategy, ``(fits that kept their last epoch, fits)`` over seeds.

  A fit that keeps its last epoch was still improving when it stopped. The
  fits counted are the embedding fits of versions 1.. (version 0 is M_0,
  one fit shared by every strategy); strategies that train nothing there
  (fix-m0) count none.
  """
  runs = _seed_strategies(results)
  counts = {}
  for strategies in runs:
    for name, entries in strategies.items():
      kept, fits = counts.get(name, (0, 0))
      for entry in entries:
        history = entry.get("history") or []
        if entry.get("version", 0) >= 1 and history:
          fits += 1
          kept += entry.get("best_epoch") == history[-1]["epoch"]
      counts[name] = (kept, fits)
  return counts


def transform_last_epoch_counts(results: dict) -> dict[str, tuple[int, int]]:
  """Per post-hoc strategy, ``(B_k fits that kept their last epoch, fits)``.

  A post-hoc strategy's entries carry nobc's embedding fit (``best_epoch``,
  ``history``) and its own ``B_k`` fit's kept epoch
  (``transform_best_epoch``), whose last epoch is the config's post-hoc
  epochs (``method.posthoc.epochs``; ``posthoc_epochs`` in older runs).
  """
  config = results.get("config") or {}
  last = ((config.get("method") or {}).get("posthoc") or {}).get(
    "epochs", config.get("posthoc_epochs")
  )
  runs = _seed_strategies(results)
  counts = {}
  for strategies in runs:
    for name, entries in strategies.items():
      for entry in entries:
        # Closed-form B_k (epoch 0) trained no epochs.
        if last is not None and (entry.get("transform_best_epoch") or 0) > 0:
          kept, fits = counts.get(name, (0, 0))
          counts[name] = (kept + (entry["transform_best_epoch"] == last), fits + 1)
  return counts


def last_epoch_line(results: dict) -> str:
  """The counts of :func:`last_epoch_counts` (and of post-hoc B_k fits)."""
  counts = {s: c for s, c in last_epoch_counts(results).items() if c[1]}
  if not counts:
    return "No fit after version 0 recorded its epochs."
  line = "Fits that kept their last epoch (still improving when they stopped): " + (
    ", ".join(f"{s} {kept}/{fits}" for s, (kept, fits) in counts.items()) + "."
  )
  transforms = transform_last_epoch_counts(results)
  if transforms:
    line += " Post-hoc B_k fits that kept their last epoch: " + (
      ", ".join(f"{s} {kept}/{fits}" for s, (kept, fits) in transforms.items()) + "."
    )
  return line


# A fit is "still moving at its stop" when the least-squares slope of its raw
# selection curve over its last checks has a 95% interval off 0 in the
# improving direction: a statistic the stop rule does not define.
SLOPE_CHECKS = 6


def slope_interval(points, level: float = 0.95) -> tuple[float, float, float] | None:
  """The least-squares slope of ``(x, y)`` points and its Student-t interval.

  Returns:
    ``(slope, low, high)``; None for fewer than three points or one x.
  """
  n = len(points)
  if n < 3:
    return None
  xs = [float(x) for x, _ in points]
  ys = [float(y) for _, y in points]
  mx, my = sum(xs) / n, sum(ys) / n
  sxx = sum((x - mx) ** 2 for x in xs)
  if sxx == 0:
    return None
  slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
  residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys))
  se = math.sqrt(residual / (n - 2) / sxx)
  half = t_quantile(0.5 + level / 2, n - 2) * se
  return slope, slope - half, slope + half


def _fit_summary(curves: list[tuple[list, int | None]], rising: bool) -> dict:
  """Counts over fits, each ``(its (epoch, value) checks, its cap)``."""
  moving = capped = 0
  stops = []
  for points, cap in curves:
    stops.append(points[-1][0])
    capped += cap is not None and points[-1][0] >= cap
    slope = slope_interval(points[-SLOPE_CHECKS:])
    if slope is not None:
      moving += slope[1] > 0 if rising else slope[2] < 0
  return {
    "fits": len(curves),
    "still_moving": moving,
    "capped": capped,
    "median_stop": statistics.median(stops) if stops else None,
  }


def convergence(results: dict) -> dict[str, dict[str, dict]]:
  """Per strategy, its embedding fits and its post-hoc B_k fits at their stop.

  ``"embedding"``: the fits of versions 1.. with a recorded curve (their
  selection Recall@50), "still moving" when still rising; ``"transform"``:
  the B_k fits with a recorded curve (their alignment error), "still moving"
  when still falling. Each: ``fits``, ``still_moving`` (the slope over the
  last :data:`SLOPE_CHECKS` checks, 95% interval off 0), ``capped`` (the
  fit ran to its cap), ``median_stop`` (epoch). A fit's cap is its record's
  (``max_epochs``), else the config's ``epochs`` (older runs).
  """
  config = results.get("config") or {}
  runs = _seed_strategies(results)
  out = {}
  for name in runs[0]:
    embedding, transform = [], []
    for strategies in runs:
      for entry in strategies.get(name, []):
        history = entry.get("history") or []
        if entry.get("version", 0) >= 1 and history:
          points = [(h["epoch"], h["recall@50"]) for h in history]
          embedding.append((points, entry.get("max_epochs", config.get("epochs"))))
        if entry.get("transform_history"):
          transform.append(
            (entry["transform_history"], entry.get("transform_max_epochs"))
          )
    out[name] = {
      "embedding": _fit_summary(embedding, rising=True),
      "transform": _fit_summary(transform, rising=False),
    }
  return out


def convergence_lines(results: dict) -> list[str]:
  """:func:`convergence` as a table (strategies that fitted something)."""
  lines = [
    f'Fits at their stop ("moving": the least-squares slope of the selection '
    f"curve over the last {SLOPE_CHECKS} checks has a 95% interval above 0 for "
    'Recall@50, below 0 for a B_k\'s alignment error; "capped": ran to its '
    "epoch cap):",
    "",
    "| strategy | embedding fits | still rising | capped | median stop | "
    "B_k fits | still falling | capped | median stop |",
    "|---|---|---|---|---|---|---|---|---|",
  ]

  def cells(summary):
    if not summary["fits"]:
      return ["-", "", "", ""]
    return [
      str(summary["fits"]),
      str(summary["still_moving"]),
      str(summary["capped"]),
      f"{summary['median_stop']:g}",
    ]

  rows = [
    f"| {name} | " + " | ".join(cells(c["embedding"]) + cells(c["transform"])) + " |"
    for name, c in convergence(results).items()
    if c["embedding"]["fits"] or c["transform"]["fits"]
  ]
  return lines + rows if rows else []
