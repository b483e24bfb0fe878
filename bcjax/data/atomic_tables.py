"""The tables of RecBole atomic files: typed headers, rows, logs and sides.

An atomic file is tab-separated UTF-8 text; its first non-blank line names
the columns as ``name:type``. Every row must have as many fields as the
header. A ``token_seq`` field holds space-separated tokens, as RecBole's
default ``seq_separator`` has it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bcjax.data import textfiles
from bcjax.errors import InputError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
LOG_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


@dataclasses.dataclass(frozen=True)
class Table:
  """The rows of an atomic file.

  Attributes:
    path: the file.
    header_line: the line number of the header.
    fields: column name -> type, in file order.
    rows: ``(line number, fields)`` per row, each field stripped.
  """

  path: Path
  header_line: int
  fields: dict[str, str]
  rows: list[tuple[int, list[str]]]

  def column(self, name: str) -> int:
    return list(self.fields).index(name)


@dataclasses.dataclass
class Log:
  """The interactions of a file in file order, with their line numbers."""

  path: Path
  lines: list[int] = dataclasses.field(default_factory=list)
  users: list[str] = dataclasses.field(default_factory=list)
  items: list[str] = dataclasses.field(default_factory=list)
  timestamps: list[int | float] = dataclasses.field(default_factory=list)
  ratings: list[float] = dataclasses.field(default_factory=list)

  def append(
    self, number: int, user: str, item: str, timestamp: int | float, rating: float
  ) -> None:
    """Adds one interaction, read on line ``number``; ids must be non-empty."""
    for key, what in ((user, "user id"), (item, "item id")):
      if not key:
        raise InputError(f"{self.path}:{number}: empty {what}; expected an id")
    self.lines.append(number)
    self.users.append(user)
    self.items.append(item)
    self.timestamps.append(timestamp)
    self.ratings.append(rating)


@dataclasses.dataclass(frozen=True)
class Side:
  """The fields of the users or the items, as labels per node.

  Attributes:
    path: the file they were read from.
    key: the id column's name.
    fields: field name -> type, in file order (the id column included).
    labels: node key -> field -> the node's labels: one for a non-empty
      ``token``, the tokens of a ``token_seq``, none where the field is empty.
  """

  path: Path
  key: str
  fields: dict[str, str]
  labels: dict[str, dict[str, tuple[str, ...]]]

  def node_labels(self, key: str, field: str) -> tuple[str, ...]:
    """The labels of node ``key`` in ``field``; none for an unlisted node."""
    return self.labels.get(key, {}).get(field, ())


def read_table(path: Path, columns: tuple[str, ...], what: str) -> Table:
  """Reads an atomic file, checking its header and the length of each row.

  Args:
    path: the file.
    columns: the columns it must have.
    what: what its rows are, for messages.

  Returns:
    The table.

  Raises:
    InputError: a header field without a known type, a repeated or missing
      column, no rows, or a row with another number of fields than the
      header; the message names the file and the line.
  """
  expected = f"a header of name:type fields with {', '.join(columns)}, then {what}"
  (header_line, header), *rows = textfiles.read_lines(path, "utf-8", expected)
  fields: dict[str, str] = {}
  for i, text in enumerate(header.split("\t")):
    name, _, type_ = (part.strip() for part in text.partition(":"))
    if type_ not in FIELD_TYPES:
      got = f"unknown type {type_!r}" if type_ else "no type"
      raise InputError(
        f"{path}:{header_line}: header field {i + 1} {text.strip()!r} has {got}; "
        f"expected name:type with type one of {', '.join(FIELD_TYPES)}"
      )
    if name in fields:
      raise InputError(
        f"{path}:{header_line}: duplicate column {name!r} in the header "
        f"(fields {list(fields).index(name) + 1} and {i + 1}); expected each "
        "column once"
      )
    fields[name] = type_
  absent = [column for column in columns if column not in fields]
  if absent:
    why = " (the timestamp orders the log)" if "timestamp" in absent else ""
    raise InputError(
      f"{path}:{header_line}: the header lacks column {', '.join(absent)}{why}; "
      f"expected name:type fields with {', '.join(columns)}, got {header!r}"
    )
  if not rows:
    raise InputError(f"{path}: the file has a header but no rows; expected {what}")
  table = []
  for number, line in rows:
    values = line.split("\t")
    if len(values) != len(fields):
      raise InputError(
        f"{path}:{number}: expected {len(fields)} tab-separated fields "
        f"({', '.join(fields)}) as in the header, got {len(values)}"
      )
    table.append((number, [value.strip() for value in values]))
  return Table(path, header_line, fields, table)


def read_log(
  path: Path,
  rating_bounds: tuple[float, float] | None,
  whole_timestamps: bool = False,
) -> Log:
  """The interactions of an ``.inter`` file, in file order.

  Args:
    path: the file; it needs the columns of :data:`LOG_COLUMNS`.
    rating_bounds: the inclusive range of a rating, or None for any finite
      number.
    whole_timestamps: whether a timestamp must be whole seconds; else any
      finite number (RecBole types the column float, and writes fractional
      times as they are).

  Raises:
    InputError: as :func:`read_table`, or a bad id, rating or timestamp.
  """
  table = read_table(path, LOG_COLUMNS, "one row per interaction")
  user, item, rating, timestamp = (table.column(c) for c in LOG_COLUMNS)
  log = Log(path)
  for number, row in table.rows:
    log.append(
      number,
      row[user],
      row[item],
      textfiles.parse_timestamp(path, number, row[timestamp], whole_timestamps),
      textfiles.parse_rating(path, number, row[rating], rating_bounds),
    )
  return log


def read_side(path: Path, key: str, what: str) -> Side:
  """The labels of each node of an ``.item`` or ``.user`` file.

  Args:
    path: the file.
    key: its id column, ``item_id`` or ``user_id``.
    what: what its rows are, for messages.

  Raises:
    InputError: as :func:`read_table`, or an id listed twice.
  """
  table = read_table(path, (key,), what)
  at = table.column(key)
  kinds = list(table.fields.items())

  def labels(row: list[str]) -> dict[str, tuple[str, ...]]:
    return {
      name: tuple(value.split()) if type_ == "token_seq" else (value,)
      for (name, type_), value in zip(kinds, row)
      if value and type_ in ("token", "token_seq")
    }

  rows = ((number, row[at], labels(row)) for number, row in table.rows)
  return Side(path, key, table.fields, textfiles.index_rows(path, key, rows))
