"""The whitepaper's tagging structure: technical, business and security tags.

Technical: Name, Version, Software, Role, System. Business: Project, CostCenter, Stage.
Security: Confidentiality, Compliance. Name, Version and Software are derived from the
persona and its image; the policy says which other keys are required and which values
are allowed, and gives organisation-wide defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from constructs import Construct

from .tag_rules import MAX_USER_TAGS, USER_TAGS_TEXT, check_tag_key, check_tag_value, is_tag_mapping
from .validation import Problems, check_no_secrets, is_token

NAME: Final = "Name"
VERSION: Final = "Version"
SOFTWARE: Final = "Software"
ROLE: Final = "Role"
SYSTEM: Final = "System"
PROJECT: Final = "Project"
COST_CENTER: Final = "CostCenter"
STAGE: Final = "Stage"
CONFIDENTIALITY: Final = "Confidentiality"
COMPLIANCE: Final = "Compliance"

TECHNICAL_TAGS: Final = (NAME, VERSION, SOFTWARE, ROLE, SYSTEM)
BUSINESS_TAGS: Final = (PROJECT, COST_CENTER, STAGE)
SECURITY_TAGS: Final = (CONFIDENTIALITY, COMPLIANCE)
DERIVED_TAGS: Final = (NAME, VERSION, SOFTWARE)

DEFAULT_REQUIRED: Final = (ROLE, PROJECT, COST_CENTER, STAGE, CONFIDENTIALITY)
DEFAULT_ALLOWED: Final[Mapping[str, Sequence[str]]] = {
    STAGE: ("dev", "test", "prod"),
    CONFIDENTIALITY: ("public", "internal", "confidential", "restricted"),
}

SOFTWARE_SEPARATOR: Final = " / "


class TaggingPolicy(Construct):
    """Which tags every persona's image and bundle carry, and which values are allowed.

    :param defaults: organisation-wide tag values, e.g. {"Project": "desktops"}. Default
        None: none. A value may be a deploy-time token.
    :param required: keys every persona must end up with, besides the derived Name, Version
        and Software; ``()`` for none. Default: Role, Project, CostCenter, Stage,
        Confidentiality.
    :param allowed_values: key -> the only values allowed, merged key by key over
        :data:`DEFAULT_ALLOWED` (Stage in dev/test/prod, Confidentiality in
        public/internal/confidential/restricted): a key given replaces that key's list, the
        other defaults stay; ``None`` for a key lifts its restriction. Default None: the
        defaults. A token value is not checked against them (only known at deploy time).

    Limits enforced (see ``tag_rules``): at most 43 tags per persona (WorkSpaces allows 50
    per resource and the library writes up to 7 of its own on an image), keys 1-127
    characters without the ``aws:`` prefix, values at most 255 characters, both of the
    characters AWS tags allow. Every key and value is scanned for secrets.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        defaults: Mapping[str, str] | None = None,
        required: Sequence[str] = DEFAULT_REQUIRED,
        allowed_values: Mapping[str, Sequence[str] | None] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        problems = Problems.of(self)
        self.defaults = _check_defaults(problems, defaults)
        self.required = _check_required(problems, required)
        given = _check_allowed(problems, {} if allowed_values is None else allowed_values)
        merged: dict[str, tuple[str, ...] | None] = {
            **{k: tuple(v) for k, v in DEFAULT_ALLOWED.items()},
            **given,
        }
        self.allowed_values = {k: v for k, v in merged.items() if v is not None}
        scanned: dict[str, str] = {}
        for key, value in self.defaults.items():
            scanned[f"defaults[{key}]"] = value
            scanned[f"defaults key {key}"] = key
        scanned.update({f"required[{i}]": key for i, key in enumerate(self.required)})
        for key, values in self.allowed_values.items():
            scanned[f"allowed_values key {key}"] = key
            scanned.update({f"allowed_values[{key}][{i}]": v for i, v in enumerate(values)})
        check_no_secrets(problems, scanned)
        problems.raise_if_any()

    def tags_for(
        self,
        problems: Problems,
        *,
        name: str,
        version: str,
        software: Sequence[str],
        tags: Mapping[str, str],
    ) -> dict[str, str]:
        """The full tag set of one persona's image and bundle; problems go to `problems`.
        Name and Version come from fields checked on their own; every other key and value
        is checked here (a token value only for what can be judged before deploy)."""
        merged = {**self.defaults, **tags}
        for key in DERIVED_TAGS:
            if key in tags:
                problems.add(f"tags[{key}]", tags[key], f"no value: {key} is derived by the policy")
        merged.update(
            {NAME: name, VERSION: version, SOFTWARE: SOFTWARE_SEPARATOR.join(software) or "none"}
        )
        self.check_values(problems, merged)
        for key, value in merged.items():
            if key in (NAME, VERSION):
                continue
            check_tag_key(problems, "tag key", key)
            check_tag_value(problems, f"tags[{key}]", value)
        if len(merged) > MAX_USER_TAGS:
            problems.add("tags", f"{len(merged)} tags", USER_TAGS_TEXT)
        return merged

    def check_values(self, problems: Problems, tags: Mapping[str, str]) -> None:
        """The policy's own rules on a full tag set: required keys and allowed values (a
        token value is not judged). Used again at synth on the tags an image or bundle ends
        up with after ``Tags.of``."""
        for key in self.required:
            if not tags.get(key):
                problems.add(f"tags[{key}]", None, f"a value: the tagging policy requires {key}")
        for key, allowed in self.allowed_values.items():
            value = tags.get(key)
            if value is not None and not is_token(value) and value not in allowed:
                problems.add(f"tags[{key}]", value, f"one of {', '.join(allowed)}")


def _check_defaults(problems: Problems, defaults: Any) -> dict[str, str]:
    if defaults is None:
        return {}
    if not is_tag_mapping(defaults):
        problems.add("defaults", f"<{type(defaults).__name__}>", "a mapping of str to str")
        return {}
    for key, value in defaults.items():
        check_tag_key(problems, "tag key", key)
        if key in DERIVED_TAGS:
            problems.add(f"defaults[{key}]", value, f"no value: {key} is derived")
        else:
            check_tag_value(problems, f"defaults[{key}]", value)
    return dict(defaults)


def _check_required(problems: Problems, required: Any) -> tuple[str, ...]:
    if isinstance(required, str) or not (
        isinstance(required, list | tuple) and all(isinstance(k, str) for k in required)
    ):
        problems.add("required", f"<{type(required).__name__}>", "a list of tag keys (() for none)")
        return ()
    for key in required:
        check_tag_key(problems, "tag key", key)
    return tuple(required)


def _check_allowed(problems: Problems, allowed: Any) -> dict[str, tuple[str, ...] | None]:
    if not isinstance(allowed, Mapping) or not all(
        isinstance(k, str)
        and (
            v is None or (isinstance(v, list | tuple) and all(isinstance(item, str) for item in v))
        )
        for k, v in allowed.items()
    ):
        problems.add(
            "allowed_values",
            f"<{type(allowed).__name__}>",
            "a mapping of tag key to a list of values (None: any value)",
        )
        return {}
    for key, values in allowed.items():
        check_tag_key(problems, "tag key", key)
        for value in values or ():
            check_tag_value(problems, f"allowed_values[{key}]", value)
    return {k: None if v is None else tuple(v) for k, v in allowed.items()}
