"""The runner: every version of every strategy, trained or reused, recorded.

``run(config, workdir)`` loads the dataset, splits it into versions and, for
each strategy and version, calls the strategy's registered method
(:mod:`bcjax.methods`) with the version's :class:`~bcjax.methods.Context`;
the runner itself knows no method by name. Version 0 is M_0 for every
strategy, trained once per run by :data:`~bcjax.methods.M0_METHOD`.

Each version is saved as an Orbax step under
``workdir/checkpoints/<strategy>/`` (model, transform, embeddings, metadata)
with its alignment errors to the previous version and to version 0, and
recorded in ``workdir/results.json``. A version already saved in the workdir
is reused, not retrained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator

import ml_collections
from absl import logging

from bcjax import environment, keys
from bcjax.errors import InputError
from bcjax.evaluation.alignment import version_alignment
from bcjax.evaluation.recall import halves_record, most_popular_recall
from bcjax.jobs import experiment as experiment_lib
from bcjax.jobs import fingerprints, processes, seed_lockstep
from bcjax.jobs.job_clock import JobClock
from bcjax.jobs.metric_writer import MetricWriter
from bcjax.jobs.run_data import RunData
from bcjax.jobs.seed_lockstep import SeedFits
from bcjax.methods import M0_METHOD, Context, Version
from bcjax.methods.strategies import ResolvedStrategy, resolve
from bcjax.models.pinsage import PinSAGE, embed
from bcjax.storage import atomic_files
from bcjax.storage.checkpoints import VersionStore
from bcjax.storage.results import VersionResult
from bcjax.storage.workdir import (
  CONFIG_KEY,
  DATASET_KEY,
  FINGERPRINT_KEY,
  WorkdirLock,
  check_config,
  check_fingerprint,
  check_schema,
)

# Of results.json and the workdir (2 added "schema_version" and "environment";
# each later one says why in SCHEMA_CHANGES). An older workdir is refused.
RESULTS_SCHEMA_VERSION = 4
# Why a workdir of each older schema cannot be reused, for the refusal.
SCHEMA_CHANGES = {
  4: (
    "each version is checked by its own strategy's settings, not the whole "
    "config's, and its in-fit progress is kept under them"
  ),
  3: (
    "its table formula (intended and alignment error now over versions 0..K-1, "
    "the alignment error over users and items pooled) and its B init differ "
    "from this bcjax's"
  ),
}


class Runner:
  """Runs (or restores) versions of strategies; each at most once per run.

  Args:
    data: the run's data.
    writer: where the fits' curves go (None: nowhere).
    strategies: the strategies the job will run, resolved, in order: the
      job clock plans their epochs, and progress lines say "strategy i/N".
      Any other strategy a method reads (``ctx.version_of``) is resolved
      once, with the run's config.
    fits: where its methods' fits go when seeds train together
      (:mod:`bcjax.jobs.seed_lockstep`); None: each fitted alone.
  """

  def __init__(
    self,
    data: RunData,
    writer: MetricWriter | None = None,
    strategies: tuple[ResolvedStrategy, ...] = (),
    fits: SeedFits | None = None,
  ):
    self.data = data
    self.fits = fits
    self.data_fingerprint = data.fields[DATASET_KEY]
    self._fields: dict[str, dict] = {}
    self._versions: dict[tuple[str, int], Version] = {}
    self._m0_embeddings: dict[int, tuple] = {}
    self.writer = writer
    self.started = environment.now()
    self.clock = JobClock()
    # Versions reused under other process settings (allowed by the config).
    self.process_differences: list[str] = []
    self._order = {s.name: i for i, s in enumerate(strategies, 1)}
    self._resolved = {s.name: s for s in strategies}
    self._reported: dict[str, int] = {}
    c = data.settings
    for s in strategies:
      for k in range(c.num_versions):
        # Every version trains a model for config.epochs, except version 0
        # outside M_0's method (it is M_0): a plan, refined as stages end.
        trains = k > 0 or s.method.name == M0_METHOD
        self.clock.add(_stage(s.name, k), c.epochs if trains else 0)
    self.clock.start()

  def strategy(self, name: str) -> ResolvedStrategy:
    """Strategy ``name`` resolved with the run's config (once per run)."""
    if name not in self._resolved:
      resolved = resolve(name, self.data.config)
      # An alias resolves to its canonical name's entry.
      self._resolved[name] = self._resolved.setdefault(resolved.name, resolved)
    return self._resolved[name]

  def fields(self, strategy: ResolvedStrategy) -> dict:
    """What decides ``strategy``'s versions (:mod:`bcjax.jobs.fingerprints`)."""
    if strategy.name not in self._fields:
      self._fields[strategy.name] = fingerprints.strategy_fields(
        self.data.fields, strategy, self.strategy
      )
    return self._fields[strategy.name]

  def results(self, strategy: ResolvedStrategy) -> list[VersionResult]:
    """Every version of ``strategy``, trained or restored: their results."""
    n = self.data.settings.num_versions
    return [self.version(strategy, k).result for k in range(n)]

  def m0_embeddings(self, k: int) -> tuple:
    """M_0 on version k's graph: fix-m0's embeddings, the version-0 reference."""
    if k not in self._m0_embeddings:
      m0 = self.version(self.strategy(M0_METHOD), 0)
      self._m0_embeddings[k] = embed(m0.model, m0.variables, self.data.bipartite(k))
    return self._m0_embeddings[k]

  def version(self, strategy: ResolvedStrategy, k: int) -> Version:
    """Version ``k`` of ``strategy``: restored, or made by its method and saved."""
    memo = (strategy.name, k)
    if memo in self._versions:
      return self._versions[memo]
    earlier = [self.version(strategy, j) for j in range(k)]
    with VersionStore(self.data.store_path(strategy.name)) as store:
      if k in store.versions():
        version = self._restore(store, strategy, k)
        logging.info("%s v%d: reused from %s", strategy.name, k, store.directory)
      else:
        version = self._make(strategy, k, earlier)
        self._save(store, strategy, k, version, earlier)
      if processes.is_primary():
        # Every process has passed the collective save: none reads it again.
        self._progress(strategy, k).clear()
    if _stage(strategy.name, k) in self.clock:
      self.clock.skip(_stage(strategy.name, k))
    self._versions[memo] = version
    return version

  def _report(self, strategy: ResolvedStrategy, k: int, record: dict) -> str:
    """Writes a fit's evaluation and says where the job stands."""
    c = self.data.settings
    stage = _stage(strategy.name, k)
    if stage in self.clock:
      done = self._reported.get(stage, 0)
      self.clock.advance(stage, max(record["epoch"] - done, 0))
      self._reported[stage] = record["epoch"]
    i = self.data.embedding_seed
    if self.writer is not None:
      tag = f"intended/{strategy.name}/v{k}" + (f"/seed{c.seed}" if c.seed else "")
      self.writer.write(
        tag + seed_suffix(i),
        record["epoch"],
        {n: v for n, v in record.items() if n not in ("epoch", "epochs")},
        strategy=strategy.name,
        version=k,
        seed=c.seed,
        **({"embedding_seed": i} if i else {}),
      )
    position = self._order.get(strategy.name)
    where = f"strategy {position}/{len(self._order)}, " if position else ""
    if c.num_seeds > 1:
      where = f"seed {i + 1}/{c.num_seeds}, " + where
    return f" [{where}version {k}/{c.num_versions - 1}, {self.clock.eta()}]"

  def _make(
    self, strategy: ResolvedStrategy, k: int, earlier: list[Version]
  ) -> Version:
    if k == 0 and strategy.method.name != M0_METHOD:
      m0 = self.version(self.strategy(M0_METHOD), 0)
      return dataclasses.replace(m0, result=m0.result.replace(strategy=strategy.name))
    ctx = self._context(strategy, k)
    version = strategy.method.fn(ctx, k, earlier)
    if k == 0:
      # Version 0 is M_0: fix-m0's embeddings exactly, which the table's
      # alignment error averages in (as the reference does).
      return dataclasses.replace(
        version,
        result=version.result.replace(distance_to_fix_m0=0.0, alignment_mse_v0=0.0),
      )
    graph = ctx.graph
    errors = version_alignment(
      strategy.transform,
      tuple(v.transform_params for v in earlier[1:]) + (version.transform_params,),
      embed(version.model, version.variables, graph),
      embed(earlier[-1].model, earlier[-1].variables, graph),
      self.m0_embeddings(k),
    )
    return dataclasses.replace(
      version, result=version.result.replace(strategy=strategy.name, **errors)
    )

  def _context(self, strategy: ResolvedStrategy, k: int) -> Context:
    key = keys.version_key(
      self.data.settings.seed, strategy.id, k, self.data.embedding_seed
    )
    return Context(
      strategy=strategy,
      config=self.data.config,
      split=self.data.splits[k],
      graph=self.data.bipartite(k),
      key=key,
      mesh=self.data.mesh,
      progress=self._progress(strategy, k),
      version_of=lambda name, j: self.version(self.strategy(name), j),
      report=functools.partial(self._report, strategy, k),
      fits=self.fits,
      embedding_seed=self.data.embedding_seed,
    )

  def _progress(self, strategy: ResolvedStrategy, k: int):
    return self.data.progress(
      strategy.name, k, fingerprints.fingerprint(self.fields(strategy))
    )

  def _save(self, store, strategy, k, version, earlier):
    split = self.data.splits[k]
    dim = version.model.dim
    transform = {"name": "none", "d_in": dim, "d_out": dim}
    if k > 0:
      transform = strategy.transform.spec(dim, earlier[-1].model.dim)
    metadata = {
      "strategy": strategy.name,
      # Where its method, transform and loss were registered: serving loads
      # the extensions among them by itself.
      "components": strategy.components(),
      "version": k,
      "dim": dim,
      "layers": version.model.num_layers,
      "transform": transform,
      "tau_train": split.tau_train,
      "tau_val": split.tau_val,
      "dataset": self.data.settings.dataset,
      "dataset_fingerprint": self.data_fingerprint,
      FINGERPRINT_KEY: fingerprints.fingerprint(self.fields(strategy)),
      # What decides it, so that a version of other settings is refused
      # naming the fields that differ.
      CONFIG_KEY: self.fields(strategy),
      "result": version.result.to_json(),
      # The settings that change bits (NPROC, BLAS threads, ...): a rerun
      # that reuses this version under others is refused.
      "process": environment.process_settings(),
    }
    store.save(
      k,
      model=version.variables,
      transform=version.transform_params,
      embeddings=embed(version.model, version.variables, self.data.bipartite(k)),
      metadata=metadata,
    )

  def _check_process(self, what: str, recorded: dict | None) -> None:
    """Refuses to reuse ``what``, made under other process settings, unless
    ``config.allow_process_differences``; then records the differences."""
    allowed = self.data.settings.allow_process_differences
    for line in environment.reuse_differences(what, recorded, allowed):
      if line not in self.process_differences:
        self.process_differences.append(line)
        logging.warning("reused under other process settings: %s", line)

  def _restore(self, store, strategy: ResolvedStrategy, k: int) -> Version:
    metadata = store.metadata(k)
    if metadata.get("dataset_fingerprint") != self.data_fingerprint:
      raise InputError(
        f"{store.directory} holds version {k} trained on other data (dataset "
        f"fingerprint {metadata.get('dataset_fingerprint')} there, "
        f"{self.data_fingerprint} now); use a fresh workdir"
      )
    fields = self.fields(strategy)
    if metadata.get(FINGERPRINT_KEY) != fingerprints.fingerprint(fields):
      check_fingerprint(
        f"version {k} in {store.directory}",
        metadata.get(CONFIG_KEY),
        metadata.get(FINGERPRINT_KEY),
        fields,
      )
    self._check_process(f"version {k} in {store.directory}", metadata.get("process"))
    model = PinSAGE(dim=metadata["dim"], num_layers=metadata["layers"])
    transform_params = store.transform(k)[1] if k > 0 else None
    return Version(
      model,
      store.restore(k, "model"),
      transform_params,
      VersionResult.from_json(metadata["result"]),
    )


def run(
  config: ml_collections.ConfigDict | experiment_lib.Experiment, workdir: str
) -> dict:
  """Trains (or reuses) every version of every strategy in ``config``.

  One run per embedding seed (``config.num_seeds``): seed 0 in ``workdir``,
  seed ``i`` in ``workdir/seeds/<i>/``, each with its own ``results.json``;
  ``config.seed_batch`` seeds at a time train their fits together
  (:mod:`bcjax.jobs.seed_lockstep`).

  Args:
    config: an experiment config (see ``experiments/configs/default.py``);
      sections of registered components it lacks get their defaults. Or
      the :class:`~bcjax.jobs.experiment.Experiment` resolved from one.
    workdir: the output folder: ``results.json`` and ``checkpoints/``.

  Returns:
    Seed 0's results, as written to ``workdir/results.json``.
  """
  experiment = experiment_lib.resolve(config)
  strategies = list(experiment.strategies)
  with job_context(workdir, experiment) as (writer, data):
    per_seed = seed_lockstep.run_seeds(
      data,
      data.settings.num_seeds,
      data.settings.seed_batch,
      lambda seed_data, fits: run_strategies(
        Runner(seed_data, writer, tuple(strategies), fits), strategies
      ),
    )
    return per_seed[0]


@contextlib.contextmanager
def job_context(
  workdir: str, experiment: experiment_lib.Experiment
) -> Iterator[tuple[MetricWriter | None, RunData]]:
  """The workdir lock, the checks, the metric writer and the data of a job.

  Process 0 alone takes the lock, checks (and records) the workdir's config
  and writes metrics; the other processes of a multi-process job get no
  writer and touch nothing (:mod:`bcjax.jobs.processes`). Every process loads the
  data, whose content fingerprint is part of what the workdir is checked by.

  Args:
    workdir: the job's workdir.
    experiment: the job's experiment.

  Yields:
    The metric writer (None on other processes) and the job's data.
  """

  def enter(stack):
    os.makedirs(workdir, exist_ok=True)
    stack.enter_context(WorkdirLock(workdir))
    # Before the data is loaded: an old workdir is refused at once.
    check_schema(workdir, RESULTS_SCHEMA_VERSION, SCHEMA_CHANGES)
    return stack.enter_context(MetricWriter(workdir))

  with processes.primary_context(enter) as writer:
    data = RunData.load(experiment, workdir)
    processes.on_primary(lambda: check_workdir(workdir, data))
    yield writer, data


def check_workdir(workdir: str, data: RunData) -> None:
  """Refuses a workdir of another config (or data), or of more seeds."""
  check_config(
    workdir,
    data.fields,
    num_seeds=data.settings.num_seeds,
    schema_version=RESULTS_SCHEMA_VERSION,
  )


def seed_suffix(embedding_seed: int) -> str:
  """What tags of embedding seed ``i >= 1`` end with (nothing for seed 0)."""
  return f"/embedding_seed{embedding_seed}" if embedding_seed else ""


def run_strategies(runner: Runner, strategies: list[ResolvedStrategy]) -> dict:
  """Every version of ``strategies``; writes ``results.json`` (the JSON edge)."""
  data = runner.data
  report_split = data.settings.report_split
  baselines = [
    {
      "version": s.version,
      "recall": _recall_json(
        most_popular_recall(s, report_split=report_split, seed=data.embedding_seed)
      ),
    }
    for s in data.splits
  ]
  results = {
    "schema_version": RESULTS_SCHEMA_VERSION,
    "embedding_seed": data.embedding_seed,
    "environment": environment.record(runner.started),
    "dataset": {
      "name": data.settings.dataset,
      "fingerprint": runner.data_fingerprint,
      "num_users": data.graph.num_users,
      "num_items": data.graph.num_items,
      "num_interactions": data.graph.num_edges,
    },
    "config": data.config.to_dict(),
    "baselines": {"most-popular": baselines},
    "halves": halves_record(data.splits, report_split, data.embedding_seed),
    "strategies": {},
  }
  for strategy in strategies:
    versions = runner.results(strategy)
    results["strategies"][strategy.name] = [v.to_json() for v in versions]
    for v in versions:
      logging.info(
        "%s v%d recall@50 %.4f (most popular %.4f) distance to fix-m0 %s",
        strategy.name,
        v.version,
        v.recall[50],
        baselines[v.version]["recall"]["50"],
        "-" if v.distance_to_fix_m0 is None else f"{v.distance_to_fix_m0:.5f}",
      )
    if runner.process_differences:
      results["environment"]["process_differences"] = runner.process_differences
    if processes.is_primary():
      atomic_files.write_json(data.results_path, results)
  return results


def _stage(strategy: str, k: int) -> str:
  return f"{strategy}/v{k}"


def _recall_json(recall: dict[int, float]) -> dict[str, float]:
  return {str(k): float(v) for k, v in recall.items()}
