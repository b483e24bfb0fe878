"""The suite's deprecation rule: ours fail the run, others are summarised.

Each case plants modules in a temporary directory, never in the package: one
named like ours (``benchmarks.planted``) and one outside the project
(``elsewhere.old``), each calling a deprecated function of its own.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import deprecations

pytest_plugins = ("pytester",)

TESTS = os.path.dirname(os.path.abspath(__file__))
DEPRECATED = """\
import warnings


def old_api():
  warnings.warn("old_api is deprecated; use new_api", DeprecationWarning, stacklevel=1)
"""


@pytest.fixture
def planted(pytester, monkeypatch):
  """A project with both modules and the suite's filters, and a fresh log."""
  pytester.mkpydir("benchmarks")
  pytester.path.joinpath("benchmarks", "planted.py").write_text(DEPRECATED)
  pytester.mkpydir("elsewhere")
  pytester.path.joinpath("elsewhere", "old.py").write_text(DEPRECATED)
  lines = "\n".join(f"  {line}" for line in deprecations.filter_lines())
  pytester.makeini(f"[pytest]\nfilterwarnings =\n{lines}\n")
  monkeypatch.setenv(
    "PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])
  )
  monkeypatch.setenv(deprecations.LOG_VARIABLE, str(pytester.path / "log.jsonl"))
  monkeypatch.setenv(deprecations.SUMMARY_VARIABLE, str(pytester.path / "summary.txt"))
  return pytester


def _run(pytester, call):
  pytester.makepyfile(test_planted=f"def test_call():\n  {call}\n")
  return pytester.runpytest_subprocess("-p", "deprecations", "-p", "no:cacheprovider")


def test_a_deprecated_call_in_a_module_named_like_ours_fails_the_run(planted):
  result = _run(planted, "from benchmarks import planted; planted.old_api()")
  result.assert_outcomes(failed=1)
  result.stdout.fnmatch_lines(["*DeprecationWarning: old_api is deprecated*"])


def test_one_outside_the_project_is_only_in_the_summary(planted):
  result = _run(planted, "from elsewhere import old; old.old_api()")
  result.assert_outcomes(passed=1)
  result.stdout.fnmatch_lines(
    [
      f"*{deprecations.SUMMARY_TITLE}*",
      "1x elsewhere: DeprecationWarning: old_api is deprecated; use new_api",
    ]
  )
  # The copy .ci/run prints again at its end.
  assert (planted.path / "summary.txt").read_text() == (
    "1x elsewhere: DeprecationWarning: old_api is deprecated; use new_api\n"
  )


def test_a_run_with_none_says_so(planted):
  result = _run(planted, "pass")
  result.assert_outcomes(passed=1)
  result.stdout.fnmatch_lines([f"*{deprecations.SUMMARY_TITLE}*", "none"])


@pytest.mark.parametrize(
  "package,fails", [("benchmarks.planted", True), ("elsewhere.old", False)]
)
def test_a_process_a_test_starts_follows_the_same_rule(planted, package, fails):
  # The environment is the suite's own: conftest.py put the sitecustomize
  # that installs the rule on PYTHONPATH.
  proc = subprocess.run(
    [sys.executable, "-c", f"import {package} as m; m.old_api()"],
    cwd=planted.path,
    capture_output=True,
    text=True,
    timeout=60,
  )
  log = planted.path / "log.jsonl"
  if fails:
    assert proc.returncode != 0
    assert "DeprecationWarning: old_api is deprecated" in proc.stderr
    assert not log.exists()
  else:
    assert proc.returncode == 0, proc.stderr
    assert "old_api" not in proc.stderr  # to the parent's summary instead
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry == {
      "package": "elsewhere",
      "category": "DeprecationWarning",
      "message": "old_api is deprecated; use new_api",
    }
