"""Synth-time checks: every problem in a construct's props is collected, then raised once."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Token


@dataclass(frozen=True)
class Problem:
    """One bad input: where it is, which field, the value, and what is allowed."""

    path: str
    field: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        return f"{self.path}: {self.field}={self.value!r} is not valid; allowed: {self.allowed}"


class BakeryValidationError(ValueError):
    """Raised at synth time with every problem found in one construct's props."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the configuration:\n{lines}")

    @property
    def fields(self) -> list[str]:
        return [p.field for p in self.problems]


@dataclass
class Problems:
    """Collects problems for one construct path."""

    path: str
    found: list[Problem] = field(default_factory=list)

    def add(self, field_name: str, value: Any, allowed: str) -> None:
        self.found.append(Problem(self.path, field_name, value, allowed))

    def check(self, ok: bool, field_name: str, value: Any, allowed: str) -> bool:
        if not ok:
            self.add(field_name, value, allowed)
        return ok

    def text(
        self,
        field_name: str,
        value: str | None,
        *,
        min_len: int = 1,
        max_len: int,
        pattern: str | None = None,
        pattern_text: str = "",
    ) -> None:
        """Check a string's length and pattern; a token is left for CloudFormation to resolve."""
        if value is None or (isinstance(value, str) and Token.is_unresolved(value)):
            return
        if not isinstance(value, str):
            self.add(field_name, value, f"a string of {min_len}-{max_len} characters")
            return
        if not min_len <= len(value) <= max_len:
            self.add(field_name, value, f"{min_len}-{max_len} characters (got {len(value)})")
        elif pattern is not None and not re.fullmatch(pattern, value):
            self.add(field_name, value, pattern_text or f"the pattern {pattern}")

    def raise_if_any(self) -> None:
        if self.found:
            raise BakeryValidationError(self.found)
