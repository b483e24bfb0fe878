r"""The CSV pair of the worked example in ``docs/align.md``, from MovieLens-100K.

Command::

  python -m benchmarks.align_example --data_dir=../shared/data/ml-100k \
      --out=/tmp/example

Writes two files of one row per item, as a team would export two models'
item embeddings:

* ``OUT/old.csv``: ``id,o0,...,o31``, the old model: a rank-32 truncated SVD
  (item factors ``V sqrt(S)``) of the 0/1 user-item matrix of the first half
  of the interactions by time, for the items seen in that half;
* ``OUT/new.csv``: ``id,n0,...,n47``, the new model: a rank-48 SVD of all the
  interactions, for the same items, in descending id order (two exports
  seldom agree on an order; the ids match them).

The ids are the dataset's item ids. The same pair of models as
``benchmarks.align_peers``' ``ml100k-svd`` pair.
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS


def svd_items(users, items, shape, rank: int) -> np.ndarray:
  """``(num_items, rank)`` item factors ``V sqrt(S)`` of a 0/1 user-item matrix."""
  matrix = np.zeros(shape)
  matrix[users, items] = 1.0
  _, s, vt = np.linalg.svd(matrix, full_matrices=False)
  return vt[:rank].T * np.sqrt(s[:rank])


def write_csv(path: str, ids, rows, prefix: str) -> None:
  header = ",".join(["id"] + [f"{prefix}{j}" for j in range(rows.shape[1])])
  body = [f"{i}," + ",".join(f"{v:.6g}" for v in row) for i, row in zip(ids, rows)]
  with open(path, "w") as f:
    f.write("\n".join([header, *body]) + "\n")


def write_pair(data_dir: str, out: str) -> tuple[int, int, int]:
  """Writes ``old.csv`` and ``new.csv`` into ``out``; returns rows and widths."""
  table = np.loadtxt(os.path.join(data_dir, "ml-100k.inter"), skiprows=1)
  users, items, when = table[:, 0].astype(int), table[:, 1].astype(int), table[:, 3]
  shape = (users.max() + 1, items.max() + 1)
  early = when <= np.median(when)
  old = svd_items(users[early], items[early], shape, 32)
  new = svd_items(users, items, shape, 48)
  ids = np.unique(items[early])  # seen in the first half (so in both)
  os.makedirs(out, exist_ok=True)
  write_csv(os.path.join(out, "old.csv"), ids, old[ids], "o")
  write_csv(os.path.join(out, "new.csv"), ids[::-1], new[ids[::-1]], "n")
  return len(ids), old.shape[1], new.shape[1]


def main(argv):
  del argv
  rows, d_old, d_new = write_pair(FLAGS.data_dir, FLAGS.out)
  print(f"{FLAGS.out}/old.csv: {rows} items x {d_old}; new.csv: {rows} x {d_new}")


if __name__ == "__main__":
  flags.DEFINE_string("data_dir", None, "ml-100k's files (ml-100k.inter).")
  flags.DEFINE_string("out", None, "Folder for old.csv and new.csv.")
  flags.mark_flags_as_required(["data_dir", "out"])
  app.run(main)
