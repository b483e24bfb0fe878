"""The benchmark's cost model and its end-to-end run (no timings asserted)."""

import json
import os
import subprocess
import sys

import jax
import optax
import pytest

from bcjax.data.split import split_version
from bcjax.data.synthetic import SyntheticSpec, generate
from bcjax.fitting.train import create_train_state, make_train_epoch
from bcjax.models.device_graph import BipartiteGraph
from bcjax.models.pinsage import PinSAGE, init_variables
from benchmarks import protocol, report, same_results
from benchmarks.hardware import DevicePeaks
from benchmarks.workloads import train_step_cost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("dim,layers", [(64, 1), (64, 2), (128, 3)])
def test_step_cost_agrees_with_xla_flop_count(dim, layers):
  # XLA's own count of the compiled one-step epoch is an independent tally:
  # the model's FLOPs must be nearly all of it (XLA also counts sampling and
  # elementwise work the model rounds off), and its fewest bytes no more
  # than the bytes XLA's program touches.
  spec = SyntheticSpec(num_users=400, num_items=300, num_interactions=8000, seed=3)
  split = split_version(generate(spec), 4)
  graph = BipartiteGraph.from_split(split, "scatter", 0)
  model = PinSAGE(dim, layers)
  variables = init_variables(model, graph, jax.random.key(0))
  epoch = make_train_epoch(model, 1, 256, 1e-2)
  state = create_train_state(model, variables, optax.adam(1e-3))
  analysis = epoch.lower(state, graph, jax.random.key(1), None).compile()
  analysis = analysis.cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  num_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
  cost = train_step_cost(graph, dim, layers, 256, num_params)
  assert 0.8 * analysis["flops"] <= cost.flops <= 1.05 * analysis["flops"]
  assert 0 < cost.bytes <= analysis["bytes accessed"]


def test_floor_is_the_slower_of_compute_and_memory():
  peaks = DevicePeaks("test", "cpu", 1e9, 1e8, "default", 1, 1)
  assert peaks.floor_seconds(2e9, 1e7) == pytest.approx(2.0)  # compute-bound
  assert peaks.floor_seconds(1e6, 5e8) == pytest.approx(5.0)  # memory-bound


def test_benchmark_prints_the_table_and_writes_json(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "benchmarks",
      "--users=200",
      "--items=120",
      "--interactions=4000",
      "--dim=16",
      "--layers=2",
      "--batch_size=256",
      "--timed_steps=2",
      "--repeats=2",
      "--serve_rows=2048",
      "--serve_host_rows=300",
      "--notorch",
      "--noprojection",  # its consumer grid alone takes a minute here
      f"--json={out}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  for row in ("train step", "train epoch", "Recall@K eval", "collapsed", "RSS"):
    assert row in proc.stdout
  result = json.loads(out.read_text())
  assert result["eval"]["compilations"] == 1
  assert result["train"]["bit_identical"] is True  # CPU runs are reproducible
  assert result["train"]["epoch_measured"] is True
  assert result["serve"]["max_abs_diff"] < 1e-4
  for key in ("step_s", "step_floor_s", "epoch_s"):
    assert result["train"][key] > 0
  assert result["device"]["peak_flops_per_s"] > 0
  assert result["memory"]["host_peak_rss_bytes"] > 0
  assert result["torch"] == {}
  assert result["projection"] is None


def test_protocol_projection_counts_the_papers_epochs_and_consumers():
  got = protocol.project(
    epoch_s=0.5, eval_s=0.01, consumer_epoch_s_per_example=1e-6, consumer_examples=1000
  )
  # M_0 500 + nobc 4 x 500 + finetune-m0 4 x 250 + 3 joint strategies x 4 x 500.
  assert got.model_s == pytest.approx(9500 * 0.5)
  assert got.eval_s == pytest.approx(950 * 0.01)  # every 10th epoch
  assert got.consumer_s == pytest.approx(300 * 1000 * 1e-6)  # 300 epochs
  assert got.total_s == pytest.approx(got.model_s + got.eval_s + got.consumer_s)


def test_same_results_compares_numbers_bit_for_bit_and_ignores_timings():
  base = {"a": [1.0, 2.5], "train_seconds": 3.0, "b": {"x": 0.1, "time": 9}}
  same = {"a": [1.0, 2.5], "train_seconds": 4.0, "b": {"x": 0.1, "time": 1}}
  moved = {"a": [1.0, 2.5000000000000004], "b": {"x": 0.1}}
  assert same_results.differences(base, same) == []
  assert same_results.differences(base, moved) == ["/a[1]: 2.5 vs 2.5000000000000004"]
  assert same_results.differences(base, {"a": [1.0]}) == [
    "/a[1]: 2.5 vs None",
    "/b/x: 0.1 vs None",
  ]


def test_report_summarises_each_section_of_the_gpu_script_output():
  header = f"{'workload':<42}{'measured':>18}"
  text = "\n".join(
    [
      "jax 0.11.2",
      "== fast (10:00:00)",
      "exit 0",
      "bcjax benchmark: tiny v4 (3 users, 2 items, 5 train interactions), dim 8, "
      "1 layers, batch 4, layout sorted",
      "device: gpu (gpu, one of 1); measured peaks 1.0 GFLOP/s (8^3 f32 matmul, "
      "jax_default_matmul_precision=tensorfloat32), 2.0 GB/s (scaling)",
      header,
      f"{'train step':<42}{'2.00 ms':>18}{'1.00 ms':>18}{'2.00x':>12}{'50%':>10}"
      "  4.00 ms    2.00x",
      f"{'train epoch (3 steps)':<42}{'6.00 ms':>18}{'3.00 ms':>18}",
      f"{'Recall@K eval (3 users)':<42}{'1.50 ms':>18}{'0.10 ms':>18}",
      f"{'serve v4->v0 collapsed, device':<42}{'9.00 M rows/s':>18}"
      f"{'10.00 M rows/s':>18}{'1.11x':>12}{'90%':>10}",
      f"{'peak device memory (training)':<42}{'12 MiB':>18}",
      "train step: 1 GFLOP; determinism: bit-identical; collapsed",
      "== cut (10:01:00)",
      "exit 124",
      "== same (10:02:00)",
      "identical: 7 numbers, bit for bit",
      "==================== all tables ====================",
      "== ignored",
    ]
  )
  got = report.summary(text)
  assert (
    "| fast (tiny) | sorted | TF32 | 2.00 ms | 1.00 ms | 2.00x | 4.00 ms | 2.00x "
    "| 6.00 ms | bit-identical |" in got
  )
  assert "| cut | | | did not finish (exit 124) |" in got
  assert "| fast | 1.50 ms | 9.00 M rows/s | 90% | 12 MiB |" in got
  assert "- same: identical: 7 numbers, bit for bit" in got
  assert "ignored" not in got


def test_report_tables_seed_batches_and_paper_stages():
  text = "\n".join(
    [
      "== seed-batch (10:00:00, 100 s allowed)",
      "exit 0",
      "tiny v0: 3 users, 2 items, 5 training interactions; d=8, 1 layers",
      "S=  1  sequential      4.0 s (  900.0 seeds/h, epoch 0.100 s/seed)  "
      "batched      2.0 s ( 1800.0 seeds/h, epoch 0.100 s for all)  ratio 2.00x",
      "       consumers of 2 tasks: sequential     6.0 s  batched      3.0 s  "
      "ratio 2.00x; model and consumers 2.00x",
      "S=  4  sequential     12.0 s ( 1200.0 seeds/h, epoch 0.100 s/seed)  "
      "batched      3.0 s ( 4800.0 seeds/h, epoch 0.250 s for all)  ratio 4.00x",
      "       consumers of 2 tasks: sequential    20.0 s  batched      4.0 s  "
      "ratio 5.00x; model and consumers 4.57x",
      "== paper-a (10:01:00, 50 s allowed)",
      "exit 124",
      "seed_batch.py:230] nobc v0 epoch 5/5 loss 1.0 recall@50 0.2 time 3.5s "
      "[seed 1/3, strategy 1/2, version 0/1, ETA 1m00s]",
      "seed_batch.py:230] nobc v1 epoch 2/5 loss 1.0 recall@50 0.2 time 1.5s "
      "[seed 1/3, strategy 1/2, version 1/1, ETA 0m50s]",
      "== paper-b (10:02:00, 20 s allowed)",
      "skipped: no time left",
      "== paper-c (10:03:00, 40 s allowed)",
      "exit 0",
    ]
  )
  got = report.summary(text)
  assert "(tiny v0: 3 users, 2 items" in got
  assert (
    "| 4 | 12.0 s | 3.0 s | 4.00x | 0.100 s | 0.250 s | 20.0 s | 4.0 s | 5.00x "
    "| 4.57x |" in got
  )
  # The largest batch against the one seed: wall time and epoch.
  assert "4 seeds as one program: 1.50x one seed's wall time, 2.50x its epoch." in got
  assert (
    "- paper-a: stopped (exit 124); fits that ended in the shown log: nobc v0 5 "
    "epochs in 3.5 s; at the stop: nobc v1 epoch 2/5, the run's estimate of what "
    "was left 0m50s" in got
  )
  assert "- paper-b: skipped (no time left)" in got
  assert "- paper-c: finished" in got
  # Neither kind of section is read as a benchmark that did not finish.
  assert "did not finish" not in got


def test_report_shares_device_time_by_kind_of_kernel():
  events = [
    {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
    {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}},
    {"ph": "X", "pid": 1, "name": "sm90_xmma_gemm_f32", "dur": 300.0},
    {"ph": "X", "pid": 1, "name": "input_transpose_fusion_3", "dur": 500.0},
    {"ph": "X", "pid": 1, "name": "input_reduce_fusion", "dur": 100.0},
    {"ph": "X", "pid": 1, "name": "wrapped_add", "dur": 100.0},
    {"ph": "X", "pid": 2, "name": "input_reduce_fusion", "dur": 9000.0},  # host
  ]
  rows = report.kernel_shares(events).splitlines()[2:]
  assert rows == [
    "| transpose fusions | 0.50 ms | 50% |",
    "| matmul (cuBLAS) | 0.30 ms | 30% |",
    "| reduce fusions | 0.10 ms | 10% |",
    "| other | 0.10 ms | 10% |",
  ]


def test_report_fills_readme_blocks_and_checks_them(tmp_path):
  (tmp_path / "out.txt").write_text(
    "== same (10:00:00)\nidentical: 3 numbers, bit for bit\n"
  )
  readme = tmp_path / "README.md"
  readme.write_text("a\n<!-- gpu-report: out.txt -->\nstale\n<!-- /gpu-report -->\nb\n")
  assert report.main(["report", "--readme", str(readme), "--check"]) == 1
  assert report.main(["report", "--readme", str(readme)]) == 0
  text = readme.read_text()
  assert "stale" not in text and "- same: identical: 3 numbers" in text
  assert text.startswith("a\n") and text.endswith("<!-- /gpu-report -->\nb\n")
  assert report.main(["report", "--readme", str(readme), "--check"]) == 0


def test_report_takes_several_pages_each_relative_to_its_folder(tmp_path):
  (tmp_path / "out.txt").write_text(
    "== same (10:00:00)\nidentical: 3 numbers, bit for bit\n"
  )
  block = "<!-- gpu-report: {} -->\nstale\n<!-- /gpu-report -->\n"
  top = tmp_path / "README.md"
  top.write_text(block.format("out.txt"))
  (tmp_path / "docs").mkdir()
  page = tmp_path / "docs" / "page.md"
  page.write_text(block.format("../out.txt"))
  args = ["report", "--readme", str(top), f"--readme={page}"]
  assert report.main([*args, "--check"]) == 1
  assert report.main(args) == 0
  assert report.main([*args, "--check"]) == 0
  assert top.read_text() == page.read_text().replace("../out.txt", "out.txt")
  assert "- same: identical: 3 numbers" in page.read_text()
  assert report.main(["report", "--readme"]) == 2  # a page is needed


def test_gpu_tables_match_the_committed_outputs(monkeypatch):
  # Every page with GPU tables, by default: run from the repository's root.
  for page in ("docs/benchmarks.md", "benchmarks/results/HISTORY.md"):
    assert page in report.PAGES
    with open(os.path.join(ROOT, page)) as f:
      assert "<!-- gpu-report: " in f.read(), page
  monkeypatch.chdir(ROOT)
  assert report.main(["report", "--check"]) == 0
