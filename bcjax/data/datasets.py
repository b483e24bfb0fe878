"""The dataset registry: names and name patterns, each with its loader.

Built in: ``synthetic`` (the embedded default), ``ml-100k``,
``amazon-<Category>`` (e.g. ``amazon-Musical_Instruments``), ``recbole``
(the one RecBole atomic dataset in ``data_dir``) and ``recbole-<name>``
(``<name>.inter`` and its ``.item`` / ``.user`` in ``data_dir``).

A user adds a dataset without editing bcjax::

  from bcjax.data import datasets

  def load_mine(request: datasets.DatasetRequest) -> DynamicGraph:
    return ...  # request.data_dir, request.parts, request.options

  datasets.register("mine-<Size>", load_mine)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bcjax.data.graph import DynamicGraph
from bcjax.errors import InputError, unknown_name

# A placeholder of a name pattern: "<Category>" in "amazon-<Category>".
_PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
# What a placeholder matches: a file-name stem, never a path.
_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


@dataclasses.dataclass(frozen=True)
class DatasetRequest:
  """What a loader is asked to load.

  Attributes:
    name: the dataset name as asked, e.g. ``"amazon-Video_Games"``.
    data_dir: the folder of the dataset's files; None when not given.
    parts: the placeholders of the matching pattern, e.g.
      ``{"Category": "Video_Games"}``; empty for a plain name.
    options: loader settings from the config: ``synthetic`` (a mapping),
      ``item_fields`` (a list of names, empty for the default).
  """

  name: str
  data_dir: str | None = None
  parts: Mapping[str, str] = dataclasses.field(default_factory=dict)
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def require_dir(self) -> str:
    """``data_dir``, checked to be a folder.

    Raises:
      InputError: it is missing or not a folder.
    """
    if not self.data_dir:
      raise InputError(f"dataset {self.name!r} needs data_dir, the folder of its files")
    if not os.path.isdir(self.data_dir):
      raise InputError(
        f"data_dir {self.data_dir!r} of dataset {self.name!r} is not a folder"
      )
    return self.data_dir


Loader = Callable[[DatasetRequest], DynamicGraph]
_REGISTRY: dict[str, tuple[re.Pattern, Loader]] = {}


def register(name: str, loader: Loader) -> None:
  """Makes ``name`` loadable by :func:`load_dataset`.

  Args:
    name: a name (``"ml-100k"``) or a pattern with ``<Placeholder>`` parts
      (``"amazon-<Category>"``), each matching a file-name stem; the loader
      finds them in ``request.parts``. A plain name wins over a pattern that
      also matches it.
    loader: called with a :class:`DatasetRequest`, returns the graph.

  Raises:
    InputError: ``name`` is registered already (each name has one loader).
  """
  if name in _REGISTRY:
    raise InputError(f"dataset {name!r} is registered already")
  pieces = _PLACEHOLDER.split(name)
  # split alternates literal text and placeholder names.
  regex = "".join(
    re.escape(piece) if i % 2 == 0 else f"(?P<{piece}>{_PART})"
    for i, piece in enumerate(pieces)
  )
  _REGISTRY[name] = (re.compile(regex), loader)


def unregister(name: str) -> None:
  """Removes ``name`` from the registry (for tests and reloads)."""
  _REGISTRY.pop(name, None)


def names() -> list[str]:
  """The registered names and patterns."""
  return list(_REGISTRY)


def load_dataset(
  name: str,
  data_dir: str | None = None,
  synthetic: Mapping[str, Any] | None = None,
  item_fields: str | Sequence[str] = (),
) -> DynamicGraph:
  """Loads a dataset by name.

  Args:
    name: a registered name, or a name a registered pattern matches.
    data_dir: the folder holding the files of a real dataset.
    synthetic: keyword arguments of
      :class:`bcjax.data.synthetic.SyntheticSpec` for ``synthetic``.
    item_fields: the item fields to use as attributes (a list or a
      comma-separated string); empty for the dataset's default.

  Returns:
    The :class:`DynamicGraph`.

  Raises:
    InputError: for an unknown name (listing the valid ones), a missing
      ``data_dir`` or bad files.
  """
  if isinstance(item_fields, str):
    item_fields = item_fields.split(",")
  fields = [field.strip() for field in item_fields if field.strip()]
  options = {"synthetic": dict(synthetic or {}), "item_fields": fields}
  matches = [
    (pattern, loader)
    for pattern, loader in _REGISTRY.values()
    if pattern.fullmatch(name)
  ]
  if not matches:
    raise unknown_name("dataset", name, _REGISTRY)
  # Plain names have no groups, so they sort before any pattern.
  pattern, loader = min(matches, key=lambda match: match[0].groups)
  parts = pattern.fullmatch(name).groupdict()
  return loader(DatasetRequest(name, data_dir, parts, options))


def _no_item_fields(request: DatasetRequest) -> None:
  if request.options.get("item_fields"):
    raise InputError(
      f"item_fields chooses the attributes of RecBole atomic datasets (recbole, "
      f"recbole-<name>); dataset {request.name!r} has fixed ones"
    )


def _synthetic(request: DatasetRequest) -> DynamicGraph:
  from bcjax.data import synthetic as synthetic_lib

  _no_item_fields(request)
  given = request.options.get("synthetic") or {}
  fields = set(synthetic_lib.SyntheticSpec.__dataclass_fields__)
  extra = set(given) - fields
  if extra:
    raise InputError(
      f"unknown synthetic config field(s) {sorted(extra)}; valid: {sorted(fields)}"
    )
  return synthetic_lib.generate(synthetic_lib.SyntheticSpec(**given))


def _ml100k(request: DatasetRequest) -> DynamicGraph:
  from bcjax.data.movielens import load_ml100k

  _no_item_fields(request)
  return load_ml100k(request.require_dir())


def _amazon(request: DatasetRequest) -> DynamicGraph:
  from bcjax.data.amazon import load_amazon

  _no_item_fields(request)
  return load_amazon(request.parts["Category"], request.require_dir())


def _recbole(request: DatasetRequest) -> DynamicGraph:
  from bcjax.data.recbole import load_recbole

  return load_recbole(
    request.require_dir(),
    request.parts.get("name"),
    request.options.get("item_fields") or None,
  )


register("synthetic", _synthetic)
register("ml-100k", _ml100k)
register("amazon-<Category>", _amazon)
register("recbole", _recbole)
register("recbole-<name>", _recbole)
