"""Config checks: one clear message naming the field."""

import pytest

from bcjax.errors import InputError
from bcjax.jobs import config as config_lib
from experiments import cli
from experiments.configs import converged, default, paper, test


@pytest.mark.parametrize("module", [default, converged, paper, test])
def test_shipped_configs_are_valid(module):
  config_lib.validate(module.get_config())


@pytest.mark.parametrize(
  "change,message",
  [
    (
      lambda c: setattr(c, "dims", (24, 16)),
      r"config.dims=\(24, 16\) shrinks at version 1",
    ),
    (
      lambda c: setattr(c.method.joint, "keep_after", 4),
      "config.method.joint.keep_after=4 leaves no epoch",
    ),
    (
      lambda c: setattr(c.method.posthoc, "keep_after", 9),
      "^config.method.posthoc.keep_after must be below epochs=4 .* got 9$",
    ),
    (
      lambda c: setattr(c.consumer, "hidden_sizes", ()),
      "consumer.hidden_sizes must be a list of at least one value",
    ),
    (
      lambda c: setattr(c.consumer, "dropouts", (1.0,)),
      r"consumer.dropouts must be rates that lie in \[0, 1\)",
    ),
    (
      lambda c: setattr(c.consumer, "seeds", 0),
      "consumer.seeds must be a positive integer",
    ),
    (lambda c: setattr(c, "num_devices", -1), "num_devices must be 0"),
    (lambda c: setattr(c, "num_seeds", 0), "config.num_seeds must be a positive"),
    (lambda c: setattr(c, "patience", -5), "config.patience must be 0 .* got -5"),
    (lambda c: setattr(c, "taus", (0.5, 0.4, 1.0)), "taus must be increasing"),
    (lambda c: setattr(c, "weight_decay", -1.0), "weight_decay must be >= 0"),
    (
      lambda c: setattr(c, "report_split", "test"),
      "^config.report_split must be one of validation, held_out, got 'test'$",
    ),
    (
      lambda c: setattr(c.transform.linear, "init", "zeros"),
      "^config.transform.linear.init must be one of uniform, identity, got 'zeros'$",
    ),
    (
      lambda c: setattr(c.method.posthoc, "learning_rate", 0.0),
      "^config.method.posthoc.learning_rate must be positive, got 0.0$",
    ),
    (
      lambda c: setattr(c.method.posthoc, "min_delta", 1.5),
      r"^config.method.posthoc.min_delta must be a fraction in \[0, 1\), got 1.5$",
    ),
    (
      lambda c: setattr(c.method.posthoc, "patience", -1),
      "^config.method.posthoc.patience must be an integer >= 0, got -1$",
    ),
    (
      lambda c: setattr(c.method.finetune_m0, "epochs", 0),
      "^config.method.finetune_m0.epochs must be a positive integer, got 0$",
    ),
    (
      lambda c: setattr(c.method.closedform, "ridge", -1.0),
      "^config.method.closedform.ridge must be >= 0",
    ),
    (
      lambda c: c.transform.unlock().update(lowrnk={"rank": 2}),
      "^unknown config.transform section 'lowrnk'; valid config.transform section "
      "names: linear, mlp, softorthogonal$",
    ),
    (
      lambda c: c.unlock().update(transform_init="uniform"),
      "^config.transform_init is now config.transform.linear.init",
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


def test_converged_differs_from_default_only_in_how_its_fits_train_and_stop():
  changed = {
    name
    for name in cli.field_names(default.get_config())
    if _field(default.get_config(), name) != _field(converged.get_config(), name)
  }
  assert changed == {
    "epochs",
    "patience",
    "method.finetune_m0.epochs",
    "method.posthoc.epochs",
    "method.posthoc.patience",
    "method.posthoc.min_delta",
    "method.posthoc.start",
  }
  config = converged.get_config()
  # Patience is whole checks of the fits' cadence.
  assert config.patience > 0 and config.patience % config.eval_every == 0
  posthoc = config.method.posthoc
  assert posthoc.patience > 0 and posthoc.patience % config.eval_every == 0
  assert 0 < posthoc.min_delta < 0.01


def _field(config, dotted: str):
  for part in dotted.split("."):
    config = config[part]
  return config
