"""The run-level fields of an experiment, declared as the components' are.

Every field outside the components' sections (data, versions, models,
optimisation, seeds, consumers) is a field of a frozen dataclass here, with
its default and its check in one place (``__post_init__``, through
:func:`bcjax.components.hparams.require`): :func:`read` builds them from a
config with one message naming the bad field (``config.epochs must be a
positive integer, got 0``), as a component's section is read. The shipped
configs (``experiments/configs/default.py``) set the same values;
``tests/test_run_settings.py`` checks that the defaults here are the
default config's.

What needs more than one field (dims that shrink under a truncating
strategy, a joint method's ``keep_after`` against ``epochs``) is checked by
:func:`bcjax.jobs.config.validate`, which reads these first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from bcjax.components.hparams import from_section, require
from bcjax.errors import InputError
from bcjax.evaluation.recall import REPORT_SPLITS
from bcjax.fitting.consumers import ConsumerConfig
from bcjax.models.aggregation import LAYOUTS

# Fields a config must set: the experiment itself, which no default stands for.
REQUIRED = (
  "dataset",
  "taus",
  "num_versions",
  "dims",
  "layers",
  "epochs",
  "report_split",
)


def _positive_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _ints(values: Any, least: int) -> bool:
  return all(
    isinstance(v, int) and not isinstance(v, bool) and v >= least for v in values
  )


@dataclasses.dataclass(frozen=True)
class ConsumerSettings(ConsumerConfig):
  """``config.consumer``: the unintended-task consumer MLPs.

  A :class:`~bcjax.fitting.consumers.ConsumerConfig` (what the consumer fits
  take), with the shipped config's defaults and the checks of a config.

  Attributes:
    hidden_sizes: hidden widths tried (the selection grid).
    dropouts: dropout rates tried, each in [0, 1).
    seeds: consumer seeds per grid point.
    epochs: training epochs.
    batch_size: rows per batch.
    learning_rate: Adam's rate.
  """

  hidden_sizes: tuple[int, ...] = (128,)
  dropouts: tuple[float, ...] = (0.0, 0.25)
  seeds: int = 2
  epochs: int = 20
  batch_size: int = 2048
  learning_rate: float = 1e-3

  def __post_init__(self):
    require(
      len(self.hidden_sizes) > 0, "hidden_sizes", "a list of at least one value", ()
    )
    require(len(self.dropouts) > 0, "dropouts", "a list of at least one value", ())
    require(
      _ints(self.hidden_sizes, 1),
      "hidden_sizes",
      "positive integers",
      self.hidden_sizes,
    )
    require(
      all(0.0 <= r < 1.0 for r in self.dropouts),
      "dropouts",
      "rates that lie in [0, 1)",
      self.dropouts,
    )
    for field in ("seeds", "epochs", "batch_size"):
      value = getattr(self, field)
      require(_positive_int(value), field, "a positive integer", value)
    require(self.learning_rate > 0, "learning_rate", "positive", self.learning_rate)


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """The run-level fields of ``config`` (the components' sections aside).

  Attributes:
    dataset: a registered dataset name (:mod:`bcjax.data.datasets`).
    data_dir: where a real dataset's files are ('' for synthetic).
    item_fields: item attributes to read (comma-separated; '' for none).
    taus: increasing fractions of the interaction log in (0, 1]; version k
      trains on the first ``taus[k]``.
    num_versions: versions trained, at most ``len(taus) - 1``.
    dims: embedding width per version (one entry per version at least).
    layers: PinSAGE layers per version.
    strategy: comma-separated strategy names (``paper``: the paper's eight).
    imports: modules that register a user's components (comma-separated).
    epochs: the embedding fits' most epochs.
    eval_every: epochs between selection checks.
    patience: stop a fit at the first check that finds its kept epoch this
      many epochs old; 0 trains every epoch.
    batch_size: BPR triples per step.
    learning_rate: Adam's rate for the embedding models.
    weight_decay: weight of the embedding L2 in the BPR loss.
    eval_chunk_size: users per chunk of the Recall@K evaluation.
    tasks: unintended tasks (comma-separated; '' for every one the data has).
    seed: seeds the data split, the tasks and the embedding seeds.
    num_seeds: embedding seeds, each a whole run with its own M_0.
    seed_batch: embedding seeds whose fits train as one program (1: seed
      after seed).
    num_devices: devices a fit is sharded over (0: all).
    layout: the aggregation layout ('' picks the backend's reproducible
      default).
    report_split: the users a table reports (``held_out``: the half no
      selection read).
    allow_process_differences: reuse a workdir made under other process
      settings (recorded) rather than refuse it.
  """

  dataset: str = "synthetic"
  data_dir: str = ""
  item_fields: str = ""
  taus: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
  num_versions: int = 5
  dims: tuple[int, ...] = (32, 40, 48, 56, 64)
  layers: tuple[int, ...] = (2, 2, 3, 3, 3)
  strategy: str = "paper"
  imports: str = ""
  epochs: int = 40
  eval_every: int = 5
  patience: int = 0
  batch_size: int = 2048
  learning_rate: float = 1e-2
  weight_decay: float = 1e-2
  eval_chunk_size: int = 512
  tasks: str = ""
  seed: int = 0
  num_seeds: int = 1
  seed_batch: int = 1
  num_devices: int = 1
  layout: str = ""
  report_split: str = "held_out"
  allow_process_differences: bool = False

  def __post_init__(self):
    taus = self.taus
    require(
      len(taus) >= 2 and all(b > a for a, b in zip(taus, taus[1:])),
      "taus",
      "increasing fractions",
      taus,
    )
    require(0 < taus[0] and taus[-1] <= 1, "taus", "fractions that lie in (0, 1]", taus)
    n = self.num_versions
    require(
      _positive_int(n) and n <= len(taus) - 1,
      "num_versions",
      f"an integer in [1, {len(taus) - 1}] (len(config.taus) - 1)",
      n,
    )
    for field in ("dims", "layers"):
      values = getattr(self, field)
      require(len(values) >= n, field, f"a list of one entry per version ({n})", values)
      require(_ints(values, 1), field, "positive integers", values)
    for field in ("epochs", "eval_every", "batch_size", "eval_chunk_size"):
      value = getattr(self, field)
      require(_positive_int(value), field, "a positive integer", value)
    require(
      _positive_int(self.num_seeds),
      "num_seeds",
      "a positive integer (embedding seeds, each a whole run with its own M_0)",
      self.num_seeds,
    )
    require(
      _positive_int(self.seed_batch),
      "seed_batch",
      "a positive integer (embedding seeds whose fits train as one program; "
      "1: seed after seed)",
      self.seed_batch,
    )
    require(
      _ints((self.patience,), 0),
      "patience",
      "0 (train every epoch) or a positive number of epochs",
      self.patience,
    )
    require(self.learning_rate > 0, "learning_rate", "positive", self.learning_rate)
    require(
      math.isfinite(self.weight_decay) and self.weight_decay >= 0,
      "weight_decay",
      ">= 0",
      self.weight_decay,
    )
    require(
      self.layout in ("", *LAYOUTS),
      "layout",
      f"one of {('', *LAYOUTS)} ('' picks the backend's reproducible default)",
      self.layout,
    )
    require(
      self.report_split in REPORT_SPLITS,
      "report_split",
      f"one of {', '.join(REPORT_SPLITS)}",
      self.report_split,
    )
    require(
      _ints((self.num_devices,), 0),
      "num_devices",
      "0 (all devices) or a positive integer",
      self.num_devices,
    )
    if self.seed_batch > 1 and self.num_devices != 1:
      # Read as config.seed_batch=...: the reader prefixes the section.
      raise InputError(
        f"seed_batch={self.seed_batch} trains a group of seeds on one device, "
        f"but config.num_devices={self.num_devices}; expected "
        "config.seed_batch=1 or config.num_devices=1"
      )


@dataclasses.dataclass(frozen=True)
class Settings:
  """Every run-level field of a config, typed and checked.

  Attributes:
    run: the top-level fields.
    consumer: ``config.consumer``.
  """

  run: RunSettings
  consumer: ConsumerSettings


def read(config: Mapping[str, Any]) -> Settings:
  """The run-level fields of ``config``, checked.

  Fields the config lacks get their defaults; fields that are not run-level
  (the components' and other sections) are not read here.

  Raises:
    InputError: one line naming ``config.<field>`` and what was expected.
  """
  names = {f.name for f in dataclasses.fields(RunSettings)}
  run = from_section(
    RunSettings, {k: v for k, v in config.items() if k in names}, "config"
  )
  consumer = from_section(ConsumerSettings, config.get("consumer"), "config.consumer")
  return Settings(run, consumer)


# A recorded results.json's config, per schema_version: the run-level fields
# added after that schema, with the value every run of it had (before
# ``patience`` every fit trained every epoch, before ``seed_batch`` seeds ran
# one after another, ...). A schema not here cannot be read.
ADDED_SINCE = {
  3: {"patience": 0, "seed_batch": 1, "allow_process_differences": False},
  4: {},
}


def read_recorded(results: Mapping[str, Any]) -> Settings:
  """The run-level fields of a ``results.json``, read by its schema's reader.

  ``experiments.merge`` and the results pages read runs made by older code;
  each schema's config is completed with the fields added since
  (:data:`ADDED_SINCE`), then read and checked as a live config is.

  Args:
    results: a ``results.json`` (``schema_version`` and ``config``).

  Raises:
    InputError: a schema this bcjax has no reader for, or a config that lacks
      a field its schema had.
  """
  version = results.get("schema_version")
  if version not in ADDED_SINCE:
    raise InputError(
      f"results.json has schema_version {version!r}; this bcjax reads "
      f"{', '.join(map(str, ADDED_SINCE))}"
    )
  config = {**ADDED_SINCE[version], **(results.get("config") or {})}
  missing = [f.name for f in dataclasses.fields(RunSettings) if f.name not in config]
  if missing:
    raise InputError(
      f"results.json of schema_version {version} has no config field "
      f"{missing[0]!r}; expected every run-level field of its schema"
    )
  return read(config)
