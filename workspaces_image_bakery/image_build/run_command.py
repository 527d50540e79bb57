"""Preparation in the build: the template WorkSpace runs the persona's preparation through
Systems Manager Run Command, as a hybrid managed node (mi-...) registered with an activation.

Each script (preparation, validation, seal) travels as a CDK file asset (S3), not inside the
template, and one ``AWS::SSM::Document`` per stack (Command, schema 2.2) runs them all: a
stack holds 50 prepared personas in about half of CloudFormation's 1 MB. The document's
``aws:downloadContent`` step fetches the script named by its ``scriptKey`` parameter with the
node's own credentials (the template's node role may read exactly the stack's scripts), then
``aws:runShellScript`` checks its SHA-256, runs it with bash and deletes it. The ``sha256``
parameter takes only the digests of the scripts the stack declares (``allowedValues``, which
Systems Manager enforces on SendCommand), so whoever may send the document can run nothing
but a declared script; the build sends each persona's key and digest from its image
resource's properties, which change with the recipe.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Fn
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from ..core.cache_folder import default_cache_dir, write_atomically
from ..core.runtime_assets import contract
from ..core.validation import Problems, is_token

MANAGED_NODE_PATTERN = r"mi-[0-9a-zA-Z_]{17}"  # botocore's SSM InstanceId, hybrid nodes
MANAGED_NODE_TEXT = (
    "the managed node id of the template WorkSpace: mi- followed by 17 hex characters, "
    "which the WorkSpace gets from its hybrid activation "
    "(workspaces-image-bakery register-template)"
)
# What a value that looks like another id is told besides (WorkSpaces are no EC2 instances).
MANAGED_NODE_HINTS = {
    "i-": "an i- id is an EC2 instance's; WorkSpaces are reached as hybrid nodes (mi-)",
    "ws-": "a ws- id is the WorkSpace's own, not its managed node's",
}
# An SSM document's content is at most 64 KB; the wrapper below takes a few hundred bytes.
MAX_SCRIPT_BYTES = 60_000


@dataclass(frozen=True)
class RunCommandPreparation:
    """The template is prepared in the build.

    :param managed_node_id: the template WorkSpace's managed node (``mi-`` + 17 characters);
        the build checks that it is online and carries the template's IP address.
    :param script: the preparation script for a recipe fingerprint (the script writes the
        fingerprint to the version file, which the build checks before imaging).
    :param validation_commands: shell commands run on the prepared, rebooted template after
        its marker check, before the image is taken; the first to fail (non-zero exit)
        fails the build with its output, so no image is taken and no bundle moves. Default
        none.
    :param seal_script: the seal, run as the last command before the image: it takes the
        template's identity off the root volume and reports each item absent (see
        ``preparation.seal``). Default none: the template is imaged unsealed, and the
        as-built checklist says item 15 was not checked.
    """

    managed_node_id: str
    script: Callable[[str], str]
    validation_commands: tuple[str, ...] = ()
    seal_script: str | None = None


def check_managed_node_id(problems: Problems, value: object) -> None:
    """A literal string that is no ``mi-`` id is told what one is, whatever is wrong with it
    (its length too), and what it looks like instead (an EC2 instance's ``i-`` id)."""
    if (
        isinstance(value, str)
        and not re.fullmatch(MANAGED_NODE_PATTERN, value)
        and not is_token(value)
    ):
        hints = [h for start, h in MANAGED_NODE_HINTS.items() if value.startswith(start)]
        problems.add("managed_node_id", value, "; ".join([MANAGED_NODE_TEXT, *hints]))
        return
    problems.text(
        "managed_node_id",
        value,
        min_len=20,
        max_len=20,
        pattern=MANAGED_NODE_PATTERN,
        pattern_text=MANAGED_NODE_TEXT,
    )


def validation_script(commands: Sequence[str]) -> str:
    """The checks as a bash script: each command in turn, named in the output; the first
    that fails ends the script with its exit code (the build shows which one failed)."""
    lines = ["#!/bin/bash", "set -uo pipefail"]
    for number, command in enumerate(commands, start=1):
        label = f"check {number}: {command}"[:120].replace("\n", " ")
        lines += [
            f"echo {shlex.quote(contract.STEP_MARKER + label)}",
            f"bash -c {shlex.quote(command)}",
            "status=$?",
            'if [ "$status" -ne 0 ]; then',
            f'  echo {shlex.quote(contract.FAILED_MARKER + label)}" (exit $status)" >&2',
            '  exit "$status"',
            "fi",
        ]
    return "\n".join([*lines, "echo '==> bakery validation passed'", ""])


# Where each script is written once at synth (named by its SHA-256) for CDK to stage.
SCRIPT_CACHE = default_cache_dir() / "scripts"
# Where aws:downloadContent puts it on the template (a root-only place, not /tmp or /var/tmp,
# where another user could plant a link; deleted after the run).
DOWNLOAD_DIR = "/var/lib/workspaces-image-bakery/downloads"
# The exit code of a script whose digest is not the one declared at synth.
DIGEST_MISMATCH = 97


def script_file(script: str) -> tuple[Path, str]:
    """The script as a file named by its SHA-256 (written once), and the digest."""
    body = script.encode()
    digest = hashlib.sha256(body).hexdigest()
    path = SCRIPT_CACHE / f"{digest}.sh"
    if not path.exists() or path.read_bytes() != body:
        write_atomically(path, body)
    return path, digest


# The parameters of the stack's script document, and what Systems Manager lets each take.
PURPOSES = ("prepare", "validate", "seal")
SCRIPT_KEY_PATTERN = r"^[0-9a-f]{64}\.sh$"  # a CDK file asset's object key: its hash
# aws:runShellScript's timeoutSeconds, 1 to 172800 (as AWS-RunShellScript's executionTimeout).
TIMEOUT_PATTERN = r"^([1-9][0-9]{0,4}|1[0-6][0-9]{4}|17[0-1][0-9]{3}|172[0-7][0-9]{2}|172800)$"


# The parameter a resumed build sends with its first commands (image_build/resume.py in the
# runtime): the version file's SHA-256 as the failed build read it, or "" (no check).
RESUME_PARAMETER_SPEC = {
    "type": "String",
    "default": "",
    "allowedPattern": contract.RESUME_MARKER_PATTERN,
    "description": "A resumed build: the SHA-256 the version file must still have",
}


# How a document's command line reads that parameter (Systems Manager substitutes it).
RESUME_PARAMETER_REF = "{{ " + contract.RESUME_PARAMETER + " }}"


def resume_guard_lines(
    expected: str, version_file: str = contract.VERSION_FILE, cleanup: Sequence[str] = ()
) -> list[str]:
    """Before anything else: when `expected` (a digest, or "") is set, the version file must
    still have it, else the command stops with RESUME_MISMATCH_EXIT and the build starts
    over. `expected` is a document parameter that Systems Manager holds to 64 hex
    characters or nothing (RESUME_MARKER_PATTERN), so it is safe in the line."""
    stop = contract.FAILED_MARKER + contract.RESUME_GUARD_STEP
    return [
        f'if [ -n "{expected}" ] && ! echo "{expected}  {version_file}" '
        "| sha256sum --check --status 2>/dev/null; then",
        f"  echo {shlex.quote(stop)} >&2",
        *(f"  {line}" for line in cleanup),
        f"  exit {contract.RESUME_MISMATCH_EXIT}",
        "fi",
    ]


def download_lines(file_name: str, digest: str, purpose: str) -> list[str]:
    """Check the downloaded script against its digest, run it with bash, keep its exit code
    and delete it (it must not stay in the image)."""
    script = f"{DOWNLOAD_DIR}/{file_name}"
    mismatch = f"{contract.FAILED_MARKER}download {purpose} (digest mismatch)"
    return [
        "umask 077",
        f"script={shlex.quote(script)}",
        # Before the digest check: a resumed build's script never runs on a changed template.
        *resume_guard_lines(RESUME_PARAMETER_REF, cleanup=['rm -f "$script"']),
        f'if ! echo "{digest}  $script" | sha256sum --check --status; then',
        f"  echo {shlex.quote(mismatch)} >&2",
        '  rm -f "$script"',
        f"  exit {DIGEST_MISMATCH}",
        "fi",
        'bash "$script"; status=$?',
        'rm -f "$script"',
        'exit "$status"',
    ]


def script_asset(
    scope: Construct,
    id_: str,
    *,
    script: str,
    allow_read: Callable[[s3_assets.Asset, str, str], None],
) -> dict[str, str]:
    """The script as a file asset that the template's node role may read (`allow_read`,
    given the asset, its object key and its digest, also lists the digest in the stack's
    document); what the image resource's property holds: the object key and the SHA-256
    the build sends with the document."""
    path, digest = script_file(script)
    asset = s3_assets.Asset(scope, id_, path=str(path))
    key = asset.s3_object_key
    allow_read(asset, key, digest)
    return {contract.SCRIPT_KEY: key, contract.SCRIPT_SHA256: digest}


def script_document(
    scope: Construct, id_: str, *, bucket: str, digests: list[str]
) -> ssm.CfnDocument:
    """The stack's one document that runs a persona's script from the assets `bucket`;
    `digests` is a list token of every declared script's SHA-256 (filled in at synth)."""
    # aws:downloadContent's sourceInfo is JSON text: {"path": "<the object's https URL>"}.
    url = ["https://s3.", Aws.REGION, ".", Aws.URL_SUFFIX, "/", bucket, "/{{ scriptKey }}"]
    source = Fn.join("", ['{"path":"', *url, '"}'])
    return ssm.CfnDocument(
        scope,
        id_,
        document_type="Command",
        content={
            "schemaVersion": "2.2",
            "description": "workspaces-image-bakery: run a persona's script on its template",
            "parameters": {
                "purpose": {"type": "String", "allowedValues": list(PURPOSES)},
                "scriptKey": {"type": "String", "allowedPattern": SCRIPT_KEY_PATTERN},
                "sha256": {"type": "String", "allowedValues": digests},
                "timeoutSeconds": {"type": "String", "allowedPattern": TIMEOUT_PATTERN},
                contract.RESUME_PARAMETER: RESUME_PARAMETER_SPEC,
            },
            "mainSteps": [
                {
                    "action": "aws:downloadContent",
                    "name": "download",
                    "inputs": {
                        "sourceType": "S3",
                        "sourceInfo": source,
                        # A trailing slash: the agent keeps the object's name in this folder
                        # (amazon-ssm-agent's s3resource.DownloadRemoteResource; without it,
                        # a folder not there yet would become the file's own name).
                        "destinationPath": f"{DOWNLOAD_DIR}/",
                    },
                },
                {
                    "action": "aws:runShellScript",
                    "name": "run",
                    "inputs": {
                        "runCommand": download_lines(
                            "{{ scriptKey }}", "{{ sha256 }}", "{{ purpose }}"
                        ),
                        "timeoutSeconds": "{{ timeoutSeconds }}",
                    },
                },
            ],
        },
    )
