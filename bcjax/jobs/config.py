"""An experiment config: its components' sections and its checks.

The run-level fields (data, versions, models, optimisation, consumers) are
the config file's; the hyperparameters of every registered component are
sections generated from the component's dataclass (:mod:`bcjax.components.hparams`):
``config.transform.<family>``, ``config.loss.<loss>`` and
``config.method.<method>`` (a method's ``-`` as ``_``), for each component
that has hyperparameters. :func:`add_component_sections` adds them (the
shipped configs call it, so ``--help`` lists them and the command line sets
them, an extension's included once ``--config.imports`` loads it);
:func:`validate` refuses a bad field with one message naming it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import ml_collections

from bcjax import extensions, methods
from bcjax.components import hparams as hparams_lib
from bcjax.components import losses, transforms
from bcjax.errors import InputError, unknown_name
from bcjax.jobs import run_settings
from bcjax.methods.strategies import (
  PAPER_STRATEGIES,
  ResolvedStrategy,
  parse_strategy,
  resolve,
)

# Fields of configs before components owned their hyperparameters, and where
# each went, so that an old config file is refused rather than half-read.
MOVED_FIELDS = {
  "transform_init": "transform.linear.init",
  "transform_hidden": "transform.mlp.hidden",
  "closedform_ridge": "method.closedform.ridge",
  "posthoc_epochs": "method.posthoc.epochs",
  "posthoc_keep_after": "method.posthoc.keep_after",
  "posthoc_learning_rate": "method.posthoc.learning_rate",
  "joint_keep_after": "method.joint.keep_after",
  "align_weight": "method.joint.align_weight",
  "finetune_epochs": "method.finetune_m0.epochs",
}
COMPONENT_KINDS = ("transform", "loss", "method")


def _registered(kind: str) -> dict[str, type]:
  """``config key -> hyperparameter dataclass`` of ``kind``'s components."""
  if kind == "transform":
    entries = [(f.name, f.hparams) for f in transforms.TRANSFORMS.values()]
  elif kind == "loss":
    entries = [(x.name, x.hparams) for x in losses.LOSSES.values()]
  else:
    entries = [(m.name, m.hparams) for m in methods.registered_methods()]
  return {hparams_lib.section_key(name): cls for name, cls in entries}


def add_component_sections(
  config: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
  """Adds the section of every registered component with hyperparameters.

  The user's extensions (``config.imports`` and the ``bcjax.extensions``
  entry points) are loaded first, so their sections are there too. A
  section already in ``config`` keeps its values; missing fields of it get
  their defaults.

  Args:
    config: an experiment config, changed in place (unlocked meanwhile).

  Returns:
    ``config``.
  """
  extensions.load(config.get("imports", ""))
  with config.unlocked():
    for kind in COMPONENT_KINDS:
      if kind not in config:
        config[kind] = ml_collections.ConfigDict()
      sections = config[kind]
      for key, cls in _registered(kind).items():
        if not dataclasses.fields(cls):
          continue
        if key not in sections:
          sections[key] = hparams_lib.section(cls)
          continue
        for name, value in hparams_lib.section(cls).items():
          if name not in sections[key]:
            sections[key][name] = value
  return config


def with_component_sections(
  config: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
  """A copy of ``config`` with every component's section (the caller's is kept)."""
  return add_component_sections(copy.deepcopy(config))


def strategies(
  config: ml_collections.ConfigDict, resolved: Sequence[ResolvedStrategy] = ()
) -> list[ResolvedStrategy]:
  """The strategies of ``config.strategy``, resolved with ``config``.

  ``config.strategy`` is a comma-separated list of names; ``paper`` stands
  for the paper's eight. Duplicates (an alias and its name) count once.
  The user's extensions (``config.imports`` and the ``bcjax.extensions``
  entry points) are loaded first, so their names parse. ``resolved``:
  strategies already resolved with these settings, reused by name.
  """
  known = {s.name: s for s in resolved}
  extensions.load(config.get("imports", ""))
  names = [s.strip() for s in str(config.strategy).split(",") if s.strip()]
  if not names:
    raise InputError("config.strategy is empty; expected one or more names")
  out: dict[str, ResolvedStrategy] = {}
  for name in names:
    for each in PAPER_STRATEGIES if name == "paper" else (name,):
      strategy = parse_strategy(each, imports=config.get("imports", ""))
      if strategy.name not in out:
        out[strategy.name] = known.get(strategy.name) or resolve(strategy, config)
  return list(out.values())


def _validate_components(config: ml_collections.ConfigDict) -> None:
  """Every component section read back through its dataclass."""
  for old, new in MOVED_FIELDS.items():
    if old in config:
      raise InputError(
        f"config.{old} is now config.{new} (components own their "
        "hyperparameters); expected it there"
      )
  for kind in COMPONENT_KINDS:
    sections = config.get(kind) or {}
    registered = _registered(kind)
    with_fields = [key for key, cls in registered.items() if dataclasses.fields(cls)]
    for key in sections:
      if key not in registered:
        raise unknown_name(f"config.{kind} section", key, with_fields)
    for key, cls in registered.items():
      hparams_lib.from_section(cls, sections.get(key), f"config.{kind}.{key}")


def validate(config: ml_collections.ConfigDict) -> run_settings.Settings:
  """Raises :class:`InputError` naming the first bad field of ``config``.

  Returns:
    The run-level fields, typed (:mod:`bcjax.jobs.run_settings`).
  """
  return check(config)[0]


def check(
  config: ml_collections.ConfigDict,
) -> tuple[run_settings.Settings, list[ResolvedStrategy]]:
  """:func:`validate`, also returning the strategies it resolved to check
  them (:func:`strategies`), so that a job resolves each once."""
  for field in run_settings.REQUIRED:
    if field not in config:
      raise InputError(f"config has no field {field!r}")
  settings = run_settings.read(config)
  _validate_components(config)
  # The one check across a method's section and the run's fields.
  joint = (config.get("method") or {}).get("joint") or {}
  epochs = settings.run.epochs
  if joint.get("keep_after", 0) >= epochs:
    raise InputError(
      f"config.method.joint.keep_after={joint['keep_after']} leaves no epoch to "
      f"keep: it must be below config.epochs={epochs}"
    )
  n = settings.run.num_versions
  chosen = strategies(config)
  # nobc (also behind every post-hoc strategy) and joint-notrans serve an old
  # version as a prefix of the new embedding, so dimensions may only grow.
  truncating = [s.name for s in chosen if _truncates(s.method.name, s.learns_transform)]
  dims = settings.run.dims[:n]
  shrinking = [k for k in range(1, len(dims)) if dims[k] < dims[k - 1]]
  if truncating and shrinking:
    k = shrinking[0]
    raise InputError(
      f"config.dims={dims} shrinks at version {k} ({dims[k - 1]} -> {dims[k]}), "
      f"but {', '.join(truncating)} read an old version as the first dims of a "
      "new one; expected non-decreasing dims"
    )
  if config.get("compatibility") and config.compatibility.get("enabled", False):
    # Imported here: the analytics pull in the models, a config check should not.
    from bcjax.compatibility import check_start_versions

    check_start_versions(config.compatibility.get("start_versions", ()), n)
  return settings, chosen


def _truncates(method_name: str, learns_transform: bool) -> bool:
  """Whether a strategy of this method (or a strategy it reads) serves an old
  version as a prefix of a new one: a new architecture without a learned
  transform."""
  method = methods.get_method(method_name)
  if not (method.keeps_m0 or learns_transform):
    return True
  return any(
    _truncates(s.method, s.learns_transform) for s in map(parse_strategy, method.reads)
  )
