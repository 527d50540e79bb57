"""Hardening: nothing the runtime did not check itself is trusted, rollbacks have no side
effects, builds never hang, and what is kept on delete is said where operators look.

Each test drives the real handlers (and, where a deploy is involved, the deployed workflow
definition) against the botocore-validated WorkSpaces fake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import pytest
from bakery_runtime.core import contract
from bakery_runtime.core.errors import BuildFailed
from bakery_runtime.image_build import request
from bakery_runtime.image_build import steps as build_steps
from bakery_runtime.image_build import watch as build_watch

from .fakes.workspaces_service import OWNER_TAG, Image
from .harness import invariants
from .harness.cloudformation import STACK_ID, DeployError, handle_url
from .harness.stacks import two_personas
from .harness.world import World, world

Templates = dict[str, dict[str, Any]]
OTHER_STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/WorkSpacesImageBakery/9999-0000"


@pytest.fixture(scope="module")
def templates() -> Templates:
    return {
        "v1": two_personas(),
        "v2": two_personas(developer_version="1.1.0"),
        "shared": two_personas(office_template="ws-dev0template1"),
        "retain": two_personas(removal_policy=cdk.RemovalPolicy.RETAIN),
    }


@pytest.fixture
def deployed(templates: Templates) -> Iterator[World]:
    with world(templates["v1"], foreign=True) as w:
        w.cloudformation.deploy(templates["v1"])
        yield w


def _bundle_event(w: World, persona: str) -> tuple[str, dict[str, Any], str]:
    cfn = w.cloudformation
    logical = next(
        k for k, t in cfn.types.items() if t == contract.BUNDLE_RESOURCE_TYPE and persona in k
    )
    return logical, dict(cfn.stack.sent[logical]), cfn.stack.physical[logical]


def _image_named(w: World, prefix: str) -> Image:
    return next(i for i in w.fake.images.values() if i.name.startswith(prefix))


# ----- trust: the bundle checks the image it is given ---------------------------------------
@pytest.mark.parametrize(
    "case", ["foreign", "other-persona", "missing", "pending", "other-account"]
)
def test_a_bundle_refuses_an_image_it_did_not_build(deployed: World, case: str) -> None:
    w = deployed
    logical, props, bundle_id = _bundle_event(w, "Developer")
    office = _image_named(w, "office-")
    foreign = next(i for i in w.fake.images.values() if not w.owned(i.image_id))
    image_id = {
        "foreign": foreign.image_id,
        "other-persona": office.image_id,
        "missing": "wsi-000000999x",
        "pending": office.image_id,
        "other-account": office.image_id,
    }[case]
    if case == "pending":
        office.state, office.polls_left = "PENDING", 100
        props[contract.EXPECTED_IMAGE_NAME] = office.name
    if case == "other-account":
        office.owner_account = "210987654321"
        props[contract.EXPECTED_IMAGE_NAME] = office.name
    before = w.fake.bundles[bundle_id].image_id
    forged = {**props, contract.IMAGE_BUILD_RESULT: json.dumps({"image": image_id})}
    with pytest.raises(BuildFailed) as refused:
        w.cloudformation.send_event(
            "Update", logical, contract.BUNDLE_RESOURCE_TYPE, forged, props, bundle_id
        )
    message = str(refused.value)
    assert f"refusing image {image_id}" in message
    why = {
        "foreign": "is named someone-elses-image",
        "other-persona": f"is named {office.name}, not {props[contract.EXPECTED_IMAGE_NAME]}",
        "missing": "does not exist",
        "pending": "is PENDING, not AVAILABLE",
        "other-account": "belongs to account 210987654321",
    }[case]
    assert why in message
    assert w.fake.bundles[bundle_id].image_id == before
    assert w.fake.count("UpdateWorkspaceBundle") == 0


def test_a_signal_without_the_ownership_tag_is_refused_even_when_the_name_matches(
    deployed: World,
) -> None:
    w = deployed
    _, props, bundle_id = _bundle_event(w, "Developer")
    image = _image_named(w, "developer-")
    del w.fake.tags[image.image_id][OWNER_TAG]
    with pytest.raises(BuildFailed, match="does not carry this stack's ownership tag"):
        w.cloudformation.send_event(
            "Create", "Again", contract.BUNDLE_RESOURCE_TYPE, {**props, "BundleName": "again-1"}
        )
    assert w.fake.count("CreateWorkspaceBundle") == 2  # the two of the first deploy only
    assert bundle_id in w.fake.bundles


def test_a_bundle_rolled_back_to_a_deleted_image_says_so(deployed: World) -> None:
    w = deployed
    logical, props, bundle_id = _bundle_event(w, "Developer")
    current = w.fake.bundles[bundle_id].image_id
    # Rolled back to an earlier image that was deleted meanwhile.
    earlier = {
        **props,
        contract.IMAGE_BUILD_RESULT: json.dumps({"image": "wsi-000000777x"}),
        contract.EXPECTED_IMAGE_NAME: "developer-0.9.0-0000aaaa",
    }
    with pytest.raises(BuildFailed) as refused:
        w.cloudformation.send_event(
            "Update", logical, contract.BUNDLE_RESOURCE_TYPE, earlier, props, bundle_id
        )
    message = str(refused.value)
    assert "refusing image wsi-000000777x" in message
    assert "wsi-000000777x (developer-0.9.0-0000aaaa) does not exist: it was deleted" in message
    assert w.fake.bundles[bundle_id].image_id == current


# ----- trust: ownership comes from the runtime's configuration ------------------------------
def test_an_event_from_another_stack_does_nothing(deployed: World) -> None:
    w = deployed
    calls = len(w.fake.calls)
    _, props, bundle_id = _bundle_event(w, "Developer")
    w.cloudformation.stack_id = OTHER_STACK
    with pytest.raises(BuildFailed, match="not the stack this runtime belongs to"):
        w.cloudformation.send_event(
            "Delete", "X", contract.BUNDLE_RESOURCE_TYPE, props, physical_id=bundle_id
        )
    assert len(w.fake.calls) == calls
    assert bundle_id in w.fake.bundles


def test_a_hand_started_cleanup_deletes_only_images_this_stack_marked(deployed: World) -> None:
    w = deployed
    foreign = next(i for i in w.fake.images.values() if not w.owned(i.image_id))
    ours = _image_named(w, "office-")
    w.fake.bundles.clear()  # nothing is in use: only the ownership checks stand in the way
    for image_id in (foreign.image_id, ours.image_id):
        result = build_steps.run_step(
            {
                "Step": contract.STEP_CLEANUP_IMAGE,
                # An input naming the image's owner as this stack is not believed.
                "Cleanup": {"image_id": image_id, "image_name": "x", "owner": STACK_ID},
            },
            w.clients,
        )
        assert result == {"Status": contract.STATUS_DONE}
    assert foreign.image_id in w.fake.images and ours.image_id in w.fake.images
    assert w.fake.count("DeleteWorkspaceImage") == 0


def test_a_hand_started_build_tags_images_for_this_stack_only(templates: Templates) -> None:
    with world(templates["v1"]) as w:
        build = {
            "image_name": "intruder-1",
            "description": "d",
            "template_workspace_id": "ws-dev0template1",
            "persona": "x",
            "tags": {},
            "owner": OTHER_STACK,
            "deadline": 10**10,
            "bound_seconds": 3600,
            "wait_handle": handle_url("H"),
        }
        created = build_steps.run_step(
            {"Step": contract.STEP_CREATE_IMAGE, "Build": build}, w.clients, now=0
        )
        assert w.fake.tags[created["ImageId"]][OWNER_TAG] == STACK_ID


# ----- rollback and recovery ------------------------------------------------------------------
def _replaced_image_rollback(w: World) -> tuple[str, dict[str, Any], str]:
    """The developer image was replaced by a new recipe and the update failed later:
    CloudFormation rolls back and sends the resource its old properties with the new name."""
    cfn = w.cloudformation
    logical = next(k for k in cfn.stack.sent if k.startswith("DeveloperImage"))
    cfn.status.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    return logical, dict(cfn.stack.sent[logical]), "developer-1.1.0-0000aaaa"


def test_a_rollback_update_never_builds_nor_touches_the_template(
    deployed: World, templates: Templates
) -> None:
    w = deployed
    logical, old, new_name = _replaced_image_rollback(w)
    del w.fake.workspaces["ws-dev0template1"]  # removed since: must not matter
    calls = len(w.fake.calls)
    starts = len(w.cloudformation.running())
    result = w.cloudformation.send_event(
        "Update", logical, contract.IMAGE_RESOURCE_TYPE, old, {}, physical_id=new_name
    )
    assert result["PhysicalResourceId"] == old[contract.IMAGE_NAME]
    assert contract.ATTR_EXECUTION_ARN not in result["Data"]
    assert len(w.cloudformation.running()) == starts
    touched = {op for op, _ in w.fake.calls[calls:]}
    assert touched <= {"DescribeWorkspaceImages", "DescribeTags"}


def test_a_rollback_to_a_deleted_image_fails_with_how_to_finish(
    deployed: World, templates: Templates
) -> None:
    w = deployed
    logical, old, new_name = _replaced_image_rollback(w)
    gone = _image_named(w, old[contract.IMAGE_NAME])
    w.fake.bundles.clear()
    w.fake.images.pop(gone.image_id)
    with pytest.raises(BuildFailed) as failure:
        w.cloudformation.send_event(
            "Update", logical, contract.IMAGE_RESOURCE_TYPE, old, {}, physical_id=new_name
        )
    message = str(failure.value)
    assert f"rolling back to image {old[contract.IMAGE_NAME]}, which is gone" in message
    assert f"continue-update-rollback --stack-name <stack> --resources-to-skip {logical}" in message
    assert w.fake.count("CreateWorkspaceImage") == 2  # those of the first deploy only


def test_two_personas_on_one_template_build_one_after_the_other(templates: Templates) -> None:
    template = templates["shared"]
    with world(template, foreign=True) as w:
        foreign = invariants.snapshot_foreign(w)
        cfn = w.cloudformation
        original = cfn.invoke_step
        raced: list[str] = []

        def other_build_wins_the_race(payload: dict[str, Any]) -> dict[str, Any]:
            # Both builds found the template AVAILABLE; the other one creates its image first.
            if payload["Step"] == contract.STEP_CREATE_IMAGE and not raced:
                described = [
                    w.clients.stepfunctions.describe_execution(executionArn=arn)
                    for arn in cfn.running()
                ]
                requests = [
                    (d["name"], request.load(w.clients.s3, d["name"]).to_input()) for d in described
                ]
                name, other = next(
                    (n, r) for n, r in requests if r["image_name"] != payload["Build"]["image_name"]
                )
                raced.append(other["image_name"])
                # As that build's own execution does it (its context names it).
                original({"Step": contract.STEP_CREATE_IMAGE, "Build": other, "Execution": name})
            return original(payload)

        cfn.invoke_step = other_build_wins_the_race  # type: ignore[method-assign]
        cfn.deploy(template)
        assert raced
        assert sorted(w.images()) == sorted(
            invariants.declared(template, contract.IMAGE_RESOURCE_TYPE, "ImageName")
        )
        visited = [state for run in cfn.runs for state in run.visited]
        assert "TemplateBusy?" in visited and visited.count("WaitForTemplate") >= 1
        assert w.fake.count("CreateWorkspaceImage") == 3  # the refused one, then one each
        invariants.check(w, foreign=foreign, deployed=template)


def test_an_image_left_in_error_is_replaced_never_adopted(templates: Templates) -> None:
    with world(templates["v1"]) as w:
        build = {
            "image_name": "developer-1.0.0-feedbeef",
            "description": "d",
            "template_workspace_id": "ws-dev0template1",
            "persona": "developer",
            "tags": {},
            "deadline": 10**10,
            "bound_seconds": 3600,
            "wait_handle": handle_url("H"),
        }
        w.fake.image_ends_in_error("InternalError", "disk full")
        first = build_steps.run_step(
            {"Step": contract.STEP_CREATE_IMAGE, "Build": build}, w.clients
        )
        w.fake.images[first["ImageId"]].state = "ERROR"
        w.fake.workspaces["ws-dev0template1"].state = "AVAILABLE"
        again = build_steps.run_step(
            {"Step": contract.STEP_CREATE_IMAGE, "Build": build}, w.clients
        )
        assert again["ImageId"] != first["ImageId"]
        assert first["ImageId"] not in w.fake.images
        assert w.fake.images[again["ImageId"]].state == "PENDING"


# ----- never hang ------------------------------------------------------------------------------
def _ended_event(arn: str) -> dict[str, Any]:
    return {
        "detail-type": contract.EXECUTION_STATUS_CHANGE,
        "source": "aws.states",
        "detail": {"executionArn": arn, "status": "ABORTED"},
    }


@pytest.mark.parametrize(
    ("error", "signalled"),
    [
        (None, True),  # stopped by hand, no error
        ("States.Timeout", True),
        (contract.ERROR_BUILD_REPORTED, False),  # the workflow reported itself
        (contract.ERROR_STACK_OPERATION, False),  # its stack stopped it
    ],
)
def test_a_build_that_ends_without_reporting_fails_its_wait_at_once(
    templates: Templates, error: str | None, signalled: bool
) -> None:
    with world(templates["v1"]) as w:
        cfn = w.cloudformation
        cfn.deploy(templates["v1"])
        # A build of v2 is started, then stopped by hand (or by a timeout) mid-way.
        logical = next(k for k in cfn.stack.sent if k.startswith("DeveloperImage"))
        props = {
            **cfn.stack.sent[logical],
            "ImageName": "developer-1.1.0-0000aaaa",
            "WaitHandle": handle_url("DeveloperImageBuildHandleNew"),
        }
        cfn.send_event("Create", "DeveloperImageNew", contract.IMAGE_RESOURCE_TYPE, props)
        (arn,) = cfn.running()
        sfn = w.clients.stepfunctions
        sfn.stop_execution(executionArn=arn, **({"error": error} if error else {}))
        if error:
            # moto forgets a stop's error; Step Functions returns it from DescribeExecution.
            def with_error(parsed: dict[str, Any], **_: Any) -> None:
                parsed["error"] = error

            sfn.meta.events.register("after-call.sfn.DescribeExecution", with_error)
        sent: list[tuple[str, dict[str, Any]]] = []
        result = build_watch.on_execution_end(
            _ended_event(arn),
            w.clients,
            send=lambda url, body: sent.append((url, json.loads(body))),
        )
        if not signalled:
            assert result["Action"] == "ignored" and sent == []
            return
        ((url, body),) = sent
        assert url == props["WaitHandle"]
        assert body["Status"] == "FAILURE"
        assert (
            "persona developer" in body["Reason"]
            and "ended ABORTED without reporting" in body["Reason"]
        )


def test_the_build_watch_trusts_nothing_from_the_event(templates: Templates) -> None:
    with world(templates["v1"]) as w:
        sfn = w.clients.stepfunctions
        definition = json.dumps({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}})
        other = sfn.create_state_machine(
            name="Other", definition=definition, roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"]
        forged_input = {"Build": {"wait_handle": handle_url("H", stack_id=OTHER_STACK)}}
        started = sfn.start_execution(stateMachineArn=other, input=json.dumps(forged_input))
        sfn.stop_execution(executionArn=started["executionArn"])
        sent: list[Any] = []
        result = build_watch.on_execution_end(
            _ended_event(started["executionArn"]), w.clients, send=lambda *a: sent.append(a)
        )
        assert result == {"Action": "ignored", "Why": "another state machine's execution"}
        # An execution of our machine whose input names another stack's handle.
        mine_input = json.dumps(
            {
                "Build": {
                    "image_name": "x",
                    "description": "d",
                    "template_workspace_id": "ws-dev0template1",
                    "persona": "p",
                    "tags": {},
                    "deadline": 1,
                    "bound_seconds": 1,
                    "wait_handle": handle_url("H", stack_id=OTHER_STACK),
                }
            }
        )
        mine = sfn.start_execution(
            stateMachineArn=w.cloudformation.state_machine_arn, input=mine_input
        )
        sfn.stop_execution(executionArn=mine["executionArn"])
        result = build_watch.on_execution_end(
            _ended_event(mine["executionArn"]), w.clients, send=lambda *a: sent.append(a)
        )
        # Its input is not read: the image resource wrote no request under its name.
        assert result == {
            "Action": "ignored",
            "Why": "not a build of this stack (no request of its own)",
        }
        # A request in the store (only the runtime writes there) is still checked: a handle
        # of another stack is never signalled.
        third = sfn.start_execution(stateMachineArn=w.cloudformation.state_machine_arn, input="{}")
        request.save(
            w.clients.s3,
            third["executionArn"].rsplit(":", 1)[1],
            request.BuildRequest.from_input(json.loads(mine_input)["Build"]),
        )
        sfn.stop_execution(executionArn=third["executionArn"])
        result = build_watch.on_execution_end(
            _ended_event(third["executionArn"]), w.clients, send=lambda *a: sent.append(a)
        )
        assert result["Action"] == "ignored" and "not a WaitCondition handle" in result["Why"]
        assert sent == []


# ----- kept on delete ---------------------------------------------------------------------------
def test_an_image_or_bundle_in_use_is_kept_and_marked(deployed: World) -> None:
    w = deployed
    cfn = w.cloudformation
    bundle_logical, bundle_props, bundle_id = _bundle_event(w, "Developer")
    image = _image_named(w, "developer-")
    w.fake.fail("DeleteWorkspaceBundle", "ResourceAssociatedException", "WorkSpaces use it")
    cfn.send_event(
        "Delete", bundle_logical, contract.BUNDLE_RESOURCE_TYPE, bundle_props, physical_id=bundle_id
    )
    assert bundle_id in w.fake.bundles
    assert "in use by WorkSpaces" in w.fake.tags[bundle_id][contract.KEPT_TAG_KEY]
    image_logical = next(k for k in cfn.stack.sent if k.startswith("DeveloperImage"))
    cfn.status.status = "DELETE_IN_PROGRESS"  # a stack delete: nothing is retained
    cfn.send_event(
        "Delete",
        image_logical,
        contract.IMAGE_RESOURCE_TYPE,
        cfn.stack.sent[image_logical],
        physical_id=image.name,
    )
    assert image.image_id in w.fake.images  # the kept bundle still uses it
    assert "in use by a bundle" in w.fake.tags[image.image_id][contract.KEPT_TAG_KEY]


def test_retained_resources_block_a_stack_created_again_with_a_clear_reason(
    templates: Templates,
) -> None:
    template = templates["retain"]
    for resource in template["Resources"].values():
        if resource["Type"].startswith("Custom::WorkSpaces"):
            assert resource["DeletionPolicy"] == "Retain"
    with world(template) as first:
        first.cloudformation.deploy(template)
        # CloudFormation sends no Delete for retained resources: they stay, tagged as the
        # first stack's, and a build still running would go on (its signal is refused).
        kept = dict(first.images())
    with world(template, fake=first.fake, stack_id=OTHER_STACK) as again:
        with pytest.raises(DeployError) as failure:
            again.cloudformation.deploy(template)
        message = str(failure.value)
        assert "already exists" in message and "was not created by this stack" in message
        assert {i.name for i in again.fake.images.values()} >= set(kept)
        for image in again.fake.images.values():
            if image.name in kept:
                assert again.fake.tags[image.image_id][OWNER_TAG] == STACK_ID


def test_an_execution_started_by_hand_builds_nothing_whatever_its_input(
    templates: Templates,
) -> None:
    """A build request is not an execution's input: whoever may start an execution can
    write the input, never the evidence store. A hand-started execution whose input names
    this stack's template, image name and wait handle fails at its first state, with no
    WorkSpaces call and no signal."""
    with world(templates["v1"]) as w:
        cfn = w.cloudformation
        forged = request.BuildRequest(
            image_name="developer-9.9.9-00000000",
            description="d",
            template_workspace_id="ws-dev0template1",
            persona="developer",
            tags={},
            deadline=10**10,
            bound_seconds=3600,
            wait_handle=handle_url("DeveloperImageBuildHandle"),
        )
        w.clients.stepfunctions.start_execution(
            stateMachineArn=cfn.state_machine_arn,
            name="build-by-hand",
            input=json.dumps({"Build": forged.to_input()}),
        )
        calls_before = len(w.fake.calls)
        cfn.run_builds()
        (run,) = cfn.runs
        assert run.status == "FAILED" and run.visited == ["CleanupOrBuild?", "LoadRequest"]
        assert len(w.fake.calls) == calls_before
        assert cfn.signals.received == {}


def test_an_image_tagged_as_ours_by_someone_else_is_never_deleted(deployed: World) -> None:
    """A tag is a label: an image someone tagged with this stack's id, its persona, an
    execution and the cleanup mark is deleted neither by a hand-started cleanup nor by the
    image resource's Delete. Only what the runtime wrote down (a record, or the build's own
    note that it created the image) makes an image this stack's to delete."""
    w = deployed
    foreign = next(i for i in w.fake.images.values() if not w.owned(i.image_id))
    w.fake.tags[foreign.image_id] = {
        OWNER_TAG: STACK_ID,
        contract.PERSONA_TAG_KEY: "office",
        contract.EXECUTION_TAG_KEY: "build-forged",
        contract.CLEANUP_TAG_KEY: "requested",
    }
    w.fake.bundles.clear()
    result = build_steps.run_step(
        {
            "Step": contract.STEP_CLEANUP_IMAGE,
            "Cleanup": {"image_id": foreign.image_id, "image_name": foreign.name},
        },
        w.clients,
    )
    assert result == {"Status": contract.STATUS_DONE}
    # The image resource's Delete of an image of that name: kept as well.
    logical = next(k for k in w.cloudformation.stack.sent if "OfficeImage" in k)
    props = {**w.cloudformation.stack.sent[logical], contract.IMAGE_NAME: foreign.name}
    w.cloudformation.send_event(
        "Delete", "Planted", contract.IMAGE_RESOURCE_TYPE, props, physical_id=foreign.name
    )
    assert foreign.image_id in w.fake.images
    assert w.fake.count("DeleteWorkspaceImage") == 0


def test_tags_are_synced_only_on_an_image_the_runtime_wrote_down(deployed: World) -> None:
    """A tag-only update re-tags the persona's image only when its record (or its build's
    note) says this stack made it; an image that only carries the stack's tag is refused,
    its tags left alone."""
    w = deployed
    office = _image_named(w, "office-")
    # As if planted: the stack's tag, no record digest, no execution of this stack.
    for key in (contract.RECORD_TAG_KEY, contract.EXECUTION_TAG_KEY):
        w.fake.tags[office.image_id].pop(key, None)
    before = dict(w.fake.tags[office.image_id])
    with pytest.raises(DeployError, match=f"image {office.image_id} .* carries this stack's tag"):
        w.cloudformation.deploy(two_personas(stage="prod"))
    assert w.fake.tags[office.image_id] == before


def test_no_execution_history_holds_the_wait_handle(deployed: World) -> None:
    """The WaitCondition handle is a credential (whoever holds it can end the deploy): it
    stays in the evidence store, and the signalling steps read it from there. No state's
    input, task parameters or task result of any build (what readers of executions see in
    the history) holds it, and the signals still arrived."""
    runs = deployed.cloudformation.runs
    assert runs and all(run.status == "SUCCEEDED" for run in runs)
    for run in runs:
        assert "LoadRequest" in run.visited and run.history
        assert not [h for h in run.history if "cloudformation-waitcondition" in h]
    assert deployed.cloudformation.signals.received
