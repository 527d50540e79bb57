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

from ..tag_rules import MAX_USER_TAGS, check_tag_key, check_tag_value, is_tag_mapping
from ..validation import Problems, check_no_secrets, is_token

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
    :param allowed_values: key -> the only values allowed. Default None: Stage in
        dev/test/prod, Confidentiality in public/internal/confidential/restricted. A token
        value is not checked against them (it is only known at deploy time).

    Limits enforced (see ``tag_rules``): at most 49 tags per persona (WorkSpaces allows 50
    per resource and the library adds one ownership tag), keys 1-127 characters without
    the ``aws:`` prefix, values at most 255 characters, both of the characters AWS tags
    allow. Every key and value is scanned for secrets.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        defaults: Mapping[str, str] | None = None,
        required: Sequence[str] = DEFAULT_REQUIRED,
        allowed_values: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        problems = Problems(self.node.path)
        self.defaults = _check_defaults(problems, defaults)
        self.required = _check_required(problems, required)
        self.allowed_values = _check_allowed(
            problems, DEFAULT_ALLOWED if allowed_values is None else allowed_values
        )
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
        for key in self.required:
            if not merged.get(key):
                problems.add(f"tags[{key}]", None, f"a value: the tagging policy requires {key}")
        for key, allowed in self.allowed_values.items():
            value = merged.get(key)
            if value is not None and not is_token(value) and value not in allowed:
                problems.add(f"tags[{key}]", value, f"one of {', '.join(allowed)}")
        for key, value in merged.items():
            if key in (NAME, VERSION):
                continue
            check_tag_key(problems, "tag key", key)
            check_tag_value(problems, f"tags[{key}]", value)
        if len(merged) > MAX_USER_TAGS:
            problems.add(
                "tags", f"{len(merged)} tags", f"at most {MAX_USER_TAGS} (one is the ownership tag)"
            )
        return merged


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


def _check_allowed(problems: Problems, allowed: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(allowed, Mapping) or not all(
        isinstance(k, str)
        and isinstance(v, list | tuple)
        and all(isinstance(item, str) for item in v)
        for k, v in allowed.items()
    ):
        problems.add(
            "allowed_values",
            f"<{type(allowed).__name__}>",
            "a mapping of tag key to a list of values",
        )
        return {}
    for key, values in allowed.items():
        check_tag_key(problems, "tag key", key)
        for value in values:
            check_tag_value(problems, f"allowed_values[{key}]", value)
    return {k: tuple(v) for k, v in allowed.items()}
