"""The tables of :mod:`experiments.align`: one bridge's results as Markdown.

A step's results (what :func:`experiments.align.fit_step` returns) become
one section: the split, the measures on the test rows, the blending row
(:mod:`bcjax.align.blend`; a line saying why there is none without labels),
the forward map's measures and the backfilling curves' areas
(:mod:`bcjax.align.backfill`), the costs, the bridge / re-index answer
(:mod:`bcjax.align.decision`), the consumers (:mod:`bcjax.align.consumers`)
and ``auto``'s candidates;
:func:`plot_backfill` draws the backfilling curves.
"""

from __future__ import annotations

import dataclasses
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bcjax.storage.atomic_files import atomic_open

MEASURES = (
  ("mse", "MSE (bridged vs old)"),
  ("mean_cosine", "mean cosine (bridged vs old)"),
  ("self_recall", "self-retrieval Recall@{k}"),
  ("neighbour_overlap", "neighbour overlap@{k}"),
  ("class_retrieval", "class retrieval@{k}, bridged vs old index"),
  ("class_retrieval_old", "class retrieval@{k}, old vs old index"),
  ("class_retrieval_reindexed", "class retrieval@{k}, re-indexed (new vs new)"),
  ("class_retrieval_unbridged", "class retrieval@{k}, no bridge (new vs old index)"),
  ("retention", "retention (bridged / re-indexed)"),
)


def to_markdown(results: dict) -> str:
  """The measures on the test rows, and auto's candidates, as Markdown."""
  steps = results.get("steps")
  if not steps:
    return step_markdown(results)
  text = "\n".join(
    f"## Bridge {s['version']}: version {s['version']} -> {s['version'] - 1}\n\n"
    + step_markdown(s)
    for s in steps
  )
  return text + chain_markdown(results.get("chains") or [], len(steps))


CHAIN_MEASURES = MEASURES[:6]


def chain_markdown(chains: list[dict], latest: int) -> str:
  """The newest test rows served at each older version through the chain."""
  if not chains:
    return ""
  shown = [
    (key, name)
    for key, name in CHAIN_MEASURES
    if any(key in c.get("measures", {}) for c in chains)
  ]
  k = next(c["measures"]["k"] for c in chains if "measures" in c) if shown else 10
  head = "| served at version | bridges | queries | " + " | ".join(
    name.format(k=k) for _, name in shown
  )
  lines = [
    "",
    f"## Chains: version {latest}'s test rows served at older versions",
    "",
    "Each row applies the bridges from the newest version down to the one "
    "named (collapsed into one affine map where they all are affine); the "
    "index is that version's vectors of the ids its bridge matched, the "
    "queries the newest bridge's test ids found there (held out of every "
    "bridge).",
    "",
    head + " |",
    "|---" * (head.count("|") + 1) + "|",
  ]
  for c in chains:
    if "skipped" in c:
      lines.append(f"| {c['version']} | {c['bridges']} | {c['skipped']} |")
      continue
    m = c["measures"]
    cells = " | ".join(f"{m[key]:.4f}" if key in m else "" for key, _ in shown)
    lines.append(f"| {c['version']} | {c['bridges']} | {m['queries']} | {cells} |")
  return "\n".join(lines) + "\n"


def step_markdown(results: dict) -> str:
  """One bridge's measures and auto's candidates, as Markdown."""
  b, rows, m = results["bridge"], results["rows"], results["measures"]
  lines = [
    f"### Bridge {b['d_new']} -> {b['d_old']} dims: {b['family']} "
    f"{b['hparams'] or ''}".rstrip(),
    "",
    *(
      [
        f"ids: {results['ids']['matched']} in both versions, "
        f"{results['ids']['old_only']} in the old one only, "
        f"{results['ids']['new_only']} in the new one only",
        "",
      ]
      if "ids" in results
      else []
    ),
    f"rows: {rows['fit']} fit, {rows['validation']} validation"
    f"{_first_fold(results.get('selection'))}, {rows['test']} "
    f"test (queries; the index is all {m['index']} old vectors); centred: "
    f"{b['center']}, normalised: {b['normalize']}",
    "",
    "| measure (test rows) | value |",
    "|---|---|",
  ]
  for key, name in MEASURES:
    if key in m:
      lines.append(f"| {name.format(k=m['k'])} | {m[key]:.4f} |")
  lines += blend_lines(results.get("blend"), m["k"])
  lines += cost_lines(b)
  if results.get("decision"):
    lines += decision_lines(results["decision"], m["k"])
  if results.get("consumers"):
    lines += consumer_lines(results["consumers"])
  if results.get("forward"):
    lines += forward_lines(results["forward"], m["k"])
  if results.get("backfill"):
    lines += backfill_lines(results["backfill"])
  if results["selection"]:
    lines += selection_lines(results["selection"])
  return "\n".join(lines) + "\n"


def blend_lines(blend: dict | None, k: int) -> list[str]:
  """The blending rows under the measures' table, or the line saying why none."""
  if blend is None:
    return []
  if "skipped" in blend:
    return ["", f"blending: {blend['skipped']}"]
  test, val = blend["test"], blend["validation"]
  a = f"{blend['alpha']:g}"
  return [
    f"| class retrieval@{k}, blended slerp(old, bridged, {a}) vs old index "
    f"| {test['class_retrieval']:.4f} |",
    f"| retention, blended (alpha {a}) | {test['retention']:.4f} |",
    "",
    f"blending: alpha {a} chosen by class retrieval@{val['k']} of "
    f"{val['validation_rows']} validation rows (bridge refitted on "
    f"{val['fit_rows']} training rows): "
    + ", ".join(f"{alpha} {score:.4f}" for alpha, score in val["scores"].items()),
  ]


def cost_lines(bridge: dict) -> list[str]:
  """The bridge's fit time and serving time per million rows."""
  serve = bridge.get("serve_seconds_per_million")
  return [
    "",
    f"costs: fit {bridge['fit_seconds']:.2f} s"
    + ("" if serve is None else f"; serving {serve:.3f} s per million rows"),
  ]


def _interval(s: dict) -> str:
  if s["low"] is None:
    return f"{s['mean']:.4f}"
  return f"{s['mean']:.4f} [{s['low']:.4f}, {s['high']:.4f}]"


def decision_lines(d: dict, k: int) -> list[str]:
  """The bridge / re-index / no-upgrade answer and its evidence, or why none."""
  if "skipped" in d:
    return ["", f"answer: {d['skipped']}"]
  t = d["thresholds"]
  return [
    "",
    f"answer: **{d['answer']}**: {d['reason']} (class retrieval@{k} over "
    f"{d['splits']} test splits, mean [95% interval]: upgrade gain "
    f"{_interval(d['upgrade_gain'])}, threshold {t['min_gain']:g}; retention "
    f"{_interval(d['retention'])}, threshold {t['min_retention']:g})",
  ]


def consumer_lines(consumers: dict) -> list[str]:
  """Each consumer's accuracy on old, bridged (and blended) test vectors."""
  blended = any("accuracy_blended" in c for c in consumers.values())
  head = "| consumer (trained on old vectors) | accuracy, old | accuracy, bridged "
  head += "| negative flips, bridged "
  head += "| accuracy, blended | negative flips, blended " if blended else ""
  head += "| retrained on new vectors |"
  lines = ["", head, "|---" * (head.count("|") - 1) + "|"]
  for name, c in consumers.items():
    cells = [c["accuracy_old"], c["accuracy_bridged"], c["negative_flip_rate"]]
    if blended:
      cells += [c["accuracy_blended"], c["negative_flip_rate_blended"]]
    cells.append(c["accuracy_retrained"])
    lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")
  return lines


FORWARD = (
  ("mse", "MSE (F(old) vs new)"),
  ("mean_cosine", "mean cosine (F(old) vs new)"),
  ("self_recall", "self-retrieval Recall@{k}, F(old) vs new index"),
  ("class_retrieval", "class retrieval@{k}, F(old) vs new index"),
  ("retention", "retention (F(old) / re-indexed)"),
)
MEASURE_NAMES = {
  "class_retrieval": "class retrieval@{k}",
  "self_recall": "self-retrieval Recall@{k}",
}


def forward_lines(forward: dict, k: int) -> list[str]:
  """The forward map's measures on the test rows' old vectors."""
  lines = [
    "",
    f"Forward map F (old -> new, for queries with only old vectors): "
    f"{forward['family']} {forward['hparams'] or ''}".rstrip(),
    "",
    "| measure (test rows) | value |",
    "|---|---|",
  ]
  m = forward["measures"]
  for key, name in FORWARD:
    if key in m:
      lines.append(f"| {name.format(k=k)} | {m[key]:.4f} |")
  return lines


def backfill_lines(backfill: dict) -> list[str]:
  """Each order's backfilling curve at its ends and the area under it."""
  measure = MEASURE_NAMES[backfill["measure"]].format(k=backfill["k"])
  lines = [
    "",
    f"Backfilling: new-model test queries against an index of new vectors "
    f"(re-embedded rows) and F(old) (the rest); {measure} as the re-embedded "
    "share goes from 0 to 1",
    "",
    "| order | at 0 | at 0.5 | at 1 | area under the curve |",
    "|---|---|---|---|---|",
  ]
  fractions = backfill["fractions"]
  half = fractions.index(0.5) if 0.5 in fractions else None

  def row(name, values, area):
    middle = "" if half is None else f"{values[half]:.4f}"
    return f"| {name} | {values[0]:.4f} | {middle} | {values[-1]:.4f} | {area:.4f} |"

  for name, values in backfill["curves"].items():
    lines.append(row(name, values, backfill["area"][name]))
  if backfill.get("consumers"):
    lines += [
      "",
      "Consumers of the new model (trained on the training rows' new vectors) "
      "reading the test rows as the index holds them: accuracy as the "
      "re-embedded share goes from 0 to 1",
      "",
      "| consumer, order | at 0 | at 0.5 | at 1 | area under the curve |",
      "|---|---|---|---|---|",
    ]
    for consumer, c in backfill["consumers"].items():
      for name, values in c["curves"].items():
        lines.append(row(f"{consumer}, {name}", values, c["area"][name]))
  return lines


def plot_backfill(path: str, backfill: dict, title: str = "Backfilling") -> str:
  """Each order's backfilling curve, with its area in the legend, as a PNG.

  Args:
    path: the PNG to write (replaced whole).
    backfill: ``results["backfill"]`` of :func:`bcjax.align.backfill.backfill_results`.
    title: the plot's title.

  Returns:
    ``path``.
  """
  consumers = backfill.get("consumers") or {}
  fig = Figure(figsize=(6.5 * (1 + bool(consumers)), 4.5))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1 + bool(consumers), 1)
  for name, values in backfill["curves"].items():
    area = backfill["area"][name]
    style = "--" if name == "random" else "-"
    ax.plot(
      backfill["fractions"],
      values,
      style,
      marker="o",
      label=f"{name} (area {area:.4f})",
    )
  ax.set_xlabel("share of the index re-embedded")
  ax.set_ylabel(MEASURE_NAMES[backfill["measure"]].format(k=backfill["k"]))
  ax.set_xlim(0, 1)
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small", loc="best")
  if consumers:
    right = fig.add_subplot(1, 2, 2)
    for consumer, c in consumers.items():
      for name, values in c["curves"].items():
        right.plot(
          backfill["fractions"],
          values,
          "--" if name == "random" else "-",
          marker="o",
          label=f"{consumer}, {name} (area {c['area'][name]:.4f})",
        )
    right.set_xlabel("share of the index re-embedded")
    right.set_ylabel("consumer accuracy (new-model consumers)")
    right.set_xlim(0, 1)
    right.set_title("Consumers reading the index")
    right.grid(True, alpha=0.3)
    right.legend(fontsize="x-small", loc="best")
  fig.tight_layout()
  with atomic_open(path, "wb") as f:
    fig.savefig(f, format="png", dpi=100)
  return path


def plot_steps(workdir: str, steps: list[dict]) -> list[str]:
  """``workdir/backfill_<k>.png`` for each step ``k`` that measured backfilling."""
  return [
    plot_backfill(
      os.path.join(workdir, f"backfill_{step['version']}.png"),
      step["backfill"],
      f"Backfilling the version-{step['version']} index",
    )
    for step in steps
    if "backfill" in step
  ]


def bridge_summary(bridge, fit_seconds: float) -> dict:
  """A :class:`bcjax.align.Bridge`'s family, shape and preprocessing, JSON-ready."""
  return {
    "family": bridge.family,
    "hparams": dataclasses.asdict(bridge.hparams),
    "center": bridge.center,
    "normalize": bridge.normalize,
    "d_new": bridge.d_new,
    "d_old": bridge.d_old,
    "num_params": bridge.num_params,
    "fit_seconds": fit_seconds,
  }


def _first_fold(s: dict | None) -> str:
  """`` (auto's first fold of F)`` where auto validated by folds."""
  folds = 1 if s is None else s.get("folds", 1)
  return "" if folds == 1 else f" (auto's first fold of {folds})"


def _folds(s: dict) -> str:
  """Where auto validated: its folds and queries (one split before folds)."""
  folds = s.get("folds", 1)
  if folds == 1:
    return f"on {s['validation_rows']} validation rows"
  agree = round(s["fold_agreement"] * folds)
  return (
    f"by {folds}-fold validation on {s['queries']} validation queries (each "
    f"fold's candidates fitted on the rows outside it; {agree} of the {folds} "
    "folds alone choose the same)"
  )


def selection_lines(s: dict) -> list[str]:
  """``auto``'s rule and its candidates' validation scores."""
  lines = [
    "",
    f"auto: {_folds(s)}, score = mean of "
    f"self-retrieval Recall@{s['k']} and neighbour overlap@{s['k']}; a "
    "candidate within one standard error of its per-query difference from "
    "the best is tied with it, and ties go to fewer parameters",
    "",
    "| family | hparams | centred | normalised | parameters | validation "
    "score | recall | overlap | se of gap | chosen |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for i, c in enumerate(s["candidates"]):
    chosen = "yes" if i == s["chosen"] else ""
    lines.append(
      f"| {c['family']} | {c['hparams']} | {c['center']} | {c['normalize']} | "
      f"{c['num_params']} | {c['score']:.4f} | {c['self_recall']:.4f} | "
      f"{c['overlap']:.4f} | {c['standard_error']:.4f} | {chosen} |"
    )
  return lines
