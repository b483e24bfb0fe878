"""Typed results of a run, serialised to JSON only at the edge.

A :class:`VersionResult` is what one version of one strategy measured. It is
built by the methods and the runner, saved in the version's checkpoint
metadata and in ``results.json`` through :meth:`VersionResult.to_json`, and
read back from either through :meth:`VersionResult.from_json` alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bcjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class VersionResult:
  """One version of one strategy: sizes, selection, metrics, timings.

  Attributes:
    strategy: the strategy's canonical name.
    version: ``k``.
    dim: ``d_k``, the embedding width.
    layers: M_k's number of PinSAGE layers.
    tau_train: the time slice trained on.
    tau_val: the end of the validation window.
    num_users: users of the version's graph.
    num_items: items of the version's graph.
    num_train: training interactions.
    num_val: validation interactions.
    best_epoch: the epoch kept (0 when nothing was trained).
    recall: ``{K: Recall@K}`` of the kept model on the validation window's
      reported users.
    selection_recall: ``{K: Recall@K}`` of the kept model on the users that
      chose it (``report_split="held_out"``: the other half; None in
      results made before it was kept).
    max_epochs: the embedding fit's cap (None: nothing trained, or results
      made before it was kept).
    train_seconds: wall time of training and evaluation.
    seconds_per_epoch: mean time of a training epoch (compilation excluded).
    history: one ``{"epoch", "loss", ..., "recall@50", "seconds"}`` per
      evaluation.
    transform_best_epoch: the epoch of a post-hoc B_k (post-hoc fits only).
    transform_seconds: wall time of fitting a post-hoc B_k.
    transform_history: ``[epoch, alignment error]`` of every check of a
      post-hoc B_k's fit (its selection curve).
    transform_max_epochs: that fit's cap.
    alignment_mse_previous: MSE of ``B_k(z_k)`` to ``z_{k-1}`` (k >= 1).
    alignment_mse_v0: MSE of ``B_{1..k}(z_k)`` to M_0's (0 at version 0).
    distance_to_fix_m0: mean L2 distance of ``B_{1..k}(z_k)`` to M_0's
      embeddings over users and items pooled (0 at version 0): the per-version
      value of the table's alignment error.
  """

  strategy: str
  version: int
  dim: int
  layers: int
  tau_train: float
  tau_val: float
  num_users: int
  num_items: int
  num_train: int
  num_val: int
  best_epoch: int
  recall: Mapping[int, float]
  train_seconds: float = 0.0
  seconds_per_epoch: float = 0.0
  history: tuple[Mapping[str, float], ...] = ()
  transform_best_epoch: int | None = None
  transform_seconds: float | None = None
  alignment_mse_previous: float | None = None
  alignment_mse_v0: float | None = None
  distance_to_fix_m0: float | None = None
  selection_recall: Mapping[int, float] | None = None
  max_epochs: int | None = None
  transform_history: tuple[tuple[int, float], ...] | None = None
  transform_max_epochs: int | None = None

  def replace(self, **changes) -> VersionResult:
    """A copy with ``changes`` (e.g. the runner's alignment errors)."""
    return dataclasses.replace(self, **changes)

  def to_json(self) -> dict[str, Any]:
    """The JSON form: Recall@K keyed by ``str(K)``, unset optional fields left out."""
    out = {}
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.name in ("recall", "selection_recall") and value is not None:
        value = {str(k): float(v) for k, v in value.items()}
      elif field.name == "history":
        value = [dict(h) for h in value]
      elif field.name == "transform_history" and value is not None:
        value = [[int(e), float(x)] for e, x in value]
      elif value is None:
        continue
      out[field.name] = value
    return out

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> VersionResult:
    """Reads :meth:`to_json`'s form back (from results.json or a checkpoint).

    Raises:
      InputError: for a missing field or one this type does not have.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
      raise InputError(f"version result has unknown fields {unknown}")
    try:
      kwargs = dict(data)
      kwargs["recall"] = {int(k): float(v) for k, v in data["recall"].items()}
      if data.get("selection_recall") is not None:
        kwargs["selection_recall"] = {
          int(k): float(v) for k, v in data["selection_recall"].items()
        }
      kwargs["history"] = tuple(dict(h) for h in data.get("history", ()))
      if data.get("transform_history") is not None:
        kwargs["transform_history"] = tuple(
          (int(e), float(x)) for e, x in data["transform_history"]
        )
      return cls(**kwargs)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
      raise InputError(f"version result is malformed: {type(e).__name__}: {e}") from e
