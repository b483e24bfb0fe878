r"""Writes the results pages and the README's summary from the committed runs.

No result number is typed in: each run of :data:`evidence.runs.RUNS`
commits its ``results.json`` and ``table.md`` under
``experiments/results/<name>/`` (a run made in parts: merged there by
``experiments.merge``), and this command writes from them, each block
between its own markers:

* ``docs/results.md``, ``docs/compatibility.md`` and the README's summary:
  :mod:`evidence.results_page` says what they hold; ``docs/results.md``'s
  section on the converged config's settings: :mod:`evidence.settings_page`;
* ``docs/align.md`` and a small table in ``README.md``: the committed
  ``experiments.align`` run (:mod:`evidence.align_report`).

  python -m evidence.report            # rewrite every stale page
  python -m evidence.report --check    # exit 1 if any is stale
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from bcjax.storage import atomic_files
from evidence import align_report, settings_page
from evidence.results_page import (
  BEGIN,
  BEGIN_COMPATIBILITY,
  BEGIN_SUMMARY,
  END,
  END_COMPATIBILITY,
  END_SUMMARY,
  compatibility_section,
  section,
  summary,
)
from experiments.provenance import DRIFT

flags.DEFINE_string("results_dir", "experiments/results", "Committed runs.")
flags.DEFINE_string("readme", "README.md", "The README: its results summary.")
flags.DEFINE_string("results_page", "docs/results.md", "The full results page.")
flags.DEFINE_string(
  "compatibility_page", "docs/compatibility.md", "The compatibility analytics page."
)
flags.DEFINE_string(
  "align_page", "docs/align.md", "The bring-your-own-embeddings page."
)
flags.DEFINE_bool("check", False, "Only check that every page is up to date.")
FLAGS = flags.FLAGS


def replaced(text: str, generated: str, begin: str = BEGIN, end: str = END) -> str:
  """``text`` with ``generated`` between the markers ``begin`` and ``end``."""
  if begin not in text or end not in text:
    raise ValueError(f"the page lacks the markers {begin!r} and {end!r}")
  head, rest = text.split(begin, 1)
  _, tail = rest.split(end, 1)
  return head + generated + tail


def _relative(path: str, start: str) -> str:
  return os.path.relpath(path, os.path.dirname(os.path.abspath(start))).replace(
    os.sep, "/"
  )


def rendered_pages(
  results_dir: str,
  readme: str = "README.md",
  results_page: str = "docs/results.md",
  compatibility_page: str = "docs/compatibility.md",
  align_page: str | None = None,
) -> dict[str, tuple[str, str]]:
  """Every generated page: its path -> (its text now, its text rendered).

  With ``align_page``, the committed align run's blocks too (on that page
  and in the README).
  """
  blocks = [
    (
      readme,
      summary(
        results_dir,
        _relative(results_page, readme),
        _relative(compatibility_page, readme),
      ),
      BEGIN_SUMMARY,
      END_SUMMARY,
    ),
    (
      results_page,
      section(results_dir, os.path.dirname(os.path.abspath(results_page))),
      BEGIN,
      END,
    ),
    (
      results_page,
      settings_page.settings_section(results_dir),
      settings_page.BEGIN_SETTINGS,
      settings_page.END_SETTINGS,
    ),
    (
      compatibility_page,
      compatibility_section(results_dir),
      BEGIN_COMPATIBILITY,
      END_COMPATIBILITY,
    ),
  ]
  if align_page is not None:
    blocks += [
      (
        readme,
        align_report.summary(results_dir, _relative(align_page, readme)),
        align_report.BEGIN_SUMMARY,
        align_report.END_SUMMARY,
      ),
      (
        align_page,
        align_report.section(
          results_dir,
          os.path.dirname(os.path.abspath(align_page)),
        ),
        align_report.BEGIN,
        align_report.END,
      ),
    ]
  out = {}
  for path, block, begin, end in blocks:
    if path not in out:
      with open(path) as f:
        out[path] = (f.read(),) * 2
    text, rendered = out[path]
    try:
      out[path] = (text, replaced(rendered, block, begin, end))
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from None
  return out


def _settled(text: str) -> str:
  """``text`` without its :data:`DRIFT` lines, which later commits change.

  A warning is written with a blank line after it: that goes too, so a page
  rendered before the code drifted and one rendered after compare equal.
  """
  lines, out = text.split("\n"), []
  for i, line in enumerate(lines):
    warned = i > 0 and lines[i - 1].startswith(DRIFT)
    if not line.startswith(DRIFT) and not (warned and not line):
      out.append(line)
  return "\n".join(out)


def update(
  results_dir: str,
  readme: str,
  results_page: str,
  compatibility_page: str,
  check: bool = False,
  align_page: str | None = None,
) -> int:
  """Rewrites every stale page (with ``check``: only says which); exit status."""
  pages = rendered_pages(
    results_dir, readme, results_page, compatibility_page, align_page
  )
  stale = [
    path for path, (text, new) in pages.items() if _settled(text) != _settled(new)
  ]
  if check:
    for path in stale:
      print(
        f"error: {path}'s generated results are stale; run python -m evidence.report",
        file=sys.stderr,
      )
    return 1 if stale else 0
  for path in stale:
    with atomic_files.atomic_open(path) as f:
      f.write(pages[path][1])
  return 0


def main(argv):
  del argv
  return update(
    FLAGS.results_dir,
    FLAGS.readme,
    FLAGS.results_page,
    FLAGS.compatibility_page,
    FLAGS.check,
    FLAGS.align_page,
  )


if __name__ == "__main__":
  app.run(main)
