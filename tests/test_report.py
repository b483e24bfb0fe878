"""The results pages and the README's summary, rendered from committed runs."""

import dataclasses
import json
import os
import subprocess

import numpy as np
import pytest
from scipy import stats

from bcjax import environment
from bcjax.evaluation.table_records import (
  CELL_COLUMNS,
  PairedComparison,
  PairedRow,
  SeedRow,
  SeedTable,
)
from bcjax.jobs.run_settings import RunSettings
from evidence import report, results_page, runs, settings_page, verdicts
from experiments import convergence, provenance, stop_probe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cell(mean, low, high):
  return {"mean": mean, "low": low, "high": high, "n": 3, "level": 0.95}


@pytest.mark.parametrize(
  "cell,anchor,want",
  [
    (_cell(-5.0, -8.0, -2.0), -3.0, "holds; [-8.00, -2.00] contains the anchor's -3"),
    (
      _cell(-9.0, -10.35, -7.89),
      -3.0,
      "holds; [-10.35, -7.89] excludes the anchor's -3",
    ),
    (
      _cell(-5.0, -8.0, 1.0),
      -3.0,
      "unresolved: the interval contains 0; [-8.00, 1.00]",
    ),
    (_cell(4.0, 1.0, 7.0), -3.0, "contradicted; [1.00, 7.00] excludes the anchor's -3"),
    (_cell(4.0, 1.0, 7.0), 2.5, "holds; [1.00, 7.00] contains the anchor's 2.5"),
    (_cell(-4.0, -7.0, -1.0), 2.5, "contradicted; [-7.00, -1.00] excludes"),
    (
      {"mean": -1.0, "low": None, "high": None},
      -0.65,
      "unresolved: one seed, no interval (its value is on the anchor's side)",
    ),
    (_cell(0.0, 0.0, 0.0), 0.0, "0 by construction"),
    (None, -3.0, "not run"),
  ],
)
def test_verdict_judges_the_interval_against_the_anchor(cell, anchor, want):
  assert verdicts.verdict(cell, anchor).startswith(want)


# Per-seed offsets of every strategy's total (mean 0): differences between
# strategies vary by seed, so the paired tests have a spread.
OFFSETS = {
  "nobc": (-1.0, 0.5, 0.5),
  "fix-m0": (8.0, -7.0, -1.0),
  "posthoc-linear-sloss": (0.2, -0.4, 0.2),
}


def _per_seed(totals):
  """Three seeds' tables: each strategy's total plus its offsets."""
  return [
    {
      "table": {
        "rows": [
          {"strategy": s, "total": t + OFFSETS.get(s, (0.0, 0.0, 0.0))[i]}
          for s, t in totals.items()
        ]
      }
    }
    for i in range(3)
  ]


def _results(totals, paired_lows):
  """A results.json with three seeds' intervals, their tables and the paired
  table."""
  rows = []
  for strategy, total in totals.items():
    means = dict.fromkeys(CELL_COLUMNS)
    means.update(
      intended=-2.0, unintended=total + 2.0, total=total, alignment_error=0.1
    )
    intervals = {
      c: None if v is None else _cell(v, v - 1.0, v + 1.0) for c, v in means.items()
    }
    rows.append(
      SeedRow(strategy, means, intervals, {c: [v] * 3 for c, v in means.items()})
    )
  paired = PairedComparison(
    verdicts.BC_ALIGNER,
    "total",
    0.95,
    tuple(
      PairedRow(
        s,
        [1.0, 2.0, 3.0],
        _cell(totals[verdicts.BC_ALIGNER] - totals[s], low, low + 5.0),
      )
      for s, low in paired_lows.items()
    ),
  )
  table = SeedTable(3, 0.95, tuple(rows), paired, {}, {}, ())
  return {
    "schema_version": 4,
    # The reference's protocol: the results page warns of it.
    "config": {**dataclasses.asdict(RunSettings()), "report_split": "validation"},
    "environment": {
      "git_commit": "abc1234",
      "bcjax": "0.1.0",
      "packages": {"jax": "0.10.2"},
      "device_kind": "cpu",
      "device_count": 1,
      "started": "2026-11-26T10:00:00+00:00",
      "finished": "2026-11-26T10:42:00+00:00",
    },
    "table": table.to_json(),
    "per_seed": _per_seed(totals),
  }


def _write(folder, results):
  os.makedirs(folder)
  with open(os.path.join(folder, "results.json"), "w") as f:
    json.dump(results, f)
  with open(os.path.join(folder, "table.md"), "w") as f:
    f.write("## Comparison\n\n| strategy | total |\n")


def test_section_states_the_ranking_and_provenance(tmp_path):
  aligner = verdicts.BC_ALIGNER
  _write(
    tmp_path / runs.RUNS[0].name,
    _results(
      {aligner: -1.0, "nobc": -20.0, "fix-m0": -25.0}, {"nobc": 3.0, "fix-m0": -0.5}
    ),
  )
  _write(
    tmp_path / runs.RUNS[1].name,
    _results(
      {aligner: -9.0, "posthoc-linear-sloss": -4.0}, {"posthoc-linear-sloss": -8.0}
    ),
  )
  text = report.section(str(tmp_path))
  assert text.startswith(report.BEGIN) and text.endswith(report.END)
  assert (
    "Commit `abc1234`, bcjax 0.1.0, JAX 0.10.2 on cpu (1 device(s)), 42 min" in text
  )
  assert f"\n## {runs.RUNS[0].title}\n" in text
  assert "\n### Comparison" in text  # table.md's headings under the run's
  # Differences by seed: nobc 19 - (-1, .5, .5), p 0.0007; fix-m0 24 - (8,
  # -7, -1), p 0.032: both resolved after Holm (0.0014, 0.032).
  assert (
    "BC-Aligner's total against the 2 other strategies (paired t-tests over "
    "seeds, Holm-corrected at 0.05; differences with Bonferroni-adjusted 97.5% "
    "intervals): ahead of nobc +19.00 [" in text
  )
  assert ", fix-m0 +24.00 [" in text
  assert "behind of posthoc-linear-sloss -5.00 [" in text
  assert "| BC-Aligner has the best total | holds: ahead of all 2 others" in text
  assert (
    "| BC-Aligner has the best total | contradicted: behind posthoc-linear-sloss"
    in text
  )
  # nobc's unintended cell is -18 +- 1: the anchor's sign (-26.5) holds.
  assert "| nobc | 0 / -26.5 | 0 by construction | holds; [" in text


def test_replaced_needs_both_markers():
  with pytest.raises(ValueError, match="lacks the markers"):
    report.replaced("no markers here", "x")


def test_summary_row_names_who_is_ahead_by_holms_tests():
  aligner = verdicts.BC_ALIGNER
  ahead = verdicts.summary_row(
    _results({aligner: -1.0, "nobc": -20.0, "fix-m0": -25.0}, {"nobc": 3.0})
  )
  # Both resolved behind it (Holm's p 0.0014 and 0.032); nobody ahead.
  assert ahead == ["3", "-1.00 ± 1.00", "none", "2 of 2"]
  behind = verdicts.summary_row(
    _results(
      {aligner: -9.0, "posthoc-linear-sloss": -4.0}, {"posthoc-linear-sloss": -8.0}
    )
  )
  assert behind[2:] == ["posthoc-linear-sloss", "0 of 1"]
  assert verdicts.summary_row(_results({"nobc": -2.0}, {}))[1] == "not run"


def test_comparisons_match_scipy_with_holm_and_bonferroni():
  """compare_against's numbers recomputed by scipy by hand."""
  rng = np.random.default_rng(7)
  names = [verdicts.BC_ALIGNER, "a", "b", "c"]
  values = {n: rng.normal(i, 1.0, size=6) for i, n in enumerate(names)}
  results = {
    "per_seed": [
      {"table": {"rows": [{"strategy": n, "total": values[n][i]} for n in names]}}
      for i in range(6)
    ]
  }
  got = verdicts.compare_against(results, verdicts.BC_ALIGNER)
  assert [c.other for c in got] == names[1:]
  p = [stats.ttest_rel(values[names[0]], values[n]).pvalue for n in names[1:]]
  order = np.argsort(p)
  for c, n in zip(got, names[1:]):
    d = values[names[0]] - values[n]
    half = stats.t.ppf(1 - 0.05 / 3 / 2, 5) * d.std(ddof=1) / np.sqrt(6)
    assert c.mean == pytest.approx(d.mean())
    assert (c.low, c.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c.p == pytest.approx(p[names.index(n) - 1])
  holm = [None] * 3
  running = 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (3 - rank) * p[i]))
    holm[i] = running
  assert [c.p_holm for c in got] == pytest.approx(holm)


def _page(path, begin, end, *more):
  """A page with one stale block between each pair of markers."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pairs = [(begin, end), *zip(more[::2], more[1::2])]
  blocks = "\n\n".join(f"{b}\nstale\n{e}" for b, e in pairs)
  with open(path, "w") as f:
    f.write(f"# page\n\n{blocks}\n\ntail\n")


def test_update_writes_every_page_and_check_finds_a_stale_one(tmp_path):
  results = tmp_path / "experiments" / "results"
  aligner = verdicts.BC_ALIGNER
  _write(
    results / runs.RUNS[0].name,
    _results({aligner: -1.0, "nobc": -20.0}, {"nobc": 3.0}),
  )
  (results / runs.RUNS[0].name / "tradeoff.png").write_bytes(b"png")
  paths = {
    "readme": str(tmp_path / "README.md"),
    "results_page": str(tmp_path / "docs" / "results.md"),
    "compatibility_page": str(tmp_path / "docs" / "compatibility.md"),
  }
  _page(paths["readme"], report.BEGIN_SUMMARY, report.END_SUMMARY)
  _page(
    paths["results_page"],
    report.BEGIN,
    report.END,
    settings_page.BEGIN_SETTINGS,
    settings_page.END_SETTINGS,
  )
  _page(
    paths["compatibility_page"], report.BEGIN_COMPATIBILITY, report.END_COMPATIBILITY
  )
  assert report.update(str(results), **paths, check=True) == 1
  assert report.update(str(results), **paths) == 0
  assert report.update(str(results), **paths, check=True) == 0
  texts = {}
  for name, path in paths.items():
    with open(path) as f:
      texts[name] = f.read()
    assert "stale" not in texts[name] and texts[name].endswith("\n\ntail\n")
  # Links are relative to the page that holds them.
  title = runs.RUNS[0].title
  assert (
    f"[{title}](docs/results.md#{results_page.heading_fragment(title)})"
    in texts["readme"]
  )
  assert " | -1.00 ± 1.00 | none | 1 of 1 |" in texts["readme"]
  assert "[docs/compatibility.md](docs/compatibility.md)" in texts["readme"]
  png = f"(../experiments/results/{runs.RUNS[0].name}/tradeoff.png)"
  assert png in texts["results_page"]
  assert "Not yet committed" in texts["compatibility_page"]
  # One stale page is enough to fail the check.
  with open(paths["compatibility_page"], "w") as f:
    f.write(texts["compatibility_page"].replace("Not yet committed", "Not committed"))
  assert report.update(str(results), **paths, check=True) == 1


def test_anchor_is_githubs_heading_fragment():
  assert (
    results_page.heading_fragment(
      "MovieLens-100K, default config, 3 seeds: bcjax's own strategies"
    )
    == "movielens-100k-default-config-3-seeds-bcjaxs-own-strategies"
  )


def test_generated_pages_match_the_committed_runs():
  # No result number is typed in: README.md's summary, docs/results.md and
  # docs/compatibility.md come from experiments/results through the command.
  pages = report.rendered_pages(
    os.path.join(ROOT, "experiments", "results"),
    os.path.join(ROOT, "README.md"),
    os.path.join(ROOT, "docs", "results.md"),
    os.path.join(ROOT, "docs", "compatibility.md"),
    os.path.join(ROOT, "docs", "align.md"),
  )
  assert len(pages) == 4
  for path, (text, want) in pages.items():
    # Drift lines say how far this checkout moved since a run: not stale.
    assert report._settled(text) == report._settled(want), (
      f"{path} is stale: run python -m evidence.report"
    )


def test_a_lead_resolved_alone_is_unresolved_after_holms_correction():
  aligner = verdicts.BC_ALIGNER
  totals = {aligner: -1.0, "nobc": -20.0, "fix-m0": -25.0, "posthoc-linear-sloss": -1.5}
  results = _results(totals, {})
  alone = verdicts.compare_against(results, aligner, ["fix-m0"])[0]
  together = {c.other: c for c in verdicts.compare_against(results, aligner)}
  # fix-m0's lead: p 0.032 alone; second smallest of three, so Holm doubles it.
  assert alone.verdict == "ahead" and alone.p < 0.05
  assert together["fix-m0"].verdict == "unresolved"
  assert together["fix-m0"].p_holm == pytest.approx(2 * alone.p)
  assert together["nobc"].verdict == "ahead"
  assert together["posthoc-linear-sloss"].verdict == "unresolved"
  # Bonferroni's interval for three is wider than the 95% one alone.
  assert together["fix-m0"].low < alone.low - 1e-9
  word, why = verdicts.claims(results)["BC-Aligner has the best total"]
  assert word == "unresolved" and "fix-m0, posthoc-linear-sloss" in why


def _entry(version, best, epochs):
  return {
    "version": version,
    "best_epoch": best,
    "history": [{"epoch": e} for e in range(5, epochs + 1, 5)],
  }


def test_last_epoch_counts_fits_after_version_0_over_seeds():
  seed = {
    "nobc": [_entry(0, 40, 40), _entry(1, 40, 40), _entry(2, 25, 40)],
    "fix-m0": [_entry(0, 40, 40), {"version": 1, "best_epoch": 0, "history": []}],
  }
  other = {"nobc": [_entry(0, 40, 40), _entry(1, 35, 40), _entry(2, 40, 40)]}
  results = {
    "strategies": seed,
    "per_seed": [{"strategies": seed}, {"strategies": other}],
  }
  assert convergence.last_epoch_counts(results) == {"nobc": (2, 4), "fix-m0": (0, 0)}
  assert convergence.last_epoch_counts({"strategies": seed}) == {
    "nobc": (1, 2),
    "fix-m0": (0, 0),
  }
  assert convergence.last_epoch_line(results).endswith(": nobc 2/4.")


def test_post_hoc_transform_fits_are_counted_against_the_post_hoc_epochs():
  def posthoc(version, kept):
    return {**_entry(version, 30, 40), "transform_best_epoch": kept}

  seed = {"posthoc-linear-sloss": [posthoc(1, 100), posthoc(2, 60)]}
  for config in ({"method": {"posthoc": {"epochs": 100}}}, {"posthoc_epochs": 100}):
    results = {"strategies": seed, "config": config}
    assert convergence.transform_last_epoch_counts(results) == {
      "posthoc-linear-sloss": (1, 2)
    }
    assert convergence.last_epoch_line(results).endswith(
      "Post-hoc B_k fits that kept their last epoch: posthoc-linear-sloss 1/2."
    )
  assert convergence.transform_last_epoch_counts({"strategies": seed}) == {}


def test_code_drift_names_the_changed_files_or_says_why_it_cannot():
  head = subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
  )
  if head.returncode == 0:
    # HEAD against itself: no change, no warning.
    assert provenance.code_drift(head.stdout.strip(), ROOT) is None
  unknown = provenance.code_drift("0" * 40, ROOT)
  assert unknown.startswith(provenance.DRIFT) and "not in this checkout" in unknown
  assert "recorded no commit" in provenance.code_drift(None, ROOT)


def test_a_run_with_module_hashes_drifts_only_by_the_modules_it_ran(tmp_path):
  # A checkout of two modules; the run imported one of them.
  package = tmp_path / "bcjax"
  (package / "align").mkdir(parents=True)
  (package / "__init__.py").write_text("")
  (package / "keys.py").write_text("A = 1\n")
  (package / "align" / "__init__.py").write_text("B = 1\n")
  ran = {
    name: environment.source_hash(str(path))
    for name, path in (
      ("bcjax", package / "__init__.py"),
      ("bcjax.keys", package / "keys.py"),
    )
  }
  results = {
    "environment": {"modules": ran, "parts": [{"environment": {"modules": ran}}]}
  }
  records = provenance.recorded_modules(results)
  assert records == [ran, ran]
  root = str(tmp_path)
  assert provenance.code_drift("0" * 40, root, records) is None  # git not asked
  (package / "align" / "__init__.py").write_text("B = 2\n")  # not a module it ran
  assert provenance.code_drift("0" * 40, root, records) is None
  (package / "keys.py").write_text("A = 2\n")
  line = provenance.code_drift(None, root, records)
  assert line == (
    f"{provenance.DRIFT} 1 of the bcjax modules it ran differ from this checkout's "
    "(`bcjax.keys`); its numbers may not be what today's code gives."
  )
  (package / "keys.py").unlink()  # a module gone counts as changed
  assert "(`bcjax.keys`)" in provenance.code_drift(None, root, records)
  assert provenance.recorded_modules({"environment": {}}) is None


def test_a_drift_line_alone_does_not_make_a_page_stale(tmp_path):
  results_dir = tmp_path / "results"
  results_dir.mkdir()
  pages = {}
  for name, (begin, end) in {
    "README.md": (report.BEGIN_SUMMARY, report.END_SUMMARY),
    "results.md": (report.BEGIN, report.END),
    "compatibility.md": (report.BEGIN_COMPATIBILITY, report.END_COMPATIBILITY),
  }.items():
    pages[name] = str(tmp_path / name)
    with open(pages[name], "w") as f:
      f.write(f"{begin}\n{end}\n")
  with open(pages["results.md"], "a") as f:
    f.write(f"{settings_page.BEGIN_SETTINGS}\n{settings_page.END_SETTINGS}\n")
  args = (str(results_dir), pages["README.md"], pages["results.md"])
  assert report.update(*args, pages["compatibility.md"]) == 0
  assert report.update(*args, pages["compatibility.md"], check=True) == 0
  with open(pages["results.md"]) as f:
    text = f.read()
  with open(pages["results.md"], "w") as f:
    f.write(
      text.replace(report.END, f"{provenance.DRIFT} 3 files differ.\n{report.END}")
    )
  assert report.update(*args, pages["compatibility.md"], check=True) == 0
  # A warning and the blank line after it, as pages are written, also pass.
  with open(pages["results.md"], "w") as f:
    f.write(text.replace(report.END, f"{provenance.DRIFT} 3 files.\n\n{report.END}"))
  assert report.update(*args, pages["compatibility.md"], check=True) == 0
  with open(pages["results.md"], "w") as f:
    f.write(text.replace(report.END, f"a changed line\n{report.END}"))
  assert report.update(*args, pages["compatibility.md"], check=True) == 1


def _merged(results, paths):
  """``results`` as experiments.merge writes a run of ``paths``."""
  env = results["environment"]
  results["environment"] = {
    **env,
    "parts": [
      {"path": p, "strategies": [], "environment": dict(env, finished=f)}
      for p, f in zip(paths, ("2026-11-26T11:30:00+00:00", "2026-11-26T10:12:00+00:00"))
    ],
  }
  results["strategies"] = {s: [] for s in ("nobc", "fix-m0", verdicts.BC_ALIGNER)}
  return results


def test_a_run_in_parts_names_them_and_what_is_still_to_run(tmp_path):
  run = runs.RUNS[0]
  made = [part.path for part, _ in run.parts[:2]]
  results = _merged(
    _results({verdicts.BC_ALIGNER: -1.0, "nobc": -20.0}, {"nobc": 3.0}), made
  )
  _write(tmp_path / run.name, results)
  text = results_page.section(str(tmp_path))
  assert "Made in 2 parts (`nobc` 90 min, `posthoc` 12 min: wall time" in text
  assert "in its workdir) at commit `abc1234`" in text
  assert f"Merged so far: `{made[0]}`, `{made[1]}`." in text
  still = [s for s in run.strategies() if s not in results["strategies"]]
  assert "finetune-m0" in still
  assert (
    f"**Still to run** (2 of {len(run.parts)} parts merged): " + ", ".join(still)
    in text
  )
  # The README's rows and verdict grid mark the run as partial.
  text = results_page.summary(str(tmp_path), "docs/results.md", "docs/c.md")
  assert f") (2 of {len(run.parts)} parts) | 3 |" in text
  assert f"| {run.title} (2 of {len(run.parts)} parts) |" in text


def test_bc_aligners_weights_are_tabled_from_their_runs(tmp_path):
  aligner = verdicts.BC_ALIGNER
  sweep = runs.WEIGHT_SWEEPS["MovieLens-100K"]
  _write(
    tmp_path / sweep[4],
    _results(
      {
        aligner: -3.0,
        "posthoc-linear-sloss": -1.0,
        "closedform-linear-sloss": -0.5,
        "nobc": -20.0,
      },
      {"posthoc-linear-sloss": -4.0, "closedform-linear-sloss": -6.0, "nobc": 2.0},
    ),
  )
  _write(
    tmp_path / sweep[1],
    _results({aligner: -3.0, "posthoc-linear-sloss": -1.0}, {}),
  )
  lines = results_page.weight_lines(str(tmp_path))
  row = next(line for line in lines if line.startswith("| MovieLens-100K | 4 |"))
  # BC-Aligner's cells with their half-widths, and the paired differences
  # with posthoc-linear-sloss (-3 - -1 = -2 on [-4, 1]) and its closed form
  # (-3 - -0.5 = -2.5 on [-6, -1]).
  assert row == (
    "| MovieLens-100K | 4 | -2.00 ± 1.00 | -1.00 ± 1.00 | -3.00 ± 1.00 | "
    f"-2.00 [-4.00, 1.00] | -2.50 [-6.00, -1.00] | `{sweep[4]}` |"
  )
  # A strategy in the table without a paired row, and one not run at all.
  row = next(line for line in lines if line.startswith("| MovieLens-100K | 1 |"))
  assert row.endswith(" | no paired interval | not run | `" + sweep[1] + "` |")
  assert (
    f"| Synthetic | 4 | not yet committed |  |  |  |  | `{runs.WEIGHT_SWEEPS['Synthetic'][4]}` |"
    in lines
  )
  assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_the_readme_judges_the_papers_claims_per_run(tmp_path):
  aligner = verdicts.BC_ALIGNER
  _write(
    tmp_path / runs.RUNS[0].name,
    _results({aligner: -1.0, "nobc": -20.0, "fix-m0": -25.0}, {"nobc": 3.0}),
  )
  text = results_page.summary(str(tmp_path), "docs/results.md", "docs/c.md")
  # Intended -2 +- 1 for every strategy; unintended total + 2 +- 1, so
  # BC-Aligner's [0, 2] is unresolved; nobc's intended is 0 by construction,
  # and finetune-m0 did not run.
  assert f"| {aligner} | -3 / -0.65 | holds / unresolved |" in text
  assert "| nobc | 0 / -26.5 | 0 by construction / holds |" in text
  assert "| finetune-m0 | -7.7 / -7.5 | not run / not run |" in text
  assert f"| [{runs.RUNS[1].title}]" in text and "not yet committed" in text


def test_a_paired_difference_without_bounds_is_said_not_formatted():
  aligner = verdicts.BC_ALIGNER
  results = _results(
    {aligner: -3.0, "posthoc-linear-sloss": -1.0}, {"posthoc-linear-sloss": -4.0}
  )
  # Fewer than two seeds defined the difference: no bounds.
  for row in results["table"]["paired"]["rows"]:
    row["interval"].update(low=None, high=None)
  assert verdicts.weight_row(results)[3:] == ["no paired interval", "not run"]
  del results["per_seed"]
  assert verdicts.summary_row(results)[2:] == ["no test (one seed)", ""]


def test_slope_interval_matches_scipy_linregress():
  rng = np.random.default_rng(8)
  x = np.arange(5, 35, 5)
  y = 0.001 * x + rng.normal(0, 0.004, size=len(x))
  slope, low, high = convergence.slope_interval(list(zip(x, y)))
  fit = stats.linregress(x, y)
  half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr
  assert (slope, low, high) == pytest.approx(
    (fit.slope, fit.slope - half, fit.slope + half)
  )
  assert convergence.slope_interval([(1, 0.0), (2, 1.0)]) is None


def test_convergence_counts_rising_capped_and_falling_fits():
  rising = [{"epoch": e, "recall@50": 0.01 * e} for e in range(5, 55, 5)]
  flat = [{"epoch": e, "recall@50": 0.3 + 0.001 * (-1) ** e} for e in range(5, 40, 5)]
  falling = [[e, 1.0 / e] for e in range(10, 80, 10)]
  level = [[e, 0.5 + 0.001 * (-1) ** (e // 10)] for e in range(10, 90, 10)]
  entries = [
    {"version": 0, "history": rising},  # M_0: shared, not counted
    {"version": 1, "history": rising, "max_epochs": 50},
    {"version": 2, "history": flat, "max_epochs": 50},
    {
      "version": 3,
      "history": flat,
      "transform_history": falling,
      "transform_max_epochs": 70,
    },
    {
      "version": 4,
      "history": flat,
      "transform_history": level,
      "transform_max_epochs": 400,
    },
  ]
  got = convergence.convergence(
    {"config": {"epochs": 50}, "strategies": {"s": entries}}
  )["s"]
  assert got["embedding"] == {
    "fits": 4,
    "still_moving": 1,
    "capped": 1,
    "median_stop": 35,
  }
  assert got["transform"] == {
    "fits": 2,
    "still_moving": 1,
    "capped": 1,
    "median_stop": 75,
  }
  lines = convergence.convergence_lines({"config": {}, "strategies": {"s": entries}})
  assert "| s | 4 | 1 | 1 | 35 | 2 | 1 | 1 | 75 |" in lines


def test_the_claims_are_judged_again_at_each_chosen_weight():
  aligner, single = verdicts.MULTI_STEP, verdicts.SINGLE_STEP
  chosen = f"{aligner}@align_weight=4"
  # At lambda 16 BC-Aligner trails posthoc; at its chosen weight it leads
  # every other strategy by far, its own lambda-16 row not counted.
  totals = {
    aligner: -10.0,
    chosen: 30.0,
    single: -5.0,
    "posthoc-linear-sloss": 0.0,
    "nobc": -20.0,
  }
  results = _results(totals, {})
  results["config"] = {"method": {"joint": {"align_weight": 16.0}}}
  results["weight_selection"] = {
    aligner: {"field": "align_weight", "chosen_weight": 4.0},
    single: {"field": "align_weight", "chosen_weight": 16.0},
  }
  assert verdicts.at_chosen(results, aligner) == chosen
  # The chosen weight is the config's own: the plain row stands for it.
  assert verdicts.at_chosen(results, single) == single
  judged = verdicts.claims(results)
  word, why = judged["BC-Aligner has the best total"]
  assert word == "contradicted" and chosen not in why
  word, why = judged["BC-Aligner has the best total (each at its chosen weight)"]
  assert word == "holds" and why.endswith("ahead of all 3 others (Holm, m = 3)")
  word, why = judged["multi-step beats single-step in joint training"]
  assert word == "contradicted" and why.startswith(f"{aligner} - {single}:")
  word, why = judged[
    "multi-step beats single-step in joint training (each at its chosen weight)"
  ]
  assert word == "holds" and why.startswith(f"{chosen} - {single}:")
  del results["weight_selection"]
  assert len(verdicts.claims(results)) == 2


def test_the_settings_section_reads_its_numbers_from_the_probe_files(tmp_path):
  missing = settings_page.settings_section(str(tmp_path))
  assert "Not yet committed (`experiments/results/posthoc_gap/`)." in missing
  assert "MovieLens-100K, intended task, one seed: not yet committed." in missing
  (tmp_path / "posthoc_gap").mkdir()
  gap = {
    "strategy": "posthoc-linear-mloss",
    "posthoc_config": {"start": "closed_form", "learning_rate": 0.001},
    "versions": [
      {"version": 1, "ratio": 1.0761, "best_epoch": 25, "alignment_mse_v0": 0.02},
      {"version": 2, "ratio": 2.5, "best_epoch": 400, "alignment_mse_v0": 0.123456},
    ],
  }
  (tmp_path / "posthoc_gap" / "converged_start_mloss.json").write_text(json.dumps(gap))
  text = settings_page.settings_section(str(tmp_path))
  assert (
    "| posthoc-linear-mloss from the closed-form start, Adam 0.001 | 1.076 (25) | "
    "2.500 (400) | 0.1235 |"
  ) in text
  assert "Not yet committed (`experiments/results/stop_probe/`)." in text
  (tmp_path / "stop_probe").mkdir()
  history = [{"epoch": 5 * i, "recall@50": v} for i, v in enumerate([0.1, 0.3, 0.2], 1)]
  run = {
    "config": {"patience": 0, "dataset": "ml-100k", "seed": 100, "epochs": 15},
    "environment": {"git_commit": "abcdef0123"},
    "strategies": {"nobc": [{"version": 1, "history": history}]},
  }
  record = dict(stop_probe.probe(run, [5]), made_by="python -m experiments.stop_probe")
  (tmp_path / "stop_probe" / "x_probe.json").write_text(json.dumps(record))
  text = settings_page.settings_section(str(tmp_path))
  assert (
    "nobc (1 fits) after version 0 of a run_intended at commit abcdef0 "
    "(ml-100k, 1 seeds of config.seed 100, up to 15 epochs"
  ) in text
  assert "| 5 | nobc | 1 | 0 | 1 | 15 | 15 | 0.00 / 0.00 |" in text
