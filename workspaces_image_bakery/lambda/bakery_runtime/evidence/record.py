"""One as-built record per image, written by the runtime at the end of its build and by
nothing else: the source of truth for what the library says about an image.

The record gathers what the build's own steps found (``work/<execution>/...`` in the
evidence store): each Run Command (its command id, status, exit code, times and archived
output), the preparation's steps, the validation, the inventory, the seal and the
as-built checklist. Its SHA-256 is tagged on the image (``RECORD_TAG_KEY``), so the record
and the image each check the other: a record whose digest is not the image's tag is
refused (:func:`read_record`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import error_code
from ..core.errors import BuildFailed
from . import store

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RECORD_VERSION: Final = 1
PIECES: Final = (
    "preparation",
    "marker",
    "validation",
    "inventory",
    "seal",
    "assessment",
    "vulnerabilities",
    # Where the build resumed from, when it did (image_build/resume.py).
    "resume",
)


def record_key(persona: str, image_name: str) -> str:
    return f"{c.RECORDS_PREFIX}{persona}/{image_name}.json"


def sbom_key(persona: str, image_name: str) -> str:
    return f"{c.SBOMS_PREFIX}{persona}/{image_name}.cdx.json"


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def pieces(s3: S3Client, execution: str) -> dict[str, Any]:
    """What this execution's steps wrote, by piece name (absent pieces are left out): the
    work folder is listed once and only the pieces in it are read (no request, and no
    NoSuchKey, for a piece the build has not written)."""
    written = store.work_keys(s3, execution)
    found = {}
    for piece in PIECES:
        key = store.work_key(execution, piece)
        value = store.get_json(s3, key) if key in written else None
        if value is not None:
            found[piece] = value
    return found


def assemble(
    *,
    build: Mapping[str, Any],
    image_id: str,
    execution: str,
    started: str,
    found: Mapping[str, Any],
    sbom: str | None,
    owner: str,
) -> dict[str, Any]:
    """The record, as plain JSON data."""
    return {
        "record_version": RECORD_VERSION,
        "written_by": "workspaces-image-bakery build runtime",
        "stack": owner,
        "image": {"id": image_id, "name": build["image_name"]},
        "persona": build["persona"],
        "recipe": build.get("recipe", ""),
        "template_workspace_id": build["template_workspace_id"],
        "managed_node_id": build.get("managed_node_id"),
        "execution": execution,
        "started": started,
        "ended": datetime.now(UTC).isoformat(timespec="seconds"),
        "prepared_in_build": bool(build.get("managed_node_id")),
        **{piece: found.get(piece) for piece in PIECES},
        "sbom": None
        if sbom is None
        else {
            "key": sbom_key(str(build["persona"]), str(build["image_name"])),
            "format": "CycloneDX 1.6",
        },
    }


def write(s3: S3Client, record: Mapping[str, Any], sbom: str | None) -> str:
    """Store the record (and the SBOM) and return the record's digest."""
    persona, name = str(record["persona"]), str(record["image"]["name"])
    if sbom is not None:
        s3.put_object(
            Bucket=store.bucket(),
            Key=sbom_key(persona, name),
            Body=sbom.encode(),
            ContentType="application/vnd.cyclonedx+json",
        )
    body = store.put_json(s3, record_key(persona, name), record)
    return digest(body)


def read_record(
    s3: S3Client, persona: str, image_name: str, tags: Mapping[str, str], owner: str
) -> dict[str, Any]:
    """The image's record, checked against the image: its digest must be the image's record
    tag, and it must name this stack and this image. Anything else is refused."""
    expected = tags.get(c.RECORD_TAG_KEY)
    if not expected:
        raise BuildFailed(f"image {image_name} carries no as-built record digest")
    body = store.get_bytes(s3, record_key(persona, image_name))
    if body is None:
        raise BuildFailed(f"image {image_name} has no as-built record in the evidence store")
    if digest(body) != expected:
        raise BuildFailed(
            f"the as-built record of image {image_name} is not the one the runtime wrote "
            f"(digest {digest(body)[:19]}..., the image's tag says {expected[:19]}...)"
        )
    record: dict[str, Any] = json.loads(body)
    if record.get("stack") != owner or record.get("image", {}).get("name") != image_name:
        raise BuildFailed(f"the as-built record of image {image_name} names another image")
    return record


def why_not_owned(
    s3: S3Client, persona: str, image_id: str, image_name: str, tags: Mapping[str, str], owner: str
) -> str | None:
    """None when the image's runtime-written record names this stack and this image; else
    why not (the image is then never pruned, deleted or shared by the runtime: a tag is a
    label anyone who may tag can write, the record is written by the runtime alone)."""
    try:
        found = read_record(s3, persona, image_name, tags, owner)
    except BuildFailed as error:
        return str(error)
    except ClientError as error:
        return f"its record could not be read ({error_code(error)})"
    if found.get("image", {}).get("id") != image_id:
        return f"its record names image {found.get('image', {}).get('id')}, not {image_id}"
    return None


# The piece of a build's work that says which image the build created (written by the step
# that called CreateWorkspaceImage, before any record exists).
MADE_PIECE: Final = "image"


def note_made(s3: S3Client, execution: str, image_id: str, image_name: str, owner: str) -> None:
    """Keep, in the build's work, that this execution created `image_id`."""
    store.put_json(
        s3,
        store.work_key(execution, MADE_PIECE),
        {"image_id": image_id, "image_name": image_name, "stack": owner},
    )


def why_not_made_here(
    s3: S3Client, image_id: str, image_name: str, tags: Mapping[str, str], owner: str
) -> str | None:
    """None when the runtime wrote down that this stack made the image: its record (a
    finished build), or the build's own note that it created it (a build stopped or failed
    before its record). Else why not: the image is then never deleted by the runtime, what
    ever its tags say (anyone who may tag can write them)."""
    persona = tags.get(c.PERSONA_TAG_KEY, "")
    why = (
        why_not_owned(s3, persona, image_id, image_name, tags, owner)
        if persona
        else "it carries no persona"
    )
    if why is None:
        return None
    execution = tags.get(c.EXECUTION_TAG_KEY, "")
    if execution and "/" not in execution:
        try:
            made = store.get_json(s3, store.work_key(execution, MADE_PIECE))
        except ClientError as error:
            return f"{why}; its build's note could not be read ({error_code(error)})"
        if (
            isinstance(made, Mapping)
            and made.get("image_id") == image_id
            and made.get("stack") == owner
        ):
            return None
    return f"{why}; and no build of this stack noted creating it"


def delete(s3: S3Client, persona: str, image_name: str) -> None:
    """Remove the record and SBOM of an image that is gone (their versions stay)."""
    for key in (record_key(persona, image_name), sbom_key(persona, image_name)):
        s3.delete_object(Bucket=store.bucket(), Key=key)
