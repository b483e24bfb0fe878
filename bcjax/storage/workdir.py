"""Guards of a workdir: one process at a time, one config for its lifetime.

* :class:`WorkdirLock` holds an ``flock`` on ``WORKDIR/.lock`` while a job
  runs. A second job on the same workdir is refused; the kernel drops the
  lock of a killed job, so nothing stale is left behind.
* :func:`fingerprinted_config` is what decides a workdir's numbers: the whole
  config less :data:`UNFINGERPRINTED_FIELDS` (fields that cannot change a
  number), plus the dataset's content fingerprint; :func:`config_fingerprint`
  hashes it. The workdir's ``config.json`` and every saved version's metadata
  hold both, and the consumers' fingerprint is made from it.
* :func:`check_config` records them in ``WORKDIR/config.json`` on the first
  run and refuses a later run whose config differs, naming each differing
  field with its old and new values, rather than reusing results of another
  config. The number of embedding seeds may grow (the finished seeds are
  reused), never shrink.
* :func:`check_schema` refuses a workdir written under another results
  schema, saying what changed, rather than reusing results computed the old
  way.
* :func:`seed_workdir` is where embedding seed ``i`` keeps its checkpoints,
  consumers and results: the workdir itself for seed 0 (a one-seed run's
  layout), ``seeds/<i>/`` for the others.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Mapping

import ml_collections
import numpy as np

from bcjax.errors import InputError
from bcjax.storage import atomic_files

LOCK_NAME = ".lock"
CONFIG_NAME = "config.json"
SEEDS_DIR = "seeds"
# Bookkeeping entries of config.json beside the config fields.
SCHEMA_KEY = "schema_version"
SEEDS_KEY = "num_seeds"
# config.json's entries of the fingerprinted config and its hash (also the
# names in a saved version's metadata).
CONFIG_KEY = "config"
FINGERPRINT_KEY = "config_fingerprint"
# The dataset's content fingerprint, beside the config's fields.
DATASET_KEY = "dataset_fingerprint"

# Config fields left out of the fingerprint: none of them can change a number
# that a workdir stores (a version, a consumer, a seed's results). Every other
# field is in, a user's own fields (an extension's hyperparameters) included.
UNFINGERPRINTED_FIELDS = (
  # Where the dataset's files are read from. The dataset's content
  # fingerprint is in instead: the same files in another folder make the
  # same run, other files in the same folder do not.
  "data_dir",
  # How many embedding seeds run. Seed i's versions and consumers depend on i,
  # not on the count (keys.version_key), and live in their own folder
  # (seed_workdir); the count has its own check: it may grow, never shrink.
  "num_seeds",
  # How many embedding seeds train per program (bcjax.jobs.seed_lockstep).
  # Seed i gets its keys, data and folder whatever the grouping, so a job
  # may change it between runs (a rerun reuses what any grouping saved); a
  # batched fit is the seed's fit alone up to float rounding
  # (bcjax.fitting.seed_axis), and results.json records the value used.
  "seed_batch",
  # Which strategies run. Each one's versions live in checkpoints/<name> and
  # depend on its name and the fingerprinted fields, not on which others run,
  # so adding one to a finished workdir reuses the others.
  "strategy",
  # Which unintended tasks run: likewise, each task's consumers live in
  # consumers/<task> and depend on the task, not on which others run.
  "tasks",
  # Which analytics beyond the paper run (bcjax.compatibility). They are
  # computed afresh from the saved versions by every run, their consumers
  # saved under a hash of their own inputs and settings, so a finished
  # workdir may have them switched on (as analyze_workdir does).
  "compatibility",
  # Whether a rerun may reuse versions made under other process settings
  # (NPROC, OPENBLAS_NUM_THREADS, ...): it decides whether to refuse, not
  # what any number is; results.json records the differences it let through.
  "allow_process_differences",
  # Which extensions load (config.imports): loading one must not refuse the
  # strategies that do not use it. A strategy whose components an extension
  # registered records the extension and a hash of its source in its own
  # fields (bcjax.jobs.fingerprints), so an edit to it refuses that strategy.
  "imports",
  # Which strategies a tuning run adds, and which value it chooses from what
  # they measured: like "strategy", it decides what runs, each variant's
  # versions depending on its own name (bcjax.jobs.weight_tuning).
  "tuning",
)
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


def fingerprinted_config(
  config: ml_collections.ConfigDict, dataset_fingerprint: str
) -> dict:
  """What decides the numbers of a run: its config and its data.

  Args:
    config: the job's config.
    dataset_fingerprint: the dataset's content fingerprint
      (``DynamicGraph.fingerprint``).

  Returns:
    Every field of ``config`` but :data:`UNFINGERPRINTED_FIELDS`, as JSON
    values (nested configs as dicts, tuples as lists), and the dataset's
    fingerprint under :data:`DATASET_KEY`.

  Raises:
    InputError: a field whose value JSON cannot hold (it could be neither
      recorded nor compared), or a field named :data:`DATASET_KEY`.
  """
  fields = {}
  for name, value in config.to_dict().items():
    if name in UNFINGERPRINTED_FIELDS:
      continue
    try:
      fields[name] = json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as e:
      raise InputError(
        f"config.{name} holds {value!r} ({type(value).__name__}), which the "
        "workdir's config record cannot hold; expected numbers, strings, "
        "booleans, None, lists of them or nested configs"
      ) from e
  if DATASET_KEY in fields:
    raise InputError(
      f"config.{DATASET_KEY} is a name bcjax keeps for the dataset's content "
      "fingerprint in the workdir's config record; expected another field name"
    )
  fields[DATASET_KEY] = dataset_fingerprint
  return fields


def config_fingerprint(fields: Mapping) -> str:
  """A short hash of ``fields`` (a :func:`fingerprinted_config`, or a dict
  holding one)."""
  blob = json.dumps(fields, sort_keys=True, default=_json_default)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_differences(recorded: Mapping, current: Mapping) -> list[str]:
  """``"field old -> new"`` for every field whose value differs.

  Nested fields are dotted (``consumer.epochs``); a field only one side has
  shows as ``unset`` on the other.
  """
  old, new = _flatten(recorded), _flatten(current)
  out = []
  for name in sorted(set(old) | set(new)):
    a, b = old.get(name, _UNSET), new.get(name, _UNSET)
    # Compared as JSON text: NaN equals NaN, 1 and 1.0 stay distinct as the
    # fingerprint sees them.
    if _json_text(a) != _json_text(b):
      # repr: strings quoted ('uniform'), unset bare.
      out.append(f"{name} {a!r} -> {b!r}")
  return out


def check_fingerprint(
  what: str,
  recorded: Mapping | None,
  recorded_fingerprint: str | None,
  current: Mapping,
) -> None:
  """Refuses results recorded under another fingerprinted config.

  Args:
    what: what holds the results, for the message (``"workdir /w"``).
    recorded: the fingerprinted config stored with them; None for results of
      a bcjax that stored only a hash of some fields.
    recorded_fingerprint: the hash stored with them (None: none).
    current: this job's :func:`fingerprinted_config`.

  Raises:
    InputError: one line naming every differing field with its old and new
      values, or saying the results are an older bcjax's.
  """
  if recorded is None:
    stored = (
      f"stored config fingerprint {recorded_fingerprint} of some of the "
      "config's fields, not the fields themselves"
      if recorded_fingerprint
      else "recorded some of the config's fields, not the whole config"
    )
    raise InputError(
      f"{what} was made by an older bcjax, which {stored}, so it cannot be "
      "checked against this config; use a fresh workdir"
    )
  differing = config_differences(recorded, current)
  if differing:
    raise InputError(
      f"{what} holds results of another config: {', '.join(differing)}; use a "
      "fresh workdir, or the config it was made with"
    )


def check_config(
  workdir: str,
  fields: Mapping,
  num_seeds: int = 1,
  schema_version: int | None = None,
) -> None:
  """Records the job's fingerprinted config in the workdir, or checks it.

  Args:
    workdir: the job's workdir.
    fields: the job's :func:`fingerprinted_config`.
    num_seeds: the job's embedding seeds; more than recorded is fine (the
      record grows), fewer is refused.
    schema_version: recorded beside the config, for :func:`check_schema`.

  Raises:
    InputError: naming every field whose value differs from the recorded one
      (old and new values), for a workdir of an older bcjax that recorded
      only some fields, or the recorded number of seeds when the job has fewer.
  """
  path = os.path.join(workdir, CONFIG_NAME)
  fields = json.loads(json.dumps(fields, default=_json_default))
  record = {
    SEEDS_KEY: num_seeds,
    FINGERPRINT_KEY: config_fingerprint(fields),
    CONFIG_KEY: fields,
  }
  if schema_version is not None:
    record[SCHEMA_KEY] = schema_version
  if not os.path.exists(path) or not holds_results(workdir):
    # Nothing was computed under the recorded config (a first run that
    # failed on bad input, say): the current one takes its place.
    atomic_files.write_json(path, record)
    return
  try:
    with open(path) as f:
      recorded = json.load(f)
    if not isinstance(recorded, dict):
      raise ValueError(f"a JSON {type(recorded).__name__}, not an object")
  except (OSError, ValueError) as e:
    raise InputError(
      f"{path} is unreadable ({e}); expected the workdir's config"
    ) from e
  check_fingerprint(
    f"workdir {workdir}",
    recorded.get(CONFIG_KEY),
    recorded.get(FINGERPRINT_KEY),
    fields,
  )
  seeds = int(recorded.get(SEEDS_KEY, 1))
  if num_seeds < seeds:
    raise InputError(
      f"workdir {workdir} holds results of {seeds} embedding seeds; "
      f"config.num_seeds={num_seeds} would leave some out of its table. Use "
      f"config.num_seeds >= {seeds} (the finished seeds are reused), or a "
      "fresh workdir"
    )
  if record != recorded:
    # More seeds than before: recorded, so a later job may not drop them.
    atomic_files.write_json(path, record)


class _Unset:
  def __repr__(self):
    return "unset"


_UNSET = _Unset()


def _json_default(value):
  """JSON for the NumPy values and sets a config may hold."""
  if isinstance(value, np.ndarray | np.generic):
    return value.tolist()
  if isinstance(value, set | frozenset):
    return sorted(value)
  raise TypeError(f"{type(value).__name__} is not JSON")


def _json_text(value) -> str:
  if value is _UNSET:
    return "unset"
  return json.dumps(value, sort_keys=True, default=_json_default)


def _flatten(fields: Mapping, prefix: str = "") -> dict:
  """Nested dicts as dotted names; an empty dict stays a value of its own."""
  out = {}
  for name, value in fields.items():
    if isinstance(value, Mapping) and value:
      out.update(_flatten(value, f"{prefix}{name}."))
    else:
      out[f"{prefix}{name}"] = value
  return out
