"""What data an experiment runs on: one frozen record, read from its config.

A job, an analysis of a finished run and an export of its labels all load
the same dataset and cut the same version splits from it. They used to read
the config's fields for that each in their own way (``config.data_dir or
None`` in one, ``config.get("data_dir", "")`` in another); a
:class:`DataSpec` is read once (:func:`from_config`, from a live config or a
recorded one) and does the loading and the splitting.

Command (what :class:`bcjax.jobs.run_data.RunData` does)::

  spec = DataSpec.from_config(config)
  graph = spec.load()
  splits = spec.splits(graph)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bcjax.data.datasets import load_dataset
from bcjax.data.graph import DynamicGraph
from bcjax.data.split import VersionSplit, split_version


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """The data of an experiment and how it is cut into versions.

  Attributes:
    dataset: a registered dataset name (:mod:`bcjax.data.datasets`).
    data_dir: the folder of a real dataset's files ('' for synthetic; a
      recorded config may omit it, and the caller supplies it).
    synthetic: the synthetic generator's settings, as sorted ``(name,
      value)`` pairs (empty: its defaults).
    item_fields: the item attributes to read (comma-separated; '' for the
      dataset's default).
    taus: the increasing fractions of the log; version k trains on the
      first ``taus[k]``.
    num_versions: how many versions are cut.
  """

  dataset: str
  data_dir: str = ""
  synthetic: tuple[tuple[str, Any], ...] = ()
  item_fields: str = ""
  taus: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
  num_versions: int = 5

  @classmethod
  def from_config(
    cls, config: Mapping[str, Any], data_dir: str | None = None
  ) -> DataSpec:
    """The data spec of a config (a ConfigDict, or a recorded config's dict).

    Args:
      config: an experiment config: ``dataset``, ``taus``, ``num_versions``
        and, where set, ``data_dir``, ``synthetic`` and ``item_fields``.
      data_dir: overrides the config's ``data_dir`` (a recorded config may
        leave it out, or name a folder of another machine); None keeps it.
    """
    synthetic = config.get("synthetic") or {}
    if hasattr(synthetic, "to_dict"):
      synthetic = synthetic.to_dict()
    return cls(
      dataset=config["dataset"],
      data_dir=(config.get("data_dir", "") or "") if data_dir is None else data_dir,
      synthetic=tuple(sorted(dict(synthetic).items())),
      item_fields=config.get("item_fields", "") or "",
      taus=tuple(config["taus"]),
      num_versions=int(config["num_versions"]),
    )

  def load(self) -> DynamicGraph:
    """The whole interaction log.

    Raises:
      InputError: an unknown dataset, a missing ``data_dir`` or bad files.
    """
    return load_dataset(
      self.dataset, self.data_dir or None, dict(self.synthetic), self.item_fields
    )

  def splits(self, graph: DynamicGraph) -> tuple[VersionSplit, ...]:
    """Version ``0..num_versions-1``'s training and validation splits of ``graph``."""
    return tuple(split_version(graph, k, self.taus) for k in range(self.num_versions))
