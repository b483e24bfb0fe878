"""Guards of a workdir: one process at a time, one config for its lifetime.

* :class:`WorkdirLock` holds ``WORKDIR/.lock`` (created exclusively, holding
  the owner's pid) while a job runs. A second job on the same workdir is
  refused; a lock left by a process that no longer runs (killed) is taken
  over.
* :func:`check_config` records the fields that decide what a workdir holds
  in ``WORKDIR/config.json`` on the first run and refuses a later run whose
  fields differ, naming each differing key, rather than mixing results. A
  field first seen later (the consumers' settings, when ``compare`` follows
  ``run_intended``) is added to the record.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence

import ml_collections

from bcjax import atomic_files
from bcjax.errors import InputError

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class WorkdirLock:
  """An exclusive, crash-tolerant lock on a workdir (a context manager)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_NAME)

  def __enter__(self) -> WorkdirLock:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        owner = self._owner()
        if owner is not None and owner != os.getpid() and _alive(owner):
          raise InputError(
            f"workdir {os.path.dirname(self.path)} is in use by process {owner} "
            f"(lock {self.path}); wait for it to finish or use another workdir"
          ) from None
        # A stale lock: its process is gone (killed), so the workdir is free.
        with contextlib.suppress(FileNotFoundError):
          os.remove(self.path)
        continue
      with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
      return self
    raise InputError(f"could not take the lock {self.path}; another job raced for it")

  def _owner(self) -> int | None:
    try:
      with open(self.path) as f:
        return int(f.read().strip() or -1)
    except (FileNotFoundError, ValueError):
      return None

  def __exit__(self, *exc):
    if self._owner() == os.getpid():
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.path)


def check_config(
  workdir: str, config: ml_collections.ConfigDict, fields: Sequence[str]
) -> None:
  """Records ``config``'s ``fields`` in the workdir, or checks them against it.

  Raises:
    InputError: naming every field whose value differs from the recorded one.
  """
  path = os.path.join(workdir, CONFIG_NAME)
  # A JSON round trip, so tuples and lists compare equal.
  current = json.loads(
    json.dumps({f: config.to_dict().get(f) for f in fields}, default=list)
  )
  if not os.path.exists(path):
    atomic_files.write_json(path, current)
    return
  try:
    with open(path) as f:
      recorded = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise InputError(
      f"{path} is unreadable ({e}); expected the workdir's config"
    ) from e
  differing = [
    f"{key}: {recorded[key]!r} in the workdir, {current[key]!r} now"
    for key in sorted(set(recorded) & set(current))
    if recorded[key] != current[key]
  ]
  if differing:
    raise InputError(
      f"workdir {workdir} holds results of another config; differing keys: "
      + "; ".join(differing)
      + ". Use a fresh workdir, or the workdir's config"
    )
  if set(current) - set(recorded):
    # A later job of the same run records the fields it adds (consumers).
    atomic_files.write_json(path, {**recorded, **current})
