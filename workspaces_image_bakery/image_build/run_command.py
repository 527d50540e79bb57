"""Preparation in the build: the template WorkSpace runs the persona's preparation through
Systems Manager Run Command, as a hybrid managed node (mi-...) registered with an activation.

The script travels in an ``AWS::SSM::Document`` (Command, schema 2.2) per image recipe: the
document's content changes with the recipe, so CloudFormation replaces it and the build
always sends the document of its own recipe.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aws_cdk import aws_ssm as ssm
from constructs import Construct

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
_END_OF_SCRIPT = "BAKERY_PREPARATION_SCRIPT_END"


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


def run_lines(script: str) -> list[str]:
    """The document's commands: write the script to a private file and run it with bash
    (Run Command runs its commands with sh), keeping its exit code."""
    if _END_OF_SCRIPT in script:
        raise ValueError(f"the preparation script must not contain {_END_OF_SCRIPT}")
    return [
        "umask 077",
        'script="$(mktemp)"',
        f"cat > \"$script\" <<'{_END_OF_SCRIPT}'",
        *script.splitlines(),
        _END_OF_SCRIPT,
        'bash "$script"; status=$?',
        'rm -f "$script"',
        'exit "$status"',
    ]


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


def template_bytes(lines: list[str]) -> int:
    """About what the document's commands take in the template CDK writes (JSON strings,
    one per line, indented)."""
    return len(json.dumps(lines, indent=1)) + 1_000


def preparation_document(
    scope: Construct,
    id_: str,
    *,
    script: str,
    timeout_seconds: int,
    persona: str,
    purpose: str = "prepare",
) -> ssm.CfnDocument:
    """The persona's preparation (or its validation checks, `purpose` "validate") as a
    Command document; the run is bound by the build's."""
    return ssm.CfnDocument(
        scope,
        id_,
        document_type="Command",
        content={
            "schemaVersion": "2.2",
            "description": f"workspaces-image-bakery: {purpose} the template of persona {persona}",
            "mainSteps": [
                {
                    "action": "aws:runShellScript",
                    "name": purpose,
                    "inputs": {
                        "runCommand": run_lines(script),
                        "timeoutSeconds": str(timeout_seconds),
                    },
                }
            ],
        },
    )
