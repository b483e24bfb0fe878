"""An experiment, resolved once: what every job runs.

A job used to start from a ConfigDict and resolve it on the way down (the
process set-up, the components' sections, the checks, the strategies, the
weight tuning), each job again. :func:`resolve` does all of it once and
returns a frozen :class:`Experiment`; :func:`bcjax.jobs.comparison.run` and
:func:`bcjax.jobs.runner.run` take one (or a config, which they resolve the
same way), so the extensions load once and every strategy is resolved once.

Command (the library call a binary makes)::

  experiment = resolve(config, tuning=True)
  comparison.run(experiment, workdir)
"""

from __future__ import annotations

import dataclasses

import ml_collections

from bcjax import environment
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
    strategies: the strategies it runs, resolved with their components and
      hyperparameters, in ``config.strategy``'s order.
    tuned: the strategies whose weight a tuning run chooses (empty: none).
    process: the process settings in force (:func:`bcjax.environment.set_up_process`).
  """

  config: ml_collections.ConfigDict
  settings: run_settings.Settings
  strategies: tuple[ResolvedStrategy, ...]
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
  return Experiment(config, settings, tuple(strategies), tuple(tuned), process)
