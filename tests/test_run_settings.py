"""The run-level fields, declared once, and the experiment resolved once."""

import dataclasses
import glob
import json
import os

import pytest

from bcjax.errors import InputError
from bcjax.jobs import experiment, run_settings
from bcjax.methods import strategies as strategies_lib
from experiments.configs import default, test
from tests.conftest import ROOT

# Top-level fields of the default config that are sections, not run-level
# fields: the components' (bcjax.jobs.config) and the analytics'.
SECTIONS = {"transform", "loss", "method", "synthetic", "compatibility", "tuning"}


def test_the_defaults_are_the_default_configs():
  config = default.get_config()
  declared = {f.name: f.default for f in dataclasses.fields(run_settings.RunSettings)}
  fields = set(config) - SECTIONS - {"consumer"}
  # Every run-level field of the shipped config is declared, and no more.
  assert fields == set(declared)
  for name, value in declared.items():
    assert config[name] == value, name
  consumer = run_settings.ConsumerSettings()
  for f in dataclasses.fields(consumer):
    assert config.consumer[f.name] == getattr(consumer, f.name), f.name


def test_read_types_the_fields_and_fills_what_is_missing():
  config = test.get_config()
  config.weight_decay = 0  # an integer for a float field
  del config["allow_process_differences"]
  settings = run_settings.read(config)
  assert settings.run.weight_decay == 0.0 and isinstance(
    settings.run.weight_decay, float
  )
  assert settings.run.allow_process_differences is False
  assert settings.run.dims == (16, 24) and settings.consumer.hidden_sizes == (16,)
  with pytest.raises(InputError, match="^config.epochs must be an integer, got '4'$"):
    run_settings.read({**config.to_dict(), "epochs": "4"})


def test_an_experiment_is_resolved_once(monkeypatch):
  calls = []
  resolve = strategies_lib.resolve

  def counted(strategy, config):
    calls.append(strategy.name)
    return resolve(strategy, config)

  monkeypatch.setattr("bcjax.jobs.config.resolve", counted)
  config = test.get_config()
  config.strategy = "nobc,joint-linear-mloss"
  config.tuning.weights = (1.0, 4.0)
  resolved = experiment.resolve(config, tuning=True)
  # The run's two strategies once each, then only what tuning adds.
  assert calls == [
    "nobc",
    "joint-linear-mloss",
    "fix-m0",
    "joint-linear-mloss@align_weight=1",
    "joint-linear-mloss@align_weight=4",
  ]
  assert [s.name for s in resolved.strategies] == ["nobc", *calls[2:]]
  assert resolved.tuned == ("joint-linear-mloss",)
  assert resolved.settings.run.epochs == config.epochs
  assert resolved.settings.run.strategy == resolved.config.strategy
  assert experiment.resolve(resolved) is resolved  # an Experiment is kept
  with pytest.raises(dataclasses.FrozenInstanceError):
    resolved.tuned = ()
  assert config.strategy == "nobc,joint-linear-mloss"  # the caller's config


def _committed_runs():
  root = os.path.join(ROOT, "experiments", "results")
  for path in sorted(
    glob.glob(os.path.join(root, "**", "results.json"), recursive=True)
  ):
    with open(path) as f:
      results = json.load(f)
    if "table" in results:  # a comparison's, not another binary's
      yield os.path.relpath(path, root), results


def test_every_committed_run_is_read_by_its_schemas_reader():
  runs = dict(_committed_runs())
  assert len(runs) >= 20
  for path, results in runs.items():
    settings = run_settings.read_recorded(results)
    config = results["config"]
    for f in dataclasses.fields(run_settings.RunSettings):
      recorded = config.get(
        f.name, run_settings.ADDED_SINCE[results["schema_version"]].get(f.name)
      )
      value = getattr(settings.run, f.name)
      assert (list(value) if isinstance(value, tuple) else value) == recorded, (
        path,
        f.name,
      )
  # A schema with no reader, and a config that lacks a field of its schema.
  any_run = next(iter(runs.values()))
  with pytest.raises(InputError, match="schema_version 2; this bcjax reads 3, 4"):
    run_settings.read_recorded({**any_run, "schema_version": 2})
  config = {k: v for k, v in any_run["config"].items() if k != "taus"}
  with pytest.raises(InputError, match="has no config field 'taus'"):
    run_settings.read_recorded({**any_run, "config": config})


def test_a_committed_run_is_read_back_as_an_experiment(tmp_path):
  runs = dict(_committed_runs())
  for path, results in runs.items():
    recorded = experiment.recorded(results)
    assert recorded.strategy_names == tuple(results["strategies"]), path
    assert recorded.strategies == ()  # named, not resolved
    assert recorded.tuned == tuple(results.get("weight_selection") or {}), path
    assert recorded.data.dataset == results["config"]["dataset"], path
    assert list(recorded.data.taus) == results["config"]["taus"], path
  # From a workdir: its results.json; data_dir overrides the recorded one.
  path, results = next(iter(runs.items()))
  (tmp_path / "results.json").write_text(json.dumps(results))
  recorded = experiment.recorded(str(tmp_path), data_dir="/elsewhere")
  assert recorded.data.data_dir == "/elsewhere"
  assert recorded.settings == experiment.recorded(results).settings
  with pytest.raises(InputError, match="results.json is missing or unreadable"):
    experiment.recorded(str(tmp_path / "none"))
  with pytest.raises(InputError, match="without its config or strategies"):
    experiment.recorded({"schema_version": 4, "config": results["config"]})


def test_the_data_spec_loads_and_splits_as_the_dataset_functions_do():
  from bcjax.data.datasets import load_dataset
  from bcjax.data.spec import DataSpec
  from bcjax.data.split import split_version

  config = test.get_config()
  config.item_fields = ""
  spec = DataSpec.from_config(config)
  # A live ConfigDict and a recorded dict give one spec.
  assert spec == DataSpec.from_config(json.loads(json.dumps(config.to_dict())))
  assert spec.num_versions == config.num_versions and spec.taus == tuple(config.taus)
  graph = spec.load()
  reference = load_dataset("synthetic", None, config.synthetic.to_dict())
  assert graph.fingerprint() == reference.fingerprint()
  splits = spec.splits(graph)
  assert len(splits) == config.num_versions
  for k, split in enumerate(splits):
    expected = split_version(reference, k, tuple(config.taus))
    assert (split.tau_train, split.tau_val) == (expected.tau_train, expected.tau_val)
    for field in ("train_user", "train_item", "val_user", "val_item"):
      assert (getattr(split, field) == getattr(expected, field)).all(), field
  resolved = experiment.resolve(test.get_config())
  assert resolved.data == DataSpec.from_config(resolved.config)
