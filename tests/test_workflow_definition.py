"""The deployed state machine, read from the synthesized template: what is tested is what runs."""

from __future__ import annotations

from typing import Any

import pytest
from bakery_runtime.core import contract

from .harness import asl
from .harness.stacks import two_personas
from .harness.world import state_machine


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return asl.definition_from_template(state_machine(two_personas()))


def tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in definition["States"].items() if s["Type"] == "Task"}


def test_every_step_invokes_the_step_function_with_a_known_step(definition: dict[str, Any]) -> None:
    steps = {s["Parameters"]["Payload"]["Step"] for s in tasks(definition).values()}
    assert steps == {
        contract.STEP_CHECK_QUOTA,
        contract.STEP_CHECK_TEMPLATE,
        contract.STEP_CREATE_IMAGE,
        contract.STEP_POLL_IMAGE,
        contract.STEP_SIGNAL_SUCCESS,
        contract.STEP_SIGNAL_FAILURE,
        contract.STEP_CLEANUP_IMAGE,
        contract.STEP_PREPARE_TEMPLATE,
        contract.STEP_POLL_COMMAND,
        contract.STEP_REBOOT_TEMPLATE,
        contract.STEP_VERIFY_MARKER,
        contract.STEP_VALIDATE_TEMPLATE,
        contract.STEP_TAKE_INVENTORY,
        contract.STEP_SEAL_TEMPLATE,
        contract.STEP_ASSESS_TEMPLATE,
        contract.STEP_WRITE_RECORD,
        contract.STEP_LOAD_REQUEST,
        contract.STEP_FIND_RESUME_POINT,
    }
    for state in tasks(definition).values():
        assert state["Resource"].endswith(":states:::lambda:invoke")


def test_every_step_retries_transient_errors_with_backoff(definition: dict[str, Any]) -> None:
    for name, state in tasks(definition).items():
        retriers = {e: r for r in state["Retry"] for e in r["ErrorEquals"]}
        transient = retriers[contract.ERROR_TRANSIENT]
        assert transient["BackoffRate"] == 2 and transient["MaxAttempts"] == 6, name
        assert "Lambda.TooManyRequestsException" in retriers, name
        assert contract.ERROR_BUILD_FAILED not in retriers, f"{name} must not retry a BuildFailed"


def test_every_build_step_reports_failure_to_cloudformation(definition: dict[str, Any]) -> None:
    build_steps = {
        n: s
        for n, s in tasks(definition).items()
        if s["Parameters"]["Payload"]["Step"]
        not in (
            contract.STEP_SIGNAL_FAILURE,
            contract.STEP_CLEANUP_IMAGE,
            contract.STEP_LOAD_REQUEST,
        )
    }
    # Reading the request signals nothing when it fails: without a request of this stack's
    # own there is no handle the runtime may trust.
    (load,) = [
        s
        for s in tasks(definition).values()
        if s["Parameters"]["Payload"]["Step"] == contract.STEP_LOAD_REQUEST
    ]
    assert "Catch" not in load and load["ResultPath"] == "$"
    assert load["ResultSelector"] == {"Build.$": "$.Payload"}
    # Check the quota and the template, find a resume point, prepare, poll the preparation,
    # reboot, check rebooted, verify the marker, poll it, validate, poll it, list the
    # inventory, poll it, seal, poll it, restore, check the template after another build
    # imaged it, assess, image, poll the image, write the record, signal success.
    assert len(build_steps) == 22
    for name, state in build_steps.items():
        (catch,) = state["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"], name
        target = definition["States"][catch["Next"]]
        assert target["Parameters"]["Payload"]["Step"] == contract.STEP_SIGNAL_FAILURE
        assert definition["States"][target["Next"]]["Type"] == "Fail"


def test_waits_are_in_the_state_machine(definition: dict[str, Any]) -> None:
    states = definition["States"]
    waits = sorted(s["Seconds"] for s in states.values() if s["Type"] == "Wait" and "Seconds" in s)
    # The image waits come from the steps' results, cut to the build's deadline.
    assert states["FirstWaitForImage"]["SecondsPath"] == "$.Image.WaitSeconds"
    assert states["WaitForImage"]["SecondsPath"] == "$.PollImage.WaitSeconds"
    assert waits == sorted(
        [
            contract.TEMPLATE_POLL_SECONDS,
            contract.CLEANUP_POLL_SECONDS,
            contract.TEMPLATE_POLL_SECONDS,  # a template another build images
            contract.REBOOT_SETTLE_SECONDS,
            contract.SEAL_SETTLED_SECONDS,
            # The managed node (before and after the reboot, for the validation, the
            # inventory and the seal), the preparation, the marker, the validation, the
            # inventory, the seal.
            *[contract.COMMAND_POLL_SECONDS] * 10,
        ]
    )
    assert definition.get("TimeoutSeconds") == 13 * 3600


def test_signal_failure_is_not_caught_so_the_execution_fails(definition: dict[str, Any]) -> None:
    (failure,) = [
        s
        for s in tasks(definition).values()
        if s["Parameters"]["Payload"]["Step"] == contract.STEP_SIGNAL_FAILURE
    ]
    assert "Catch" not in failure


@pytest.mark.parametrize(
    ("step", "left", "expected"),
    [
        (contract.STEP_CREATE_IMAGE, 10_000, contract.FIRST_IMAGE_WAIT_SECONDS),
        (contract.STEP_POLL_IMAGE, 10_000, contract.IMAGE_POLL_SECONDS),
        (contract.STEP_CREATE_IMAGE, 700, 700),  # cut to the deadline
        (contract.STEP_POLL_IMAGE, 30, 30),
        (contract.STEP_POLL_IMAGE, -5, 1),  # past it: look at once, and fail there
    ],
)
def test_image_waits_are_one_long_wait_then_short_polls_within_the_deadline(
    step: str, left: int, expected: int
) -> None:
    from bakery_runtime.image_build.request import BuildRequest
    from bakery_runtime.image_build.steps import wait_seconds

    build = BuildRequest("n", "d", "ws-abcdefgh1", "p", {}, 10_000, 3600, "https://h")
    preferred = {
        contract.STEP_CREATE_IMAGE: contract.FIRST_IMAGE_WAIT_SECONDS,
        contract.STEP_POLL_IMAGE: contract.IMAGE_POLL_SECONDS,
    }[step]
    assert wait_seconds(build, 10_000 - left, preferred) == expected


def test_the_bundle_follows_a_long_build_within_ninety_seconds() -> None:
    """The worst-case delay between AVAILABLE and the next look, for builds of 30 minutes
    or more, and the looks a 45-minute build costs (bench prints both)."""
    assert contract.IMAGE_POLL_SECONDS + 30 <= 90  # a poll, plus Lambda and the signal
    looks = 1 + (45 * 60 - contract.FIRST_IMAGE_WAIT_SECONDS) // contract.IMAGE_POLL_SECONDS
    assert looks == 16


def test_every_task_invokes_the_one_function_its_role_may_invoke() -> None:
    """The workflow is JSON text (build_workflow.py): the function each task names is the
    step function, and the state machine's role may invoke it (and its versions) and no
    other function."""
    template = two_personas()
    machine = state_machine(template)
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    arns = [p for p in parts if isinstance(p, dict) and "Fn::GetAtt" in p]
    assert {p["Fn::GetAtt"][0] for p in arns} == {_step_function(template)}
    assert len(arns) == len(tasks(asl.definition_from_template(machine)))
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    invokes = [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in statement["Action"]
    ]
    step = {"Fn::GetAtt": [_step_function(template), "Arn"]}
    assert invokes == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": [step, {"Fn::Join": ["", [step, ":*"]]}],
        }
    ]


def _step_function(template: dict[str, Any]) -> str:
    (name,) = [
        k
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler", "").endswith(".image_build.steps.handler")
    ]
    return str(name)


def test_a_state_that_goes_nowhere_or_is_never_reached_stops_the_synth() -> None:
    """Step Functions rejects a definition whose Next names no state only at deploy time;
    the workflow's own check stops it at synth, and a state no path reaches as well."""
    from workspaces_image_bakery.image_build import build_workflow

    states = build_workflow.build_workflow("arn", "aws", 60)["States"]
    dangling = {**states, "PollSeal": {**states["PollSeal"], "Next": "Sealed"}}
    with pytest.raises(ValueError, match=r"'PollSeal' goes to unknown \['Sealed'\]"):
        build_workflow._check_transitions(dangling)
    with pytest.raises(ValueError, match=r"\['Orphan'\] are never reached"):
        build_workflow._check_transitions({**states, "Orphan": {"Type": "Succeed"}})
    build_workflow._check_transitions(states)


def test_the_workflow_stops_itself_after_the_longest_build(definition: dict[str, Any]) -> None:
    """The definition carries its own backstop (the CDK's ``timeout`` prop applies to
    chained states only): an hour past the longest bound a build may have (12 hours, the
    WaitCondition's limit), so each build's own deadline comes first."""
    from workspaces_image_bakery.image_build.build_runtime import WORKFLOW_TIMEOUT_HOURS
    from workspaces_image_bakery.image_build.build_workflow import COMMENT
    from workspaces_image_bakery.image_build.image import MAX_BUILD_TIMEOUT_SECONDS

    assert definition["TimeoutSeconds"] == WORKFLOW_TIMEOUT_HOURS * 3600
    assert definition["TimeoutSeconds"] == MAX_BUILD_TIMEOUT_SECONDS + 3600
    assert definition["Comment"] == COMMENT
