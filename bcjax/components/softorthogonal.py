"""The ``softorthogonal`` transform family: a linear B_k pulled towards orthogonal.

lambda-orthogonality (Ricci et al., NeurIPS 2025): ``z @ W`` with ``W`` of
shape ``(d_in, d_out)``, fitted with a gated penalty on the Gram matrix of
the smaller side (:func:`gram_penalty`) added to the alignment loss, so
that ``W`` may stray from semi-orthogonal by ``tolerance`` for free and pays
``strength`` for the rest. Strength 0 is the ``linear`` family; a large
strength tends to ``orthogonal``. The penalty is the one definition that
:mod:`bcjax.align.families`' ``softorthogonal`` bridge uses too, so a
strength means the same for a trained B_k and for a bridge.

Importing :mod:`bcjax.components` registers the family (its ``__init__``
imports this module), so the grammar, the config and serving find it as
they find the families of :mod:`bcjax.components.transforms`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from bcjax.components import hparams as hparams_lib
from bcjax.components import transforms
from bcjax.errors import InputError


def gram_penalty(kernel: jax.Array, tolerance) -> jax.Array:
  """``max(0, ||G - I||_F - tolerance)^2 / m``, lambda-orthogonality's gated penalty.

  ``G`` is the Gram matrix of the smaller side of ``W``: ``W^T W`` when
  ``d_in >= d_out``, ``W W^T`` otherwise, of width ``m = min(d_in, d_out)``,
  so the penalty reaches 0 (at a semi-orthogonal ``W``) whatever the widths;
  dividing by ``m`` makes it a per-dimension figure. Traceable and
  differentiable everywhere (the norm is taken of ``||G - I||^2 + 1e-30``).

  Args:
    kernel: ``W``, ``(d_in, d_out)``.
    tolerance: the gate, a scalar ``>= 0``: deviation left unpenalised.

  Returns:
    The scalar penalty.
  """
  small = kernel.T @ kernel if kernel.shape[0] >= kernel.shape[1] else kernel @ kernel.T
  deviation = jnp.sqrt(jnp.sum((small - jnp.eye(len(small))) ** 2) + 1e-30)
  gated = jnp.maximum(deviation - tolerance, 0.0)
  return gated**2 / len(small)


# How ``W`` starts (``config.transform.softorthogonal.init``): ``linear``'s
# starts, and "zeros", the default. At zero the penalty's gradient vanishes
# (it is ``W (G - I)`` times a scalar), so the first steps follow the data
# and ``W`` reaches the manifold near the orthogonal fit. From a random start
# a large strength first pulls ``W`` onto the orthogonal matrix nearest that
# start; for ``d_in == d_out`` that may have the other determinant, a
# component of O(d) that the penalty keeps it in (post-hoc SGD, 8 -> 8 dims,
# strength 100, a scaled rotation, 6 seeds: from "uniform" 4 fits ended
# there, alignment MSE 0.40-0.46 against 0.09; from "zeros" none did).
SOFT_INITS = ("zeros", *transforms.LINEAR_INITS)


@dataclasses.dataclass(frozen=True)
class SoftOrthogonalHparams:
  """Hyperparameters of :func:`softorthogonal` (``config.transform.softorthogonal``).

  Attributes:
    strength: weight of :func:`gram_penalty` relative to the alignment
      loss; 0 is the ``linear`` family.
    tolerance: the gate: the deviation ``||G - I||_F`` left free.
    init: how ``W`` starts, one of :data:`SOFT_INITS`.
  """

  strength: float = 1.0
  tolerance: float = 0.0
  init: str = "zeros"

  def __post_init__(self):
    for field in ("strength", "tolerance"):
      value = getattr(self, field)
      ok = isinstance(value, int | float) and not isinstance(value, bool)
      ok = ok and math.isfinite(value) and value >= 0
      hparams_lib.require(ok, field, "a finite number >= 0", value)
    hparams_lib.require(
      self.init in SOFT_INITS, "init", f"one of {', '.join(SOFT_INITS)}", self.init
    )


@transforms.register_transform("softorthogonal", hparams=SoftOrthogonalHparams)
def softorthogonal(hparams: SoftOrthogonalHparams) -> transforms.BackwardTransform:
  """``z @ W`` as ``linear``, fitted with a gated penalty towards semi-orthogonal.

  Parameters and ``apply`` are ``linear``'s (``{"kernel": W}``, ``W`` of
  shape ``(d_in, d_out)``), its starts too (``init``, default zeros: see
  :data:`SOFT_INITS`); the family adds ``penalty(params) = strength *``
  :func:`gram_penalty` ``(W, tolerance)``, which joint training and post-hoc
  fits add to the alignment loss weighed by the targets' mean square
  (:class:`bcjax.components.losses.AlignmentLoss`): beside ``sloss`` the
  objective is then ``mse(W) / mse(0) + strength * gram_penalty(W)``, up to
  that constant factor, as :mod:`bcjax.align`'s ``softorthogonal`` bridge's.
  Hence strength 0 is the ``linear`` fit and a large strength tends to the
  semi-orthogonal least-squares fit (Procrustes for square ``W``), the
  larger the strength the stiffer for SGD. It has no closed-form fit.
  ``as_matrix`` is the kernel, so serving collapses its chains into one
  matrix.

  Args:
    hparams: ``strength``, ``tolerance`` and ``init`` (keywords of the
      registered factory).
  """
  strength, tolerance = float(hparams.strength), float(hparams.tolerance)
  start = None if hparams.init == "zeros" else transforms.linear(init=hparams.init)

  def init(key, d_in, d_out):
    for value in (d_in, d_out):
      if not isinstance(value, int) or value < 1:
        raise InputError(
          f"softorthogonal transform dims must be positive integers, got {value!r}"
        )
    if start is None:
      return {"kernel": jnp.zeros((d_in, d_out), jnp.float32)}
    return start.init(key, d_in, d_out)

  def penalty(params):
    return strength * gram_penalty(params["kernel"], tolerance)

  return transforms.BackwardTransform(
    init,
    lambda params, z: z @ params["kernel"],
    "softorthogonal",
    as_matrix=lambda params: params["kernel"],
    penalty=penalty,
  )
