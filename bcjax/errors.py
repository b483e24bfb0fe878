"""The exception raised for input a user can fix.

Every loader, config check and registry call raises :class:`InputError` with
one message that names the file, line or field at fault and what was
expected. Binaries catch it and print the message alone, without a traceback;
any other exception is a bug in bcjax and keeps its traceback.
"""


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
