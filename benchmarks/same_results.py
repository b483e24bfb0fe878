"""Whether two ``results.json`` files hold the same numbers, bit for bit.

Usage::

  python -m benchmarks.same_results RUN_A/results.json RUN_B/results.json

Compares every number except wall times (keys naming seconds or time) and
the config recorded beside them; prints the differing paths and exits 1 if
any differ, else prints how many numbers agreed and exits 0.
"""

from __future__ import annotations

import json
import sys

TIMING_KEYS = ("second", "time", "_s")


def numbers(tree, path: str = "") -> dict[str, float]:
  """Every non-timing number of a JSON tree, by its path."""
  out = {}
  if isinstance(tree, dict):
    for key, value in tree.items():
      if not any(t in key for t in TIMING_KEYS):
        out.update(numbers(value, f"{path}/{key}"))
  elif isinstance(tree, list):
    for i, value in enumerate(tree):
      out.update(numbers(value, f"{path}[{i}]"))
  elif isinstance(tree, int | float) and not isinstance(tree, bool):
    out[path] = tree
  return out


def differences(a: dict, b: dict) -> list[str]:
  """Paths whose numbers differ (or exist in one tree only), with values."""
  a, b = numbers(a), numbers(b)
  return [
    f"{path}: {a.get(path)!r} vs {b.get(path)!r}"
    for path in sorted(set(a) | set(b))
    if repr(a.get(path)) != repr(b.get(path))
  ]


def main(argv: list[str]) -> int:
  if len(argv) != 3:
    print(__doc__, file=sys.stderr)
    return 2
  trees = []
  for path in argv[1:]:
    with open(path) as f:
      trees.append(json.load(f))
  diff = differences(*trees)
  if diff:
    print(f"{len(diff)} numbers differ:")
    print("\n".join(diff[:20]))
    return 1
  print(f"identical: {len(numbers(trees[0]))} numbers, bit for bit")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
