"""The preparation phase of a build: run the persona's preparation on the template WorkSpace
through Systems Manager Run Command, reboot it, and check the recipe marker it left.

A WorkSpace is not an EC2 instance: Systems Manager reaches it as a hybrid managed node
(mi-...) registered with an activation (docs/preparation.md: In the build).
Every step is short; the state machine's Wait states do the waiting. Nothing from the
execution's input is trusted on its own: the managed node must be online and be the
template WorkSpace (same IP address), IAM lets the runtime send only the stack's own
documents to the declared nodes, and the marker must carry this build's recipe.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import Clients, error_code
from ..core.errors import BuildFailed, TransientError
from ..core.workspaces import workspace_by_id
from ..evidence import store
from ..evidence.inventory import parse_inventory_output
from . import resume
from .request import BuildRequest

if TYPE_CHECKING:
    from mypy_boto3_ssm.type_defs import InstanceInformationTypeDef

logger = logging.getLogger(__name__)

RUNNING = frozenset({"Pending", "InProgress", "Delayed"})
PURPOSE_PREPARATION = "preparation"
PURPOSE_MARKER = "marker"
PURPOSE_VALIDATION = "validation"
PURPOSE_INVENTORY = "inventory"
PURPOSE_SEAL = "seal"
PURPOSES = (
    PURPOSE_PREPARATION,
    PURPOSE_MARKER,
    PURPOSE_VALIDATION,
    PURPOSE_INVENTORY,
    PURPOSE_SEAL,
)
SEAL_STATES = ("absent", "deferred", "present")
# How long a managed node may stay unreachable while its command runs before the build
# cancels the command and fails, naming the node (instead of waiting its whole bound).
NODE_LOST_SECONDS = 600
# The piece of the build's work that names its command in flight (cancelled when the build
# is stopped or ends without reporting).
COMMAND_PIECE = "command"


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
            "and Region; register the template WorkSpace (workspaces-image-bakery "
            "register-template; docs/preparation.md: In the build) or correct the persona's "
            "build.managed_node_id"
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


def prepare_template(build: BuildRequest, clients: Clients, execution: str = "") -> dict[str, Any]:
    """Send the persona's preparation script to the template's managed node."""
    if not build.preparation_script:
        raise BuildFailed("this build has no preparation to run")
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    _retire_activation(clients, str(build.managed_node_id))
    return _send_script(build, clients, build.preparation_script, PURPOSE_PREPARATION, execution)


def _retire_activation(clients: Clients, node_id: str) -> None:
    """Delete the hybrid activation the node registered with: its code is a credential that
    could register another machine until it expires. Deleting it leaves the registered node
    as it is; an activation already gone is fine."""
    activation = (_node(clients, node_id) or {}).get("ActivationId")
    if not activation:
        return
    try:
        clients.ssm.delete_activation(ActivationId=activation)
    except ClientError as error:
        if error_code(error) not in ("InvalidActivationId", "InvalidActivation"):
            raise
        return
    logger.info("deleted activation %s of managed node %s", activation, node_id)


def verify_marker(build: BuildRequest, clients: Clients, execution: str = "") -> dict[str, Any]:
    """After the reboot: ask the template for its version file (the recipe marker)."""
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    return _send(build, clients, os.environ[c.ENV_MARKER_DOCUMENT], PURPOSE_MARKER, execution)


def take_inventory(build: BuildRequest, clients: Clients, execution: str = "") -> dict[str, Any]:
    """After the validation, before the image: list what the template holds (packages from
    its own database, unit states, evidence files) with the stack's inventory document."""
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    return _send(
        build,
        clients,
        os.environ[c.ENV_INVENTORY_DOCUMENT],
        PURPOSE_INVENTORY,
        execution,
        {c.RESUME_PARAMETER: [resume.expected_marker(clients, execution)]},
    )


def seal_template(build: BuildRequest, clients: Clients, execution: str = "") -> dict[str, Any]:
    """The last command before the image: take the template's identity off its root volume
    and prove each item gone (preparation/seal.py renders the document)."""
    if not build.seal_script:
        raise BuildFailed("this build has no seal to run")
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    return _send_script(build, clients, build.seal_script, PURPOSE_SEAL, execution)


def read_seal(stdout: str) -> tuple[dict[str, str], bool]:
    """Each item's state ("absent", "deferred" or "present <path>") and whether the seal's
    last line said ok, from the seal's own markers."""
    items: dict[str, str] = {}
    last = ""
    for line in stdout.splitlines():
        if line.startswith(c.SEAL_MARKER):
            item, _, state = line[len(c.SEAL_MARKER) :].strip().partition(" ")
            if state.split(" ", 1)[0] in SEAL_STATES:
                items[item] = state
        elif line.startswith(c.SEALED_MARKER):
            last = line[len(c.SEALED_MARKER) :].strip()
    return items, last == "ok" and bool(items)


def validate_template(build: BuildRequest, clients: Clients, execution: str = "") -> dict[str, Any]:
    """After the marker check, before the image: run the persona's validation checks."""
    if not build.validation_script:
        raise BuildFailed("this build has no validation to run")
    if not check_node(build, clients):
        return {"Status": c.STATUS_WAIT, "CommandId": ""}
    return _send_script(build, clients, build.validation_script, PURPOSE_VALIDATION, execution)


# The stack's script document's purpose parameter (its allowed values) for each command.
SCRIPT_PURPOSES = {
    PURPOSE_PREPARATION: "prepare",
    PURPOSE_VALIDATION: "validate",
    PURPOSE_SEAL: "seal",
}
# How long the seal may run on the template; the preparation and validation take the
# build's own bound.
SEAL_TIMEOUT_SECONDS = 1800


def _send_script(
    build: BuildRequest,
    clients: Clients,
    script: Mapping[str, str],
    purpose: str,
    execution: str = "",
) -> dict[str, Any]:
    """Send the stack's script document with this script's key and digest: the document
    downloads the object, checks its SHA-256 and runs it (Systems Manager refuses a digest
    the stack did not declare)."""
    timeout = SEAL_TIMEOUT_SECONDS if purpose == PURPOSE_SEAL else build.bound_seconds
    parameters = {
        "purpose": [SCRIPT_PURPOSES[purpose]],
        "scriptKey": [script[c.SCRIPT_KEY]],
        "sha256": [script[c.SCRIPT_SHA256]],
        "timeoutSeconds": [str(timeout)],
        # Set in a resumed build: the version file must still be the one the failed build
        # read, else the command exits before the script runs (resume.py).
        c.RESUME_PARAMETER: [resume.expected_marker(clients, execution)],
    }
    return _send(build, clients, os.environ[c.ENV_SCRIPT_DOCUMENT], purpose, execution, parameters)


def _send(
    build: BuildRequest,
    clients: Clients,
    document: str,
    purpose: str,
    execution: str = "",
    parameters: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    try:
        command = clients.ssm.send_command(
            DocumentName=document,
            Parameters=dict(parameters or {}),
            InstanceIds=[str(build.managed_node_id)],
            TimeoutSeconds=600,  # to be delivered; the document bounds the run itself
            Comment=f"workspaces-image-bakery {purpose} {build.image_name}"[:100],
            # The whole output, archived (GetCommandInvocation returns only its start).
            OutputS3BucketName=store.bucket(),
            OutputS3KeyPrefix=store.output_prefix(build.persona, build.image_name, purpose),
        )["Command"]
    except ClientError as error:
        if error_code(error) == "InvalidInstanceId":
            # Not reachable for Run Command yet (its ping and the command service differ).
            logger.info("managed node %s is not reachable yet; waiting", build.managed_node_id)
            return {"Status": c.STATUS_WAIT, "CommandId": ""}
        raise
    logger.info("%s of %s: command %s sent", purpose, build.image_name, command.get("CommandId"))
    if execution:
        # Which command is in flight: cancelled if the build is stopped or lost.
        store.put_json(
            clients.s3,
            store.work_key(execution, COMMAND_PIECE),
            {"command_id": command.get("CommandId", ""), "node": build.managed_node_id},
        )
    return {"Status": c.STATUS_SENT, "CommandId": command.get("CommandId", "")}


def cancel_command(clients: Clients, execution: str) -> str | None:
    """Cancel the command this execution has in flight (a build stopped, or ended without
    reporting); its id, or None when there is none. Errors are logged, never raised: the
    command may have ended already."""
    sent = store.get_json(clients.s3, store.work_key(execution, COMMAND_PIECE))
    if not isinstance(sent, Mapping) or not sent.get("command_id"):
        return None
    command_id, node = str(sent["command_id"]), str(sent.get("node") or "")
    try:
        clients.ssm.cancel_command(
            CommandId=command_id, **({"InstanceIds": [node]} if node else {})
        )
    except ClientError as error:
        logger.info("command %s not cancelled: %s", command_id, error_code(error))
        return None
    logger.info("command %s of execution %s cancelled", command_id, execution)
    return command_id


def _check_node_lost(
    build: BuildRequest, clients: Clients, command_id: str, purpose: str, now: float
) -> None:
    """While the command runs: a node unreachable for NODE_LOST_SECONDS stops the build. The
    command was sent while the node was online, so its last ping bounds how long it has been
    gone; the command is cancelled and the node named."""
    node_id = str(build.managed_node_id)
    node = _node(clients, node_id)
    ping = (node or {}).get("PingStatus", "unregistered")
    if ping == "Online":
        return
    last = (node or {}).get("LastPingDateTime")
    gone = now - last.timestamp() if last is not None else float(NODE_LOST_SECONDS + 1)
    if gone <= NODE_LOST_SECONDS:
        return
    try:
        clients.ssm.cancel_command(CommandId=command_id, InstanceIds=[node_id])
    except ClientError as error:
        logger.info("command %s not cancelled: %s", command_id, error_code(error))
    seen = f"last seen {last.isoformat()}" if last is not None else "never seen"
    raise BuildFailed(
        f"managed node {node_id} of template WorkSpace {build.template_workspace_id} is "
        f"{ping} ({seen}, more than {NODE_LOST_SECONDS // 60} minutes) during the {purpose}; "
        f"command {command_id} was cancelled. Check the template WorkSpace and its SSM Agent, "
        "then deploy again"
    )


def poll_command(
    build: BuildRequest,
    clients: Clients,
    command: Mapping[str, Any],
    execution: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """WAIT while the command runs; DONE when it succeeded (and, for the marker, matched).

    The command's whole output is read from the evidence store, where SendCommand archived
    it: a failure names the step from that step's own marker, however long the output, and
    points at the archive. What the command did goes into the build's work (`execution`),
    from which the as-built record is written.
    """
    command_id = str(command.get("CommandId", ""))
    purpose = str(command.get("Purpose", PURPOSE_PREPARATION))
    if purpose not in PURPOSES:
        raise BuildFailed(f"unknown command purpose {purpose!r}")
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
        _check_node_lost(build, clients, command_id, purpose, time.time() if now is None else now)
        return {"Status": c.STATUS_WAIT}
    node = str(build.managed_node_id)
    prefix = store.output_prefix(build.persona, build.image_name, purpose)
    archived = store.read_output(clients.s3, prefix, command_id, node)
    if archived is None:
        stdout = invocation.get("StandardOutputContent", "")
        stderr = invocation.get("StandardErrorContent", "")
        where = "not archived (only the first 24,000/8,000 characters were read)"
    else:
        stdout, stderr = archived
        where = store.location(f"{prefix}/{command_id}/{node}/")
    code = invocation.get("ResponseCode", -1)
    done: dict[str, Any] = {
        "command_id": command_id,
        "document": invocation.get("DocumentName", ""),
        "status": status,
        "status_details": invocation.get("StatusDetails", status),
        "exit_code": code,
        "started": str(invocation.get("ExecutionStartDateTime", "")),
        "ended": str(invocation.get("ExecutionEndDateTime", "")),
        "output": where,
        "output_archived": archived is not None,
    }
    if purpose in (PURPOSE_PREPARATION, PURPOSE_VALIDATION):
        done["steps"] = steps_run(stdout)
    if purpose == PURPOSE_SEAL:
        done["items"], done["sealed"] = read_seal(stdout)
    if (
        status != "Success"
        and code == c.RESUME_MISMATCH_EXIT
        and failing_step(stdout, stderr) == c.RESUME_GUARD_STEP
        and resume.expected_marker(clients, execution)
    ):
        # A resumed build's first command: the template changed since the failed build.
        logger.info("%s: the template changed since the failed build; starting over", purpose)
        resume.start_over(clients, execution, command_id)
        return {"Status": c.STATUS_RESTART}
    if status != "Success":
        done["failed_step"] = failing_step(stdout, stderr)
        _keep(clients, execution, purpose, done)
        raise BuildFailed(_failure(build, purpose, done))
    if purpose == PURPOSE_MARKER:
        check_marker(build, stdout)
        # What a later build resumes on: the version file as this check read it.
        done["version_sha256"] = resume.version_digest(stdout)
    if purpose == PURPOSE_SEAL and not done["sealed"]:
        _keep(clients, execution, purpose, done)
        raise BuildFailed(_failure(build, purpose, {**done, "status_details": "unsealed"}))
    if purpose == PURPOSE_INVENTORY:
        try:
            done["inventory"] = parse_inventory_output(stdout).to_json()
        except ValueError as error:
            raise BuildFailed(
                f"the template's inventory ({where}) is unreadable: {error}"
            ) from None
    _keep(clients, execution, purpose, done)
    return {"Status": c.STATUS_DONE}


def steps_run(stdout: str) -> list[str]:
    """The steps (or checks) the script started, in order, from their own markers."""
    return [
        line[len(c.STEP_MARKER) :].strip()
        for line in stdout.splitlines()
        if line.startswith(c.STEP_MARKER)
    ]


def _keep(clients: Clients, execution: str, purpose: str, done: Mapping[str, Any]) -> None:
    """What the command did, into the build's work (read back for the as-built record)."""
    if execution:
        store.put_json(clients.s3, store.work_key(execution, purpose), done)


def _failure(build: BuildRequest, purpose: str, done: Mapping[str, Any]) -> str:
    """The stack event's text: the step, the exit code and where the whole output is; never
    the output itself (it may hold what must not reach a stack event)."""
    node = build.managed_node_id
    step = done.get("failed_step")
    ended = f"ended {done['status_details']}"
    code = f"exit code {done['exit_code']}"
    output = f"full output: {done['output']}"
    if purpose == PURPOSE_MARKER:
        return f"reading the recipe marker on managed node {node} {ended} ({code}); {output}"
    if purpose == PURPOSE_VALIDATION:
        return (
            f"the validation on template WorkSpace {build.template_workspace_id} (managed "
            f"node {node}) {ended} in check {step!r} with {code}; no image was taken, so no "
            f"bundle moves; {output}"
        )
    if purpose == PURPOSE_SEAL:
        left = sorted(k for k, v in done.get("items", {}).items() if v.startswith("present"))
        return (
            f"the seal of template WorkSpace {build.template_workspace_id} (managed node "
            f"{node}) {ended} with {code}; still on the root volume: "
            f"{', '.join(left) or 'unknown'}; no image was taken; {output}"
        )
    if purpose == PURPOSE_INVENTORY:
        return (
            f"the inventory of template WorkSpace {build.template_workspace_id} (managed node "
            f"{node}) {ended} with {code}; no image was taken; {output}"
        )
    return (
        f"the preparation on template WorkSpace {build.template_workspace_id} (managed node "
        f"{node}) {ended} in step {step!r} with {code}; {output}"
    )


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
