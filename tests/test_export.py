"""experiments.export: a version of a run's embeddings, with ids, for align."""

import csv
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from bcjax import align, registry
from bcjax.errors import InputError
from bcjax.storage.checkpoints import VersionStore
from experiments import align as align_binary
from experiments import export as binary
from tests.conftest import ROOT, run_module

DIMS = (4, 6, 8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A workdir whose strategy ``s`` has versions of widths 4, 6, 8 (linear B_k)."""
  workdir = tmp_path_factory.mktemp("run")
  rng = np.random.default_rng(0)
  z = {k: rng.normal(size=(30, d)).astype(np.float32) for k, d in enumerate(DIMS)}
  items = {k: rng.normal(size=(20, d)).astype(np.float32) for k, d in enumerate(DIMS)}
  kernels = {
    k: rng.normal(size=(DIMS[k], DIMS[k - 1])).astype(np.float32) for k in (1, 2)
  }
  with VersionStore(str(workdir / "checkpoints" / "s")) as store:
    for k, dim in enumerate(DIMS):
      spec = {"name": "linear", "d_in": dim, "d_out": DIMS[k - 1]} if k else None
      store.save(
        k,
        model={"params": {"w": jnp.ones(2)}},
        transform={"kernel": jnp.asarray(kernels[k])} if k else None,
        embeddings=(jnp.asarray(z[k]), jnp.asarray(items[k])),
        metadata={"dim": dim, "strategy": "s", "transform": spec},
      )
  return str(workdir), z, items, kernels


def test_npz_and_csv_hold_what_the_registry_serves(run, tmp_path):
  workdir, z, items, kernels = run
  ids, served = binary.export(workdir, "s", 0, str(tmp_path / "v0.npz"))
  reg = registry.open(os.path.join(workdir, "checkpoints", "s"))
  np.testing.assert_allclose(served, reg.embeddings(version=0, kind="item"))
  np.testing.assert_allclose(served, items[2] @ kernels[2] @ kernels[1], atol=1e-4)
  with np.load(tmp_path / "v0.npz") as f:
    np.testing.assert_array_equal(f["ids"], np.arange(20))
    np.testing.assert_array_equal(f["embeddings"], served)
  binary.export(workdir, "s", 1, str(tmp_path / "u1.csv"), nodes="user", from_version=1)
  with open(tmp_path / "u1.csv", newline="") as f:
    lines = list(csv.reader(f))
  assert lines[0] == ["id", "e0", "e1", "e2", "e3", "e4", "e5"] and len(lines) == 31
  table = np.asarray([[float(x) for x in line[1:]] for line in lines[1:]], np.float32)
  np.testing.assert_array_equal(table, z[1])  # a version's own rows, exactly
  assert [line[0] for line in lines[1:3]] == ["0", "1"]


def test_two_exported_versions_align_and_serve(run, tmp_path):
  workdir, _, items, _ = run
  for k in (0, 2):
    binary.export(workdir, "s", k, str(tmp_path / f"v{k}.npz"), from_version=k)
  work = str(tmp_path / "align")
  align_binary.run_versions(
    work, [str(tmp_path / "v0.npz"), str(tmp_path / "v2.npz")], family="linear"
  )
  reg = registry.open(work)
  bridge = align.load(os.path.join(work, "bridge.npz"))
  np.testing.assert_allclose(
    reg.embeddings(version=0, ids=[3, 1]), bridge.apply(items[2][[3, 1]]), atol=1e-6
  )


def test_the_binary_writes_and_reports_bad_input_in_one_line(run, tmp_path):
  workdir, *_ = run
  out = tmp_path / "v1.npz"
  done = run_module(
    "experiments.export",
    f"--workdir={workdir}",
    "--strategy=s",
    "--version=1",
    f"--out={out}",
    cwd=ROOT,
  )
  assert done.returncode == 0, done.stderr
  assert "wrote 20 item embeddings of 6 dims" in done.stdout
  with np.load(out) as f:
    assert f["embeddings"].shape == (20, 6)
  cases = [
    (dict(strategy="t", version=0, out="x.npz"), "no strategy 't' in"),
    (dict(strategy="s", version=0, out="x.txt"), "the extension must be .npz or .csv"),
    (dict(strategy="s", version=3, out="x.npz"), "to_version 3 does not exist"),
    (dict(strategy="s", version=2, out="x.npz", from_version=1), "is newer than"),
  ]
  for kwargs, message in cases:
    kwargs["out"] = str(tmp_path / kwargs["out"])
    with pytest.raises(InputError) as e:
      binary.export(workdir, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists(kwargs["out"])


def test_labels_are_each_nodes_first_attribute_value(tmp_path):
  from bcjax.data.datasets import load_dataset
  from experiments.configs import test as test_config

  config = test_config.get_config()
  workdir = tmp_path / "w"
  workdir.mkdir()
  # The record of a finished run of the test config (its strategies aside).
  (workdir / "results.json").write_text(
    json.dumps({"schema_version": 4, "config": config.to_dict(), "strategies": {}})
  )
  labels = binary.write_labels(
    str(workdir), "item", "brand", "", str(tmp_path / "l.csv"), 15
  )
  graph = load_dataset("synthetic", None, config.synthetic.to_dict())
  brand = graph.item_attrs["brand"]
  for node in range(15):
    values = brand.values[brand.offsets[node] : brand.offsets[node + 1]]
    assert labels[node] == (brand.vocab[values[0]] if len(values) else "(none)")
  with open(tmp_path / "l.csv") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["id", "label"] and rows[1:] == [
    [str(i), label] for i, label in enumerate(labels)
  ]
  with pytest.raises(InputError, match="the items of synthetic have"):
    binary.write_labels(str(workdir), "item", "colour", "", str(tmp_path / "x.csv"), 3)
  assert not (tmp_path / "x.csv").exists()
