"""The strategy grammar and the config's strategy list."""

import pytest

from bcjax.errors import InputError
from bcjax.jobs import config as config_lib
from bcjax.methods.strategies import (
  PAPER_STRATEGIES,
  parse_strategy,
  resolve,
  valid_names,
)
from experiments.configs import test as test_config


def test_paper_strategies_parse():
  for name in PAPER_STRATEGIES:
    assert parse_strategy(name).name == name
  s = parse_strategy("joint-linear-mloss")
  assert (s.method, s.transform, s.loss) == ("joint", "linear", "mloss")


def test_alias_and_extensions():
  assert parse_strategy("bc-aligner") == parse_strategy("joint-linear-mloss")
  assert parse_strategy("posthoc-mlp-sloss").transform == "mlp"
  assert parse_strategy("joint-mlp-mloss").learns_transform
  assert "joint-mlp-mloss" in valid_names() and "bc-aligner" in valid_names()


@pytest.mark.parametrize(
  "name,reason",
  [
    ("posthoc-notrans-sloss", "post-hoc training needs a learned transform"),
    ("joint-notrans-mloss", "multi-step loss has nothing to add"),
  ],
)
def test_invalid_combinations_give_a_reason(name, reason):
  with pytest.raises(InputError, match=reason):
    parse_strategy(name)


def test_unknown_name_lists_valid_ones():
  with pytest.raises(InputError) as error:
    parse_strategy("joint-linear-xloss")
  message = str(error.value)
  assert "unknown strategy 'joint-linear-xloss'" in message
  for name in PAPER_STRATEGIES:
    assert name in message


def test_unknown_name_says_what_it_is_close_to_and_which_part_is_missing():
  with pytest.raises(InputError, match="unknown strategy 'nbc'; did you mean nobc;"):
    parse_strategy("nbc")
  # A part no registry has is most often an extension's, not loaded.
  with pytest.raises(InputError) as error:
    parse_strategy("joint-linear-cosloss")
  assert "did you mean joint-linear-sloss" in str(error.value)
  assert (
    "(no alignment loss 'cosloss' is registered: if an extension defines it, "
    "load its module with --config.imports=MODULE)"
  ) in str(error.value)
  with pytest.raises(InputError, match=r"--config.imports=myext does not register it"):
    parse_strategy("joint-lowrank-sloss", imports="myext")


def test_config_strategy_list_expands_paper_and_dedupes_aliases():
  config = test_config.get_config()
  config.strategy = "paper,bc-aligner,joint-mlp-sloss"
  names = [s.name for s in config_lib.strategies(config)]
  assert names == list(PAPER_STRATEGIES) + ["joint-mlp-sloss"]


def test_a_name_sets_its_methods_hyperparameters_after_an_at():
  s = parse_strategy("bc-aligner@keep_after=2@align_weight=4.0")
  # Canonical: the alias's name, settings sorted, 4.0 printed as 4.
  assert s.name == "joint-linear-mloss@align_weight=4@keep_after=2"
  assert s.overrides == (("align_weight", 4.0), ("keep_after", 2))
  assert s.base_name == "joint-linear-mloss"
  config = config_lib.with_component_sections(test_config.get_config())
  resolved = resolve(s, config)
  plain = resolve("joint-linear-mloss", config)
  assert (resolved.hparams.align_weight, resolved.hparams.keep_after) == (4.0, 2)
  assert plain.hparams.align_weight == config.method.joint.align_weight == 16.0
  # The same keys as the plain strategy: the weight is the only difference.
  assert resolved.id == plain.id == "joint-linear-mloss"
  assert resolved.name != plain.name  # its own checkpoints and table row
  config.strategy = "joint-linear-mloss,joint-linear-mloss@align_weight=16,nobc"
  assert [x.name for x in config_lib.strategies(config)] == [
    "joint-linear-mloss",
    "joint-linear-mloss@align_weight=16",
    "nobc",
  ]


@pytest.mark.parametrize(
  "name,message",
  [
    ("nobc@align_weight=4", r"'align_weight=4' is not a setting.*\(it has none\)"),
    ("joint-linear-mloss@weight=4", r"one of method 'joint'.*align_weight, keep_after"),
    ("joint-linear-mloss@align_weight", r"'align_weight' is not a setting"),
    ("joint-linear-mloss@align_weight=x", r"align_weight must be a number, got 'x'"),
    ("joint-linear-mloss@keep_after=1.5", r"keep_after must be an integer"),
    ("joint-linear-mloss@align_weight=1@align_weight=2", r"sets 'align_weight' twice"),
  ],
)
def test_a_bad_setting_in_a_name_is_one_line(name, message):
  with pytest.raises(InputError, match=message):
    parse_strategy(name)


def test_a_setting_its_dataclass_refuses_names_the_field():
  config = config_lib.with_component_sections(test_config.get_config())
  with pytest.raises(
    InputError, match=r"config.method.joint .*@ settings.*align_weight"
  ):
    resolve("joint-linear-mloss@align_weight=-1", config)
