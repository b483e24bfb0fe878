"""The main job: every strategy, the consumers, and the paper's Table 3.

``run(config, workdir)`` trains (or reuses) every version of every strategy
(:mod:`bcjax.jobs.runner`), trains each unintended task's consumers once on
version-0 embeddings (or reuses them), serves every strategy's
version-0-compatible embeddings of every version to them through the
registry, and writes under ``workdir``:

* ``results.json``: everything (intended task, consumers, per-version metrics,
  the table);
* ``table.md`` and ``table.csv``: the comparison table;
* ``*.png``: Recall@50 per version relative to nobc, unintended metrics
  relative to fix-m0, alignment error per version, the trade-off of
  intended against unintended.

With ``config.num_seeds = n > 1`` all of this runs once per embedding seed,
each with its own M_0 (seed 0 in ``workdir``, seed ``i`` in
``workdir/seeds/<i>/`` with its own ``results.json``); the table's cells are
means over seeds with Student-t 95% intervals, computed paired by seed
(:mod:`bcjax.evaluation.seed_table`), and ``results.json`` holds every
seed's numbers under ``per_seed``. Finished seeds are reused by a rerun.
``config.seed_batch`` seeds at a time train their fits together
(:mod:`bcjax.jobs.seed_lockstep`).

Run as several JAX processes (several hosts, the binaries' ``--distributed``),
every process trains every version on the global mesh and takes part in its
Orbax save; process 0 alone trains, saves and serves the consumers and writes
every other output (:mod:`bcjax.jobs.processes`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from bcjax import compatibility, environment, keys, registry
from bcjax.evaluation import seed_table
from bcjax.evaluation.table import comparison_table
from bcjax.evaluation.table_records import ComparisonTable
from bcjax.evaluation.unintended import (
  ConsumerChoice,
  UnintendedResults,
  UnintendedScore,
  UnintendedTask,
)
from bcjax.fitting.consumer_checkpoints import load_consumer, save_consumer
from bcjax.fitting.consumers import (
  Consumer,
  fit_consumer,
)
from bcjax.fitting.tasks import Task, available_tasks, build_task
from bcjax.jobs import (
  analytics,
  outputs,
  processes,
  runner,
  seed_lockstep,
  weight_tuning,
)
from bcjax.jobs import experiment as experiment_lib
from bcjax.jobs.metric_writer import MetricWriter
from bcjax.jobs.run_data import RunData
from bcjax.storage import atomic_files
from bcjax.storage.workdir import config_fingerprint, seed_workdir


def task_names(tasks: str, graph) -> list[str]:
  """``config.tasks`` (comma-separated), or every task the data has."""
  names = [t.strip() for t in tasks.split(",") if t.strip()]
  return names or available_tasks(graph)


def _consumer_fingerprint(data: RunData, task: Task) -> str:
  """The run's fingerprint (its config, consumer settings included, and its
  data) and the task's name."""
  return config_fingerprint({"config": data.fields, "task": task.name})


def _tables(reg: registry.EmbeddingRegistry, version: int):
  """A strategy's version-``version`` embeddings in version 0's space."""
  return tuple(
    reg.compatible_embeddings(version, 0, kind=kind) for kind in ("user", "item")
  )


def run(
  config: ml_collections.ConfigDict | experiment_lib.Experiment, workdir: str
) -> dict | None:
  """Runs the comparison end to end; reuses whatever ``workdir`` holds.

  Args:
    config: an experiment config (see ``experiments/configs/default.py``),
      or the :class:`~bcjax.jobs.experiment.Experiment` resolved from one
      with ``tuning=True``.
    workdir: the output folder.

  Returns:
    The results, as written to ``workdir/results.json``; None on processes
    other than 0 of a multi-process job, which train but write no outputs.
  """
  experiment = experiment_lib.resolve(config, tuning=True)
  started = environment.now()
  with runner.job_context(workdir, experiment) as (writer, data):
    return _run(experiment, data, writer, started)


def _run(
  experiment: experiment_lib.Experiment, data: RunData, writer: MetricWriter, started
) -> dict:
  settings = data.settings
  strategies = list(experiment.strategies)
  # Unknown task names fail before hours of training, not after. Tasks
  # depend on the data and config.seed alone: one set for every seed.
  tasks = [
    build_task(name, data.graph, data.splits, seed=settings.seed)
    for name in task_names(settings.tasks, data.graph)
  ]
  per_seed = seed_lockstep.run_seeds(
    data,
    settings.num_seeds,
    settings.seed_batch,
    lambda seed_data, fits: _run_seed(seed_data, strategies, tasks, writer, fits),
  )
  runs = [run for run in per_seed if run is not None]
  if not processes.is_primary():
    return None
  return _write_outputs(data.workdir, runs, writer, started, list(experiment.tuned))


def _run_seed(
  data: RunData, strategies, tasks, writer: MetricWriter, fits=None
) -> tuple[dict, ComparisonTable] | None:
  """One embedding seed: its versions, consumers and table, in its folder.

  Training is every process's; the consumer stage and the outputs are
  process 0's alone (see :func:`_host_tables`). ``fits``: where its fits go
  when seeds train together (:mod:`bcjax.jobs.seed_lockstep`).

  Returns:
    The seed's results (as a one-seed run's, with its ``table`` as JSON;
    written to the seed's ``results.json``) and its table; None on processes
    other than 0.
  """
  job = runner.Runner(data, writer, tuple(strategies), fits)
  suffix = runner.seed_suffix(data.embedding_seed)
  consumer_settings = data.experiment.settings.consumer
  grid_epochs = len(consumer_settings.hidden_sizes) * consumer_settings.epochs
  for task in tasks:
    # A consumer grid epoch against a training epoch: a guess the measured
    # rate corrects only in part; the ETA firms up as stages finish.
    job.clock.add(f"consumers/{task.name}", grid_epochs, weight=CONSUMER_EPOCH_WEIGHT)
  results = runner.run_strategies(job, strategies)

  # M_0's embeddings are computed on the mesh by every process, then taken
  # to the host: process 0 trains the consumers on them alone.
  train_tables = _host_tables(job.m0_embeddings(0))
  selection_tables = {
    task.name: _host_tables(job.m0_embeddings(task.selection_version)) for task in tasks
  }
  if not processes.is_primary():
    return None
  consumers = _consumers(
    data, tasks, train_tables, selection_tables, writer, job, suffix
  )
  unintended = _score_unintended(data, strategies, tasks, consumers)
  results["unintended"] = unintended.to_json()
  results["halves"]["tasks"] = {
    task.name: task.halves_record(data.settings.report_split, data.embedding_seed)
    for task in tasks
  }
  if compatibility.enabled(data.config) and data.embedding_seed == 0:
    # The analytics read the seed-0 workdir's results.json: of seed 0 alone.
    atomic_files.write_json(data.results_path, results)
    results["compatibility"] = analytics.run_analytics(
      data.experiment, data.workdir, data.graph, data.splits, consumers
    )
  table = comparison_table(results, unintended)
  results["table"] = table.to_json()
  if "selection" in unintended.halves:
    # The other half's table: what a weight is chosen on, never reported.
    results["selection_table"] = comparison_table(
      results, unintended, half="selection"
    ).to_json()
  results["environment"] = environment.record(job.started)
  if job.process_differences:
    results["environment"]["process_differences"] = job.process_differences
  atomic_files.write_json(data.results_path, results)
  return results, table


def _consumers(
  data, tasks, train_tables, selection_tables, writer, job, suffix
) -> dict[str, Consumer]:
  """Every task's consumers: reused from the workdir, else trained and saved.

  Selection reads M_0's embeddings of the selection version's graph: fix-m0's,
  as in the paper's code.
  """
  consumers = {}
  for t, task in enumerate(tasks, 1):
    tick = time.perf_counter()
    path = os.path.join(data.workdir, "consumers", task.name)
    fingerprint = _consumer_fingerprint(data, task)
    consumer = load_consumer(path, task, fingerprint)
    stage = f"consumers/{task.name}"
    if consumer is None:
      # Seeds in lockstep train their consumers together.
      fit = fit_consumer if job.fits is None else job.fits.fit_consumer
      consumer = fit(
        task=task,
        train_tables=train_tables,
        selection_tables=selection_tables[task.name],
        config=data.experiment.settings.consumer,
        # The same consumer seeds for every embedding seed.
        key=keys.consumer_key(data.settings.seed, task.name),
        report=functools.partial(
          _report_consumer, writer, job, task.name, suffix, t, len(tasks)
        ),
      )
      save_consumer(path, consumer, fingerprint)
    else:
      logging.info(
        "task %s (%d/%d): consumers reused from %s", task.name, t, len(tasks), path
      )
    job.clock.skip(stage)
    consumers[task.name] = consumer
    logging.info(
      "task %s: consumers hidden %d dropout %.2f, selection %s %.4f (%.1fs)",
      task.name,
      consumer.hidden,
      consumer.dropout,
      task.metric,
      _mean_defined(consumer.selection),
      time.perf_counter() - tick,
    )
  return consumers


def _score_unintended(data, strategies, tasks, consumers) -> UnintendedResults:
  """Each task's consumers on every strategy's versions, per consumer seed."""
  # Every strategy's version-0-compatible embeddings of every version, read
  # once and served to every task's consumers.
  scores = []
  with contextlib.ExitStack() as stack:
    for strategy in strategies:
      # Process 0 alone serves the consumers: without the mesh, which spans
      # the other processes' devices too.
      reg = registry.open(
        data.store_path(strategy.name), data.mesh if jax.process_count() == 1 else None
      )
      stack.callback(reg.close)
      for k in range(data.settings.num_versions):
        tables = _tables(reg, k)
        for task in tasks:
          if k in task.evaluation:
            examples = task.evaluation[k]
            rows = task.halves(
              examples, data.settings.report_split, data.embedding_seed
            )
            halves = consumers[task.name].scores_of_rows(tables, examples, rows)
            scores.extend(
              UnintendedScore(task.name, strategy.name, k, seed, value, half)
              for half, values in halves.items()
              for seed, value in enumerate(values)
            )
  unintended = UnintendedResults(
    tasks=tuple(_task_record(task, consumers[task.name]) for task in tasks),
    scores=tuple(scores),
  )
  for task in tasks:
    if task.eval_versions:
      last = task.eval_versions[-1]
      logging.info(
        "task %s at version %s: %s",
        task.name,
        last,
        ", ".join(
          f"{name} {_fmt(unintended.per_version(task.name, name)[last])}"
          for name in unintended.strategies(task.name)
        ),
      )
  return unintended


def _task_record(task: Task, consumer: Consumer) -> UnintendedTask:
  """The task and its chosen consumers, as the table and results.json keep it."""
  return UnintendedTask(
    name=task.name,
    metric=task.metric,
    core=task.core,
    selection_version=task.selection_version,
    input=task.input,
    num_train=len(task.train),
    consumer=ConsumerChoice(
      hidden=consumer.hidden,
      dropout=consumer.dropout,
      selection=tuple(consumer.selection),
      best_epochs=tuple(consumer.best_epochs),
      grid=consumer.grid,
    ),
  )


def _host_tables(tables) -> tuple:
  """``(user, item)`` embeddings on this process's default device.

  On a multi-process mesh they are replicated global arrays, which a
  computation of process 0 alone cannot take; every process holds all rows,
  so a copy through the host is exact.
  """
  return tuple(jnp.asarray(np.asarray(t)) for t in tables)


def _write_outputs(workdir, runs, writer: MetricWriter, started, tuned=()) -> dict:
  """The job's results over seeds, written by :func:`outputs.write_outputs`.

  Args:
    workdir: the job's workdir.
    runs: per embedding seed, ``(results, table)``.
    writer: where the table's numbers go.
    started: when the job started.
    tuned: the strategies a tuning run chooses a weight of
      (:mod:`bcjax.jobs.weight_tuning`; empty: none).

  Returns:
    Seed 0's results with the table over seeds as ``table`` and, for two or
    more seeds, ``num_seeds`` and every seed's numbers under ``per_seed``.
  """
  results = dict(runs[0][0])
  table = seed_table.seed_table([t for _, t in runs])
  results["table"] = table.to_json()
  n = len(runs)
  if n > 1:
    results["num_seeds"] = n
    results["per_seed"] = [
      {
        "embedding_seed": i,
        "workdir": os.path.relpath(seed_workdir(workdir, i), workdir),
        "table": t.to_json(),
        "strategies": r["strategies"],
        "unintended": r.get("unintended", {}),
        **{f: r[f] for f in ("selection_table", "halves") if f in r},
      }
      for i, (r, t) in enumerate(runs)
    ]
  if tuned:
    results["weight_selection"] = weight_tuning.weight_selection(results, tuned)
  record = environment.record(started)
  # Every seed's versions reused under other process settings.
  allowed = [
    line for r, _ in runs for line in r["environment"].get("process_differences", [])
  ]
  if allowed:
    record["process_differences"] = allowed
  return outputs.write_outputs(
    workdir, results, runs, table, writer=writer, environment=record
  )


# Seconds of one consumer grid epoch (every dropout and seed of one hidden
# size) per second of a training epoch, for the job clock's first plan.
CONSUMER_EPOCH_WEIGHT = 0.2


def _report_consumer(writer, job, task, suffix, t, num_tasks, hidden, epoch, scalars):
  """A consumer grid epoch: its curves, and a progress line per hidden size."""
  stage = f"consumers/{task}"
  writer.write(f"{stage}{suffix}/h{hidden}", epoch, scalars, task=task, hidden=hidden)
  job.clock.advance(stage)
  epochs = job.data.experiment.settings.consumer.epochs
  if epoch == epochs:
    logging.info(
      "task %s (%d/%d): hidden %d done, %d epochs [%s]",
      task,
      t,
      num_tasks,
      hidden,
      epochs,
      job.clock.eta(),
    )


def _mean_defined(values) -> float:
  defined = [v for v in values if v is not None]
  return sum(defined) / len(defined) if defined else float("nan")


def _fmt(value):
  return "n/a" if value is None else f"{value:.4f}"
