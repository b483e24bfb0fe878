"""The vectormigrate side of ``benchmarks.align_peers``, run in the peers' venv.

vectormigrate 1.0.1 (``pip install '.[peers]'``) offers three compatibility
adapters, each fitted ``adapter.fit(source, target)`` from new vectors
(source) to old ones (target), as its README's example does:
``OrthogonalProcrustesAdapter`` (centred by default), ``LowRankAffineAdapter``
(a least-squares affine map, its weight truncated to ``rank`` when one is
given; full rank by default) and ``ResidualMLPAdapter`` (``x + tanh(x W1 +
b1) W2 + b2`` by full-batch gradient descent). All three raise
``ValueError("source and target vectors must have the same shape")`` when the
two widths differ: vectormigrate then refuses the pair, and this worker
records the message instead of a fit.

It has no rule that picks among them, and its adapters never normalise:
its ``EmbeddingABI`` declares unit-normalised vectors by default. So every
candidate in :data:`CANDIDATES` is fitted on the raw rows and on
L2-normalised rows (``+L2``), on the fit rows and again on all train rows
(as bcjax's auto refits its choice); the caller picks on its own validation
rows. For each candidate that fits, the worker writes the bridged validation
rows (``val_i``), the refit's bridged test rows (``refit_test_i``), its free
parameters and vectormigrate's own measure on the validation rows
(``mean_cosine_similarity``, what its ``benchmark_adapter_regression``
reports). A candidate whose output is not finite (its MLP's gradient descent
can diverge on raw rows) is listed in ``failed``.

Reads one ``.npz`` of a split (``new_fit``, ``old_fit``, ``new_val``,
``old_val``, ``new_train``, ``old_train``, ``new_test``, ``seed``); imports
NumPy and vectormigrate only.

Usage: ``python -m benchmarks.vectormigrate_worker IN.npz OUT.npz``.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import vectormigrate
from vectormigrate import (
  LowRankAffineAdapter,
  OrthogonalProcrustesAdapter,
  ResidualMLPAdapter,
)


def candidates(d: int, seed: int) -> list[tuple[str, object, int]]:
  """``(name, unfitted adapter, free parameters)`` for width ``d``.

  The classes' defaults, the README's examples (``rank=4``; an MLP of 50
  epochs at learning rate 0.01) and ranks ``d/4`` and ``d/2``. A centred
  Procrustes map counts its bias (``d``), as bcjax's auto counts one.
  """
  out = [
    ("procrustes_centered", OrthogonalProcrustesAdapter(), d * d + d),
    ("procrustes", OrthogonalProcrustesAdapter(center=False), d * d),
    ("affine", LowRankAffineAdapter(), d * d + d),
  ]
  for rank in sorted({4, d // 4, d // 2}):
    if 0 < rank < d:
      params = rank * (2 * d - rank) + d
      out.append((f"low_rank_affine_r{rank}", LowRankAffineAdapter(rank=rank), params))
  mlp_params = 2 * d * 16 + 16 + d
  out += [
    ("residual_mlp", ResidualMLPAdapter(seed=seed), mlp_params),
    (
      "residual_mlp_readme",
      ResidualMLPAdapter(hidden_dim=16, epochs=50, learning_rate=0.01, seed=seed),
      mlp_params,
    ),
  ]
  return out


def _l2(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def main(source: str, target: str) -> None:
  with np.load(source) as f:
    split = {k: f[k].astype(np.float64) for k in f.files if k != "seed"}
    seed = int(f["seed"])
  out, meta, refused, failed = {}, [], [], []
  for normalize in (False, True):
    prep = _l2 if normalize else (lambda x: x)
    s = {k: prep(v) for k, v in split.items()}
    d = s["new_fit"].shape[1]
    # Two unfitted copies of each: one for the fit rows, one for the refit.
    for (name, adapter, params), (_, refit, _) in zip(
      candidates(d, seed), candidates(d, seed), strict=True
    ):
      label = name + ("+L2" if normalize else "")
      try:
        adapter.fit(s["new_fit"], s["old_fit"])
        refit.fit(s["new_train"], s["old_train"])
      except np.linalg.LinAlgError as e:  # a ValueError, but no refusal
        failed.append({"name": label, "error": f"LinAlgError: {e}"})
        continue
      except ValueError as e:  # vectormigrate's refusal (different widths)
        refused.append({"name": label, "error": f"{type(e).__name__}: {e}"})
        continue
      val = adapter.transform(s["new_val"])
      test = refit.transform(s["new_test"])
      if not (np.isfinite(val).all() and np.isfinite(test).all()):
        failed.append({"name": label, "error": "non-finite output"})
        continue
      i = len(meta)
      out[f"val_{i}"] = val.astype(np.float32)
      out[f"refit_test_{i}"] = test.astype(np.float32)
      cosine = adapter.mean_cosine_similarity(s["new_val"], s["old_val"])
      meta.append(
        {
          "name": label,
          "normalize": normalize,
          "n_params": int(params),
          "validation_cosine": float(cosine),
        }
      )
  info = {
    "candidates": meta,
    "refused": refused,
    "failed": failed,
    "version": vectormigrate.__version__,
  }
  buffer = io.BytesIO()
  np.savez(buffer, meta=np.asarray(json.dumps(info)), **out)
  with open(target, "wb") as f:
    f.write(buffer.getvalue())


if __name__ == "__main__":
  main(*sys.argv[1:])
