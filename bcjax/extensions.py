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

Each extension is loaded once per process. Whatever it registers remembers
where it came from (:func:`source_of`): the target that was being loaded, or
else the module that defined it. Checkpoints record these sources, so that
serving loads an extension by itself (:func:`load_sources`).
"""

from __future__ import annotations

import importlib
import importlib.metadata

from bcjax.errors import InputError

GROUP = "bcjax.extensions"
# bcjax's own components come with the package: nothing to record or load.
PACKAGE = "bcjax"
_loaded: set[str] = set()
# The targets being loaded now, innermost last (an extension may load another).
_loading: list[str] = []


def _load_target(target: str, where: str) -> None:
  if target in _loaded:
    return
  module_name, _, attr = target.partition(":")
  _loading.append(target)
  try:
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
  finally:
    _loading.pop()
  _loaded.add(target)


def source_of(fn) -> str:
  """Where a component being registered comes from, to record in checkpoints.

  The extension target being loaded (``module`` or ``module:function``), so
  that loading it again registers the component; else the module that
  defines ``fn`` (importing it registers the component).
  """
  if _loading:
    return _loading[-1]
  return getattr(fn, "__module__", None) or ""


def is_external(source: str) -> bool:
  """Whether ``source`` is an extension (not bcjax itself)."""
  module = source.partition(":")[0]
  return bool(module) and module != PACKAGE and not module.startswith(PACKAGE + ".")


def load_sources(sources, where: str) -> None:
  """Loads the extensions a checkpoint recorded (:func:`source_of`).

  Args:
    sources: ``module`` or ``module:function`` targets; bcjax's own modules
      and targets already loaded are skipped.
    where: what recorded them, for the message.

  Raises:
    InputError: one line naming the target that cannot be loaded.
  """
  for source in sources:
    if is_external(source) and source not in _loaded:
      _load_target(source, f"{where} needs the extension {source!r}")


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
