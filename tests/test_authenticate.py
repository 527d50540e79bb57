"""Every custom-resource event is checked with CloudFormation before anything is done.

A Lambda function can be invoked directly, and a stack's id is no secret: before, an event
naming the right StackId was enough for both runtimes (the image build's and the
distribution's) to create, update and delete WorkSpaces images and bundles. Each test here
sends a forged event with the CORRECT stack id and shows that it is refused with nothing
done (the fakes record every call), or that one CloudFormation does send is still acted on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from bakery_runtime.core import authenticate as auth
from bakery_runtime.core import contract
from bakery_runtime.core.aws import RETRY_CONFIG
from bakery_runtime.core.errors import BuildFailed
from bakery_runtime.core.events import ResourceEvent
from bakery_runtime.distribution import contract as dc
from bakery_runtime.distribution import provider as distribution
from bakery_runtime.image_build import custom_resource

from workspaces_image_bakery import ImageBakeryStack, ImageDesign
from workspaces_image_bakery.distribution.distribution import RegionalCopies

from .fakes.cloudformation_service import FakeCloudFormation, StackResource
from .fakes.workspaces_regions import HOME, WorkSpacesWorld
from .harness.cloudformation import STACK_ID
from .harness.stacks import two_personas
from .harness.world import World, world
from .test_distribution import IMAGE_NAME, OWNER, PERSONA_TAGS, TAGS, Deploy

# The calls that change something in WorkSpaces (every other call the fakes see is a read).
WRITES = ("Create", "Update", "Delete", "Copy", "Modify", "Rebuild", "Start", "Stop", "Import")


@pytest.fixture(autouse=True)
def _no_second_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused event is looked at again after 1 and 2 s in Lambda; not in the tests."""
    monkeypatch.setattr(auth, "RETRY_DELAYS", ())


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return two_personas()


@pytest.fixture
def updating(template: dict[str, Any]) -> Iterator[World]:
    """The stack deployed, then in an update of its own (CloudFormation at work elsewhere)."""
    with world(template) as w:
        w.cloudformation.deploy(template)
        w.cloudformation.stack_status("UPDATE_IN_PROGRESS")
        yield w


def _of_type(w: World, kind: str, persona: str) -> tuple[str, dict[str, Any], str]:
    cfn = w.cloudformation
    logical = next(k for k, t in cfn.types.items() if t == kind and persona in k)
    return logical, dict(cfn.stack.sent[logical]), cfn.stack.physical[logical]


def _event(
    request: str,
    logical: str,
    kind: str,
    properties: dict[str, Any],
    physical: str | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request,
        "ResourceType": kind,
        "LogicalResourceId": logical,
        "StackId": STACK_ID,  # the right stack
        "RequestId": "forged",
        "ResponseURL": "https://attacker.example/response",
        "ResourceProperties": properties,
    }
    if physical is not None:
        event["PhysicalResourceId"] = physical
    if old is not None:
        event["OldResourceProperties"] = old
    return event


def _writes(w: World) -> list[str]:
    return [op for op, _ in w.fake.calls if op.startswith(WRITES)]


def _forged(w: World, case: str) -> tuple[dict[str, Any], str]:
    """A forged event with the right stack id, and what the refusal must name."""
    bundle, bundle_props, bundle_id = _of_type(w, contract.BUNDLE_RESOURCE_TYPE, "Developer")
    image, image_props, image_name = _of_type(w, contract.IMAGE_RESOURCE_TYPE, "Developer")
    _, _, office_bundle = _of_type(w, contract.BUNDLE_RESOURCE_TYPE, "Office")
    new_recipe = {**image_props, contract.IMAGE_NAME: "developer-6.6.6-0000beef"}
    return {
        "wrong logical id": (
            _event("Create", "Forged", contract.IMAGE_RESOURCE_TYPE, new_recipe),
            "the stack has no resource Forged",
        ),
        "wrong resource type": (
            _event("Delete", image, contract.BUNDLE_RESOURCE_TYPE, bundle_props, image_name),
            f"is a {contract.IMAGE_RESOURCE_TYPE}, not a {contract.BUNDLE_RESOURCE_TYPE}",
        ),
        "wrong physical id (Delete)": (
            _event("Delete", bundle, contract.BUNDLE_RESOURCE_TYPE, bundle_props, office_bundle),
            f"has physical id {bundle_id}, not {office_bundle}",
        ),
        "wrong physical id (Update)": (
            _event(
                "Update",
                image,
                contract.IMAGE_RESOURCE_TYPE,
                new_recipe,
                "developer-0.0.1-00000000",
                image_props,
            ),
            f"has physical id {image_name}, not developer-0.0.1-00000000",
        ),
        "a Create of a resource that exists": (
            _event("Create", image, contract.IMAGE_RESOURCE_TYPE, new_recipe),
            "is UPDATE_COMPLETE, not being created",
        ),
        "everything right, but CloudFormation is not working on it": (
            _event("Delete", bundle, contract.BUNDLE_RESOURCE_TYPE, bundle_props, bundle_id),
            "is UPDATE_COMPLETE, not being deleted",
        ),
    }[case]


@pytest.mark.parametrize(
    "case",
    [
        "wrong logical id",
        "wrong resource type",
        "wrong physical id (Delete)",
        "wrong physical id (Update)",
        "a Create of a resource that exists",
        "everything right, but CloudFormation is not working on it",
    ],
)
def test_a_forged_event_with_the_right_stack_id_does_nothing(updating: World, case: str) -> None:
    """Proves the image build's on_event acts only on what CloudFormation is doing: a
    forged event naming the right stack id but a logical id, type, physical id or request
    CloudFormation is not working on is refused before any WorkSpaces or Step Functions
    call. Before, each of them built, re-pointed or deleted images and bundles."""
    w = updating
    event, why = _forged(w, case)
    calls, running = len(w.fake.calls), w.cloudformation.running()
    with pytest.raises(BuildFailed, match="refusing the") as refused:
        custom_resource.dispatch(event, w.clients)
    assert why in str(refused.value)
    assert "nothing was done" in str(refused.value)
    assert w.fake.calls[calls:] == []
    assert w.cloudformation.running() == running  # no build started


def test_a_forged_event_while_the_stack_is_not_in_an_operation_does_nothing(
    template: dict[str, Any],
) -> None:
    """Proves an event that matches the stack's resource exactly (logical id, type,
    physical id) is refused while the stack is UPDATE_COMPLETE: CloudFormation sends
    requests only during an operation. Before, it deleted the bundle."""
    with world(template) as w:
        w.cloudformation.deploy(template)
        assert w.cloudformation.status.status == "CREATE_COMPLETE"
        w.cloudformation.stack_status("UPDATE_COMPLETE")
        bundle, props, bundle_id = _of_type(w, contract.BUNDLE_RESOURCE_TYPE, "Developer")
        # Even with the record as it would be mid-delete: the stack's status decides first.
        w.cloudformation.working[bundle] = StackResource(
            contract.BUNDLE_RESOURCE_TYPE, "DELETE_IN_PROGRESS", bundle_id
        )
        calls = len(w.fake.calls)
        event = _event("Delete", bundle, contract.BUNDLE_RESOURCE_TYPE, props, bundle_id)
        with pytest.raises(BuildFailed, match="the stack is UPDATE_COMPLETE"):
            custom_resource.dispatch(event, w.clients)
        assert w.fake.calls[calls:] == []
        assert bundle_id in w.fake.bundles


def test_the_same_event_sent_by_cloudformation_is_acted_on(updating: World) -> None:
    """The control: the Delete refused above, sent while CloudFormation deletes that
    resource (its record DELETE_IN_PROGRESS), deletes the bundle."""
    w = updating
    bundle, props, bundle_id = _of_type(w, contract.BUNDLE_RESOURCE_TYPE, "Developer")
    w.cloudformation.send_event(
        "Delete", bundle, contract.BUNDLE_RESOURCE_TYPE, props, physical_id=bundle_id
    )
    assert bundle_id not in w.fake.bundles
    assert "DeleteWorkspaceBundle" in _writes(w)


# ----- the distribution provider --------------------------------------------------------
@pytest.fixture
def distributed() -> tuple[Deploy, WorkSpacesWorld, str]:
    """A regional copy deployed in Ireland; the stack then in an update of its own."""
    world_ = WorkSpacesWorld()
    home_image = world_.fake(HOME).add_image(IMAGE_NAME, tags={OWNER: STACK_ID})
    deploy = Deploy(world_)
    props = {
        dc.REGION: "eu-west-1",
        dc.SOURCE_IMAGE_ID: home_image,
        dc.SOURCE_IMAGE_NAME: IMAGE_NAME,
    }
    deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, props)
    return deploy, world_, deploy.physical["CopyEu"]


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("wrong logical id", "the stack has no resource Forged"),
        ("wrong resource type", f"not a {dc.SHARE_RESOURCE_TYPE}"),
        ("wrong physical id", "not wsi-"),
        ("stack not in an operation", "the stack is UPDATE_COMPLETE"),
    ],
)
def test_the_distribution_provider_refuses_forged_events(
    distributed: tuple[Deploy, WorkSpacesWorld, str], case: str, why: str
) -> None:
    """Proves the distribution provider (on_event and is_complete) checks each event with
    CloudFormation as the image build's does: before, a forged Delete with the right stack
    id deleted the stack's regional copy, and a forged is_complete re-tagged it."""
    deploy, world_, copy_id = distributed
    ireland = world_.fake("eu-west-1")
    other = ireland.add_image("not-this-resource", tags={OWNER: STACK_ID})
    props = deploy.properties["CopyEu"]
    logical, kind, physical = {
        "wrong logical id": ("Forged", dc.COPY_RESOURCE_TYPE, copy_id),
        "wrong resource type": ("CopyEu", dc.SHARE_RESOURCE_TYPE, copy_id),
        "wrong physical id": ("CopyEu", dc.COPY_RESOURCE_TYPE, other),
        "stack not in an operation": ("CopyEu", dc.COPY_RESOURCE_TYPE, copy_id),
    }[case]
    if case == "stack not in an operation":
        deploy.cloudformation.status = "UPDATE_COMPLETE"
    forged = _event("Delete", logical, kind, props, physical)
    calls = {region: len(world_.fake(region).calls) for region in (HOME, "eu-west-1")}
    for entry in (distribution.dispatch, distribution.check):
        with pytest.raises(BuildFailed, match="refusing the") as refused:
            entry(forged, deploy.clients)
        assert why in str(refused.value)
    update = _event("Update", logical, kind, {**props, "Tags": json.dumps([])}, physical, props)
    with pytest.raises(BuildFailed, match="refusing the"):
        distribution.check(update, deploy.clients)
    for region, count in calls.items():
        assert world_.fake(region).calls[count:] == []
    assert copy_id in ireland.images and other in ireland.images


# ----- the Deletes whose physical id the record does not hold ---------------------------------
def _stand_in(status: str, record: StackResource | None) -> FakeCloudFormation:
    cfn = FakeCloudFormation(STACK_ID)
    cfn.status = status
    cfn.describe = lambda logical: record if logical == "Image" else None
    return cfn


def _delete(physical: str) -> ResourceEvent:
    return ResourceEvent.parse(
        _event("Delete", "Image", contract.IMAGE_RESOURCE_TYPE, {}, physical)
    )


def test_a_replaced_resource_is_deleted_in_cleanup_only_when_this_update_named_it() -> None:
    """The cleanup after a replacement deletes the old physical id while the logical id
    names the new one: believed when the stack's events of this update name the old id
    for that resource, refused for an id only an earlier operation (or none) named."""
    cfn = _stand_in(
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        StackResource(contract.IMAGE_RESOURCE_TYPE, "UPDATE_COMPLETE", "image-2"),
    )
    cfn.event("Image", contract.IMAGE_RESOURCE_TYPE, "CREATE_COMPLETE", "image-0")
    cfn.stack_event("UPDATE_IN_PROGRESS")  # an earlier update replaced image-0 ...
    cfn.event("Image", contract.IMAGE_RESOURCE_TYPE, "UPDATE_COMPLETE", "image-1")
    cfn.stack_event("UPDATE_COMPLETE")
    cfn.stack_event("UPDATE_IN_PROGRESS")  # ... this one replaces image-1
    cfn.event("Image", contract.IMAGE_RESOURCE_TYPE, "UPDATE_IN_PROGRESS", "image-1")
    cfn.event("Image", contract.IMAGE_RESOURCE_TYPE, "UPDATE_COMPLETE", "image-2")
    cfn.stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    client = cfn.client(RETRY_CONFIG)
    auth.authenticate(_delete("image-1"), client)
    for physical in ("image-0", "someone-elses"):
        with pytest.raises(BuildFailed, match=f"has physical id image-2, not {physical}"):
            auth.authenticate(_delete(physical), client)
    # Outside a cleanup, the same evidence is not enough.
    cfn.status = "UPDATE_IN_PROGRESS"
    with pytest.raises(BuildFailed, match="has physical id image-2, not image-1"):
        auth.authenticate(_delete("image-1"), client)


def test_a_create_given_up_on_is_deleted_by_a_rollback_only() -> None:
    """CloudFormation gives up on a Create when another resource fails first and deletes
    it with a physical id of its own making; the record has none. Believed while the
    stack rolls back, refused in any other operation."""
    record = StackResource(contract.IMAGE_RESOURCE_TYPE, "DELETE_IN_PROGRESS", None)
    auth.authenticate(
        _delete("Stack-Image-ABC123"), _stand_in("ROLLBACK_IN_PROGRESS", record).client()
    )
    with pytest.raises(BuildFailed, match="has physical id none, not Stack-Image-ABC123"):
        auth.authenticate(
            _delete("Stack-Image-ABC123"), _stand_in("UPDATE_IN_PROGRESS", record).client()
        )


def test_is_complete_of_a_replacing_update_is_not_held_to_the_old_physical_id() -> None:
    """The provider framework passes is_complete the event merged with on_event's answer:
    an Update that replaces carries the new physical id, which CloudFormation records only
    once the resource answers. on_event with that id is refused; is_complete is not."""
    cfn = FakeCloudFormation(STACK_ID)
    cfn.status = "UPDATE_IN_PROGRESS"
    cfn.describe = lambda logical: StackResource(
        dc.COPY_RESOURCE_TYPE, "UPDATE_IN_PROGRESS", "wsi-old0000001"
    )
    event = ResourceEvent.parse(
        _event("Update", "Image", dc.COPY_RESOURCE_TYPE, {}, "wsi-new0000001", {})
    )
    auth.authenticate(event, cfn.client(), waiter=True)
    with pytest.raises(BuildFailed, match="has physical id wsi-old0000001, not wsi-new0000001"):
        auth.authenticate(event, cfn.client())


def test_a_refusal_is_looked_at_again_before_it_is_final(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read of CloudFormation's just after it began may lag: the event is looked at
    again after RETRY_DELAYS before it is refused."""
    monkeypatch.setattr(auth, "RETRY_DELAYS", (1.0, 2.0))
    answers = iter(
        [None, None, StackResource(contract.IMAGE_RESOURCE_TYPE, "CREATE_IN_PROGRESS", None)]
    )
    cfn = FakeCloudFormation(STACK_ID)
    cfn.status = "CREATE_IN_PROGRESS"
    cfn.describe = lambda logical: next(answers)
    slept: list[float] = []
    event = ResourceEvent.parse(_event("Create", "Image", contract.IMAGE_RESOURCE_TYPE, {}))
    auth.authenticate(event, cfn.client(), sleep=slept.append)
    assert slept == [1.0, 2.0]


# ----- the grants ------------------------------------------------------------------------------
def test_both_providers_may_read_their_own_stack_only(template: dict[str, Any]) -> None:
    """The image build's on_event role and the distribution provider's role may describe
    the stack, its resources and its events, on the stack's own ARN only."""
    wanted = {
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackResource",
        "cloudformation:DescribeStackEvents",
    }
    for synthesized, role_start in (
        (template, "WorkSpacesImageBakeryRuntimeOnEventServiceRole"),
        (_distributed(), "WorkSpacesImageBakeryRuntimeDistributionHandlerRole"),
    ):
        roles = [
            k
            for k, r in synthesized["Resources"].items()
            if k.startswith(role_start) and r["Type"] == "AWS::IAM::Role"
        ]
        assert len(roles) == 1, (role_start, roles)
        statements = [
            s
            for r in synthesized["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": roles[0]} in r["Properties"]["Roles"]
            for s in r["Properties"]["PolicyDocument"]["Statement"]
        ]
        granted = [
            s
            for s in statements
            if any(str(a).startswith("cloudformation:") for a in _list(s["Action"]))
        ]
        assert {a for s in granted for a in _list(s["Action"])} >= wanted
        for statement in granted:
            assert statement["Resource"] == {"Ref": "AWS::StackId"}, statement


def _distributed() -> dict[str, Any]:
    app = cdk.App()
    stack = ImageBakeryStack(app, "Dist", tag_defaults=TAGS)
    persona = stack.add_persona(
        "P",
        name="p",
        design=ImageDesign.FULLY_BAKED,
        image_version="1",
        template_workspace_id="ws-abcdefgh1",
        tags=PERSONA_TAGS,
    )
    RegionalCopies(
        stack,
        "Copies",
        image=persona.image,
        regions=["eu-west-1"],
        bundle_base_name="p",
        bundle_description="p persona bundle",
        tags={"Role": "r"},
    )
    return dict(Template.from_stack(stack).to_json())


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
