"""Backward transformations B_k: R^{d_k} -> R^{d_{k-1}}, shaped like optax.

A :class:`BackwardTransform` is a pair of pure functions,
``init(key, d_in, d_out) -> params`` and ``apply(params, z) -> z'``, built by a
factory (:func:`notrans`, :func:`linear`, :func:`mlp`) and composed by
:func:`compose`. Parameters are plain pytrees, so transforms jit, differentiate
and checkpoint like any other parameters.

``compose(B_a, ..., B_b)`` is ``B_a o ... o B_b``: it applies ``B_b`` first,
which is the order of the paper's ``B_{a..b}`` (newest version innermost).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from bcjax.errors import InputError, unknown_name

Params = Any


class BackwardTransform(NamedTuple):
  """A backward transformation family.

  Attributes:
    init: ``(key, d_in, d_out) -> params``; for a composition,
      ``(key, *dims)`` with ``dims`` from the innermost input to the output.
    apply: ``(params, z) -> z'`` for ``z`` of shape ``(..., d_in)``.
    name: the family name (``notrans``, ``linear``, ``mlp``, ``compose``).
  """

  init: Callable[..., Params]
  apply: Callable[[Params, jax.Array], jax.Array]
  name: str


class Truncation(struct.PyTreeNode):
  """Parameters of :func:`notrans`: nothing to learn, only the kept width."""

  d_out: int = struct.field(pytree_node=False)


def notrans() -> BackwardTransform:
  """Keeps the first ``d_out`` dimensions (identity when they are equal)."""

  def init(key, d_in, d_out):
    del key
    _check_dims("notrans", d_in, d_out)
    if d_out > d_in:
      raise InputError(
        f"notrans cannot map dimension {d_in} to the larger {d_out}: the "
        "old embedding must be a prefix of the new one"
      )
    return Truncation(d_out=d_out)

  def apply(params, z):
    return z[..., : params.d_out]

  return BackwardTransform(init, apply, "notrans")


def linear() -> BackwardTransform:
  """``z @ W`` with ``W`` of shape ``(d_in, d_out)``, no bias (the paper's B_k).

  ``W`` starts as the truncated identity, so an untrained transform reads the
  first ``d_out`` dimensions, the natural starting point for alignment.
  """

  def init(key, d_in, d_out):
    del key
    _check_dims("linear", d_in, d_out)
    return {"kernel": jnp.eye(d_in, d_out, dtype=jnp.float32)}

  def apply(params, z):
    return z @ params["kernel"]

  return BackwardTransform(init, apply, "linear")


def mlp(hidden: int = 0) -> BackwardTransform:
  """A two-layer MLP ``Dense -> ReLU -> Dense`` with biases.

  Args:
    hidden: hidden width; 0 means ``max(d_in, d_out)``.
  """

  def init(key, d_in, d_out):
    _check_dims("mlp", d_in, d_out)
    width = hidden or max(d_in, d_out)
    k1, k2 = jax.random.split(key)
    lecun = jax.nn.initializers.lecun_normal()
    return {
      "hidden": {
        "kernel": lecun(k1, (d_in, width), jnp.float32),
        "bias": jnp.zeros((width,), jnp.float32),
      },
      "out": {
        "kernel": lecun(k2, (width, d_out), jnp.float32),
        "bias": jnp.zeros((d_out,), jnp.float32),
      },
    }

  def apply(params, z):
    h = jax.nn.relu(z @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    return h @ params["out"]["kernel"] + params["out"]["bias"]

  return BackwardTransform(init, apply, "mlp")


def compose(*transforms: BackwardTransform) -> BackwardTransform:
  """``B_1 o ... o B_n``: applies ``B_n`` first; params are a tuple in order.

  ``init(key, d_n_in, ..., d_0)`` takes the dims of the chain from the
  innermost input (``B_n``'s) to the outermost output (``B_1``'s). With no
  transforms, it is the identity.
  """

  def init(key, *dims):
    if len(dims) != len(transforms) + 1:
      raise InputError(
        f"compose of {len(transforms)} transforms needs {len(transforms) + 1} "
        f"dims, got {dims}"
      )
    keys = jax.random.split(key, max(len(transforms), 1))
    # transforms[i] maps dims[n - i - 1] -> dims[n - i].
    n = len(transforms)
    return tuple(
      t.init(keys[i], dims[n - i - 1], dims[n - i]) for i, t in enumerate(transforms)
    )

  def apply(params, z):
    for t, p in zip(reversed(transforms), reversed(params), strict=True):
      z = t.apply(p, z)
    return z

  return BackwardTransform(init, apply, "compose")


TRANSFORMS: dict[str, Callable[..., BackwardTransform]] = {
  "notrans": notrans,
  "linear": linear,
  "mlp": mlp,
}


def get_transform(name: str, **kwargs) -> BackwardTransform:
  """The transform family ``name`` (``notrans``, ``linear`` or ``mlp``)."""
  if name not in TRANSFORMS:
    raise unknown_name("transform", name, TRANSFORMS)
  if name == "mlp":
    return mlp(**kwargs)
  return TRANSFORMS[name]()


def collapse_linear(kernels: Sequence[jax.Array]) -> jax.Array:
  """One matrix for a chain of linear transforms ``B_1 o ... o B_n``.

  Args:
    kernels: ``W_1, ..., W_n`` with ``W_i`` of shape ``(d_i, d_{i-1})``.

  Returns:
    ``W_n @ ... @ W_1`` of shape ``(d_n, d_0)``: ``z @ M`` equals applying
    ``B_n`` first and ``B_1`` last.
  """
  matrix = kernels[-1]
  for kernel in reversed(kernels[:-1]):
    matrix = matrix @ kernel
  return matrix


def _check_dims(name, d_in, d_out):
  for value in (d_in, d_out):
    if not isinstance(value, int) or value < 1:
      raise InputError(
        f"{name} transform dims must be positive integers, got {value!r}"
      )
