"""CycloneDX 1.6 schema validation, loaded on first use. Importing cyclonedx's validator
loads jsonschema's format checkers, among them rfc3987-syntax, which compiles its grammars
when imported (about 3.5 s): a test process that validates no SBOM never pays for it, and
the tests that do validate share one test process (their ``xdist_group``)."""

from __future__ import annotations

import functools
from typing import Any

import pytest

# The tests that validate an SBOM run in one pytest-xdist worker (`--dist loadgroup`).
VALIDATES = pytest.mark.xdist_group("cyclonedx-schema")


@functools.cache
def _validator() -> Any:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6)


def errors(document: str) -> list[str]:
    """Every way `document` breaks CycloneDX 1.6 (strict: no unknown properties)."""
    found = _validator().validate_str(document, all_errors=True)
    return [] if found is None else [str(error) for error in found]
