r"""How fast ``bcjax.align`` fits a closed-form bridge, against NumPy's lstsq.

The target (issue 25): a least-squares bridge of 1M x 512 -> 512 rows in at
most 30 s on a 2-core CPU. ``align.fit`` reads the rows once in chunks (one
float32 GEMM ``[X, Y]^T X`` per chunk, summed in float64) and solves a
512 x 512 system, so it costs ``4 n d^2`` flops: the run measures this
machine's GEMM rate on one chunk first and prints the floor that rate sets.
``numpy.linalg.lstsq`` (LAPACK ``gelsd``: a QR of all rows, then an SVD) is
the reference, in the same run, on the first ``--lstsq_rows`` rows, where
``align.fit`` is timed and compared again. Also timed: serving every row
through the bridge, and with ``--more`` the centred fit (one more pass, for
the means) and the orthogonal fit (same pass, an SVD).

Rows are synthetic and matched by a known map (a scaled permutation plus
noise), so the recovered matrix is checked too.

Usage::

  python -m benchmarks.align_speed --rows=1000000 --dim=512 \
      --json=benchmarks/results/cpu2_align_1m_512.json
"""

from __future__ import annotations

import json
import os
import platform
import time

import jax
import numpy as np
from absl import app, flags

from bcjax import align

flags.DEFINE_integer("rows", 1_000_000, "Matched rows.")
flags.DEFINE_integer("dim", 512, "Width of both versions.")
flags.DEFINE_float("noise", 0.1, "Standard deviation of the noise on the old rows.")
flags.DEFINE_integer(
  "lstsq_rows",
  1 << 16,
  "Time numpy.linalg.lstsq and align.fit on this many of the rows (0: skip; "
  "lstsq on all 1M rows takes over ten minutes on 2 cores).",
)
flags.DEFINE_bool("more", False, "Also time the centred and the orthogonal fit.")
flags.DEFINE_string("json", "", "Write the numbers to this file too.")
FLAGS = flags.FLAGS


def _timed(fn):
  tick = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - tick


def _rows(n, d, noise, seed=0):
  """``new`` and ``old = new[:, perm] * scale + noise``, float32.

  Drawing 10^9 normals takes longer than the fit on 2 cores, so one block
  of normals (and one of noise) is drawn and every chunk is a fresh row
  permutation of it with fresh column signs: rows differ, the planted map is
  the same.
  """
  rng = np.random.default_rng(seed)
  perm = rng.permutation(d)
  scale = rng.uniform(0.5, 2.0, size=d).astype(np.float32)
  block = min(n, 1 << 16)
  base = rng.standard_normal((block, d), np.float32)
  jitter = noise * rng.standard_normal((block, d), np.float32)
  new = np.empty((n, d), np.float32)
  old = np.empty((n, d), np.float32)
  for start in range(0, n, block):
    stop = min(start + block, n)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=d)
    new[start:stop] = base[rng.permutation(block)[: stop - start]] * signs
    old[start:stop] = new[start:stop, perm] * scale
    old[start:stop] += jitter[rng.permutation(block)[: stop - start]]
  planted = np.zeros((d, d), np.float32)
  planted[perm, np.arange(d)] = scale
  return new, old, planted


def main(argv):
  del argv
  n, d = FLAGS.rows, FLAGS.dim
  (new, old, planted), seconds = _timed(lambda: _rows(n, d, FLAGS.noise))
  print(f"rows: {n} x {d} -> {d} float32, generated in {seconds:.1f}s")
  out = {
    "rows": n,
    "dim": d,
    "cpus": os.cpu_count(),
    "machine": platform.processor() or platform.machine(),
    "jax": jax.__version__,
    "numpy": np.__version__,
    # Other jobs on a shared machine slow every number here alike.
    "load_average_before": os.getloadavg()[0],
  }

  chunk = new[: 1 << 16]
  both = np.concatenate([chunk, old[: 1 << 16]], axis=1)
  _, gemm_s = _timed(lambda: both.T @ chunk)
  out["gemm_gflops"] = 4 * len(chunk) * d * d / gemm_s / 1e9
  out["floor_s"] = 4 * n * d * d / (out["gemm_gflops"] * 1e9)
  print(
    f"GEMM [X, Y]^T X of one chunk: {out['gemm_gflops']:.0f} GFLOP/s; "
    f"the fit's floor at that rate: {out['floor_s']:.1f}s"
  )

  linear, out["linear_fit_s"] = _timed(
    lambda: align.fit(old=old, new=new, family="linear")
  )
  w = linear.params["kernel"]
  out["linear_max_error_vs_planted"] = float(np.abs(w - planted).max())
  print(f"align.fit linear:            {out['linear_fit_s']:6.1f}s")
  if FLAGS.more:
    _, out["linear_centred_fit_s"] = _timed(
      lambda: align.fit(old=old, new=new, family="linear", center=True)
    )
    print(f"align.fit linear, centred:   {out['linear_centred_fit_s']:6.1f}s")
    _, out["orthogonal_fit_s"] = _timed(
      lambda: align.fit(old=old, new=new, family="orthogonal")
    )
    print(f"align.fit orthogonal:        {out['orthogonal_fit_s']:6.1f}s")
  served, out["apply_s"] = _timed(lambda: linear.apply(new))
  print(f"bridge.apply of every row:   {out['apply_s']:6.1f}s")
  out["fit_mse"] = align.measures.mse(served, old)
  print(f"max |W - planted| = {out['linear_max_error_vs_planted']:.2e}")

  m = min(FLAGS.lstsq_rows, n)
  if m:
    out["lstsq_rows"] = m
    part, out["fit_on_lstsq_rows_s"] = _timed(
      lambda: align.fit(old=old[:m], new=new[:m], family="linear")
    )
    (reference, *_), out["lstsq_s"] = _timed(
      lambda: np.linalg.lstsq(new[:m], old[:m], rcond=None)
    )
    w = part.params["kernel"]
    out["max_abs_difference_vs_lstsq"] = float(np.abs(w - reference).max())
    out["mse_align"] = align.measures.mse(part.apply(new[:m]), old[:m])
    out["mse_lstsq"] = align.measures.mse(new[:m] @ reference, old[:m])
    print(
      f"on {m} rows: align.fit {out['fit_on_lstsq_rows_s']:.1f}s, "
      f"numpy.linalg.lstsq {out['lstsq_s']:.1f}s "
      f"({out['lstsq_s'] / out['fit_on_lstsq_rows_s']:.0f}x); "
      f"max |W - W_lstsq| = {out['max_abs_difference_vs_lstsq']:.2e}; MSE "
      f"{out['mse_align']:.6f} (align) vs {out['mse_lstsq']:.6f} (lstsq)"
    )
  out["load_average_after"] = os.getloadavg()[0]
  print(
    f"load average (1 min) before / after: {out['load_average_before']:.1f} / "
    f"{out['load_average_after']:.1f} on {out['cpus']} cores"
  )
  if FLAGS.json:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
    with open(FLAGS.json, "w") as f:
      json.dump(out, f, indent=2)
      f.write("\n")


if __name__ == "__main__":
  app.run(main)
