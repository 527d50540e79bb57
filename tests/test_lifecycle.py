"""Create, update, tag-only update, rollback and delete, driven from synthesized templates.

The custom resources' properties come from the templates exactly as CloudFormation sends
them (every scalar a string); the build runs through the deployed state machine
definition; WorkSpaces is the stateful fake behind a real boto3 client.
"""

from __future__ import annotations

from typing import Any

import pytest
from bakery_runtime.core import contract

from .harness.cloudformation import DeployError
from .harness.stacks import two_personas
from .harness.world import World, world


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    return {
        "v1": two_personas(),
        "v2": two_personas(developer_version="1.1.0"),
        "v2-test": two_personas(developer_version="1.1.0", stage="test"),
        "v3": two_personas(developer_version="1.2.0", office_version="1.1.0", stage="test"),
    }


def image_of(w: World, persona: str) -> str:
    (bundle,) = [b for name, b in w.bundles().items() if name.startswith(f"{persona}-")]
    image: str = bundle["image"]
    return image


def test_create_update_tags_rollback_delete(templates: dict[str, dict[str, Any]]) -> None:
    with world(templates["v1"]) as w:
        cfn = w.cloudformation
        # ----- create
        cfn.deploy(templates["v1"])
        images = w.images()
        assert sorted(images) == sorted(
            n for n in images if n.startswith(("developer-1.0.0-", "office-1.0.0-"))
        )
        assert len(images) == 2
        assert all(i["state"] == "AVAILABLE" for i in images.values())
        bundles = w.bundles()
        assert len(bundles) == 2
        assert image_of(w, "developer").startswith("developer-1.0.0-")
        assert image_of(w, "office").startswith("office-1.0.0-")
        dev_image = next(i for n, i in images.items() if n.startswith("developer"))
        assert dev_image["tags"] == {
            "Name": "developer",
            "Version": "1.0.0",
            "Software": "git 2.47 / puppet-agent 8",
            "Role": "development",
            "Project": "desktops",
            "CostCenter": "cc-1",
            "Stage": "dev",
            "Confidentiality": "internal",
            "System": "engineering",
        }
        assert all(b["tags"]["Stage"] == "dev" for b in bundles.values())
        assert w.fake.count("CreateWorkspaceImage") == 2
        bundle_ids = {name: b["id"] for name, b in bundles.items()}

        # ----- an unrelated redeploy changes nothing
        calls = len(w.fake.calls)
        cfn.deploy(templates["v1"])
        assert len(w.fake.calls) == calls

        # ----- new image version for one persona
        first_developer = image_of(w, "developer")
        cfn.deploy(templates["v2"])
        assert w.fake.count("CreateWorkspaceImage") == 3
        assert image_of(w, "developer").startswith("developer-1.1.0-")
        assert image_of(w, "office").startswith("office-1.0.0-")
        assert {n: b["id"] for n, b in w.bundles().items()} == bundle_ids  # updated in place
        assert sorted(w.images()) == sorted(
            [image_of(w, "developer"), image_of(w, "office"), first_developer]
        )  # the replaced image is retained after the update: a way back
        retained_id = w.images()[first_developer]["id"]
        assert contract.RETAINED_TAG_KEY in w.fake.tags[retained_id]
        assert w.fake.count("UpdateWorkspaceBundle") == 1

        # ----- a tag-only change: no image build, tags updated in place
        cfn.deploy(templates["v2-test"])
        assert w.fake.count("CreateWorkspaceImage") == 3
        in_use = {p: image_of(w, p) for p in ("developer", "office")}
        assert all(w.images()[name]["tags"]["Stage"] == "test" for name in in_use.values())
        assert w.images()[first_developer]["tags"]["Stage"] == "dev"  # as it was released
        assert all(b["tags"]["Stage"] == "test" for b in w.bundles().values())
        assert {n: b["id"] for n, b in w.bundles().items()} == bundle_ids
        before_rollback = dict(in_use)

        # ----- an update that CloudFormation rolls back after one bundle moved
        w.fake.fail("UpdateWorkspaceBundle", "AccessDeniedException", "denied", after=1)
        with pytest.raises(DeployError, match="AccessDeniedException"):
            cfn.deploy(templates["v3"])
        assert {p: image_of(w, p) for p in ("developer", "office")} == before_rollback
        assert sorted(w.images()) == sorted([*before_rollback.values(), first_developer])
        assert all(w.images()[n]["tags"]["Stage"] == "test" for n in before_rollback.values())

        # ----- delete
        cfn.delete_stack()
        assert w.images() == {}
        assert w.bundles() == {}


def test_failed_build_reports_the_image_error_and_keeps_the_bundle(
    templates: dict[str, dict[str, Any]],
) -> None:
    with world(templates["v1"]) as w:
        w.cloudformation.deploy(templates["v1"])
        previous = image_of(w, "developer")
        w.fake.image_ends_in_error("InsufficientDiskSpace", "Root volume is 98% full")
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(templates["v2"])
        message = str(failure.value)
        assert "persona developer" in message
        assert "InsufficientDiskSpace" in message
        assert "Root volume is 98% full" in message
        assert image_of(w, "developer") == previous
        assert all(i["state"] == "AVAILABLE" for i in w.images().values())
        assert len(w.images()) == 2


def test_retried_create_event_makes_one_build(templates: dict[str, dict[str, Any]]) -> None:
    with world(templates["v1"]) as w:
        cfn = w.cloudformation
        image = next(
            (k, v)
            for k, v in templates["v1"]["Resources"].items()
            if v["Type"] == "Custom::WorkSpacesImage"
        )
        props = {
            k: ("https://signal.example/handle" if k == "WaitHandle" else v)
            for k, v in image[1]["Properties"].items()
            if k != "ServiceToken"
        }
        first = cfn.send_event(
            "Create", image[0], "Custom::WorkSpacesImage", props, request_id="r1"
        )
        again = cfn.send_event(
            "Create", image[0], "Custom::WorkSpacesImage", props, request_id="r1"
        )
        assert first["PhysicalResourceId"] == again["PhysicalResourceId"]
        executions = w.clients.stepfunctions.list_executions(stateMachineArn=cfn.state_machine_arn)[
            "executions"
        ]
        assert len(executions) == 1
        cfn.run_builds()
        assert w.fake.count("CreateWorkspaceImage") == 1
