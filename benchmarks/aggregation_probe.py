r"""Where the deterministic training step's time goes, layout by layout.

A probe for choosing the GPU's deterministic aggregation: it times one
relation's sum (forward, and forward with its gradient) in each candidate
layout on the same graph, checks each candidate for run-to-run bit
identity, times the BPR batch's row lookups' gradient each way (autodiff's
scatter-add, the segmented scan, the kernel), times Recall@K at several
chunk sizes, times the whole training step in each library layout and the
fastest candidate, and writes a profiler trace of the fastest deterministic
step. It times the library's own layouts and their knobs; the candidates
beyond them that earlier probes timed lost and are gone (see :func:`_build`).

  python -m benchmarks.aggregation_probe --size=musical-instruments \
      --dim=512 --layers=3 --trace_dir=/tmp/trace
"""

from __future__ import annotations

import functools
import glob
import gzip
import json
import os
import re
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from bcjax.data.datasets import load_dataset
from bcjax.data.split import split_version
from bcjax.evaluation.recall import RecallEvaluator
from bcjax.models import aggregation
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.mosaic_kernel import MosaicSegmentLists
from bcjax.models.segment_kernel import SegmentLists
from benchmarks import workloads
from benchmarks.hardware import median_seconds
from benchmarks.workloads import SIZES

flags.DEFINE_enum("size", "musical-instruments", list(SIZES), "Synthetic size.")
flags.DEFINE_integer("users", 0, "Users (0: the size's).")
flags.DEFINE_integer("items", 0, "Items (0: the size's).")
flags.DEFINE_integer("interactions", 0, "Interactions (0: the size's).")
flags.DEFINE_integer("dim", 512, "Embedding dimension.")
flags.DEFINE_integer("layers", 3, "SAGE layers.")
flags.DEFINE_integer("repeats", 20, "Timed calls per candidate.")
flags.DEFINE_integer("timed_steps", 10, "Steps per timed call of the step.")
flags.DEFINE_list(
  "candidates",
  [
    "scatter",
    "sorted-g2",
    "sorted-g1.5",
    "pallas",
    "pallas-w8-b512-p64-n4",
    "pallas-w4-b512-p32-n4",
    "pallas-w2-b512-p32-n4",
    "pallas-w4-b512-p64-n2",
    "pallas-w4-b256-p64-n2",
    "mosaic",
    "mosaic-w8-b512-p64",
    "mosaic-w4-b256-p32",
  ],
  "Layouts of one relation to time (scatter; sorted-gG, the degree buckets "
  "of growth G; pallas, the library's kernel, or "
  "pallas-wW-bB-pP-nN[-sS]: W edges per trip, B columns, P edges per "
  "program, N warps, S pipeline stages; mosaic, its Mosaic GPU port, or "
  "mosaic-wW-bB-pP: W rows loaded per trip, B columns, P edges per "
  "kernel instance).",
)
flags.DEFINE_bool("take_rows", True, "Time the row lookups' gradients.")
flags.DEFINE_list(
  "recall_chunks",
  ["512", "2048", "4096", "0"],
  "Users per chunk of the Recall@K evaluation to time (0: all in one).",
)
flags.DEFINE_bool("steps", True, "Time the step with each part swapped.")
flags.DEFINE_string("trace_dir", "", "Write a profiler trace of the step here.")
flags.DEFINE_string("json", "", "Write the numbers here.")
FLAGS = flags.FLAGS

# The library's own sorted layout, as a candidate name.
_LIBRARY = f"sorted-g{aggregation.DEFAULT_GROWTH:g}"


def _build(kind, senders, receivers, ns, nr):
  """A layout of the relation ``senders -> receivers``: one of the library's.

  ``scatter``: its scatter-add; ``sorted-gG``: its degree buckets with growth
  ``G``; ``pallas[-...]`` and ``mosaic[-...]``: its kernels with their knobs.

  The candidates beyond the library's that earlier probes timed are gone,
  none having beaten the library's layout (``benchmarks/results/HISTORY.md``,
  one relation's sum forward and transpose, Musical-Instruments size, dim
  512): on an H200 its degree buckets gathered from a zero-row padded input
  took 0.586 ms at growth 2 (``h200_a0b99bf``: 0.666 ms at growth 1.5),
  the fastest deterministic sum measured there; each bucket gathered as one
  flat list took 0.633 ms (growth 1.5, not measured at 2), the former masked
  "fill" gather 0.896 ms; bucket sums written into place 0.720 ms against
  the library's 0.644 ms (``h200_f638f25``); column-major buckets 1.15-1.54
  ms (``h200_b74c0f9``). On an H100 (``h100_probe``): one Pallas
  gather-and-add kernel per bucket 1.46 ms, cuSPARSE's CSR product 0.63 ms
  (not bit-identical), a fan-in tree 0.86-1.38 ms (its step did not compile
  in 150 s); for the lookups' gradient, an equal-row mask matmul 0.58-0.60
  ms against the library's segmented scan's 0.16-0.22 ms.
  """
  if kind == "scatter":
    return aggregation.EdgeList.build(senders, receivers, nr, 0)
  if kind == "pallas":
    return SegmentLists.build(senders, receivers, nr)
  if kind.startswith("pallas-"):
    return _kernel_lists(kind, senders, receivers, nr)
  if kind == "mosaic":
    return MosaicSegmentLists.build(senders, receivers, nr)
  if kind.startswith("mosaic-"):
    match = re.fullmatch(r"mosaic-w(\d+)-b(\d+)-p(\d+)", kind)
    if not match:
      raise ValueError(f"unknown candidate {kind!r}")
    width, block, piece = map(int, match.groups())
    return MosaicSegmentLists.build(
      senders, receivers, nr, piece=piece, width=width, block=block
    )
  match = re.fullmatch(r"sorted-g([\d.]+)", kind)
  if not match:
    raise ValueError(f"unknown candidate {kind!r}")
  return aggregation.NeighbourLists.build(
    senders, receivers, ns, nr, float(match.group(1))
  )


def _kernel_lists(kind, senders, receivers, num_receivers):
  """The library's kernel layout with each of its knobs chosen by ``kind``."""
  match = re.fullmatch(r"pallas-w(\d+)-b(\d+)-p(\d+)-n(\d+)(?:-s(\d+))?", kind)
  if not match:
    raise ValueError(f"unknown candidate {kind!r}")
  width, block, piece, warps = map(int, match.groups()[:4])
  return SegmentLists.build(
    senders,
    receivers,
    num_receivers,
    piece=piece,
    width=width,
    block=block,
    warps=warps,
    stages=int(match.group(5) or 1),
  )


def _relayout(graph, kind):
  """``graph`` with every relation rebuilt in the candidate layout ``kind``."""

  def rebuild(relation):
    if not isinstance(relation, aggregation.Relation):
      return relation
    return aggregation.Relation(
      _rebuild(relation.forward, relation.transpose.num_receivers, kind),
      _rebuild(relation.transpose, relation.forward.num_receivers, kind),
    )

  return jax.tree.map(
    rebuild, graph, is_leaf=lambda x: isinstance(x, aggregation.Relation)
  )


def _rebuild(lists, num_senders, kind):
  """The edges of sorted ``lists`` laid out again as ``kind``."""
  position = np.asarray(lists.position)
  receiver_at = np.zeros(position.max() + 1, np.int64)
  receiver_at[position] = np.arange(len(position))
  senders, receivers, start = [], [], 0
  for rows in lists.buckets:
    rows = np.asarray(rows)
    real = rows < num_senders
    senders.append(rows[real])
    receivers.append(
      np.broadcast_to(receiver_at[start : start + len(rows), None], rows.shape)[real]
    )
    start += len(rows)
  return _build(
    kind,
    np.concatenate(senders),
    np.concatenate(receivers),
    num_senders,
    lists.num_receivers,
  )


def _time(fn, *args):
  jax.block_until_ready(fn(*args))
  return median_seconds(lambda: fn(*args), repeats=FLAGS.repeats)


def _bit_identical(fn, *args, runs=3):
  outs = [np.asarray(fn(*args)).tobytes() for _ in range(runs)]
  return all(o == outs[0] for o in outs)


def probe_layouts(split, dim):
  """Times one relation (users <- items and back) in each candidate layout."""
  user = split.train_user.astype(np.int64)
  item = split.train_item.astype(np.int64)
  nu, ni = split.num_users, split.num_items
  x_items = jax.random.normal(jax.random.key(0), (ni, dim))
  w = jax.random.normal(jax.random.key(1), (nu, dim))
  reference = None
  rows = {}
  for kind in FLAGS.candidates:
    try:
      fwd_l = _build(kind, item, user, ni, nu)
      bwd_l = _build(kind, user, item, nu, ni)
      fwd = jax.jit(lambda x, fwd_l=fwd_l: fwd_l.sum(x))

      # The gradient the library's custom VJP takes: the transposed sum.
      @jax.jit
      def both(x, w, fwd_l=fwd_l, bwd_l=bwd_l):
        return bwd_l.sum(fwd_l.sum(x) * w)

      out = np.asarray(fwd(x_items))
      if reference is None:
        reference = out
      err = float(np.max(np.abs(out - reference)))
      rows[kind] = dict(
        forward_ms=1e3 * _time(fwd, x_items),
        forward_and_transpose_ms=1e3 * _time(both, x_items, w),
        bit_identical=_bit_identical(both, x_items, w),
        max_abs_diff_vs_scatter=err,
      )
    except Exception as e:  # noqa: BLE001 (a candidate that fails is a result)
      rows[kind] = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
    print(kind, json.dumps(rows[kind]), flush=True)
  return rows


def probe_take_rows(split, dim, batch=2048):
  nu, ni = split.num_users, split.num_items
  users = jax.random.normal(jax.random.key(2), (nu, dim))
  items = jax.random.normal(jax.random.key(3), (ni, dim))
  key = jax.random.key(4)
  u = jax.random.randint(jax.random.fold_in(key, 0), (batch,), 0, nu)
  p = jax.random.randint(jax.random.fold_in(key, 1), (batch,), 0, ni)
  n = jax.random.randint(jax.random.fold_in(key, 2), (batch,), 0, ni)
  rows = {}
  modes = (
    (
      "autodiff scatter-add",
      functools.partial(aggregation.take_rows, layout="scatter"),
    ),
    (
      "sorted segmented scan",
      functools.partial(aggregation.take_rows, layout="sorted"),
    ),
    (
      "pallas segment kernel",
      functools.partial(aggregation.take_rows, layout="pallas"),
    ),
    (
      "mosaic segment kernel",
      functools.partial(aggregation.take_rows, layout="mosaic"),
    ),
  )
  if "mosaic" not in FLAGS.candidates:  # off a GPU its interpreter is slow
    modes = tuple(m for m in modes if not m[0].startswith("mosaic"))
  reference = None
  for mode, take in modes:

    @jax.jit
    def grads(users, items, take=take):  # noqa: B023
      def loss(users, items):
        return jnp.sum(take(users, u) * (take(items, p) - take(items, n)))

      return jax.grad(loss, argnums=(0, 1))(users, items)

    if reference is None:
      reference = grads(users, items)
    diff = jax.tree.map(
      lambda a, b: float(jnp.max(jnp.abs(a - b))), grads(users, items), reference
    )
    rows[mode] = dict(
      grad_ms=1e3 * _time(grads, users, items),
      max_abs_diff_vs_autodiff=max(jax.tree.leaves(diff)),
      bit_identical=_bit_identical(lambda *a: grads(*a)[1], users, items),
    )
    print(mode, json.dumps(rows[mode]), flush=True)
  return rows


def probe_recall(split, dim):
  """Times Recall@K over every evaluation user at each chunk size."""
  users = jax.random.normal(jax.random.key(5), (split.num_users, dim))
  items = jax.random.normal(jax.random.key(6), (split.num_items, dim))
  rows, reference = {}, None
  for chunk in map(int, FLAGS.recall_chunks):
    evaluator = RecallEvaluator(split, chunk_size=chunk or split.num_users)
    recalls = evaluator(users, items)
    reference = reference or recalls
    rows[str(chunk)] = dict(
      ms=1e3
      * median_seconds(lambda e=evaluator: e(users, items), repeats=FLAGS.repeats),
      same_recalls=recalls == reference,
    )
    print(f"recall chunk {chunk}", json.dumps(rows[str(chunk)]), flush=True)
  return rows


def probe_steps(split, dim, layers, layouts):
  """The whole step: atomic, the library's layouts, the best candidate.

  The atomic step (scatter-add sums and row lookups) is the fastest, and
  the one the deterministic target is measured against; the others use
  the deterministic gradients of the row lookups (the kernels' for the
  ``pallas`` and ``mosaic`` kinds, the segmented scan's for the rest).
  """
  library = ("scatter", _LIBRARY, "pallas")
  if "mosaic" in FLAGS.candidates:  # off a GPU its interpreter is slow
    library += ("mosaic",)
  deterministic = {
    k: v["forward_and_transpose_ms"]
    for k, v in layouts.items()
    if v.get("bit_identical") and k not in library
  }
  kinds = list(library)
  if deterministic:
    kinds.append(min(deterministic, key=deterministic.get))
  rows = {}
  for kind in kinds:
    name = f"step {kind}"
    try:
      graph = _step_graph(split, kind)
      timing = workloads.time_training(
        graph,
        split,
        dim,
        layers,
        batch_size=2048,
        timed_steps=FLAGS.timed_steps,
        repeats=5,
        max_epoch_steps=0,
        check_determinism=graph.deterministic,
      )
      rows[name] = dict(step_ms=1e3 * timing.step_s, bit_identical=timing.bit_identical)
    except Exception as e:  # noqa: BLE001
      rows[name] = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
    print(name, json.dumps(rows[name]), flush=True)
  fastest = {k: rows[f"step {k}"].get("step_ms", np.inf) for k in kinds[1:]}
  return rows, min(fastest, key=fastest.get)


def _step_graph(split, kind):
  """The step's graph with every relation as ``kind``.

  Its ``layout`` names how the row lookups' gradients are summed: the
  kernels' for ``pallas`` and ``mosaic`` kinds, the segmented scan's for
  the other deterministic ones.
  """
  if kind in ("scatter", "pallas", "mosaic"):
    return BipartiteGraph.from_split(split, kind, 0)
  graph = _relayout(BipartiteGraph.from_split(split, "sorted", 0), kind)
  kernel = kind.split("-")[0]
  return graph.replace(layout=kernel if kernel in ("pallas", "mosaic") else "sorted")


def trace_step(split, dim, layers, trace_dir, kind):
  """A profiler trace of the step in layout ``kind``, and its kernel totals."""
  graph = _step_graph(split, kind)
  shutil.rmtree(trace_dir, ignore_errors=True)
  timing_args = dict(
    batch_size=2048,
    timed_steps=FLAGS.timed_steps,
    repeats=2,
    max_epoch_steps=0,
    check_determinism=False,
  )
  workloads.time_training(graph, split, dim, layers, **timing_args)  # compile
  options = jax.profiler.ProfileOptions()
  options.python_tracer_level = 0  # device kernels are what is wanted
  options.host_tracer_level = 1
  with jax.profiler.trace(
    trace_dir, create_perfetto_trace=True, profiler_options=options
  ):
    workloads.time_training(graph, split, dim, layers, **timing_args)
  found = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
  if not found:
    return {"error": f"no perfetto trace under {trace_dir}"}
  with gzip.open(found[0]) as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  names = {
    e.get("pid"): e.get("args", {}).get("name", "")
    for e in events
    if e.get("ph") == "M" and e.get("name") == "process_name"
  }
  device = {p for p, n in names.items() if "GPU" in n or "/device:" in n}
  print("trace processes:", names, flush=True)
  totals = {}
  for e in events:
    if e.get("ph") == "X" and "dur" in e and (not device or e.get("pid") in device):
      name = e.get("name", "?")
      totals.setdefault(name, [0.0, 0])
      totals[name][0] += e["dur"]
      totals[name][1] += 1
  top = sorted(totals.items(), key=lambda kv: -kv[1][0])[:60]
  for name, (us, count) in top:
    print(f"{us / 1e3:10.2f} ms {count:7d}  {name[:110]}")
  return {"trace": found[0], "top": [(n, us, c) for n, (us, c) in top]}


def main(argv):
  del argv
  users, items, interactions = SIZES[FLAGS.size]
  users, items = FLAGS.users or users, FLAGS.items or items
  interactions = FLAGS.interactions or interactions
  tick = time.perf_counter()
  graph = load_dataset(
    "synthetic",
    None,
    {"num_users": users, "num_items": items, "num_interactions": interactions},
  )
  split = split_version(graph, 4)
  print(
    f"{jax.devices()} {split.num_users} users {split.num_items} items "
    f"{len(split.train_user)} edges, dim {FLAGS.dim}",
    flush=True,
  )
  out = {"device": str(jax.devices()[0]), "jax": jax.__version__}
  out["layouts"] = probe_layouts(split, FLAGS.dim)
  if FLAGS.take_rows:
    out["take_rows"] = probe_take_rows(split, FLAGS.dim)
  if FLAGS.recall_chunks:
    out["recall"] = probe_recall(split, FLAGS.dim)
  traced = _LIBRARY
  if FLAGS.steps:
    out["steps"], traced = probe_steps(split, FLAGS.dim, FLAGS.layers, out["layouts"])
  if FLAGS.trace_dir:
    out["trace"] = trace_step(split, FLAGS.dim, FLAGS.layers, FLAGS.trace_dir, traced)
  out["seconds"] = time.perf_counter() - tick
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
  app.run(main)
