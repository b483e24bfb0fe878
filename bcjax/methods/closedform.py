"""``closedform``: a post-hoc B_k solved exactly, without SGD.

``closedform-<transform>-<loss>`` takes nobc's M_k, as the post-hoc method
does, and asks the transform family for its exact solver of the loss
(``BackwardTransform.solvers``): ridge least squares for ``linear``,
padded orthogonal Procrustes for ``orthogonal`` (:mod:`bcjax.components.solvers`).
A family without a solver for the loss is refused with the reason.
"""

from __future__ import annotations

import dataclasses
import time

from absl import logging

from bcjax.components.hparams import require
from bcjax.methods.base import M0_METHOD, Context, Version, register_method
from bcjax.methods.building_blocks import with_transform


@dataclasses.dataclass(frozen=True)
class ClosedFormHparams:
  """Hyperparameters of ``closedform`` (``config.method.closedform``).

  Attributes:
    ridge: ridge of the linear solve, relative to the mean diagonal of
      ``Z^T Z`` (solvers without one ignore it).
  """

  ridge: float = 1e-6

  def __post_init__(self):
    require(self.ridge >= 0, "ridge", ">= 0", self.ridge)


def _has_solver(transform, loss) -> str | None:
  if loss.name in transform.solvers:
    return None
  if transform.solvers:
    return (
      f"the {transform.name} transform has an exact closed-form fit only of "
      f"{', '.join(sorted(transform.solvers))}; a {loss.name} fit would not be "
      "exact (fit it by SGD: posthoc-*)"
    )
  return (
    f"the {transform.name} transform has no closed-form fit (its objective "
    "has no closed-form minimiser, or it has nothing to fit); fit it by SGD: "
    "posthoc-*"
  )


@register_method(
  "closedform", hparams=ClosedFormHparams, reads=(M0_METHOD,), check=_has_solver
)
def closedform(ctx: Context, k: int, earlier: list[Version]) -> Version:
  """nobc's M_k, then B_k from the transform's exact solver of the loss.

  The fit weighs users and items as the post-hoc selection criterion does
  (the mean of the user MSE and the item MSE over all nodes), with the
  relative ridge ``config.method.closedform.ridge`` where the solver takes
  one.
  """
  current = ctx.version_of(M0_METHOD, k)
  tick = time.perf_counter()
  solve = ctx.transform.solvers[ctx.loss.name]
  params = solve(ctx.embed(current), ctx.embed(earlier[-1]), ctx.hparams.ridge)
  seconds = time.perf_counter() - tick
  logging.info("%s B_%d solved in closed form (%.2fs)", ctx.label, k, seconds)
  return with_transform(ctx, current, params, 0, seconds)
