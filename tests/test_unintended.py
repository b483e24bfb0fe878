"""Unintended-task records: per consumer seed in, results.json's means out."""

import json

import numpy as np
import pytest

from bcjax.errors import InputError
from bcjax.evaluation.table import comparison_table
from bcjax.evaluation.unintended import (
  ConsumerChoice,
  UnintendedResults,
  UnintendedScore,
  UnintendedTask,
  mean_over_seeds,
)
from tests.test_table import make_results

TASK = UnintendedTask(
  name="brand",
  metric="auc",
  core=True,
  selection_version=0,
  input="item",
  num_train=40,
  consumer=ConsumerChoice(8, 0.1, (0.7, 0.72), (3, 4), {"8/0.1": 0.71}),
)


def _random_scores(rng, strategies, versions, seeds, undefined=()):
  return tuple(
    UnintendedScore(
      "brand",
      s,
      k,
      seed,
      None if (s, k, seed) in undefined else float(rng.uniform(0.5, 1.0)),
    )
    for s in strategies
    for k in versions
    for seed in range(seeds)
  )


def test_per_version_is_the_mean_over_consumer_seeds():
  rng = np.random.default_rng(0)
  scores = _random_scores(rng, ["nobc", "fix-m0"], [1, 2, 3], 3, {("nobc", 2, 1)})
  results = UnintendedResults((TASK,), scores)
  for strategy in ("nobc", "fix-m0"):
    got = results.per_version("brand", strategy)
    assert list(got) == [1, 2, 3]
    for k, value in got.items():
      seeds = [s.value for s in scores if s.strategy == strategy and s.version == k]
      if None in seeds:
        assert value is None
      else:
        assert value == float(np.mean(seeds))
  assert results.strategies("brand") == ["nobc", "fix-m0"]
  assert mean_over_seeds([]) is None


def test_json_keeps_the_means_and_reads_back_the_same():
  rng = np.random.default_rng(1)
  results = UnintendedResults((TASK,), _random_scores(rng, ["a", "b"], [0, 1], 2))
  written = json.loads(json.dumps(results.to_json()))
  assert list(written["brand"]) == [
    "metric",
    "core",
    "input",
    "selection_version",
    "num_train",
    "consumer",
    "per_strategy",
  ]
  back = UnintendedResults.from_json(written)
  assert back.tasks == (TASK,)
  assert {s.consumer_seed for s in back.scores} == {None}
  assert back.to_json() == written
  for strategy in ("a", "b"):
    assert back.per_version("brand", strategy) == results.per_version("brand", strategy)


def test_the_table_from_records_equals_the_table_from_json():
  rng = np.random.default_rng(2)
  results = make_results()
  strategies = list(results["strategies"])
  versions = range(1, 3)
  records = UnintendedResults((TASK,), _random_scores(rng, strategies, versions, 3))
  results["unintended"] = json.loads(json.dumps(records.to_json()))
  from_records = comparison_table(results, records)
  from_json = comparison_table(json.loads(json.dumps(results)))
  assert from_records == from_json
  # Versions after the selection version (0), each the mean over seeds.
  means = records.per_version("brand", "nobc")
  assert from_records.per_task["nobc"]["brand"] == pytest.approx(
    np.mean([means[1], means[2]])
  )


@pytest.mark.parametrize("field", ["core", "selection_version", "per_strategy"])
def test_a_missing_field_is_named(field):
  written = UnintendedResults((TASK,), ()).to_json()
  del written["brand"][field]
  with pytest.raises(
    InputError, match=f"unintended\\['brand'\\] has no field '{field}'"
  ):
    UnintendedResults.from_json(written)


def test_version_keys_must_be_numbers():
  written = UnintendedResults((TASK,), ()).to_json()
  written["brand"]["per_strategy"] = {"a": {"per_version": {"last": 0.5}}}
  with pytest.raises(InputError, match="per_version keys must be version numbers"):
    UnintendedResults.from_json(written)


def test_halves_round_trip_and_the_selection_table_reads_the_other_half():
  """A held-out run's two halves: written apart, read back apart, and the
  selection table built from the selection half alone (the report table
  from the report half alone)."""
  rng = np.random.default_rng(4)
  results = make_results()
  strategies = list(results["strategies"])
  report = _random_scores(rng, strategies, [1, 2], 2)
  selection = tuple(
    UnintendedScore(
      s.task, s.strategy, s.version, s.consumer_seed, 1 - s.value, "selection"
    )
    for s in _random_scores(rng, strategies, [1, 2], 2)
  )
  records = UnintendedResults((TASK,), report + selection)
  assert records.halves == ("report", "selection")
  written = json.loads(json.dumps(records.to_json()))
  assert set(written["brand"]["per_strategy"]["nobc"]) == {
    "per_version",
    "selection_per_version",
  }
  back = UnintendedResults.from_json(written)
  for half in ("report", "selection"):
    assert back.per_version("brand", "nobc", half) == records.per_version(
      "brand", "nobc", half
    )
  for versions in results["strategies"].values():
    for v in versions:
      v["selection_recall"] = {"50": v["recall"]["50"] / 2}
  results["unintended"] = written
  chosen_on = comparison_table(results, half="selection")
  reported = comparison_table(results)
  only_selection = UnintendedResults((TASK,), records.on_half("selection").scores)
  only_report = UnintendedResults((TASK,), report)
  del results["unintended"]
  assert (
    chosen_on.per_task
    == comparison_table(
      {
        **results,
        "strategies": {
          s: [{**v, "recall": v["selection_recall"]} for v in vs]
          for s, vs in results["strategies"].items()
        },
      },
      only_selection,
    ).per_task
  )
  assert reported == comparison_table(results, only_report)
  assert chosen_on.rows != reported.rows
  with pytest.raises(InputError, match="no 'selection' scores"):
    only_report.on_half("selection")
  with pytest.raises(InputError, match="unknown table half 'other'"):
    comparison_table(results, only_report, half="other")
