"""Synth-time checks: every problem in a construct's props is collected, then raised once."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Token
from constructs import Construct, IConstruct

from .secret_scan import find_secrets


def is_token(value: Any) -> bool:
    """A CDK token (resolved at deploy time). Only strings and finite numbers can be tokens;
    anything else is never passed to the CDK, whose JSON bridge cannot carry infinities."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if not isinstance(value, str | int | float):
        return False
    return bool(Token.is_unresolved(value))


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
        if value is None or (isinstance(value, str) and is_token(value)):
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


def check_int(problems: Problems, field_name: str, value: Any, low: int, high: int) -> bool:
    """An integer in [low, high]; a token is accepted. False when the value is unusable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(field_name, value, f"a whole number {low}-{high}")
        return False
    if not math.isfinite(value):
        problems.add(field_name, value, f"a whole number {low}-{high}")
        return False
    if is_token(value):
        return True
    if value != int(value) or not low <= value <= high:
        problems.add(field_name, value, f"a whole number {low}-{high}")
        return False
    return True


def check_strings(problems: Problems, field_name: str, values: Any) -> list[str]:
    """A list of strings; anything else is a problem. Returns the strings that are strings."""
    if isinstance(values, str) or not isinstance(values, list | tuple):
        problems.add(field_name, values, "a list of strings")
        return []
    good = []
    for index, value in enumerate(values):
        if isinstance(value, str):
            good.append(value)
        else:
            problems.add(f"{field_name}[{index}]", value, "a string")
    return good


def check_no_secrets(problems: Problems, values: Mapping[str, str]) -> None:
    """A detect-secrets hit names the field and the kind of secret, never the value."""
    for field_name, kinds in find_secrets(values).items():
        problems.add(
            field_name,
            "<redacted>",
            f"no secrets ({', '.join(kinds)} found): pass a reference (SSM parameter or "
            "Secrets Manager ARN) and fetch it at launch",
        )


BUNDLES_PER_REGION = 50
REGISTRY_ID = "WorkSpacesImageBakeryNames"


class _Registry(Construct):
    """Names used in one app, and the bundles of each Region; lives under the app's root."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.names: dict[tuple[str, str], str] = {}
        self.bundles: dict[str, list[str]] = {}

    @classmethod
    def of(cls, scope: IConstruct) -> _Registry:
        root = scope.node.root
        existing = root.node.try_find_child(REGISTRY_ID)
        if isinstance(existing, _Registry):
            return existing
        return cls(root, REGISTRY_ID)  # type: ignore[arg-type]


def register_name(
    problems: Problems, scope: IConstruct, kind: str, field_name: str, name: str
) -> None:
    """Report a second persona, image or bundle with the same name in one app."""
    if not isinstance(name, str) or is_token(name):
        return
    first = _Registry.of(scope).names.setdefault((kind, name), problems.path)
    if first != problems.path:
        problems.add(
            field_name, name, f"a {kind} name not used elsewhere in the app (used by {first})"
        )


def register_bundle(problems: Problems, scope: IConstruct, region: str) -> None:
    """Report the 51st custom bundle of one Region (the quota is 50 and not adjustable)."""
    bucket = "the stack's Region" if is_token(region) else region
    paths = _Registry.of(scope).bundles.setdefault(bucket, [])
    if problems.path not in paths:
        paths.append(problems.path)
    if len(paths) > BUNDLES_PER_REGION:
        problems.add(
            "bundles",
            f"{len(paths)} bundles in {bucket}",
            f"at most {BUNDLES_PER_REGION} custom bundles per Region (not adjustable)",
        )
