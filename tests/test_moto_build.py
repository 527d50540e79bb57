"""The build workflow against moto's WorkSpaces, which implements every call the build makes
(DescribeWorkspaces, CreateWorkspaceImage, DescribeWorkspaceImages, DescribeTags)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from bakery_runtime.core import contract
from bakery_runtime.core.aws import RETRY_CONFIG, Clients
from bakery_runtime.core.errors import BuildFailed
from bakery_runtime.image_build import request
from bakery_runtime.image_build import steps as build_steps
from bakery_runtime.image_build.request import BuildRequest
from moto import mock_aws

from .harness import asl
from .harness.cloudformation import STACK_ID, Signals, handle_url
from .harness.stacks import two_personas
from .harness.world import state_machine


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return asl.definition_from_template(state_machine(two_personas()))


@pytest.fixture
def moto_workspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Clients, str]]:
    with mock_aws():
        # The evidence store, in moto's S3 (the build writes its record there).
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="evidence")
        monkeypatch.setenv(contract.ENV_EVIDENCE_BUCKET, "evidence")
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}"
            )["Subnet"]["SubnetId"]
            for i, z in ((1, "a"), (2, "b"))
        ]
        directory = boto3.client("ds").create_directory(
            Name="corp.example.com",
            Password="Passw0rd!x",
            Size="Small",
            VpcSettings={"VpcId": vpc, "SubnetIds": subnets},
        )["DirectoryId"]
        workspaces = boto3.client("workspaces", config=RETRY_CONFIG)
        workspaces.register_workspace_directory(DirectoryId=directory)
        created = workspaces.create_workspaces(
            Workspaces=[
                {"DirectoryId": directory, "UserName": "builder", "BundleId": "wsb-0123456789"}
            ]
        )
        workspace_id = created["PendingRequests"][0]["WorkspaceId"]
        yield (
            Clients(workspaces=workspaces, stepfunctions=boto3.client("stepfunctions"), s3=s3),
            workspace_id,
        )


def build_for(workspace_id: str) -> BuildRequest:
    return BuildRequest(
        image_name="developer-1.0.0-0123abcd",
        description="developer thin image version 1.0.0",
        template_workspace_id=workspace_id,
        persona="developer",
        tags={"Name": "developer", "Version": "1.0.0"},
        deadline=10_000,
        bound_seconds=21_600,
        wait_handle=handle_url("Moto"),
    )


def test_the_deployed_workflow_builds_an_image_in_moto(
    moto_workspace: tuple[Clients, str], definition: dict[str, Any]
) -> None:
    clients, workspace_id = moto_workspace
    signals = Signals()

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        return build_steps.run_step(payload, clients, now=0, send=signals.send)

    # The image resource's function stores the request under the execution's name (asl.run
    # names its execution "local"); the input says nothing the workflow reads.
    request.save(clients.s3, "local", build_for(workspace_id))
    run = asl.run(definition, {"Persona": "developer"}, invoke, asl.Clock(0))
    assert run.status == "SUCCEEDED"
    (signal,) = signals.received[handle_url("Moto")]
    assert signal["Status"] == "SUCCESS"
    image_id = signal["Data"]
    (image,) = clients.workspaces.describe_workspace_images(ImageIds=[image_id])["Images"]
    assert image["Name"] == "developer-1.0.0-0123abcd"
    tags = {
        t["Key"]: t["Value"]
        for t in clients.workspaces.describe_tags(ResourceId=image_id)["TagList"]
    }
    assert tags[contract.OWNER_TAG_KEY] == STACK_ID
    assert tags["Version"] == "1.0.0"

    # A retried create step of the same execution adopts its image instead of making a
    # second one (asl.run's execution is named "local").
    again = build_steps.run_step(
        {
            "Step": contract.STEP_CREATE_IMAGE,
            "Build": build_for(workspace_id).to_input(),
            "Execution": "local",
        },
        clients,
        now=0,
    )
    assert again == {
        "ImageId": image_id,
        "Status": contract.STATUS_CREATED,
        "WaitSeconds": contract.FIRST_IMAGE_WAIT_SECONDS,
    }
    assert len(clients.workspaces.describe_workspace_images()["Images"]) == 1


def test_a_missing_template_fails_with_its_id(moto_workspace: tuple[Clients, str]) -> None:
    clients, _ = moto_workspace
    with pytest.raises(BuildFailed, match=r"ws-doesnotexist1 does not exist"):
        build_steps.run_step(
            {
                "Step": contract.STEP_CHECK_TEMPLATE,
                "Build": build_for("ws-doesnotexist1").to_input(),
            },
            clients,
            now=0,
        )


def test_build_input_round_trips_through_json() -> None:
    build = build_for("ws-abcdefgh1")
    assert BuildRequest.from_input(json.loads(json.dumps(build.to_input()))) == build
