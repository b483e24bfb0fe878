"""Who does what when a job runs as several JAX processes (several hosts).

Under ``jax.distributed`` every process runs the same binary. Training and
the Orbax saves of versions and progress are collective: every process takes
part. Everything else that touches the workdir is done by process 0 alone:
the workdir lock, ``config.json``, the metric writer's files, results, tables
and plots, and the consumer stage of the main job. A single process is
process 0, so one-process runs take the same path.

:func:`on_primary` runs such a step on process 0 and tells every process
whether it failed, so a refused workdir stops all processes with one
``error:`` line each rather than leaving the others waiting in a collective.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

from bcjax.errors import InputError

T = TypeVar("T")


def is_primary() -> bool:
  """Whether this is process 0, the one that writes the workdir's files."""
  return jax.process_index() == 0


def on_primary(step: Callable[[], T]) -> T | None:
  """Runs ``step`` on process 0; every process raises if it raised.

  Args:
    step: what process 0 alone does (take the lock, check the workdir...).

  Returns:
    ``step()``'s value on process 0, None on the others.

  Raises:
    InputError: ``step``'s own on process 0; on the others, one that points
      to process 0's log.
  """
  error, value = None, None
  if is_primary():
    try:
      value = step()
    except InputError as e:
      error = e
  if jax.process_count() > 1:
    # Every process must reach this broadcast, or the others wait forever.
    failed = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
    if int(failed) and error is None:
      raise InputError(
        "process 0 refused the job (its log has the reason); this process stops too"
      )
  if error is not None:
    raise error
  return value


@contextlib.contextmanager
def primary_context(
  enter: Callable[[contextlib.ExitStack], T],
) -> Iterator[T | None]:
  """Contexts (lock, writer) that process 0 alone holds for the job.

  Args:
    enter: enters process 0's contexts on the given stack and returns what
      the job needs of them (e.g. the metric writer); it may raise
      :class:`InputError` (a workdir in use, another config).

  Yields:
    ``enter``'s value on process 0, None on the others.
  """
  with contextlib.ExitStack() as stack:
    yield on_primary(lambda: enter(stack))
