"""The compatibility analytics as a job: inside a comparison, or on a finished run.

:func:`bcjax.compatibility.analyze` takes typed arguments; this module reads
them off an :class:`~bcjax.jobs.experiment.Experiment`: the live one of a
comparison that runs the analytics on its embedding seed 0
(``config.compatibility.enabled``), or the recorded one of a finished
workdir (``experiments.analyze``), whose data is loaded as the run recorded
it (:class:`bcjax.data.spec.DataSpec`, item fields included).

Command (what ``experiments.analyze`` does)::

  result = analyze_workdir("/tmp/bcjax_default", start_versions=(0, 2))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

from absl import logging

from bcjax import compatibility
from bcjax.data.split import VersionSplit
from bcjax.fitting.consumers import Consumer
from bcjax.fitting.tasks import CORE_TASKS
from bcjax.jobs import experiment as experiment_lib
from bcjax.storage.workdir import WorkdirLock


def run_analytics(
  experiment: experiment_lib.Experiment,
  workdir: str,
  graph,
  splits: Sequence[VersionSplit],
  consumers: Mapping[str, Consumer] | None = None,
  analytics: compatibility.AnalyticsConfig | None = None,
) -> dict:
  """:func:`bcjax.compatibility.analyze` of ``experiment``, then its outputs.

  Args:
    experiment: the run's experiment (live or :func:`recorded
      <bcjax.jobs.experiment.recorded>`).
    workdir: the run's folder (seed 0's); outputs are written there.
    graph: the run's graph.
    splits: its version splits.
    consumers: the main job's version-0 consumers by task name (None: fitted).
    analytics: what to analyse (None: the config's ``compatibility``
      section).

  Returns:
    The result as written to ``compatibility.json`` (with ``plots``).
  """
  run = experiment.settings.run
  if analytics is None:
    analytics = compatibility.settings_from_config(experiment.config)
  chosen = [t.strip() for t in run.tasks.split(",") if t.strip()]
  tick = time.perf_counter()
  result = compatibility.analyze(
    workdir,
    list(experiment.strategy_names),
    graph,
    splits,
    experiment.settings.consumer,
    run.seed,
    analytics,
    tasks=[t for t in CORE_TASKS if not chosen or t in chosen],
    consumers=consumers,
    layout=run.layout or None,
  )
  # The cost of the analytics, for deciding whether a config runs them.
  result["seconds"] = time.perf_counter() - tick
  logging.info("compatibility analytics: %.1fs", result["seconds"])
  return compatibility.write_outputs(result, workdir)


def analyze_workdir(workdir: str, start_versions: Sequence[int] | None = None) -> dict:
  """The analytics of a finished run's workdir, retraining no version.

  Reads the run's experiment from ``workdir/results.json``, the versions
  from ``workdir/checkpoints/``, and reuses the consumers saved by an
  earlier analysis; writes ``compatibility.json``, ``compatibility.md`` and
  the plots into ``workdir``.

  Args:
    workdir: a workdir written by ``experiments.compare`` or
      ``experiments.run_intended``.
    start_versions: consumer start versions (None: the config's, or all).

  Raises:
    InputError: no results in ``workdir``, or any bad input of
      :func:`bcjax.compatibility.analyze`.
  """
  experiment = experiment_lib.recorded(workdir)
  analytics = compatibility.settings_from_config(experiment.config)
  if start_versions is not None:
    analytics = dataclasses.replace(analytics, start_versions=tuple(start_versions))
  compatibility.check_start_versions(
    tuple(analytics.start_versions), experiment.settings.run.num_versions
  )
  with WorkdirLock(workdir):
    graph = experiment.data.load()
    splits = experiment.data.splits(graph)
    return run_analytics(experiment, workdir, graph, splits, analytics=analytics)
