"""The rebasis side of ``benchmarks.align_peers``, run in the peers' venv.

rebasis 0.1.0 needs Python >= 3.12 and brings its own NumPy, so it runs in a
venv of its own (``pip install '.[peers]'`` there) without JAX or bcjax; this
worker imports NumPy and rebasis (and torch, through rebasis, where it is
installed). It reads one ``.npz`` of a split (``new_fit``, ``old_fit``,
``new_val``, ``new_train``, ``old_train``, ``new_test``), fits every rebasis
candidate (``rebasis.core.selection.CANDIDATE_METHODS``, all six;
``residual_mlp`` needs torch and is skipped without it, as rebasis's own
``auto`` skips it) on the fit rows (``fit_candidates``, L2-normalised as its
default) and again on all train rows (fit and validation, as bcjax's auto
refits its choice), and writes, for each, the bridged validation rows, the
bridged test rows of both fits and its parameter count, and the methods it
skipped. The caller scores the candidates on its own validation rows and
picks by rebasis's rule.

Usage: ``python -m benchmarks.rebasis_worker IN.npz OUT.npz``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys

import numpy as np
import rebasis
from rebasis.core.base import l2_normalize
from rebasis.core.selection import CANDIDATE_METHODS, fit_candidates


def main(source: str, target: str) -> None:
  with np.load(source) as f:
    split = {k: f[k].astype(np.float32) for k in f.files}
  # CANDIDATE_METHODS's order (cheapest first); rebasis skips what it cannot
  # fit (residual_mlp without torch) and so does this worker.
  candidates = fit_candidates(split["new_fit"], split["old_fit"])
  refits = fit_candidates(split["new_train"], split["old_train"])
  if [c.method for c in candidates] != [c.method for c in refits]:
    raise RuntimeError("the fit and the refit fitted different candidates")
  out, meta = {}, []
  for i, (c, refit) in enumerate(zip(candidates, refits, strict=True)):
    # fit_candidates normalised the fit rows; inputs are normalised alike.
    out[f"val_{i}"] = c.adapter.apply(l2_normalize(split["new_val"]))
    out[f"test_{i}"] = c.adapter.apply(l2_normalize(split["new_test"]))
    out[f"refit_test_{i}"] = refit.adapter.apply(l2_normalize(split["new_test"]))
    meta.append(
      {"method": c.method, "name": c.name, "n_params": int(c.adapter.n_params())}
    )
  skipped = [m for m in CANDIDATE_METHODS if m not in {x["method"] for x in meta}]
  info = {
    "candidates": meta,
    "skipped": skipped,
    "torch": importlib.util.find_spec("torch") is not None,
    "version": rebasis.__version__,
  }
  buffer = io.BytesIO()
  np.savez(buffer, meta=np.asarray(json.dumps(info)), **out)
  with open(target, "wb") as f:
    f.write(buffer.getvalue())


if __name__ == "__main__":
  main(*sys.argv[1:])
