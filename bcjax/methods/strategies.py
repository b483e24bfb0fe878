"""The strategy grammar, built from the methods, transforms and losses registries.

Names are a method's bare name (``fix-m0``, ``finetune-m0``, ``nobc``) for
methods without a transform, and ``<method>-<transform>-<loss>`` for the
others (``posthoc-linear-sloss``, ``joint-orthogonal-mloss``, ...), over every
registered method, transform family and alignment loss; ``bc-aligner`` is an
alias of ``joint-linear-mloss`` (Hu et al., KDD 2022). A name may set its
method's hyperparameters after ``@`` (``joint-linear-mloss@align_weight=4``,
several as ``@a=1@b=2``), so that one run holds a strategy at several
settings side by side; its canonical form lists them sorted, the values
printed plainly (``4.0`` as ``4``). A combination is
refused with a reason when the method or the loss says why
(``Method.check``, ``AlignmentLoss.check``). Registering a method, transform
or loss is all it takes for its names to parse here, in ``--config.strategy``
and in the table.

A name parses into a :class:`Strategy` (the names of its parts), which
:func:`resolve` turns once, with a config, into a :class:`ResolvedStrategy`:
the method, the transform and the loss objects with their hyperparameters
(``config.method.<m>``, ``config.transform.<t>``, ``config.loss.<l>``; a
name's ``@`` settings over its method's section). Everything that runs a
strategy takes the resolved one.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
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
  "OVERRIDE_MARK",
  "method_hparams",
  "parse_strategy",
  "plain_value",
  "resolve",
  "valid_names",
]

ALIASES = {"bc-aligner": "joint-linear-mloss"}
# Separates a name from each hyperparameter it sets (``name@field=value``).
OVERRIDE_MARK = "@"
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
    overrides: ``(field, value)`` of the method's hyperparameters the name
      sets after ``@``, sorted by field (over ``config.method.<method>``).
  """

  name: str
  method: str
  transform: str = transforms.IDENTITY
  loss: str | None = None
  overrides: tuple[tuple[str, Any], ...] = ()

  @property
  def base_name(self) -> str:
    """The name without its ``@`` settings: what its keys derive from."""
    return self.name.partition(OVERRIDE_MARK)[0]

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
    name: a strategy name or alias, optionally with its method's
      hyperparameters after ``@`` (``joint-linear-mloss@align_weight=4``).
    imports: the extensions the caller loaded (``config.imports``), named in
      the hint of an unknown name whose part no registry has.

  Raises:
    InputError: for an unknown name (the close valid names, a part that no
      registry has, and every valid name), an invalid combination of the
      grammar (with the reason), or an ``@`` setting that is not
      ``field=value`` of one of the method's hyperparameters.
  """
  base, *settings = name.split(OVERRIDE_MARK)
  strategy = _parse_base(base, imports)
  if not settings:
    return strategy
  overrides = _overrides(name, methods.get_method(strategy.method), settings)
  text = "".join(f"{OVERRIDE_MARK}{f}={plain_value(v)}" for f, v in overrides)
  return dataclasses.replace(strategy, name=strategy.name + text, overrides=overrides)


def _parse_base(name: str, imports: str | None) -> Strategy:
  """The :class:`Strategy` of a name without ``@`` settings."""
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


def _overrides(
  name: str, method: methods.Method, settings: list[str]
) -> tuple[tuple[str, Any], ...]:
  """``(field, value)`` of ``name``'s ``@field=value`` settings, sorted.

  Each value is read as its field's type (``int``, ``float``, ``bool``,
  ``str``); the dataclass's own checks run when the strategy is resolved.
  """
  fields = {f.name for f in dataclasses.fields(method.hparams)}
  hints = typing.get_type_hints(method.hparams)
  expected = (
    f"expected NAME@FIELD=VALUE with FIELD one of method {method.name!r}'s "
    f"hyperparameters ({', '.join(sorted(fields)) or 'it has none'})"
  )
  out: dict[str, Any] = {}
  for setting in settings:
    field, sep, text = setting.partition("=")
    if not sep or field not in fields or not text:
      raise InputError(f"strategy {name!r}: {setting!r} is not a setting; {expected}")
    if field in out:
      raise InputError(f"strategy {name!r} sets {field!r} twice; {expected}")
    out[field] = _read_value(name, field, text, hints.get(field))
  return tuple(sorted(out.items()))


def _read_value(name: str, field: str, text: str, hint: Any) -> Any:
  """``text`` as a value of type ``hint`` (a plain type; else the text)."""
  if hint is bool:
    if text.lower() not in ("true", "false"):
      raise InputError(
        f"strategy {name!r}: {field} must be true or false, got {text!r}"
      )
    return text.lower() == "true"
  if hint in (int, float):
    try:
      return hint(text)
    except ValueError:
      kind = "an integer" if hint is int else "a number"
      raise InputError(
        f"strategy {name!r}: {field} must be {kind}, got {text!r}"
      ) from None
  return text


def plain_value(value: Any) -> str:
  """A setting's value in the canonical name: ``4.0`` as ``4``, bools lower case."""
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float) and value.is_integer():
    return str(int(value))
  return str(value)


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


def method_hparams(method: methods.Method, config, overrides=()) -> Any:
  """``method``'s hyperparameters from ``config.method.<name>`` (else
  defaults), with a strategy name's ``overrides`` (``(field, value)``) over it."""
  key = hparams_lib.section_key(method.name)
  values = dict(((config.get("method") or {}).get(key) or {}).items())
  where = f"config.method.{key}"
  if overrides:
    values |= dict(overrides)
    where += " (with the strategy name's @ settings)"
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
    hparams=method_hparams(method, config, strategy.overrides),
    transform=transforms.from_config(strategy.transform, config),
    loss=losses.from_config(strategy.loss, config) if strategy.loss else None,
    base_name=strategy.base_name,
  )
