"""The whitepaper's tagging structure: technical, business and security tags.

Technical: Name, Version, Software, Role, System. Business: Project, CostCenter, Stage.
Security: Confidentiality, Compliance. Name, Version and Software are derived from the
persona and its image; the policy says which other keys are required and which values
are allowed, and gives organisation-wide defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from constructs import Construct

from ..runtime_assets import contract
from ..validation import Problems, check_no_secrets

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

# WorkSpaces tag limits (botocore model and the tagging docs).
MAX_TAGS_PER_RESOURCE: Final = 50
MAX_KEY_LENGTH: Final = 127
MAX_VALUE_LENGTH: Final = 255
SOFTWARE_SEPARATOR: Final = " / "


class TaggingPolicy(Construct):
    """Which tags every persona's image and bundle carry, and which values are allowed.

    :param defaults: organisation-wide tag values, e.g. {"Project": "desktops"}. Default: none.
    :param required: keys every persona must end up with, besides the derived Name, Version
        and Software. Default: Role, Project, CostCenter, Stage, Confidentiality.
    :param allowed_values: key -> the only values allowed. Default: Stage in dev/test/prod,
        Confidentiality in public/internal/confidential/restricted.

    Limits enforced: at most 49 tags per persona (WorkSpaces allows 50 per resource and the
    library adds one ownership tag), keys 1-127 characters without the ``aws:`` prefix,
    values at most 255 characters.
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
        allowed = DEFAULT_ALLOWED if allowed_values is None else allowed_values
        if not _is_text_mapping(defaults or {}):
            problems.add("defaults", f"<{type(defaults).__name__}>", "a mapping of str to str")
            defaults = None
        if isinstance(required, str) or not all(isinstance(k, str) for k in required):
            problems.add("required", required, "a list of tag keys")
            required = ()
        if not isinstance(allowed, Mapping) or not all(
            isinstance(k, str)
            and not isinstance(v, str)
            and all(isinstance(item, str) for item in v)
            for k, v in allowed.items()
        ):
            problems.add("allowed_values", allowed, "a mapping of tag key to a list of values")
            allowed = {}
        self.defaults = dict(defaults or {})
        self.required = tuple(required)
        self.allowed_values = {k: tuple(v) for k, v in allowed.items()}
        for key in self.defaults:
            if key in DERIVED_TAGS:
                problems.add(f"defaults[{key}]", self.defaults[key], f"no value: {key} is derived")
            elif len(self.defaults[key]) > MAX_VALUE_LENGTH:
                problems.add(
                    f"defaults[{key}]", self.defaults[key], f"at most {MAX_VALUE_LENGTH} characters"
                )
        for key in (*self.defaults, *self.required, *self.allowed_values):
            _check_key(problems, "tag key", key)
        check_no_secrets(problems, {f"defaults[{k}]": v for k, v in self.defaults.items()})
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
        """The full tag set of one persona's image and bundle; problems go to `problems`."""
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
            if key in merged and merged[key] not in allowed:
                problems.add(f"tags[{key}]", merged[key], f"one of {', '.join(allowed)}")
        for key, value in merged.items():
            _check_key(problems, "tag key", key)
            if len(value) > MAX_VALUE_LENGTH:
                problems.add(f"tags[{key}]", value, f"at most {MAX_VALUE_LENGTH} characters")
        limit = MAX_TAGS_PER_RESOURCE - 1
        if len(merged) > limit:
            problems.add(
                "tags", f"{len(merged)} tags", f"at most {limit} (one is the ownership tag)"
            )
        return merged


def _is_text_mapping(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _check_key(problems: Problems, field: str, key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        problems.add(field, key, f"1-{MAX_KEY_LENGTH} characters")
    elif key.lower().startswith("aws:"):
        problems.add(field, key, "a key without the reserved aws: prefix")
    elif key == contract.OWNER_TAG_KEY:
        problems.add(field, key, "any key but the library's ownership tag")
