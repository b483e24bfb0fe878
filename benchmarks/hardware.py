"""The device's measured peaks, the floors they set, and memory read-outs.

Floors are measured, not taken from a data sheet: a large float32 matmul
gives the attainable FLOP rate at JAX's default matmul precision (TF32 on
NVIDIA GPUs, full float32 on CPU), and a large elementwise pass gives the
attainable memory bandwidth. A workload's floor is then
``max(flops / peak_flops, bytes / peak_bandwidth)`` for its FLOPs and the
fewest bytes it must move.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp


def wall_times(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
  """Wall times of ``repeats`` calls of ``fn()``, synchronised on its result.

  Args:
    fn: runs the work and returns the arrays to wait for.
    repeats: timed calls.
    warmup: untimed calls first (compilation, caches).
  """
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    tick = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - tick)
  return times


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
  """Median of :func:`wall_times`: what a workload takes."""
  return statistics.median(wall_times(fn, repeats, warmup))


@dataclasses.dataclass(frozen=True)
class DevicePeaks:
  """What the device attains, measured in this run.

  Attributes:
    device: the device's description.
    backend: ``"cpu"``, ``"gpu"`` or ``"tpu"``.
    flops_per_s: float32 matmul rate at the default precision.
    bytes_per_s: memory bandwidth of a read-and-write pass.
    matmul_precision: the precision the matmul ran at, in words.
    matmul_size: ``n`` of the ``(n, n) @ (n, n)`` product timed.
    copy_bytes: bytes read plus written by the timed pass.
  """

  device: str
  backend: str
  flops_per_s: float
  bytes_per_s: float
  matmul_precision: str
  matmul_size: int
  copy_bytes: int

  def floor_seconds(self, flops: float, num_bytes: float) -> float:
    """The least time of a workload of ``flops`` moving ``num_bytes``."""
    return max(flops / self.flops_per_s, num_bytes / self.bytes_per_s)


def matmul_precision(backend: str) -> str:
  """JAX's float32 matmul precision on ``backend``, in words."""
  setting = jax.config.jax_default_matmul_precision
  if setting not in (None, "default", "DEFAULT"):
    return f"jax_default_matmul_precision={setting}"
  if backend == "gpu":
    return "default: TF32 tensor cores on NVIDIA (10-bit mantissa inputs)"
  if backend == "tpu":
    return "default: bfloat16 passes"
  return "default: full float32"


def measure_peaks(matmul_size: int | None = None, copy_mib: int | None = None):
  """Measures the device's matmul rate and memory bandwidth.

  Args:
    matmul_size: ``n`` of the square matmul (None: 8192 on accelerators, 2048
      on CPU, large enough to reach the rate and short enough to repeat).
    copy_mib: MiB of the array read and written in place (None: 2048 on
      accelerators, 256 on CPU, far beyond the caches).

  Returns:
    :class:`DevicePeaks`.
  """
  device = jax.devices()[0]
  backend = jax.default_backend()
  on_cpu = backend == "cpu"
  n = matmul_size or (2048 if on_cpu else 8192)
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  # Peaks are best-of: the fastest call is what the device can attain.
  flops = 2.0 * n**3 / min(wall_times(lambda: matmul(a, b), repeats=7))

  num = (copy_mib or (256 if on_cpu else 2048)) * (1 << 20) // 4
  # In place (the input donated, each output fed back): a fresh output per
  # call would time first-touch page faults, not memory.
  scale = jax.jit(lambda x: x * 1.5, donate_argnums=0)
  x = jnp.ones((num,), jnp.float32)

  def scale_in_place():
    nonlocal x
    x = scale(x)
    return x

  copy_bytes = 2 * num * 4
  bandwidth = copy_bytes / min(wall_times(scale_in_place, repeats=7))
  return DevicePeaks(
    device=getattr(device, "device_kind", str(device)),
    backend=backend,
    flops_per_s=flops,
    bytes_per_s=bandwidth,
    matmul_precision=matmul_precision(backend),
    matmul_size=n,
    copy_bytes=copy_bytes,
  )


def host_peak_rss_bytes() -> int:
  """Peak resident memory of this process so far."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB


def device_peak_bytes() -> int | None:
  """Peak device memory in use, where the backend reports it (not on CPU)."""
  stats = jax.devices()[0].memory_stats()
  if not stats:
    return None
  return stats.get("peak_bytes_in_use")
