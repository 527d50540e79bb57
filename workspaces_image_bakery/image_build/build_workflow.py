"""The image build's workflow as Amazon States Language: plain JSON built in Python.

Check the template; prepare it through Run Command, reboot it and check its recipe marker
(when the persona's preparation runs in the build); take the inventory and seal it; image
it; wait for the image; write the as-built record; signal. Every failure goes to the
failure signal. Every state but the flow's own (Choice, Wait, Succeed, Fail) invokes the
one step function with the step's name (``bakery_runtime.image_build.steps``).

Written as JSON rather than as CDK state constructs: the 68 states cost no jsii round trip
(about 270 with the CDK's classes, 0.25 s of every synth). What the CDK's ``LambdaInvoke``
added is written here: its retry of Lambda's service errors, the ``lambda:invoke``
integration, and (in ``BuildRuntime``) the role's right to invoke the function.
"""

from __future__ import annotations

import json
from typing import Any, Final

from ..core.runtime_assets import contract

# The Lambda service errors the CDK's LambdaInvoke retries (retryOnServiceExceptions).
LAMBDA_SERVICE_ERRORS: Final = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
)
# Our own TransientError (throttling that outlived botocore's retries) and Lambda
# throttling, which the Lambda service retry does not cover.
TRANSIENT_ERRORS: Final = (contract.ERROR_TRANSIENT, "Lambda.TooManyRequestsException")
FAILURE_SIGNAL: Final = "SignalFailure"
START: Final = "CleanupOrBuild?"
COMMENT: Final = "Builds one WorkSpaces image and signals its CloudFormation WaitCondition"
STATUS: Final = {"Status.$": "$.Payload.Status"}

State = dict[str, Any]


class _States:
    """The states by name, each added once; the helpers return the name they added."""

    def __init__(self, function_arn: str, partition: str) -> None:
        self.states: dict[str, State] = {}
        self._function_arn = function_arn
        self._resource = f"arn:{partition}:states:::lambda:invoke"

    def add(self, name: str, state: State) -> str:
        if name in self.states:
            raise ValueError(f"the build workflow declares the state {name!r} twice")
        self.states[name] = state
        return name

    def task(
        self,
        name: str,
        step: str,
        result_selector: dict[str, str] | None,
        *,
        then: str | None,
        extra: dict[str, object] | None = None,
        result_path: str | None = None,
        catch: str | None = FAILURE_SIGNAL,
    ) -> str:
        """The step function invoked with the step's name and what it reads: the build
        request and the execution's name (from the context object, which no execution
        input can set), unless the step reads less."""
        payload: dict[str, object] = {
            "Step": step,
            "Build.$": "$.Build",
            "Execution.$": "$$.Execution.Name",
            **(extra or {}),
        }
        if step == contract.STEP_CLEANUP_IMAGE:
            payload = {"Step": step, "Cleanup.$": "$.Cleanup"}
        if step == contract.STEP_LOAD_REQUEST:
            payload = {"Step": step, "Execution.$": "$$.Execution.Name"}
        if step in (
            contract.STEP_POLL_IMAGE,
            contract.STEP_SIGNAL_SUCCESS,
            contract.STEP_WRITE_RECORD,
        ):
            payload["ImageId.$"] = "$.Image.ImageId"
        if step == contract.STEP_WRITE_RECORD:
            payload["Started.$"] = "$$.Execution.StartTime"
        if step == contract.STEP_SIGNAL_FAILURE:
            payload["Error.$"] = "$.Error"
        state: State = {
            "Type": "Task",
            "Resource": self._resource,
            "Parameters": {"FunctionName": self._function_arn, "Payload": payload},
            "ResultPath": result_path or (f"$.{name}" if result_selector else None),
            "Retry": [
                {
                    "ErrorEquals": list(LAMBDA_SERVICE_ERRORS),
                    "IntervalSeconds": 2,
                    "MaxAttempts": 6,
                    "BackoffRate": 2,
                },
                {
                    "ErrorEquals": list(TRANSIENT_ERRORS),
                    "IntervalSeconds": 20,
                    "MaxAttempts": 6,
                    "BackoffRate": 2,
                    "JitterStrategy": "FULL",
                },
            ],
        }
        if result_selector:
            state["ResultSelector"] = result_selector
        if catch:
            state["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.Error", "Next": catch}
            ]
        state.update({"Next": then} if then else {"End": True})
        return self.add(name, state)

    def stage(
        self,
        send: str,
        step: str,
        poll: str,
        purpose: str,
        *,
        names: tuple[str, str, str, str],
        then: str,
        restart: bool = False,
    ) -> None:
        """A Run Command stage. The step that sends the command answers SENT with its id
        (then wait, and poll it) or WAIT for the node (wait, and send again); the poll
        answers DONE (go to `then`), RESTART when `restart` (a resumed build found the
        template changed: prepare again) or anything else (wait, and poll again).
        `names`: the sent and done choices, the node's wait and the command's wait."""
        sent, done, node_wait, poll_wait = names
        self.task(
            send,
            step,
            {"Status.$": "$.Payload.Status", "CommandId.$": "$.Payload.CommandId"},
            then=sent,
        )
        self.until(sent, f"$.{send}.Status", contract.STATUS_SENT, poll_wait, node_wait)
        self.wait(node_wait, contract.COMMAND_POLL_SECONDS, send)
        self.wait(poll_wait, contract.COMMAND_POLL_SECONDS, poll)
        self.task(
            poll,
            contract.STEP_POLL_COMMAND,
            STATUS,
            then=done,
            extra={"Command": {"CommandId.$": f"$.{send}.CommandId", "Purpose": purpose}},
        )
        rules: list[tuple[str, str | None, str]] = [
            (f"$.{poll}.Status", contract.STATUS_DONE, then)
        ]
        if restart:
            rules.append((f"$.{poll}.Status", contract.STATUS_RESTART, "PrepareTemplate"))
        self.choice(done, rules, poll_wait)

    def wait(self, name: str, seconds: int, then: str) -> str:
        return self.add(name, {"Type": "Wait", "Seconds": seconds, "Next": then})

    def wait_path(self, name: str, path: str, then: str) -> str:
        return self.add(name, {"Type": "Wait", "SecondsPath": path, "Next": then})

    def choice(self, name: str, rules: list[tuple[str, str | None, str]], otherwise: str) -> str:
        """(variable, value, next) rules in order: StringEquals ``value``, or IsPresent
        when ``value`` is None."""
        choices = [
            {"Variable": variable, "IsPresent": True, "Next": then}
            if value is None
            else {"Variable": variable, "StringEquals": value, "Next": then}
            for variable, value, then in rules
        ]
        return self.add(name, {"Type": "Choice", "Choices": choices, "Default": otherwise})

    def until(self, name: str, path: str, value: str, then: str, otherwise: str) -> str:
        return self.choice(name, [(path, value, then)], otherwise)


def build_workflow(function_arn: str, partition: str, timeout_seconds: int) -> dict[str, Any]:
    """The workflow's definition; `function_arn` and `partition` may be CDK tokens (strings
    the CDK resolves where the JSON text holds them)."""
    c = contract
    s = _States(function_arn, partition)
    s.choice(START, [("$.Cleanup", None, "WaitForUnfinishedImage")], "LoadRequest")

    # A stopped build's unfinished image: wait for it to leave PENDING, then delete it.
    s.wait("WaitForUnfinishedImage", c.CLEANUP_POLL_SECONDS, "CleanupImage")
    s.task(
        "CleanupImage", c.STEP_CLEANUP_IMAGE, STATUS, then="ImageCleanedUp?", catch="CleanupFailed"
    )
    s.until(
        "ImageCleanedUp?",
        "$.CleanupImage.Status",
        c.STATUS_DONE,
        "CleanedUp",
        "WaitForUnfinishedImage",
    )
    s.add("CleanedUp", {"Type": "Succeed"})
    s.add("CleanupFailed", {"Type": "Fail", "Error": "CleanupFailed", "Cause": "see the logs"})

    # The build request, from the evidence store under this execution's name (the image
    # resource's function wrote it there): the state becomes {"Build": <request>}, whatever
    # the input said.
    s.task(
        "LoadRequest",
        c.STEP_LOAD_REQUEST,
        {"Build.$": "$.Payload"},
        then="CheckImageQuota",
        result_path="$",
        catch=None,
    )
    s.task("CheckImageQuota", c.STEP_CHECK_QUOTA, None, then="CheckTemplate")
    s.task("CheckTemplate", c.STEP_CHECK_TEMPLATE, STATUS, then="TemplateReady?")
    s.until(
        "TemplateReady?",
        "$.CheckTemplate.Status",
        c.STATUS_READY,
        "PreparedInBuild?",
        "WaitForTemplate",
    )
    s.wait("WaitForTemplate", c.TEMPLATE_POLL_SECONDS, "CheckTemplate")
    s.choice(
        "PreparedInBuild?",
        [("$.Build.managed_node_id", None, "FindResumePoint")],
        "AssessTemplate",
    )

    # A build that prepares first looks for a failed build of its recipe to resume.
    s.task("FindResumePoint", c.STEP_FIND_RESUME_POINT, {"At.$": "$.Payload.At"}, then="ResumeAt?")
    s.choice(
        "ResumeAt?",
        [
            ("$.FindResumePoint.At", c.RESUME_AT_VALIDATION, "ValidateTemplate"),
            ("$.FindResumePoint.At", c.RESUME_AT_INVENTORY, "TakeInventory"),
        ],
        "PrepareTemplate",
    )

    # Preparation: send, wait for the command, reboot, wait for AVAILABLE, check marker.
    s.stage(
        "PrepareTemplate",
        c.STEP_PREPARE_TEMPLATE,
        "PollPreparation",
        "preparation",
        names=("PreparationSent?", "Prepared?", "WaitForManagedNode", "WaitForPreparation"),
        then="RebootTemplate",
    )
    s.task("RebootTemplate", c.STEP_REBOOT_TEMPLATE, None, then="WaitForReboot")
    s.wait("WaitForReboot", c.REBOOT_SETTLE_SECONDS, "CheckRebooted")
    s.task("CheckRebooted", c.STEP_CHECK_TEMPLATE, STATUS, then="Rebooted?")
    s.until("Rebooted?", "$.CheckRebooted.Status", c.STATUS_READY, "VerifyMarker", "WaitForReboot")
    s.stage(
        "VerifyMarker",
        c.STEP_VERIFY_MARKER,
        "PollMarker",
        "marker",
        names=("MarkerRequested?", "MarkerChecked?", "WaitForManagedNodeAgain", "WaitForMarker"),
        then="ValidatedInBuild?",
    )

    # Validation (when the persona has checks): on the prepared, rebooted template, right
    # before the image, which is a snapshot of what the checks saw.
    s.choice(
        "ValidatedInBuild?",
        [("$.Build.validation_script", None, "ValidateTemplate")],
        "TakeInventory",
    )
    s.stage(
        "ValidateTemplate",
        c.STEP_VALIDATE_TEMPLATE,
        "PollValidation",
        "validation",
        names=(
            "ValidationSent?",
            "Validated?",
            "WaitForManagedNodeToValidate",
            "WaitForValidation",
        ),
        then="TakeInventory",
        restart=True,
    )

    # The inventory (what the template holds, for the record and the checklist), then the
    # as-built checklist, right before the image.
    s.stage(
        "TakeInventory",
        c.STEP_TAKE_INVENTORY,
        "PollInventory",
        "inventory",
        names=("InventoryRequested?", "Listed?", "WaitForManagedNodeToList", "WaitForInventory"),
        then="SealInBuild?",
        restart=True,
    )

    # The seal: the last command before the image; then the build lets its deferred step
    # stop the SSM agent and move the registration off the root volume.
    s.choice("SealInBuild?", [("$.Build.seal_script", None, "SealTemplate")], "AssessTemplate")
    s.stage(
        "SealTemplate",
        c.STEP_SEAL_TEMPLATE,
        "PollSeal",
        "seal",
        names=("SealRequested?", "Sealed?", "WaitForManagedNodeToSeal", "WaitForSeal"),
        then="WaitForSealToSettle",
    )
    s.wait("WaitForSealToSettle", c.SEAL_SETTLED_SECONDS, "AssessTemplate")

    # The image.
    s.task("AssessTemplate", c.STEP_ASSESS_TEMPLATE, None, then="Image")
    s.task(
        "Image",
        c.STEP_CREATE_IMAGE,
        {"ImageId.$": "$.Payload.ImageId", "WaitSeconds.$": "$.Payload.WaitSeconds", **STATUS},
        then="TemplateBusy?",
    )
    s.until(
        "TemplateBusy?", "$.Image.Status", c.STATUS_BUSY, "ImagedElsewhere?", "FirstWaitForImage"
    )
    # The template is imaged by another build: prepared templates wait for it, are
    # rebooted (a seal's stash restored) and go back through the marker check.
    s.choice(
        "ImagedElsewhere?",
        [("$.Build.managed_node_id", None, "WaitForBusyTemplate")],
        "WaitForTemplate",
    )
    s.wait("WaitForBusyTemplate", c.TEMPLATE_POLL_SECONDS, "CheckTemplateAfterBusy")
    s.task("CheckTemplateAfterBusy", c.STEP_CHECK_TEMPLATE, STATUS, then="FreeAgain?")
    s.until(
        "FreeAgain?",
        "$.CheckTemplateAfterBusy.Status",
        c.STATUS_READY,
        "RebootTemplate",
        "WaitForBusyTemplate",
    )
    # The image waits come from the steps (a long first wait, then short polls, both cut to
    # the deadline).
    s.wait_path("FirstWaitForImage", "$.Image.WaitSeconds", "PollImage")
    s.task(
        "PollImage",
        c.STEP_POLL_IMAGE,
        {"WaitSeconds.$": "$.Payload.WaitSeconds", **STATUS},
        then="ImageAvailable?",
    )
    s.until(
        "ImageAvailable?", "$.PollImage.Status", c.STATUS_AVAILABLE, "WriteRecord", "WaitForImage"
    )
    s.wait_path("WaitForImage", "$.PollImage.WaitSeconds", "PollImage")
    s.task("WriteRecord", c.STEP_WRITE_RECORD, None, then="SealedInBuild?")
    # After the image (or a failure, in the failure signal): the template's restore unit
    # gives it back what the seal stashed, at its next boot.
    s.choice("SealedInBuild?", [("$.Build.seal_script", None, "RestoreTemplate")], "SignalSuccess")
    s.task("RestoreTemplate", c.STEP_REBOOT_TEMPLATE, None, then="SignalSuccess")
    s.task("SignalSuccess", c.STEP_SIGNAL_SUCCESS, None, then=None)
    s.task(FAILURE_SIGNAL, c.STEP_SIGNAL_FAILURE, None, then="BuildFailed", catch=None)
    s.add(
        "BuildFailed",
        {"Type": "Fail", "Error": c.ERROR_BUILD_REPORTED, "Cause": "see the stack event"},
    )
    _check_transitions(s.states)
    return {
        "StartAt": START,
        "States": s.states,
        "TimeoutSeconds": timeout_seconds,
        "Comment": COMMENT,
    }


def _check_transitions(states: dict[str, State]) -> None:
    """Every Next, Default and Catch names a state (Step Functions rejects the definition
    at deploy time otherwise); every state is reached from the start."""
    edges: dict[str, list[str]] = {}
    for name, state in states.items():
        targets = [state[k] for k in ("Next", "Default") if k in state]
        targets += [rule["Next"] for rule in state.get("Choices", [])]
        targets += [rule["Next"] for rule in state.get("Catch", [])]
        missing = [t for t in targets if t not in states]
        if missing:
            raise ValueError(f"the build workflow's state {name!r} goes to unknown {missing}")
        edges[name] = targets
    reached, pending = set(), [START]
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending.extend(edges[name])
    unreached = sorted(set(states) - reached)
    if unreached:
        raise ValueError(f"the build workflow's states {unreached} are never reached")


def definition_text(function_arn: str, partition: str, timeout_seconds: int) -> str:
    """The definition as compact JSON text (the CDK resolves the tokens inside it)."""
    return json.dumps(
        build_workflow(function_arn, partition, timeout_seconds), separators=(",", ":")
    )
