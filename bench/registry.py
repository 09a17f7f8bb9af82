"""One plain registry per kind of part (objectives, architectures, datasets, metrics, ...), and the
one way an option of a registered part is declared and checked.

Every registry refuses duplicate and malformed names, and an unknown name raises an error that
lists the valid ones: user input never falls back silently.

An option is declared once, beside what it configures, as an `Option` (its default, type, range or
choices, and a description). `resolve(owner, given, declared)` checks given options against the
declarations and fills in the defaults; `option_problems` lists what is wrong without raising, for
the suite loader, which reports every bad key and value of a file before anything runs.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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


class _Required:
    """The default of an option that has none: it must be given."""

    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()

_TYPE_WORDS: dict[type, str] = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _number(value: float) -> str:
    return f"{value:g}"


def _shown(value: Any) -> str:
    """A valid value as a message lists it: as YAML writes it (true, null, plain strings)."""
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


@dataclass(frozen=True)
class Option:
    """One option of a registered part: its default, what values are valid, and what it does.

    `type` is int, float, str or bool; bool is never taken for a number, and an int is taken for a
    float (and resolved to one). `choices`, when given, are the only valid values. `low` and `high`
    bound numbers, inclusive unless `low_open` / `high_open`. `nullable`: None (YAML null) is valid
    too; what it means is in the description. A `default` of REQUIRED means the option must be given.
    """

    default: Any
    type: type
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPE_WORDS:
            raise TypeError(f"option type must be one of int, float, str, bool; got {self.type!r}")
        if not self.description.strip():
            raise ValueError("an option needs a description")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
            bad = [choice for choice in self.choices if not self._has_type(choice)]
            if bad or not self.choices:
                raise ValueError(f"choices {self.choices!r} must be values of type {self.type.__name__}")
        if self.default is not REQUIRED:
            problem = self.check(self.default)
            if problem is not None:
                raise ValueError(f"default {self.default!r} is invalid: {problem}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def valid(self) -> str:
        """What a valid value is, in words: "an integer >= 1", "one of l1, l2", "a number in [0, 1)"."""
        if self.choices is not None:
            text = "one of " + ", ".join(_shown(choice) for choice in self.choices)
        else:
            text = _TYPE_WORDS[self.type] + self._range()
        return text + (" or null" if self.nullable else "")

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f" in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f" {'<' if self.high_open else '<='} {_number(self.high)}"
        return ""

    def _has_type(self, value: Any) -> bool:
        if self.type is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if self.type is float:
            return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))
        return isinstance(value, self.type)

    def _in_range(self, value: float) -> bool:
        above_low = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below_high = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above_low and below_high

    def check(self, value: Any) -> str | None:
        """None if `value` is valid, else what a valid value is ("must be an integer >= 1")."""
        if value is None and self.nullable:
            return None
        valid = self._has_type(value)
        if valid and self.choices is not None:
            valid = value in self.choices
        if valid and self.type in (int, float):
            valid = self._in_range(value)
        if valid:
            return None
        return f"must be {self.valid()}{self._hint(value)}"

    def _hint(self, value: Any) -> str:
        """Why a value that looks right is not: YAML 1.1 reads 1e-3 (no dot) as a string."""
        if self.type is float and isinstance(value, str) and "e" in value.lower():
            try:
                number = float(value)
            except ValueError:
                return ""
            return f" (YAML reads {value} as a string; write it with a dot, e.g. {number!r})"
        return ""

    def coerce(self, value: Any) -> Any:
        """A valid `value` as the part receives it: an int given for a float option becomes a float."""
        if self.type is float and value is not None:
            return float(value)
        return value


def option_defaults(declared: Mapping[str, Option]) -> dict[str, Any]:
    """Every declared option with its default (REQUIRED for one that has none)."""
    return {key: option.default for key, option in declared.items()}


def option_problems(owner: str, given: Mapping[str, Any], declared: Mapping[str, Option]) -> list[tuple[str, str]]:
    """(key, message) for every unknown key, bad value and missing required option of `given`.

    `owner` names what the options belong to, e.g. "objective 'gan-qp'". Messages name the valid
    keys, or the bad value and what a valid one is.
    """
    problems = []
    for key in given:
        if key not in declared:
            valid = ", ".join(sorted(declared)) or "none"
            problems.append((key, f"{owner} has no option {key!r}; valid: {valid}"))
    for key, option in declared.items():
        if key in given:
            problem = option.check(given[key])
            if problem is not None:
                problems.append((key, f"{owner} option {key}={given[key]!r} is invalid; {problem}"))
        elif option.required:
            problems.append((key, f"{owner} needs the option {key}: {option.valid()} ({option.description})"))
    return problems


class OptionError(ValueError):
    """Options that do not match their declarations; the message has one line per problem."""


def resolve(owner: str, given: Mapping[str, Any] | None, declared: Mapping[str, Option]) -> dict[str, Any]:
    """`given` over the declared defaults, every key and value checked; floats resolved to float.

    Raises OptionError naming every problem at once (see `option_problems`).
    """
    given = dict(given or {})
    problems = option_problems(owner, given, declared)
    if problems:
        raise OptionError("\n".join(message for _, message in problems))
    return {key: option.coerce(given.get(key, option.default)) for key, option in declared.items()}


def check_build_signature(owner: str, build: Callable[..., Any], declared: Mapping[str, Option]) -> None:
    """Refuse a `build` whose parameters are not exactly the declared options, keyword-only and without
    defaults (the declaration is the one place an option's default lives)."""
    parameters = inspect.signature(build).parameters.values()
    names = [parameter.name for parameter in parameters]
    loose = [parameter.name for parameter in parameters
             if parameter.kind is not inspect.Parameter.KEYWORD_ONLY
             or parameter.default is not inspect.Parameter.empty]
    if loose or sorted(names) != sorted(declared):
        raise TypeError(
            f"{owner}: build takes ({', '.join(names) or 'nothing'}), but its options are "
            f"({', '.join(declared) or 'none'}); every build parameter must be a declared option, keyword-only, "
            f"without a default"
        )
