"""The preparation phase of a build: run the persona's preparation on the template WorkSpace
through Systems Manager Run Command, reboot it, and check the recipe marker it left.

A WorkSpace is not an EC2 instance: Systems Manager reaches it as a hybrid managed node
(mi-...) registered with an activation (README: Preparing the template in the build).
Every step is short; the state machine's Wait states do the waiting. Nothing from the
execution's input is trusted on its own: the managed node must be online and be the
template WorkSpace (same IP address), IAM lets the runtime send only the stack's own
documents to the declared nodes, and the marker must carry this build's recipe.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import Clients, error_code
from ..core.errors import BuildFailed, TransientError
from ..core.workspaces import workspace_by_id
from .request import BuildRequest

if TYPE_CHECKING:
    from mypy_boto3_ssm.type_defs import InstanceInformationTypeDef

logger = logging.getLogger(__name__)

RUNNING = frozenset({"Pending", "InProgress", "Delayed"})
PURPOSE_PREPARATION = "preparation"
PURPOSE_MARKER = "marker"
PURPOSE_VALIDATION = "validation"
# The stack event shows at most this much of the command's output.
MAX_TAIL_CHARS = 1200
TAIL_LINES = 15
# What must never reach a stack event, even from the team's own commands' output.
_SECRETS = (
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "<access key id>"),
    (re.compile(r"(?i)(aws_secret_access_key|aws_session_token)\s*[=:]\s*\S+"), r"\1=<redacted>"),
    (
        re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*|\s+)\S+"),
        r"\1\2<redacted>",
    ),
    (re.compile(r"(?i)(://[^/\s:@]+):[^@\s/]+@"), r"\1:<redacted>@"),
    (re.compile(r"(?i)(-u|--user)(\s+|=)([^\s:]+):\S+"), r"\1\2\3:<redacted>"),
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
        ),
        "<private key>",
    ),
    (re.compile(r"\b[A-Za-z0-9+/]{40,}={0,2}"), "<long secret-like value>"),
)


def redact(text: str) -> str:
    """The text with anything that looks like a credential replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def tail(text: str) -> str:
    """The last lines of a command's output, bounded and redacted, for a stack event."""
    lines = [line for line in text.strip().splitlines() if line.strip()][-TAIL_LINES:]
    joined = redact("\n".join(lines))
    return joined[-MAX_TAIL_CHARS:]


def failing_step(stdout: str, stderr: str) -> str:
    """The preparation step that failed: from the script's failure line, else its last step."""
    for line in reversed(stderr.splitlines() + stdout.splitlines()):
        if line.startswith(c.FAILED_MARKER):
            return line[len(c.FAILED_MARKER) :].strip()
    for line in reversed(stdout.splitlines()):
        if line.startswith(c.STEP_MARKER):
            return line[len(c.STEP_MARKER) :].strip()
    return "before its first step"


def _node(clients: Clients, node_id: str) -> InstanceInformationTypeDef | None:
    found = clients.ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [node_id]}]
    ).get("InstanceInformationList", [])
    return found[0] if found else None


def check_node(build: BuildRequest, clients: Clients) -> bool:
    """True when the template's managed node is online; raises when it is not the template.

    The node must carry the template WorkSpace's IP address: an id that names another
    machine is refused, whatever the build's input says.
    """
    node_id = str(build.managed_node_id)
    node = _node(clients, node_id)
    if node is None:
        raise BuildFailed(
            f"managed node {node_id} is not registered with Systems Manager in this account "
            "and Region; register the template WorkSpace (README: Preparing the template in "
            "the build) or correct the persona's managed_node_id"
        )
    workspace = workspace_by_id(clients.workspaces, build.template_workspace_id)
    address = (workspace or {}).get("IpAddress")
    if address and node.get("IPAddress") and node.get("IPAddress") != address:
        raise BuildFailed(
            f"managed node {node_id} has IP address {node.get('IPAddress')}, but template "
            f"WorkSpace {build.template_workspace_id} has {address}: the node is another "
            "machine. Correct the persona's managed_node_id"
        )
    if node.get("PingStatus") != "Online":
        logger.info("managed node %s is %s; waiting", node_id, node.get("PingStatus"))
        return False
    return True


def prepare_template(build: BuildRequest, clients: Clients) -> dict[str, Any]:
    """Send the persona's preparation document to the template's managed node."""
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    return _send(build, clients, str(build.preparation_document), PURPOSE_PREPARATION)


def verify_marker(build: BuildRequest, clients: Clients) -> dict[str, Any]:
    """After the reboot: ask the template for its version file (the recipe marker)."""
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    return _send(build, clients, os.environ[c.ENV_MARKER_DOCUMENT], PURPOSE_MARKER)


def validate_template(build: BuildRequest, clients: Clients) -> dict[str, Any]:
    """After the marker check, before the image: run the persona's validation checks."""
    if not build.validation_document:
        raise BuildFailed("this build has no validation to run")
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    return _send(build, clients, build.validation_document, PURPOSE_VALIDATION)


def _send(build: BuildRequest, clients: Clients, document: str, purpose: str) -> dict[str, Any]:
    try:
        command = clients.ssm.send_command(
            DocumentName=document,
            InstanceIds=[str(build.managed_node_id)],
            TimeoutSeconds=600,  # to be delivered; the document bounds the run itself
            Comment=f"workspaces-image-bakery {purpose} {build.image_name}"[:100],
        )["Command"]
    except ClientError as error:
        if error_code(error) == "InvalidInstanceId":
            # Not reachable for Run Command yet (its ping and the command service differ).
            logger.info("managed node %s is not reachable yet; waiting", build.managed_node_id)
            return {"Status": c.STATUS_WAIT, "CommandId": ""}
        raise
    logger.info("%s of %s: command %s sent", purpose, build.image_name, command.get("CommandId"))
    return {"Status": c.STATUS_SENT, "CommandId": command.get("CommandId", "")}


def poll_command(
    build: BuildRequest, clients: Clients, command: Mapping[str, Any]
) -> dict[str, Any]:
    """WAIT while the command runs; DONE when it succeeded (and, for the marker, matched)."""
    command_id = str(command.get("CommandId", ""))
    purpose = str(command.get("Purpose", PURPOSE_PREPARATION))
    try:
        invocation = clients.ssm.get_command_invocation(
            CommandId=command_id, InstanceId=str(build.managed_node_id)
        )
    except ClientError as error:
        if error_code(error) == "InvocationDoesNotExist":
            return {"Status": c.STATUS_WAIT}  # not registered yet, right after SendCommand
        raise
    status = invocation.get("Status", "")
    if status in RUNNING:
        return {"Status": c.STATUS_WAIT}
    stdout = invocation.get("StandardOutputContent", "")
    stderr = invocation.get("StandardErrorContent", "")
    node = build.managed_node_id
    if status != "Success":
        if purpose == PURPOSE_MARKER:
            raise BuildFailed(
                f"reading the recipe marker on managed node {node} ended {status}: "
                f"{tail(stderr or stdout) or 'no output'}"
            )
        details = invocation.get("StatusDetails", status)
        if purpose == PURPOSE_VALIDATION:
            raise BuildFailed(
                f"the validation on template WorkSpace {build.template_workspace_id} (managed "
                f"node {node}) ended {details} in check {failing_step(stdout, stderr)!r} with "
                f"exit code {invocation.get('ResponseCode', -1)}; no image was taken, so no "
                f"bundle moves; last output:\n{tail(stderr or stdout)}"
            )
        raise BuildFailed(
            f"the preparation on template WorkSpace {build.template_workspace_id} (managed node "
            f"{node}) ended {details} in step {failing_step(stdout, stderr)!r} with exit code "
            f"{invocation.get('ResponseCode', -1)}; last output:\n{tail(stderr or stdout)}"
        )
    if purpose == PURPOSE_MARKER:
        check_marker(build, stdout)
    return {"Status": c.STATUS_DONE}


def check_marker(build: BuildRequest, version_file: str) -> None:
    """The version file must carry this build's recipe: the template is what was prepared."""
    found = [
        line[len(c.MARKER_LINE_PREFIX) :].strip()
        for line in version_file.splitlines()
        if line.startswith(c.MARKER_LINE_PREFIX)
    ]
    if found != [build.recipe]:
        seen = found[-1][:12] if found else "none"
        raise BuildFailed(
            f"the template WorkSpace's {c.VERSION_FILE} carries recipe {seen}, not this build's "
            f"{build.recipe[:12]}: the preparation did not complete, or something changed the "
            "template after it. No image was taken"
        )


def reboot_template(build: BuildRequest, clients: Clients) -> dict[str, Any]:
    """Reboot the template WorkSpace after its preparation (whitepaper step 10)."""
    failed = clients.workspaces.reboot_workspaces(
        RebootWorkspaceRequests=[{"WorkspaceId": build.template_workspace_id}]
    ).get("FailedRequests", [])
    if failed:
        raise TransientError(
            f"could not reboot template WorkSpace {build.template_workspace_id}: "
            f"{failed[0].get('ErrorCode')} {failed[0].get('ErrorMessage')}"
        )
    logger.info("rebooting template WorkSpace %s", build.template_workspace_id)
    return {"Status": c.STATUS_DONE}
