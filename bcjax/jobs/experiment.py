"""An experiment, resolved once: what every job runs.

A job used to start from a ConfigDict and resolve it on the way down (the
process set-up, the components' sections, the checks, the strategies, the
weight tuning), each job again. :func:`resolve` does all of it once and
returns a frozen :class:`Experiment`; :func:`bcjax.jobs.comparison.run` and
:func:`bcjax.jobs.runner.run` take one (or a config, which they resolve the
same way), so the extensions load once and every strategy is resolved once.

A finished run is read back as an Experiment too (:func:`recorded`, from its
``results.json`` through the reader of its ``schema_version``): what
``experiments.analyze``, ``experiments.export`` and ``experiments.merge``
work from.

Command (the library call a binary makes)::

  experiment = resolve(config, tuning=True)
  comparison.run(experiment, workdir)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from bcjax import environment
from bcjax.data.spec import DataSpec
from bcjax.errors import InputError
from bcjax.jobs import config as config_lib
from bcjax.jobs import run_settings, weight_tuning
from bcjax.methods.strategies import ResolvedStrategy


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A resolved experiment.

  Attributes:
    config: the config, with every component's section, checked and locked
      (a tuning run's config names its variants in ``strategy``). Jobs still read
      fields through it; it is what ``results.json`` and the fingerprints
      record.
    settings: its run-level fields, typed (:mod:`bcjax.jobs.run_settings`).
    data: the dataset and its version splits (:class:`bcjax.data.spec.DataSpec`).
    strategies: the strategies it runs, resolved with their components and
      hyperparameters, in ``config.strategy``'s order (a :func:`recorded`
      run's are not resolved: empty).
    strategy_names: the names of the strategies it runs, or that a recorded
      run holds.
    tuned: the strategies whose weight a tuning run chooses (empty: none).
    process: the process settings in force (:func:`bcjax.environment.set_up_process`).
  """

  config: ml_collections.ConfigDict
  settings: run_settings.Settings
  data: DataSpec
  strategies: tuple[ResolvedStrategy, ...]
  strategy_names: tuple[str, ...]
  tuned: tuple[str, ...]
  process: dict


def resolve(config: ml_collections.ConfigDict, *, tuning: bool = False) -> Experiment:
  """Resolves ``config`` once: process, sections, checks, strategies.

  Args:
    config: an experiment config (``experiments/configs/default.py``); the
      caller's object is not changed.
    tuning: expand ``config.tuning.weights`` into the strategies' variants
      (:func:`bcjax.jobs.weight_tuning.expand`: the comparison does; the
      intended-task runner trains the strategies as named).

  Raises:
    InputError: one line naming the bad field.
  """
  if isinstance(config, Experiment):
    return config
  # Before anything starts JAX's backend: the thread pools are fixed then.
  process = environment.set_up_process(config.get("seed_batch", 1))
  config = config_lib.with_component_sections(config)
  settings, strategies = config_lib.check(config)
  tuned: list[str] = []
  if tuning:
    config, strategies, tuned = weight_tuning.expand(config, strategies)
    # The settings mirror the config the job runs: its strategy list.
    settings = run_settings.Settings(
      dataclasses.replace(settings.run, strategy=config.strategy), settings.consumer
    )
  config.lock()
  return Experiment(
    config,
    settings,
    DataSpec.from_config(config),
    tuple(strategies),
    tuple(s.name for s in strategies),
    tuple(tuned),
    process,
  )


def recorded(
  results: str | Mapping[str, Any], *, data_dir: str | None = None
) -> Experiment:
  """The experiment of a finished run, read from its ``results.json``.

  The config is read by the reader of the record's ``schema_version``
  (:func:`bcjax.jobs.run_settings.read_recorded`), so runs made by older
  code are read as well; the strategies are named, not resolved (a
  recorded run's strategies may come from an extension this process has
  not loaded, or from an older grammar), and ``process`` is the set-up of
  this process, made here for work that trains no seed batch (analyses
  and exports train one consumer or read one store at a time).

  Args:
    results: a workdir (its ``results.json`` is read), or a ``results.json``
      already read.
    data_dir: the folder of the run's real dataset, overriding the recorded
      one (None keeps it).

  Raises:
    InputError: a missing or unreadable record, or a schema this bcjax has
      no reader for.
  """
  if isinstance(results, str):
    path = os.path.join(results, "results.json")
    try:
      with open(path) as f:
        results = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
      raise InputError(
        f"{path} is missing or unreadable ({type(e).__name__}: {e}); run "
        "experiments.compare or experiments.run_intended on this workdir first"
      ) from e
  if not isinstance(results.get("config"), Mapping) or not isinstance(
    results.get("strategies"), Mapping
  ):
    raise InputError(
      "a results.json without its config or strategies; expected the record "
      "of experiments.compare, experiments.run_intended or experiments.merge"
    )
  process = environment.set_up_process()
  settings = run_settings.read_recorded(results)
  config = ml_collections.ConfigDict(results["config"])
  return Experiment(
    config,
    settings,
    DataSpec.from_config(config, data_dir),
    (),
    tuple(results["strategies"]),
    tuple((results.get("weight_selection") or {}).keys()),
    process,
  )
