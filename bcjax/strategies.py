"""The strategy grammar: how each new embedding version stays compatible.

Names are ``fix-m0``, ``finetune-m0``, ``nobc`` and
``{posthoc|joint}-{notrans|linear|mlp}-{sloss|mloss}``; ``bc-aligner`` is an
alias of ``joint-linear-mloss`` (Hu et al., KDD 2022). A :class:`Strategy`
is a small immutable description; what it does per version lives in
:mod:`bcjax.intended_task`, driven by these fields.
"""

from __future__ import annotations

import dataclasses
import itertools

from bcjax.errors import InputError
from bcjax.transforms import TRANSFORMS

METHODS = ("fix-m0", "finetune-m0", "nobc", "posthoc", "joint")
LOSSES = ("sloss", "mloss")
ALIASES = {"bc-aligner": "joint-linear-mloss"}
# The paper's comparison (its Table 3), in its order.
PAPER_STRATEGIES = (
  "fix-m0",
  "finetune-m0",
  "nobc",
  "posthoc-linear-sloss",
  "posthoc-linear-mloss",
  "joint-notrans-sloss",
  "joint-linear-sloss",
  "joint-linear-mloss",
)


@dataclasses.dataclass(frozen=True)
class Strategy:
  """One way of producing embedding versions and their backward transforms.

  Attributes:
    name: the canonical name.
    method: ``fix-m0``, ``finetune-m0``, ``nobc``, ``posthoc`` or ``joint``.
    transform: the family of every ``B_k`` (``notrans`` for the methods
      without a learned transform: it truncates to the older dimension, the
      identity when dimensions do not change).
    loss: ``sloss`` or ``mloss`` for the post-hoc and joint methods, else None.
  """

  name: str
  method: str
  transform: str = "notrans"
  loss: str | None = None

  @property
  def keeps_m0(self) -> bool:
    """Whether every version has M_0's architecture (and dimension)."""
    return self.method in ("fix-m0", "finetune-m0")

  @property
  def learns_transform(self) -> bool:
    return self.transform != "notrans"

  @property
  def multi_step(self) -> bool:
    return self.loss == "mloss"


def _grammar_names() -> list[str]:
  names = ["fix-m0", "finetune-m0", "nobc"]
  for method, transform, loss in itertools.product(
    ("posthoc", "joint"), TRANSFORMS, LOSSES
  ):
    name = f"{method}-{transform}-{loss}"
    if _invalid_reason(method, transform, loss) is None:
      names.append(name)
  return names


def _invalid_reason(method: str, transform: str, loss: str) -> str | None:
  if method == "posthoc" and transform == "notrans":
    return (
      "post-hoc training needs a learned transform; without one it is nobc "
      "(use nobc, or posthoc-linear-* / posthoc-mlp-*)"
    )
  if transform == "notrans" and loss == "mloss":
    return (
      "without a transform every older version is a prefix of the newest "
      "one, so the multi-step loss has nothing to add (use *-notrans-sloss)"
    )
  return None


def valid_names() -> list[str]:
  """Every valid strategy name, aliases included."""
  return _grammar_names() + sorted(ALIASES)


def parse_strategy(name: str) -> Strategy:
  """The :class:`Strategy` of ``name``.

  Raises:
    InputError: for an unknown name (listing the valid ones) or an invalid
      combination of the grammar (with the reason).
  """
  canonical = ALIASES.get(name, name)
  if canonical in ("fix-m0", "finetune-m0", "nobc"):
    return Strategy(canonical, canonical)
  parts = canonical.split("-")
  if (
    len(parts) == 3
    and parts[0] in ("posthoc", "joint")
    and parts[1] in TRANSFORMS
    and parts[2] in LOSSES
  ):
    reason = _invalid_reason(*parts)
    if reason:
      raise InputError(f"strategy {name!r} is not a valid combination: {reason}")
    return Strategy(canonical, parts[0], parts[1], parts[2])
  raise InputError(
    f"unknown strategy {name!r}; valid strategy names: {', '.join(valid_names())}"
  )
