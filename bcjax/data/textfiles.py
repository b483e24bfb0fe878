"""Reading delimited text files with one-line errors that name file and line.

The GroupLens and the RecBole atomic readers share these pieces, so that the
same mistake (a rating that is no number, a repeated id) gets the same message
whichever layout it is found in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from bcjax.errors import InputError


def read_lines(path: Path, encoding: str, expected: str) -> list[tuple[int, str]]:
  """The non-blank lines of a file, each with its 1-based line number.

  Args:
    path: the file.
    encoding: its text encoding.
    expected: what the file should hold, for messages.

  Returns:
    ``(line number, line)`` pairs, the line without its end-of-line.

  Raises:
    InputError: the file cannot be read, is not valid text or is empty.
  """
  try:
    data = path.read_bytes()
  except OSError as e:
    raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise InputError(
      f"{path}:{line}: not valid {encoding} text; expected {expected}"
    ) from None
  # str.splitlines would also break at U+0085 and friends, which latin-1 titles
  # may contain, and so shift every later line number.
  lines = [
    (number, line.rstrip("\r"))
    for number, line in enumerate(text.split("\n"), 1)
    if line.strip()
  ]
  if not lines:
    raise InputError(f"{path}: the file is empty; expected {expected}")
  return lines


def parse_rating(
  path: Path, number: int, text: str, bounds: tuple[float, float] | None
) -> float:
  """A rating field as a finite number, within ``bounds`` when given.

  Args:
    path: the file, for messages.
    number: the line number, for messages.
    text: the field.
    bounds: the inclusive ``(low, high)`` range, or None for any finite number.

  Returns:
    The rating.

  Raises:
    InputError: the field is no number, not finite or out of range.
  """
  expected = (
    "a finite number"
    if bounds is None
    else f"a number in [{_g(bounds[0])}, {_g(bounds[1])}]"
  )
  try:
    value = float(text)
  except ValueError:
    raise InputError(
      f"{path}:{number}: rating {text!r} is not a number; expected {expected}"
    ) from None
  if bounds is None:
    if not math.isfinite(value):
      raise InputError(
        f"{path}:{number}: rating {text!r} is not finite; expected {expected}"
      )
  elif not bounds[0] <= value <= bounds[1]:  # also false for NaN
    raise InputError(
      f"{path}:{number}: rating {text!r} is outside [{_g(bounds[0])}, "
      f"{_g(bounds[1])}]; expected a finite {expected.removeprefix('a ')}"
    )
  return value


def _g(x: float) -> str:
  return f"{x:g}"


def parse_timestamp(
  path: Path, number: int, text: str, whole: bool = True
) -> int | float:
  """A timestamp field as unix seconds.

  Args:
    path: the file, for messages.
    number: the line number, for messages.
    text: the field.
    whole: whether the seconds must be whole (GroupLens, MovieLens); else a
      fractional value is kept, as RecBole (which types the column float)
      writes and reads it.

  Returns:
    Whole seconds as an int (``"881250949.0"`` too: RecBole types the column
    float), other finite values as a float.

  Raises:
    InputError: the field is empty, no finite number, or (``whole``) not a
      whole number.
  """
  if not text:
    raise InputError(
      f"{path}:{number}: missing timestamp; expected unix seconds, which order the log"
    )
  try:
    return int(text)
  except ValueError:
    pass
  try:
    value = float(text)
  except ValueError:
    raise InputError(
      f"{path}:{number}: timestamp {text!r} is not a number; expected unix seconds"
    ) from None
  if not math.isfinite(value):
    raise InputError(
      f"{path}:{number}: timestamp {text!r} is not finite; expected unix seconds"
    )
  if value.is_integer():
    return int(value)
  if whole:
    raise InputError(
      f"{path}:{number}: timestamp {text!r} is not a whole number; expected "
      "unix seconds"
    )
  return value


def index_rows(path: Path, what: str, rows: Iterable[tuple[int, str, object]]) -> dict:
  """Maps each key to its row, rejecting repeated keys.

  Args:
    path: the file, for messages.
    what: what a key names, e.g. ``"movie id"``.
    rows: ``(line number, key, row)`` triples.

  Returns:
    key -> row.

  Raises:
    InputError: a key appears twice; the message names both lines.
  """
  table, first = {}, {}
  for number, key, row in rows:
    if key in table:
      raise InputError(
        f"{path}:{number}: duplicate {what} {key!r} (first on line "
        f"{first[key]}); expected each {what} once"
      )
    table[key], first[key] = row, number
  return table
