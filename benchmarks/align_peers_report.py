"""``benchmarks.align_peers``'s summary of its seeds and its Markdown table.

A seed's entry (:func:`benchmarks.align_peers.one_seed`) holds one side per
tool: ``bcjax`` (auto), ``rebasis`` (rebasis's own pick), and where recorded
``rebasis_auto_rule``, ``vectormigrate`` (auto's rule among vectormigrate's
candidates, or its refusal of the pair) and ``vectormigrate_cosine_rule``.
Each side holds the test measures of :data:`MEASURES`.
"""

from __future__ import annotations

import collections

from bcjax.evaluation.intervals import mean_interval, paired_difference
from benchmarks.align_vectormigrate import pair_refusal

MEASURES = ("self_recall", "neighbour_overlap")
# Other sides -> the key of bcjax auto's paired difference from each.
OTHERS = {
  "rebasis_auto_rule": "difference_auto_rule",
  "vectormigrate": "difference_vectormigrate",
  "vectormigrate_cosine_rule": "difference_vectormigrate_cosine_rule",
}


def summarize(seeds: list[dict]) -> dict:
  """Per measure: each side's mean interval and the paired differences'.

  ``difference``: bcjax auto - rebasis's pick; ``difference_auto_rule``:
  bcjax auto - the rebasis candidate auto's rule picks;
  ``difference_vectormigrate`` (``_cosine_rule``): bcjax auto - the
  vectormigrate candidate auto's rule (its validation cosine) picks. A side
  is summarised when every seed has its measures (not where vectormigrate
  refused the pair).
  """
  out = {}
  for key in MEASURES:
    a = [s["bcjax"][key] for s in seeds]
    b = [s["rebasis"][key] for s in seeds]
    out[key] = {
      "bcjax": _interval(mean_interval(a)),
      "rebasis": _interval(mean_interval(b)),
      "difference": _interval(paired_difference(a, b)),
    }
    for side, difference in OTHERS.items():
      if all(key in s.get(side, {}) for s in seeds):
        c = [s[side][key] for s in seeds]
        out[key][side] = _interval(mean_interval(c))
        out[key][difference] = _interval(paired_difference(a, c))
  return out


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


def _picks(seeds: list[dict], side: str) -> str:
  return _counts(s[side]["method"] for s in seeds if "method" in s.get(side, {}))


def to_markdown(results: dict) -> str:
  """The per-pair table and each side's choices, as Markdown."""
  seeds = results.get("seed_list")
  k = results.get("k", 10)
  lines = [
    "### bcjax align auto vs rebasis and vectormigrate (test rows; mean over "
    f"{len(seeds) if seeds else results.get('seeds', '?')} split seeds"
    + (f" {seeds[0]}..{seeds[-1]}" if seeds else "")
    + "; differences: mean and 95% Student-t interval of the per-seed difference)",
    "",
    "| pair | measure | bcjax auto | rebasis | auto - rebasis | "
    "rebasis by auto's rule | auto - that | vectormigrate by auto's rule | "
    "auto - vectormigrate |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  names = {"self_recall": f"self-retrieval@{k}", "neighbour_overlap": f"overlap@{k}"}
  for name, pair in results["pairs"].items():
    refused = pair_refusal(pair["seeds"])
    for key in MEASURES:
      s = pair["summary"][key]
      other, vm = s.get("difference_auto_rule"), s.get("difference_vectormigrate")
      lines.append(
        f"| {name} | {names[key]} | {s['bcjax']['mean']:.4f} | "
        f"{s['rebasis']['mean']:.4f} | {_cell(s['difference'])} | "
        f"{_mean(s.get('rebasis_auto_rule'))} | "
        f"{'-' if other is None else _cell(other)} | "
        f"{'refused' if refused else _mean(s.get('vectormigrate'))} | "
        f"{'-' if vm is None else _cell(vm)} |"
      )
  lines += [
    "",
    "| pair | rows | auto's choices (seeds) | rebasis's choices | "
    "rebasis by auto's rule | vectormigrate by auto's rule |",
    "|---|---|---|---|---|---|",
  ]
  for name, pair in results["pairs"].items():
    seeds_ = pair["seeds"]
    refused = pair_refusal(seeds_)
    lines.append(
      f"| {name} | {pair['note']} | "
      f"{_counts(_bcjax_choice(s['bcjax']) for s in seeds_)} | "
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
      f"(in-process, {run['bcjax_candidates']} candidates), rebasis "
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
    lines += ["", f"Command: `{run['command']}`"]
  if results.get("skipped"):
    lines += ["", f"Not run: {results['skipped']}"]
  if results.get("notes"):
    lines += ["", results["notes"].rstrip()]
  return "\n".join(lines) + "\n"
