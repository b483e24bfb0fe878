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
import os
import subprocess

from bcjax.environment import source_hash


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
  differences = env.get("process_differences")
  merged_anyway = (
    f" Merged across other process settings (--allow_process_differences): "
    f"{'; '.join(differences)}."
    if differences
    else ""
  )
  return (
    f"{made}, bcjax {env.get('bcjax', '?')}, "
    f"JAX {packages.get('jax', '?')} on {env.get('device_kind', '?')} "
    f"({env.get('device_count', '?')} device(s)){time}.{merged_anyway}"
  )


# A line that says how far the code moved since a run: true of the checkout
# that renders the page, so the staleness check leaves it out.
DRIFT = "> Code changed since this run:"
# What decides a run's numbers (issue: a run must come from today's code).
CODE_PATHS = ("bcjax", "experiments/configs")


def code_drift(
  commit: str | None, root: str = ".", modules: list[dict] | None = None
) -> str | None:
  """A warning when the code that made a run's numbers changed since.

  A run that recorded its modules' hashes (``environment.modules``, one
  record per part of a merged run) is judged by them: only a bcjax module
  it imported counts, and the warning names the changed ones. An older run
  falls back to ``git diff commit HEAD -- bcjax experiments/configs``.

  Args:
    commit: the run's git commit.
    root: the repository's root.
    modules: the ``{module: sha256}`` records of the run (and its parts), or
      None when it recorded none.

  Returns:
    None when nothing changed, else one Markdown line starting with
    :data:`DRIFT` (also when git or the commit cannot be read, saying so).
  """
  if modules:
    changed = sorted({m for record in modules for m in _changed(record, root)})
    if not changed:
      return None
    named = ", ".join(f"`{m}`" for m in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return (
      f"{DRIFT} {len(changed)} of the bcjax modules it ran differ from this "
      f"checkout's ({named}{more}); its numbers may not be what today's code gives."
    )
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


def _changed(record: dict, root: str) -> list[str]:
  """The modules of ``record`` whose source in ``root`` hashes otherwise."""
  changed = []
  for name, digest in record.items():
    base = os.path.join(root, *name.split("."))
    path = (
      base + ".py"
      if os.path.isfile(base + ".py")
      else os.path.join(base, "__init__.py")
    )
    if not os.path.isfile(path) or source_hash(path) != digest:
      changed.append(name)
  return changed


def recorded_modules(results: dict) -> list[dict] | None:
  """The module records of a run and its parts, or None for a run without."""
  env = results.get("environment") or {}
  records = [env.get("modules")] + [
    (part.get("environment") or {}).get("modules") for part in env.get("parts", [])
  ]
  records = [r for r in records if r]
  return records or None


def demoted(markdown: str, levels: int = 1) -> str:
  """``table.md`` under a page's heading: its headings ``levels`` deeper."""
  return "\n".join(
    "#" * levels + line if line.startswith("#") else line
    for line in markdown.splitlines()
  )
