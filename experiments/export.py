r"""Writes one version of a bcjax run's embeddings, with their ids, to a file.

Usage::

  python -m experiments.export --workdir=/tmp/run --strategy=bc-aligner \
      --version=0 --out=v0.npz [--nodes=item] [--from_version=K] [--seed=0]

The embeddings are what ``bcjax.registry.open(WORKDIR/checkpoints/STRATEGY)``
serves: ``compatible_embeddings(from_version, version)``, version
``--from_version``'s saved rows (the newest by default) through the backward
chain to ``--version``. ``--from_version=--version`` writes a version's own
embeddings ``z_j``, which is what ``experiments.align`` takes to bridge two
versions of a run. The ids are bcjax's node ids ``0..n-1`` of ``--nodes``
(numbered by first appearance, so one node has one id in every version; a
later version has more), which ``experiments.align`` matches by.

The file's extension picks the format: ``.npz`` holds ``ids`` ``(n,)`` and
``embeddings`` ``(n, d_j)`` float32 (``experiments.align`` reads it);
``.csv`` has a header ``id,e0,..,e{d_j-1}`` and one row per node. The file
is written beside its place and renamed, so it is whole or absent. Bad input
is one ``error:`` line and exit status 2.

``--labels_out=labels.csv --label_attribute=genre [--data_dir=DIR]`` writes
beside it each exported node's first value of a node attribute as the
``id,label`` CSV that ``experiments.align --labels`` reads (the dataset is
loaded as the run recorded it, from ``--data_dir``).
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
from absl import app, flags

from bcjax import environment, registry
from bcjax.errors import InputError, exit_on_user_error
from bcjax.jobs import experiment as experiment_lib
from bcjax.storage.atomic_files import atomic_open
from bcjax.storage.workdir import seed_workdir

FLAGS = flags.FLAGS


def define_flags():
  """Defines the binary's flags.

  Called when the binary runs, not on import: tests import this module and
  ``experiments.align``, which defines ``--workdir`` too, together.
  """
  flags.DEFINE_string("workdir", None, "The run's workdir.")
  flags.DEFINE_string("strategy", None, "The strategy whose versions are served.")
  flags.DEFINE_integer("version", None, "The version j the embeddings are served as.")
  flags.DEFINE_integer(
    "from_version", None, "The version whose saved embeddings are read (the newest)."
  )
  flags.DEFINE_string("out", None, "The output file: .npz or .csv.")
  flags.DEFINE_enum("nodes", "item", ["item", "user"], "Which nodes' embeddings.")
  flags.DEFINE_integer("seed", 0, "The embedding seed of a multi-seed run.")
  flags.DEFINE_string(
    "labels_out", None, "Also write an id,label CSV of --label_attribute here."
  )
  flags.DEFINE_string(
    "label_attribute", None, "The node attribute whose first value is the label."
  )
  flags.DEFINE_string(
    "data_dir", "", "The run's data folder (for --labels_out; the config omits it)."
  )
  flags.mark_flags_as_required(["workdir", "strategy", "version", "out"])


FORMATS = (".npz", ".csv")


def export(
  workdir: str,
  strategy: str,
  version: int,
  out: str,
  *,
  nodes: str = "item",
  from_version: int | None = None,
  seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
  """Writes ``out`` and returns what it holds.

  Args:
    workdir: the run's workdir.
    strategy: the strategy's name (its folder under ``checkpoints``).
    version: ``j``, the version served.
    out: the ``.npz`` or ``.csv`` file to write.
    nodes: ``"item"`` or ``"user"``.
    from_version: the version whose saved rows are read (None: the newest).
    seed: the embedding seed (0: the workdir itself).

  Returns:
    ``(ids (n,), embeddings (n, d_j))``.
  """
  extension = os.path.splitext(out)[1].lower()
  if extension not in FORMATS:
    raise InputError(f"--out={out}: the extension must be .npz or .csv")
  folder = os.path.join(seed_workdir(workdir, seed), "checkpoints", strategy)
  if not os.path.isdir(folder):
    here = os.path.join(seed_workdir(workdir, seed), "checkpoints")
    saved = sorted(os.listdir(here)) if os.path.isdir(here) else []
    raise InputError(
      f"no strategy {strategy!r} in {here}; saved strategies: {saved or 'none'}"
    )
  reg = registry.open(folder)
  try:
    source = reg.latest_version if from_version is None else from_version
    embeddings = reg.compatible_embeddings(source, version, kind=nodes)
  finally:
    reg.close()
  ids = np.arange(len(embeddings))
  if extension == ".npz":
    buffer = io.BytesIO()
    np.savez(buffer, ids=ids, embeddings=embeddings.astype(np.float32))
    with atomic_open(out, "wb") as f:
      f.write(buffer.getvalue())
  else:
    with atomic_open(out) as f:
      writer = csv.writer(f)
      writer.writerow(["id"] + [f"e{i}" for i in range(embeddings.shape[1])])
      for node, row in zip(ids, embeddings, strict=True):
        writer.writerow([int(node)] + [repr(float(x)) for x in row])
  return ids, embeddings


def write_labels(
  workdir: str, nodes: str, attribute: str, data_dir: str, out: str, count: int
) -> np.ndarray:
  """Writes ``id,label`` for nodes ``0..count-1``: their first ``attribute`` value.

  The dataset is loaded as the run recorded it (its experiment,
  :func:`bcjax.jobs.experiment.recorded`), from ``data_dir``, which the
  recorded config may leave out. A node without a value is labelled
  ``(none)``. Returns the labels.
  """
  experiment = experiment_lib.recorded(workdir, data_dir=data_dir)
  graph = experiment.data.load()
  attributes = graph.item_attrs if nodes == "item" else graph.user_attrs
  if attribute not in attributes:
    raise InputError(
      f"--label_attribute={attribute}: the {nodes}s of {graph.name} have "
      f"{sorted(attributes) or 'no attributes'}"
    )
  attr = attributes[attribute]
  starts, ends = attr.offsets[:count], attr.offsets[1 : count + 1]
  labels = np.asarray(
    [attr.vocab[attr.values[s]] if e > s else "(none)" for s, e in zip(starts, ends)]
  )
  with atomic_open(out) as f:
    writer = csv.writer(f)
    writer.writerow(["id", "label"])
    writer.writerows(zip(range(count), labels.tolist()))
  return labels


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Too many command-line arguments: {argv[1:]}")
  environment.set_up_process()
  with exit_on_user_error():
    if FLAGS.labels_out and not FLAGS.label_attribute:
      raise InputError("--labels_out needs --label_attribute")
    ids, embeddings = export(
      FLAGS.workdir,
      FLAGS.strategy,
      FLAGS.version,
      FLAGS.out,
      nodes=FLAGS.nodes,
      from_version=FLAGS.from_version,
      seed=FLAGS.seed,
    )
    if FLAGS.labels_out:
      write_labels(
        FLAGS.workdir,
        FLAGS.nodes,
        FLAGS.label_attribute,
        FLAGS.data_dir,
        FLAGS.labels_out,
        len(ids),
      )
  print(
    f"wrote {len(ids)} {FLAGS.nodes} embeddings of {embeddings.shape[1]} dims to {FLAGS.out}"
  )


if __name__ == "__main__":
  define_flags()
  app.run(main)
