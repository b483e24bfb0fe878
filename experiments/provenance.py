"""What ran and whether today's code still makes it: a committed run's provenance.

* :func:`provenance`: one line naming a run's commit, bcjax and JAX versions,
  device and wall time, from its ``results.json``'s ``environment``;
* :func:`code_drift`: a warning line (starting :data:`DRIFT`) when the code
  that makes the numbers changed since the run's commit;
* :func:`demoted`: a run's ``table.md`` under a page's heading.
"""

from __future__ import annotations

import datetime
import subprocess


def wall_time(environment: dict) -> str:
  started, finished = environment.get("started"), environment.get("finished")
  if not started or not finished:
    return "wall time not recorded"
  seconds = (
    datetime.datetime.fromisoformat(finished) - datetime.datetime.fromisoformat(started)
  ).total_seconds()
  return f"{seconds / 60:.0f} min wall time"


def provenance(results: dict) -> str:
  env = results.get("environment") or {}
  packages = env.get("packages") or {}
  return (
    f"Commit `{(env.get('git_commit') or '?')[:7]}`, bcjax {env.get('bcjax', '?')}, "
    f"JAX {packages.get('jax', '?')} on {env.get('device_kind', '?')} "
    f"({env.get('device_count', '?')} device(s)), {wall_time(env)}."
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


def demoted(markdown: str) -> str:
  """``table.md`` under a page's ``##`` heading: its headings one deeper."""
  return "\n".join(
    "#" + line if line.startswith("#") else line for line in markdown.splitlines()
  )
