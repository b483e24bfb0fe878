"""Components own their hyperparameters, and extensions travel with checkpoints.

A user's module, written here to ``tmp_path`` as they would write it outside
the package, registers a low-rank transform ``lowrank`` (``W = U V`` with a
``rank`` hyperparameter), a cosine alignment loss ``cosloss`` (an ``eps``)
and a two-stage method ``twostage`` (train M_k and B_k jointly, then refit
B_k post hoc on the frozen M_k), from :mod:`bcjax.methods.building_blocks`.
It is loaded by ``--config.imports`` alone: its hyperparameters are config
fields (``--config.transform.lowrank.rank=2``) that ``--help`` lists, the
binaries run it, a fresh process serves its checkpoints importing it from
their metadata, and a rerun with another rank is refused naming the field.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bcjax.errors import InputError
from bcjax.jobs import config as config_lib
from bcjax.methods import strategies
from bcjax.storage.checkpoints import VersionStore

MODULE = "bcjax_ext_lowrank"
STRATEGY = "twostage-lowrank-cosloss"
SOURCE = textwrap.dedent(
  '''
  """A user's extension: a transform, a loss and a method, each with hparams."""

  import dataclasses

  import jax
  import jax.numpy as jnp

  from bcjax.components import hparams, losses, transforms
  from bcjax.methods import register_method
  from bcjax.methods.building_blocks import (
    fit_transform_posthoc,
    train_jointly,
    with_transform,
  )


  @dataclasses.dataclass(frozen=True)
  class LowRank:
    rank: int = 2
    init: str = "normal"  # not linear's "uniform": each family owns its own

    def __post_init__(self):
      hparams.require(
        isinstance(self.rank, int) and self.rank >= 1,
        "rank",
        "a positive integer",
        self.rank,
      )
      hparams.require(self.init in ("normal",), "init", "'normal'", self.init)


  @transforms.register_transform("lowrank", hparams=LowRank)
  def lowrank(hp):
    """z @ U @ V with U (d_in, rank) and V (rank, d_out)."""

    def init(key, d_in, d_out):
      ku, kv = jax.random.split(key)
      return {
        "u": jax.random.normal(ku, (d_in, hp.rank)) / d_in**0.5,
        "v": jax.random.normal(kv, (hp.rank, d_out)) / hp.rank**0.5,
      }

    def as_matrix(params):
      return params["u"] @ params["v"]

    return transforms.BackwardTransform(
      init, lambda p, z: z @ as_matrix(p), "lowrank", as_matrix=as_matrix
    )


  @dataclasses.dataclass(frozen=True)
  class Cosine:
    eps: float = 1e-8


  @losses.register_loss("cosloss", hparams=Cosine)
  def cosloss(transform, params, old_params, previous, current, hparams):
    """Sum over groups of the mean cosine distance (older versions ignored)."""
    del old_params

    def distance(a, b):
      dot = jnp.sum(a * b, axis=-1)
      norms = jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)
      return jnp.mean(1.0 - dot / (norms + hparams.eps))

    return sum(
      distance(p, transform.apply(params, c)) for p, c in zip(previous, current)
    )


  @dataclasses.dataclass(frozen=True)
  class TwoStage:
    align_weight: float = 16.0
    keep_after: int = 0
    refit_epochs: int = 4
    refit_keep_after: int = 1


  @register_method("twostage", hparams=TwoStage)
  def twostage(ctx, k, earlier):
    """Joint training, then B_k refitted post hoc on the jointly trained M_k."""
    hp = ctx.hparams
    joint = train_jointly(ctx, k, earlier, hp.align_weight, hp.keep_after)
    fit, seconds = fit_transform_posthoc(
      ctx,
      joint,
      earlier,
      epochs=hp.refit_epochs,
      keep_after=hp.refit_keep_after,
    )
    return with_transform(ctx, joint, fit.params, fit.best_epoch, seconds)
  '''
)


@pytest.fixture
def extension(tmp_path, monkeypatch, scratch_registries):
  """The user's module in ``tmp_path``; registries restored after the test."""
  folder = tmp_path / "ext"
  folder.mkdir()
  (folder / f"{MODULE}.py").write_text(SOURCE)
  monkeypatch.syspath_prepend(str(folder))
  yield folder
  sys.modules.pop(MODULE, None)


def python(*args, cwd, path=()):
  """``python args`` with the repository (and ``path``) importable."""
  return subprocess.run(
    [sys.executable, *args],
    cwd=cwd,
    env=dict(
      os.environ,
      PYTHONPATH=os.pathsep.join([*map(str, path), os.environ["PYTHONPATH"]]),
    ),
    capture_output=True,
    text=True,
    timeout=600,
  )


def binary(module, workdir, *overrides, cwd, path):
  return python(
    "-m",
    module,
    f"--workdir={workdir}",
    "--config=test",
    f"--config.imports={MODULE}",
    *overrides,
    cwd=cwd,
    path=path,
  )


def one_error_line(proc, after_logs: bool = False) -> str:
  """The one ``error:`` line of a refused command (after its log lines)."""
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  if after_logs:  # refused once the data is loaded: progress lines come first
    lines = lines[-1:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
  return lines[0]


SERVE = textwrap.dedent(
  """
  import json, sys
  from bcjax import registry
  from bcjax.errors import exit_on_user_error
  with exit_on_user_error():
    reg = registry.open(sys.argv[1])
  chain = reg.chain(1, 0)
  z1 = reg.embeddings(version=1, kind="item")
  z0 = reg.embeddings(version=0, kind="item")
  print(json.dumps({
    "imported": "bcjax_ext_lowrank" in sys.modules,
    "shape": list(chain.weights.shape),
    "rank": int(__import__("numpy").linalg.matrix_rank(chain.weights)),
    "error": float(abs(z0 - z1 @ chain.weights).max()),
  }))
  """
)


def test_extension_runs_is_served_fresh_and_its_rank_is_fingerprinted(
  extension, tmp_path
):
  workdir = tmp_path / "run"
  strategy = f"--config.strategy=nobc,fix-m0,{STRATEGY}"
  rank = "--config.transform.lowrank.rank=2"
  proc = binary(
    "experiments.run_intended", workdir, strategy, rank, cwd=tmp_path, path=[extension]
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = binary(
    "experiments.compare", workdir, strategy, rank, cwd=tmp_path, path=[extension]
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "reused" in proc.stderr  # compare reused run_intended's versions
  results = json.loads((workdir / "results.json").read_text())
  assert results["config"]["transform"]["lowrank"] == {"rank": 2, "init": "normal"}
  assert results["config"]["method"]["twostage"]["refit_epochs"] == 4
  rows = {row["strategy"]: row for row in results["table"]["rows"]}
  assert rows[STRATEGY]["intended"] is not None
  assert np.isfinite(results["strategies"][STRATEGY][1]["alignment_mse_previous"])

  # A fresh process serves the checkpoints: the metadata names the module.
  path = workdir / "checkpoints" / STRATEGY
  with VersionStore(str(path), create=False) as store:
    metadata = store.metadata(1)
  assert metadata["transform"]["hparams"] == {"rank": 2, "init": "normal"}
  assert metadata["components"] == {
    "method": {"name": "twostage", "source": MODULE},
    "transform": {"name": "lowrank", "source": MODULE},
    "loss": {"name": "cosloss", "source": MODULE},
  }
  served = python("-c", SERVE, str(path), cwd=tmp_path, path=[extension])
  assert served.returncode == 0, served.stderr[-3000:]
  out = json.loads(served.stdout)
  assert out["imported"] and out["shape"] == [24, 16] and out["rank"] <= 2
  assert out["error"] < 1e-4
  # Without the module on the path: one line naming it.
  line = one_error_line(python("-c", SERVE, str(path), cwd=tmp_path))
  assert f"needs the extension '{MODULE}': cannot import '{MODULE}'" in line

  # The hyperparameter is part of the strategy's fields: another rank is refused.
  line = one_error_line(
    binary(
      "experiments.compare",
      workdir,
      strategy,
      "--config.transform.lowrank.rank=8",
      cwd=tmp_path,
      path=[extension],
    ),
    after_logs=True,
  )
  assert "another config: transform.hparams.rank 2 -> 8" in line


def test_help_lists_every_component_hyperparameter(extension, tmp_path):
  proc = binary("experiments.compare", "w", "--help", cwd=tmp_path, path=[extension])
  assert proc.returncode == 0, proc.stderr[-3000:]
  for line in (
    "transform.lowrank.rank = 2",
    "transform.lowrank.init = 'normal'",
    "loss.cosloss.eps = 1e-08",
    "method.twostage.refit_epochs = 4",
    "transform.linear.init = 'uniform'",
    "transform.mlp.hidden = 0",
    "method.joint.align_weight = 16.0",
    "method.joint.keep_after = 1",  # the test config's own value
    "method.posthoc.epochs = 4",
    "method.finetune_m0.epochs = 2",
    "method.closedform.ridge = 1e-06",
  ):
    assert f"  {line}\n" in proc.stdout, line


@pytest.mark.parametrize(
  "override,expected",
  [
    (
      "--config.transform.lowrank.rnak=3",
      "no field 'transform.lowrank.rnak'; did you mean transform.lowrank.rank",
    ),
    ("--config.transform.lowrank.rank=abc", "bad --config override"),
    (
      "--config.transform.lowrank.rank=0",
      "config.transform.lowrank.rank must be a positive integer, got 0",
    ),
    (
      "--config.method.twostage.refit_epochs=1.5",
      "bad --config override",
    ),
  ],
)
def test_a_bad_extension_field_is_one_error_line(
  extension, tmp_path, override, expected
):
  proc = binary(
    "experiments.run_intended",
    "w",
    f"--config.strategy={STRATEGY}",
    override,
    cwd=tmp_path,
    path=[extension],
  )
  assert expected in one_error_line(proc)
  assert not (tmp_path / "w").exists()  # nothing ran


def test_each_family_gets_its_own_hyperparameters(extension):
  from experiments.configs import test as test_config

  config = test_config.get_config()
  config.imports = MODULE
  config.transform.linear.init = "identity"
  config = config_lib.with_component_sections(config)
  config.transform.lowrank.rank = 3
  resolved = strategies.resolve(STRATEGY, config)
  # linear's init does not leak into another family with an init of its own.
  assert resolved.transform.hparams.init == "normal"
  assert resolved.transform.hparams.rank == 3
  assert resolved.transform.spec(6, 4)["hparams"] == {"rank": 3, "init": "normal"}
  assert resolved.loss.hparams.eps == 1e-8
  assert resolved.hparams.refit_epochs == 4
  assert strategies.resolve("joint-linear-sloss", config).transform.hparams.init == (
    "identity"
  )
  config.transform.lowrank.init = "uniform"
  with pytest.raises(
    InputError, match="^config.transform.lowrank.init must be 'normal', got 'uniform'$"
  ):
    config_lib.validate(config)
