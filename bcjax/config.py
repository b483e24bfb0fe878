"""Checks of an experiment config, one clear message per bad field."""

from __future__ import annotations

import ml_collections

from bcjax import extensions
from bcjax.errors import InputError, unknown_name
from bcjax.evaluation.recall import REPORT_SPLITS
from bcjax.methods import get_method
from bcjax.models.aggregation import LAYOUTS
from bcjax.strategies import PAPER_STRATEGIES, Strategy, parse_strategy
from bcjax.transforms import LINEAR_INITS


def strategies(config: ml_collections.ConfigDict) -> list[Strategy]:
  """The strategies of ``config.strategy``, validated.

  ``config.strategy`` is a comma-separated list of names; ``paper`` stands
  for the paper's eight. Duplicates (an alias and its name) count once.
  The user's extensions (``config.imports`` and the ``bcjax.extensions``
  entry points) are loaded first, so their names parse.
  """
  extensions.load(config.get("imports", ""))
  names = [s.strip() for s in str(config.strategy).split(",") if s.strip()]
  if not names:
    raise InputError("config.strategy is empty; expected one or more names")
  out: dict[str, Strategy] = {}
  for name in names:
    for each in PAPER_STRATEGIES if name == "paper" else (name,):
      strategy = parse_strategy(each)
      out.setdefault(strategy.name, strategy)
  return list(out.values())


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises :class:`InputError` naming the first bad field of ``config``."""
  for field in ("dataset", "taus", "num_versions", "dims", "layers", "epochs"):
    if field not in config:
      raise InputError(f"config has no field {field!r}")
  taus = tuple(config.taus)
  if len(taus) < 2 or any(b <= a for a, b in zip(taus, taus[1:])):
    raise InputError(f"config.taus must be increasing fractions, got {taus}")
  if taus[0] <= 0 or taus[-1] > 1:
    raise InputError(f"config.taus must lie in (0, 1], got {taus}")
  n = config.num_versions
  if not isinstance(n, int) or not 1 <= n <= len(taus) - 1:
    raise InputError(
      f"config.num_versions must be an integer in [1, {len(taus) - 1}] "
      f"(len(config.taus) - 1), got {n!r}"
    )
  for field in ("dims", "layers"):
    values = tuple(config[field])
    if len(values) < n:
      raise InputError(
        f"config.{field} needs one entry per version ({n}), got {values}"
      )
    if any(not isinstance(v, int) or v < 1 for v in values):
      raise InputError(f"config.{field} must be positive integers, got {values}")
  for field in ("epochs", "eval_every", "batch_size", "eval_chunk_size"):
    value = config[field]
    if not isinstance(value, int) or value < 1:
      raise InputError(f"config.{field} must be a positive integer, got {value!r}")
  if "num_seeds" in config and (
    not isinstance(config.num_seeds, int)
    or isinstance(config.num_seeds, bool)
    or config.num_seeds < 1
  ):
    raise InputError(
      f"config.num_seeds must be a positive integer (embedding seeds, each a "
      f"whole run with its own M_0), got {config.num_seeds!r}"
    )
  for field in ("learning_rate", "posthoc_learning_rate"):
    if field in config and not config[field] > 0:
      raise InputError(f"config.{field} must be positive, got {config[field]!r}")
  if "transform_init" in config and config.transform_init not in LINEAR_INITS:
    raise unknown_name("transform init", config.transform_init, LINEAR_INITS)
  if config.weight_decay < 0:
    raise InputError(f"config.weight_decay must be >= 0, got {config.weight_decay}")
  for field in ("joint_keep_after", "posthoc_keep_after", "transform_hidden"):
    if field in config and (not isinstance(config[field], int) or config[field] < 0):
      raise InputError(f"config.{field} must be an integer >= 0, got {config[field]!r}")
  for field in ("posthoc_epochs", "finetune_epochs"):
    if field in config and (not isinstance(config[field], int) or config[field] < 1):
      raise InputError(
        f"config.{field} must be a positive integer, got {config[field]!r}"
      )
  if "closedform_ridge" in config and not config.closedform_ridge >= 0:
    raise InputError(
      f"config.closedform_ridge must be >= 0, got {config.closedform_ridge!r}"
    )
  if "align_weight" in config and not config.align_weight >= 0:
    raise InputError(f"config.align_weight must be >= 0, got {config.align_weight!r}")
  if config.get("layout", "") not in ("", *LAYOUTS):
    raise InputError(
      f"config.layout must be one of {('', *LAYOUTS)} ('' picks the backend's "
      f"reproducible default), got {config.layout!r}"
    )
  if config.get("report_split", "validation") not in REPORT_SPLITS:
    raise unknown_name("report split", config.report_split, REPORT_SPLITS)
  if "num_devices" in config and (
    not isinstance(config.num_devices, int) or config.num_devices < 0
  ):
    raise InputError(
      f"config.num_devices must be 0 (all devices) or a positive integer, got "
      f"{config.num_devices!r}"
    )
  for keep, epochs in (
    ("joint_keep_after", "epochs"),
    ("posthoc_keep_after", "posthoc_epochs"),
  ):
    if keep in config and epochs in config and config[keep] >= config[epochs]:
      raise InputError(
        f"config.{keep}={config[keep]} leaves no epoch to keep: it must be "
        f"below config.{epochs}={config[epochs]}"
      )
  chosen = strategies(config)
  # nobc (also behind every post-hoc strategy) and joint-notrans serve an old
  # version as a prefix of the new embedding, so dimensions may only grow.
  truncating = [s.name for s in chosen if _truncates(s)]
  dims = tuple(config.dims)[: config.num_versions]
  shrinking = [k for k in range(1, len(dims)) if dims[k] < dims[k - 1]]
  if truncating and shrinking:
    k = shrinking[0]
    raise InputError(
      f"config.dims={dims} shrinks at version {k} ({dims[k - 1]} -> {dims[k]}), "
      f"but {', '.join(truncating)} read an old version as the first dims of a "
      "new one; expected non-decreasing dims"
    )
  if "consumer" in config:
    _validate_consumer(config.consumer)
  if config.get("compatibility") and config.compatibility.get("enabled", False):
    # Imported here: the analytics pull in the models, a config check should not.
    from bcjax.compatibility import check_start_versions

    check_start_versions(config.compatibility.get("start_versions", ()), n)


def _truncates(strategy: Strategy) -> bool:
  """Whether ``strategy`` (or a strategy it reads) serves an old version as a
  prefix of a new one: a new architecture without a learned transform."""
  method = get_method(strategy.method)
  if not (method.keeps_m0 or strategy.learns_transform):
    return True
  return any(_truncates(parse_strategy(name)) for name in method.reads)


def _validate_consumer(c: ml_collections.ConfigDict) -> None:
  for field in ("hidden_sizes", "dropouts"):
    if field not in c or len(tuple(c[field])) == 0:
      raise InputError(f"config.consumer.{field} must list at least one value")
  if any(not isinstance(h, int) or h < 1 for h in c.hidden_sizes):
    raise InputError(
      f"config.consumer.hidden_sizes must be positive integers, got {c.hidden_sizes}"
    )
  if any(not 0.0 <= r < 1.0 for r in c.dropouts):
    raise InputError(
      f"config.consumer.dropouts must lie in [0, 1), got {tuple(c.dropouts)}"
    )
  for field in ("seeds", "epochs", "batch_size"):
    if not isinstance(c[field], int) or c[field] < 1:
      raise InputError(
        f"config.consumer.{field} must be a positive integer, got {c[field]!r}"
      )
  if not c.learning_rate > 0:
    raise InputError(
      f"config.consumer.learning_rate must be positive, got {c.learning_rate!r}"
    )
