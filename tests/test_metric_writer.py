"""TensorBoard event files and metrics.jsonl, read back."""

import json

import pytest

from bcjax.jobs.metric_writer import MetricWriter, read_scalars


def test_scalars_reach_the_event_files_and_the_json_lines(tmp_path):
  with MetricWriter(str(tmp_path)) as writer:
    writer.write("intended/nobc/v1", 5, {"loss": 0.5, "recall@50": 0.25}, version=1)
    writer.write("intended/nobc/v1", 10, {"loss": 0.25, "skipped": None})
    writer.write("table/nobc", 0, {"total": -1.5, "flag": True})
    # A strategy at another weight: its tag in TensorBoard's characters.
    writer.write("table/joint-linear-mloss@align_weight=0.5", 0, {"total": 2.0})
  scalars = read_scalars(str(tmp_path / "tensorboard"))
  assert scalars == {
    "intended/nobc/v1/loss": [(5, 0.5), (10, 0.25)],
    "intended/nobc/v1/recall_at_50": [(5, 0.25)],
    "table/nobc/total": [(0, -1.5)],
    "table/joint-linear-mloss_at_align_weight_0.5/total": [(0, 2.0)],
  }
  lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(x["tag"], x["step"]) for x in lines] == [
    ("intended/nobc/v1", 5),
    ("intended/nobc/v1", 10),
    ("table/nobc", 0),
    ("table/joint-linear-mloss@align_weight=0.5", 0),
  ]
  assert lines[0]["version"] == 1 and lines[0]["recall@50"] == pytest.approx(0.25)
  assert "skipped" not in lines[1] and "flag" not in lines[2]


def test_a_second_writer_appends(tmp_path):
  for step in (1, 2):
    with MetricWriter(str(tmp_path)) as writer:
      writer.write("a", step, {"x": float(step)})
  assert read_scalars(str(tmp_path / "tensorboard"))["a/x"] == [(1, 1.0), (2, 2.0)]
  assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
