"""The paper's claims judged by a run's intervals, and BC-Aligner's standing.

* :data:`PAPER_ANCHOR`: the reference notebook's Table 3 (DESIGN §5,
  measured on Amazon Musical Instruments), intended / unintended per
  strategy; :func:`verdict` judges a run's cell against it by its 95%
  interval (holds / contradicted / unresolved: a sign verdict, since the
  values come from another dataset) and :func:`anchor_lines` tables every
  strategy's verdicts;
* :func:`claims`: the paper's two claims as rows: BC-Aligner has the best
  total; in joint training the multi-step loss beats the single-step one;
* :func:`compare_against`: a strategy's total against every other one in the
  run, paired t-tests over seeds with Holm's correction and
  Bonferroni-adjusted intervals; :func:`ranking` and :func:`summary_row`
  read BC-Aligner's standing from them (never from means alone);
* :func:`anchor_words` and :func:`weight_row`: the README's verdict grid and
  the results page's row of BC-Aligner at one ``align_weight``.
"""

from __future__ import annotations

import dataclasses

from bcjax.components.hparams import section_key
from bcjax.evaluation.intervals import holm, mean_interval, paired_t_test
from bcjax.evaluation.table_records import (
  ComparisonTable,
  SeedRow,
  SeedTable,
  read_table,
)
from bcjax.methods.strategies import parse_strategy

# The reference notebook's Table 3: the paper's code run on Amazon Musical
# Instruments (DESIGN §5), intended / unintended, in % of nobc / fix-m0.
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
# The paper's second claim: in joint training, multi-step beats single-step.
MULTI_STEP, SINGLE_STEP = "joint-linear-mloss", "joint-linear-sloss"
# The family-wise error rate of a strategy's comparisons with the others.
ALPHA = 0.05
ANCHOR_SOURCE = (
  "the reference notebook's Table 3 (the paper's code on Amazon Musical "
  "Instruments, another dataset: its signs are compared, not its values)"
)


@dataclasses.dataclass(frozen=True)
class Comparison:
  """One strategy's total minus another's, paired by seed.

  Attributes:
    other: the strategy compared with.
    n: seeds where both totals are defined.
    mean: the mean difference.
    low: the lower end of its Bonferroni-adjusted interval (level ``1 -
      alpha / m`` for ``m`` comparisons); None under two seeds.
    high: the upper end.
    p: the paired t-test's two-sided p-value; None under two seeds.
    p_holm: ``p`` after Holm's correction over the ``m`` comparisons.
    alpha: the family-wise error rate.
  """

  other: str
  n: int
  mean: float
  low: float | None
  high: float | None
  p: float | None
  p_holm: float | None
  alpha: float = ALPHA

  @property
  def verdict(self) -> str:
    """``"ahead"`` or ``"behind"`` when Holm's test rejects a zero
    difference at ``alpha``, else ``"unresolved"``."""
    if self.p_holm is None or self.p_holm > self.alpha:
      return "unresolved"
    return "ahead" if self.mean > 0 else "behind"

  def format(self) -> str:
    """``"+2.62 [0.24, 4.99], p_Holm 0.031"``."""
    if self.low is None:
      return f"{self.mean:+.2f} (one seed: no test)"
    return (
      f"{self.mean:+.2f} [{self.low:.2f}, {self.high:.2f}], p_Holm {self.p_holm:.3g}"
    )


def per_seed_column(results: dict, column: str = "total") -> dict[str, list]:
  """Per strategy, ``column`` of every seed's table (None where undefined)."""
  seeds = [s["table"] for s in results.get("per_seed") or []] or [results["table"]]
  out: dict[str, list] = {}
  for i, table in enumerate(seeds):
    for row in table["rows"]:
      out.setdefault(row["strategy"], [None] * len(seeds))[i] = row.get(column)
  return out


def compare_against(
  results: dict,
  strategy: str,
  others: list[str] | None = None,
  column: str = "total",
  alpha: float = ALPHA,
) -> list[Comparison]:
  """``strategy``'s ``column`` minus each other's, tested together.

  Args:
    results: a run's results (``per_seed`` tables for several seeds).
    strategy: the strategy judged.
    others: the strategies it is compared with (None: every other one in
      the run); one family for Holm's correction.
    column: the table column.
    alpha: the family-wise error rate.

  Returns:
    One :class:`Comparison` per other strategy, in the run's order.
  """
  values = per_seed_column(results, column)
  if strategy not in values:
    return []
  others = [s for s in (others or values) if s != strategy and s in values]
  differences = [
    [
      a - b
      for a, b in zip(values[strategy], values[o])
      if a is not None and b is not None
    ]
    for o in others
  ]
  p = [paired_t_test(d) for d in differences]
  tested = [i for i, x in enumerate(p) if x is not None]
  adjusted = dict(zip(tested, holm([p[i] for i in tested])))
  level = 1 - alpha / max(len(tested), 1)
  out = []
  for i, (other, d) in enumerate(zip(others, differences)):
    if not d:
      continue
    interval = mean_interval(d, level)
    out.append(
      Comparison(
        other,
        len(d),
        interval.mean,
        interval.low,
        interval.high,
        p[i],
        adjusted.get(i),
        alpha,
      )
    )
  return out


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
  """The anchor's table beside the run's, the paper's two claims, and
  BC-Aligner's standing."""
  _, cells = table_and_cells(results)
  lines = [
    f"Sign verdicts against {ANCHOR_SOURCE}:",
    "",
    "| strategy | reference notebook: intended / unintended | intended | unintended |",
    "|---|---|---|---|",
  ]
  for strategy, (intended, unintended) in PAPER_ANCHOR.items():
    row = cells.get(strategy)
    lines.append(
      f"| {strategy} | {intended:g} / {unintended:g} | "
      f"{verdict(row and row['intended'], intended)} | "
      f"{verdict(row and row['unintended'], unintended)} |"
    )
  return [*lines, "", *claim_lines(results), "", ranking(results)]


def claims(results: dict) -> dict[str, tuple[str, str]]:
  """The paper's two claims, judged by this run: claim -> ``(verdict, why)``.

  * "BC-Aligner has the best total": holds when Holm's tests put it ahead of
    every other strategy of the run, is contradicted when they put any
    strategy ahead of it, else unresolved;
  * "in joint training the multi-step loss beats the single-step one":
    joint-linear-mloss minus joint-linear-sloss, one paired t-test.

  Each is judged at the paper's lambda and, for a run with a
  ``weight_selection`` (:mod:`bcjax.jobs.weight_tuning`), again with each
  strategy at its chosen weight; a strategy is never compared with itself
  at another weight. The verdict is "holds", "contradicted", "unresolved"
  or "not run".
  """
  out = {}
  settings = [("", lambda name: name)]
  if results.get("weight_selection"):
    settings.append((" (each at its chosen weight)", lambda n: at_chosen(results, n)))
  for where, name_of in settings:
    best = name_of(BC_ALIGNER)
    others = [s for s in per_seed_column(results) if _base(s) != BC_ALIGNER]
    out["BC-Aligner has the best total" + where] = _best(results, best, others)
    out["multi-step beats single-step in joint training" + where] = _pair(
      results, name_of(MULTI_STEP), name_of(SINGLE_STEP)
    )
  return out


def at_chosen(results: dict, strategy: str) -> str | None:
  """``strategy``'s name at the weight its tuning chose, as the run named it:
  the name with ``@<field>=<weight>``, or the plain name where the chosen
  weight is the config's own; None where the run has neither."""
  record = (results.get("weight_selection") or {}).get(strategy)
  if record is None:
    return None
  field, chosen = record["field"], float(record["chosen_weight"])
  names = per_seed_column(results)
  for name in names:
    parsed = parse_strategy(name)
    if parsed.base_name == strategy and dict(parsed.overrides).get(field) == chosen:
      return name
  section = section_key(parse_strategy(strategy).method)
  own = ((results.get("config") or {}).get("method") or {}).get(section, {}).get(field)
  if strategy in names and own is not None and float(own) == chosen:
    return strategy
  return None


def _base(name: str) -> str:
  return parse_strategy(name).base_name


def _best(results: dict, best: str | None, others: list[str]) -> tuple[str, str]:
  against = compare_against(results, best, others) if best else []
  if not against:
    return ("not run", "BC-Aligner and another strategy are needed")
  if any(c.low is None for c in against):
    return ("unresolved", "one seed, no test")
  behind = [c.other for c in against if c.verdict == "behind"]
  open_ = [c.other for c in against if c.verdict == "unresolved"]
  m = f"(Holm, m = {len(against)})"
  if behind:
    return ("contradicted", f"behind {', '.join(behind)} {m}")
  if open_:
    return ("unresolved", f"not resolved against {', '.join(open_)} {m}")
  return ("holds", f"ahead of all {len(against)} others {m}")


def _pair(results: dict, multi: str | None, single: str | None) -> tuple[str, str]:
  pair = compare_against(results, multi, [single]) if multi and single else []
  if not pair:
    return ("not run", f"{MULTI_STEP} and {SINGLE_STEP} are needed")
  if pair[0].low is None:
    return ("unresolved", f"one seed, no test ({pair[0].mean:+.2f})")
  word = {"ahead": "holds", "behind": "contradicted"}.get(pair[0].verdict, "unresolved")
  return (word, f"{multi} - {single}: {pair[0].format()}")


def claim_lines(results: dict) -> list[str]:
  """:func:`claims` as a table."""
  lines = ["| the paper's claim | this run |", "|---|---|"]
  return lines + [
    f"| {claim} | {word}: {why} |" for claim, (word, why) in claims(results).items()
  ]


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


def ranking(results: dict) -> str:
  """BC-Aligner's total against every other strategy's: paired t-tests
  over seeds with Holm's correction, Bonferroni-adjusted intervals."""
  against = compare_against(results, BC_ALIGNER)
  if BC_ALIGNER not in per_seed_column(results):
    return "BC-Aligner was not run."
  if not against:
    return "BC-Aligner ran alone."
  if any(c.low is None for c in against):
    return "One seed: BC-Aligner's total is compared by no test."
  groups = {
    word: [c for c in against if c.verdict == word]
    for word in ("ahead", "behind", "unresolved")
  }
  text = (
    f"BC-Aligner's total against the {len(against)} other strategies "
    "(paired t-tests over seeds, Holm-corrected at 0.05; differences with "
    f"Bonferroni-adjusted {100 * (1 - ALPHA / len(against)):.1f}% intervals):"
  )
  for word, found in groups.items():
    if found:
      text += f" {word} of " if word != "unresolved" else " unresolved against "
      text += ", ".join(f"{c.other} {c.format()}" for c in found) + ";"
  return text.rstrip(";") + "."


def with_interval(cell: dict) -> str:
  """``mean ± half-width`` of a cell (the mean alone without an interval)."""
  if cell.get("low") is None or cell.get("high") is None:
    return f"{cell['mean']:.2f}"
  return f"{cell['mean']:.2f} ± {(cell['high'] - cell['low']) / 2:.2f}"


def summary_row(results: dict) -> list[str]:
  """Seeds, BC-Aligner's total, and the strategies Holm's tests put ahead of
  it and behind it (the rest unresolved)."""
  table, cells = table_and_cells(results)
  seeds = str(getattr(table, "num_seeds", 1))
  if BC_ALIGNER not in cells:
    return [seeds, "not run", "", ""]
  against = compare_against(results, BC_ALIGNER)
  mine = with_interval(cells[BC_ALIGNER]["total"])
  if not against or any(c.low is None for c in against):
    return [seeds, mine, "no test (one seed)", ""]
  ahead = [c.other for c in against if c.verdict == "behind"]
  behind = [c.other for c in against if c.verdict == "ahead"]
  return [
    seeds,
    mine,
    ", ".join(ahead) or "none",
    f"{len(behind)} of {len(against)}",
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
