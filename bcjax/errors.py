"""The exception raised for input a user can fix.

Every loader, config check and registry call raises :class:`InputError` with
one message that names the file, line or field at fault and what was
expected. Binaries catch it and print the message alone, without a traceback;
any other exception is a bug in bcjax and keeps its traceback.
"""

import contextlib
import sys


class InputError(ValueError):
  """Bad input: a file, a config field or a request that cannot be used."""


class TrainingDivergedError(RuntimeError):
  """A loss became NaN or infinite; the message names what and when."""


def unknown_name(kind: str, name: str, valid) -> InputError:
  """An error for a name that is not in a registry, listing the valid ones.

  Args:
    kind: what was looked up, e.g. ``"dataset"``.
    name: the name that was asked for.
    valid: the names that exist.

  Returns:
    An :class:`InputError` to raise.
  """
  return InputError(
    f"unknown {kind} {name!r}; valid {kind} names: {', '.join(sorted(valid))}"
  )


def check_new_name(kind: str, name: str, registered) -> None:
  """Refuses a registry name that strategy names could not parse.

  Args:
    kind: what is registered, e.g. ``"transform"``.
    name: the new name; strategy names join names with ``-``.
    registered: the names taken.

  Raises:
    InputError: for an empty name, one with ``-`` or one already taken.
  """
  if "-" in name or not name:
    raise InputError(f"{kind} name {name!r} must be non-empty, without '-'")
  if name in registered:
    raise InputError(f"{kind} {name!r} is already registered")


@contextlib.contextmanager
def exit_on_user_error():
  """Turns a user error into one ``error:`` line and an exit status.

  2 for bad input (its message says what to fix; a traceback would bury
  it), 3 for a diverged training (it names strategy, version and epoch; what
  was saved before is intact).
  """
  try:
    yield
  except InputError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except TrainingDivergedError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3)
