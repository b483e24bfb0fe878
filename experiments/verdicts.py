"""The paper's claims judged by a run's intervals, and BC-Aligner's standing.

* :data:`PAPER_ANCHOR`: the paper's Table 3 (DESIGN §5), intended /
  unintended per strategy; :func:`verdict` judges a run's cell against it by
  its 95% interval (holds / contradicted / unresolved) and :func:`anchor_lines`
  tables every strategy's verdicts;
* :func:`ranking` and :func:`summary_row`: BC-Aligner's total against the
  best other strategy's, resolved only when the paired interval excludes 0;
* :func:`last_epoch_counts`: how many fits per strategy kept their last
  epoch (still improving when they stopped);
* :func:`anchor_words` and :func:`weight_row`: the README's verdict grid and
  the results page's row of BC-Aligner at one ``align_weight``.
"""

from __future__ import annotations

from bcjax.evaluation.table_records import (
  ComparisonTable,
  SeedRow,
  SeedTable,
  read_table,
)

# The paper's Table 3 as its code computes it on Amazon Musical Instruments
# (DESIGN §5): intended / unintended, in % of nobc / fix-m0.
PAPER_ANCHOR = {
  "fix-m0": (-26.8, 0.0),
  "finetune-m0": (-7.7, -7.5),
  "nobc": (0.0, -26.5),
  "posthoc-linear-sloss": (0.0, -10.2),
  "posthoc-linear-mloss": (0.0, -14.4),
  "joint-notrans-sloss": (-9.0, -0.8),
  "joint-linear-sloss": (-3.7, -1.1),
  "joint-linear-mloss": (-3.0, -0.65),
}
BC_ALIGNER = "joint-linear-mloss"
POSTHOC = "posthoc-linear-sloss"
# The least-squares optimum of post-hoc's linear sloss fit: by construction
# the strongest post-hoc linear B_k, so the baseline a weight must beat.
CLOSED_FORM = "closedform-linear-sloss"


def last_epoch_counts(results: dict) -> dict[str, tuple[int, int]]:
  """Per strategy, ``(fits that kept their last epoch, fits)`` over seeds.

  A fit that keeps its last epoch was still improving when it stopped. The
  fits counted are the embedding fits of versions 1.. (version 0 is M_0,
  one fit shared by every strategy); strategies that train nothing there
  (fix-m0) count none.
  """
  runs = [s.get("strategies") or {} for s in results.get("per_seed") or []] or [
    results.get("strategies") or {}
  ]
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
  runs = [s.get("strategies") or {} for s in results.get("per_seed") or []] or [
    results.get("strategies") or {}
  ]
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


def verdict(cell: dict | None, anchor: float) -> str:
  """The run's cell judged by its 95% interval against the paper's value.

  "holds" when the interval lies on the anchor's side of 0, "contradicted"
  when it lies on the other side, else "unresolved" (the interval contains
  0, or one seed gave no interval); then whether the interval contains the
  anchor's value itself.

  Args:
    cell: ``{"mean", "low", "high"}`` of the run (``low``/``high`` None with
      one seed).
    anchor: the paper's value.
  """
  if cell is None:
    return "not run"
  if anchor == 0:
    return "0 by construction"
  low, high = cell.get("low"), cell.get("high")
  if low is None or high is None:
    side = "on" if (cell["mean"] < 0) == (anchor < 0) else "not on"
    return f"unresolved: one seed, no interval (its value is {side} the anchor's side)"
  if (anchor < 0 and high < 0) or (anchor > 0 and low > 0):
    verdict = "holds"
  elif (anchor < 0 and low > 0) or (anchor > 0 and high < 0):
    verdict = "contradicted"
  else:
    verdict = "unresolved: the interval contains 0"
  contains = "contains" if low <= anchor <= high else "excludes"
  return f"{verdict}; [{low:.2f}, {high:.2f}] {contains} the anchor's {anchor:g}"


def cells(table: ComparisonTable | SeedTable) -> dict[str, dict[str, dict]]:
  """Per strategy and column, ``{"mean", "low", "high"}`` of the table."""
  out = {}
  for row in table.rows:
    intervals = row.intervals if isinstance(row, SeedRow) else {}
    out[row.strategy] = {
      column: intervals.get(column)
      or {"mean": row.cell(column), "low": None, "high": None}
      for column in ("intended", "unintended", "total")
    }
  return out


def table_and_cells(results: dict) -> tuple[ComparisonTable | SeedTable, dict]:
  table = read_table(results["table"])
  return table, cells(table)


def anchor_lines(results: dict) -> list[str]:
  """The anchor's table beside the run's, and the paper's ranking claim."""
  table, cells = table_and_cells(results)
  lines = [
    "| strategy | paper: intended / unintended | intended | unintended |",
    "|---|---|---|---|",
  ]
  for strategy, (intended, unintended) in PAPER_ANCHOR.items():
    row = cells.get(strategy)
    lines.append(
      f"| {strategy} | {intended:g} / {unintended:g} | "
      f"{verdict(row and row['intended'], intended)} | "
      f"{verdict(row and row['unintended'], unintended)} |"
    )
  return [*lines, "", ranking(table, cells)]


def paired_intervals(table: ComparisonTable | SeedTable) -> dict[str, dict]:
  """BC-Aligner's total minus each strategy's over seeds: ``{strategy:
  {"mean", "low", "high"}}``, for the strategies with an interval (none for
  one seed; none where fewer than two seeds define the difference)."""
  paired = table.paired if isinstance(table, SeedTable) else None
  if not paired:
    return {}
  return {
    row.strategy: row.interval
    for row in paired.rows
    if row.interval
    and row.interval.get("low") is not None
    and row.interval.get("high") is not None
  }


def ranking(table: ComparisonTable | SeedTable, cells: dict) -> str:
  """The paper's claim that BC-Aligner's total is the best, checked."""
  if BC_ALIGNER not in cells:
    return "BC-Aligner was not run."
  totals = {s: c["total"]["mean"] for s, c in cells.items()}
  best = max(totals, key=totals.get)
  paired = paired_intervals(table)
  mine = totals[BC_ALIGNER]
  if best == BC_ALIGNER:
    text = f"BC-Aligner's total ({mine:.2f}) is the best"
    unresolved = [s for s, diff in paired.items() if diff["low"] <= 0]
    if unresolved:
      text += "; the paired 95% interval of its lead contains 0 against " + ", ".join(
        unresolved
      )
    elif paired:
      text += (
        ", and every paired 95% interval of its lead lies above 0: the ranking "
        "is resolved"
      )
    return text + "."
  text = (
    f"BC-Aligner's total ({mine:.2f}) is not the best: {best}'s is "
    f"{totals[best]:.2f}, {totals[best] - mine:.2f} points higher"
  )
  diff = paired.get(best)
  if diff:
    text += (
      f" (paired difference BC-Aligner - {best} over seeds: {diff['mean']:.2f}, "
      f"95% interval [{diff['low']:.2f}, {diff['high']:.2f}])"
    )
    if diff["low"] <= 0 <= diff["high"]:
      text += "; the interval contains 0, so this ranking is not resolved"
    else:
      text += "; the interval excludes 0: the ranking is resolved"
  return text + "."


def with_interval(cell: dict) -> str:
  """``mean ± half-width`` of a cell (the mean alone without an interval)."""
  if cell.get("low") is None or cell.get("high") is None:
    return f"{cell['mean']:.2f}"
  return f"{cell['mean']:.2f} ± {(cell['high'] - cell['low']) / 2:.2f}"


def summary_row(results: dict) -> list[str]:
  """Seeds, BC-Aligner's total, the best other one's, their paired difference."""
  table, cells = table_and_cells(results)
  seeds = str(getattr(table, "num_seeds", 1))
  if BC_ALIGNER not in cells:
    return [seeds, "not run", "", ""]
  totals = {s: c["total"] for s, c in cells.items() if s != BC_ALIGNER}
  if not totals:
    return [seeds, with_interval(cells[BC_ALIGNER]["total"]), "", ""]
  other = max(totals, key=lambda s: totals[s]["mean"])
  paired = paired_intervals(table)
  diff = paired.get(other)
  if diff is None:
    why = "one seed" if not isinstance(table, SeedTable) else "no paired interval"
    difference = (
      f"{cells[BC_ALIGNER]['total']['mean'] - totals[other]['mean']:.2f} ({why})"
    )
  else:
    verdict = (
      "BC-Aligner ahead"
      if diff["low"] > 0
      else (f"{other} ahead" if diff["high"] < 0 else "not resolved")
    )
    difference = (
      f"{diff['mean']:.2f} [{diff['low']:.2f}, {diff['high']:.2f}]: {verdict}"
    )
  return [
    seeds,
    with_interval(cells[BC_ALIGNER]["total"]),
    f"{other}: {with_interval(totals[other])}",
    difference,
  ]


def anchor_words(results: dict) -> dict[str, str]:
  """Per anchor strategy, its two verdicts' first words: "holds / unresolved"."""
  _, cells = table_and_cells(results)
  out = {}
  for strategy, anchors in PAPER_ANCHOR.items():
    row = cells.get(strategy)
    words = [
      verdict(row and row[column], anchor).split(";")[0].split(":")[0]
      for column, anchor in zip(("intended", "unintended"), anchors)
    ]
    out[strategy] = " / ".join(words)
  return out


def weight_row(results: dict) -> list[str]:
  """BC-Aligner's intended, unintended and total cells, and its paired
  differences with posthoc-linear-sloss (the paper's post-hoc baseline) and
  closedform-linear-sloss (its least-squares optimum)."""
  table, cells = table_and_cells(results)
  if BC_ALIGNER not in cells:
    return ["not run", "", "", "", ""]
  mine = [
    with_interval(cells[BC_ALIGNER][c]) for c in ("intended", "unintended", "total")
  ]
  paired = paired_intervals(table)
  differences = []
  for other in (POSTHOC, CLOSED_FORM):
    diff = paired.get(other)
    if diff is None:
      differences.append("not run" if other not in cells else "no paired interval")
    else:
      differences.append(f"{diff['mean']:.2f} [{diff['low']:.2f}, {diff['high']:.2f}]")
  return [*mine, *differences]
