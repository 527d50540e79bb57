"""A WorkSpaces fake, moto's Step Functions and the CloudFormation stand-in, wired together."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from bakery_runtime.core import contract
from bakery_runtime.core.aws import RETRY_CONFIG, Clients
from moto import mock_aws

from ..fakes.cloudformation_service import FakeCloudFormation
from ..fakes.inspector_scan_service import FakeInspectorScan
from ..fakes.monitoring_service import FakeMonitoring
from ..fakes.ssm_service import INVENTORY_DOCUMENT, MARKER_DOCUMENT, FakeSSM
from ..fakes.workspaces_service import OWNER_TAG, FakeWorkSpaces
from . import asl
from .cloudformation import STACK_ID, CloudFormation

TEMPLATE_IDS = ("ws-dev0template1", "ws-off0template1", "ws-con0template1")
EVIDENCE_BUCKET = "bakery-evidence-fake"


@dataclass
class World:
    fake: FakeWorkSpaces
    cloudformation: CloudFormation
    clients: Clients
    ssm: FakeSSM
    monitoring: FakeMonitoring
    inspector: FakeInspectorScan

    def owned(self, resource_id: str) -> bool:
        return self.fake.tags.get(resource_id, {}).get(OWNER_TAG) == self.cloudformation.stack_id

    def images(self) -> dict[str, dict[str, Any]]:
        """The stack's images by name: state and tags (without the ownership tag)."""
        return {
            i.name: {"id": i.image_id, "state": i.state, "tags": self.tags_of(i.image_id)}
            for i in self.fake.images.values()
            if self.owned(i.image_id)
        }

    def bundles(self) -> dict[str, dict[str, Any]]:
        """The stack's bundles by name: id, image name, compute type and tags."""
        return {
            b.name: {
                "id": b.bundle_id,
                "image": self.fake.images[b.image_id].name
                if b.image_id in self.fake.images
                else None,
                "compute": b.compute_type,
                "tags": self.tags_of(b.bundle_id),
            }
            for b in self.fake.bundles.values()
            if self.owned(b.bundle_id)
        }

    def tags_of(self, resource_id: str) -> dict[str, str]:
        tags = dict(self.fake.tags.get(resource_id, {}))
        for key in contract.LIBRARY_TAG_KEYS:  # the library's own records
            tags.pop(key, None)
        owner = tags.pop(OWNER_TAG, None)
        assert owner == self.cloudformation.stack_id, f"{resource_id} lacks the ownership tag"
        return tags


def state_machine(template: Mapping[str, Any]) -> dict[str, Any]:
    machines = [
        r
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and k.startswith("WorkSpacesImageBakeryRuntime")  # the build's (not a rollout's)
    ]
    assert len(machines) == 1
    machine: dict[str, Any] = machines[0]
    return machine


@contextmanager
def world(
    template: Mapping[str, Any],
    *,
    foreign: bool = False,
    fake: FakeWorkSpaces | None = None,
    stack_id: str = STACK_ID,
    **fake_options: Any,
) -> Iterator[World]:
    """Everything a deploy of `template` talks to, with the template WorkSpaces AVAILABLE.

    With `foreign`, the account also holds an image and a bundle the stack did not create.
    With `fake`, the WorkSpaces account of an earlier world (a stack created again); with
    `stack_id`, the stack and the runtime's configured owner have that id.
    """
    with mock_aws():
        fake = fake or FakeWorkSpaces(**fake_options)
        for workspace_id in TEMPLATE_IDS:
            fake.add_workspace(workspace_id)
        if foreign:
            fake.add_foreign()
        sfn = boto3.client("stepfunctions", region_name="us-east-1", config=RETRY_CONFIG)
        definition = asl.definition_from_template(state_machine(template))
        arn = sfn.create_state_machine(
            name="ImageBuild",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/ImageBuild",
        )["stateMachineArn"]
        previous = os.environ.get(contract.ENV_STATE_MACHINE_ARN)
        previous_owner = os.environ.get(contract.ENV_OWNER_STACK_ID)
        os.environ[contract.ENV_STATE_MACHINE_ARN] = arn
        os.environ[contract.ENV_OWNER_STACK_ID] = stack_id
        os.environ[contract.ENV_MARKER_DOCUMENT] = MARKER_DOCUMENT
        os.environ[contract.ENV_INVENTORY_DOCUMENT] = INVENTORY_DOCUMENT
        os.environ[contract.ENV_EVIDENCE_BUCKET] = EVIDENCE_BUCKET
        s3 = boto3.client("s3", region_name="us-east-1", config=RETRY_CONFIG)
        s3.create_bucket(Bucket=EVIDENCE_BUCKET)
        stack = FakeCloudFormation(stack_id)
        stack.state_machine_arn = arn
        stack.evidence_bucket = EVIDENCE_BUCKET
        documents: dict[str, Any] = {}
        ssm = FakeSSM(fake, documents, s3=s3)
        monitoring = FakeMonitoring()
        inspector = FakeInspectorScan()
        clients = Clients(
            workspaces=fake.client(RETRY_CONFIG),
            stepfunctions=sfn,
            cloudformation=stack.client(RETRY_CONFIG),
            ssm=ssm.client(RETRY_CONFIG),
            events=monitoring.events_client(RETRY_CONFIG),
            cloudwatch=monitoring.cloudwatch_client(RETRY_CONFIG),
            inspector_scan=inspector.client(RETRY_CONFIG),
            s3=s3,
        )
        cloudformation = CloudFormation(clients, arn, definition, stack, stack_id)
        cloudformation.documents = documents
        try:
            yield World(fake, cloudformation, clients, ssm, monitoring, inspector)
        finally:
            os.environ[contract.ENV_OWNER_STACK_ID] = previous_owner or STACK_ID
            if previous is None:
                os.environ.pop(contract.ENV_STATE_MACHINE_ARN, None)
            else:
                os.environ[contract.ENV_STATE_MACHINE_ARN] = previous
