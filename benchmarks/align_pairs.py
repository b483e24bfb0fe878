"""The pairs of ``benchmarks.align_peers``: ``(old, new, note)`` item embeddings.

Each builder returns two embeddings of the same items, row by row, and a
one-line note saying how they were made (``--reuse`` checks the note, so a
pair made otherwise is not mixed with an earlier run's peers).

* :func:`rotation_pair`: synthetic, a rotation plus noise.
* :func:`ml100k_pair`: two truncated SVDs of MovieLens-100K.
* :func:`run_pair`: two versions of a bcjax run.
* :func:`digits_pairs`: scikit-learn's bundled digits (1,797 images of 8 x 8
  pixels), embedded by two model families each: PCA against Isomap, and an
  MLP classifier's hidden layer against RBF kernel PCA. Neither new model is
  a linear map of its old one; :func:`r_squared` says how far from one.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings

import numpy as np

from bcjax.align.protocol import match


def r_squared(new: np.ndarray, old: np.ndarray) -> float:
  """The closed-form R^2 of least squares ``old ~= new W + b`` over all rows.

  One minus the residual sum of squares over the total (each column about
  its mean), summed over ``old``'s columns: the share of the old vectors'
  variance the best affine map of the new ones explains, in-sample. 1 means
  the pair is an affine map of each other.
  """
  x = np.c_[np.asarray(new, np.float64), np.ones(len(new))]
  y = np.asarray(old, np.float64)
  w, *_ = np.linalg.lstsq(x, y, rcond=None)
  residual = ((y - x @ w) ** 2).sum()
  return float(1.0 - residual / ((y - y.mean(axis=0)) ** 2).sum())


def rotation_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
  """``(old, new, note)``: a random rotation plus noise of std 3 per dim."""
  rng = np.random.default_rng([seed, 25])
  labels = rng.integers(0, 40, size=4000)
  old = rng.normal(size=(40, 64))[labels] + rng.normal(size=(4000, 64))
  q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
  new = old @ q + 3.0 * rng.normal(size=old.shape)
  note = "4000 rows, 64 -> 64 dims, 40 clusters; new = old Q + N(0, 3^2) per dim"
  return old.astype(np.float32), new.astype(np.float32), note


def _svd_items(users, items, shape, rank) -> np.ndarray:
  """``(num_items, rank)`` item factors ``V sqrt(S)`` of a 0/1 user-item matrix."""
  matrix = np.zeros(shape)
  matrix[users, items] = 1.0
  _, s, vt = np.linalg.svd(matrix, full_matrices=False)
  return (vt[:rank].T * np.sqrt(s[:rank])).astype(np.float32)


def ml100k_pair(data_dir: str, new_rank=48) -> tuple[np.ndarray, np.ndarray, str]:
  """``(old, new, note)``: rank-32 SVD of the first half by time vs one of all."""
  table = np.loadtxt(os.path.join(data_dir, "ml-100k.inter"), skiprows=1)
  users, items, when = table[:, 0].astype(int), table[:, 1].astype(int), table[:, 3]
  shape = (users.max() + 1, items.max() + 1)
  early = when <= np.median(when)
  old = _svd_items(users[early], items[early], shape, 32)
  new = _svd_items(users, items, shape, new_rank)
  both = np.intersect1d(items[early], items)  # seen in both windows
  note = (
    f"{len(both)} items; old: rank-32 SVD of the first half of the interactions "
    f"by time, new: rank-{new_rank} SVD of all"
  )
  return old[both], new[both], note


def run_pair(workdir, strategy, versions) -> tuple[np.ndarray, np.ndarray, str]:
  """``(old, new, note)``: two versions' own item embeddings, via experiments.export."""
  from experiments import export

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for v in versions:
      path = os.path.join(tmp, f"v{v}.npz")
      export.export(workdir, strategy, int(v), path, from_version=int(v))
      with np.load(path) as f:
        rows.append((f["ids"], f["embeddings"]))
  (old_ids, old), (new_ids, new) = rows
  # A later version's graph has more nodes: the items both versions have.
  old_rows, new_rows = match(old_ids, new_ids)
  old, new = old[old_rows], new[new_rows]
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)["config"]
  note = (
    f"{len(old)} {config['dataset']} items; versions {versions[0]} "
    f"({old.shape[1]} dims) and {versions[1]} ({new.shape[1]} dims) of "
    f"{strategy} ({config['epochs']} epochs per version, layers "
    f"{config['layers']}), exported by experiments.export"
  )
  return old, new, note


def digits_pairs() -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
  """Two pairs of embeddings of scikit-learn's digits, by different families.

  The pixels are scaled to [0, 1]. ``digits-pca-isomap``: old = PCA to 32
  dims (a linear projection), new = Isomap to 32 dims (10 neighbours;
  geodesic distances on the neighbour graph). ``digits-mlp-kpca``: old = the
  64 ReLU units of an MLP classifier's hidden layer, trained on the digit
  labels (scikit-learn's ``MLPClassifier``, seed 0, 500 iterations), new =
  RBF kernel PCA to 48 dims (gamma 1). Every model is fitted on all 1,797
  images, as a team's two models would both have embedded every item.
  """
  from sklearn.datasets import load_digits
  from sklearn.decomposition import PCA, KernelPCA
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.manifold import Isomap
  from sklearn.neural_network import MLPClassifier

  x, y = load_digits(return_X_y=True)
  x = x / 16.0
  pca = PCA(32, random_state=0).fit_transform(x)
  isomap = Isomap(n_neighbors=10, n_components=32).fit_transform(x)
  with warnings.catch_warnings():
    # Stopping at max_iter is the model as fitted; it is not a failure here.
    warnings.simplefilter("ignore", ConvergenceWarning)
    mlp = MLPClassifier((64,), random_state=0, max_iter=500).fit(x, y)
  hidden = np.maximum(x @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)
  kernel = KernelPCA(48, kernel="rbf", gamma=1.0, random_state=0).fit_transform(x)
  n = len(x)
  return {
    "digits-pca-isomap": (
      pca.astype(np.float32),
      isomap.astype(np.float32),
      f"{n} scikit-learn digits; old: PCA to 32 dims, new: Isomap to 32 dims "
      "(10 neighbours)",
    ),
    "digits-mlp-kpca": (
      hidden.astype(np.float32),
      kernel.astype(np.float32),
      f"{n} scikit-learn digits; old: the 64-unit ReLU hidden layer of an MLP "
      "classifier of the labels, new: RBF kernel PCA to 48 dims (gamma 1)",
    ),
  }
