"""Problems in a YAML file, each at its key path and line, and the one translation of pydantic's
validation errors into them (for suites and SLURM profiles alike).

pydantic's `loc` may hold parts that are no key of the file: the member of a union it tried
(`TrickConfig`, `str`), `[key]` for a bad mapping key. They are dropped by walking the parsed input
along the `loc` and keeping only the keys and indices found there, so a change of schema never
needs a list of such parts kept by hand.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One problem with a file: where (key path, and line once located) and what is wrong."""

    path: Path
    message: str
    line: int | None = None

    def render(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"  {where}{format_path(self.path) or '<top>'}: {self.message}"


def format_path(path: Sequence[str | int]) -> str:
    """("train", "tricks", 1, "name") -> "train.tricks[1].name"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def line_index(root: yaml.Node | None) -> dict[Path, int]:
    """key path -> 1-based line of that key (mappings) or item (sequences) in a composed YAML document."""
    lines: dict[Path, int] = {}

    def walk(node: yaml.Node, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                sub = path + (key_node.value,)
                lines[sub] = key_node.start_mark.line + 1  # a repeated key: the last, whose value YAML keeps
                walk(value_node, sub)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                sub = path + (index,)
                lines[sub] = item.start_mark.line + 1
                walk(item, sub)

    if root is not None:
        walk(root, ())
    return lines


def locate(problems: Iterable[Problem], lines: Mapping[Path, int]) -> list[Problem]:
    """Each problem with the line of its path (or of the nearest enclosing key), sorted by line."""
    located = []
    for problem in problems:
        line = problem.line
        for cut in range(len(problem.path), 0, -1):
            if line:
                break
            line = lines.get(tuple(problem.path[:cut]))
        located.append(Problem(problem.path, problem.message, line))
    return sorted(located, key=lambda problem: problem.line or 0)


def _input_path(loc: Sequence[Any], data: Any, missing: bool) -> Path:
    """The parts of pydantic's `loc` that are keys or indices of `data` (and, for a missing key, the
    key itself, which the input cannot hold)."""
    path: list[str | int] = []
    node = data
    for position, part in enumerate(loc):
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and type(part) is int and -len(node) <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        elif not (missing and position == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def valid_keys(model: type[BaseModel], path: Path) -> list[str]:
    """The keys the model takes at `path` (a mapping inside the file), sorted; [] where it takes any."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field_info = current.model_fields.get(str(part))
        if field_info is None:
            return []
        current = _model_in(field_info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unknown_key(key: str, valid: list[str]) -> str:
    """"unknown key (did you mean 'steps'?); valid keys: ..." with the closest valid key, if any."""
    if not valid:
        return "unknown key"
    close = difflib.get_close_matches(key, valid, n=1) or [name for name in valid if name.startswith(f"{key}_")][:1]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; valid keys: {', '.join(valid)}"


def pydantic_problems(
    error: ValidationError, model: type[BaseModel], data: Any, *, retired: Mapping[tuple[Any, ...], str] | None = None
) -> list[Problem]:
    """One Problem per place `error` (from `model.model_validate(data)`) finds wrong, unlocated.

    An unknown key names the valid keys (and the closest one); a key in `retired` gets its text,
    which says what replaced it; a missing one says so; any other error gives pydantic's message and
    the value found. A union reports one error per member: the first per place is kept, and a member
    whose type the value does not have at all gives way to one that found errors inside the value
    (`{options: {}}` for `str | TrickConfig` is missing its name, not "not a string").
    """
    retired = retired or {}
    problems: list[Problem] = []
    mismatches: set[Path] = set()  # places where a union member refused the value's type outright
    for item in error.errors():
        kind = item["type"]
        loc = tuple(item["loc"])
        path = _input_path(loc, data, missing=kind == "missing")
        if len(loc) > len(path) and loc[: len(path)] == path:  # a union member's name after the place
            mismatches.add(path)
        if any(problem.path == path for problem in problems):
            continue
        if kind == "extra_forbidden" and path in retired:
            message = retired[path]
        elif kind == "extra_forbidden":
            message = _unknown_key(str(path[-1]), valid_keys(model, path[:-1]))
        elif kind == "missing":
            message = "required key is missing"
        else:
            text = item["msg"].removeprefix("Value error, ")
            if kind in ("tuple_type", "list_type"):  # YAML has lists only
                text = "Input should be a list"
            message = f"{text} (got {item.get('input')!r})"
        problems.append(Problem(path, message))
    deeper = {problem.path[:cut] for problem in problems for cut in range(len(problem.path))}
    return [problem for problem in problems if not (problem.path in mismatches and problem.path in deeper)]
