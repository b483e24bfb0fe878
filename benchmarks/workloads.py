"""The timed workloads of the benchmark and the work each must do at least.

Each ``time_*`` function returns measured numbers together with the FLOPs
and the fewest bytes of the workload (a cost model written out below, not
XLA's own count, so the floor does not move when an optimisation changes
what XLA emits).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bcjax import registry
from bcjax.data.split import VersionSplit
from bcjax.evaluation.recall import RecallEvaluator
from bcjax.fitting.train import create_train_state, make_train_epoch, steps_per_epoch
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed, init_variables
from bcjax.storage.checkpoints import VersionStore
from benchmarks.hardware import median_seconds

F32 = 4


# Synthetic graphs of named sizes (users, items, interactions): the paper's
# Amazon sets and one for accelerators.
SIZES = {
  "musical-instruments": (27_500, 10_600, 231_000),
  "video-games": (55_000, 17_000, 497_000),
  "grocery": (127_000, 41_000, 1_100_000),
  "1m": (1_000_000, 100_000, 10_000_000),
}


@dataclasses.dataclass(frozen=True)
class Cost:
  """The work of a workload: ``flops`` and the fewest ``bytes`` it moves."""

  flops: float
  bytes: float

  def __add__(self, other: Cost) -> Cost:
    return Cost(self.flops + other.flops, self.bytes + other.bytes)

  def __mul__(self, times: float) -> Cost:
    return Cost(self.flops * times, self.bytes * times)


def _matmul(rows: int, d_in: int, d_out: int) -> Cost:
  return Cost(2.0 * rows * d_in * d_out, F32 * (rows * (d_in + d_out) + d_in * d_out))


def _aggregate(edges: int, sources: int, targets: int, dim: int) -> Cost:
  # Indices once, sources read once, targets written once.
  return Cost(float(edges * dim), 2 * 4 * edges + F32 * dim * (sources + targets))


def train_step_cost(
  graph: BipartiteGraph, dim: int, num_layers: int, batch_size: int, num_params: int
) -> Cost:
  """FLOPs and fewest bytes of one full-graph PinSAGE step with Adam.

  Forward and backward of every layer (the backward is twice the forward's
  matmul work: input and weight gradients), with the first layer's shared
  user vector as the model computes it; batch norm as four passes over the
  features per layer; BPR on the batch; Adam reading parameter, gradient and
  both moments and writing three of them.
  """
  nu, ni = graph.num_users, graph.num_items
  n = nu + ni
  interactions = graph.num_interactions
  cost = Cost(0.0, 0.0)
  for layer in range(num_layers):
    if layer == 0:  # only the edges into users, one product per node set
      agg = _aggregate(interactions, ni, nu, dim)
      mm = _matmul(nu, dim, dim) + _matmul(ni, dim, dim)
    else:
      agg = _aggregate(2 * interactions, n, n, dim)
      mm = _matmul(n, dim, dim) * 2
    norm = Cost(10.0 * n * dim, 4 * F32 * n * dim)
    cost = cost + (agg + norm) * 2 + mm * 3
  bpr = Cost(3 * 2 * 3.0 * batch_size * dim, 3 * F32 * batch_size * dim)
  adam = Cost(12.0 * num_params, 7 * F32 * num_params)
  return cost + bpr + adam


@dataclasses.dataclass
class TrainTiming:
  """Step and epoch times (seconds), the step's cost, determinism."""

  steps_per_epoch: int
  step_s: float
  epoch_s: float
  epoch_measured: bool
  compile_s: float
  cost: Cost
  bit_identical: bool | None
  losses: list[float]


def time_training(
  graph: BipartiteGraph,
  split: VersionSplit,
  dim: int,
  num_layers: int,
  *,
  batch_size: int,
  timed_steps: int,
  repeats: int,
  max_epoch_steps: int,
  check_determinism: bool,
) -> TrainTiming:
  """Times training steps (a short jitted scan) and one whole epoch.

  Args:
    graph: the version's device graph.
    split: its split (for the number of steps of an epoch).
    dim: embedding dimension.
    num_layers: SAGE layers.
    batch_size: BPR triples per step.
    timed_steps: steps per timed scan; the step time is its median over
      ``repeats`` calls divided by this.
    repeats: timed calls.
    max_epoch_steps: time a whole epoch only up to this many steps; above
      it the epoch time is the step time times the steps (and marked so).
    check_determinism: run the short scan twice more from one state and key
      and compare the losses and the trained state bit for bit.
  """
  model = PinSAGE(dim, num_layers)
  variables = init_variables(model, graph, jax.random.key(0))
  num_params = sum(x.size for x in jax.tree.leaves(variables["params"]))

  def fresh_state():
    return create_train_state(
      model, jax.tree.map(jnp.copy, variables), optax.adam(1e-3)
    )

  steps = make_train_epoch(model, timed_steps, batch_size, 1e-2)
  state = fresh_state()
  base_key = jax.random.key(1)
  calls = iter(range(1 << 30))  # a fresh key for every timed call

  def run_steps():
    nonlocal state
    state, metrics = steps(
      state, graph, jax.random.fold_in(base_key, next(calls)), None
    )
    return metrics

  tick = time.perf_counter()
  jax.block_until_ready(run_steps())
  compile_s = time.perf_counter() - tick
  step_s = median_seconds(run_steps, repeats=repeats) / timed_steps

  num_steps = steps_per_epoch(split.num_train, batch_size)
  epoch_measured = num_steps <= max_epoch_steps
  if epoch_measured:
    epoch = make_train_epoch(model, num_steps, batch_size, 1e-2)
    state = fresh_state()

    def run_epoch():
      nonlocal state
      state, metrics = epoch(
        state, graph, jax.random.fold_in(base_key, next(calls)), None
      )
      return metrics

    epoch_s = median_seconds(run_epoch, repeats=max(1, repeats // 2), warmup=1)
  else:
    epoch_s = step_s * num_steps

  bit_identical, losses = None, []
  if check_determinism:
    runs = []
    for _ in range(2):
      trained, metrics = steps(fresh_state(), graph, jax.random.key(7), None)
      # Losses and every trained parameter and moment, bit for bit.
      runs.append(
        (
          np.asarray(metrics["loss"]).ravel().tolist(),
          [np.asarray(x).tobytes() for x in jax.tree.leaves(trained)],
        )
      )
    bit_identical, losses = runs[0] == runs[1], runs[0][0]
  return TrainTiming(
    steps_per_epoch=num_steps,
    step_s=step_s,
    epoch_s=epoch_s,
    epoch_measured=epoch_measured,
    compile_s=compile_s,
    cost=train_step_cost(graph, dim, num_layers, batch_size, num_params),
    bit_identical=bit_identical,
    losses=losses,
  )


@dataclasses.dataclass
class EvalTiming:
  """One Recall@K evaluation: seconds, users scored, compilations, cost."""

  seconds: float
  users: int
  compilations: int
  cost: Cost


def time_evaluation(
  graph: BipartiteGraph, split: VersionSplit, dim: int, num_layers: int, *, repeats
) -> EvalTiming:
  """Times Recall@K over every validation user (scores against all items)."""
  model = PinSAGE(dim, num_layers)
  variables = init_variables(model, graph, jax.random.key(0))
  user_emb, item_emb = embed(model, variables, graph)
  evaluator = RecallEvaluator(split)
  seconds = median_seconds(lambda: evaluator(user_emb, item_emb), repeats=repeats)
  scored = evaluator.num_eval_users
  cost = Cost(
    2.0 * scored * split.num_items * dim,
    F32 * dim * (scored + split.num_items),
  )
  return EvalTiming(seconds, scored, evaluator.compilations(), cost)


@dataclasses.dataclass
class ServeTiming:
  """Seconds to serve ``rows`` (device) and ``host_rows`` (host), and costs."""

  rows: int
  host_rows: int
  collapsed_s: float
  stepwise_s: float
  host_s: float
  collapsed_cost: Cost
  stepwise_cost: Cost
  max_abs_diff: float


def time_serving(
  rows: int, dim: int, num_versions: int, *, repeats: int, host_rows: int
) -> ServeTiming:
  """Times serving version ``K`` embeddings as version 0 through the registry.

  A real store is written (linear ``B_k`` of ``dim -> dim``, Orbax
  checkpoints) and opened with :func:`bcjax.registry.open`; then ``rows``
  device-resident rows go through the collapsed chain and through the chain
  applied transform by transform, and ``host_rows`` host rows through
  ``registry.transform`` (input checks and transfers included; at most
  ``rows``).
  """
  key = jax.random.key(3)
  with tempfile.TemporaryDirectory() as workdir:
    path = os.path.join(workdir, "store")
    with VersionStore(path) as store:
      for k in range(num_versions):
        kernel = jax.random.normal(jax.random.fold_in(key, k), (dim, dim)) / dim**0.5
        store.save(
          k,
          model={"params": {}},
          transform={"kernel": kernel} if k else None,
          embeddings=(jnp.zeros((1, dim)), jnp.zeros((1, dim))),
          metadata={
            "dim": dim,
            "transform": {"name": "linear", "d_in": dim, "d_out": dim, "hidden": 0},
          },
        )
    reg = registry.open(path)
    latest = num_versions - 1
    collapsed = reg.chain(latest, 0)
    stepwise = reg.chain(latest, 0, collapse=False)
    z = jax.random.normal(jax.random.fold_in(key, 99), (rows, dim))
    collapsed_s = median_seconds(lambda: collapsed.on_device(z), repeats=repeats)
    stepwise_s = median_seconds(lambda: stepwise.on_device(z), repeats=repeats)
    sample = z[: min(rows, 4096)]
    diff = float(
      jnp.max(jnp.abs(collapsed.on_device(sample) - stepwise.on_device(sample)))
    )
    host_rows = min(host_rows, rows)
    host = np.asarray(z[:host_rows])
    to_v0 = reg.transform(latest, 0)
    host_s = median_seconds(lambda: to_v0(host), repeats=repeats)
    reg.close()
  moved = F32 * rows * 2 * dim  # read version K, write version 0
  return ServeTiming(
    rows=rows,
    host_rows=host_rows,
    collapsed_s=collapsed_s,
    stepwise_s=stepwise_s,
    host_s=host_s,
    collapsed_cost=Cost(2.0 * rows * dim * dim, moved),
    stepwise_cost=Cost(2.0 * rows * dim * dim * latest, moved),
    max_abs_diff=diff,
  )
