"""The exception raised for input a user can fix.

Every loader, config check and registry call raises :class:`InputError` with
one message that names the file, line or field at fault and what was
expected. Binaries catch it and print the message alone, without a traceback;
any other exception is a bug in bcjax and keeps its traceback.
"""

import contextlib
import difflib
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
    f"unknown {kind} {name!r}{did_you_mean(name, valid)}; valid {kind} names: "
    f"{', '.join(sorted(valid))}"
  )


def did_you_mean(name: str, valid) -> str:
  """``"; did you mean a, b"`` for the valid names close to ``name``, else ``""``."""
  close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.6)
  return f"; did you mean {', '.join(close)}" if close else ""


def check_new_name(kind: str, name: str) -> None:
  """Refuses a registry name that strategy names could not parse.

  Args:
    kind: what is registered, e.g. ``"transform"``.
    name: the new name; strategy names join names with ``-``.

  Raises:
    InputError: for an empty name or one with ``-``.
  """
  if "-" in name or not name:
    raise InputError(f"{kind} name {name!r} must be non-empty, without '-'")


def origin(fn) -> str:
  """``module.qualname`` of a registered function: where a name came from."""
  module = getattr(fn, "__module__", None) or "?"
  return f"{module}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def check_not_taken(kind: str, name: str, taken, fn) -> None:
  """Refuses ``name`` when another function registered it.

  The same function registered again (its module imported anew, a notebook
  cell run twice) is allowed: it replaces the entry.

  Args:
    kind: what is registered, e.g. ``"transform"``.
    name: the name.
    taken: the function already registered as ``name``, or None.
    fn: the function registering it now.

  Raises:
    InputError: naming both functions and their modules.
  """
  if taken is not None and origin(taken) != origin(fn):
    raise InputError(
      f"{kind} {name!r} is already registered by {origin(taken)}; "
      f"{origin(fn)} registers it again: expected a name of its own"
    )


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
