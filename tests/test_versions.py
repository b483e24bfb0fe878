"""Every strategy over versions, the Orbax version store and the registry.

One small run of the test config (three versions, the paper's eight
strategies plus MLP transforms) is shared by the tests of this module.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bcjax.methods.base as methods_base
from bcjax import registry
from bcjax.components.transforms import get_transform
from bcjax.errors import InputError
from bcjax.jobs import runner
from bcjax.jobs.experiment import resolve
from bcjax.jobs.run_data import RunData
from bcjax.methods.strategies import PAPER_STRATEGIES
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, embed
from bcjax.storage.checkpoints import VersionStore
from experiments.configs import test as test_config

EXTRA = (
  "joint-mlp-mloss",
  "posthoc-mlp-sloss",
  "joint-orthogonal-mloss",
  "closedform-linear-sloss",
  "closedform-orthogonal-sloss",
)


def _config():
  config = test_config.get_config()
  config.strategy = ",".join(PAPER_STRATEGIES + EXTRA)
  config.num_versions = 3
  config.dims = (16, 24, 32)
  config.layers = (1, 2, 2)
  return config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("versions"))
  results = runner.run(_config(), workdir)
  return workdir, results


def _checkpoints(workdir, strategy):
  return os.path.join(workdir, "checkpoints", strategy)


def test_every_strategy_has_every_version(run):
  _, results = run
  assert set(results["strategies"]) == set(PAPER_STRATEGIES + EXTRA)
  for name, entries in results["strategies"].items():
    assert [e["version"] for e in entries] == [0, 1, 2], name
    for e in entries:
      assert 0.0 <= e["recall"]["50"] <= 1.0
    for e in entries[1:]:
      assert np.isfinite(e["alignment_mse_previous"]), name
      assert np.isfinite(e["alignment_mse_v0"]), name
  # Version 0 is one model for all strategies.
  v0 = {json_key(e[0]) for e in results["strategies"].values()}
  assert len(v0) == 1


def test_linear_init_and_posthoc_checks_are_recorded(run):
  workdir, results = run
  assert results["config"]["transform"]["linear"]["init"] == "uniform"
  with VersionStore(_checkpoints(workdir, "posthoc-linear-sloss"), create=False) as s:
    assert s.metadata(1)["transform"]["hparams"] == {"init": "uniform"}
  # The test config checks the post-hoc criterion at epochs 2 and 4 only
  # (eval_every 2, after epoch 1 of 4).
  for name in ("posthoc-linear-sloss", "posthoc-linear-mloss", "posthoc-mlp-sloss"):
    kept = [e["transform_best_epoch"] for e in results["strategies"][name][1:]]
    assert set(kept) <= {2, 4}, name


def json_key(entry):
  return (entry["recall"]["50"], entry["best_epoch"], entry["dim"])


def test_dims_follow_the_strategy(run):
  _, results = run
  assert [e["dim"] for e in results["strategies"]["fix-m0"]] == [16, 16, 16]
  assert [e["dim"] for e in results["strategies"]["finetune-m0"]] == [16, 16, 16]
  assert [e["dim"] for e in results["strategies"]["joint-linear-mloss"]] == [16, 24, 32]


def test_fix_m0_is_m0_at_every_version(run):
  workdir, results = run
  assert all(e["alignment_mse_v0"] == 0.0 for e in results["strategies"]["fix-m0"][1:])
  with VersionStore(_checkpoints(workdir, "fix-m0"), create=False) as store:
    models = [store.restore(k, "model") for k in range(3)]
  for model in models[1:]:
    jax.tree.map(np.testing.assert_array_equal, models[0], model)
  # And the registry serves version 0 as the latest embeddings, unchanged.
  reg = registry.open(_checkpoints(workdir, "fix-m0"))
  np.testing.assert_array_equal(
    reg.embeddings(version=0), reg.embeddings(version=reg.latest_version)
  )


@pytest.mark.parametrize(
  "strategy", ["joint-linear-mloss", "posthoc-linear-sloss", "joint-mlp-mloss", "nobc"]
)
def test_registry_version_j_is_b_j_plus_1_of_version_j_plus_1(run, strategy):
  workdir, _ = run
  reg = registry.open(_checkpoints(workdir, strategy))
  assert reg.latest_version == 2 and reg.dims == (16, 24, 32)
  for kind in ("user", "item"):
    for j in range(reg.latest_version):
      newer = reg.embeddings(version=j + 1, kind=kind)
      step = np.asarray(reg.transform(from_version=j + 1, to_version=j)(newer))
      np.testing.assert_allclose(
        reg.embeddings(version=j, kind=kind), step, rtol=1e-4, atol=1e-5
      )


def test_registry_linear_chain_matches_saved_kernels(run):
  workdir, _ = run
  path = _checkpoints(workdir, "joint-linear-mloss")
  with VersionStore(path, create=False) as store:
    z = store.restore(2, "embeddings")["user"]
    w2 = store.restore(2, "transform")["kernel"]
    w1 = store.restore(1, "transform")["kernel"]
  reg = registry.open(path)
  np.testing.assert_allclose(
    reg.embeddings(version=0), z @ w2 @ w1, rtol=1e-4, atol=1e-5
  )
  ids = np.array([3, 0, 5])
  np.testing.assert_allclose(
    reg.embeddings(version=1, ids=ids, kind="user"), (z @ w2)[ids], rtol=1e-4, atol=1e-5
  )
  # The collapsed chain is built once and cached.
  assert reg.transform(2, 0) is reg.transform(2, 0)
  # Applied transform by transform, host or device rows, it serves the same.
  collapsed, stepwise = reg.chain(2, 0), reg.chain(2, 0, collapse=False)
  assert collapsed.weights.shape == w2.shape[:1] + w1.shape[1:]
  assert len(stepwise.weights) == 2
  np.testing.assert_allclose(stepwise(z), z @ w2 @ w1, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(
    stepwise.on_device(jnp.asarray(z)), collapsed.on_device(jnp.asarray(z)), atol=1e-5
  )


def _embeddings_on(workdir, strategy, model_version, graph_version):
  """M_{model_version} of ``strategy`` run on version ``graph_version``'s graph."""
  data = RunData.load(resolve(_config()), workdir)
  with VersionStore(_checkpoints(workdir, strategy), create=False) as store:
    meta = store.metadata(model_version)
    variables = store.restore(model_version, "model")
  model = PinSAGE(dim=meta["dim"], num_layers=meta["layers"])
  return embed(model, variables, BipartiteGraph.from_split(data.splits[graph_version]))


def test_closedform_linear_is_the_least_squares_solution(run):
  workdir, _ = run
  z = _embeddings_on(workdir, "closedform-linear-sloss", 2, 2)
  y = _embeddings_on(workdir, "closedform-linear-sloss", 1, 2)
  with VersionStore(
    _checkpoints(workdir, "closedform-linear-sloss"), create=False
  ) as store:
    kernel = store.restore(2, "transform")["kernel"]
  # Independently: lstsq of the row-weighted system, ridge rows appended.
  z = [np.asarray(a, np.float64) for a in z]
  y = [np.asarray(a, np.float64) for a in y]
  gram = sum(a.T @ a / len(a) for a in z)
  rho = 1e-6 * np.mean(np.diag(gram))
  a = np.concatenate([g / np.sqrt(2 * len(g)) for g in z] + [np.sqrt(rho) * np.eye(32)])
  b = np.concatenate([g / np.sqrt(2 * len(g)) for g in y] + [np.zeros((32, 24))])
  want, *_ = np.linalg.lstsq(a, b, rcond=None)
  np.testing.assert_allclose(kernel, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
  "strategy", ["joint-orthogonal-mloss", "closedform-orthogonal-sloss"]
)
def test_orthogonal_strategies_keep_orthonormal_columns_and_collapse(run, strategy):
  workdir, results = run
  family = get_transform("orthogonal")
  with VersionStore(_checkpoints(workdir, strategy), create=False) as store:
    w = {k: np.asarray(family.as_matrix(store.restore(k, "transform"))) for k in (1, 2)}
    z = store.restore(2, "embeddings")["item"]
  for k, dims in ((1, (24, 16)), (2, (32, 24))):
    assert w[k].shape == dims
    np.testing.assert_allclose(w[k].T @ w[k], np.eye(dims[1]), atol=1e-5)
  reg = registry.open(_checkpoints(workdir, strategy))
  chain = reg.chain(2, 0)
  assert np.shape(chain.weights) == (32, 16)  # collapsed through as_matrix
  np.testing.assert_allclose(
    reg.embeddings(version=0, kind="item"), z @ w[2] @ w[1], rtol=1e-4, atol=1e-5
  )
  # An isometry's prefix never lengthens a row.
  assert np.all(
    np.linalg.norm(z @ w[2], axis=1) <= np.linalg.norm(z, axis=1) * (1 + 1e-5)
  )


def test_nobc_serves_the_prefix(run):
  workdir, _ = run
  reg = registry.open(_checkpoints(workdir, "nobc"))
  latest = reg.embeddings(version=2, kind="item")
  np.testing.assert_array_equal(reg.embeddings(version=0, kind="item"), latest[:, :16])


def test_restored_parameters_reproduce_saved_embeddings(run):
  workdir, _ = run
  data = RunData.load(resolve(_config()), workdir)
  for strategy in ("joint-linear-mloss", "finetune-m0"):
    with VersionStore(_checkpoints(workdir, strategy), create=False) as store:
      meta = store.metadata(2)
      variables = store.restore(2, "model")
      saved = store.restore(2, "embeddings")
    model = PinSAGE(dim=meta["dim"], num_layers=meta["layers"])
    user, item = embed(model, variables, BipartiteGraph.from_split(data.splits[2]))
    np.testing.assert_allclose(user, saved["user"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(item, saved["item"], rtol=1e-5, atol=1e-6)


def test_rerun_reuses_every_saved_version(run, monkeypatch):
  workdir, results = run

  def fail(*args, **kwargs):
    raise AssertionError("a saved version was retrained")

  # Every method fits through Context.fit and Context.fit_posthoc.
  monkeypatch.setattr(methods_base, "fit_version", fail)
  monkeypatch.setattr(methods_base, "fit_posthoc", fail)
  again = runner.run(_config(), workdir)
  assert again["strategies"] == results["strategies"]


def test_a_changed_hyperparameter_refuses_only_the_strategies_that_use_it(
  run, tmp_path, monkeypatch
):
  """Each version is checked by its own strategy's fields (bcjax.jobs.fingerprints)."""
  workdir = str(tmp_path / "copy")
  shutil.copytree(run[0], workdir, ignore=shutil.ignore_patterns(".lock"))
  changed = _config()
  changed.transform.mlp.hidden = 8
  with pytest.raises(InputError) as error:
    runner.run(changed, workdir)
  assert str(error.value) == (
    f"version 0 in {workdir}/checkpoints/joint-mlp-mloss holds results of another "
    "config: transform.hparams.hidden 0 -> 8; use a fresh workdir, or the config "
    "it was made with"
  )

  def fail(*args, **kwargs):
    raise AssertionError("a saved version was retrained")

  # The workdir and every strategy that does not use the mlp family are reused.
  monkeypatch.setattr(methods_base, "fit_version", fail)
  monkeypatch.setattr(methods_base, "fit_posthoc", fail)
  changed.strategy = ",".join(
    s for s in changed.strategy.split(",") if "-mlp-" not in s
  )
  runner.run(changed, workdir)


def test_other_config_on_the_same_workdir_is_refused(run):
  workdir, _ = run
  config = _config()
  config.learning_rate = 0.5
  with pytest.raises(InputError, match="of another config"):
    runner.run(config, workdir)


def test_a_rerun_under_other_process_settings_is_refused_or_recorded(run, monkeypatch):
  """Versions made under one OPENBLAS_NUM_THREADS are not reused silently
  under another: refused with one line, or reused and recorded when the
  config allows it."""
  workdir, results = run
  recorded = json.load(open(os.path.join(workdir, "results.json")))
  # Unset where the process had run LAPACK before the set-up (a test worker).
  then = recorded["environment"]["process"]["variables"]["OPENBLAS_NUM_THREADS"]
  monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
  with pytest.raises(
    InputError,
    match=f"^version 0 in .* was made under OPENBLAS_NUM_THREADS={then!r}, this "
    "process runs under '3': process settings change bits",
  ):
    runner.run(_config(), workdir)
  config = _config()
  config.allow_process_differences = True
  again = runner.run(config, workdir)
  assert again["strategies"] == results["strategies"]
  assert any(
    f"OPENBLAS_NUM_THREADS {then!r} then, '3' now" in line
    for line in again["environment"]["process_differences"]
  )


def test_registry_bad_requests(run):
  workdir, _ = run
  reg = registry.open(_checkpoints(workdir, "joint-linear-mloss"))
  with pytest.raises(
    InputError, match="version 3 does not exist; saved versions are 0..2"
  ):
    reg.embeddings(version=3)
  with pytest.raises(InputError, match="version must be >= 0"):
    reg.embeddings(version=-1)
  with pytest.raises(InputError, match="user ids out of range: \\[1000\\]"):
    reg.embeddings(version=0, ids=[1, 1000])
  with pytest.raises(InputError, match="kind must be one of"):
    reg.embeddings(version=0, kind="brand")
  with pytest.raises(InputError, match="to_version 2 is newer than from_version 1"):
    reg.transform(from_version=1, to_version=2)
  with pytest.raises(InputError, match="no checkpoint folder"):
    registry.open(os.path.join(workdir, "checkpoints", "missing"))
  to_v0 = reg.transform(from_version=2, to_version=0)
  z = np.ones((4, 32), np.float32)
  assert to_v0(z).shape == (4, 16)
  z[2, 5] = np.nan
  with pytest.raises(InputError, match=r"NaN or infinite values in rows \[2\]"):
    to_v0(z)
  with pytest.raises(InputError, match=r"have shape \(n, 32\); got \(4, 24\)"):
    to_v0(np.ones((4, 24), np.float32))


def test_registry_rejects_dims_that_do_not_chain(tmp_path):
  import jax.numpy as jnp

  with VersionStore(str(tmp_path / "s")) as store:
    for k, dim in enumerate((4, 6)):
      store.save(
        k,
        model={"params": {"w": jnp.ones(2)}},
        transform={"kernel": jnp.ones((6, 5))} if k else None,
        embeddings=(jnp.ones((3, dim)), jnp.ones((2, dim))),
        metadata={
          "dim": dim,
          "transform": {"name": "linear", "d_in": 6, "d_out": 5, "hidden": 0},
        },
      )
  with pytest.raises(
    InputError, match="maps 6 -> 5 dims, which does not chain version 1"
  ):
    registry.open(str(tmp_path / "s"))


def test_registry_reports_a_corrupt_checkpoint(run, tmp_path):
  workdir, _ = run
  copy = str(tmp_path / "copy")
  shutil.copytree(_checkpoints(workdir, "joint-linear-mloss"), copy)
  embeddings_dir = os.path.join(copy, "2", "embeddings")
  for root, _, files in os.walk(embeddings_dir):
    for name in files:
      os.remove(os.path.join(root, name))
  reg = registry.open(copy)
  with pytest.raises(
    InputError, match="item 'embeddings' of version 2 .* missing or corrupt"
  ):
    reg.embeddings(version=0)


def test_registry_blends_saved_rows_toward_the_bridged_ones(run):
  workdir, _ = run
  reg = registry.open(_checkpoints(workdir, "joint-linear-mloss"))
  stored = reg._saved_embeddings(0)["user"]
  bridged = reg.embeddings(version=0, kind="user")
  assert len(bridged) > len(stored)  # users new since version 0 exist

  def unit(z):
    return z / np.linalg.norm(z, axis=1, keepdims=True)

  old = len(stored)
  # Brute force: the great circle from the stored row's direction to the
  # bridged one's, a share alpha of the angle along.
  u, v = unit(stored.astype(np.float64)), unit(bridged[:old].astype(np.float64))
  theta = np.arccos(np.clip(np.sum(u * v, axis=1, keepdims=True), -1, 1))
  for alpha in (0.0, 0.3, 1.0):
    want = (np.sin((1 - alpha) * theta) * u + np.sin(alpha * theta) * v) / np.sin(theta)
    got = reg.embeddings(version=0, kind="user", blend=alpha)
    np.testing.assert_allclose(got[:old], want, atol=1e-5)
    # A user new since version 0 has no stored vector: its bridged row.
    np.testing.assert_array_equal(got[old:], bridged[old:])
  ids = np.asarray([old + 1, 2, 0])
  np.testing.assert_allclose(
    reg.embeddings(version=0, ids=ids, kind="user", blend=0.3),
    reg.embeddings(version=0, kind="user", blend=0.3)[ids],
    atol=1e-6,
  )
  with pytest.raises(InputError, match="alpha"):
    reg.embeddings(version=0, blend=1.5)
