"""Embedding seeds in lockstep: groups of seeds whose fits train as one program.

With ``config.seed_batch = S > 1`` the runner runs the embedding seeds of a
job in groups of S (seeds ``0..S-1``, then ``S..2S-1``, ...; the last group
may be smaller). The seeds of a group run as today, each its own
:class:`~bcjax.jobs.runner.Runner` in its own folder, but in lockstep: each
in a thread of its own, and only one of them at a time (a baton passed from
thread to thread), so the workdir, the metric writer and Orbax see the
seeds' saves one after the other as in a sequential run. A method's fits
(:meth:`bcjax.methods.Context.fit` and :meth:`~bcjax.methods.Context.fit_posthoc`)
and a task's consumers (:func:`~bcjax.fitting.consumers.fit_consumer`) do
not run in the seed's thread: they are submitted here and the thread passes
the baton on. When no thread of the group can run (every live one waits on
a fit; the others are done), the pending fits are grouped by what
:func:`~bcjax.fitting.version_fit.fit_version_seeds`,
:func:`~bcjax.fitting.posthoc.fit_posthoc_seeds` and
:func:`~bcjax.fitting.consumers.fit_consumers` need shared (the model, its
settings, the split and graph, the alignment; the post-hoc transform, loss
and settings; the task, consumer settings and key) and each group is fitted
as one program by those drivers (a group of one is a seed alone); then each
thread gets its result. A seed that restores a saved version never submits it,
which is why the rule is "every live thread waits" and not a fixed count: a
rerun mixes seeds that restore with seeds that train without deadlock. Who runs next is always the lowest seed that
can, so a batched run is deterministic.

Each seed's fit gets the key, progress, report and label its context gives
it, so it is the seed's fit alone up to rounding (see
:mod:`bcjax.fitting.seed_axis`). An error in any thread (or in a fit) stops
the group: the threads waiting on fits unwind, and the job raises the
first error. Batched seeds train on one device: a mesh is refused.

Why threads. A method is a function of one seed's
:class:`~bcjax.methods.Context` (the extension interface: a user's method
never sees a seed axis), and its fits sit anywhere in its own control flow
(post-hoc after the embedding fit, warm starts from an earlier version, a
two-stage method's second fit). To fit S seeds' like calls as one program
without rewriting every method over a seed axis, each seed's method runs
until its next fit call, which is where its thread waits; the baton makes
the threads' host work sequential, so the threads add no concurrency, only
places to pause.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging

from bcjax.errors import InputError
from bcjax.fitting.consumers import fit_consumers
from bcjax.fitting.posthoc import fit_posthoc_seeds
from bcjax.fitting.version_fit import fit_version_seeds

# The arguments of fit_version and fit_posthoc that a batch shares (compared
# with ==, the split and graph by identity: the seeds' RunData share them);
# every other argument is the seed's own.
SHARED = {
  "version": ("model", "config", "alignment", "mesh"),
  "posthoc": ("transform", "config", "loss"),
  "consumer": ("config", "key"),
}
SAME_OBJECT = {
  "version": ("split", "graph"),
  "posthoc": ("graph",),
  "consumer": ("task",),
}
# The baton's holder when no seed thread can run: the coordinator, which fits.
_COORDINATOR = -1


class _Aborted(BaseException):
  """Unwinds a seed thread whose group stopped on another thread's error."""


def run_seeds(
  data, num_seeds: int, size: int, fn: Callable[[Any, SeedFits | None], Any]
) -> list:
  """``fn(seed_data, fits)`` of every embedding seed, in groups of ``size``.

  Args:
    data: seed 0's :class:`~bcjax.jobs.run_data.RunData`.
    num_seeds: the job's embedding seeds.
    size: seeds per group (1: one after the other, ``fits`` None).
    fn: one seed's job; its fits go through ``fits`` (None: fit directly).

  Returns:
    ``fn``'s results, seed by seed.

  Raises:
    InputError: ``size > 1`` on a mesh (several devices or processes).
  """
  seeds = [data if i == 0 else data.for_seed(i) for i in range(num_seeds)]
  if size == 1:
    return [fn(d, None) for d in seeds]
  if data.mesh is not None:
    raise InputError(
      f"config.seed_batch={size} trains a group of seeds on one device, but "
      "the job has a mesh of several devices; expected config.seed_batch=1 or "
      "config.num_devices=1"
    )
  out = []
  for start in range(0, num_seeds, size):
    group = seeds[start : start + size]
    out.extend(Lockstep(len(group)).run([lambda f, d=d: fn(d, f) for d in group]))
  return out


class SeedFits:
  """Seed ``i``'s way to its group's fits (what its :class:`Context` holds)."""

  def __init__(self, lockstep: Lockstep, i: int):
    self._lockstep = lockstep
    self.index = i

  def fit_version(self, **call) -> Any:
    """``fit_version(**call)``, fitted with the group's like fits."""
    return self._lockstep.submit(self.index, ("version", call))

  def fit_posthoc(self, **call) -> Any:
    """``fit_posthoc(**call)``, fitted with the group's like fits."""
    return self._lockstep.submit(self.index, ("posthoc", call))

  def fit_consumer(self, **call) -> Any:
    """``fit_consumer(**call)``, fitted with the group's like fits."""
    return self._lockstep.submit(self.index, ("consumer", call))


class Lockstep:
  """A group of seed threads that run one at a time and pool their fits.

  Args:
    n: the seeds of the group.
  """

  def __init__(self, n: int):
    self.n = n
    self._cond = threading.Condition()
    self._turn = _COORDINATOR
    self._state = ["ready"] * n  # ready | waiting | done
    self._requests: dict[int, tuple[str, dict]] = {}
    self._results: dict[int, Any] = {}
    self._errors: list[BaseException] = []
    # The sizes of the fit groups run, in order (for the log line).
    self.groups: list[int] = []

  def run(self, fns: Sequence[Callable[[SeedFits], Any]]) -> list:
    """Runs ``fns[i](SeedFits(self, i))`` in lockstep; their results.

    Raises:
      The first error of any seed thread or fit.
    """
    out = [None] * self.n
    threads = [
      threading.Thread(
        target=self._thread, args=(i, fn, out), name=f"seed-{i}", daemon=True
      )
      for i, fn in enumerate(fns)
    ]
    for t in threads:
      t.start()
    with self._cond:
      self._pass_baton()
      while True:
        self._cond.wait_for(lambda: self._turn == _COORDINATOR)
        waiting = [i for i, s in enumerate(self._state) if s == "waiting"]
        if not waiting:
          break
        requests = [self._requests.pop(i) for i in waiting]
        if self._errors:
          results = [_Aborted()] * len(waiting)
        else:
          try:
            results = self._fit(requests)
          except Exception as e:  # noqa: BLE001 - re-raised by run
            self._errors.append(e)
            results = [_Aborted()] * len(waiting)
        for i, result in zip(waiting, results, strict=True):
          self._results[i] = result
          self._state[i] = "ready"
        self._pass_baton()
    for t in threads:
      t.join()
    if self._errors:
      raise self._errors[0]
    logging.info("seed batch of %d: fit groups of sizes %s", self.n, self.groups)
    return out

  def submit(self, i: int, request: tuple[str, dict]) -> Any:
    """Seed ``i``'s fit: waits for its group's fit; its result."""
    with self._cond:
      if self._errors:
        raise _Aborted  # the group is stopping: fit nothing more
      self._requests[i] = request
      self._state[i] = "waiting"
      self._pass_baton()
      self._cond.wait_for(lambda: self._turn == i)
      result = self._results.pop(i)
      if self._errors:
        # Another seed failed meanwhile: stop here, as a sequential job
        # would never have gone on.
        raise _Aborted
    if isinstance(result, BaseException):
      raise result
    return result

  def _thread(self, i, fn, out):
    with self._cond:
      self._cond.wait_for(lambda: self._turn == i)
    try:
      if not self._errors:
        out[i] = fn(SeedFits(self, i))
    except _Aborted:
      pass
    except BaseException as e:  # noqa: BLE001 - re-raised by run
      with self._cond:
        self._errors.append(e)
    finally:
      with self._cond:
        self._state[i] = "done"
        self._pass_baton()

  def _pass_baton(self):
    """To the lowest seed that can run, else the coordinator (lock held)."""
    ready = [i for i, s in enumerate(self._state) if s == "ready"]
    self._turn = ready[0] if ready else _COORDINATOR
    self._cond.notify_all()

  def _fit(self, requests: list[tuple[str, dict]]) -> list:
    """The requests' results, like ones fitted together."""
    results = [None] * len(requests)
    for members in _groups(requests):
      self.groups.append(len(members))
      kind = requests[members[0]][0]
      calls = [requests[m][1] for m in members]
      fitted = _DRIVERS[kind](calls)
      for m, result in zip(members, fitted, strict=True):
        results[m] = result
    return results


def _signature(kind: str, call: dict) -> tuple:
  """What requests must share to be fitted together."""
  given = tuple(sorted(name for name, value in call.items() if value is not None))
  return (
    kind,
    given,
    tuple(_comparable(call.get(name)) for name in SHARED[kind]),
    tuple(id(call.get(name)) for name in SAME_OBJECT[kind]),
  )


def _comparable(value):
  """``value`` as ``==`` can compare it: a PRNG key by its bits."""
  if isinstance(value, jax.Array) and jax.dtypes.issubdtype(
    value.dtype, jax.dtypes.prng_key
  ):
    return np.asarray(jax.random.key_data(value)).tobytes()
  return value


def _groups(requests: list[tuple[str, dict]]) -> list[list[int]]:
  """Indices of ``requests`` grouped by signature, in order of first request."""
  groups: list[tuple[tuple, list[int]]] = []
  for i, (kind, call) in enumerate(requests):
    signature = _signature(kind, call)
    for seen, members in groups:
      if seen == signature:
        members.append(i)
        break
    else:
      groups.append((signature, [i]))
  return [members for _, members in groups]


def _each(calls: list[dict], name: str) -> list | None:
  """Every call's ``name`` (None when the calls do not give it)."""
  return None if calls[0].get(name) is None else [c[name] for c in calls]


def _fit_versions(calls: list[dict]) -> list:
  first = calls[0]
  return fit_version_seeds(
    first["model"],
    first["split"],
    first["config"],
    [c["key"] for c in calls],
    variables=_each(calls, "variables"),
    transform_params=_each(calls, "transform_params"),
    alignment=first.get("alignment"),
    targets=_each(calls, "target"),
    progress=_each(calls, "progress"),
    labels=[c.get("label", "") for c in calls],
    reports=[c.get("report") for c in calls],
    graph=first.get("graph"),
    halves_seeds=[c.get("halves_seed", 0) for c in calls],
    mesh=first.get("mesh"),
  )


def _fit_posthoc(calls: list[dict]) -> list:
  first = calls[0]
  return fit_posthoc_seeds(
    first["transform"],
    [c["params"] for c in calls],
    [c["current"] for c in calls],
    [c["previous"] for c in calls],
    first["graph"],
    first["config"],
    [c["key"] for c in calls],
    loss=first["loss"],
    old_params=[c.get("old_params", ()) for c in calls],
    labels=[c.get("label", "") for c in calls],
  )


def _fit_consumers(calls: list[dict]) -> list:
  first = calls[0]
  return fit_consumers(
    first["task"],
    [c["train_tables"] for c in calls],
    [c["selection_tables"] for c in calls],
    first["config"],
    first["key"],
    reports=[c.get("report") for c in calls],
  )


_DRIVERS = {
  "version": _fit_versions,
  "posthoc": _fit_posthoc,
  "consumer": _fit_consumers,
}
