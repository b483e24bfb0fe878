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
# The layer order, lowest first: a module may import its own package (or root
# module) and those of lower layers, never a higher or a sibling one. Every
# import statement counts, inside functions and under TYPE_CHECKING too.
LAYERS = (
  ("bcjax", "bcjax.errors"),  # the version string; error types
  ("bcjax.keys", "bcjax.environment", "bcjax.extensions", "bcjax.sharding"),
  ("bcjax.components",),  # transforms, losses, solvers, chains: pure functions
  ("bcjax.storage",),  # files, checkpoints, workdirs, typed records
  ("bcjax.data",),
  ("bcjax.models",),  # models read data, never the reverse
  ("bcjax.evaluation",),
  ("bcjax.align",),  # bridges between a team's own embeddings
  ("bcjax.fitting",),
  ("bcjax.methods",),  # the methods registry and the strategy grammar
  ("bcjax.registry",),  # serving: strategies' checkpoints and align stores
  ("bcjax.compatibility",),
  ("bcjax.jobs",),
)


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


def _imports(name: str, path: pathlib.Path, modules) -> dict[str, int]:
  """``{bcjax module: line}`` of every import in ``name``, wherever it stands."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = {}
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(parent + ([base] if base else []))
      targets = [f"{base}.{a.name}" for a in node.names]
    else:
      continue
    for target in targets:
      while target and target not in modules:  # a name inside a module
        target = target.rpartition(".")[0]
      if target and target != name:
        found.setdefault(target, node.lineno)
  return found


def _unit(module: str) -> str:
  """The root module or subpackage ``module`` belongs to."""
  units = [u for layer in LAYERS for u in layer]
  return max((u for u in units if module == u or module.startswith(u + ".")), key=len)


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


def test_no_import_cycle_and_no_upward_import():
  modules = _modules()
  graph = {m: _imports(m, p, modules) for m, p in modules.items()}
  layer = {u: i for i, units in enumerate(LAYERS) for u in units}
  unplaced = sorted({m for m in modules if _unit(m) == "bcjax" and m != "bcjax"})
  assert not unplaced, f"root modules with no layer in LAYERS: {unplaced}"
  for name, imported in sorted(graph.items()):
    for target, line in sorted(imported.items()):
      source, to = _unit(name), _unit(target)
      assert source == to or layer[to] < layer[source], (
        f"{modules[name].relative_to(ROOT)}:{line} imports {target}: "
        f"{source} may not import {to} (LAYERS in tests/test_layout.py)"
      )

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


def _plant(tmp_path, monkeypatch, files):
  """Points the checks at a package of ``files`` (``{relative path: source}``)."""
  package = tmp_path / "bcjax"
  for relative, source in {"__init__.py": "", **files}.items():
    (package / relative).parent.mkdir(parents=True, exist_ok=True)
    (package / relative).write_text(source)
  this = sys.modules[__name__]
  monkeypatch.setattr(this, "ROOT", tmp_path)
  monkeypatch.setattr(this, "PACKAGE", package)


@pytest.mark.parametrize(
  "files,message",
  [
    # A two-module cycle inside one package, one side of it imported inside
    # a function.
    (
      {
        "data/__init__.py": "",
        "data/a.py": "from bcjax.data import b\n",
        "data/b.py": "def f():\n  from .a import thing\n",
      },
      "import cycle: bcjax.data.a -> bcjax.data.b -> bcjax.data.a",
    ),
    # Under TYPE_CHECKING, and with no cycle: components may not import methods.
    (
      {
        "components/__init__.py": "",
        "components/t.py": "if TYPE_CHECKING:\n  from bcjax.methods.base import M\n",
        "methods/__init__.py": "",
        "methods/base.py": "M = 1\n",
      },
      "bcjax.components may not import bcjax.methods",
    ),
  ],
  ids=["cycle", "upward"],
)
def test_the_import_check_fails_on_a_planted_case(
  tmp_path, monkeypatch, files, message
):
  # The check above must be able to fail.
  _plant(tmp_path, monkeypatch, files)
  with pytest.raises(AssertionError, match=message):
    test_no_import_cycle_and_no_upward_import()
