"""A method's weight, chosen on tuning seeds that no report reads.

A joint strategy trades intended recall for compatibility through its
alignment weight (``config.method.joint.align_weight``, the paper's lambda).
Choosing it on the numbers a table then reports would manufacture a lead, so
a comparison with ``config.tuning.weights`` (two or more values) chooses it
apart (:mod:`bcjax.jobs.comparison` calls :func:`expand` and
:func:`weight_selection`):

* every strategy of ``config.strategy`` whose method has the hyperparameter
  ``config.tuning.field`` runs at each candidate, named
  ``<strategy>@align_weight=<w>`` (the grammar of
  :mod:`bcjax.methods.strategies`: the strategy's own keys, so the weight is
  the only difference), beside nobc and fix-m0, the table's references;
* under the config's own seeds, which are the tuning seeds: run it under
  another ``config.seed`` than the report runs (its embedding seeds are other
  draws of every model, task and consumer), so that no tuning seed is ever
  reported;
* under ``config.report_split="held_out"``; each candidate is scored by the
  table's total (intended + unintended) on the selection halves alone
  (``selection_table``), since intended recall alone would always pick the
  smallest weight. The halves are seeded by the embedding seed's index, not
  by ``config.seed``: a report run's report halves hold users that no tuning
  run chose on;
* the chosen value is the one of best mean score over the tuning seeds.

``results.json`` gets ``weight_selection`` at its top level (per strategy:
``field``, ``score``, ``tuning_seeds``, ``weight_scores`` and
``chosen_weight``) and ``table.md`` its table; ``experiments.merge`` takes
the tuning run's folder as a part of the report run and copies the record,
refusing a report that ran a tuned strategy at another value
(:func:`check_report_names`).

Command (the tuning seeds of ``config.seed=100``)::

  python -m experiments.compare --workdir=/tmp/bcjax_tuning --config=converged \
      --config.seed=100 --config.num_seeds=3 \
      --config.strategy=joint-linear-sloss,joint-linear-mloss \
      --config.tuning.weights='(1,4,16)'
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence

import ml_collections

from bcjax.errors import InputError
from bcjax.evaluation.table import INTENDED_REFERENCE, UNINTENDED_REFERENCE
from bcjax.evaluation.table_records import ComparisonTable
from bcjax.jobs import config as config_lib
from bcjax.methods.strategies import (
  OVERRIDE_MARK,
  ResolvedStrategy,
  parse_strategy,
  plain_value,
)

# The hyperparameter chosen when config.tuning names none.
DEFAULT_FIELD = "align_weight"
# The table's column a weight is chosen by.
SCORE = "total"


def variant(name: str, hparam: str, weight: float) -> str:
  """``name`` at ``hparam=weight``, canonical: ``joint-linear-mloss@align_weight=4``.

  A name with ``@`` settings of its own gets the weight among them, sorted
  as the run names its row (``warmjoint-linear-mloss@align_weight=4@epochs=30``).
  """
  return parse_strategy(f"{name}{OVERRIDE_MARK}{hparam}={plain_value(weight)}").name


def tunable(strategies: Sequence[ResolvedStrategy], name: str) -> list[str]:
  """The strategies whose method has hyperparameter ``name`` (and whose name
  does not set it already)."""
  return [
    s.name
    for s in strategies
    if name in {f.name for f in dataclasses.fields(s.method.hparams)}
    and name not in dict(parse_strategy(s.name).overrides)
  ]


def tuning_weights(config: Mapping) -> tuple[float, ...]:
  """``config.tuning.weights``, sorted and distinct (empty: no tuning); of a
  ConfigDict or a results.json's config."""
  tuning = config.get("tuning") or {}
  return tuple(sorted({float(w) for w in tuning.get("weights", ())}))


def tuning_field(config: Mapping) -> str:
  """``config.tuning.field``, the hyperparameter chosen."""
  return (config.get("tuning") or {}).get("field", DEFAULT_FIELD)


def expand(
  config: ml_collections.ConfigDict, strategies: Sequence[ResolvedStrategy]
) -> tuple[ml_collections.ConfigDict, list[ResolvedStrategy], list[str]]:
  """The config a tuning run runs, its strategies, and the ones it tunes.

  Args:
    config: a validated config with its component sections.
    strategies: ``config.strategy`` resolved (:func:`config_lib.strategies`);
      the run's strategies that are among them are not resolved again.

  Returns:
    ``config`` and ``strategies`` themselves and no tuned name without
    ``config.tuning.weights``; else a copy of ``config`` whose ``strategy``
    is nobc, fix-m0 and every tuned strategy at every weight, those
    strategies resolved, and the tuned strategies' names.

  Raises:
    InputError: one weight alone, a run not held out, or no strategy of
      ``config.strategy`` with the field (a weight the method's dataclass
      refuses is refused when the variants are resolved).
  """
  candidates = tuning_weights(config)
  if not candidates:
    return config, list(strategies), []
  name = tuning_field(config)
  if len(candidates) < 2:
    raise InputError(
      f"config.tuning.weights={tuple(config.tuning.weights)} leaves nothing to "
      "choose; expected two or more values (or none: no tuning)"
    )
  if config.get("report_split") != "held_out":
    raise InputError(
      f"config.tuning chooses on the selection halves, but config.report_split="
      f"{config.get('report_split')!r}; expected config.report_split=held_out"
    )
  tuned = tunable(strategies, name)
  if not tuned:
    raise InputError(
      f"no strategy of config.strategy={config.strategy!r} has hyperparameter "
      f"{name!r} (config.tuning.field); expected one whose method does "
      "(joint-linear-mloss, ...)"
    )
  names = [INTENDED_REFERENCE, UNINTENDED_REFERENCE]
  names += [variant(s, name, w) for s in tuned for w in candidates]
  out = copy.deepcopy(config)
  with out.unlocked():
    out.strategy = ",".join(names)
  return out, config_lib.strategies(out, resolved=strategies), tuned


def weight_selection(results: Mapping, tuned: Sequence[str]) -> dict:
  """``weight_selection`` of a finished tuning run's ``results`` (its config's
  ``tuning``; ``per_seed`` for two or more seeds).

  Returns:
    ``strategy -> {"field", "tuning_seeds", "weight_scores", "chosen_weight"}``:
    ``tuning_seeds`` the root ``seed`` and the ``embedding_seeds`` scored,
    ``weight_scores`` ``str(weight) -> [score per tuning seed]`` (the
    selection halves' total), ``chosen_weight`` the weight of best mean (of
    equal means, the smallest).
  """
  seeds = results.get("per_seed") or [results]
  if any("selection_table" not in s for s in seeds):
    raise InputError("the tuning run has no selection_table; expected a held-out run")
  tables = [ComparisonTable.from_json(s["selection_table"]) for s in seeds]
  tuning_seeds = {
    "seed": results["config"]["seed"],
    "embedding_seeds": [s.get("embedding_seed", 0) for s in seeds],
  }
  config = results["config"]
  candidates, chosen_field = tuning_weights(config), tuning_field(config)
  out = {}
  for name in tuned:
    scores = {}
    for w in candidates:
      row = variant(name, chosen_field, w)
      scores[plain_value(w)] = [_cell(t, row) for t in tables]
    means = {w: math.fsum(v) / len(v) for w, v in scores.items()}
    chosen = max(means, key=means.get)
    out[name] = {
      "field": chosen_field,
      "score": f"{SCORE} on the selection halves",
      "tuning_seeds": tuning_seeds,
      "weight_scores": scores,
      "chosen_weight": float(chosen),
    }
  return out


def _cell(table: ComparisonTable, strategy: str) -> float:
  row = table.row(strategy)
  if row is None:
    raise InputError(f"the tuning run's selection table has no row {strategy!r}")
  value = row.cell(SCORE)
  if value is None or not math.isfinite(value):
    raise InputError(f"{strategy}'s selection {SCORE} is {value!r}; expected a number")
  return float(value)


def chosen_names(selection: Mapping[str, Mapping]) -> list[str]:
  """Each tuned strategy at its chosen weight: what a report run runs."""
  return [
    variant(name, s["field"], s["chosen_weight"]) for name, s in selection.items()
  ]


def check_report_names(names: Sequence[str], selection: Mapping[str, Mapping]) -> None:
  """Refuses a report strategy that sets a tuned field to an unchosen value.

  The strategy itself (at the config's weight, the paper's lambda) is
  allowed beside its chosen weight; any other weight of it is not.

  Raises:
    InputError: naming the strategy, its weight and the chosen one.
  """
  for name in names:
    strategy = parse_strategy(name)
    tuned = selection.get(strategy.base_name)
    if tuned is None:
      continue
    value = dict(strategy.overrides).get(tuned["field"])
    if value is not None and float(value) != float(tuned["chosen_weight"]):
      raise InputError(
        f"the report runs {name}, but the tuning chose {tuned['field']}="
        f"{plain_value(tuned['chosen_weight'])} for {strategy.base_name}; "
        "expected only the chosen weight (or the config's own)"
      )


def to_markdown(selection: Mapping[str, Mapping]) -> str:
  """The choice as a Markdown table: mean score per weight, the chosen one."""
  lines = []
  for name, s in selection.items():
    seeds = s["tuning_seeds"]
    lines.append(
      f"{name}: {s['field']} chosen on seed {seeds['seed']}, embedding seeds "
      f"{seeds['embedding_seeds']} ({s['score']}, mean over seeds):\n"
    )
    lines.append(f"| {s['field']} | mean | per seed |")
    lines.append("| --- | --- | --- |")
    for w, scores in s["weight_scores"].items():
      mark = " (chosen)" if float(w) == s["chosen_weight"] else ""
      per = ", ".join(f"{v:.2f}" for v in scores)
      lines.append(f"| {w}{mark} | {math.fsum(scores) / len(scores):.2f} | {per} |")
    lines.append("")
  return "\n".join(lines)
