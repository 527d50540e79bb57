"""Synth-time checks: every problem in a construct's props is collected, then raised once.

A value the secret scan flags never reaches a message: ``Problems`` redacts, when it
raises, every problem of a flagged field and every value, field or text holding a flagged
string, whichever check found the problem and in whatever order the checks ran.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from weakref import WeakKeyDictionary

from aws_cdk import Duration, RemovalPolicy, Stack, Token
from constructs import Construct, IConstruct

from .secret_scan import scan

REDACTED: Final = "<redacted>"
# Flagged parts shorter than this are not searched for inside other problems' texts (the
# whole flagged value always is): a 2-character match would blank out unrelated words.
MIN_REDACTED_PART: Final = 4
# A string token, e.g. ${Token[TOKEN.12]}, and a list token, #{Token[...]}.
TOKEN_MARKER: Final = re.compile(r"[$#]\{Token\[[^\]]*\]\}")
# Numbers that are tokens are encoded as doubles around -1.8881545897087e+289.
_TOKEN_NUMBER_MAGNITUDE: Final = 1e280
LITERAL_TEXT: Final = (
    "a literal string known at synth time (a deploy-time token cannot be checked, and the "
    "value is part of a name or fingerprint)"
)


def is_token(value: Any) -> bool:
    """A CDK token (resolved at deploy time). Only strings and finite numbers can be tokens;
    anything else is never passed to the CDK, whose JSON bridge cannot carry infinities.
    Plain strings and small numbers are told apart without a round trip to jsii."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        if "Token[" not in value:
            return False
    elif isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) < _TOKEN_NUMBER_MAGNITUDE:
            return False
    else:
        return False
    return bool(Token.is_unresolved(value))


# Integers JavaScript holds exactly: the kernel resolves them to themselves.
_SAFE_INTEGER = 2**53


def plain_json(value: Any) -> bool:
    """True when ``stack.resolve(value)`` is `value` without its None values: strings that
    are no tokens, booleans, None, integers JavaScript holds exactly, and lists and
    string-keyed mappings of these. No round trip for plain strings."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return not is_token(value)
    if isinstance(value, int):
        return abs(value) < _SAFE_INTEGER
    if isinstance(value, list):
        return all(plain_json(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and plain_json(v) for k, v in value.items())
    return False


def without_none(value: Any) -> Any:
    """`value` as ``stack.resolve`` returns plain JSON: None dropped from lists and
    mappings at any depth."""
    if isinstance(value, list):
        return [without_none(v) for v in value if v is not None]
    if isinstance(value, Mapping):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    return value


_STACK_OF: WeakKeyDictionary[IConstruct, Stack] = WeakKeyDictionary()


def stack_of(construct: IConstruct, scope: IConstruct) -> Stack:
    """``Stack.of(construct)`` for a construct (no stack itself) just made in `scope`: the
    scope when it is a stack, or the stack found for the scope before; else one round
    trip. Remembered for the construct's own children."""
    stack = scope if isinstance(scope, Stack) else _STACK_OF.get(scope)
    if stack is None:
        stack = Stack.of(construct)
    _STACK_OF[construct] = stack
    return stack


def literal_text(value: str) -> str:
    """`value` with every token replaced by a line break: what the user wrote literally."""
    return TOKEN_MARKER.sub("\n", value) if is_token(value) else value


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

    def renamed(self, names: Mapping[str, str]) -> BakeryValidationError:
        """The same problems, with fields named as the caller's props: ``{"defaults":
        "tag_defaults"}`` renames ``defaults`` and ``defaults[Project]``."""

        def rename(name: str) -> str:
            for old, new in names.items():
                if name == old or name.startswith(f"{old}["):
                    return new + name[len(old) :]
            return name

        return BakeryValidationError(replace(p, field=rename(p.field)) for p in self.problems)


@dataclass
class Problems:
    """Collects problems for one construct path; redacts what the secret scan flagged.
    :meth:`of` reads the path of a construct only when there is a problem to report."""

    path: str
    found: list[Problem] = field(default_factory=list)
    secret_fields: set[str] = field(default_factory=set)
    secret_texts: set[str] = field(default_factory=set)
    scope: IConstruct | None = None

    @classmethod
    def of(cls, scope: IConstruct) -> Problems:
        """Problems of `scope`, whose path is asked for (a jsii round trip) only if needed."""
        return cls("", scope=scope)

    @property
    def owner(self) -> object:
        """What the problems are about: the construct, else the path."""
        return self.scope if self.scope is not None else self.path

    def add(self, field_name: str, value: Any, allowed: str) -> None:
        if not self.path and self.scope is not None:
            self.path = self.scope.node.path
        self.found.append(Problem(self.path, field_name, value, allowed))

    def check(self, ok: bool, field_name: str, value: Any, allowed: str) -> bool:
        if not ok:
            self.add(field_name, value, allowed)
        return ok

    def mark_secret(self, field_name: str, texts: Iterable[str]) -> None:
        """Never show `field_name`'s value, nor any of `texts`, in a message."""
        self.secret_fields.add(field_name)
        self.secret_texts.update(t for t in texts if t)

    def text(
        self,
        field_name: str,
        value: Any,
        *,
        min_len: int = 1,
        max_len: int,
        pattern: str | None = None,
        pattern_text: str = "",
        tokens: bool = True,
    ) -> bool:
        """A required string's length and pattern. A token is left for CloudFormation to
        resolve, or refused with ``tokens=False`` (names and fingerprinted values)."""
        if isinstance(value, str) and is_token(value):
            return self.check(tokens, field_name, value, LITERAL_TEXT)
        if not isinstance(value, str):
            self.add(field_name, value, f"a string of {min_len}-{max_len} characters")
            return False
        if not min_len <= len(value) <= max_len:
            self.add(field_name, value, f"{min_len}-{max_len} characters (got {len(value)})")
            return False
        if pattern is not None and not re.fullmatch(pattern, value):
            self.add(field_name, value, pattern_text or f"the pattern {pattern}")
            return False
        return True

    def redacted(self) -> list[Problem]:
        """The problems as they may be shown: nothing the secret scan flagged."""
        texts = sorted(self.secret_texts, key=len, reverse=True)
        return [self._redact(p, texts) for p in self.found]

    def raise_if_any(self) -> None:
        if self.found:
            raise BakeryValidationError(self.redacted())

    def _redact(self, problem: Problem, texts: list[str]) -> Problem:
        value = problem.value
        if problem.field in self.secret_fields or _holds_any(value, texts):
            value = REDACTED
        return Problem(
            _scrub(problem.path, texts),
            _scrub(problem.field, texts),
            value,
            _scrub(problem.allowed, texts),
        )


def _holds_any(value: Any, texts: list[str]) -> bool:
    if not texts or value is None or isinstance(value, bool | int | float):
        return False
    shown = (value,) if isinstance(value, str) else (repr(value), str(value))
    return any(t in s or repr(t)[1:-1] in s for t in texts for s in shown)


def _scrub(text: str, texts: list[str]) -> str:
    for secret in texts:
        text = text.replace(secret, REDACTED)
    return text


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


_SECONDS: WeakKeyDictionary[Duration, float] = WeakKeyDictionary()


def seconds_of(duration: Duration) -> float:
    """``duration.to_seconds(integral=False)``, asked of the CDK once per Duration object
    (Durations are immutable; a default shared by every persona is asked once)."""
    seconds = _SECONDS.get(duration)
    if seconds is None:
        seconds = _SECONDS[duration] = duration.to_seconds(integral=False)
    return seconds


_CONTEXT: WeakKeyDictionary[IConstruct, dict[str, Any]] = WeakKeyDictionary()


def context_of(scope: IConstruct, key: str) -> Any:
    """``scope.node.try_get_context(key)``, asked once per scope and key. Pass a stack: the
    constructs of a stack read its context (context is set before children are added)."""
    known = _CONTEXT.setdefault(scope, {})
    if key not in known:
        known[key] = scope.node.try_get_context(key)
    return known[key]


def check_duration(
    problems: Problems, field_name: str, value: Any, low_seconds: int, high_seconds: int, text: str
) -> bool:
    """A Duration from `low_seconds` to `high_seconds` (`text` says it in words)."""
    if not isinstance(value, Duration):
        problems.add(field_name, value, f"a Duration of {text}")
        return False
    seconds = seconds_of(value)
    shown = int(seconds) if math.isfinite(seconds) and seconds == int(seconds) else seconds
    return problems.check(
        low_seconds <= seconds <= high_seconds,
        field_name,
        f"{shown} s",
        f"{low_seconds}-{high_seconds} s ({text})",
    )


def check_removal_policy(problems: Problems, value: Any) -> bool:
    """RemovalPolicy.DESTROY or RETAIN (what images and bundles support)."""
    return problems.check(
        value in (RemovalPolicy.DESTROY, RemovalPolicy.RETAIN),
        "removal_policy",
        value,
        "RemovalPolicy.DESTROY or RETAIN",
    )


JSON_TEXT: Final = "JSON data: strings, finite numbers, booleans, None, lists, string-keyed maps"
MAX_JSON_DEPTH: Final = 32


def check_json(problems: Problems, field_name: str, value: Any) -> dict[str, str]:
    """Plain JSON data (a recipe): a problem per other value, naming only its type.
    Returns every string in it, keys included, by field, for the secret scan."""
    strings: dict[str, str] = {}

    def walk(path: str, item: Any, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            problems.add(path, f"<{type(item).__name__}>", f"at most {MAX_JSON_DEPTH} levels")
        elif isinstance(item, str):
            strings[path] = item
        elif isinstance(item, float) and not math.isfinite(item):
            problems.add(path, item, JSON_TEXT)
        elif item is None or isinstance(item, bool | int | float):
            return
        elif isinstance(item, list | tuple):
            for index, element in enumerate(item):
                walk(f"{path}[{index}]", element, depth + 1)
        elif isinstance(item, Mapping):
            for key, element in item.items():
                if not isinstance(key, str):
                    problems.add(path, f"<{type(key).__name__} key>", JSON_TEXT)
                    continue
                strings[f"{path}[{key}] (key)"] = key
                walk(f"{path}[{key}]", element, depth + 1)
        else:
            problems.add(path, f"<{type(item).__name__}>", JSON_TEXT)

    if not isinstance(value, Mapping):
        problems.add(field_name, f"<{type(value).__name__}>", f"a mapping of {JSON_TEXT}")
        return {}
    walk(field_name, value, 0)
    return strings


def check_no_secrets(problems: Problems, values: Mapping[str, Any]) -> None:
    """A secret-scan hit names the field and the kind of secret, never the value; the
    field's value and the flagged parts are redacted from every other problem too. Only
    what the user wrote is scanned: tokens and non-strings are skipped."""
    literal = {k: literal_text(v) for k, v in values.items() if isinstance(v, str)}
    for field_name, hit in scan(literal).items():
        parts = [p for p in hit.secrets if len(p) >= MIN_REDACTED_PART]
        problems.mark_secret(field_name, [values[field_name], *parts])
        problems.add(
            field_name,
            REDACTED,
            f"no secrets ({', '.join(hit.kinds)} found): pass a reference (SSM parameter or "
            "Secrets Manager ARN) and fetch it at launch",
        )


BUNDLES_PER_REGION = 50
REGISTRY_ID = "WorkSpacesImageBakeryNames"


class _Registry(Construct):
    """Names used in one app, and the bundles of each Region; lives under the app's root."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        # What registered: a construct, or a path (Problems made with a path).
        self.names: dict[tuple[str, str], object] = {}
        self.bundles: dict[str, list[object]] = {}
        self.templates: dict[str, list[tuple[object, bool]]] = {}
        # Images the personas of each Region can hold at once.
        self.images: dict[str, int] = {}

    @classmethod
    def of(cls, scope: IConstruct) -> _Registry:
        """The registry of `scope`'s app, remembered per scope (pass a stack: one look-up
        per stack, not per construct)."""
        known = _REGISTRIES.get(scope)
        if known is not None:
            return known
        root = scope.node.root
        existing = root.node.try_find_child(REGISTRY_ID)
        registry = existing if isinstance(existing, _Registry) else cls(root, REGISTRY_ID)  # type: ignore[arg-type]
        _REGISTRIES[scope] = registry
        return registry


_REGISTRIES: WeakKeyDictionary[IConstruct, _Registry] = WeakKeyDictionary()


def _where(owner: Any) -> str:
    """The path of a registered construct (asked for only when a message needs it)."""
    return owner if isinstance(owner, str) else str(owner.node.path)


def register_name(
    problems: Problems, scope: IConstruct, kind: str, field_name: str, name: str
) -> None:
    """Report a second persona, image or bundle with the same name in one app. `scope`
    finds the app's registry: pass the construct's stack (one look-up per stack)."""
    if not isinstance(name, str) or is_token(name):
        return
    first = _Registry.of(scope).names.setdefault((kind, name), problems.owner)
    if first is not problems.owner and first != problems.owner:
        problems.add(
            field_name,
            name,
            f"a {kind} name not used elsewhere in the app (used by {_where(first)})",
        )


def register_bundle(problems: Problems, scope: IConstruct, region: str) -> None:
    """Report the 51st custom bundle of one Region (the quota is 50 and not adjustable)."""
    bucket = region_bucket(region)
    owners = _Registry.of(scope).bundles.setdefault(bucket, [])
    if not any(o is problems.owner or o == problems.owner for o in owners):
        owners.append(problems.owner)
    if len(owners) > BUNDLES_PER_REGION:
        problems.add(
            "bundles",
            f"{len(owners)} bundles in {bucket}",
            f"at most {BUNDLES_PER_REGION} custom bundles per Region (not adjustable)",
        )


def region_of(stack: Stack) -> str:
    """The stack's Region (a token when environment-agnostic), asked once per stack."""
    region = _STACK_REGIONS.get(stack)
    if region is None:
        region = _STACK_REGIONS[stack] = stack.region
    return region


_STACK_REGIONS: WeakKeyDictionary[Stack, str] = WeakKeyDictionary()


@functools.lru_cache(maxsize=256)
def region_bucket(region: str) -> str:
    """A Region's name, or "the stack's Region" for an environment-agnostic stack's token
    (asked of jsii once per token)."""
    return "the stack's Region" if is_token(region) else region


def register_images(
    problems: Problems,
    stack: Stack,
    count: int,
    quota: int,
    region: str | None = None,
    field_name: str = "retained_images",
) -> None:
    """Report when the app's images in one Region (the stack's, or `region` for regional
    copies) could be more than the Region's quota: each persona holds its retained images
    plus the one being built, each regional copy two while a new image replaces it."""
    bucket = region_bucket(region if region is not None else region_of(stack))
    images = _Registry.of(stack).images
    images[bucket] = images.get(bucket, 0) + count
    if images[bucket] > quota:
        problems.add(
            field_name,
            f"{images[bucket]} images in {bucket} (each persona's retained images + 1 being "
            "built, 2 per regional copy)",
            f"at most the Region's image quota, {quota} (context value "
            "workspaces-image-bakery:image-quota): keep fewer images per persona or fewer "
            "Regions, or raise the quota in Service Quotas and the context value",
        )


def register_template(
    problems: Problems, scope: IConstruct, workspace_id: str, *, prepared_in_build: bool
) -> None:
    """A template WorkSpace prepared in the build serves one persona: another persona's
    build could change or image it between its preparation and its image."""
    if not isinstance(workspace_id, str) or is_token(workspace_id):
        return
    users = _Registry.of(scope).templates.setdefault(workspace_id, [])
    users.append((problems.owner, prepared_in_build))
    if len(users) > 1 and any(prepared for _, prepared in users):
        others = ", ".join(_where(o) for o, _ in users if o is not problems.owner)
        problems.add(
            "template_workspace_id",
            workspace_id,
            "a template WorkSpace of its own: a template prepared in the build serves one "
            f"persona (also used by {others})",
        )
