"""Which deprecation warnings fail the suite, and a summary of the rest.

The rule lives in ``pyproject.toml``'s ``filterwarnings``: a
``DeprecationWarning`` attributed to our own code (``bcjax``, ``experiments``,
``benchmarks``, ``tests``) is an error; one attributed to another package is
shown, never raised, so that a dependency's new release cannot break the suite
while bcjax is unchanged. This module makes that rule visible and carries it
into the processes that tests start:

- as a pytest plugin (``tests/conftest.py`` imports its hooks) it collects every
  third-party deprecation the run recorded, its own and its subprocesses', and
  prints one summary at the end: package, warning and how often;
- ``tests/subprocess_site/sitecustomize.py`` calls :func:`install` in every
  Python process a test starts (``tests/conftest.py`` puts that folder on
  ``PYTHONPATH``): the same filters, read from the same ``pyproject.toml``, and
  third-party deprecations appended to the file named by ``LOG_VARIABLE``.

The module imports nothing of bcjax or JAX: subprocesses load it before their
own code.
"""

import builtins
import collections
import json
import os
import pathlib
import sys
import tomllib
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Where subprocesses append the third-party deprecations they saw (JSON lines).
LOG_VARIABLE = "BCJAX_TEST_DEPRECATIONS_LOG"
# Where the end-of-run summary is also written, when set (.ci/run prints the
# newest stack's again at the very end).
SUMMARY_VARIABLE = "BCJAX_TEST_DEPRECATIONS_SUMMARY"
SUMMARY_TITLE = "third-party deprecations (not errors; bcjax's own are)"


def filter_lines(pyproject: pathlib.Path = ROOT / "pyproject.toml") -> list[str]:
  """The ``filterwarnings`` lines of ``[tool.pytest.ini_options]``."""
  with open(pyproject, "rb") as f:
    return tomllib.load(f)["tool"]["pytest"]["ini_options"]["filterwarnings"]


def install(lines: list[str]) -> None:
  """Applies pytest-style filter lines to this process, last line winning.

  Each line is ``action:message:category:module:lineno`` as pytest reads it
  from an ini file: ``message`` and ``module`` are regular expressions matched
  at the start, ``category`` a builtin warning class.
  """
  for line in lines:
    action, message, category, module, lineno = (line.split(":") + [""] * 4)[:5]
    warnings.filterwarnings(
      action,
      message=message,
      category=getattr(builtins, category or "Warning"),
      module=module,
      lineno=int(lineno or 0),
    )


def package_of(filename: str) -> str:
  """The top-level package of the module at ``filename``, else the file name.

  The module table answers for anything imported; a path under
  ``site-packages`` for the rest.
  """
  for name, module in list(sys.modules.items()):
    if getattr(module, "__file__", None) == filename:
      return name.split(".")[0]
  if filename.startswith("<frozen "):  # importlib's own frames, say
    return filename.removeprefix("<frozen ").split(".")[0].rstrip(">")
  parts = pathlib.PurePath(filename).parts
  if "site-packages" in parts:
    rest = parts[parts.index("site-packages") + 1 :]
    if rest:
      return pathlib.PurePath(rest[0]).stem
  return filename


def is_deprecation(category) -> bool:
  return issubclass(category, DeprecationWarning)


def record(filename: str, category, message) -> dict:
  """One summary entry for a warning shown at ``filename``."""
  return {
    "package": package_of(filename),
    "category": category.__name__,
    "message": str(message).splitlines()[0][:200],
  }


class Summary:
  """Counts third-party deprecations by (package, category, message)."""

  def __init__(self):
    self.counts = collections.Counter()

  def add(self, entry: dict) -> None:
    self.counts[(entry["package"], entry["category"], entry["message"])] += 1

  def add_log(self, path: str) -> None:
    """Adds the entries that subprocesses appended to ``path``."""
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          if line.strip():
            self.add(json.loads(line))

  def lines(self) -> list[str]:
    """``Nx package: Category: message``, most frequent first."""
    ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [f"{n}x {p}: {c}: {m}" for (p, c, m), n in ordered]


_summary = Summary()


def pytest_warning_recorded(warning_message, when, nodeid, location):
  del when, nodeid, location
  if is_deprecation(warning_message.category):
    _summary.add(
      record(
        warning_message.filename, warning_message.category, warning_message.message
      )
    )


def pytest_terminal_summary(terminalreporter):
  if hasattr(terminalreporter.config, "workerinput"):
    return  # a pytest-xdist worker: its warnings reach the controller's summary
  log = os.environ.get(LOG_VARIABLE)
  if log:
    _summary.add_log(log)
  lines = _summary.lines() or ["none"]
  terminalreporter.section(SUMMARY_TITLE)
  for line in lines:
    terminalreporter.write_line(line)
  if os.environ.get(SUMMARY_VARIABLE):
    with open(os.environ[SUMMARY_VARIABLE], "w") as f:
      f.write("".join(line + "\n" for line in lines))


def install_in_subprocess() -> None:
  """The suite's filters in a process a test started, and its log of the rest.

  Third-party deprecations go to the parent's log instead of stderr, so that
  tests reading a binary's output see what a user's shell would.
  """
  install(filter_lines())
  log = os.environ.get(LOG_VARIABLE)
  show = warnings.showwarning

  def showwarning(message, category, filename, lineno, file=None, line=None):
    if log and is_deprecation(category):
      with open(log, "a") as f:
        f.write(json.dumps(record(filename, category, message)) + "\n")
    else:
      show(message, category, filename, lineno, file, line)

  warnings.showwarning = showwarning
