"""The stack's evidence store (an S3 bucket the stack creates): Run Command output archived
in full, each build's work in progress, and each image's as-built record and SBOM.

Layout (prefixes from the contract):

- ``output/<persona>/<image name>/<purpose>/<command id>/<node id>/...``: what SendCommand
  writes (the template's node role may write here, nowhere else);
- ``work/<execution name>/<piece>.json``: what a build found so far (preparation,
  validation, inventory, seal, assessment), written by the build's own steps, keyed by the
  execution's name from the state machine's context (never from its input);
- ``records/<persona>/<image name>.json`` and ``sboms/<persona>/<image name>.cdx.json``:
  the as-built record and the SBOM, written once by the step that finishes the build.

The bucket's policy lets only the runtime's roles write the last three.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import error_code
from ..core.errors import BuildFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def bucket() -> str:
    """The evidence store's name, from the function's own configuration."""
    name = os.environ.get(c.ENV_EVIDENCE_BUCKET, "")
    if not name:
        raise BuildFailed(f"the function's configuration lacks {c.ENV_EVIDENCE_BUCKET}")
    return name


def output_prefix(persona: str, image_name: str, purpose: str) -> str:
    """Where SendCommand archives one command's output (OutputS3KeyPrefix)."""
    return f"{c.OUTPUT_PREFIX}{persona}/{image_name}/{purpose}"


def location(key_or_prefix: str) -> str:
    return f"s3://{bucket()}/{key_or_prefix}"


def read_output(s3: S3Client, prefix: str, command_id: str, node_id: str) -> tuple[str, str] | None:
    """The command's whole stdout and stderr from the archive (every plugin's, in order),
    or None when nothing was archived (yet)."""
    folder = f"{prefix}/{command_id}/{node_id}/"
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket(), Prefix=folder):
        keys += [item["Key"] for item in page.get("Contents", []) if "Key" in item]
    streams = {"stdout": "", "stderr": ""}
    for key in sorted(keys):
        stream = key.rsplit("/", 1)[-1]
        if stream in streams:
            body = s3.get_object(Bucket=bucket(), Key=key)["Body"].read()
            streams[stream] += body.decode("utf-8", errors="replace")
    if not keys:
        return None
    return streams["stdout"], streams["stderr"]


def work_folder(execution: str) -> str:
    """The prefix of what `execution`'s steps write (``work/<execution>/``)."""
    if not execution or "/" in execution:
        raise BuildFailed(f"a build's work needs its execution's name, got {execution!r}")
    return f"{c.WORK_PREFIX}{execution}/"


def work_key(execution: str, piece: str) -> str:
    return f"{work_folder(execution)}{piece}.json"


def work_keys(s3: S3Client, execution: str) -> set[str]:
    """The keys of what `execution`'s steps wrote (its work folder, listed; S3 lists what
    was written before, strongly consistent)."""
    folder = work_folder(execution)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket(), Prefix=folder)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def put_json(s3: S3Client, key: str, data: Any) -> bytes:
    body = json.dumps(data, indent=1, sort_keys=True).encode()
    s3.put_object(Bucket=bucket(), Key=key, Body=body, ContentType="application/json")
    return body


def get_json(s3: S3Client, key: str) -> Any | None:
    """The JSON object at `key`, or None when there is none."""
    try:
        body = s3.get_object(Bucket=bucket(), Key=key)["Body"].read()
    except ClientError as error:
        if error_code(error) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(body)


def get_bytes(s3: S3Client, key: str) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=bucket(), Key=key)["Body"].read()
    except ClientError as error:
        if error_code(error) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return body
