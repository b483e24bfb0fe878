"""Training curves as TensorBoard event files and as JSON lines.

Every record goes to both: ``WORKDIR/tensorboard/`` (``tensorboard --logdir
WORKDIR/tensorboard``) and ``WORKDIR/metrics.jsonl`` (one JSON object per
line, for scripts and notebooks). The event files are written with
tensorboardX: it needs only numpy and protobuf (already an Orbax
dependency), where ``tensorboard``'s own writer and the flax examples'
``clu.metric_writers`` bring TensorFlow or PyTorch.

Tags read ``<group>/<name>/<scalar>``, e.g. ``intended/nobc/v2/recall_at_50``
(seed ``s > 0`` adds ``/seed<s>`` to the group name); a record's step is an
epoch, or 0 for one-off numbers such as the table's.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from collections.abc import Mapping

from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2


def tensorboard_tag(tag: str) -> str:
  """``tag`` in the characters TensorBoard allows (``[A-Za-z0-9_./-]``):
  ``@`` as ``_at_`` (``recall@50`` is ``recall_at_50``, a strategy name's
  ``@align_weight=4`` is ``_at_align_weight_4``), any other as ``_``. Made
  here, so that tensorboardX logs no warning per scalar."""
  return re.sub(r"[^A-Za-z0-9_./-]", "_", tag.replace("@", "_at_"))


class MetricWriter:
  """Writes scalars under a workdir; a context manager that flushes on exit.

  Args:
    workdir: the run's output folder.
  """

  def __init__(self, workdir: str):
    self.logdir = os.path.join(workdir, "tensorboard")
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    os.makedirs(self.logdir, exist_ok=True)
    # Event files are named by the second they were opened in: a suffix keeps
    # a second writer in the same second from replacing the first's file.
    self._events = SummaryWriter(
      self.logdir, flush_secs=5, filename_suffix=f".{os.getpid()}.{time.time_ns()}"
    )
    # Line-buffered: a killed run keeps every line it wrote.
    self._jsonl = open(self.jsonl_path, "a", buffering=1)  # noqa: SIM115

  def write(self, tag: str, step: int, scalars: Mapping[str, float], **labels) -> None:
    """Writes ``scalars`` at ``step`` under ``tag``.

    Args:
      tag: the group, e.g. ``"intended/nobc/v2"``.
      step: the epoch (0 for one-off numbers).
      scalars: name -> value; None and non-numbers are left out.
      **labels: extra JSON fields of the line (strategy, version, seed...).
    """
    wall = time.time()
    kept = {
      k: float(v)
      for k, v in scalars.items()
      if isinstance(v, int | float) and not isinstance(v, bool)
    }
    for name, value in kept.items():
      self._events.add_scalar(
        tensorboard_tag(f"{tag}/{name}"), value, step, walltime=wall
      )
    line = {"tag": tag, "step": step, "time": wall, **labels, **kept}
    self._jsonl.write(json.dumps(line) + "\n")

  def flush(self) -> None:
    self._events.flush()
    self._jsonl.flush()

  def close(self) -> None:
    self._events.close()
    self._jsonl.close()

  def __enter__(self) -> MetricWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """Every scalar in the event files under ``logdir``: tag -> [(step, value)].

  A reader of TFRecord framing (length, its checksum, the Event proto, its
  checksum) that needs neither TensorFlow nor TensorBoard; checksums are not
  verified.
  """
  out: dict[str, list[tuple[int, float]]] = {}
  for root, _, files in os.walk(logdir):
    for name in sorted(files):
      if "tfevents" not in name:
        continue
      with open(os.path.join(root, name), "rb") as f:
        data = f.read()
      at = 0
      while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
          out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out
