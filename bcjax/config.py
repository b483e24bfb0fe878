"""Checks of an experiment config, one clear message per bad field."""

from __future__ import annotations

import ml_collections

from bcjax.errors import InputError

STRATEGIES = ("nobc",)


def strategy_names(config: ml_collections.ConfigDict) -> list[str]:
  """The strategies of ``config.strategy`` (comma-separated), validated."""
  names = [s.strip() for s in str(config.strategy).split(",") if s.strip()]
  if not names:
    raise InputError("config.strategy is empty; expected one or more names")
  for name in names:
    if name not in STRATEGIES:
      raise InputError(
        f"unknown strategy {name!r} in config.strategy; valid strategy names: "
        f"{', '.join(STRATEGIES)}"
      )
  return names


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
  for field in ("learning_rate",):
    if not config[field] > 0:
      raise InputError(f"config.{field} must be positive, got {config[field]!r}")
  if config.weight_decay < 0:
    raise InputError(f"config.weight_decay must be >= 0, got {config.weight_decay}")
  strategy_names(config)
