"""Writes that are never seen half-done: a temporary file, then a rename.

``os.replace`` within one folder is atomic on POSIX and Windows, so a reader
(or a rerun after a crash) sees either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", permissions: int = 0o644) -> Iterator[IO]:
  """Opens a temporary file beside ``path`` that replaces it on success.

  Args:
    path: the final path.
    mode: ``"w"`` for text or ``"wb"`` for bytes.
    permissions: of the final file; ``mkstemp`` makes it 0600, but results
      are for the group to read.

  Yields:
    The open temporary file; on an exception it is removed and ``path`` is
    left as it was.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.")
  try:
    with os.fdopen(fd, mode) as f:
      yield f
      f.flush()
      os.fchmod(f.fileno(), permissions)
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def write_json(path: str, obj: Any) -> None:
  """Writes ``obj`` as indented JSON, atomically."""
  with atomic_open(path) as f:
    json.dump(obj, f, indent=2, sort_keys=False)
    f.write("\n")
