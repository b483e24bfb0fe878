r"""Summarises the printed output of ``benchmarks/gpu.sh`` as Markdown tables.

Usage::

  python -m benchmarks.report benchmarks/results/h200_9f904a2/gpu_sh_output.txt

Reads every section (``== name``) of the output: the benchmark tables that
``python -m benchmarks`` printed, the same-seed comparisons of
``run_intended``, and the aggregation probe's timings. Prints one table of the training step (with the PyTorch
comparison and determinism), one of evaluation, serving and memory, and the
same-seed results, so that the README's numbers come from the committed
output, not from hand.
"""

from __future__ import annotations

import json
import re
import sys


def sections(text: str) -> dict[str, list[str]]:
  """Lines of each ``== name (time)`` section, by name, in order."""
  out, name = {}, None
  for line in text.splitlines():
    if line.startswith("====="):
      break  # the tables printed again at the end
    match = re.match(r"^== (\S+)", line)
    if match:
      name = match.group(1)
      out[name] = []
    elif name is not None:
      out[name].append(line)
  return out


def _field(lines, pattern, default="-"):
  for line in lines:
    match = re.search(pattern, line)
    if match:
      return match.group(1)
  return default


def _row(lines, prefix):
  """``(measured, floor, meas/floor, torch, speed-up)`` of a table row."""
  for line in lines:
    if line.startswith(prefix):
      cells = re.split(r"\s{2,}", line.strip())
      return cells[1:] + ["-"] * (6 - len(cells))
  return ["-"] * 5


def _probe_table(lines: list[str]) -> list[str]:
  """The aggregation probe's lines (``name {json}``) as one table."""
  rows = []
  for line in lines:
    match = re.match(r'^([\w .,-]+) (\{".*\})$', line)
    if not match:
      continue  # the probe's other lines (a compiler's warnings)
    name, numbers = match.group(1), json.loads(match.group(2))
    cells = [
      f"{numbers[key]:.3f} ms" if key in numbers else "-"
      for key in ("forward_ms", "forward_and_transpose_ms", "grad_ms", "step_ms")
    ]
    same = numbers.get("bit_identical")
    cells.append("-" if same is None else ("yes" if same else "NO"))
    rows.append(f"| {name} | " + " | ".join(cells) + " |")
  if not rows:
    return []
  return [
    "| probe | sum forward | sum forward + transpose | lookups' gradient | "
    "step | bit-identical |",
    "|---|---|---|---|---|---|",
    *rows,
  ]


def summary(text: str) -> str:
  """The Markdown tables of one gpu.sh output."""
  step = [
    "| run | layout | precision | step | floor | step / floor | PyTorch + PyG "
    "(faster layout) | speed-up | epoch | deterministic |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  rest = [
    "| run | Recall@K eval | serve collapsed | of floor | peak device memory |",
    "|---|---|---|---|---|",
  ]
  same, probe = [], []
  for name, lines in sections(text).items():
    if name == "probe":
      probe = _probe_table(lines)
      continue
    if any(line.startswith("identical:") or "differ" in line for line in lines):
      same.append(
        f"- {name}: " + next(x for x in lines if "identical" in x or "differ" in x)
      )
      continue
    if not any(line.startswith("train step") for line in lines):
      exit_line = _field(lines, r"^(exit \d+)")
      step.append(f"| {name} | | | did not finish ({exit_line}) | | | | | | |")
      continue
    measured, floor, ratio, _, torch, speedup = (_row(lines, "train step") + ["-"])[:6]
    epoch = _row(lines, "train epoch")[0]
    layout = _field(lines, r"layout (\w+)")
    precision = _field(lines, r"matmul, ([^)]*)\)")
    precision = (
      "TF32"
      if "tensorfloat32" in precision or "TF32" in precision
      else ("float32" if "highest" in precision else precision)
    )
    deterministic = _field(lines, r"determinism: ([\w -]+?);")
    graph = _field(lines, r"^bcjax benchmark: (\S+)")
    step.append(
      f"| {name} ({graph}) | {layout} | {precision} | {measured} | {floor} | "
      f"{ratio} | {torch} | {speedup} | {epoch} | {deterministic} |"
    )
    evaluation = _row(lines, "Recall@K eval")[0]
    serve, _, _, of_floor = _row(lines, "serve v4->v0 collapsed")[:4]
    memory = _field(lines, r"^peak device memory \(training\)\s+(.*)$").strip()
    rest.append(f"| {name} | {evaluation} | {serve} | {of_floor} | {memory} |")
  projection = [
    f"- {name}: {_field(lines, r'^paper protocol, projected: (.*)$')}"
    for name, lines in sections(text).items()
    if _field(lines, r"^paper protocol, projected: (.*)$") != "-"
  ]
  parts = ["\n".join(step), "\n".join(rest)]
  if probe:
    parts.append("\n".join(probe))
  if same:
    parts.append("Same seed, two runs of run_intended:\n" + "\n".join(same))
  if projection:
    parts.append("Paper protocol, projected:\n" + "\n".join(projection))
  return "\n\n".join(parts)


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    print(__doc__, file=sys.stderr)
    return 2
  with open(argv[1]) as f:
    print(summary(f.read()))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
