"""The one place that knows what a WorkSpaces tag may hold.

Limits: key 1-127 characters, value 0-255, at most 50 tags per resource, no ``aws:``
prefix (botocore's WorkSpaces model and the WorkSpaces tagging docs). The library adds its
ownership tag to every image and bundle, so users get 49 and may not set that key.

Characters: botocore's WorkSpaces model sets no pattern on TagKey/TagValue; the service
refuses what AWS tagging refuses in general, the pattern AWS Directory Service (which
WorkSpaces directories use) and WorkSpaces Instances declare in botocore:
``TAG_CHARACTERS_PATTERN``. It is a Java regex (``\\p{L}``), which Python's ``re`` cannot
read, so it is translated here into Unicode general categories plus listed characters.
Deploy-time tokens are skipped: they cannot be judged at synth time.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

from .runtime_assets import contract
from .validation import Problems, is_token

MAX_TAGS_PER_RESOURCE: Final = 50
# The library's own tags on an image: ownership, persona, version, recipe, retained, build
# time, record digest, execution, source WorkSpace, and kept or cleanup. Every resource keeps
# room for them.
LIBRARY_TAGS: Final = 10
MAX_USER_TAGS: Final = MAX_TAGS_PER_RESOURCE - LIBRARY_TAGS
USER_TAGS_TEXT: Final = (
    f"at most {MAX_USER_TAGS} (WorkSpaces allows {MAX_TAGS_PER_RESOURCE}; the library writes up "
    f"to {LIBRARY_TAGS} of its own: ownership, persona, version, recipe, retained, build time, "
    "record digest, execution, source WorkSpace, kept or cleanup)"
)
MAX_KEY_LENGTH: Final = 127
MAX_VALUE_LENGTH: Final = 255
RESERVED_PREFIX: Final = "aws:"
TAG_CHARACTERS_PATTERN: Final = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"
TAG_CHARACTERS_TEXT: Final = "Unicode letters, digits and spaces, and _ . : / = + - @"


def _translate(pattern: str) -> tuple[frozenset[str], frozenset[str]]:
    """A Java regex ``^([...]*)$`` of ``\\p{X}`` classes and characters -> (general
    category prefixes, characters). Anything else is refused, so a new model is noticed."""
    whole = re.fullmatch(r"\^?\(\[(?P<body>.*)\]\*\)\$?", pattern)
    if whole is None:
        raise ValueError(f"not a single character class: {pattern}")
    categories: set[str] = set()
    characters: set[str] = set()
    for item in re.findall(r"\\p\{(\w+)\}|\\(.)|(.)", whole.group("body")):
        category, escaped, plain = item
        if plain in ("-", "\\") or escaped.isalnum():
            raise ValueError(f"only \\p{{X}} classes and characters are supported: {pattern}")
        if category:
            categories.add(category)
        else:
            characters.add(escaped or plain)
    return frozenset(categories), frozenset(characters)


TAG_CATEGORIES, TAG_CHARACTERS = _translate(TAG_CHARACTERS_PATTERN)


@functools.lru_cache(maxsize=4096)
def is_tag_text(text: str) -> bool:
    """True when every character is one the tag pattern allows (remembered: personas repeat
    the same keys and values)."""
    return all(
        char in TAG_CHARACTERS
        or any(unicodedata.category(char).startswith(c) for c in TAG_CATEGORIES)
        for char in text
    )


def check_tag_key(problems: Problems, field_name: str, key: Any) -> bool:
    """A user tag key; False (and a problem) when WorkSpaces or the library refuses it."""
    if is_token(key):
        return True
    if not isinstance(key, str):
        problems.add(field_name, f"<{type(key).__name__}>", "a string tag key")
        return False
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        problems.add(field_name, key, f"1-{MAX_KEY_LENGTH} characters")
    elif key.lower().startswith(RESERVED_PREFIX):
        problems.add(field_name, key, "a key without the reserved aws: prefix")
    elif key == contract.OWNER_TAG_KEY:
        problems.add(field_name, key, "any key but the library's ownership tag")
    elif not is_tag_text(key):
        problems.add(field_name, key, TAG_CHARACTERS_TEXT)
    else:
        return True
    return False


def check_tag_value(problems: Problems, field_name: str, value: Any) -> bool:
    """A tag value (0-255 allowed characters); a deploy-time token is accepted."""
    if is_token(value):
        return True
    if not isinstance(value, str):
        problems.add(field_name, f"<{type(value).__name__}>", "a string tag value")
        return False
    if len(value) > MAX_VALUE_LENGTH:
        problems.add(field_name, value, f"at most {MAX_VALUE_LENGTH} characters")
    elif not is_tag_text(value):
        problems.add(field_name, value, TAG_CHARACTERS_TEXT)
    else:
        return True
    return False


def is_tag_mapping(tags: Any) -> bool:
    """A mapping of strings to strings (the shape, not the rules)."""
    return isinstance(tags, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    )


def check_tags(
    problems: Problems, field_name: str, tags: Any, *, key_field: str = "tag key"
) -> dict[str, str]:
    """A resource's user tags: the shape, every key and value, and the count. Returns the
    tags when the shape is right (even if a rule fails), else {}. Values are never echoed
    for a wrong shape: a malformed mapping may still hold a secret."""
    if not is_tag_mapping(tags):
        problems.add(
            field_name, f"<{type(tags).__name__}>", "a mapping of string keys to string values"
        )
        return {}
    for key, value in tags.items():
        check_tag_key(problems, key_field, key)
        check_tag_value(problems, f"{field_name}[{key}]", value)
    if len(tags) > MAX_USER_TAGS:
        problems.add(field_name, f"{len(tags)} tags", USER_TAGS_TEXT)
    return dict(tags)


def tag_strings(field_name: str, tags: Mapping[str, str]) -> dict[str, str]:
    """Every key and value of `tags`, by field, for the secret scan."""
    scanned = {f"{field_name}[{k}]": v for k, v in tags.items()}
    scanned.update({f"{field_name} key {k}": k for k in tags})
    return scanned
