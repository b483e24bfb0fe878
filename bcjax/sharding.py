"""Running past one device: a data-parallel mesh and row-sharded serving.

Training is data parallel: the BPR triples of every step are sharded over the
``"data"`` axis of a one-dimensional mesh, while parameters, optimiser state
and the graph are replicated. Every device runs the full-graph PinSAGE pass
(the model needs all nodes' embeddings) and the loss of its share of the
batch; XLA inserts the gradient all-reduce. Serving shards embedding rows
over the same axis, so a version's embeddings are transformed where they
lie.

The same code runs on one device (no mesh) and is tested on CPU with 8 CPU
devices: ``JAX_NUM_CPU_DEVICES=8`` in the environment, or
``jax.config.update("jax_num_cpu_devices", 8)`` before JAX's first use.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from bcjax.errors import InputError

AXIS = "data"


def initialize_distributed(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> None:
  """Starts JAX's multi-process runtime; call once per process, first thing.

  After it, ``jax.devices()`` lists every process's devices and
  :func:`make_mesh` spans all hosts. With no arguments JAX detects the
  cluster (Cloud TPU, SLURM, Open MPI) or reads ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. CPU processes exchange
  gradients through Gloo, JAX's default for them.

  Args:
    coordinator_address: ``host:port`` of process 0.
    num_processes: number of processes.
    process_id: this process's index.

  Raises:
    InputError: when JAX finds no cluster and was not told one (its
      ``ValueError``), or the runtime was already started.
  """
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  except (ValueError, RuntimeError) as e:
    # What JAX raises for a missing address or process count and a second
    # start: a line naming what to pass, not a traceback.
    raise InputError(
      f"cannot start JAX's distributed runtime: {str(e).strip().splitlines()[0]} "
      "(pass --coordinator_address, --num_processes and --process_id, set "
      "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID, or run "
      "under SLURM, Open MPI or on Cloud TPU)"
    ) from e


def make_mesh(num_devices: int) -> Mesh | None:
  """A one-axis mesh of the first ``num_devices`` devices (0: all of them).

  Returns None for one device, so single-device runs take the plain path.
  """
  devices = jax.devices()
  n = len(devices) if num_devices == 0 else num_devices
  if not 1 <= n <= len(devices):
    raise InputError(
      f"config.num_devices={num_devices} but {len(devices)} devices are "
      f"visible; expected 0 (all) or 1..{len(devices)}"
    )
  if n == 1:
    return None
  return Mesh(np.array(devices[:n]), (AXIS,))


def replicate(tree, mesh: Mesh | None):
  """``tree`` with every array replicated on the mesh's devices."""
  if mesh is None:
    return tree
  return jax.device_put(tree, NamedSharding(mesh, P()))


def batch_spec(mesh: Mesh) -> NamedSharding:
  """Sharding of ``(num_steps, batch)`` arrays: the batch axis over devices."""
  return NamedSharding(mesh, P(None, AXIS))


def check_batch(batch_size: int, mesh: Mesh | None) -> None:
  if mesh is not None and batch_size % mesh.size:
    raise InputError(
      f"config.batch_size={batch_size} must be a multiple of the "
      f"{mesh.size} devices it is sharded over"
    )


def shard_rows(x: np.ndarray, mesh: Mesh | None) -> tuple[jax.Array, int]:
  """Puts ``(n, d)`` rows on the mesh, padded to a multiple of its devices.

  Returns:
    The sharded ``(n_padded, d)`` array and ``n``, to strip the padding.
  """
  n = x.shape[0]
  if mesh is None:
    return jax.numpy.asarray(x), n
  padded = -(-n // mesh.size) * mesh.size
  if padded != n:
    x = np.concatenate([x, np.zeros((padded - n,) + x.shape[1:], x.dtype)])
  return jax.device_put(x, NamedSharding(mesh, P(AXIS, None))), n
