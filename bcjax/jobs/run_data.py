"""The data of one run: the dataset, its version splits and where things go.

:class:`RunData` is loaded once per job and shared by its embedding seeds: the
whole interaction log, one split per version, the device graphs built from
them (once each), the data-parallel mesh, and the run's fingerprinted fields.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import ml_collections
from absl import logging

from bcjax import sharding
from bcjax.data.graph import DynamicGraph
from bcjax.data.split import VersionSplit
from bcjax.jobs.experiment import Experiment
from bcjax.jobs.fingerprints import run_fields
from bcjax.jobs.run_settings import RunSettings
from bcjax.models.device_graph import BipartiteGraph
from bcjax.storage.progress import FitProgress
from bcjax.storage.workdir import fingerprinted_config, seed_workdir


@dataclasses.dataclass(frozen=True)
class RunData:
  """The data of one run: the graph, its version splits, where things go.

  Attributes:
    experiment: the job's experiment.
    workdir: the output folder of this embedding seed (the job's workdir for
      seed 0, ``seeds/<i>/`` under it for seed ``i``).
    graph: the whole interaction log.
    splits: one split per version.
    mesh: the data-parallel mesh (None: one device).
    embedding_seed: which of the ``config.num_seeds`` embedding seeds.
  """

  experiment: Experiment
  workdir: str
  graph: DynamicGraph
  splits: tuple[VersionSplit, ...]
  mesh: object
  embedding_seed: int = 0
  _graphs: dict = dataclasses.field(default_factory=dict, repr=False)

  @classmethod
  def load(cls, experiment: Experiment, workdir: str) -> RunData:
    """Loads ``experiment``'s data (its :class:`~bcjax.data.spec.DataSpec`)."""
    tick = time.perf_counter()
    graph = experiment.data.load()
    logging.info("%s (loaded in %.1fs)", graph.summary(), time.perf_counter() - tick)
    splits = experiment.data.splits(graph)
    mesh = sharding.make_mesh(experiment.settings.run.num_devices)
    return cls(experiment, workdir, graph, splits, mesh)

  @property
  def config(self) -> ml_collections.ConfigDict:
    """The experiment's config: what records and fingerprints hold."""
    return self.experiment.config

  @property
  def settings(self) -> RunSettings:
    """The experiment's run-level fields, typed."""
    return self.experiment.settings.run

  def for_seed(self, embedding_seed: int) -> RunData:
    """The same data for another embedding seed, in that seed's folder.

    The device graphs are shared: they depend on the data alone.
    """
    if self.embedding_seed != 0:
      raise ValueError("for_seed is called on seed 0's data, the job's workdir")
    return dataclasses.replace(
      self,
      workdir=seed_workdir(self.workdir, embedding_seed),
      embedding_seed=embedding_seed,
      _graphs=self._graphs,
    )

  @functools.cached_property
  def fields(self) -> dict:
    """What decides this run's shared numbers: its run-level config and its
    data's content.

    :func:`bcjax.storage.workdir.fingerprinted_config` without the component
    sections (:func:`bcjax.jobs.fingerprints.run_fields`): what the
    workdir's ``config.json`` and the consumers are checked by; each
    strategy's versions are checked by its own fields
    (:func:`bcjax.jobs.fingerprints.strategy_fields`), which hold these.
    """
    return run_fields(fingerprinted_config(self.config, self.graph.fingerprint()))

  def bipartite(self, k: int) -> BipartiteGraph:
    """Version k's training graph on device (built once)."""
    if k not in self._graphs:
      layout = self.settings.layout or None
      self._graphs[k] = BipartiteGraph.from_split(self.splits[k], layout)
    return self._graphs[k]

  @property
  def results_path(self) -> str:
    return os.path.join(self.workdir, "results.json")

  def store_path(self, name: str) -> str:
    """The checkpoint folder of strategy ``name`` (what the registry opens)."""
    return os.path.join(self.workdir, "checkpoints", name)

  def progress(self, name: str, k: int, fingerprint: str) -> FitProgress:
    """Where the fit of version k of strategy ``name`` saves its epochs, under
    the strategy's fingerprint: a fit killed under other settings of the
    strategy is never resumed under these."""
    return FitProgress(
      os.path.join(self.workdir, "progress", name, fingerprint, f"v{k}")
    )
