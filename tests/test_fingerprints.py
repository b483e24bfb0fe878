"""Each strategy's versions are checked by what that strategy uses.

Loading an extension refuses nothing that does not use it; an edit to an
extension's source refuses the strategies that use it. (A change to one
component's hyperparameters refusing only the strategies that use it is
tested on tests/test_versions.py's run.)
"""

import sys

import pytest

from bcjax.errors import InputError
from bcjax.jobs import runner
from bcjax.methods import base as methods_base
from experiments.configs import test as test_config

EXTENSION = '''
from bcjax.components import losses


def register():
  @losses.register_loss("halfloss")
  def halfloss(transform, params, old_params, previous, current, hparams):
    """Half the single-step loss."""
    del old_params, hparams
    return 0.5 * losses.single_step_loss(transform, params, previous, current)
'''


@pytest.fixture
def isolated(monkeypatch, tmp_path, scratch_registries):
  """Registries as they are now, restored after the test; the extension's
  folder on the path."""
  monkeypatch.syspath_prepend(str(tmp_path))
  yield
  sys.modules.pop("fpext", None)


def _config(strategy, imports=""):
  config = test_config.get_config()
  config.strategy = strategy
  config.imports = imports
  return config


def _fitted(monkeypatch):
  """The labels of every fit from now on (``"<strategy> v<k>"``)."""
  labels = []
  for name in ("fit_version", "fit_posthoc"):
    fit = getattr(methods_base, name)

    def record(*args, fit=fit, **kwargs):
      labels.append(kwargs["label"])
      return fit(*args, **kwargs)

    monkeypatch.setattr(methods_base, name, record)
  return labels


def test_an_extension_refuses_only_its_own_strategies_and_an_edit_refuses_them(
  isolated, tmp_path, monkeypatch
):
  (tmp_path / "fpext.py").write_text(EXTENSION)
  workdir = str(tmp_path / "w")
  runner.run(_config("nobc,posthoc-linear-sloss"), workdir)
  fitted = _fitted(monkeypatch)
  # Loading the extension reuses what was made without it.
  both = _config("nobc,posthoc-linear-sloss,posthoc-linear-halfloss", "fpext:register")
  runner.run(both, workdir)
  assert fitted and all(label.startswith("posthoc-linear-halfloss") for label in fitted)
  # An edit to its source refuses the strategy that uses it, and only it.
  (tmp_path / "fpext.py").write_text(EXTENSION + "\n# tuned\n")
  with pytest.raises(
    InputError,
    match=r"posthoc-linear-halfloss holds results of "
    r"another config: loss.source_digest '\w+' -> '\w+'",
  ):
    runner.run(both, workdir)
  del fitted[:]
  runner.run(_config("nobc,posthoc-linear-sloss", "fpext:register"), workdir)
  assert fitted == []
