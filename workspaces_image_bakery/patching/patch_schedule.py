"""Patch cadence without a code change: ``Persona(patch_schedule=PatchSchedule(...))``.

On the persona's EventBridge Scheduler schedule (with a time zone), the stack's patch check
asks the template WorkSpace through Run Command whether security updates are pending
(``pending_updates.py``). Only when some are, it raises the persona's **patch level** in the
evidence store (``patch/<persona>.json``, written only by the runtime) and puts an
``Image Patch Level Raised`` event on the default bus. The pipeline that event starts reads
the levels before its synth (``workspaces-image-bakery patch-levels``, passed as the
``workspaces-image-bakery:patch-levels`` context value); the level is part of the persona's
recipe, so that deploy builds the patched image like any other build, and CloudFormation
stays the truth about which image a bundle serves. No image is ever built beside the stack.

Builds of a raised level that fail are counted (the build runtime writes the outcome into
the same state); after ``failures_before_disable`` in a row the next check disables its own
schedule and puts an ``Image Patch Schedule Disabled`` event (docs/patching.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from aws_cdk import Aws, Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from ..core.nag import VERSIONS_OF_AN_ARN, Finding, basic_execution_role, star_resource, suppress
from ..core.runtime_assets import RUNTIME_PACKAGE, contract, patching_contract
from ..core.validation import Problems, check_int, check_no_secrets, is_token
from ..image_build.build_runtime import (
    BuildRuntime,
    logged_workflow,
    runtime_code,
    runtime_function,
)
from ..rollout.rollout import check_schedule, check_time_zone
from .pending_updates import pending_updates_document

if TYPE_CHECKING:
    from aws_cdk import aws_scheduler as scheduler
    from aws_cdk import aws_stepfunctions_tasks as tasks

PATCH_RUNTIME_ID: Final = "WorkSpacesImageBakeryPatching"
pc = patching_contract
LEVEL = re.compile(pc.LEVEL_PATTERN)
LEVEL_TEXT: Final = "a patch level as `workspaces-image-bakery patch-levels` prints it"
MAX_FAILURES: Final = 10
# Lambda's 4 KB for all environment variables, less the other variables (the document, the
# bucket, the owner stack and the prefix, about 400 bytes as tokens resolve).
MAX_SETTINGS_BYTES: Final = 3500
TOKEN_BYTES: Final = 40


@dataclass(frozen=True)
class PatchSchedule:
    """When the persona's template is checked for pending security updates.

    :param schedule: an EventBridge Scheduler expression, as :class:`RolloutSchedule` takes
        it: ``cron(0 2 ? * MON *)`` or ``rate(N hours|days)``. Not a token.
    :param time_zone: an IANA time zone for a cron expression. Default ``UTC``.
    :param failures_before_disable: builds of a raised level that may fail in a row; the
        check after the last of them disables its schedule (and says so in an event), 1-10.
        Default 3.
    :param enabled: False keeps the schedule, paused. Default True.

    Needs ``build=TemplateBuild(managed_node_id=...)``: the check runs on the template
    through Run Command, and the build prepares (so patches) the template.
    """

    schedule: str
    time_zone: str = "UTC"
    failures_before_disable: int = 3
    enabled: bool = True


def check_patch_schedule(
    problems: Problems, value: Any, managed_node_id: str | None, patches_os: bool = True
) -> PatchSchedule | None:
    """The schedule, checked (problems named ``patch_schedule.<field>``), or None."""
    if value is None:
        return None
    if not isinstance(value, PatchSchedule):
        problems.add("patch_schedule", value, "a PatchSchedule, or None (no patch cadence)")
        return None
    scoped = Problems(problems.path, scope=problems.scope)
    check_schedule(scoped, value.schedule)
    check_time_zone(scoped, value.time_zone)
    check_int(scoped, "failures_before_disable", value.failures_before_disable, 1, MAX_FAILURES)
    scoped.check(isinstance(value.enabled, bool), "enabled", value.enabled, "True or False")
    problems.check(
        patches_os,
        "patch_schedule",
        value.schedule,
        "a preparation that patches the OS (preparation.patch_os=True): a rebuild for pending "
        "security updates that does not install them changes nothing",
    )
    check_no_secrets(scoped, {"schedule": value.schedule, "time_zone": value.time_zone})
    problems.found.extend(replace(p, field=f"patch_schedule.{p.field}") for p in scoped.found)
    problems.check(
        managed_node_id is not None,
        "patch_schedule",
        value.schedule,
        "a persona prepared in the build (build.managed_node_id): the check runs on its "
        "template through Run Command, and only a build that prepares the template patches it",
    )
    return value


def patch_level(problems: Problems, scope: Construct, persona: str) -> str | None:
    """The persona's patch level from the ``workspaces-image-bakery:patch-levels`` context
    value (JSON: persona -> level), or None when the value does not name it."""
    raw = scope.node.try_get_context(pc.PATCH_LEVELS_CONTEXT)
    if raw is None:
        return None
    levels = raw
    if isinstance(raw, str):
        try:
            levels = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            levels = None
    if not isinstance(levels, dict):
        problems.add(
            f"context {pc.PATCH_LEVELS_CONTEXT}",
            raw,
            "a JSON object of persona name -> patch level",
        )
        return None
    level = levels.get(persona)
    if level is None:
        return None
    if not isinstance(level, str) or not LEVEL.match(level):
        problems.add(f"context {pc.PATCH_LEVELS_CONTEXT}[{persona}]", level, LEVEL_TEXT)
        return None
    return level


def schedule_prefix(stack: Stack) -> str:
    """The start of the stack's schedule names, fixed at synth so the check can name its
    schedules without a reference to them (a schedule depends on the check); with a persona
    name (at most 32 characters) 51 of Scheduler's 64, unique per stack name."""
    owner = stack.stack_name if not is_token(stack.stack_name) else stack.node.addr
    return f"wib-{hashlib.sha256(owner.encode()).hexdigest()[:8]}-"


class PatchCadence(Construct):
    """A persona's patch schedule: its EventBridge Scheduler schedule, and its settings in
    the stack's patch check (:class:`PatchRuntime`). Made by :class:`Persona`."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        persona: str,
        managed_node_id: str,
        schedule: PatchSchedule,
    ) -> None:
        super().__init__(scope, id_)
        runtime = PatchRuntime.of(self)
        self.schedule_name = pc.schedule_name(runtime.schedule_prefix, persona)
        runtime.allow(
            self,
            persona,
            {
                pc.NODE: managed_node_id,
                pc.FAILURES_BEFORE_DISABLE: int(schedule.failures_before_disable),
            },
        )
        from aws_cdk import aws_scheduler as scheduler  # noqa: PLC0415 (see rollout.py)
        from aws_cdk import aws_scheduler_targets as scheduler_targets  # noqa: PLC0415

        self.schedule: scheduler.Schedule = scheduler.Schedule(
            self,
            "Schedule",
            schedule_name=self.schedule_name,
            description=f"workspaces-image-bakery: pending security updates on {persona}'s "
            "template",
            schedule=scheduler.ScheduleExpression.expression(
                schedule.schedule, TimeZone.of(schedule.time_zone)
            ),
            target=scheduler_targets.StepFunctionsStartExecution(
                runtime.state_machine,
                # The persona only: its node, template and bound are the function's own.
                input=scheduler.ScheduleTargetInput.from_object({"Patch": {"Persona": persona}}),
                role=runtime.scheduler_role,
                retry_attempts=3,
                max_event_age=Duration.hours(1),
            ),
            enabled=schedule.enabled,
        )
        runtime.allow_schedule(self.schedule_name)


class PatchRuntime(Construct):
    """The stack's one patch check: the pending-updates document, a Lambda function, a
    state machine and the role the schedules start it with. Use :meth:`of`."""

    @classmethod
    def of(cls, scope: Construct) -> PatchRuntime:
        stack = Stack.of(scope)
        existing = stack.node.try_find_child(PATCH_RUNTIME_ID)
        if isinstance(existing, PatchRuntime):
            return existing
        return cls(stack, PATCH_RUNTIME_ID)

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self._settings: dict[str, dict[str, Any]] = {}
        build = BuildRuntime.of(self)
        self.document = ssm.CfnDocument(
            self,
            "PendingUpdates",
            document_type="Command",
            content=pending_updates_document(),
            update_method="NewVersion",
        )
        self.function = runtime_function(
            self,
            "Step",
            code=runtime_code(),
            handler=f"{RUNTIME_PACKAGE}.patching.steps.handler",
            timeout=Duration.minutes(1),
        )
        self.function.add_environment(pc.ENV_PENDING_DOCUMENT, self.document.ref)
        self.schedule_prefix = schedule_prefix(Stack.of(self))
        self.function.add_environment(pc.ENV_SCHEDULE_PREFIX, self.schedule_prefix)
        self.function.add_environment(contract.ENV_EVIDENCE_BUCKET, build.evidence.bucket_name)
        role = self.function.role
        assert role is not None  # runtime_function makes one
        build.evidence.grant_patch_state(role)
        self._send = iam.PolicyStatement(
            actions=["ssm:SendCommand"],
            resources=[self._arn("ssm", f"document/{self.document.ref}")],
        )
        self._schedules = iam.PolicyStatement(
            actions=["scheduler:GetSchedule", "scheduler:UpdateSchedule"], resources=[]
        )
        self.function.add_to_role_policy(self._send)
        self.function.add_to_role_policy(self._schedules)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                # GetCommandInvocation supports no resource types.
                actions=["ssm:GetCommandInvocation"],
                resources=["*"],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[self._arn("events", "event-bus/default")],
            )
        )
        self.state_machine = self._state_machine()
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            description="EventBridge Scheduler starts the patch check",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
        )
        self.state_machine.grant_start_execution(self.scheduler_role)
        # UpdateSchedule (disabling a schedule) passes the schedule's role again.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            )
        )
        self._suppress_nag()

    @staticmethod
    def _arn(service: str, resource: str) -> str:
        return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{resource}"

    def allow(self, scope: Construct, persona: str, settings: dict[str, Any]) -> None:
        """Let the check run on this persona's node, with these settings; refused (naming
        `scope`) when they would not fit the function's environment (Lambda: 4 KB)."""
        candidate = {**self._settings, persona: settings}
        size = len(json.dumps(candidate)) + sum(
            TOKEN_BYTES for values in candidate.values() for v in values.values() if is_token(v)
        )
        if size > MAX_SETTINGS_BYTES:
            problems = Problems.of(scope)
            problems.add(
                "patch_schedule",
                persona,
                f"at most {len(self._settings)} patch schedules per stack: their settings fill "
                "the patch check's environment (Lambda's 4 KB); put more in another stack",
            )
            problems.raise_if_any()
        self._settings = candidate
        self.function.add_environment(
            pc.ENV_PATCH_SETTINGS, Stack.of(self).to_json_string(self._settings)
        )
        self._send.add_resources(self._arn("ssm", f"managed-instance/{settings[pc.NODE]}"))

    def allow_schedule(self, name: str) -> None:
        """Let the check read and disable this schedule (the default group's)."""
        self._schedules.add_resources(self._arn("scheduler", f"schedule/default/{name}"))

    def _state_machine(self) -> sfn.StateMachine:
        """Check (send the command); while it runs, wait and poll; then done."""

        def step(id_: str, name: str, payload: dict[str, Any]) -> tasks.LambdaInvoke:
            # Loaded with the first patch check, not with every persona.
            from aws_cdk import aws_stepfunctions_tasks as tasks  # noqa: PLC0415

            task = tasks.LambdaInvoke(
                self,
                id_,
                lambda_function=self.function,
                payload=sfn.TaskInput.from_object({"Step": name, "Patch.$": "$.Patch", **payload}),
                result_selector={
                    "Status.$": "$.Payload.Status",
                    **({"CommandId.$": "$.Payload.CommandId"} if name == pc.STEP_CHECK else {}),
                },
                result_path=f"$.{id_}",
                retry_on_service_exceptions=True,
            )
            task.add_retry(
                errors=[contract.ERROR_TRANSIENT, "Lambda.TooManyRequestsException"],
                interval=Duration.seconds(30),
                backoff_rate=2,
                max_attempts=5,
                jitter_strategy=sfn.JitterType.FULL,
            )
            return task

        check = step("Check", pc.STEP_CHECK, {})
        poll = step("Poll", pc.STEP_POLL, {"CommandId.$": "$.Check.CommandId"})
        done = sfn.Succeed(self, "Checked")
        wait = sfn.Wait(self, "WaitForCheck", time=sfn.WaitTime.duration(Duration.seconds(60)))
        wait.next(poll)
        poll.next(
            sfn.Choice(self, "CheckDone?")
            .when(sfn.Condition.string_equals("$.Poll.Status", pc.STATUS_WAIT), wait)
            .otherwise(done)
        )
        check.next(
            sfn.Choice(self, "CheckSent?")
            .when(sfn.Condition.string_equals("$.Check.Status", pc.STATUS_SENT), wait)
            .otherwise(done)
        )
        return logged_workflow(
            self,
            comment="Are security updates pending on a persona's template? (patch cadence)",
            definition=check,
            # The command's own bound (15 minutes) with a margin.
            timeout=Duration.hours(1),
        )

    def _suppress_nag(self) -> None:
        suppress(
            self,
            [
                basic_execution_role("the patch check"),
                star_resource(
                    "Resource * only for what supports no resource types (SSM "
                    "GetCommandInvocation, read only; Step Functions logging and X-Ray)."
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "The state machine invokes its function's versions.",
                    [VERSIONS_OF_AN_ARN],
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "The patch check reads and writes only the personas' patch state, objects "
                    "under patch/ of the stack's own evidence bucket.",
                    [r"/^Resource::<[A-Za-z0-9]*EvidenceBucket[A-Za-z0-9]*\.Arn>\/patch\/\*$/"],
                ),
            ],
        )
