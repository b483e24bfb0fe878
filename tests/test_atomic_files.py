"""Atomic writes: all or nothing, and readable by the group."""

import os
import stat

import pytest

from bcjax.storage import atomic_files


def test_written_files_are_group_readable_whatever_mkstemp_made(tmp_path):
  path = tmp_path / "results.json"
  atomic_files.write_json(str(path), {"a": 1})
  assert stat.S_IMODE(path.stat().st_mode) == 0o644
  assert path.read_text() == '{\n  "a": 1\n}\n'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "table.md"
  path.write_text("old")
  with pytest.raises(RuntimeError), atomic_files.atomic_open(str(path)) as f:
    f.write("half")
    raise RuntimeError("killed")
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["table.md"]
