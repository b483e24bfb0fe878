"""experiments.align: split by id, fit on the rest, measure on the test ids."""

import json
import os

import numpy as np
import pytest

from bcjax import align
from bcjax.align import backfill, blend, protocol
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
  train, test = protocol.split_ids(200, 0.2, 3)
  assert len(test) == 40 and not set(train) & set(test)
  assert grid_free["rows"] == {"fit": 160, "validation": 0, "test": 40}
  # The bridge saw only the train ids.
  bridge = align.load(os.path.join(work, "bridge.npz"))
  alone = align.fit(old=old[train], new=new[train], family="linear", center=True)
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
    ("label,id\na,x\n", "line 2: id 'x' is in no version's file"),
    ("label,id\na,200\n", "line 2: id '200' is in no version's file"),
    ("label\n" + "a\n" * 201, "line 202: more lines than the oldest version's 200"),
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


def test_labels_follow_the_files_ids_when_versions_hold_different_ids(files):
  tmp, old, new, labels = files
  # Version 0 holds ids k0..k179, version 1 ids k20..k199: 160 matched rows,
  # in version 1's order. The labels CSV names ids, not rows.
  ids = np.asarray([f"k{i}" for i in range(200)])
  np.savez(tmp / "v0.npz", ids=ids[:180], embeddings=old[:180])
  np.savez(tmp / "v1.npz", ids=ids[20:], embeddings=new[20:])
  lines = ["id,label"] + [f"{ids[i]},c{labels[i]}" for i in range(200)]
  (tmp / "by_id.csv").write_text("\n".join(lines) + "\n")
  work = str(tmp / "by_id")
  got = binary.run(
    work,
    str(tmp / "v0.npz"),
    str(tmp / "v1.npz"),
    str(tmp / "by_id.csv"),
    family="linear",
    seed=1,
    backfill=False,
  )
  matched_old, matched_new = old[20:180], new[20:180]
  train, test = protocol.split_ids(160, 0.2, 1)
  alone = align.fit(old=matched_old[train], new=matched_new[train], family="linear")
  want = align.measures.evaluate(
    matched_old,
    matched_new,
    alone.apply(matched_new[test]),
    test,
    labels=labels[20:180].astype(str),
    k=10,
    seed=1,
  )
  assert got["measures"]["class_retrieval"] == pytest.approx(want["class_retrieval"])
  # A matched id without a label is named.
  (tmp / "short.csv").write_text("\n".join(lines[:-30]) + "\n")
  with pytest.raises(InputError, match=r"labels 150 of 160 rows; .*'k170'"):
    binary.run(
      str(tmp / "w2"), str(tmp / "v0.npz"), str(tmp / "v1.npz"), str(tmp / "short.csv")
    )


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


def test_blending_row_with_labels_and_one_line_without(files):
  tmp, old, new, labels = files
  work = str(tmp / "blend")
  args = (str(tmp / "old.npy"), str(tmp / "new.npy"))
  results = binary.run(work, *args, str(tmp / "labels.csv"), family="linear", seed=3)
  b = results["blend"]
  train, test = protocol.split_ids(200, 0.2, 3)
  choice = blend.select_alpha(
    old,
    new,
    train,
    labels.astype(str),
    align.load(os.path.join(work, "bridge.npz")),
    seed=3,
    k=10,
  )
  assert b["alpha"] == choice.alpha and b["validation"] == choice.summary()
  assert b["validation"]["fit_rows"] + b["validation"]["validation_rows"] == 160
  bridge = align.load(os.path.join(work, "bridge.npz"))
  want = align.measures.class_retrieval(
    old,
    blend.slerp(old[test], bridge.apply(new[test]), choice.alpha),
    labels.astype(str),
    labels[test].astype(str),
    10,
    rows=test,
    seed=3,
  )
  assert b["test"]["class_retrieval"] == pytest.approx(want)
  m = results["measures"]
  assert b["test"]["retention"] == pytest.approx(want / m["class_retrieval_reindexed"])
  table = open(os.path.join(work, "table.md")).read()
  assert (
    f"| class retrieval@10, blended slerp(old, bridged, {choice.alpha:g}) vs " in table
  )
  assert (
    f"blending: alpha {choice.alpha:g} chosen by class retrieval@10 of 32 " in table
  )

  bare = binary.run(str(tmp / "bare"), *args, family="linear", seed=3)
  assert bare["blend"] == {"skipped": blend.NO_LABELS}
  table = open(tmp / "bare" / "table.md").read()
  assert f"\nblending: {blend.NO_LABELS}\n" in table
  assert "blended" not in table


def test_forward_map_and_backfilling_rows_and_plot(files):
  tmp, old, new, labels = files
  work = tmp / "fwd"
  args = (str(tmp / "old.npy"), str(tmp / "new.npy"))
  results = binary.run(str(work), *args, str(tmp / "labels.csv"), family="linear")
  train, test = protocol.split_ids(200, 0.2, 0)
  bridge = align.load(str(work / "bridge.npz"))
  want = backfill.backfill_results(
    old,
    new,
    train,
    test,
    labels.astype(str),
    bridge,
    results["measures"]["class_retrieval_reindexed"],
    family="linear",
  )
  f = results["forward"]
  assert f["measures"] == pytest.approx(want["forward"]["measures"])
  assert f["family"] == "linear" and f["num_params"] == 30
  b = results["backfill"]
  for name, values in want["backfill"]["curves"].items():
    assert b["curves"][name] == pytest.approx(values)
  assert b["measure"] == "class_retrieval"
  # Full re-index at the end of every order: the measure the table reports.
  for values in b["curves"].values():
    assert values[-1] == pytest.approx(results["measures"]["class_retrieval_reindexed"])
  table = (work / "table.md").read_text()
  assert "| class retrieval@10, F(old) vs new index |" in table
  area = b["area"]["random"]
  assert f"| random | {b['curves']['random'][0]:.4f} | " in table
  assert table.count(f"{area:.4f} |") >= 1
  png = (work / "backfill_1.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n"

  bare = binary.run(str(tmp / "bare"), *args, family="linear", backfill=False)
  assert "forward" not in bare and "backfill" not in bare
  assert not (tmp / "bare" / "backfill_1.png").exists()
  selfish = binary.run(str(tmp / "self"), *args, family="linear")
  assert selfish["backfill"]["measure"] == "self_recall"
  assert (
    "self-retrieval Recall@10 as the re-embedded share"
    in (tmp / "self" / "table.md").read_text()
  )


def test_consumers_and_the_answer_with_labels_one_line_without(files):
  tmp, old, new, labels = files
  args = (str(tmp / "old.npy"), str(tmp / "new.npy"))
  work = tmp / "judged"
  results = binary.run(
    str(work),
    *args,
    str(tmp / "labels.csv"),
    family="linear",
    seed=3,
    decision_splits=3,
  )
  d = results["decision"]
  assert d["splits"] == 3 and len(d["per_split"]) == 3
  assert d["answer"] in ("bridge", "re-index", "no upgrade needed", "unresolved")
  # The first split is the served bridge's own: its ratios are the table's.
  m = results["measures"]
  first = d["per_split"][0]
  assert first["reindexed"] == pytest.approx(m["class_retrieval_reindexed"])
  assert first["old"] == pytest.approx(m["class_retrieval_old"])
  assert first["retention"] == pytest.approx(m["retention"], abs=1e-6)
  c = results["consumers"]
  assert set(c) == set(align.consumers.CONSUMERS)
  for row in c.values():
    assert 0 <= row["negative_flip_rate"] <= 1 - row["accuracy_bridged"] + 1e-9
    assert "accuracy_blended" in row
  assert results["bridge"]["serve_seconds_per_million"] > 0
  table = (work / "table.md").read_text()
  assert f"answer: **{d['answer']}**: " in table
  assert "| logistic regression | " in table and "| mlp | " in table
  assert "s per million rows" in table
  consumer_curves = results["backfill"]["consumers"]
  assert set(consumer_curves) == set(align.consumers.CONSUMERS)
  for name, row in c.items():
    # All re-embedded: the consumer retrained on new vectors, on new vectors.
    for values in consumer_curves[name]["curves"].values():
      assert values[-1] == pytest.approx(row["accuracy_retrained"])
  assert "| logistic regression, random | " in table

  bare = binary.run(str(tmp / "bare"), *args, family="linear", seed=3)
  assert bare["decision"] == {"skipped": align.decision.NO_LABELS}
  assert "consumers" not in bare
  assert (
    f"\nanswer: {align.decision.NO_LABELS}\n" in (tmp / "bare" / "table.md").read_text()
  )
  quiet = binary.run(
    str(tmp / "quiet"),
    *args,
    str(tmp / "labels.csv"),
    family="linear",
    consumers=False,
    decision_splits=1,
  )
  assert "consumers" not in quiet and quiet["decision"]["retention"]["low"] is None
  with pytest.raises(InputError, match="--decision_splits must be 1 or more"):
    binary.run(
      str(tmp / "none"),
      *args,
      str(tmp / "labels.csv"),
      family="linear",
      decision_splits=0,
    )
