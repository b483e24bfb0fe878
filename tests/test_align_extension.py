"""A bridge family of the user's own: its flags, and its bridges served fresh.

The family lives in a module written to a temporary folder, as a user's
would; every process here is a fresh one, so nothing is registered by hand.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import ROOT

MODULE = "bcjax_ext_family"
SOURCE = textwrap.dedent(
  '''
  """A user's bridge family: least squares, then scaled."""

  import dataclasses

  import numpy as np

  from bcjax.align import families


  @dataclasses.dataclass(frozen=True)
  class ScaledHP:
    scale: float = 1.0


  def fit(data, hp, seed):
    del seed
    m = data.moments()
    return {"kernel": (np.linalg.pinv(m.gram) @ m.cross * hp.scale).astype(np.float32)}


  families.register_family(
    families.Family(
      name="scaledlinear",
      hparams=ScaledHP,
      fn=fit,
      apply=lambda params, x: x @ params["kernel"],
      num_params=lambda hp, d_new, d_old: d_new * d_old,
      grid=lambda d_new, d_old: (ScaledHP(),),
      as_matrix=lambda params: params["kernel"],
    )
  )
  '''
)
SERVE = "from bcjax import registry; import sys; print(registry.open(sys.argv[1]).embeddings(version=0, ids=[3, 4]).tolist())"


@pytest.fixture
def folder(tmp_path):
  ext = tmp_path / "ext"
  ext.mkdir()
  (ext / f"{MODULE}.py").write_text(SOURCE)
  rng = np.random.default_rng(0)
  new = rng.normal(size=(80, 5)).astype(np.float32)
  old = (new @ rng.normal(size=(5, 3))).astype(np.float32)
  np.save(tmp_path / "old.npy", old)
  np.save(tmp_path / "new.npy", new)
  return tmp_path, old, new


def _python(*args, cwd, path=()):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([*map(str, path), env["PYTHONPATH"]])
  return subprocess.run(
    [sys.executable, *args],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def _align(tmp, *flags, path=()):
  return _python(
    "-m",
    "experiments.align",
    f"--workdir={tmp / 'w'}",
    f"--old={tmp / 'old.npy'}",
    f"--new={tmp / 'new.npy'}",
    "--nobackfill",
    *flags,
    cwd=ROOT,
    path=path,
  )


def test_a_users_family_is_fitted_with_its_flags_and_served_fresh(folder):
  tmp, old, _ = folder
  ext = tmp / "ext"
  done = _align(
    tmp,
    f"--imports={MODULE}",
    "--family=scaledlinear",
    "--hparams.scaledlinear.scale=2.0",
    path=[ext],
  )
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((tmp / "w" / "results.json").read_text())
  assert results["bridge"]["family"] == "scaledlinear"
  assert results["bridge"]["hparams"] == {"scale": 2.0}
  # A fresh process serves the store: the bridge names its module, which
  # registers the family. Scaled by 2, the served rows are twice the old ones.
  served = _python("-c", SERVE, str(tmp / "w"), cwd=tmp, path=[ext])
  assert served.returncode == 0, served.stderr[-3000:]
  np.testing.assert_allclose(json.loads(served.stdout), 2 * old[[3, 4]], atol=1e-3)
  # Without the module on the path: one line naming it.
  missing = _python("-c", SERVE, str(tmp / "w"), cwd=tmp)
  assert missing.returncode != 0
  assert (
    f"(bridge family 'scaledlinear') needs the extension '{MODULE}'" in missing.stderr
  )


def test_family_hyperparameters_are_flags_checked_by_their_dataclass(folder):
  tmp, *_ = folder
  help_text = _python("-m", "experiments.align", "--helpfull", cwd=ROOT).stdout
  assert "reducedrank.rank=32" in " ".join(help_text.split())
  refused = _align(tmp, "--family=auto", "--hparams.linear.ridge=0.1")
  assert refused.returncode == 2
  assert refused.stderr.strip().splitlines()[-1] == (
    "error: --hparams.linear.ridge sets a hyper-parameter, but --family=auto tries "
    "each family's own grid; name the family (--family=...)"
  )
  done = _align(tmp, "--family=reducedrank", "--hparams.reducedrank.rank=2")
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads((tmp / "w" / "results.json").read_text())
  assert results["bridge"]["hparams"] == {"rank": 2, "ridge": 0.0}
