"""A stand-in for Systems Manager's Run Command on hybrid managed nodes, behind a real
boto3 client (botocore serializes and validates every request; the fake checks enums,
patterns and maximum lengths from the same model, as for WorkSpaces).

A managed node is linked to a WorkSpace of the WorkSpaces fake: it is offline while that
WorkSpace reboots, and reports its IP address. SendCommand checks the parameters against the
document's own (undeclared, missing, ``allowedValues``, ``allowedPattern``), as Systems
Manager does, and substitutes them into its steps. Running the stack's script document with
a persona's preparation leaves the version file the script writes (its ``recipe=`` line);
the stack's marker document prints that file. Outcomes can be set per node: a failed
command with its output, a timeout, a marker that does not match.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.config import Config

from workspaces_image_bakery.image_build.run_command import SCRIPT_CACHE

from .transport import response, service_model, session
from .workspaces_service import REGION, FakeWorkSpaces, ServiceError, check_request

ENDPOINT = "https://ssm.fake.test"
MARKER_DOCUMENT = "RecipeMarker-fake"
INVENTORY_DOCUMENT = "Inventory-fake"
# The logical id prefix of the stack's inventory document (whose parameters it declares).
STACK_INVENTORY = "WorkSpacesImageBakeryRuntimeInventory"
# The logical id prefix of the stack's pending-updates document (the patch check's).
PENDING_DOCUMENT = "WorkSpacesImageBakeryPatchingPendingUpdates"
VERSION_FILE = "/etc/workspaces-image-bakery/version"
# What a seal prints when every item is gone (the SSM agent's own, deferred).
SEALED = "".join(
    f"==> bakery seal: {item} absent\n"
    for item in ("ssh-host-keys", "machine-id", "cloud-init-state", "shell-histories", "logs")
) + (
    "==> bakery seal: ssm-agent-output deferred\n"
    "==> bakery seal: ssm-registration deferred\n"
    "==> bakery sealed: ok\n"
)
# What the inventory document prints on a node by default: a small Ubuntu 22.04 system.
DEFAULT_PACKAGES = (
    "installed\tbash\t5.1-6ubuntu1.1\tamd64\n"
    "installed\tcoreutils\t8.32-4.1ubuntu1.2\tamd64\n"
    "installed\tlibc6\t2.35-0ubuntu3.8\tamd64\n"
    # The office persona's baked application (the build fails when one is missing).
    "installed\tlibreoffice\t1:7.6.7-0ubuntu0.22.04.1\tamd64\n"
    "config-files\told-kernel\t5.15.0-1\tamd64\n"
)
_RECIPE = re.compile(r"^recipe=([0-9a-f]{64})$", re.MULTILINE)


@dataclass
class Node:
    node_id: str
    workspace_id: str
    ping: str = "Online"
    version_file: str = ""
    # What the next preparation does: ("Success" | "Failed" | "TimedOut", stdout, stderr, code)
    outcome: tuple[str, str, str, int] | None = None
    # Set to write this recipe instead of the document's (a template changed afterwards).
    recipe_override: str | None = None
    # What the persona's validation checks do; None: they pass. Same shape as `outcome`.
    validation_outcome: tuple[str, str, str, int] | None = None
    validations: int = 0
    # What the inventory document finds: dpkg-query lines, unit states, present files.
    packages: str = DEFAULT_PACKAGES
    units: dict[str, str] = field(
        default_factory=lambda: {"amazon-ssm-agent.service": "enabled", "ssh.service": "enabled"}
    )
    files: tuple[str, ...] = ()
    os_release: tuple[str, str] = ("ubuntu", "22.04")
    # When the node last reached Systems Manager (DescribeInstanceInformation's
    # LastPingDateTime); None: now. Set it with `ping` to take a node off mid-command.
    last_ping: datetime | None = None
    # Set to a script purpose (prepare, validate, seal): the node drops off right after that
    # command is sent, last seen 20 minutes earlier, and its command makes no progress.
    drop_after: str | None = None
    # The hybrid activation the node registered with (deleted by the build once it is used).
    activation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # What the seal prints; None: every item absent (the SSM registration deferred), sealed.
    seal_output: str | None = None
    seals: int = 0
    # The updates apt would install: (package, installed, new version, suite); a suite
    # ending in -security is a security update. The pending-updates document runs for real
    # in bash, with an apt-get that prints these as `apt-get -s dist-upgrade` does.
    updates: list[tuple[str, str, str, str]] = field(default_factory=list)
    checks: int = 0


@dataclass
class Invocation:
    command_id: str
    node_id: str
    document: str
    polls_left: int = 2
    hidden_polls: int = 1  # InvocationDoesNotExist right after SendCommand
    status: str = "InProgress"
    details: str = "InProgress"
    stdout: str = ""
    stderr: str = ""
    code: int = -1
    # SendCommand's OutputS3BucketName / OutputS3KeyPrefix, when given.
    output_bucket: str = ""
    output_prefix: str = ""
    # SendCommand's Parameters (checked against the document's).
    parameters: dict[str, list[str]] = field(default_factory=dict)

    @property
    def purpose(self) -> str:
        """The script document's purpose parameter (prepare, validate, seal), or ""."""
        return self.parameters.get("purpose", [""])[0]


@dataclass
class FakeSSM:
    workspaces: FakeWorkSpaces
    documents: dict[str, Any]
    nodes: dict[str, Node] = field(default_factory=dict)
    invocations: dict[str, Invocation] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # The commands CancelCommand stopped while they ran.
    cancelled: list[str] = field(default_factory=list)
    deleted_activations: list[str] = field(default_factory=list)
    # Commands the resume guard stopped (the template changed since the failed build).
    guard_stops: int = 0

    # An S3 client (moto's) that the node's agent archives command output with.
    s3: Any = None

    def __post_init__(self) -> None:
        self._model = service_model("ssm")
        self._ids = itertools.count(1)

    def add_node(self, workspace_id: str, **kwargs: Any) -> Node:
        node_id = f"mi-{next(self._ids):017d}"
        node = Node(node_id, workspace_id, **kwargs)
        self.nodes[node_id] = node
        return node

    def client(self, config: Config | None = None) -> Any:
        client = session(REGION).client("ssm", config=config, endpoint_url=ENDPOINT)
        client.meta.events.register_first("before-send.ssm", self._on_send)  # type: ignore[arg-type]
        return client

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    # ----- transport ----------------------------------------------------------------
    def _on_send(self, request: Any, **_: Any) -> AWSResponse:
        operation = request.headers["X-Amz-Target"].decode().split(".")[-1]
        params = json.loads(request.body or b"{}")
        self.calls.append((operation, params))
        try:
            shape = self._model.operation_model(operation).input_shape
            assert shape is not None
            problems: list[str] = []
            check_request(shape, params, operation, problems)
            if problems:
                raise ServiceError("ValidationException", "; ".join(problems))
            body, status = getattr(self, f"_op_{operation}")(params), 200
        except ServiceError as error:
            body, status = {"__type": error.code, "message": error.message}, error.status
        return response(
            request.url, status, "application/x-amz-json-1.1", json.dumps(body).encode()
        )

    # ----- the node's view of the world ------------------------------------------------
    def _ping(self, node: Node) -> str:
        workspace = self.workspaces.workspaces.get(node.workspace_id)
        if workspace is None or workspace.state in ("REBOOTING", "STOPPED", "STARTING"):
            return "ConnectionLost"
        return node.ping

    def _op_DescribeInstanceInformation(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted: list[str] = []
        for item in params.get("Filters", []):
            if item["Key"] == "InstanceIds":
                wanted.extend(item["Values"])
        found = []
        for node in self.nodes.values():
            if wanted and node.node_id not in wanted:
                continue
            workspace = self.workspaces.workspaces.get(node.workspace_id)
            found.append(
                {
                    "InstanceId": node.node_id,
                    "PingStatus": self._ping(node),
                    "LastPingDateTime": (node.last_ping or datetime.now(UTC)).timestamp(),
                    "ActivationId": node.activation_id,
                    "ResourceType": "ManagedInstance",
                    "IPAddress": workspace.ip_address if workspace else "10.9.9.9",
                    "PlatformType": "Linux",
                }
            )
        return {"InstanceInformationList": found}

    def _op_SendCommand(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["DocumentName"]
        if name not in (MARKER_DOCUMENT, INVENTORY_DOCUMENT) and name not in self.documents:
            raise ServiceError("InvalidDocument", f"Document {name} does not exist.")
        given = self._check_parameters(name, params.get("Parameters", {}))
        (node_id,) = params["InstanceIds"]
        node = self.nodes.get(node_id)
        if node is None or self._ping(node) != "Online":
            raise ServiceError("InvalidInstanceId", "Instances not in a valid state.")
        command_id = str(uuid.uuid4())
        self.invocations[command_id] = Invocation(
            command_id,
            node_id,
            name,
            output_bucket=params.get("OutputS3BucketName", ""),
            output_prefix=params.get("OutputS3KeyPrefix", ""),
            parameters=given,
        )
        if node.drop_after is not None and node.drop_after == given.get("purpose", [""])[0]:
            node.ping, node.last_ping = "ConnectionLost", datetime.now(UTC) - timedelta(minutes=20)
        return {"Command": {"CommandId": command_id, "DocumentName": name, "Status": "Pending"}}

    def _check_parameters(self, name: str, given: dict[str, list[str]]) -> dict[str, list[str]]:
        """Systems Manager's check of SendCommand's parameters against the document's."""
        content = self.documents.get(name)
        if name == INVENTORY_DOCUMENT:  # the stack's own inventory document declares these
            content = next(
                (d for n, d in self.documents.items() if n.startswith(STACK_INVENTORY)), None
            )
        if isinstance(content, str):
            content = json.loads(content)
        declared: dict[str, Any] = (content or {}).get("parameters", {})
        for key, values in given.items():
            spec = declared.get(key)
            if spec is None:
                raise ServiceError("InvalidParameters", f"Parameter {key} is not declared.")
            for value in values:
                allowed = spec.get("allowedValues")
                if allowed is not None and value not in allowed:
                    raise ServiceError(
                        "InvalidParameters", f"Parameter {key}: {value!r} is not allowed."
                    )
                pattern = spec.get("allowedPattern")
                if pattern is not None and not re.search(pattern, value):
                    raise ServiceError(
                        "InvalidParameters", f"Parameter {key}: {value!r} fails {pattern}."
                    )
        missing = [k for k, spec in declared.items() if k not in given and "default" not in spec]
        if missing:
            raise ServiceError("InvalidParameters", f"Parameters {missing} are required.")
        return dict(given)

    def _finish(self, invocation: Invocation) -> None:
        self._run(invocation)
        self._archive(invocation)

    def _archive(self, invocation: Invocation) -> None:
        """What the agent uploads with the node's role: the whole stdout and stderr, at
        <prefix>/<command id>/<node id>/awsrunShellScript/<step>/stdout|stderr."""
        if not invocation.output_bucket or self.s3 is None:
            return
        folder = (
            f"{invocation.output_prefix}/{invocation.command_id}/{invocation.node_id}"
            "/awsrunShellScript/0.awsrunShellScript"
        )
        for stream in ("stdout", "stderr"):
            text = getattr(invocation, stream)
            if text:
                self.s3.put_object(
                    Bucket=invocation.output_bucket, Key=f"{folder}/{stream}", Body=text.encode()
                )

    def inventory_output(self, node: Node) -> str:
        marker = "==> bakery inventory: "
        units = "".join(f"{unit}\t{state}\n" for unit, state in sorted(node.units.items()))
        files = "".join(f"{path}\tpresent\n" for path in node.files)
        return (
            f"{marker}os {node.os_release[0]} {node.os_release[1]}\n{marker}family deb\n"
            f"{marker}packages\n{node.packages}{marker}units\n{units}{marker}files\n{files}"
            f"{marker}end\n"
        )

    def _run(self, invocation: Invocation) -> None:
        node = self.nodes[invocation.node_id]
        expected = invocation.parameters.get("expectMarker", [""])[0]
        if expected and expected != hashlib.sha256(node.version_file.encode()).hexdigest():
            # The documents' resume guard, before anything else runs.
            invocation.status = invocation.details = "Failed"
            invocation.code = 96
            invocation.stderr = (
                "==> bakery failed: resume-guard (the version file changed since the failed "
                "build)\n"
            )
            self.guard_stops += 1
            return
        if invocation.document.startswith(PENDING_DOCUMENT):
            node.checks += 1
            self._run_pending_updates(invocation, node)
            return
        if invocation.purpose == "seal":
            node.seals += 1
            invocation.stdout = node.seal_output or SEALED
            sealed = invocation.stdout.rstrip().endswith("==> bakery sealed: ok")
            invocation.status = invocation.details = "Success" if sealed else "Failed"
            invocation.code = 0 if sealed else 1
            return
        if invocation.document == INVENTORY_DOCUMENT:
            invocation.status = invocation.details = "Success"
            invocation.code = 0
            invocation.stdout = self.inventory_output(node)
            return
        if invocation.document == MARKER_DOCUMENT:
            invocation.status, invocation.code = "Success", 0
            invocation.stdout = node.version_file
            if node.version_file:  # the document's second line: sha256sum of the file
                digest = hashlib.sha256(node.version_file.encode()).hexdigest()
                invocation.stdout += f"{digest}  {VERSION_FILE}\n"
            if not node.version_file:
                invocation.status, invocation.code = "Failed", 1
                invocation.stderr = "cat: /etc/workspaces-image-bakery/version: No such file"
            invocation.details = invocation.status
            return
        if invocation.purpose == "validate":
            node.validations += 1
            status, stdout, stderr, code = node.validation_outcome or (
                "Success",
                "==> bakery validation passed",
                "",
                0,
            )
            invocation.status, invocation.stdout, invocation.stderr, invocation.code = (
                status,
                stdout,
                stderr,
                code,
            )
            invocation.details = status
            return
        status, stdout, stderr, code = node.outcome or ("Success", "", "", 0)
        node.outcome = None
        invocation.status, invocation.stdout, invocation.stderr, invocation.code = (
            status,
            stdout,
            stderr,
            code,
        )
        invocation.details = "ExecutionTimedOut" if status == "TimedOut" else status
        if status == "Success":
            script = "\n".join(self._run_command(invocation))
            recipe = _RECIPE.search(script)
            written = node.recipe_override or (recipe.group(1) if recipe else "")
            node.version_file = f"persona=x\nrecipe={written}\n"
            invocation.stdout = (
                stdout or "==> bakery step: patch\n==> bakery done: recipe=" + written
            )

    def _run_pending_updates(self, invocation: Invocation, node: Node) -> None:
        """The stack's pending-updates document, run by bash with apt-get shimmed."""
        lines = self._run_command(invocation)
        simulated = "".join(
            f"Inst {package} [{installed}] ({new} Ubuntu:22.04/{suite} [amd64])\n"
            for package, installed, new, suite in node.updates
        )
        with tempfile.TemporaryDirectory() as folder:
            shim = Path(folder) / "apt-get"
            shim.write_text(
                "#!/bin/bash\n"
                'if [ "$1" = "update" ] || [ "$1" = "-qq" ]; then exit 0; fi\n'
                f"cat <<'EOF'\n{simulated}EOF\n"
            )
            shim.chmod(0o755)
            done = subprocess.run(
                ["bash", "-c", "\n".join(lines)],
                capture_output=True,
                text=True,
                env={"PATH": f"{folder}:/usr/bin:/bin", "HOME": folder},
                check=False,
                timeout=60,
            )
        invocation.stdout, invocation.stderr, invocation.code = (
            done.stdout,
            done.stderr,
            done.returncode,
        )
        invocation.status = invocation.details = "Success" if done.returncode == 0 else "Failed"

    def script_sent(self, purpose: str) -> list[str]:
        """The lines of the last script sent for `purpose` (prepare, validate, seal)."""
        invocation = next(
            i for i in reversed(list(self.invocations.values())) if i.purpose == purpose
        )
        return self._run_command(invocation)

    def _run_command(self, invocation: Invocation) -> list[str]:
        """The script the document runs, its parameters substituted as Systems Manager does:
        for the script document, the script its aws:downloadContent step fetches (read from
        the file CDK staged as the asset, as the agent would read the S3 object), checked
        against its SHA-256 as the document's own check does."""
        content = self.documents[invocation.document]
        if isinstance(content, str):
            content = json.loads(content)
        steps = content["mainSteps"]
        run = next(s for s in steps if s["action"] == "aws:runShellScript")
        lines = [self._substitute(line, invocation) for line in run["inputs"]["runCommand"]]
        if not any(s["action"] == "aws:downloadContent" for s in steps):
            return lines
        (digest,) = invocation.parameters["sha256"]
        body = (SCRIPT_CACHE / f"{digest}.sh").read_bytes()
        assert hashlib.sha256(body).hexdigest() == digest
        assert any(digest in line and "sha256sum --check" in line for line in lines)
        return body.decode().splitlines()

    @staticmethod
    def _substitute(text: str, invocation: Invocation) -> str:
        return re.sub(r"\{\{ *(\w+) *\}\}", lambda m: invocation.parameters[m.group(1)][0], text)

    def _op_DeleteActivation(self, params: dict[str, Any]) -> dict[str, Any]:
        known = {n.activation_id for n in self.nodes.values()}
        if params["ActivationId"] not in known - set(self.deleted_activations):
            raise ServiceError("InvalidActivationId", "No such activation.")
        self.deleted_activations.append(params["ActivationId"])
        return {}

    def _op_CancelCommand(self, params: dict[str, Any]) -> dict[str, Any]:
        invocation = self.invocations.get(params["CommandId"])
        if invocation is None:
            raise ServiceError("InvalidCommandId", "No such command.")
        if invocation.status in ("Pending", "InProgress", "Delayed"):
            invocation.status = invocation.details = "Cancelled"
            self.cancelled.append(invocation.command_id)
        return {}

    def _op_GetCommandInvocation(self, params: dict[str, Any]) -> dict[str, Any]:
        invocation = self.invocations.get(params["CommandId"])
        if invocation is None or invocation.node_id != params["InstanceId"]:
            raise ServiceError("InvocationDoesNotExist", "No such invocation.")
        if invocation.hidden_polls > 0:
            invocation.hidden_polls -= 1
            raise ServiceError("InvocationDoesNotExist", "No such invocation yet.")
        node = self.nodes.get(invocation.node_id)
        if invocation.status == "InProgress" and node is not None and self._ping(node) == "Online":
            invocation.polls_left -= 1
            if invocation.polls_left <= 0:
                self._finish(invocation)
        return {
            "CommandId": invocation.command_id,
            "InstanceId": invocation.node_id,
            "DocumentName": invocation.document,
            "Status": invocation.status,
            "StatusDetails": invocation.details,
            "ResponseCode": invocation.code,
            # The first 24,000 and 8,000 characters (botocore's model says so).
            "StandardOutputContent": invocation.stdout[:24000],
            "StandardErrorContent": invocation.stderr[:8000],
        }
