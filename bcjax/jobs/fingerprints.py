"""What decides a strategy's versions: the run's fields and its own components.

A workdir holds the versions of many strategies. Fingerprinting every
component section of the config into every version would refuse a finished
linear strategy because ``transform.mlp.hidden`` changed, and a finished
baseline because an extension was loaded. So a version records what its
strategy uses and nothing else (:func:`strategy_fields`):

* the run's fields (:func:`bcjax.storage.workdir.fingerprinted_config`:
  data, versions, models, optimisation, consumers; the dataset's content),
  which the workdir's ``config.json`` and the consumers are checked by;
* its method, transform family and alignment loss: each one's name, its
  hyperparameters as resolved (a name's ``@`` settings included) and, for a
  component an extension registered, a hash of the extension module's source,
  so that an edit to the extension refuses the versions its old code made;
* the same of every strategy its method reads (post-hoc reads nobc's
  versions).

A version whose record differs from its strategy's fields now is refused,
naming each differing field; the strategies that do not use what changed are
reused.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping

from bcjax import extensions
from bcjax.components import hparams as hparams_lib
from bcjax.methods.base import ResolvedStrategy
from bcjax.storage.workdir import config_fingerprint

# The component sections of a config: each strategy's fields take what it
# uses of them; the run's fields take none.
COMPONENT_SECTIONS = ("transform", "loss", "method")


def run_fields(fields: Mapping) -> dict:
  """The run-level part of a :func:`fingerprinted_config`: every field but the
  component sections."""
  return {k: v for k, v in fields.items() if k not in COMPONENT_SECTIONS}


def source_digest(source: str) -> str | None:
  """A hash of an extension module's source (None for bcjax's own components,
  whose code the run's ``environment.modules`` records, and for a module
  with no file, as in a notebook)."""
  if not extensions.is_external(source):
    return None
  module = sys.modules.get(source.partition(":")[0])
  path = getattr(module, "__file__", None)
  if not path:
    return None
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


def _component(component) -> dict:
  """A component's name, resolved hyperparameters and extension source."""
  out = {"name": component.name, "hparams": hparams_lib.to_json(component.hparams)}
  if extensions.is_external(component.source):
    out["source"] = component.source
    out["source_digest"] = source_digest(component.source)
  return out


def strategy_fields(
  run: Mapping,
  strategy: ResolvedStrategy,
  resolve: Callable[[str], ResolvedStrategy],
) -> dict:
  """What decides ``strategy``'s versions (see the module doc).

  Args:
    run: the run's fields (:func:`run_fields`).
    strategy: the strategy, resolved with the run's config.
    resolve: a strategy name -> the strategy resolved the same way (for the
      strategies its method reads).

  Returns:
    JSON-ready fields: ``run``, ``method``, ``transform``, ``loss`` (None for
    a method without one) and ``reads`` (name -> the same, without ``run``).
  """
  return {"run": dict(run), **_own(strategy, resolve)}


def _own(strategy: ResolvedStrategy, resolve) -> dict:
  method = {
    "name": strategy.method.name,
    "hparams": hparams_lib.to_json(strategy.hparams),
  }
  if extensions.is_external(strategy.method.source):
    method["source"] = strategy.method.source
    method["source_digest"] = source_digest(strategy.method.source)
  return {
    "method": method,
    "transform": _component(strategy.transform),
    "loss": None if strategy.loss is None else _component(strategy.loss),
    "reads": {name: _own(resolve(name), resolve) for name in strategy.method.reads},
  }


def fingerprint(fields: Mapping) -> str:
  """The short hash of a strategy's (or the run's) fields."""
  return config_fingerprint(fields)
