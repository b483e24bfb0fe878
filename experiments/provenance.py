"""What ran and whether today's code still makes it: a committed run's provenance.

* :func:`provenance`: one line naming a run's commit, bcjax and JAX versions,
  device and wall time (of each part, for a run merged from parts), from
  its ``results.json``'s ``environment``;
* :func:`code_drift`: a warning line (starting :data:`DRIFT`) when the code
  that makes the numbers changed since the run's commit;
* :func:`demoted`: a run's ``table.md`` under a page's heading.
"""

from __future__ import annotations

import datetime
import subprocess


def _minutes(environment: dict) -> float | None:
  started, finished = environment.get("started"), environment.get("finished")
  if not started or not finished:
    return None
  seconds = (
    datetime.datetime.fromisoformat(finished) - datetime.datetime.fromisoformat(started)
  ).total_seconds()
  return seconds / 60


def wall_time(environment: dict) -> str:
  minutes = _minutes(environment)
  if minutes is None:
    return "wall time not recorded"
  return f"{minutes:.0f} min wall time"


def _parts(parts: list[dict]) -> str:
  """A merged run's parts (``experiments.merge``): each one's wall time."""
  each = []
  for part in parts:
    minutes = _minutes(part.get("environment") or {})
    took = "time not recorded" if minutes is None else f"{minutes:.0f} min"
    each.append(f"`{part['path'].rsplit('/', 1)[-1]}` {took}")
  commits = sorted(
    {((p.get("environment") or {}).get("git_commit") or "?")[:7] for p in parts}
  )
  return (
    f"Made in {len(parts)} parts ({', '.join(each)}: wall time of the command "
    "that finished each, which reuses the versions already in its workdir) at commit "
    f"{', '.join(f'`{c}`' for c in commits)}"
  )


def provenance(results: dict) -> str:
  env = results.get("environment") or {}
  packages = env.get("packages") or {}
  made = (
    _parts(env["parts"])
    if env.get("parts")
    else f"Commit `{(env.get('git_commit') or '?')[:7]}`"
  )
  time = "" if env.get("parts") else f", {wall_time(env)}"
  return (
    f"{made}, bcjax {env.get('bcjax', '?')}, "
    f"JAX {packages.get('jax', '?')} on {env.get('device_kind', '?')} "
    f"({env.get('device_count', '?')} device(s)){time}."
  )


# A line that says how far the code moved since a run: true of the checkout
# that renders the page, so the staleness check leaves it out.
DRIFT = "> Code changed since this run:"
# What decides a run's numbers (issue: a run must come from today's code).
CODE_PATHS = ("bcjax", "experiments/configs")


def code_drift(commit: str | None, root: str = ".") -> str | None:
  """A warning when the code that makes the numbers changed since ``commit``.

  Args:
    commit: the run's git commit.
    root: the repository's root.

  Returns:
    None when ``git diff commit HEAD -- bcjax experiments/configs`` is empty,
    else one Markdown line starting with :data:`DRIFT` (also when git or the
    commit cannot be read, saying so).
  """
  if not commit:
    return f"{DRIFT} the run recorded no commit."
  try:
    out = subprocess.run(
      ["git", "diff", "--name-only", commit, "HEAD", "--", *CODE_PATHS],
      cwd=root,
      capture_output=True,
      text=True,
      check=True,
    ).stdout.split()
  except (OSError, subprocess.CalledProcessError):
    return f"{DRIFT} commit `{commit[:7]}` is not in this checkout's history."
  if not out:
    return None
  return (
    f"{DRIFT} {len(out)} files of `bcjax/` and `experiments/configs/` differ "
    f"between `{commit[:7]}` and this checkout; its numbers may not be what "
    "today's code gives."
  )


def demoted(markdown: str, levels: int = 1) -> str:
  """``table.md`` under a page's heading: its headings ``levels`` deeper."""
  return "\n".join(
    "#" * levels + line if line.startswith("#") else line
    for line in markdown.splitlines()
  )
