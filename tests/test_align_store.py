"""The align store: experiments.align's chain, served by bcjax.registry.open."""

import json
import os

import numpy as np
import pytest

from bcjax import align, registry
from bcjax.align import protocol
from bcjax.errors import InputError
from experiments import align as binary
from tests.conftest import ROOT, run_module


def _versions(tmp_path):
  """Three versions of 120 items (widths 5, 6, 7), ids as strings, shuffled."""
  rng = np.random.default_rng(1)
  v2 = rng.normal(size=(120, 7)).astype(np.float32)
  v1 = (v2 @ rng.normal(size=(7, 6)) + 0.5 + 0.05 * rng.normal(size=(120, 6))).astype(
    np.float32
  )
  v0 = (v1 @ rng.normal(size=(6, 5)) - 1.0).astype(np.float32)
  ids = np.asarray([f"item{i}" for i in range(120)])
  paths = []
  for v, (rows, order) in enumerate(
    [(v0, rng.permutation(120)), (v1, rng.permutation(120)[:110]), (v2, np.arange(120))]
  ):
    path = str(tmp_path / f"v{v}.npz")
    np.savez(path, ids=ids[order], embeddings=rows[order])
    paths.append(path)
  return paths, ids, (v0, v1, v2)


def test_the_binary_writes_a_store_the_registry_serves_by_id_and_row(tmp_path):
  paths, ids, (v0, v1, v2) = _versions(tmp_path)
  work = str(tmp_path / "work")
  done = run_module(
    "experiments.align",
    f"--workdir={work}",
    "--versions=" + ",".join(paths),
    "--family=linear",
    "--center",
    cwd=ROOT,
  )
  assert done.returncode == 0, done.stderr
  with open(os.path.join(work, "results.json")) as f:
    results = json.load(f)
  # Version 1 lacks 10 ids: both bridges are fitted and measured on the 110
  # shared; the store serves all 120 of the newest version.
  assert [sum(s["rows"].values()) for s in results["steps"]] == [110, 110]
  assert "## Bridge 2: version 2 -> 1" in open(os.path.join(work, "table.md")).read()
  _check_chain_scores(results, paths, tmp_path)

  reg = registry.open(work)
  assert isinstance(reg, align.AlignRegistry)
  assert reg.dims == (5, 6, 7) and reg.latest_version == 2 and reg.kind == "item"
  b1 = align.load(os.path.join(work, "store", "bridge_1.npz"))
  b2 = align.load(os.path.join(work, "store", "bridge_2.npz"))
  asked = np.asarray(["item7", "item3", "item100"])
  by_hand = b1.apply(b2.apply(v2[[7, 3, 100]]))
  np.testing.assert_allclose(reg.embeddings(version=0, ids=asked), by_hand, atol=1e-4)
  np.testing.assert_allclose(
    reg.embeddings(version=0, rows=[7, 3, 100]), by_hand, atol=1e-4
  )
  np.testing.assert_allclose(
    reg.embeddings(version=1, ids=asked), b2.apply(v2[[7, 3, 100]]), atol=1e-5
  )
  np.testing.assert_array_equal(reg.embeddings(ids=asked), v2[[7, 3, 100]])
  assert reg.embeddings(version=0).shape == (120, 5)
  # The centred chain fits: version 0 of the test ids is close to the truth.
  assert np.abs(reg.embeddings(version=0) - v0).mean() < 0.1 * np.abs(v0).mean()
  assert reg.metadata(1)["bridge"] == "linear" and reg.metadata(0)["dim"] == 5


def _check_chain_scores(results, paths, tmp_path):
  """The chain's row equals both bridges applied by hand to held-out ids."""
  loaded = [np.load(p) for p in paths]
  ids = [f["ids"] for f in loaded]
  emb = [f["embeddings"] for f in loaded]
  # Bridge 1's matched ids in version 1's order, and the newest's test ids.
  old_rows, new_rows = protocol.match(ids[0], ids[1])
  matched = ids[1][new_rows]
  newest = ids[2][protocol.match(ids[1], ids[2])[1]]
  splits = protocol.step_splits([matched, newest], 0.2, 0)
  test_ids = newest[splits[1][1]]
  # No id held out by the newest bridge was fitted on by the older one.
  assert not set(matched[splits[0][0]]) & set(test_ids)
  assert set(matched) & set(test_ids) <= set(matched[splits[0][1]])
  rows = np.flatnonzero(np.isin(matched, test_ids))
  b1 = align.load(os.path.join(tmp_path / "work", "store", "bridge_1.npz"))
  b2 = align.load(os.path.join(tmp_path / "work", "store", "bridge_2.npz"))
  where = {k: i for i, k in enumerate(ids[2].tolist())}
  served = b1.apply(b2.apply(emb[2][[where[k] for k in matched[rows].tolist()]]))
  want = align.measures.evaluate(emb[0][old_rows], None, served, rows, k=10)
  (chain,) = results["chains"]
  assert chain["version"] == 0 and chain["bridges"] == 2
  assert chain["measures"]["queries"] == len(rows) > 0
  for key in ("mse", "mean_cosine", "self_recall", "neighbour_overlap"):
    assert chain["measures"][key] == pytest.approx(want[key], abs=1e-5)


def test_the_store_refuses_bad_requests_in_one_line(tmp_path):
  rng = np.random.default_rng(0)
  new = rng.normal(size=(60, 4)).astype(np.float32)
  old = new @ rng.normal(size=(4, 3)).astype(np.float32)
  np.save(tmp_path / "old.npy", old)
  np.save(tmp_path / "new.npy", new)
  work = str(tmp_path / "w")
  binary.run(
    work, str(tmp_path / "old.npy"), str(tmp_path / "new.npy"), family="linear"
  )
  reg = registry.open(os.path.join(work, "store"))
  np.testing.assert_array_equal(reg.ids, np.arange(60))
  np.testing.assert_allclose(
    reg.embeddings(version=0, ids=[5, 1]),
    align.load(os.path.join(work, "bridge.npz")).apply(new[[5, 1]]),
    atol=1e-6,
  )
  for call, message in [
    (
      lambda: reg.embeddings(version=0, ids=[3, 60, 61]),
      "2 ids are not in the store's 60 items (first: [60, 61])",
    ),
    (
      lambda: reg.embeddings(version=2),
      "to_version 2 does not exist; versions are 0..1",
    ),
    (lambda: reg.embeddings(kind="user"), "this align store holds items, not users"),
    (lambda: reg.embeddings(rows=[60]), "rows out of range: [60]"),
    (lambda: reg.embeddings(ids=[1], rows=[1]), "ask for ids or for rows, not both"),
    (lambda: registry.open(work, mesh=object()), "served on one device"),
  ]:
    with pytest.raises(InputError) as e:
      call()
    assert message in str(e.value) and "\n" not in str(e.value)
  assert reg.embeddings(version=0, ids=[]).shape == (0, 3)
  # A rerun replaces the store whole, and leaves nothing else beside it.
  np.save(tmp_path / "new.npy", 2 * new)
  binary.run(
    work, str(tmp_path / "old.npy"), str(tmp_path / "new.npy"), family="linear"
  )
  np.testing.assert_allclose(registry.open(work).embeddings(ids=[5]), 2 * new[[5]])
  assert not [name for name in os.listdir(work) if name.startswith(".")]


def test_bad_version_files_are_one_line(tmp_path):
  np.save(tmp_path / "a.npy", np.ones((10, 3), np.float32))
  np.savez(tmp_path / "noids.npz", embeddings=np.ones((10, 3), np.float32))
  np.savez(
    tmp_path / "twice.npz",
    ids=np.zeros(10, int),
    embeddings=np.ones((10, 3), np.float32),
  )
  np.savez(
    tmp_path / "other.npz",
    ids=np.arange(10, 20),
    embeddings=np.ones((10, 3), np.float32),
  )
  cases = [
    (["a.npy"], "need two or more versions"),
    (["a.npy", "noids.npz"], "an .npz needs arrays 'ids' and 'embeddings'"),
    (["a.npy", "twice.npz"], "ids must be distinct; repeated: [0]"),
    (["a.npy", "other.npz"], "--versions[0] and --versions[1] match 0 ids; a bridge"),
  ]
  for names, message in cases:
    with pytest.raises(InputError) as e:
      binary.run_versions(str(tmp_path / "w"), [str(tmp_path / n) for n in names])
    assert message in str(e.value) and "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "w")


def test_the_store_serves_blended_rows_of_its_stored_versions(tmp_path):
  paths, ids, (v0, v1, v2) = _versions(tmp_path)
  work = str(tmp_path / "work")
  binary.run_versions(work, paths, family="linear", center=True)
  reg = registry.open(work)
  b1 = align.load(os.path.join(work, "store", "bridge_1.npz"))
  b2 = align.load(os.path.join(work, "store", "bridge_2.npz"))
  with np.load(paths[1]) as f:
    in_v1 = set(f["ids"].tolist())
  missing = [i for i in range(120) if ids[i] not in in_v1]
  assert len(missing) == 10
  kept = [i for i in range(120) if i not in missing][:2]
  asked = [kept[0], missing[0], kept[1], missing[1]]
  got = reg.embeddings(version=1, ids=ids[asked], blend=0.3)
  bridged = b2.apply(v2[asked])
  # Rows version 1 has are blended with their own version-1 vector (unit
  # rows); rows new since version 1 have nothing to blend: bridged as is.
  np.testing.assert_allclose(
    got[[0, 2]], align.blend.slerp(v1[kept], bridged[[0, 2]], 0.3), atol=1e-5
  )
  np.testing.assert_allclose(got[[1, 3]], bridged[[1, 3]], atol=1e-6)
  np.testing.assert_allclose(
    reg.embeddings(version=0, rows=[5, 9], blend=1.0),
    align.blend.slerp(v0[[5, 9]], b1.apply(b2.apply(v2[[5, 9]])), 1.0),
    atol=1e-5,
  )
  whole = reg.embeddings(version=0, blend=0.0)
  np.testing.assert_allclose(
    whole, v0 / np.linalg.norm(v0, axis=1, keepdims=True), atol=1e-6
  )
  assert reg.embeddings(version=1, ids=[], blend=0.5).shape == (0, 6)
  for call, message in [
    (
      lambda: reg.embeddings(version=1, blend=True),
      "no alpha was chosen for version 1",
    ),
    (lambda: reg.embeddings(version=2, blend=0.5), "version 2 is the newest"),
    (lambda: reg.embeddings(version=1, blend=2.0), "alpha must be a number in [0, 1]"),
  ]:
    with pytest.raises(InputError) as e:
      call()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_blend_true_serves_the_alpha_chosen_with_labels(tmp_path):
  rng = np.random.default_rng(4)
  labels = rng.integers(0, 3, size=150)
  new = ((rng.normal(size=(3, 5)) * 3)[labels] + rng.normal(size=(150, 5))).astype(
    np.float32
  )
  old = (new @ rng.normal(size=(5, 4)) + rng.normal(size=(150, 4))).astype(np.float32)
  np.save(tmp_path / "old.npy", old)
  np.save(tmp_path / "new.npy", new)
  (tmp_path / "l.csv").write_text("label\n" + "\n".join(map(str, labels)) + "\n")
  work = str(tmp_path / "w")
  results = binary.run(
    work,
    str(tmp_path / "old.npy"),
    str(tmp_path / "new.npy"),
    str(tmp_path / "l.csv"),
    family="linear",
  )
  alpha = results["blend"]["alpha"]
  reg = registry.open(work)
  assert reg.metadata(0)["blend_alphas"] == {"0": alpha}
  bridge = align.load(os.path.join(work, "bridge.npz"))
  np.testing.assert_allclose(
    reg.embeddings(version=0, ids=[4, 2], blend=True),
    align.blend.slerp(old[[4, 2]], bridge.apply(new[[4, 2]]), alpha),
    atol=1e-5,
  )
  # A store written without older rows has none to blend with.
  bare = align.store.write(
    str(tmp_path / "bare"), align.Chain([bridge]), np.arange(150), new
  )
  with pytest.raises(InputError, match=r"keeps no version-0 rows to blend with"):
    registry.open(bare).embeddings(version=0, blend=0.5)
