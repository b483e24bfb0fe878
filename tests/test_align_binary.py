"""experiments.align: split by id, fit on the rest, measure on the test ids."""

import json
import os

import numpy as np
import pytest

from bcjax import align
from bcjax.errors import InputError
from experiments import align as binary
from tests.conftest import ROOT, run_module


@pytest.fixture
def files(tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, size=200)
  centres = rng.normal(size=(3, 6)) * 3
  new = (centres[labels] + rng.normal(size=(200, 6))).astype(np.float32)
  old = (new @ rng.normal(size=(6, 5)) + 0.1 * rng.normal(size=(200, 5))).astype(
    np.float32
  )
  np.save(tmp_path / "old.npy", old)
  np.save(tmp_path / "new.npy", new)
  order = rng.permutation(200)  # ids need not come in order
  lines = ["label,id"] + [f"c{labels[i]},{i}" for i in order]
  (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
  return tmp_path, old, new, labels


def test_fits_on_train_ids_and_measures_on_test_ids(files):
  tmp, old, new, labels = files
  work = str(tmp / "work")
  grid_free = binary.run(
    work,
    str(tmp / "old.npy"),
    str(tmp / "new.npy"),
    str(tmp / "labels.csv"),
    family="linear",
    center=True,
    seed=3,
  )
  train, test = binary.split_ids(200, 0.2, 3)
  assert len(test) == 40 and not set(train) & set(test)
  assert grid_free["rows"] == {"fit": 160, "validation": 0, "test": 40}
  # The bridge saw only the train ids.
  bridge = align.load(os.path.join(work, "bridge.npz"))
  alone = align.fit(old[train], new[train], family="linear", center=True)
  np.testing.assert_allclose(bridge.apply(new), alone.apply(new), atol=1e-6)
  m = grid_free["measures"]
  want = align.measures.evaluate(
    old, new, alone.apply(new[test]), test, labels=labels.astype(str), k=10, seed=3
  )
  for key in ("mse", "self_recall", "neighbour_overlap", "retention"):
    assert m[key] == pytest.approx(want[key])
  with open(os.path.join(work, "results.json")) as f:
    assert json.load(f)["measures"]["class_retrieval"] == pytest.approx(
      want["class_retrieval"]
    )
  table = open(os.path.join(work, "table.md")).read()
  assert "| retention (bridged / re-indexed) |" in table
  with np.load(os.path.join(work, "bridge_affine.npz")) as f:
    assert f["matrix"].shape == (6, 5)


def test_auto_reports_its_candidates(files):
  tmp, *_ = files
  results = binary.run(str(tmp / "auto"), str(tmp / "old.npy"), str(tmp / "new.npy"))
  assert results["rows"]["fit"] + results["rows"]["validation"] == 160
  assert results["selection"]["family"] == results["bridge"]["family"]
  # Unset --center and --normalize: auto chose them, and says so.
  chosen = results["selection"]["candidates"][results["selection"]["chosen"]]
  assert (results["bridge"]["center"], results["bridge"]["normalize"]) == (
    chosen["center"],
    chosen["normalize"],
  )
  assert {
    (c["center"], c["normalize"]) for c in results["selection"]["candidates"]
  } == {
    (False, False),
    (False, True),
    (True, False),
    (True, True),
  }
  table = open(tmp / "auto" / "table.md").read()
  assert (
    "| family | hparams | centred | normalised | parameters | validation score | "
    "recall | overlap | se of gap | chosen |"
  ) in table


@pytest.mark.parametrize(
  "text, message",
  [
    ("id,class\n0,a\n", "line 1: expected a header with a 'label' column"),
    ("label,id\na,0\nb\n", "line 3: 1 fields, header has 2"),
    ("label,id\na,x\n", "line 2: id 'x' is not an integer"),
    ("label,id\na,200\n", "line 2: id 200 is not a row 0..199"),
    (
      "label,id\na,0\n",
      "labels 1 of 200 rows; every row needs one (first missing ids: [1, 2, 3, 4, 5])",
    ),
  ],
)
def test_bad_labels_are_one_line(files, text, message):
  tmp, *_ = files
  (tmp / "bad.csv").write_text(text)
  with pytest.raises(InputError) as e:
    binary.run(
      str(tmp / "w"), str(tmp / "old.npy"), str(tmp / "new.npy"), str(tmp / "bad.csv")
    )
  assert message in str(e.value) and "\n" not in str(e.value)


def test_the_binary_prints_one_error_line_for_bad_input(files):
  tmp, old, *_ = files
  np.save(tmp / "short.npy", old[:150])
  done = run_module(
    "experiments.align",
    f"--workdir={tmp / 'w'}",
    f"--old={tmp / 'short.npy'}",
    f"--new={tmp / 'new.npy'}",
    cwd=ROOT,
  )
  assert done.returncode == 2
  assert done.stderr.strip() == (
    "error: --old has 150 rows but --new has 200; rows must match one to one"
  )
