"""One plain registry per kind of part (objectives, architectures, datasets, metrics, ...).

Every registry refuses duplicate and malformed names, and an unknown name raises an error that
lists the valid ones: user input never falls back silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class UnknownNameError(KeyError):
    """An unknown name was looked up; the message lists the valid names."""

    def __init__(self, kind: str, name: object, valid: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = valid
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError's str() would quote the whole message
        return self.args[0]


class Registry(Generic[T]):
    """A name -> entry mapping for one kind of part."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name`; a duplicate or malformed name is refused."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r} must match {_NAME.pattern}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry registered under `name`; raises UnknownNameError listing valid names."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def with_defaults(owner: str, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`defaults` updated by `options`; an option that has no default is refused, listing the valid ones.

    `owner` names what the options belong to in the message, e.g. "objective 'gan-qp'".
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"{owner} has no option(s) {', '.join(unknown)}; valid: {valid}")
    return {**defaults, **options}
