"""Config checks: one clear message naming the field."""

import pytest

from bcjax import config as config_lib
from bcjax.errors import InputError
from experiments.configs import default, paper, test


@pytest.mark.parametrize("module", [default, paper, test])
def test_shipped_configs_are_valid(module):
  config_lib.validate(module.get_config())


@pytest.mark.parametrize(
  "change,message",
  [
    (
      lambda c: setattr(c, "dims", (24, 16)),
      r"config.dims=\(24, 16\) shrinks at version 1",
    ),
    (lambda c: setattr(c, "joint_keep_after", 4), "joint_keep_after=4 leaves no epoch"),
    (
      lambda c: setattr(c, "posthoc_keep_after", 9),
      "posthoc_keep_after=9 leaves no epoch",
    ),
    (
      lambda c: setattr(c.consumer, "hidden_sizes", ()),
      "consumer.hidden_sizes must list",
    ),
    (
      lambda c: setattr(c.consumer, "dropouts", (1.0,)),
      r"consumer.dropouts must lie in \[0, 1\)",
    ),
    (
      lambda c: setattr(c.consumer, "seeds", 0),
      "consumer.seeds must be a positive integer",
    ),
    (lambda c: setattr(c, "num_devices", -1), "num_devices must be 0"),
    (lambda c: setattr(c, "num_seeds", 0), "config.num_seeds must be a positive"),
    (lambda c: setattr(c, "taus", (0.5, 0.4, 1.0)), "taus must be increasing"),
    (lambda c: setattr(c, "weight_decay", -1.0), "weight_decay must be >= 0"),
    (
      lambda c: setattr(c, "report_split", "test"),
      "^unknown report split 'test'; valid report split names: held_out, validation$",
    ),
    (
      lambda c: setattr(c, "transform_init", "zeros"),
      "^unknown transform init 'zeros'; valid transform init names: identity, uniform$",
    ),
    (
      lambda c: setattr(c, "posthoc_learning_rate", 0.0),
      "posthoc_learning_rate must be positive",
    ),
  ],
)
def test_bad_fields_are_named(change, message):
  config = test.get_config()
  change(config)
  with pytest.raises(InputError, match=message):
    config_lib.validate(config)


def test_shrinking_dims_are_fine_without_truncating_strategies():
  config = test.get_config()
  config.strategy = "fix-m0,joint-linear-mloss"
  config.dims = (24, 16)
  config_lib.validate(config)
