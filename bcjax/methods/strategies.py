"""The strategy grammar, built from the methods, transforms and losses registries.

Names are a method's bare name (``fix-m0``, ``finetune-m0``, ``nobc``) for
methods without a transform, and ``<method>-<transform>-<loss>`` for the
others (``posthoc-linear-sloss``, ``joint-orthogonal-mloss``, ...), over every
registered method, transform family and alignment loss; ``bc-aligner`` is an
alias of ``joint-linear-mloss`` (Hu et al., KDD 2022). A combination is
refused with a reason when the method or the loss says why
(``Method.check``, ``AlignmentLoss.check``). Registering a method, transform
or loss is all it takes for its names to parse here, in ``--config.strategy``
and in the table.

A name parses into a :class:`Strategy` (the names of its parts), which
:func:`resolve` turns once, with a config, into a :class:`ResolvedStrategy`:
the method, the transform and the loss objects with their hyperparameters
(``config.method.<m>``, ``config.transform.<t>``, ``config.loss.<l>``).
Everything that runs a strategy takes the resolved one.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from bcjax import methods
from bcjax.components import hparams as hparams_lib
from bcjax.components import losses, transforms
from bcjax.errors import InputError, did_you_mean
from bcjax.methods.base import ResolvedStrategy

__all__ = [
  "ALIASES",
  "PAPER_STRATEGIES",
  "ResolvedStrategy",
  "Strategy",
  "method_hparams",
  "parse_strategy",
  "resolve",
  "valid_names",
]

ALIASES = {"bc-aligner": "joint-linear-mloss"}
# The paper's comparison (its Table 3), in its order.
PAPER_STRATEGIES = (
  "fix-m0",
  "finetune-m0",
  "nobc",
  "posthoc-linear-sloss",
  "posthoc-linear-mloss",
  "joint-notrans-sloss",
  "joint-linear-sloss",
  "joint-linear-mloss",
)


@dataclasses.dataclass(frozen=True)
class Strategy:
  """One way of producing embedding versions and their backward transforms.

  Attributes:
    name: the canonical name.
    method: the registered method (``fix-m0``, ``nobc``, ``joint``, ...).
    transform: the family of every ``B_k`` (the identity family
      :data:`bcjax.components.transforms.IDENTITY` for methods without one: it
      truncates to the older dimension, the identity when dimensions do not
      change).
    loss: the registered alignment loss, or None for methods without one.
  """

  name: str
  method: str
  transform: str = transforms.IDENTITY
  loss: str | None = None

  @property
  def keeps_m0(self) -> bool:
    """Whether every version has M_0's architecture (and dimension)."""
    return methods.get_method(self.method).keeps_m0

  @property
  def learns_transform(self) -> bool:
    """Whether B_k has parameters to fit."""
    return transforms.get_transform(self.transform).learned


def _reason(method: methods.Method, transform: str, loss: str) -> str | None:
  """Why ``<method>-<transform>-<loss>`` is refused, or None."""
  family = transforms.get_transform(transform)
  alignment = losses.get_loss(loss)
  return method.check(family, alignment) or alignment.check(family)


def _combinations():
  """``(name, method, transform, loss)`` of every grammar name, valid or not."""
  registered = methods.registered_methods()
  for method in registered:
    if not method.takes_transform:
      yield method.name, method, None, None
  for method, transform, loss in itertools.product(
    [m for m in registered if m.takes_transform],
    transforms.TRANSFORMS,
    losses.LOSSES,
  ):
    yield f"{method.name}-{transform}-{loss}", method, transform, loss


def valid_names() -> list[str]:
  """Every valid strategy name, aliases included."""
  names = [
    name
    for name, method, transform, loss in _combinations()
    if transform is None or _reason(method, transform, loss) is None
  ]
  return names + sorted(ALIASES)


def parse_strategy(name: str, imports: str | None = None) -> Strategy:
  """The :class:`Strategy` of ``name``.

  Args:
    name: a strategy name or alias.
    imports: the extensions the caller loaded (``config.imports``), named in
      the hint of an unknown name whose part no registry has.

  Raises:
    InputError: for an unknown name (the close valid names, a part that no
      registry has, and every valid name) or an invalid combination of the
      grammar (with the reason).
  """
  canonical = ALIASES.get(name, name)
  for each, method, transform, loss in _combinations():
    if each != canonical:
      continue
    if transform is None:
      return Strategy(canonical, method.name)
    reason = _reason(method, transform, loss)
    if reason:
      raise InputError(f"strategy {name!r} is not a valid combination: {reason}")
    return Strategy(canonical, method.name, transform, loss)
  valid = valid_names()
  raise InputError(
    f"unknown strategy {name!r}{did_you_mean(name, valid)}{_unregistered(name, imports)}"
    f"; valid strategy names: {', '.join(valid)}"
  )


def _unregistered(name: str, imports: str | None) -> str:
  """Which part of a ``<method>-<transform>-<loss>`` name no registry has.

  Such a part is often an extension's component whose module was not loaded:
  the hint names ``--config.imports``.
  """
  parts = name.split("-")
  if len(parts) != 3:
    return ""
  registries = (
    ("method", [m.name for m in methods.registered_methods()]),
    ("transform", transforms.TRANSFORMS),
    ("alignment loss", losses.LOSSES),
  )
  missing = [
    f"{kind} {p!r}" for p, (kind, names) in zip(parts, registries) if p not in names
  ]
  if not missing:
    return ""
  where = (
    f"--config.imports={imports} does not register it"
    if imports
    else "if an extension defines it, load its module with --config.imports=MODULE"
  )
  return f" (no {' or '.join(missing)} is registered: {where})"


def method_hparams(method: methods.Method, config) -> Any:
  """``method``'s hyperparameters from ``config.method.<name>`` (else defaults)."""
  values = (config.get("method") or {}).get(hparams_lib.section_key(method.name))
  where = f"config.method.{hparams_lib.section_key(method.name)}"
  return hparams_lib.from_section(method.hparams, values, where)


def resolve(strategy: str | Strategy, config) -> ResolvedStrategy:
  """``strategy`` (a name or a parsed one) with its components from ``config``.

  Raises:
    InputError: an unknown or invalid name, or a hyperparameter that its
      dataclass refuses (naming ``config.<kind>.<name>.<field>``).
  """
  if isinstance(strategy, str):
    strategy = parse_strategy(strategy)
  method = methods.get_method(strategy.method)
  return ResolvedStrategy(
    name=strategy.name,
    method=method,
    hparams=method_hparams(method, config),
    transform=transforms.from_config(strategy.transform, config),
    loss=losses.from_config(strategy.loss, config) if strategy.loss else None,
  )
