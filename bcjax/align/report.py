"""The tables of :mod:`experiments.align`: one bridge's results as Markdown.

A step's results (what :func:`experiments.align.fit_step` returns) become
one section: the split, the measures on the test rows, the blending row
(:mod:`bcjax.align.blend`; a line saying why there is none without labels),
the forward map's measures and the backfilling curves' areas
(:mod:`bcjax.align.backfill`), and ``auto``'s candidates.
"""

from __future__ import annotations

MEASURES = (
  ("mse", "MSE (bridged vs old)"),
  ("mean_cosine", "mean cosine (bridged vs old)"),
  ("self_recall", "self-retrieval Recall@{k}"),
  ("neighbour_overlap", "neighbour overlap@{k}"),
  ("class_retrieval", "class retrieval@{k}, bridged vs old index"),
  ("class_retrieval_old", "class retrieval@{k}, old vs old index"),
  ("class_retrieval_reindexed", "class retrieval@{k}, re-indexed (new vs new)"),
  ("retention", "retention (bridged / re-indexed)"),
)


def to_markdown(results: dict) -> str:
  """The measures on the test rows, and auto's candidates, as Markdown."""
  steps = results.get("steps")
  if not steps:
    return step_markdown(results)
  return "\n".join(
    f"## Bridge {s['version']}: version {s['version']} -> {s['version'] - 1}\n\n"
    + step_markdown(s)
    for s in steps
  )


def step_markdown(results: dict) -> str:
  """One bridge's measures and auto's candidates, as Markdown."""
  b, rows, m = results["bridge"], results["rows"], results["measures"]
  lines = [
    f"### Bridge {b['d_new']} -> {b['d_old']} dims: {b['family']} "
    f"{b['hparams'] or ''}".rstrip(),
    "",
    f"rows: {rows['fit']} fit, {rows['validation']} validation, {rows['test']} "
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


def selection_lines(s: dict) -> list[str]:
  """``auto``'s rule and its candidates' validation scores."""
  lines = [
    "",
    f"auto: validation Recall@{s['k']} on {s['validation_rows']} rows; "
    f"ties within one standard error ({s['standard_error']:.4f}) go to "
    "fewer parameters",
    "",
    "| family | hparams | parameters | validation score | chosen |",
    "|---|---|---|---|---|",
  ]
  for i, c in enumerate(s["candidates"]):
    chosen = "yes" if i == s["chosen"] else ""
    lines.append(
      f"| {c['family']} | {c['hparams']} | {c['num_params']} | "
      f"{c['score']:.4f} | {chosen} |"
    )
  return lines
