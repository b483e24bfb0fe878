"""Backward transformations B_k: R^{d_k} -> R^{d_{k-1}}, shaped like optax.

A :class:`BackwardTransform` is a pair of pure functions,
``init(key, d_in, d_out) -> params`` and ``apply(params, z) -> z'``, built by a
factory (:func:`notrans`, :func:`linear`, :func:`mlp`, :func:`orthogonal`) and
composed by :func:`bcjax.components.chains.compose`. Parameters are plain pytrees, so transforms jit,
differentiate and checkpoint like any other parameters.

A transform carries itself: its family ``name`` and ``hparams`` rebuild it
from a checkpoint (:func:`from_spec`), ``as_matrix(params)`` gives the matrix
of a linear family (so serving collapses any linear chain into one matmul),
``solvers`` maps an alignment-loss name to an exact closed-form fit, and
``penalty(params)`` is a family's term added to its alignment loss
(:mod:`bcjax.components.softorthogonal`'s pull towards orthogonal).
Families are registered by name with the dataclass of their
hyperparameters (``@register_transform(name, hparams=...)``); the registry,
not the factory, stamps ``name``, ``hparams`` and ``source`` on what the
factory builds, so a checkpoint's spec always holds the hyperparameters the
transform was built with. Nothing outside this module tests a transform's
name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from bcjax import extensions
from bcjax.components import hparams as hparams_lib
from bcjax.components import solvers
from bcjax.components.registries import Entry, Registry
from bcjax.errors import InputError, check_new_name

Params = Any


class BackwardTransform(NamedTuple):
  """A backward transformation family with its hyper-parameters.

  Attributes:
    init: ``(key, d_in, d_out) -> params``; for a composition,
      ``(key, *dims)`` with ``dims`` from the innermost input to the output.
    apply: ``(params, z) -> z'`` for ``z`` of shape ``(..., d_in)``.
    name: the registered family name (``compose`` for a composition).
    hparams: the family's hyperparameter dataclass instance: with ``name``,
      what rebuilds the transform (saved in checkpoint metadata).
    as_matrix: ``params -> (d_in, d_out)`` matrix for a linear family (then
      ``apply(params, z) == z @ as_matrix(params)``), else None.
    learned: whether the transform has parameters to fit (a truncation has
      none).
    solvers: alignment-loss name -> ``(current, previous, ridge) -> params``,
      exact closed-form fits (see :mod:`bcjax.components.solvers`).
    source: the module (or extension target) that registered the family,
      which serving loads to rebuild it (:mod:`bcjax.extensions`).
    penalty: ``params -> scalar``, a scale-free regulariser of the family
      that training adds to the alignment loss (weighed by the targets'
      mean square: :class:`bcjax.components.losses.AlignmentLoss`), else None.
  """

  init: Callable[..., Params]
  apply: Callable[[Params, jax.Array], jax.Array]
  name: str
  hparams: Any = hparams_lib.NoHparams()
  as_matrix: Callable[[Params], jax.Array] | None = None
  learned: bool = True
  solvers: Mapping[str, Callable] = {}
  source: str = ""
  penalty: Callable[[Params], jax.Array] | None = None

  def spec(self, d_in: int, d_out: int) -> dict:
    """What a checkpoint records of ``B``: family, hyperparameters, dims, source."""
    return {
      "name": self.name,
      "d_in": d_in,
      "d_out": d_out,
      "hparams": hparams_lib.to_json(self.hparams),
      "source": self.source,
    }


class Truncation(struct.PyTreeNode):
  """Parameters of :func:`notrans`: nothing to learn, only the kept width."""

  d_in: int = struct.field(pytree_node=False)
  d_out: int = struct.field(pytree_node=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformFamily(Entry):
  """A registered transform family (:class:`~bcjax.components.registries.Entry`).

  Attributes:
    fn: the factory, ``hparams -> BackwardTransform``; its hyperparameters'
      fields are ``config.transform.<name>``.
  """

  def build(self, hparams: Any = None) -> BackwardTransform:
    """The family with ``hparams`` (an instance of :attr:`hparams`; None: defaults)."""
    hparams = self.hparams() if hparams is None else hparams
    if not isinstance(hparams, self.hparams):
      raise InputError(
        f"transform {self.name!r} takes {self.hparams.__name__} hparams, got "
        f"{type(hparams).__name__}"
      )
    transform = self.fn(hparams)
    return transform._replace(name=self.name, hparams=hparams, source=self.source)


# Family name -> its registry entry.
TRANSFORMS: Registry[TransformFamily] = Registry("transform")


def register_transform(
  name: str, *, hparams: type = hparams_lib.NoHparams
) -> Callable[[Callable[[Any], BackwardTransform]], Callable[..., BackwardTransform]]:
  """A decorator that registers ``factory`` as transform family ``name``.

  The grammar, the config (``config.transform.<name>.<field>``), the CLI
  and serving pick it up. The decorated name becomes a keyword factory,
  ``family(**fields) -> BackwardTransform`` (``linear(init="identity")``),
  its fields checked by the dataclass.

  Args:
    name: the family name used in strategy names (no ``-``).
    hparams: the frozen dataclass of its hyperparameters, every field with a
      default (the grammar builds the family with the defaults to read
      ``learned`` and ``solvers``).

  Raises:
    InputError: as :meth:`Registry.add <bcjax.components.registries.Registry.add>`
      does (a name with ``-``, one taken by another factory, bad hparams).
  """
  # Checked before the decorated function exists, so that a bad declaration
  # fails at the decorator's line.
  check_new_name("transform", name)
  hparams_lib.check_class("transform", name, hparams)

  def register(factory: Callable[[Any], BackwardTransform]):
    family = TRANSFORMS.add(TransformFamily(name=name, fn=factory, hparams=hparams))

    def make(**fields) -> BackwardTransform:
      return family.build(hparams(**fields))

    make.__name__, make.__qualname__ = factory.__name__, factory.__qualname__
    make.__doc__, make.__module__ = factory.__doc__, factory.__module__
    make.family = family
    return make

  return register


def get_family(name: str) -> TransformFamily:
  """The registered family ``name``."""
  return TRANSFORMS[name]


def get_transform(name: str, **fields) -> BackwardTransform:
  """The transform family ``name`` with hyperparameter ``fields`` (else defaults)."""
  family = get_family(name)
  return family.build(family.hparams(**fields))


def from_config(name: str, config: Mapping[str, Any]) -> BackwardTransform:
  """Family ``name`` with its hyperparameters from ``config.transform.<name>``.

  A config without the section gets the defaults.
  """
  family = get_family(name)
  sections = config.get("transform") or {}
  values = sections.get(hparams_lib.section_key(name))
  return family.build(
    hparams_lib.from_section(family.hparams, values, f"config.transform.{name}")
  )


def from_spec(spec: Mapping[str, Any]) -> BackwardTransform:
  """The transform a checkpoint's ``spec`` (:meth:`BackwardTransform.spec`) names.

  Specs written before hyperparameters had a field of their own kept them
  beside the name (``{"name": "mlp", "hidden": 0, ...}``): those are read
  too. A family not registered in this process is loaded from the spec's
  ``source`` first (:func:`bcjax.extensions.load_sources`).
  """
  if spec["name"] not in TRANSFORMS and spec.get("source"):
    extensions.load_sources([spec["source"]], f"transform {spec['name']!r}")
  family = get_family(spec["name"])
  values = spec.get("hparams")
  if values is None:
    names = [f.name for f in dataclasses.fields(family.hparams)]
    values = {h: spec[h] for h in names if h in spec}
  return family.build(
    hparams_lib.from_section(family.hparams, values, f"transform {spec['name']!r} spec")
  )


@register_transform("notrans")
def notrans(hparams: hparams_lib.NoHparams) -> BackwardTransform:
  """Keeps the first ``d_out`` dimensions (identity when they are equal)."""
  del hparams

  def init(key, d_in, d_out):
    del key
    _check_dims("notrans", d_in, d_out)
    if d_out > d_in:
      raise InputError(
        f"notrans cannot map dimension {d_in} to the larger {d_out}: the "
        "old embedding must be a prefix of the new one"
      )
    return Truncation(d_in=d_in, d_out=d_out)

  def apply(params, z):
    return z[..., : params.d_out]

  def as_matrix(params):
    return jnp.eye(params.d_in, params.d_out, dtype=jnp.float32)

  return BackwardTransform(init, apply, "notrans", as_matrix=as_matrix, learned=False)


# How a linear ``W`` starts (``config.transform.linear.init``).
# "uniform" is the reference's ``torch.nn.Linear(d_k, d_{k-1}, bias=False)``:
# every entry U(-1/sqrt(d_in), 1/sqrt(d_in)), fan-in being B_k's input width;
# "identity" is the truncated identity (reads the first ``d_out`` dims).
LINEAR_INITS = ("uniform", "identity")


@dataclasses.dataclass(frozen=True)
class LinearHparams:
  """Hyperparameters of :func:`linear`.

  Attributes:
    init: how ``W`` starts, one of :data:`LINEAR_INITS`.
  """

  init: str = "uniform"

  def __post_init__(self):
    hparams_lib.require(
      self.init in LINEAR_INITS, "init", f"one of {', '.join(LINEAR_INITS)}", self.init
    )


@register_transform("linear", hparams=LinearHparams)
def linear(hparams: LinearHparams) -> BackwardTransform:
  """``z @ W`` with ``W`` of shape ``(d_in, d_out)``, no bias (the paper's B_k).

  ``W`` starts as the reference's does (``init="uniform"``): each entry
  drawn from U(-1/sqrt(d_in), 1/sqrt(d_in)), PyTorch's ``nn.Linear`` default
  for ``d_in`` input features. ``init="identity"`` starts it as the truncated
  identity instead, an untrained transform then reading the first ``d_out``
  dimensions. Its closed-form single-step fit is ridge least squares
  (:func:`bcjax.components.solvers.least_squares`).

  Args:
    hparams: ``init``, one of :data:`LINEAR_INITS` (keyword ``init=`` of the
      registered factory).
  """
  init = hparams.init

  def init_params(key, d_in, d_out):
    _check_dims("linear", d_in, d_out)
    if init == "identity":
      return {"kernel": jnp.eye(d_in, d_out, dtype=jnp.float32)}
    bound = 1.0 / float(d_in) ** 0.5
    kernel = jax.random.uniform(
      key, (d_in, d_out), jnp.float32, minval=-bound, maxval=bound
    )
    return {"kernel": kernel}

  def apply(params, z):
    return z @ params["kernel"]

  def solve_sloss(current, previous, ridge):
    return {"kernel": solvers.least_squares(current, previous, ridge)}

  return BackwardTransform(
    init_params,
    apply,
    "linear",
    as_matrix=lambda params: params["kernel"],
    solvers={"sloss": solve_sloss},
  )


@register_transform("orthogonal")
def orthogonal(hparams: hparams_lib.NoHparams) -> BackwardTransform:
  """``z @ W`` with ``W`` of shape ``(d_in, d_out)`` on orthonormal columns.

  ``W^T W = I`` holds exactly (to float precision) at every step of training,
  by a parametrisation: the parameter is an unconstrained ``(d_in, d_out)``
  matrix ``V`` and ``W = Q diag(sign(diag(R)))`` for ``V = QR`` (reduced QR).
  Why QR with a sign fix rather than Cayley or the matrix exponential: it
  works directly on the ``(d_in, d_out)`` Stiefel manifold at
  ``O(d_in d_out^2)`` (the others build ``(d_in, d_in)`` matrices), it
  reaches every matrix with orthonormal columns (Cayley misses those with
  eigenvalue -1, the exponential of a skew matrix the reflections when
  ``d_in == d_out``), and the sign fix makes ``V -> W`` the unique QR with a
  positive diagonal, hence continuous, so gradient steps on ``V`` move ``W``
  smoothly. ``V`` starts as the truncated identity (``W`` reads the first
  ``d_out`` dimensions) (it has no ``init`` hyperparameter): this family
  is bcjax's own (the reference has only the linear ``B_k``), so there is no
  reference start to match, and the identity is already orthonormal. Its
  closed-form single-step fit is the padded
  orthogonal Procrustes problem (:func:`bcjax.components.solvers.procrustes`).

  Once ``d_in > d_out``, ``W`` keeps the first ``d_out`` coordinates of an
  isometry of ``R^{d_in}``: it does not preserve norms or angles of ``z``.
  """
  del hparams

  def init(key, d_in, d_out):
    del key
    _check_dims("orthogonal", d_in, d_out)
    if d_out > d_in:
      raise InputError(
        f"orthogonal cannot map dimension {d_in} to the larger {d_out}: "
        "orthonormal columns need d_out <= d_in"
      )
    return {"kernel": jnp.eye(d_in, d_out, dtype=jnp.float32)}

  def as_matrix(params):
    q, r = jnp.linalg.qr(params["kernel"])
    signs = jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(q.dtype)
    return q * signs

  def apply(params, z):
    return z @ as_matrix(params)

  def solve_sloss(current, previous, ridge):
    del ridge  # an orthogonal W has a fixed norm: nothing to regularise
    return {"kernel": solvers.procrustes(current, previous)}

  return BackwardTransform(
    init, apply, "orthogonal", as_matrix=as_matrix, solvers={"sloss": solve_sloss}
  )


@dataclasses.dataclass(frozen=True)
class MLPHparams:
  """Hyperparameters of :func:`mlp`.

  Attributes:
    hidden: hidden width; 0 means ``max(d_in, d_out)``.
  """

  hidden: int = 0

  def __post_init__(self):
    hparams_lib.require(
      isinstance(self.hidden, int) and self.hidden >= 0,
      "hidden",
      "an integer >= 0 (0: max(d_in, d_out))",
      self.hidden,
    )


@register_transform("mlp", hparams=MLPHparams)
def mlp(hparams: MLPHparams) -> BackwardTransform:
  """A two-layer MLP ``Dense -> ReLU -> Dense`` with biases.

  Args:
    hparams: ``hidden``, the hidden width; 0 means ``max(d_in, d_out)``.
  """
  hidden = hparams.hidden

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


# The family of methods without a learned transform: a truncation to the
# older dimension (the identity when dimensions do not change).
IDENTITY = "notrans"


def _check_dims(name, d_in, d_out):
  for value in (d_in, d_out):
    if not isinstance(value, int) or value < 1:
      raise InputError(
        f"{name} transform dims must be positive integers, got {value!r}"
      )
