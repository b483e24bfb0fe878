"""Guards of a workdir: one process at a time, one config for its lifetime.

* :class:`WorkdirLock` holds an ``flock`` on ``WORKDIR/.lock`` while a job
  runs. A second job on the same workdir is refused; the kernel drops the
  lock of a killed job, so nothing stale is left behind.
* :func:`check_config` records the fields that decide what a workdir holds
  in ``WORKDIR/config.json`` on the first run and refuses a later run whose
  fields differ, naming each differing key, rather than mixing results. A
  field first seen later (the consumers' settings, when ``compare`` follows
  ``run_intended``) is added to the record.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence

import ml_collections

from bcjax import atomic_files
from bcjax.errors import InputError

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"


class WorkdirLock:
  """An exclusive lock on a workdir for one job's lifetime (a context manager).

  ``fcntl.flock`` on ``WORKDIR/.lock``: the kernel releases it when the
  holder exits or is killed, so a killed job never leaves a stale lock, and
  two jobs cannot both take it. The file holds the holder's pid, for the
  message a second job gets.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_NAME)
    self._file = None

  def __enter__(self) -> WorkdirLock:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    f = open(self.path, "a+")  # noqa: SIM115 - held open while locked
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      owner = f.read().strip() or "unknown"
      f.close()
      raise InputError(
        f"workdir {os.path.dirname(self.path)} is in use by process {owner} "
        f"(lock {self.path}); wait for it to finish or use another workdir"
      ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    self._file = f
    return self

  def __exit__(self, *exc):
    if self._file is not None:
      self._file.truncate(0)
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None


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
  holds_results = any(
    os.path.exists(os.path.join(workdir, name))
    for name in ("checkpoints", "consumers", "progress", "results.json")
  )
  if not os.path.exists(path) or not holds_results:
    # Nothing was computed under the recorded config (a first run that
    # failed on bad input, say): the current one takes its place.
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
