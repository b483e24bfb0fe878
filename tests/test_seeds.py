"""Embedding seeds end to end: a table with intervals, resumed seed by seed.

One module fixture runs the tiny test config on three strategies and one task
with one seed, then again with two on the same workdir (the first seed
reused, not recomputed), so that the whole file costs about one run.
"""

import csv
import io
import json
import os

import jax
import numpy as np
import pytest

import bcjax.jobs.comparison as comparison
from bcjax import keys
from bcjax.errors import InputError
from bcjax.jobs import runner, seed_lockstep
from experiments.configs import test as test_config
from tests.conftest import assert_json_close

STRATEGIES = ("nobc", "fix-m0", "joint-linear-mloss")


def small_config(num_seeds):
  config = test_config.get_config()
  config.strategy = ",".join(STRATEGIES)
  config.tasks = "binary-edge-rating"
  config.num_seeds = num_seeds
  return config


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
  """One seed, then two on the same workdir, recording what was made."""
  workdir = str(tmp_path_factory.mktemp("seeds"))
  one = comparison.run(small_config(1), workdir)
  made, fitted = [], []
  make, fit = runner.Runner._make, comparison.fit_consumer

  def recording_make(self, strategy, k, earlier):
    made.append((os.path.relpath(self.data.workdir, workdir), strategy.name, k))
    return make(self, strategy, k, earlier)

  def recording_fit(task, *args, **kwargs):
    fitted.append(task.name)
    return fit(task, *args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(runner.Runner, "_make", recording_make)
    patch.setattr(comparison, "fit_consumer", recording_fit)
    two = comparison.run(small_config(2), workdir)
  return workdir, one, two, made, fitted


def test_seed_zero_keeps_the_one_seed_keys():
  old = jax.random.fold_in(
    jax.random.fold_in(
      jax.random.fold_in(jax.random.key(7), keys.VERSIONS), keys.hash_name("nobc")
    ),
    2,
  )
  same = keys.version_key(7, "nobc", 2, embedding_seed=0)
  other = keys.version_key(7, "nobc", 2, embedding_seed=1)
  data = jax.random.key_data
  np.testing.assert_array_equal(data(same), data(old))
  assert not np.array_equal(data(other), data(old))


def test_one_seed_is_a_one_seed_table(seeded):
  workdir, one, *_ = seeded
  assert "per_seed" not in one and "num_seeds" not in one
  assert "intervals" not in one["table"]["rows"][0]
  assert "tradeoff.png" in one["plots"]


def test_more_seeds_reuse_the_finished_one(seeded):
  workdir, one, two, made, fitted = seeded
  # Seed 1 alone was trained and its consumers fitted; seed 0 was restored.
  assert made and {where for where, _, _ in made} == {os.path.join("seeds", "1")}
  assert fitted == ["binary-edge-rating"]
  first = two["per_seed"][0]
  assert first["table"]["rows"] == one["table"]["rows"]
  assert first["strategies"] == one["strategies"]
  # Seed 1 has its own M_0.
  second = two["per_seed"][1]
  assert second["workdir"] == os.path.join("seeds", "1")
  m0 = [s["strategies"]["fix-m0"][0]["recall"]["50"] for s in two["per_seed"]]
  assert m0[0] != m0[1]
  assert os.path.exists(os.path.join(workdir, "seeds", "1", "results.json"))


def test_results_hold_every_seed_and_the_table_its_intervals(seeded):
  workdir, _, two, *_ = seeded
  on_disk = json.loads(open(os.path.join(workdir, "results.json")).read())
  assert on_disk["num_seeds"] == 2 and len(on_disk["per_seed"]) == 2
  rows = {row["strategy"]: row for row in on_disk["table"]["rows"]}
  for s in STRATEGIES:
    per_seed = [
      {r["strategy"]: r for r in seed["table"]["rows"]}[s]["total"]
      for seed in on_disk["per_seed"]
    ]
    assert rows[s]["per_seed"]["total"] == per_seed
    assert rows[s]["total"] == pytest.approx(np.mean(per_seed))
  # nobc is its own reference in every seed: 0 with a zero-width interval.
  assert rows["nobc"]["intervals"]["intended"]["low"] == 0.0
  paired = {r["strategy"]: r for r in on_disk["table"]["paired"]["rows"]}
  assert set(paired) == {"nobc", "fix-m0"}
  table_md = open(os.path.join(workdir, "table.md")).read()
  assert "mean ± 95% interval over 2 embedding seeds" in table_md
  assert "Student-t 95% interval with 1 degree of freedom" in table_md
  assert "## Paired differences: joint-linear-mloss minus each strategy" in table_md
  assert " ± " in table_md.split("## Paired")[0]
  header = next(
    csv.reader(io.StringIO(open(os.path.join(workdir, "table.csv")).read()))
  )
  assert header[:4] == ["strategy", "intended", "intended_low", "intended_high"]


def test_fewer_seeds_on_a_used_workdir_are_refused(seeded):
  workdir, *_ = seeded
  with pytest.raises(InputError, match="holds results of 2 embedding seeds"):
    comparison.run(small_config(1), workdir)


def test_a_workdir_of_the_old_schema_is_refused(tmp_path):
  # As made before schema 3: checkpoints, config.json without a schema,
  # results.json of schema 2.
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(json.dumps({"dataset": "synthetic"}))
  (tmp_path / "results.json").write_text(json.dumps({"schema_version": 2}))
  with pytest.raises(InputError) as error:
    comparison.run(small_config(1), str(tmp_path))
  message = str(error.value)
  assert "results schema 2, this bcjax writes 4" in message
  assert "table formula" in message and "B init differ" in message
  assert "checked by its own strategy" in message


def test_seeds_in_lockstep_fit_their_consumers_together(seeded, tmp_path):
  _, _, two, *_ = seeded
  calls = []
  real = seed_lockstep.fit_consumers

  def spy(task, train_tables, *args, **kwargs):
    calls.append((task.name, len(train_tables)))
    return real(task, train_tables, *args, **kwargs)

  config = small_config(2)
  config.seed_batch = 2
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(seed_lockstep, "fit_consumers", spy)
    batched = comparison.run(config, str(tmp_path))
  # One program for both seeds' consumers of the one task.
  assert calls == [("binary-edge-rating", 2)]
  # The seeds' models are fitted together too (parameters within 1e-5 of
  # alone, tests/test_seed_batch_runner.py) and so are their consumers
  # (logits within 2e-3, tests/test_consumers.py): the consumers' choices are
  # the same, their metrics agree to 5e-3 (2.1e-4 seen).
  for alone, together in zip(two["per_seed"], batched["per_seed"], strict=True):
    assert_json_close(alone["unintended"], together["unintended"], atol=5e-3)
