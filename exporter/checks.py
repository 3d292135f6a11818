"""Collect configuration problems with their paths instead of stopping at the first."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from exporter.durations import parse_duration
from exporter.errors import shown

_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

T = TypeVar("T")


class ProblemCollector:
    """Check values of a YAML tree by type, recording `path: problem` lines."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []
        self._unset_paths: set[str] = set()

    def problem(self, path: str, message: str) -> None:
        """Record one problem at a path such as `accounts[1].regions[0]`."""
        self.problems.append(f"{path}: {message}")

    def mapping(
        self, value: object, path: str, allowed: set[str], required: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Return a mapping's known keys with `${VAR}` expanded; report unknown and missing."""
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {describe(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.problem(
                    f"{path}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}"
                )
        for key in sorted(required - set(value)):
            self.problem(f"{path}.{key}", "is required")
        return {k: self.expand(v, f"{path}.{k}") for k, v in value.items() if k in allowed}

    def expand(self, value: object, path: str) -> object:
        """Replace `${VAR}` and `${VAR:-default}` in strings; `$$` stands for `$`."""
        if isinstance(value, str):
            return _ENV_REFERENCE.sub(lambda match: self._variable(match, path), value)
        if isinstance(value, list):
            # One level only: lists in the config hold strings, and YAML anchors can make a
            # list contain itself.
            return [
                self.expand(v, f"{path}[{i}]") if isinstance(v, str) else v
                for i, v in enumerate(value)
            ]
        return value

    def items(self, value: object, path: str, kind: type[T]) -> list[T]:
        """Return a list's items of the wanted type, reporting the others."""
        if not isinstance(value, list):
            self.problem(path, f"must be a list, got {describe(value)}")
            return []
        for i, item in enumerate(value):
            if not isinstance(item, kind):
                self.problem(f"{path}[{i}]", f"must be a {kind.__name__}, got {describe(item)}")
        return [item for item in value if isinstance(item, kind)]

    def text(self, value: object, path: str) -> str:
        """Return a non-empty string (numbers are accepted as text)."""
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if path not in self._unset_paths:  # an unset variable was reported already
            self.problem(path, f"must be a non-empty string, got {describe(value)}")
        return ""

    def whole(self, value: object, path: str, low: int, high: int) -> int:
        """Return an integer within [low, high]."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(
                path, f"must be a whole number from {low} to {high}, got {describe(value)}"
            )
            return low
        if not low <= value <= high:
            self.problem(path, f"must be from {low} to {high}, got {value}")
        return value

    def fraction(self, value: object, path: str) -> float:
        """Return a number within [0, 1)."""
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1:
            return float(value)
        self.problem(
            path, f"must be a number from 0 up to (not including) 1, got {describe(value)}"
        )
        return 0.0

    def duration(self, value: object, path: str, minimum: float = 0.0) -> float:
        """Return seconds for a duration such as `30s` or `5m`, at least `minimum`."""
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            self.problem(path, str(err))
            return minimum
        if seconds < minimum:
            self.problem(path, f"must be at least {minimum:g}s, got {shown(value)}")
        return seconds

    def _variable(self, match: re.Match[str], path: str) -> str:
        name, default = match.group(1), match.group(2)
        if name is None:
            return "$"
        if default is not None and "${" in default:
            self.problem(path, f"a default cannot hold another ${{...}}: ${{{name}:-{default}}}")
            return ""
        if name in self.environ:
            return self.environ[name]
        if default is not None:
            return default
        self._unset_paths.add(path)
        self.problem(
            path,
            f"environment variable {name} is not set; export it or write ${{{name}:-default}}",
        )
        return ""


def describe(value: object) -> str:
    """Name a value's YAML kind for a message, without echoing long or nested content."""
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {shown(value)}"
