"""The methods registry: how each strategy produces its next version.

A method is a pure function ``(ctx, k, earlier) -> Version``: given the
:class:`Context` of version ``k`` (config, data and key of that version, the
resolved strategy: the method's hyperparameters ``ctx.hparams``, the
transform and the alignment loss with theirs) and the strategy's versions
``0..k-1``, it returns version ``k``. It is registered by name with the
dataclass of its hyperparameters (``@register_method(name, hparams=...)``,
fields in ``config.method.<name>``); the strategy grammar, the config and
the binaries pick it up with no other edit, and the runner
(:mod:`bcjax.jobs.runner`) calls it without knowing its name. The pieces methods
are built of are :mod:`bcjax.methods.building_blocks`. Version 0 is M_0 for every strategy and is never
asked of a method other than the one named by :data:`M0_METHOD`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import jax
import ml_collections
from jax.sharding import Mesh

from bcjax import keys
from bcjax.components import hparams as hparams_lib
from bcjax.components.losses import AlignmentLoss
from bcjax.components.registries import Entry, Registry
from bcjax.components.transforms import BackwardTransform
from bcjax.data.split import VersionSplit
from bcjax.errors import InputError
from bcjax.evaluation.recall import RecallEvaluator, version_evaluators
from bcjax.fitting.posthoc import PosthocConfig, PosthocFit, fit_posthoc
from bcjax.fitting.train import FitConfig, FitResult
from bcjax.fitting.version_fit import fit_version
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed
from bcjax.storage.progress import FitProgress
from bcjax.storage.results import VersionResult

# The method whose versions are shared by the run: its version 0 is M_0, the
# version 0 of every strategy, and post-hoc methods reuse its M_k.
M0_METHOD = "nobc"


@dataclasses.dataclass(frozen=True)
class Version:
  """One version of a strategy, as the next version needs it.

  Attributes:
    model: M_k's module (its architecture).
    variables: M_k's ``{"params", "batch_stats"}``.
    transform_params: B_k's parameters (None for version 0).
    result: what the version measured.
  """

  model: PinSAGE
  variables: dict
  transform_params: Any
  result: VersionResult


@dataclasses.dataclass(frozen=True)
class ResolvedStrategy:
  """A strategy with its components built: what runs it needs, resolved once.

  Attributes:
    name: the canonical name: the strategy's stable id, which its keys
      (:func:`bcjax.keys.version_key`) and checkpoint folder derive from.
    method: the registered method.
    hparams: the method's hyperparameters (an instance of
      ``method.hparams``), as methods read them (``ctx.hparams``).
    transform: the family of every ``B_k``, with its hyperparameters.
    loss: the alignment loss with its hyperparameters, or None.
    base_name: the name without its ``@`` hyperparameter settings ("": the
      name has none).
  """

  name: str
  method: Method
  hparams: Any
  transform: BackwardTransform
  loss: AlignmentLoss | None
  base_name: str = ""

  @property
  def id(self) -> str:
    """The stable id keys derive from: the canonical name without its ``@``
    settings, so a strategy at another weight draws the same keys (the same
    initialisations and batches) and differs from it in the weight alone."""
    return self.base_name or self.name

  @property
  def keeps_m0(self) -> bool:
    """Whether every version has M_0's architecture (and dimension)."""
    return self.method.keeps_m0

  @property
  def learns_transform(self) -> bool:
    """Whether B_k has parameters to fit."""
    return self.transform.learned

  def components(self) -> dict[str, dict[str, str]]:
    """``kind -> {"name", "source"}`` of its method, transform and loss.

    What a checkpoint records, so that serving can load the extensions that
    defined them (:func:`bcjax.extensions.load_sources`).
    """
    out = {
      "method": {"name": self.method.name, "source": self.method.source},
      "transform": {"name": self.transform.name, "source": self.transform.source},
    }
    if self.loss is not None:
      out["loss"] = {"name": self.loss.name, "source": self.loss.source}
    return out


class GroupFits(Protocol):
  """Where a seed's fits go when seeds train together (``Context.fits``).

  The seed runner implements it (:class:`bcjax.jobs.seed_lockstep.SeedFits`):
  each call takes the keyword arguments of the fit it stands for and returns
  that fit's result, fitted in one program with the group's like fits.
  """

  def fit_version(self, **call) -> FitResult: ...

  def fit_posthoc(self, **call) -> PosthocFit: ...

  def fit_consumer(self, **call) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Context:
  """What a method sees of the run when it produces version ``k``.

  Attributes:
    strategy: the strategy being run, resolved: its method's
      hyperparameters, its transform and its loss (with theirs).
    config: the experiment config (read only): the run-level settings.
    split: version k's training and validation interactions.
    graph: version k's training graph on device.
    key: the PRNG key of this (strategy, version).
    mesh: train data-parallel over this mesh (None: one device).
    progress: where a fit saves its epochs, so a killed run resumes.
    version_of: ``(strategy name, k) -> Version``: another strategy's
      version k of this run (resolved with this run's config), trained
      (once per run) or restored.
    report: what a fit calls at every evaluation (``fit_version``'s
      ``report``): the run's curves and ETA.
    fits: where the fits go when embedding seeds train together
      (``config.seed_batch > 1``, :mod:`bcjax.jobs.seed_lockstep`); None:
      fitted here, alone.
    embedding_seed: which embedding seed runs; it seeds the held-out halves
      of the validation users (``config.report_split="held_out"``).
  """

  strategy: ResolvedStrategy
  config: ml_collections.ConfigDict
  split: VersionSplit
  graph: BipartiteGraph
  key: jax.Array
  mesh: Mesh | None
  progress: FitProgress
  version_of: Callable[[str, int], Version]
  report: Callable[[dict], str] | None = None
  fits: GroupFits | None = None
  embedding_seed: int = 0

  @property
  def label(self) -> str:
    """``"<strategy> v<k>"``, the prefix of progress lines and errors."""
    return f"{self.strategy.name} v{self.split.version}"

  @property
  def hparams(self):
    """The method's hyperparameters (an instance of its ``hparams`` class)."""
    return self.strategy.hparams

  @property
  def transform(self) -> BackwardTransform:
    """The family of every B_j of the strategy, with its hyperparameters."""
    return self.strategy.transform

  @property
  def loss(self) -> AlignmentLoss | None:
    """The alignment loss, with its hyperparameters (None: methods without one)."""
    return self.strategy.loss

  @property
  def transform_key(self) -> jax.Array:
    """The key of B_k's initialisation."""
    return keys.stream(self.key, "transform_init")

  def model(self, k: int) -> PinSAGE:
    """A fresh M_k of the config's width and depth for version ``k``."""
    return PinSAGE(dim=self.config.dims[k], num_layers=self.config.layers[k])

  def fit_config(self, epochs: int | None = None, keep_after: int = 0) -> FitConfig:
    """The config's optimisation settings (``epochs`` defaults to its own)."""
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
      report_split=c.report_split,
      patience=c.get("patience", 0),
    )

  def fit(self, model: PinSAGE, config: FitConfig, **settings) -> FitResult:
    """:func:`~bcjax.fitting.version_fit.fit_version` of ``model`` on version k.

    The split, its device graph, the key, the mesh and where epochs are saved
    and reported are the context's; ``settings`` are the fit's own
    (``variables``, ``transform_params``, ``alignment``, ``target``).
    """
    call = dict(
      model=model,
      split=self.split,
      config=config,
      key=self.key,
      progress=self.progress,
      report=self.report,
      mesh=self.mesh,
      label=self.label,
      graph=self.graph,
      halves_seed=self.embedding_seed,
      **settings,
    )
    if self.fits is not None:
      return self.fits.fit_version(**call)
    return fit_version(**call)

  def fit_posthoc(
    self,
    params: Any,
    current: tuple[jax.Array, jax.Array],
    previous: tuple[jax.Array, jax.Array],
    config: PosthocConfig,
    key: jax.Array,
    *,
    old_params: tuple = (),
  ) -> PosthocFit:
    """:func:`~bcjax.fitting.posthoc.fit_posthoc` of B_k on version k's graph.

    The transform family, the loss, the graph and the label are the
    context's; the rest is the fit's own (see ``fit_posthoc``).
    """
    call = dict(
      transform=self.transform,
      params=params,
      current=current,
      previous=previous,
      graph=self.graph,
      config=config,
      key=key,
      loss=self.loss,
      old_params=old_params,
      label=self.label,
    )
    if self.fits is not None:
      return self.fits.fit_posthoc(**call)
    return fit_posthoc(**call)

  def evaluators(self) -> tuple[RecallEvaluator, RecallEvaluator]:
    """Version k's ``(selection, report)`` Recall@K evaluators (the run's
    ``report_split``, this seed's halves)."""
    return version_evaluators(
      self.split,
      self.config.report_split,
      chunk_size=self.config.eval_chunk_size,
      seed=self.embedding_seed,
    )

  def embed(self, version: Version) -> tuple[jax.Array, jax.Array]:
    """``version``'s model on version k's graph: ``(user, item)`` embeddings."""
    return embed(version.model, version.variables, self.graph)

  def result(
    self,
    model: PinSAGE,
    fit: FitResult | None = None,
    recall: dict[int, float] | None = None,
    selection_recall: dict[int, float] | None = None,
  ) -> VersionResult:
    """The :class:`VersionResult` of a model of version k, fitted or not
    (then with its ``recall`` and ``selection_recall`` measured)."""
    split = self.split
    return VersionResult(
      strategy=self.strategy.name,
      version=split.version,
      dim=model.dim,
      layers=model.num_layers,
      tau_train=split.tau_train,
      tau_val=split.tau_val,
      num_users=split.num_users,
      num_items=split.num_items,
      num_train=split.num_train,
      num_val=split.num_val,
      best_epoch=fit.best_epoch if fit else 0,
      recall={int(k): float(v) for k, v in (fit.recall if fit else recall).items()},
      selection_recall=_floats(fit.selection_recall if fit else selection_recall),
      train_seconds=fit.train_seconds if fit else 0.0,
      seconds_per_epoch=fit.seconds_per_epoch if fit else 0.0,
      history=tuple(fit.history) if fit else (),
      max_epochs=fit.max_epochs if fit else None,
    )


def _floats(recall: dict[int, float] | None) -> dict[int, float] | None:
  return None if recall is None else {int(k): float(v) for k, v in recall.items()}


MethodFn = Callable[[Context, int, "list[Version]"], Version]


def _valid_with_any(transform: BackwardTransform, loss: AlignmentLoss) -> str | None:
  del transform, loss
  return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Method(Entry):
  """A registered method (:class:`~bcjax.components.registries.Entry`).

  Attributes:
    fn: ``(ctx, k, earlier) -> Version``; it reads its hyperparameters
      (fields ``config.method.<name>``) as ``ctx.hparams``.
    takes_transform: strategies are ``<name>-<transform>-<loss>`` (else the
      bare ``<name>``, with the identity transform and no loss).
    keeps_m0: every version has M_0's architecture (and dimension).
    reads: the strategies whose versions the method reuses (through
      ``ctx.version_of``).
    check: ``(transform, loss) -> reason or None``: why a combination is
      refused (None: it is valid).
  """

  fn: MethodFn
  takes_transform: bool = True
  keeps_m0: bool = False
  reads: tuple[str, ...] = ()
  check: Callable[[BackwardTransform, AlignmentLoss], str | None] = _valid_with_any


def _check_method_name(kind: str, name: str, registry) -> None:
  """Method names may hold ``-`` (``fix-m0``), but two names whose config
  keys (``-`` as ``_``) coincide would share one config section."""
  if not name:
    raise InputError("a method name must be non-empty")
  key = hparams_lib.section_key(name)
  clash = [m for m in registry if m != name and hparams_lib.section_key(m) == key]
  if clash:
    raise InputError(
      f"{kind} {name!r} has the config key {key!r} of {kind} {clash[0]!r}; "
      "expected a name that differs in more than '-' and '_'"
    )


METHODS: Registry[Method] = Registry("method", check_name=_check_method_name)


def register_method(
  name: str,
  *,
  hparams: type = hparams_lib.NoHparams,
  takes_transform: bool = True,
  keeps_m0: bool = False,
  reads: tuple[str, ...] = (),
  check: Callable[[BackwardTransform, AlignmentLoss], str | None] | None = None,
) -> Callable[[MethodFn], MethodFn]:
  """A decorator that registers ``fn`` as method ``name`` (see :class:`Method`).

  The grammar, the config (``config.method.<name>.<field>``, ``-`` as
  ``_``) and the CLI pick it up; ``fn`` reads its values as ``ctx.hparams``.

  Raises:
    InputError: as :meth:`Registry.add <bcjax.components.registries.Registry.add>`
      does (an empty name, one taken by another function, a config key
      another method has, bad hparams).
  """
  _check_method_name("method", name, METHODS)
  hparams_lib.check_class("method", name, hparams)

  def register(fn: MethodFn) -> MethodFn:
    METHODS.add(
      Method(
        name=name,
        fn=fn,
        hparams=hparams,
        takes_transform=takes_transform,
        keeps_m0=keeps_m0,
        reads=tuple(reads),
        check=check or _valid_with_any,
      )
    )
    return fn

  return register


def registered_methods() -> list[Method]:
  """Every registered method, in registration order."""
  return list(METHODS.values())


def get_method(name: str) -> Method:
  """The registered method ``name``."""
  return METHODS[name]
