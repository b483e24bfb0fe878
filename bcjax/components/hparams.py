"""Hyperparameters of components: each declared once, as a frozen dataclass.

Every registered transform family, alignment loss and method names the
dataclass of its hyperparameters at registration (``hparams=...``): fields
with defaults, checked in ``__post_init__`` (:func:`require`). From that one
declaration come

* the config's section of the component, ``config.<kind>.<name>.<field>``
  (:func:`section`; a method's ``-`` becomes ``_`` there, since flag paths
  cannot hold it: ``config.method.finetune_m0.epochs``), which the shipped
  configs and ``--help`` list and ``--config.<kind>.<name>.<field>=value``
  overrides;
* the component's values, read back from that section with one error naming
  the field (:func:`from_section`);
* what a checkpoint records of a transform (:func:`to_json`), so that serving
  rebuilds it with the hyperparameters it was trained with.

This module knows no registry: :mod:`bcjax.jobs.config` puts the sections of
every registered component together.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import ml_collections

from bcjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class NoHparams:
  """The hyperparameters of a component that has none."""


def require(ok: bool, field: str, expected: str, value: Any) -> None:
  """Raises ``InputError("<field> must be <expected>, got <value>")`` unless ``ok``.

  What a hyperparameter dataclass's ``__post_init__`` calls: the message
  starts with the bare field name, and :func:`from_section` prefixes the
  config path (``config.transform.lowrank.rank must be ...``).
  """
  if not ok:
    raise InputError(f"{field} must be {expected}, got {value!r}")


def check_class(kind: str, name: str, cls: type) -> None:
  """Refuses a hyperparameter class that is not a frozen dataclass with defaults.

  Args:
    kind: what registers it, e.g. ``"transform"``.
    name: the component's name.
    cls: the class given as ``hparams=``.

  Raises:
    InputError: naming the component and what was expected.
  """
  params = getattr(cls, "__dataclass_params__", None)
  if not dataclasses.is_dataclass(cls) or not isinstance(cls, type) or not params:
    raise InputError(f"{kind} {name!r}: hparams must be a dataclass class, got {cls!r}")
  if not params.frozen:
    raise InputError(f"{kind} {name!r}: hparams {cls.__name__} must be frozen")
  for f in dataclasses.fields(cls):
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
      raise InputError(
        f"{kind} {name!r}: hparams field {cls.__name__}.{f.name} needs a default"
      )
  try:
    cls()
  except InputError as e:
    raise InputError(f"{kind} {name!r}: its default hparams are invalid: {e}") from e


def section_key(name: str) -> str:
  """A component's key in its config section: ``-`` is ``_`` (flag paths)."""
  return name.replace("-", "_")


def section(cls: type) -> ml_collections.ConfigDict:
  """The config section of ``cls``: its fields at their defaults."""
  defaults = cls()
  return ml_collections.ConfigDict(
    {f.name: getattr(defaults, f.name) for f in dataclasses.fields(cls)}
  )


def to_json(hparams: Any) -> dict:
  """The values of a hyperparameter dataclass, as JSON-ready fields."""
  return {
    f.name: _config_value(getattr(hparams, f.name)) for f in dataclasses.fields(hparams)
  }


def from_section(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
  """``cls`` built from a config section (missing fields keep their defaults).

  Args:
    cls: the component's hyperparameter dataclass.
    values: the section (a ConfigDict or a mapping), or None for the defaults.
    where: the section's path for messages, e.g. ``config.transform.linear``.

  Raises:
    InputError: one line naming ``where.<field>``: a field ``cls`` does not
      have, a value of another type than the field's, or one its
      ``__post_init__`` refuses.
  """
  values = dict(values.items()) if values is not None else {}
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - set(fields))
  if unknown:
    valid = ", ".join(fields) or "none"
    raise InputError(f"{where} has no field {unknown[0]!r}; its fields: {valid}")
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for name, value in values.items():
    kwargs[name] = _typed(value, hints.get(name), f"{where}.{name}")
  try:
    return cls(**kwargs)
  except InputError as e:
    raise InputError(f"{where}.{e}") from e


def _typed(value: Any, hint: Any, where: str) -> Any:
  """``value`` checked against a field's annotation (plain types only)."""
  if isinstance(value, list):
    value = tuple(value)
  if hint is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if hint in _TYPE_NAMES and (
    not isinstance(value, hint) or (hint is not bool and isinstance(value, bool))
  ):
    raise InputError(f"{where} must be {_TYPE_NAMES[hint]}, got {value!r}")
  return value


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}


def _config_value(value: Any) -> Any:
  return list(value) if isinstance(value, tuple) else value
