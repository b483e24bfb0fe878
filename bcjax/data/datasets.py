"""The dataset registry: one name per loader, failing loudly on unknown names.

Names: ``synthetic`` (the embedded default), ``ml-100k`` and
``amazon-<Category>`` (e.g. ``amazon-Musical_Instruments``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from bcjax.data.graph import DynamicGraph
from bcjax.errors import InputError, unknown_name

DATASET_NAMES = ("synthetic", "ml-100k", "amazon-<Category>")


def load_dataset(
  name: str,
  data_dir: str | None = None,
  synthetic: Mapping[str, Any] | None = None,
) -> DynamicGraph:
  """Loads a dataset by name.

  Args:
    name: ``synthetic``, ``ml-100k`` or ``amazon-<Category>``.
    data_dir: the folder holding the files of a real dataset.
    synthetic: keyword arguments of
      :class:`bcjax.data.synthetic.SyntheticSpec` for ``synthetic``.

  Returns:
    The :class:`DynamicGraph`.

  Raises:
    InputError: for an unknown name, a missing ``data_dir`` or bad files.
  """
  if name == "synthetic":
    from bcjax.data import synthetic as synthetic_lib

    fields = {f for f in synthetic_lib.SyntheticSpec.__dataclass_fields__}
    extra = set(synthetic or {}) - fields
    if extra:
      raise InputError(
        f"unknown synthetic config field(s) {sorted(extra)}; valid: {sorted(fields)}"
      )
    return synthetic_lib.generate(synthetic_lib.SyntheticSpec(**(synthetic or {})))
  if name == "ml-100k":
    from bcjax.data.movielens import load_ml100k

    return load_ml100k(_require_dir(name, data_dir))
  match = re.fullmatch(r"amazon-([A-Za-z][A-Za-z0-9_]*)", name)
  if match:
    from bcjax.data.amazon import load_amazon

    return load_amazon(match.group(1), _require_dir(name, data_dir))
  raise unknown_name("dataset", name, DATASET_NAMES)


def _require_dir(name: str, data_dir: str | None) -> str:
  if not data_dir:
    raise InputError(f"dataset {name!r} needs data_dir, the folder of its files")
  if not os.path.isdir(data_dir):
    raise InputError(f"data_dir {data_dir!r} of dataset {name!r} is not a folder")
  return data_dir
