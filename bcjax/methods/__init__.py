"""Methods: how each strategy produces its versions (a registry by name).

Importing this package registers the built-in methods: the paper's
(:mod:`bcjax.methods.paper`) and the closed-form post-hoc fits
(:mod:`bcjax.methods.closedform`) and joint training's variants
(:mod:`bcjax.methods.joint_variants`). The pieces they are built of, public for
methods of one's own, are :mod:`bcjax.methods.building_blocks`.
"""

from bcjax.methods import building_blocks, closedform, joint_variants, paper  # noqa: F401
from bcjax.methods.base import (
  M0_METHOD,
  Context,
  Method,
  Version,
  get_method,
  register_method,
  registered_methods,
)

__all__ = [
  "M0_METHOD",
  "Context",
  "Method",
  "Version",
  "building_blocks",
  "get_method",
  "register_method",
  "registered_methods",
]
