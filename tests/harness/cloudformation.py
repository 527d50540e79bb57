"""A small CloudFormation stand-in that drives the real handlers from a synthesized template.

It sends each custom resource the events CloudFormation would (Create, Update with
OldResourceProperties, Delete; every scalar turned into a string), runs the build
executions the image resource started through the deployed state machine definition,
resolves the WaitCondition from the workflow's signal, and on failure rolls back the way
CloudFormation does: updated resources get an Update with their old properties, created
ones a Delete, and replaced physical resources are deleted.

The runtime checks each event with CloudFormation (DescribeStacks, DescribeStackResource,
DescribeStackEvents; bakery_runtime/core/authenticate.py): the stand-in answers those from
the stack as it holds it, with the resource it sends an event for in progress (created
resources without a physical id until they answer), and records the stack's events. A
test that sends an event outside deploy() (send_event by itself) has CloudFormation send
it in an UPDATE_IN_PROGRESS operation, as it only sends events during one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bakery_runtime.core import contract
from bakery_runtime.core.aws import Clients
from bakery_runtime.core.errors import BuildFailed, TransientError
from bakery_runtime.image_build import custom_resource
from bakery_runtime.image_build import steps as build_steps
from bakery_runtime.image_build.request import DEADLINE_MARGIN_SECONDS as DEADLINE_MARGIN

from ..fakes.cloudformation_service import FakeCloudFormation, StackResource
from . import asl

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/WorkSpacesImageBakery/1111-2222"
WAIT_HOST = "https://cloudformation-waitcondition-us-east-1.s3.us-east-1.amazonaws.com"


def handle_url(logical_id: str, stack_id: str = STACK_ID) -> str:
    """A WaitCondition handle's pre-signed URL as CloudFormation makes it (README: Safety)."""
    return (
        f"{WAIT_HOST}/{quote(stack_id, safe='/')}/{logical_id}"
        f"?X-Amz-Expires=86399&X-Amz-Signature={hashlib.sha256(logical_id.encode()).hexdigest()}"
    )


ORDER = (
    "AWS::SSM::Document",
    "AWS::CloudFormation::WaitConditionHandle",
    "Custom::WorkSpacesImage",
    "AWS::CloudFormation::WaitCondition",
    "Custom::WorkSpacesImageId",
    "Custom::WorkSpacesBundle",
)


class DeployError(Exception):
    """The stack operation failed; the message is the stack event's reason."""


def stringify(value: Any) -> Any:
    """CloudFormation sends every scalar property as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [stringify(v) for v in value]
    if isinstance(value, dict):
        return {k: stringify(v) for k, v in value.items()}
    return value


@dataclass
class Signals:
    """Receives WaitCondition signals (the pre-signed URL's PUT) in memory."""

    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def send(self, url: str, body: bytes) -> None:
        self.received.setdefault(url, []).append(json.loads(body))


@dataclass
class Stack:
    """What CloudFormation remembers about the deployed stack."""

    template: dict[str, Any] = field(default_factory=lambda: {"Resources": {}})
    physical: dict[str, str] = field(default_factory=dict)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)


class CloudFormation:
    def __init__(
        self,
        clients: Clients,
        state_machine_arn: str,
        definition: Mapping[str, Any],
        status: FakeCloudFormation,
        stack_id: str = STACK_ID,
    ):
        self.status = status
        self.stack_id = stack_id
        self.clients = clients
        self.state_machine_arn = state_machine_arn
        self.definition = definition
        self.signals = Signals()
        self.stack = Stack()
        self.clock = asl.Clock(now=0.0)
        self.runs: list[asl.Run] = []
        self.events: list[tuple[str, str, str]] = []
        self.types: dict[str, str] = {}
        self.paused: set[str] = set()
        self.documents: dict[str, Any] = {}
        self._template: Mapping[str, Any] = {}
        # DescribeStackResource answers from the stack as this stand-in holds it, with the
        # resource an event is being sent for as CloudFormation records it meanwhile.
        status.resources = lambda: self.stack.physical
        status.describe = self.described
        self.working: dict[str, StackResource] = {}

    # ----- events -----------------------------------------------------------------------
    def send_event(
        self,
        request_type: str,
        logical_id: str,
        resource_type: str,
        properties: Mapping[str, Any],
        old_properties: Mapping[str, Any] | None = None,
        physical_id: str | None = None,
        request_id: str | None = None,
        *,
        replaced: bool = False,
    ) -> dict[str, Any]:
        """Send the event as CloudFormation does, in a stack operation, the resource's record
        in progress. `replaced`: the cleanup's Delete of a replaced physical resource, when
        the logical id already names its replacement (CloudFormation's record stays so)."""
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ResourceType": resource_type,
            "LogicalResourceId": logical_id,
            "StackId": self.stack_id,
            "RequestId": request_id or str(uuid.uuid4()),
            "ResponseURL": "https://cloudformation-custom-resource-response.example/secret",
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
            "ResourceProperties": stringify(dict(properties)),
        }
        if old_properties is not None:
            event["OldResourceProperties"] = stringify(dict(old_properties))
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        self.events.append((request_type, logical_id, physical_id or ""))
        status_before = self.status.status
        if not status_before.endswith("_IN_PROGRESS"):
            self.status.status = "UPDATE_IN_PROGRESS"
        if request_type == "Create":  # CloudFormation creates this logical id as this type
            self.types[logical_id] = resource_type
        self.types.setdefault(logical_id, resource_type)
        kind = self.types[logical_id]
        step = request_type.upper()
        self.status.event(logical_id, kind, f"{step}_IN_PROGRESS", physical_id or "")
        if not replaced:
            self.working[logical_id] = StackResource(
                kind, f"{step}_IN_PROGRESS", None if request_type == "Create" else physical_id
            )
        try:
            result = custom_resource.dispatch(event, self.clients)
        except Exception:
            self.status.event(logical_id, kind, f"{step}_FAILED", physical_id or "")
            raise
        finally:
            self.working.pop(logical_id, None)
            if not status_before.endswith("_IN_PROGRESS"):
                self.status.status = status_before
        self.status.event(logical_id, kind, f"{step}_COMPLETE", result["PhysicalResourceId"])
        return result

    def described(self, logical_id: str) -> StackResource | None:
        """DescribeStackResource's answer: the resource being worked on, else as deployed."""
        if logical_id in self.working:
            return self.working[logical_id]
        physical = self.stack.physical.get(logical_id)
        if physical is None:
            return None
        return StackResource(self.types.get(logical_id, ""), "UPDATE_COMPLETE", physical)

    def stack_status(self, status: str) -> None:
        """The stack enters `status` (a stack event records it)."""
        self.status.status = status
        self.status.stack_event(status)

    # ----- the workflow -------------------------------------------------------------------
    def invoke_step(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return build_steps.run_step(
                payload, self.clients, now=self.clock.now, send=self.signals.send
            )
        except (BuildFailed, TransientError) as error:
            cause = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__})
            raise asl.TaskError(type(error).__name__, cause) from None

    def running(self) -> list[str]:
        """ARNs of the executions Step Functions (moto) still has RUNNING."""
        sfn = self.clients.stepfunctions
        return [
            e["executionArn"]
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self.state_machine_arn, statusFilter="RUNNING"
            )
            for e in page["executions"]
        ]

    def run_builds(self, pause_at: str | None = None) -> None:
        """Run every execution the handlers started, as Step Functions would.

        A run that finishes is closed in moto; one paused at `pause_at` stays RUNNING.
        """
        sfn = self.clients.stepfunctions
        for arn in self.running():
            if arn in self.paused:
                continue
            described = sfn.describe_execution(executionArn=arn)
            execution_input = json.loads(described["input"])
            # The build's request, as the image resource's function stored it.
            key = f"{contract.WORK_PREFIX}{described['name']}/request.json"
            try:
                stored = self.clients.s3.get_object(
                    Bucket=os.environ[contract.ENV_EVIDENCE_BUCKET], Key=key
                )
                build = json.loads(stored["Body"].read())
            except self.clients.s3.exceptions.NoSuchKey:
                build = None
            if build is not None:
                # The build started when the custom resource answered.
                self.clock.now = float(build["deadline"]) - build["bound_seconds"] + DEADLINE_MARGIN
            context = {
                "Execution": {
                    "Id": arn,
                    "Name": described["name"],
                    "StartTime": described["startDate"].isoformat(),
                }
            }
            run = asl.run(
                self.definition,
                execution_input,
                self.invoke_step,
                self.clock,
                pause_at=pause_at,
                context=context,
            )
            self.runs.append(run)
            if run.status == "RUNNING":
                self.paused.add(arn)
            else:
                sfn.stop_execution(executionArn=arn, cause=f"finished in the test: {run.status}")

    # ----- resolving the template ---------------------------------------------------------
    def resolve(self, value: Any, waits: Mapping[str, str]) -> Any:
        if isinstance(value, dict):
            if "Ref" in value:
                return self.stack.physical[value["Ref"]]
            if "Fn::GetAtt" in value:
                logical, attribute = value["Fn::GetAtt"]
                if logical in waits and attribute == "Data":
                    return waits[logical]
                if attribute == "Arn":
                    return f"arn:aws:lambda:us-east-1:123456789012:function:{logical}"
                return self.stack.data[logical][attribute]
            return {k: self.resolve(v, waits) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, waits) for v in value]
        return value

    def wait_data(self, logical_id: str, resource: Mapping[str, Any]) -> str:
        handle_url = self.stack.physical[resource["Properties"]["Handle"]["Ref"]]
        signals = self.signals.received.get(handle_url, [])
        if not signals:
            raise DeployError(f"{logical_id}: WaitCondition timed out (no signal)")
        last = signals[-1]
        if last["Status"] != "SUCCESS":
            raise DeployError(f"{logical_id}: {last['Reason']}")
        return json.dumps({last["UniqueId"]: last["Data"]})

    # ----- deploy -----------------------------------------------------------------------------
    def deploy(self, template: Mapping[str, Any]) -> None:
        """Create or update the stack to `template`; roll back and re-raise on failure."""
        before = copy.deepcopy(self.stack)
        first = not self.stack.physical
        self._template = template
        self.stack_status("CREATE_IN_PROGRESS" if first else "UPDATE_IN_PROGRESS")
        new_resources = {k: v for k, v in template["Resources"].items() if v["Type"] in ORDER}
        old_resources = self.stack.template["Resources"]
        replaced: list[tuple[str, str, str, dict[str, Any]]] = []
        touched: list[str] = []
        waits: dict[str, str] = {
            k: v for k, v in self.stack.data.get("__waits__", {}).items() if k in new_resources
        }
        try:
            for resource_type in ORDER:
                for logical_id, resource in new_resources.items():
                    if resource["Type"] != resource_type:
                        continue
                    self._apply(logical_id, resource, old_resources, waits, replaced, touched)
        except (DeployError, BuildFailed, ValueError) as failure:
            self.stack_status("ROLLBACK_IN_PROGRESS" if first else "UPDATE_ROLLBACK_IN_PROGRESS")
            self._rollback(before, touched)
            raise DeployError(str(failure)) from failure
        # Cleanup: delete replaced physical resources, then removed resources.
        self.stack_status("CREATE_COMPLETE" if first else "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        for logical_id, resource_type, physical_id, props in replaced:
            self.send_event(
                "Delete", logical_id, resource_type, props, physical_id=physical_id, replaced=True
            )
        # Removed resources go in reverse dependency order (bundles before their images).
        removed = sorted(
            old_resources.items(),
            key=lambda item: -ORDER.index(item[1]["Type"]) if item[1]["Type"] in ORDER else 0,
        )
        for logical_id, resource in removed:
            if logical_id not in new_resources and resource["Type"].startswith("Custom::"):
                self.send_event(
                    "Delete",
                    logical_id,
                    resource["Type"],
                    self.stack.sent[logical_id],
                    physical_id=self.stack.physical[logical_id],
                )
        for logical_id in list(self.stack.physical):
            if logical_id not in new_resources:
                self.stack.physical.pop(logical_id)
                self.stack.sent.pop(logical_id, None)
        self.stack.data["__waits__"] = dict(waits)
        self.stack.template = copy.deepcopy(dict(template))
        self.stack_status("CREATE_COMPLETE" if first else "UPDATE_COMPLETE")

    def _apply(
        self,
        logical_id: str,
        resource: Mapping[str, Any],
        old_resources: Mapping[str, Any],
        waits: dict[str, str],
        replaced: list[tuple[str, str, str, dict[str, Any]]],
        touched: list[str],
    ) -> None:
        kind = resource["Type"]
        self.types[logical_id] = kind
        if kind == "AWS::SSM::Document":
            # CloudFormation names the document; the SSM fake reads its content from here.
            if (
                logical_id not in self.stack.physical
                or self.documents.get(self.stack.physical[logical_id])
                != resource["Properties"]["Content"]
            ):
                name = f"{logical_id}-{uuid.uuid4().hex[:12]}"
                self.stack.physical[logical_id] = name
                self.documents[name] = resource["Properties"]["Content"]
            self._configure_functions(logical_id)
            return
        if kind == "AWS::CloudFormation::WaitConditionHandle":
            self.stack.physical.setdefault(logical_id, handle_url(logical_id, self.stack_id))
            return
        if kind == "AWS::CloudFormation::WaitCondition":
            if logical_id not in waits:
                self.run_builds()
                waits[logical_id] = self.wait_data(logical_id, resource)
            return
        props = {
            k: self.resolve(v, waits)
            for k, v in resource["Properties"].items()
            if k not in ("ServiceToken",)
        }
        if logical_id not in old_resources:
            result = self.send_event("Create", logical_id, kind, props)
        else:
            old = self.stack.sent[logical_id]
            if stringify(props) == stringify(old):
                return
            old_physical = self.stack.physical[logical_id]
            try:
                result = self.send_event(
                    "Update", logical_id, kind, props, old_properties=old, physical_id=old_physical
                )
            except Exception:
                # CloudFormation rolls the failed resource back too: Update with its old props.
                self.stack.sent[logical_id] = props
                touched.append(logical_id)
                raise
            if result["PhysicalResourceId"] != old_physical:
                replaced.append((logical_id, kind, old_physical, old))
        touched.append(logical_id)
        self.stack.physical[logical_id] = result["PhysicalResourceId"]
        self.stack.sent[logical_id] = props
        self.stack.data[logical_id] = result.get("Data", {})

    def _configure_functions(self, logical_id: str) -> None:
        """The step function's environment names the stack's script document: where the
        template's function refers to this document, the runtime is given its name."""
        for resource in self._template.get("Resources", {}).values():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            variables = resource["Properties"].get("Environment", {}).get("Variables", {})
            if variables.get(contract.ENV_SCRIPT_DOCUMENT) == {"Ref": logical_id}:
                os.environ[contract.ENV_SCRIPT_DOCUMENT] = self.stack.physical[logical_id]

    def _rollback(self, before: Stack, touched: list[str]) -> None:
        for logical_id in reversed(touched):
            resource_type = self.types[logical_id]
            current_physical = self.stack.physical[logical_id]
            if before.physical.get(logical_id) == current_physical:
                # Updated in place: CloudFormation sends the old properties back.
                self.send_event(
                    "Update",
                    logical_id,
                    resource_type,
                    before.sent[logical_id],
                    old_properties=self.stack.sent[logical_id],
                    physical_id=current_physical,
                )
            else:
                # Created, or replaced (the old resource is untouched): delete the new one.
                self.send_event(
                    "Delete",
                    logical_id,
                    resource_type,
                    self.stack.sent[logical_id],
                    physical_id=current_physical,
                )
        self.stack = before

    def delete_stack(self) -> None:
        self.stack_status("DELETE_IN_PROGRESS")
        for resource_type in reversed(ORDER):
            for logical_id, resource in self.stack.template["Resources"].items():
                if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate"):
                    continue  # CloudFormation leaves it, and sends its handler nothing
                if resource["Type"] == resource_type and resource_type.startswith("Custom::"):
                    self.send_event(
                        "Delete",
                        logical_id,
                        resource_type,
                        self.stack.sent[logical_id],
                        physical_id=self.stack.physical[logical_id],
                    )
        self.stack = Stack()
