"""Loading a user's extensions: methods, transforms and losses of their own.

An extension is a module that registers things when imported
(``register_method``, ``register_transform``, ``register_loss``), or a
function that does when called. Two ways in, both loaded before strategy
names are parsed:

* ``--config.imports=mypkg.mymethods`` (comma-separated; ``module`` or
  ``module:function``), for a module on the Python path;
* the entry-point group ``bcjax.extensions`` of installed packages, e.g. in
  ``pyproject.toml``::

    [project.entry-points."bcjax.extensions"]
    mymethods = "mypkg.mymethods"            # or "mypkg.mymethods:register"

Each extension is loaded once per process.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from bcjax.errors import InputError

GROUP = "bcjax.extensions"
_loaded: set[str] = set()


def _load_target(target: str, where: str) -> None:
  if target in _loaded:
    return
  module_name, _, attr = target.partition(":")
  try:
    obj = importlib.import_module(module_name)
  except ImportError as e:
    raise InputError(f"{where}: cannot import {module_name!r}: {e}") from e
  if attr:
    for part in attr.split("."):
      if not hasattr(obj, part):
        raise InputError(f"{where}: {module_name!r} has no attribute {attr!r}")
      obj = getattr(obj, part)
    if not callable(obj):
      raise InputError(f"{where}: {target!r} is not callable")
    obj()
  _loaded.add(target)


def load(imports: str | list[str] | tuple[str, ...] = "") -> None:
  """Loads the ``bcjax.extensions`` entry points, then ``imports``.

  Args:
    imports: comma-separated ``module`` or ``module:function`` targets (or a
      sequence of them): modules are imported, functions called.

  Raises:
    InputError: for a target that cannot be imported or called.
  """
  for entry in importlib.metadata.entry_points(group=GROUP):
    _load_target(entry.value.replace(" ", ""), f"entry point {entry.name!r} of {GROUP}")
  if isinstance(imports, str):
    imports = imports.split(",")
  for target in imports:
    if target.strip():
      _load_target(target.strip(), "config.imports")
