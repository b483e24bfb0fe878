"""The strategy grammar and the config's strategy list."""

import pytest

from bcjax.errors import InputError
from bcjax.jobs import config as config_lib
from bcjax.methods.strategies import PAPER_STRATEGIES, parse_strategy, valid_names
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
