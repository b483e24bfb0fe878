"""One registry shape for every kind of component.

Transform families, alignment losses, methods and align's bridge families
are each a :class:`Registry` of entries of one shape, :class:`Entry`: a
name, the pure function or factory (``fn``), the frozen dataclass of its
hyperparameters (``hparams``, :mod:`bcjax.components.hparams`) and where it
was registered from (``source``, what a fresh process imports to find it
again). Each kind adds the fields of what it can do (a method's ``reads``,
a family's ``apply``); callers ask those fields, never a name.

The registry is where the rules live once, whatever the kind:

* a name strategy names could not parse is refused (the kind's own check);
* a name taken by another function is refused, naming both modules; the
  same function again (its module imported anew, a notebook cell run twice)
  replaces its entry;
* hyperparameters that are not a frozen dataclass with valid defaults are
  refused;
* an unknown name lists the valid ones, with "did you mean" for close ones.

A registry reads like a read-only dict of its entries (``name in
TRANSFORMS``, ``TRANSFORMS["linear"]``, ``.items()``); only :meth:`add`
writes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from bcjax import extensions
from bcjax.components import hparams as hparams_lib
from bcjax.errors import InputError, check_new_name, check_not_taken, unknown_name


@dataclasses.dataclass(frozen=True, kw_only=True)
class Entry:
  """What every registered component is.

  Attributes:
    name: the name in strategy names (or ``--family``).
    fn: the pure function or factory the kind calls (a transform family's
      ``hparams -> BackwardTransform``, a loss's value, a method's
      ``(ctx, k, earlier) -> Version``, a bridge family's fit).
    hparams: the frozen dataclass of its hyperparameters, every field with a
      default; its fields are the component's config section and flags.
    source: where it was registered from (:func:`bcjax.extensions.source_of`);
      empty: :meth:`Registry.add` fills it in from ``fn``.
  """

  name: str
  fn: Callable[..., Any]
  hparams: type = hparams_lib.NoHparams
  source: str = ""


E = TypeVar("E", bound=Entry)


class UnknownNameError(InputError, KeyError):
  """A name no entry has. A KeyError too, so that ``registry.get(name)``
  and ``name in registry`` behave as a dict's do."""

  def __str__(self) -> str:
    # KeyError's own str() quotes its message.
    return str(self.args[0])


class Registry(Mapping[str, E], Generic[E]):
  """Name -> entry for one kind of component.

  Args:
    kind: what is registered, in messages (``"transform"``).
    check_name: ``(kind, name, registry) -> None``, raising
      :class:`InputError` for a name the kind cannot hold; default: non-empty,
      without ``-`` (strategy names join names with it).
    also_valid: names the lookups accept beside the entries (listed when a
      name is unknown), e.g. align's ``auto``.
  """

  def __init__(
    self,
    kind: str,
    *,
    check_name: Callable[[str, str, Registry], None] | None = None,
    also_valid: tuple[str, ...] = (),
  ):
    self.kind = kind
    self._check_name = check_name or (lambda kind, name, _: check_new_name(kind, name))
    self._also_valid = also_valid
    self._entries: dict[str, E] = {}

  def add(self, entry: E) -> E:
    """Registers ``entry`` (see the module's rules) and returns it as stored.

    Raises:
      InputError: naming the entry and what was expected.
    """
    self._check_name(self.kind, entry.name, self)
    hparams_lib.check_class(self.kind, entry.name, entry.hparams)
    taken = self._entries.get(entry.name)
    check_not_taken(
      self.kind, entry.name, None if taken is None else taken.fn, entry.fn
    )
    if not entry.source:
      entry = dataclasses.replace(entry, source=extensions.source_of(entry.fn))
    self._entries[entry.name] = entry
    return entry

  def __getitem__(self, name: str) -> E:
    try:
      return self._entries[name]
    except KeyError:
      raise UnknownNameError(
        str(unknown_name(self.kind, name, [*self._entries, *self._also_valid]))
      ) from None

  def __iter__(self) -> Iterator[str]:
    return iter(self._entries)

  def __len__(self) -> int:
    return len(self._entries)

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}: {', '.join(self._entries)})"

  @contextlib.contextmanager
  def scratch(self) -> Iterator[Registry[E]]:
    """Entries added inside the block are gone after it (tests, notebooks
    that try a component): the registry is restored in place, so modules
    that imported it see the restored entries too."""
    saved = dict(self._entries)
    try:
      yield self
    finally:
      self._entries.clear()
      self._entries.update(saved)
