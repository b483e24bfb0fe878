"""The package's layout: the README's module map, sizes, names and imports."""

import ast
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bcjax"
MAX_ROOT_MODULES = 10
MAX_LINES = 450
# The two sides of the data/model boundary: models read data, never the reverse.
LOWER, UPPER = "bcjax.data", "bcjax.models"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _packages() -> list[pathlib.Path]:
  return sorted(p.parent for p in PACKAGE.rglob("__init__.py"))


def _readme_map() -> dict[str, set[str]]:
  """``{package folder: module names}`` from the README's module map."""
  text = (ROOT / "README.md").read_text()
  section = text.split("## What is here", 1)[1].split("\n## ", 1)[0]
  rows = re.findall(r"^\| `(bcjax/[\w/]*)` \| ([^|]*) \|", section, re.M)
  assert rows, "the README's 'What is here' section has no module map"
  return {folder: set(re.findall(r"`(\w+)`", names)) for folder, names in rows}


def _imports(name: str, path: pathlib.Path, modules) -> set[str]:
  """The bcjax modules ``name`` imports at module level."""
  found = set()
  for node in ast.parse(path.read_text()).body:
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      for alias in node.names:
        sub = f"{node.module}.{alias.name}"
        found.add(sub if sub in modules else node.module)
  return {m for m in found if m in modules and m != name}


def test_readme_module_map_matches_the_tree():
  listed = _readme_map()
  actual = {
    str(folder.relative_to(ROOT)) + "/": {
      p.stem for p in folder.glob("*.py") if p.name != "__init__.py"
    }
    for folder in _packages()
  }
  assert sorted(listed) == sorted(actual), "packages in the map vs the tree"
  for folder, names in actual.items():
    assert listed[folder] == names, (
      f"{folder}: the map lists {sorted(listed[folder] - names)} that are not "
      f"there and misses {sorted(names - listed[folder])}"
    )


def test_every_subpackage_says_what_belongs_there():
  for folder in _packages():
    doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
    assert doc and len(doc.split()) >= 10, f"{folder} has no docstring to speak of"


def test_sizes_and_names():
  root = [p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
  assert len(root) <= MAX_ROOT_MODULES, sorted(p.name for p in root)
  for name, path in _modules().items():
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"
  stems = {}
  for path in PACKAGE.rglob("*"):
    stems.setdefault(path.stem.replace("_", ""), set()).add(path.stem)
  twins = {k: v for k, v in stems.items() if len(v) > 1}
  assert not twins, f"names that differ by an underscore: {twins}"


def test_no_import_cycle_and_no_back_arrow():
  modules = _modules()
  graph = {m: _imports(m, p, modules) for m, p in modules.items()}
  for name, imported in graph.items():
    if name.startswith(LOWER):
      back = sorted(m for m in imported if m.startswith(UPPER))
      assert not back, f"{name} imports {back}: data must not depend on models"

  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph[node]):
      assert state.get(nxt) != "open", "import cycle: " + " -> ".join(
        stack[stack.index(nxt) :] + [nxt]
      )
      if nxt not in state:
        visit(nxt)
    stack.pop()
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node)


def test_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
  # The check above must be able to fail: a two-module cycle is reported.
  package = tmp_path / "bcjax"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "a.py").write_text("from bcjax import b\n")
  (package / "b.py").write_text("from bcjax.a import thing\n")
  this = sys.modules[__name__]
  monkeypatch.setattr(this, "ROOT", tmp_path)
  monkeypatch.setattr(this, "PACKAGE", package)
  with pytest.raises(AssertionError, match="bcjax.a -> bcjax.b -> bcjax.a"):
    test_no_import_cycle_and_no_back_arrow()
