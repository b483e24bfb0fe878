"""Guards of a workdir: one process at a time, one config for its lifetime.

* :class:`WorkdirLock` holds an ``flock`` on ``WORKDIR/.lock`` while a job
  runs. A second job on the same workdir is refused; the kernel drops the
  lock of a killed job, so nothing stale is left behind.
* :func:`check_config` records the fields that decide what a workdir holds
  in ``WORKDIR/config.json`` on the first run and refuses a later run whose
  fields differ, naming each differing key, rather than mixing results. A
  field first seen later (the consumers' settings, when ``compare`` follows
  ``run_intended``) is added to the record. The number of embedding seeds
  may grow (the finished seeds are reused), never shrink.
* :func:`check_schema` refuses a workdir written under another results
  schema, saying what changed, rather than reusing results computed the old
  way.
* :func:`seed_workdir` is where embedding seed ``i`` keeps its checkpoints,
  consumers and results: the workdir itself for seed 0 (a one-seed run's
  layout), ``seeds/<i>/`` for the others.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping, Sequence

import ml_collections

from bcjax import atomic_files
from bcjax.errors import InputError

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"
SEEDS_DIR = "seeds"
# Bookkeeping entries of config.json beside the config fields.
SCHEMA_KEY = "schema_version"
SEEDS_KEY = "num_seeds"
# What a workdir that holds results has (a first run that failed on bad input
# leaves none of them).
RESULT_NAMES = ("checkpoints", "consumers", "progress", "results.json", SEEDS_DIR)


def seed_workdir(workdir: str, embedding_seed: int) -> str:
  """The folder of embedding seed ``embedding_seed`` of the job in ``workdir``."""
  if embedding_seed == 0:
    return workdir
  return os.path.join(workdir, SEEDS_DIR, str(embedding_seed))


def holds_results(workdir: str) -> bool:
  """Whether anything was computed in ``workdir``."""
  return any(os.path.exists(os.path.join(workdir, name)) for name in RESULT_NAMES)


def _recorded_schema(workdir: str) -> int | None:
  """The schema of the workdir's results: config.json's, else results.json's."""
  for name in (CONFIG_NAME, "results.json"):
    try:
      with open(os.path.join(workdir, name)) as f:
        value = json.load(f).get(SCHEMA_KEY)
    except (OSError, json.JSONDecodeError, AttributeError):
      continue
    if value is not None:
      return int(value)
  return None


def check_schema(workdir: str, version: int, changes: Mapping[int, str]) -> None:
  """Refuses a workdir that holds results of another schema than ``version``.

  Args:
    workdir: the job's workdir.
    version: the schema this bcjax writes.
    changes: schema -> why a workdir of an older one cannot be reused.

  Raises:
    InputError: saying which schema the workdir has and what changed since.
  """
  if not holds_results(workdir):
    return
  recorded = _recorded_schema(workdir)
  if recorded == version:
    return
  if recorded is None or recorded < version:
    why = "; ".join(
      f"schema {v}: {changes[v]}" for v in sorted(changes) if (recorded or 0) < v
    )
    raise InputError(
      f"workdir {workdir} holds results of an older bcjax (results schema "
      f"{recorded if recorded is not None else 'unrecorded'}, this bcjax writes "
      f"{version}): {why}. Its results are not reused; use a fresh workdir"
    )
  raise InputError(
    f"workdir {workdir} holds results of a newer bcjax (results schema "
    f"{recorded}, this bcjax writes {version}); use that bcjax or a fresh workdir"
  )


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
  workdir: str,
  config: ml_collections.ConfigDict,
  fields: Sequence[str],
  num_seeds: int = 1,
  schema_version: int | None = None,
) -> None:
  """Records ``config``'s ``fields`` in the workdir, or checks them against it.

  Args:
    workdir: the job's workdir.
    config: the job's config.
    fields: the config fields that decide what the workdir holds.
    num_seeds: the job's embedding seeds; more than recorded is fine (the
      record grows), fewer is refused.
    schema_version: recorded beside the fields, for :func:`check_schema`.

  Raises:
    InputError: naming every field whose value differs from the recorded one,
      or the recorded number of seeds when the job has fewer.
  """
  path = os.path.join(workdir, CONFIG_NAME)
  # A JSON round trip, so tuples and lists compare equal.
  current = json.loads(
    json.dumps({f: config.to_dict().get(f) for f in fields}, default=list)
  )
  bookkeeping = {SEEDS_KEY: num_seeds}
  if schema_version is not None:
    bookkeeping[SCHEMA_KEY] = schema_version
  if not os.path.exists(path) or not holds_results(workdir):
    # Nothing was computed under the recorded config (a first run that
    # failed on bad input, say): the current one takes its place.
    atomic_files.write_json(path, {**current, **bookkeeping})
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
  seeds = int(recorded.get(SEEDS_KEY, 1))
  if num_seeds < seeds:
    raise InputError(
      f"workdir {workdir} holds results of {seeds} embedding seeds; "
      f"config.num_seeds={num_seeds} would leave some out of its table. Use "
      f"config.num_seeds >= {seeds} (the finished seeds are reused), or a "
      "fresh workdir"
    )
  merged = {**recorded, **current, **bookkeeping}
  if merged != recorded:
    # A later job of the same run records the fields it adds (consumers)
    # and the seeds it adds.
    atomic_files.write_json(path, merged)
