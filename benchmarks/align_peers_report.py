"""``benchmarks.align_peers``'s summary of its seeds and its Markdown tables.

A seed's entry (:func:`benchmarks.align_peers.one_seed`) holds one side per
tool: ``bcjax`` (auto), ``rebasis`` (rebasis's own pick), and where recorded
``bcjax_one_split`` (auto's first fold alone), ``rebasis_auto_rule``,
``vectormigrate`` (auto's rule among vectormigrate's candidates, or its
refusal of the pair), ``vectormigrate_cosine_rule`` and
``rebasis_candidates`` (every rebasis candidate's test measures). Each side
holds the test measures of :data:`MEASURES`; ``combined`` is their mean.

Verdicts: auto - rebasis's pick is tested per pair and measure by the
two-sided paired t-test over seeds, and the p-values of all pairs x
:data:`MEASURES` are adjusted together by Holm's method; a difference is
resolved (ahead or behind) when its adjusted p is at most :data:`ALPHA`.
The best rebasis candidate in hindsight is, per pair and score, the one
candidate with the highest mean test score over the seeds, used on every
seed: no rule can choose it, but it bounds what choosing could gain.
"""

from __future__ import annotations

import collections
import statistics

from bcjax.evaluation.intervals import (
  holm,
  mean_interval,
  paired_difference,
  paired_t_test,
)
from benchmarks.align_vectormigrate import pair_refusal

MEASURES = ("self_recall", "neighbour_overlap")
SCORES = (*MEASURES, "combined")  # combined: the mean of the two measures
ALPHA = 0.05
AIM = 0.005  # issue 41's aim for the gap to the best candidate in hindsight
# Other sides -> the key of bcjax auto's paired difference from each.
OTHERS = {
  "rebasis_auto_rule": "difference_auto_rule",
  "vectormigrate": "difference_vectormigrate",
  "vectormigrate_cosine_rule": "difference_vectormigrate_cosine_rule",
}


def score(side: dict, key: str) -> float:
  """A side's test ``key`` (a measure, or ``combined``: the measures' mean)."""
  if key == "combined":
    return sum(side[m] for m in MEASURES) / len(MEASURES)
  return side[key]


def summarize(seeds: list[dict]) -> dict:
  """Per score: each side's mean interval and the paired differences'.

  ``difference``: bcjax auto - rebasis's pick, with its t-test's ``p``;
  ``difference_one_split``: auto - auto's first fold alone;
  ``hindsight``: the best rebasis candidate in hindsight (its name, mean and
  ``difference``: auto - it); ``spread``: each side's standard deviation
  over seeds; ``difference_auto_rule``:
  bcjax auto - the rebasis candidate auto's rule picks;
  ``difference_vectormigrate`` (``_cosine_rule``): bcjax auto - the
  vectormigrate candidate auto's rule (its validation cosine) picks. A side
  is summarised when every seed has its measures (not where vectormigrate
  refused the pair).
  """
  out = {}
  for key in SCORES:
    a = [score(s["bcjax"], key) for s in seeds]
    b = [score(s["rebasis"], key) for s in seeds]
    out[key] = {
      "bcjax": _interval(mean_interval(a)),
      "rebasis": _interval(mean_interval(b)),
      "difference": {
        **_interval(paired_difference(a, b)),
        "p": paired_t_test([x - y for x, y in zip(a, b, strict=True)]),
      },
      "spread": {"bcjax": _sd(a), "rebasis": _sd(b)},
    }
    for side, difference in {
      **OTHERS,
      "bcjax_one_split": "difference_one_split",
    }.items():
      if all(side in s for s in seeds) and all(
        m in s[side] for s in seeds for m in MEASURES
      ):
        c = [score(s[side], key) for s in seeds]
        out[key][side] = _interval(mean_interval(c))
        out[key][difference] = _interval(paired_difference(a, c))
        out[key]["spread"][side] = _sd(c)
    if all("rebasis_candidates" in s for s in seeds):
      out[key]["hindsight"] = _hindsight(seeds, key, a)
  return out


def _hindsight(seeds: list[dict], key: str, ours: list[float]) -> dict:
  """The rebasis candidate best on ``key`` over all seeds, and auto - it."""
  names = [
    n
    for n in seeds[0]["rebasis_candidates"]
    if all(n in s["rebasis_candidates"] for s in seeds)
  ]
  means = {
    n: statistics.fmean(score(s["rebasis_candidates"][n], key) for s in seeds)
    for n in names
  }
  best = max(names, key=lambda n: (means[n], -names.index(n)))
  theirs = [score(s["rebasis_candidates"][best], key) for s in seeds]
  return {
    "method": best,
    "mean": means[best],
    "difference": _interval(paired_difference(ours, theirs)),
  }


def _sd(values: list[float]) -> float:
  return statistics.stdev(values) if len(values) > 1 else 0.0


def verdicts(summaries: dict) -> dict[tuple[str, str], dict]:
  """Holm over pairs x :data:`MEASURES` of auto - rebasis's pick.

  Args:
    summaries: pair -> its :func:`summarize`.

  Returns:
    ``(pair, measure) -> {"p", "p_holm", "verdict"}``, the verdict
    ``ahead``, ``behind`` or ``tie`` (not resolved at :data:`ALPHA`).
  """
  cells = [(name, key) for name in summaries for key in MEASURES]
  diffs = [summaries[n][k]["difference"] for n, k in cells]
  ps = [1.0 if d.get("p") is None else d["p"] for d in diffs]
  adjusted = holm(ps)
  out = {}
  for cell, d, p, q in zip(cells, diffs, ps, adjusted, strict=True):
    resolved = q <= ALPHA
    verdict = ("ahead" if d["mean"] > 0 else "behind") if resolved else "tie"
    out[cell] = {"p": p, "p_holm": q, "verdict": verdict}
  return out


def seed_line(seed: dict) -> str:
  """One seed's choices and combined test scores, for a run's log."""
  parts = []
  for side in ("bcjax", "bcjax_one_split", "rebasis"):
    m = seed[side]
    parts.append(
      f"{side} {m.get('family', m.get('method'))} {score(m, 'combined'):.4f}"
    )
  return ", ".join(parts)


def _interval(i) -> dict:
  return {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}


def _cell(i: dict) -> str:
  if i["low"] is None:
    return f"{i['mean']:+.4f}"
  return f"{i['mean']:+.4f} [{i['low']:+.4f}, {i['high']:+.4f}]"


def _mean(i: dict | None) -> str:
  return "-" if i is None else f"{i['mean']:.4f}"


def _bcjax_choice(s: dict) -> str:
  """``family`` with ``+centre``/``+L2`` for the preprocessing auto chose."""
  marks = ("+centre" if s.get("center") else "") + ("+L2" if s.get("normalize") else "")
  return s["family"] + marks


def _counts(names) -> str:
  counted = collections.Counter(names).most_common()
  return ", ".join(f"{name} ({n})" for name, n in counted) or "-"


def _hindsight_lines(summaries: dict, names: dict) -> list[str]:
  """auto - the best rebasis candidate chosen in hindsight, per pair and score."""
  rows, gaps = [], {}
  for name, summary in summaries.items():
    for key in SCORES:
      h = summary[key].get("hindsight")
      if h is None:
        continue
      rows.append(
        f"| {name} | {names[key]} | {summary[key]['bcjax']['mean']:.4f} | "
        f"{h['method']} | {h['mean']:.4f} | {_cell(h['difference'])} |"
      )
      if key == "combined":
        gaps[name] = h["difference"]["mean"]
  if not rows:
    return []
  short = [n for n, g in gaps.items() if g < -AIM]
  worst = min(gaps, key=gaps.get)
  return [
    "",
    "Gap to the best rebasis candidate chosen in hindsight (the one candidate "
    "with the highest mean test score over the seeds, per pair and score, used "
    "on every seed):",
    "",
    "| pair | score | bcjax auto | best rebasis candidate | its mean | auto - it |",
    "|---|---|---|---|---|---|",
    *rows,
    "",
    f"On the mean of both measures, auto - the best in hindsight has a mean "
    f"over pairs of {statistics.fmean(gaps.values()):+.4f}; the worst pair is "
    f"{worst} at {gaps[worst]:+.4f}. Pairs whose mean gap is below -{AIM}: "
    f"{', '.join(short) or 'none'}.",
  ]


def _stability_lines(results: dict, summaries: dict) -> list[str]:
  """How stable auto's choice is: across folds, across seeds, in what it costs."""
  rows = []
  sides = ("bcjax", "bcjax_one_split", "rebasis")
  for name, pair in results["pairs"].items():
    seeds = pair["seeds"]
    c = summaries[name]["combined"]
    if "difference_one_split" not in c or not all("bcjax_folds" in s for s in seeds):
      continue
    agreement = statistics.fmean(s["bcjax_folds"]["agreement"] for s in seeds)
    folds = seeds[0]["bcjax"].get("folds", "?")
    kinds = [
      len({_bcjax_choice(s[side]) + s[side]["hparams"] for s in seeds})
      for side in sides[:2]
    ]
    # Each seed's cost of its choice: its score - the best fixed candidate's.
    best = c["hindsight"]["method"]
    gaps = [
      [
        score(s[side], "combined") - score(s["rebasis_candidates"][best], "combined")
        for s in seeds
      ]
      for side in sides
    ]
    rows.append(
      f"| {name} | {folds} | {agreement:.2f} | {kinds[0]} | {kinds[1]} | "
      + " | ".join(f"{_sd(g):.4f}" for g in gaps)
      + " | "
      + " | ".join(f"{min(g):+.4f}" for g in gaps)
      + f" | {_cell(c['difference_one_split'])} |"
    )
  if not rows:
    return []
  return [
    "",
    "Stability of auto's choice, on the mean of both measures: the share of "
    "folds whose own choice is auto's (mean over seeds); how many different "
    "candidates (family, hyper-parameters, preprocessing) it chose over the "
    "seeds, with its folds and with its first fold alone (one split: auto "
    "with folds=1, the rule before folds); per seed, what a choice costs "
    "against the best rebasis candidate in hindsight (the table above), its "
    "standard deviation over seeds and its worst seed, for auto with folds, "
    "auto on one split and rebasis's pick; and auto with folds - auto on one "
    "split:",
    "",
    "| pair | folds | folds agreeing | choices: folds | choices: one split | "
    "sd of cost: folds | one split | rebasis | worst seed: folds | one split | "
    "rebasis | folds - one split |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
    *rows,
  ]


def _folds_run(results: dict) -> int:
  """The most folds auto validated by on any split (1 before folds)."""
  return max(
    s["bcjax"].get("folds", 1) for p in results["pairs"].values() for s in p["seeds"]
  )


def _command_lines(results: dict) -> list[str]:
  """Every command that wrote the .json, in order, and which pairs each ran."""
  commands = results["run"]["command"].split("; ")
  made = collections.defaultdict(list)
  for name, pair in results["pairs"].items():
    made[pair.get("command")].append(name)
  lines = [
    "",
    "Commands, in order (a later one re-using, with --reuse, the earlier "
    "ones' peer sides of the pairs it names):",
    "",
  ]
  for i, command in enumerate(commands, 1):
    names = made.get(command)
    last = f" Last ran: {', '.join(names)}." if names else ""
    lines.append(f"{i}. `{command}`{last}")
  return lines


def _picks(seeds: list[dict], side: str) -> str:
  return _counts(s[side]["method"] for s in seeds if "method" in s.get(side, {}))


def to_markdown(results: dict) -> str:
  """The per-pair tables, Holm's verdicts, the hindsight gaps and the choices."""
  seeds = results.get("seed_list")
  k = results.get("k", 10)
  names = {
    "self_recall": f"self-retrieval@{k}",
    "neighbour_overlap": f"overlap@{k}",
    "combined": "mean of both",
  }
  # Summarised again from the seeds: a .json written before a score was
  # added still gets every table.
  summaries = {n: summarize(p["seeds"]) for n, p in results["pairs"].items()}
  judged = verdicts(summaries)
  lines = [
    "### bcjax align auto vs rebasis and vectormigrate (test rows; mean over "
    f"{len(seeds) if seeds else results.get('seeds', '?')} split seeds"
    + (f" {seeds[0]}..{seeds[-1]}" if seeds else "")
    + "; differences: mean and 95% Student-t interval of the per-seed "
    f"difference; p: paired t-test, Holm-adjusted over all {len(judged)} tests (pairs x "
    "measures))",
    "",
    "| pair | measure | bcjax auto | rebasis | auto - rebasis | p (Holm) | "
    "verdict | rebasis by auto's rule | auto - that | vectormigrate by auto's "
    "rule | auto - vectormigrate |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for name, pair in results["pairs"].items():
    refused = pair_refusal(pair["seeds"])
    for key in MEASURES:
      s = summaries[name][key]
      v = judged[name, key]
      other, vm = s.get("difference_auto_rule"), s.get("difference_vectormigrate")
      lines.append(
        f"| {name} | {names[key]} | {s['bcjax']['mean']:.4f} | "
        f"{s['rebasis']['mean']:.4f} | {_cell(s['difference'])} | "
        f"{v['p']:.3f} ({v['p_holm']:.3f}) | {v['verdict']} | "
        f"{_mean(s.get('rebasis_auto_rule'))} | "
        f"{'-' if other is None else _cell(other)} | "
        f"{'refused' if refused else _mean(s.get('vectormigrate'))} | "
        f"{'-' if vm is None else _cell(vm)} |"
      )
  behind = [
    f"{n} {names[m]}" for (n, m), v in judged.items() if v["verdict"] == "behind"
  ]
  ahead = [f"{n} {names[m]}" for (n, m), v in judged.items() if v["verdict"] == "ahead"]
  lines += [
    "",
    f"Resolved behind rebasis's pick after Holm: {', '.join(behind) or 'none'}. "
    f"Resolved ahead: {', '.join(ahead) or 'none'}.",
  ]
  lines += _hindsight_lines(summaries, names)
  lines += _stability_lines(results, summaries)
  lines += [
    "",
    "| pair | rows | R^2 new -> old, old -> new | auto's choices (seeds) | "
    "rebasis's choices | rebasis by auto's rule | vectormigrate by auto's rule |",
    "|---|---|---|---|---|---|---|",
  ]
  for name, pair in results["pairs"].items():
    seeds_ = pair["seeds"]
    refused = pair_refusal(seeds_)
    r2 = pair.get("r_squared")
    lines.append(
      f"| {name} | {pair['note']} | "
      + ("-" if r2 is None else f"{r2['new_to_old']:.3f}, {r2['old_to_new']:.3f}")
      + f" | {_counts(_bcjax_choice(s['bcjax']) for s in seeds_)} | "
      f"{_picks(seeds_, 'rebasis')} | {_picks(seeds_, 'rebasis_auto_rule')} | "
      f"{f'refused: {refused}' if refused else _picks(seeds_, 'vectormigrate')} |"
    )
  run = results.get("run")
  if run:
    lines += [
      "",
      f"rebasis {run['rebasis_version']}: candidates fitted: "
      f"{', '.join(run['rebasis_candidates'])}; skipped: "
      f"{', '.join(run['rebasis_skipped']) or 'none'} (torch "
      f"{'installed' if run['rebasis_torch'] else 'not installed'}). "
      f"Seconds per split (mean): bcjax auto {run['bcjax_seconds']:.1f} "
      f"(in-process, {run['bcjax_candidates']} candidates x "
      f"{_folds_run(results)} folds), rebasis "
      f"{run['rebasis_seconds']:.1f} (a subprocess, both fits).",
    ]
    if run.get("vectormigrate_version"):
      lines += [
        "",
        f"vectormigrate {run['vectormigrate_version']}: candidates fitted "
        f"(same-width pairs): {', '.join(run['vectormigrate_candidates'])} (the "
        "low-rank one at ranks 4, d/4 and d/2 of width d), each on raw and on "
        "L2-normalised rows (+L2), picked by auto's rule on auto's "
        "validation rows (vectormigrate has no rule of its own). Seconds per "
        f"split (mean): {run['vectormigrate_seconds']:.1f} (a subprocess, both "
        "fits).",
      ]
    lines += _command_lines(results)
  if results.get("skipped"):
    lines += ["", f"Not run: {results['skipped']}"]
  if results.get("notes"):
    lines += ["", results["notes"].rstrip()]
  return "\n".join(lines) + "\n"
