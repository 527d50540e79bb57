"""Reading as-built records and SBOMs from a stack's evidence store (for the command line
and the review): every record is checked against its image before anything it says is shown.

A record is believed only when its SHA-256 is the digest the runtime tagged on the image
(``workspaces-image-bakery:record``) and it names the stack that owns the image and the image
itself; anything else is reported as refused, never shown as the image's evidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.runtime_assets import contract
from .package_diff import PackageDiff, diff_sboms


class RecordRefusedError(Exception):
    """A record that is not the one the runtime wrote for this image."""


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def record_key(persona: str, image_name: str) -> str:
    return f"{contract.RECORDS_PREFIX}{persona}/{image_name}.json"


@dataclass(frozen=True)
class Evidence:
    """One image's checked record, and its SBOM's text when it has one."""

    image_id: str
    image_name: str
    record: dict[str, Any]
    sbom: str | None


def read_evidence(
    s3: Any, bucket: str, image: Mapping[str, Any], tags: Mapping[str, str], owner: str
) -> Evidence:
    """The image's record (checked against the image's tag and owner) and SBOM."""
    persona = tags.get(contract.PERSONA_TAG_KEY, "")
    name = str(image.get("Name", ""))
    expected = tags.get(contract.RECORD_TAG_KEY)
    if not expected:
        raise RecordRefusedError(
            f"image {name} carries no record digest (built before 0.4, or failed)"
        )
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=record_key(persona, name))["Body"].read()
    except Exception as error:
        raise RecordRefusedError(f"the record of image {name} could not be read: {error}") from None
    if digest(body) != expected:
        raise RecordRefusedError(f"the record of image {name} is not the one its tag names")
    record: dict[str, Any] = json.loads(body)
    if record.get("stack") != owner or record.get("image", {}).get("id") != image.get("ImageId"):
        raise RecordRefusedError(f"the record of image {name} names another stack or image")
    sbom = None
    where = record.get("sbom") or {}
    if where.get("key"):
        sbom = s3.get_object(Bucket=bucket, Key=where["key"])["Body"].read().decode()
    return Evidence(str(image.get("ImageId")), name, record, sbom)


def package_changes(old: Evidence | None, new: Evidence) -> PackageDiff | None:
    """Packages added, removed, upgraded and downgraded from `old`'s image to `new`'s."""
    if old is None or old.sbom is None or new.sbom is None:
        return None
    return diff_sboms(old.sbom, new.sbom)
