"""Choosing a weight on tuning seeds: the expansion, the choice, the checks.

The end-to-end tuning run, merged with a report run, is in tests/test_merge.py.
"""

import math

import pytest

from bcjax.errors import InputError
from bcjax.evaluation.table_records import ComparisonTable, TableRow
from bcjax.jobs import config as config_lib
from bcjax.jobs import weight_tuning
from experiments.configs import test as test_config


def _config(strategy="nobc,bc-aligner,joint-linear-sloss,posthoc-linear-sloss"):
  config = config_lib.with_component_sections(test_config.get_config())
  config.strategy = strategy
  config.tuning.weights = (16, 1, 4, 4.0)
  return config


def test_expand_runs_every_tunable_strategy_at_every_weight_beside_the_references():
  config = _config()
  given = config_lib.strategies(config)
  expanded, strategies, tuned = weight_tuning.expand(config, given)
  # Only strategies whose method has align_weight are tuned.
  assert tuned == ["joint-linear-mloss", "joint-linear-sloss"]
  # Resolved once: the given nobc is reused, the variants resolved anew.
  assert [s.name for s in strategies] == expanded.strategy.split(",")
  assert strategies[0] is given[0]
  assert strategies[2].hparams.align_weight == 1
  assert expanded.strategy.split(",") == [
    "nobc",
    "fix-m0",
    *(f"joint-linear-mloss@align_weight={w}" for w in (1, 4, 16)),
    *(f"joint-linear-sloss@align_weight={w}" for w in (1, 4, 16)),
  ]
  untouched = _config()
  untouched.tuning.weights = ()
  given = config_lib.strategies(untouched)
  assert weight_tuning.expand(untouched, given) == (untouched, given, [])


@pytest.mark.parametrize(
  "change,message",
  [
    (lambda c: setattr(c.tuning, "weights", (4, 4.0)), "leaves nothing to choose"),
    (
      lambda c: setattr(c, "report_split", "validation"),
      "expected config.report_split",
    ),
    (lambda c: setattr(c, "strategy", "nobc,posthoc-linear-sloss"), "no strategy of"),
    (lambda c: setattr(c.tuning, "field", "ridge"), "hyperparameter 'ridge'"),
  ],
)
def test_a_tuning_that_cannot_choose_is_refused(change, message):
  config = _config()
  change(config)
  with pytest.raises(InputError, match=message):
    weight_tuning.expand(config, config_lib.strategies(config))


def _table(totals: dict) -> dict:
  rows = [
    TableRow(name, None, None, total, None, None, None, None, None, None)
    for name, total in totals.items()
  ]
  return ComparisonTable(tuple(rows), {}, {}, {}, ()).to_json()


def test_the_chosen_weight_has_the_best_mean_selection_total():
  config = _config("bc-aligner")
  config.seed = 100
  expanded, _, tuned = weight_tuning.expand(config, config_lib.strategies(config))
  totals = [  # per seed: weight -> selection total; weight 4 wins on the mean
    {1: 3.0, 4: 2.0, 16: -9.0},
    {1: -4.0, 4: 1.5, 16: 5.0},
    {1: 0.5, 4: 0.0, 16: 1.0},
  ]
  results = {
    "config": expanded.to_dict(),
    "per_seed": [
      {
        "embedding_seed": i,
        # The reported table says otherwise: it must not be read.
        "table": _table(
          {f"joint-linear-mloss@align_weight={w}": -t for w, t in s.items()}
        ),
        "selection_table": _table(
          {f"joint-linear-mloss@align_weight={w}": t for w, t in s.items()}
        ),
      }
      for i, s in enumerate(totals)
    ],
  }
  record = weight_tuning.weight_selection(results, tuned)["joint-linear-mloss"]
  assert record["tuning_seeds"] == {"seed": 100, "embedding_seeds": [0, 1, 2]}
  assert record["weight_scores"] == {str(w): [s[w] for s in totals] for w in (1, 4, 16)}
  means = {w: math.fsum(s[w] for s in totals) / 3 for w in (1, 4, 16)}
  assert record["chosen_weight"] == max(means, key=means.get) == 4
  markdown = weight_tuning.to_markdown({"joint-linear-mloss": record})
  assert "| 4 (chosen) | 1.17 | 2.00, 1.50, 0.00 |" in markdown
  del results["per_seed"][1]["selection_table"]
  with pytest.raises(InputError, match="no selection_table"):
    weight_tuning.weight_selection(results, tuned)


def test_a_report_runs_a_tuned_strategy_only_at_its_chosen_weight():
  selection = {"joint-linear-mloss": {"field": "align_weight", "chosen_weight": 4.0}}
  assert weight_tuning.chosen_names(selection) == ["joint-linear-mloss@align_weight=4"]
  weight_tuning.check_report_names(
    ["nobc", "bc-aligner", "joint-linear-mloss@align_weight=4.0", "joint-linear-sloss"],
    selection,
  )
  with pytest.raises(InputError, match="the tuning chose align_weight=4 for joint"):
    weight_tuning.check_report_names(["joint-linear-mloss@align_weight=1"], selection)


def test_a_variant_of_a_name_with_settings_is_the_name_the_run_gives_its_row():
  # The weight goes among the name's own settings, sorted: the tuning run's
  # selection table has its row under that name (issue 42: it had none).
  name = "warmjoint-linear-mloss@epochs=30"
  row = weight_tuning.variant(name, "align_weight", 4.0)
  assert row == "warmjoint-linear-mloss@align_weight=4@epochs=30"
  config = _config(f"bc-aligner,{name}")
  expanded, strategies, tuned = weight_tuning.expand(
    config, config_lib.strategies(config)
  )
  assert tuned == ["joint-linear-mloss", name]
  assert row in [s.name for s in strategies]
