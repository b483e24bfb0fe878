"""The intended-task job: every version of every strategy, saved and recorded.

``run(config, workdir)`` loads the dataset, splits it into versions and, for
each strategy, produces M_k and B_k of every version (DESIGN §2):

* version 0 is the same for every strategy: M_0 is trained once per run (BPR
  only) and every strategy starts from it;
* ``fix-m0`` reuses M_0 on every later graph; ``finetune-m0`` fine-tunes the
  previous version with a fresh Adam state; ``nobc`` trains from scratch;
* post-hoc strategies take nobc's M_k (trained once, shared) and fit B_k on
  the frozen embeddings; joint strategies train M_k and B_k together under
  ``BPR + lambda * alignment``.

Each version is saved as an Orbax step under
``workdir/checkpoints/<strategy>/`` (model, transform, embeddings, metadata)
and recorded in ``workdir/results.json``: sizes, best epoch, Recall@K,
alignment errors to the previous version and to version 0, timings. A version
already saved in the workdir is reused, not retrained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import jax
import ml_collections
from absl import logging

from bcjax import atomic_files, sharding
from bcjax import config as config_lib
from bcjax.alignment import (
  PosthocConfig,
  alignment_error,
  embedding_mse,
  fit_posthoc,
  mean_distance,
)
from bcjax.checkpoints import VersionStore
from bcjax.data.bipartite import BipartiteGraph
from bcjax.data.datasets import load_dataset
from bcjax.data.split import VersionSplit, split_version
from bcjax.errors import InputError
from bcjax.evaluation.recall import RecallEvaluator, most_popular_recall
from bcjax.models.pinsage import PinSAGE, embed
from bcjax.progress import FitProgress
from bcjax.strategies import Strategy, parse_strategy
from bcjax.train import Alignment, AlignmentTarget, FitConfig, fit_version
from bcjax.transforms import compose, get_transform
from bcjax.workdir import WorkdirLock, check_config

# Config fields that change what a saved version holds; a workdir trained
# under other values of these is not reused.
MODEL_FIELDS = (
  "dataset",
  "synthetic",
  "taus",
  "dims",
  "layers",
  "epochs",
  "eval_every",
  "batch_size",
  "learning_rate",
  "weight_decay",
  "seed",
  "align_weight",
  "joint_keep_after",
  "posthoc_epochs",
  "posthoc_keep_after",
  "finetune_epochs",
  "transform_hidden",
)


NOBC = parse_strategy("nobc")


@dataclasses.dataclass
class Version:
  """One saved version of a strategy, as the next version needs it.

  Attributes:
    model: M_k's module (its architecture).
    variables: M_k's ``{"params", "batch_stats"}``.
    transform_params: B_k's parameters (None for version 0).
    entry: its ``results.json`` entry.
  """

  model: PinSAGE
  variables: dict
  transform_params: object
  entry: dict


def _recall_json(recall: dict[int, float]) -> dict[str, float]:
  return {str(k): float(v) for k, v in recall.items()}


def config_fingerprint(config: ml_collections.ConfigDict) -> str:
  """A hash of the config fields that decide what a version holds."""
  fields = {f: config.to_dict().get(f) for f in MODEL_FIELDS}
  blob = json.dumps(fields, sort_keys=True, default=list)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


class IntendedTaskRun:
  """The state shared by the strategies of one run (data, M_0, nobc's M_k)."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config = config
    self.workdir = workdir
    self.fingerprint = config_fingerprint(config)
    tick = time.perf_counter()
    self.graph = load_dataset(
      config.dataset,
      config.data_dir or None,
      config.synthetic.to_dict() if "synthetic" in config else None,
      config.get("item_fields", ""),
    )
    logging.info(
      "%s (loaded in %.1fs)", self.graph.summary(), time.perf_counter() - tick
    )
    self.data_fingerprint = self.graph.fingerprint()
    self.splits = [
      split_version(self.graph, k, config.taus) for k in range(config.num_versions)
    ]
    self._graphs: dict[int, BipartiteGraph] = {}
    self._m0_embeddings: dict[int, tuple] = {}
    self._nobc: dict[int, Version] = {}
    self.key = jax.random.key(config.seed)
    self.mesh = sharding.make_mesh(config.get("num_devices", 1))

  # -- shared pieces -------------------------------------------------------

  def bipartite(self, k: int) -> BipartiteGraph:
    if k not in self._graphs:
      layout = self.config.get("layout", "") or None
      self._graphs[k] = BipartiteGraph.from_split(self.splits[k], layout)
    return self._graphs[k]

  def fit_config(self, epochs=None, keep_after=0) -> FitConfig:
    c = self.config
    return FitConfig(
      epochs=epochs or c.epochs,
      eval_every=c.eval_every,
      batch_size=c.batch_size,
      learning_rate=c.learning_rate,
      weight_decay=c.weight_decay,
      keep_after=keep_after,
      eval_chunk_size=c.eval_chunk_size,
      layout=c.get("layout", "") or None,
    )

  @property
  def results_path(self) -> str:
    return os.path.join(self.workdir, "results.json")

  def store_path(self, name: str) -> str:
    """The checkpoint folder of strategy ``name`` (what the registry opens)."""
    return os.path.join(self.workdir, "checkpoints", name)

  def store(self, name: str) -> VersionStore:
    return VersionStore(self.store_path(name))

  def progress(self, name: str, k: int) -> FitProgress:
    """Where the fit of version k of strategy ``name`` saves its epochs."""
    return FitProgress(os.path.join(self.workdir, "progress", name, f"v{k}"))

  def model(self, k: int) -> PinSAGE:
    return PinSAGE(dim=self.config.dims[k], num_layers=self.config.layers[k])

  def m0_embeddings(self, k: int) -> tuple:
    """M_0 on version k's graph: fix-m0's embeddings, the version-0 reference."""
    if k not in self._m0_embeddings:
      m0 = self.nobc_version(0)
      self._m0_embeddings[k] = embed(m0.model, m0.variables, self.bipartite(k))
    return self._m0_embeddings[k]

  def nobc_version(self, k: int) -> Version:
    """nobc's M_k, trained once per run and saved (M_0 is version 0)."""
    if k not in self._nobc:
      with self.store(NOBC.name) as store:
        if k in store.versions():
          version = self._restore(store, k)
        else:
          model = self.model(k)
          fit = fit_version(
            model,
            self.splits[k],
            self.fit_config(),
            jax.random.fold_in(self.key, k),
            progress=self.progress(NOBC.name, k),
            mesh=self.mesh,
            label=f"{NOBC.name} v{k}",
          )
          transform = None if k == 0 else self._notrans(k)
          version = Version(model, fit.variables, transform, {})
          version.entry = self._entry(NOBC, k, version, fit)
          if k > 0:
            chain = [self.nobc_version(j) for j in range(k)]
            version.entry.update(self._alignment_entry(NOBC, k, version, chain))
          self._save(store, NOBC, k, version)
        self.progress(NOBC.name, k).clear()
      self._nobc[k] = version
    return self._nobc[k]

  def _notrans(self, k):
    return get_transform("notrans").init(
      None, self.config.dims[k], self.config.dims[k - 1]
    )

  # -- one strategy --------------------------------------------------------

  def run_strategy(self, strategy: Strategy) -> list[dict]:
    """Every version of ``strategy``, trained or restored; their entries."""
    if strategy.name == NOBC.name:
      versions = [self.nobc_version(k) for k in range(self.config.num_versions)]
      return [v.entry for v in versions]
    m0 = self.nobc_version(0)
    versions = [m0]
    with self.store(strategy.name) as store:
      if 0 not in store.versions():
        self._save(store, strategy, 0, m0)
      for k in range(1, self.config.num_versions):
        if k in store.versions():
          versions.append(self._restore(store, k))
        else:
          versions.append(self._train(strategy, k, versions))
          self._save(store, strategy, k, versions[-1])
        self.progress(strategy.name, k).clear()
    return [dict(v.entry, strategy=strategy.name) for v in versions]

  def _train(self, strategy: Strategy, k: int, versions: list[Version]) -> Version:
    """Version k of ``strategy``, given its versions ``0..k-1``."""
    key = jax.random.fold_in(jax.random.fold_in(self.key, k), hash_name(strategy.name))
    transform = self._transform(strategy)
    d_out = versions[-1].model.dim
    d_in = d_out if strategy.keeps_m0 else self.config.dims[k]
    params = transform.init(jax.random.fold_in(key, 1 << 20), d_in, d_out)
    train = {
      "fix-m0": self._fix_m0,
      "finetune-m0": self._finetune_m0,
      "posthoc": self._posthoc,
      "joint": self._joint,
    }[strategy.method]
    version = train(strategy, k, versions, key, transform, params)
    version.entry.update(
      self._alignment_entry(strategy, k, version, versions), strategy=strategy.name
    )
    return version

  def _fix_m0(self, strategy, k, versions, key, transform, params) -> Version:
    m0 = versions[-1]
    recall = RecallEvaluator(self.splits[k], chunk_size=self.config.eval_chunk_size)(
      *embed(m0.model, m0.variables, self.bipartite(k))
    )
    version = Version(m0.model, m0.variables, params, {})
    version.entry = self._entry(strategy, k, version, None, recall=recall)
    return version

  def _finetune_m0(self, strategy, k, versions, key, transform, params) -> Version:
    previous = versions[-1]
    fit = fit_version(
      previous.model,
      self.splits[k],
      self.fit_config(epochs=self.config.finetune_epochs),
      key,
      variables=previous.variables,
      progress=self.progress(strategy.name, k),
      mesh=self.mesh,
      label=f"{strategy.name} v{k}",
    )
    version = Version(previous.model, fit.variables, params, {})
    version.entry = self._entry(strategy, k, version, fit)
    return version

  def _posthoc(self, strategy, k, versions, key, transform, params) -> Version:
    c, graph, previous = self.config, self.bipartite(k), versions[-1]
    nobc = self.nobc_version(k)
    tick = time.perf_counter()
    params, best_epoch, error = fit_posthoc(
      transform,
      params,
      embed(nobc.model, nobc.variables, graph),
      embed(previous.model, previous.variables, graph),
      PosthocConfig(
        epochs=c.posthoc_epochs,
        keep_after=c.posthoc_keep_after,
        batch_size=c.batch_size,
        learning_rate=c.learning_rate,
      ),
      key,
      old_params=tuple(v.transform_params for v in reversed(versions[1:])),
      multi_step=strategy.multi_step,
      label=f"{strategy.name} v{k}",
    )
    seconds = time.perf_counter() - tick
    logging.info(
      "%s v%d B_%d: best epoch %d alignment error %.5f (%.1fs)",
      strategy.name,
      k,
      k,
      best_epoch,
      error,
      seconds,
    )
    entry = dict(nobc.entry, transform_best_epoch=best_epoch, transform_seconds=seconds)
    return Version(nobc.model, nobc.variables, params, entry)

  def _joint(self, strategy, k, versions, key, transform, params) -> Version:
    previous, graph = versions[-1], self.bipartite(k)
    user_prev, item_prev = embed(previous.model, previous.variables, graph)
    old_params = tuple(v.transform_params for v in reversed(versions[1:]))
    model = self.model(k)
    fit = fit_version(
      model,
      self.splits[k],
      self.fit_config(keep_after=self.config.joint_keep_after),
      key,
      transform_params=params,
      alignment=Alignment(transform, strategy.multi_step, self.config.align_weight),
      target=AlignmentTarget(user_prev, item_prev, old_params),
      progress=self.progress(strategy.name, k),
      mesh=self.mesh,
      label=f"{strategy.name} v{k}",
    )
    version = Version(model, fit.variables, fit.transform_params, {})
    version.entry = self._entry(strategy, k, version, fit)
    return version

  def _transform(self, strategy: Strategy):
    kwargs = (
      {"hidden": self.config.transform_hidden} if strategy.transform == "mlp" else {}
    )
    return get_transform(strategy.transform, **kwargs)

  # -- records -------------------------------------------------------------

  def _entry(self, strategy, k, version, fit, recall=None) -> dict:
    split: VersionSplit = self.splits[k]
    return {
      "strategy": strategy.name,
      "version": k,
      "dim": version.model.dim,
      "layers": version.model.num_layers,
      "tau_train": split.tau_train,
      "tau_val": split.tau_val,
      "num_users": split.num_users,
      "num_items": split.num_items,
      "num_train": split.num_train,
      "num_val": split.num_val,
      "best_epoch": fit.best_epoch if fit else 0,
      "recall": _recall_json(fit.recall if fit else recall),
      "train_seconds": fit.train_seconds if fit else 0.0,
      "seconds_per_epoch": fit.seconds_per_epoch if fit else 0.0,
      "history": fit.history if fit else [],
    }

  def _alignment_entry(self, strategy, k, version, versions) -> dict:
    """Alignment of version k to version k-1 and to version 0 (M_0 on G_k)."""
    graph = self.bipartite(k)
    transform = self._transform(strategy)
    current = embed(version.model, version.variables, graph)
    previous = versions[-1]
    prev_embeddings = embed(previous.model, previous.variables, graph)
    chain = compose(*([transform] * k))
    params = tuple(v.transform_params for v in versions[1:]) + (
      version.transform_params,
    )
    to_v0 = tuple(chain.apply(params, z) for z in current)
    m0 = self.m0_embeddings(k)
    return {
      "alignment_error_previous": alignment_error(
        transform, version.transform_params, current, prev_embeddings
      ),
      "alignment_error_v0": embedding_mse(to_v0, m0),
      "distance_to_fix_m0": 0.5
      * (mean_distance(to_v0[0], m0[0]) + mean_distance(to_v0[1], m0[1])),
    }

  def _metadata(self, strategy, k, version) -> dict:
    transform = {"name": "none", "d_in": version.model.dim, "d_out": version.model.dim}
    if k > 0:
      d_out = self._previous_dim(strategy, k)
      transform = {
        "name": strategy.transform,
        "d_in": version.model.dim,
        "d_out": d_out,
        "hidden": self.config.transform_hidden,
      }
    return {
      "strategy": strategy.name,
      "version": k,
      "dim": version.model.dim,
      "layers": version.model.num_layers,
      "transform": transform,
      "tau_train": self.splits[k].tau_train,
      "tau_val": self.splits[k].tau_val,
      "dataset": self.config.dataset,
      "dataset_fingerprint": self.data_fingerprint,
      "config_fingerprint": self.fingerprint,
      "result": version.entry,
    }

  def _previous_dim(self, strategy, k):
    return self.config.dims[0] if strategy.keeps_m0 else self.config.dims[k - 1]

  def _save(self, store, strategy, k, version):
    user, item = embed(version.model, version.variables, self.bipartite(k))
    store.save(
      k,
      model=version.variables,
      transform=version.transform_params,
      embeddings=(user, item),
      metadata=self._metadata(strategy, k, version),
    )

  def _restore(self, store, k) -> Version:
    metadata = store.metadata(k)
    if metadata.get("dataset_fingerprint") != self.data_fingerprint:
      raise InputError(
        f"{store.directory} holds version {k} trained on other data (dataset "
        f"fingerprint {metadata.get('dataset_fingerprint')} there, "
        f"{self.data_fingerprint} now); use a fresh workdir"
      )
    if metadata.get("config_fingerprint") != self.fingerprint:
      raise InputError(
        f"{store.directory} holds version {k} of another config (config "
        f"fingerprint {metadata.get('config_fingerprint')} here, "
        f"{self.fingerprint} now); use a fresh workdir"
      )
    model = PinSAGE(dim=metadata["dim"], num_layers=metadata["layers"])
    transform_params = store.transform(k)[1] if k > 0 else None
    return Version(
      model, store.restore(k, "model"), transform_params, metadata["result"]
    )


def hash_name(name: str) -> int:
  """A stable 28-bit integer of a name, to fold into PRNG keys."""
  return int(hashlib.sha256(name.encode()).hexdigest()[:7], 16)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or reuses) every version of every strategy in ``config``.

  Args:
    config: an experiment config (see ``experiments/configs/default.py``).
    workdir: the output folder: ``results.json`` and ``checkpoints/``.

  Returns:
    The results, as written to ``results.json``.
  """
  config_lib.validate(config)
  strategies = config_lib.strategies(config)
  os.makedirs(workdir, exist_ok=True)
  with WorkdirLock(workdir):
    check_config(workdir, config, MODEL_FIELDS)
    job = IntendedTaskRun(config, workdir)
    return run_strategies(job, strategies)


def run_strategies(job: IntendedTaskRun, strategies: list[Strategy]) -> dict:
  """Every version of ``strategies`` in ``job``; writes ``results.json``."""
  config = job.config
  results = {
    "dataset": {
      "name": config.dataset,
      "fingerprint": job.data_fingerprint,
      "num_users": job.graph.num_users,
      "num_items": job.graph.num_items,
      "num_interactions": job.graph.num_edges,
    },
    "config": config.to_dict(),
    "baselines": {
      "most-popular": [
        {"version": s.version, "recall": _recall_json(most_popular_recall(s))}
        for s in job.splits
      ]
    },
    "strategies": {},
  }
  for strategy in strategies:
    entries = job.run_strategy(strategy)
    results["strategies"][strategy.name] = entries
    for entry in entries:
      logging.info(
        "%s v%d recall@50 %.4f (most popular %.4f) alignment to v0 %s",
        strategy.name,
        entry["version"],
        entry["recall"]["50"],
        results["baselines"]["most-popular"][entry["version"]]["recall"]["50"],
        f"{entry['alignment_error_v0']:.5f}" if "alignment_error_v0" in entry else "-",
      )
    atomic_files.write_json(job.results_path, results)
  return results
