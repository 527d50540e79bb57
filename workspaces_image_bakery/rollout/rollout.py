"""Opt-in rollout of a bundle's new image to the WorkSpaces created from it.

``UpdateWorkspaceBundle`` reaches only WorkSpaces created or rebuilt later. A rebuild
(``RebuildWorkspaces``) recreates the root volume from the bundle's current image and
restores the user volume from its last rebuild snapshot: **a rebuild loses a user's work
since that snapshot.** Nothing is rebuilt unless a :class:`WorkspaceRollout` is declared;
it then rebuilds, in its maintenance window, only WorkSpaces that are AVAILABLE or STOPPED,
whose user is DISCONNECTED and whose latest rebuild snapshot is newer than the user's last
connection: a canary share first, then batches, and it stops at the first failure.

Each stack holds one rollout workflow (a Step Functions state machine around one Lambda
function, and a DynamoDB table of records, one item per bundle) however many rollouts it
declares; each rollout adds an EventBridge Scheduler schedule (its own maintenance window:
stagger them per persona) and its settings in the function's configuration.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from aws_cdk import (
    Arn,
    ArnComponents,
    ArnFormat,
    Aws,
    Duration,
    RemovalPolicy,
    Stack,
    TimeZone,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from ..core.nag import VERSIONS_OF_AN_ARN, Finding, basic_execution_role, star_resource, suppress
from ..core.naming import BUNDLE_ID_PATTERN
from ..core.runtime_assets import RUNTIME_PACKAGE, contract, rollout_contract
from ..core.validation import (
    Problems,
    check_duration,
    check_int,
    check_no_secrets,
    is_token,
    seconds_of,
)
from ..image_build.build_runtime import LOG_RETENTION, logged_workflow, runtime_code
from ..image_build.bundle import IWorkspaceBundle, WorkspaceBundle

if TYPE_CHECKING:
    from aws_cdk import aws_stepfunctions_tasks as tasks

ROLLOUT_RUNTIME_ID: Final = "WorkSpacesImageBakeryRollout"
# Shared with the rollout's step and the command line (bakery_runtime/rollout/contract.py).
ENV_ROLLOUT_TABLE: Final = rollout_contract.ENV_ROLLOUT_TABLE
ENV_ROLLOUT_SETTINGS: Final = rollout_contract.ENV_ROLLOUT_SETTINGS
RECORD_KEY: Final = rollout_contract.KEY
RECORDS_ID: Final = rollout_contract.TABLE_LOGICAL_ID_START.removeprefix(ROLLOUT_RUNTIME_ID)
STEP_ADVANCE: Final = rollout_contract.STEP_ADVANCE
STEP_RECORD_FAILURE: Final = rollout_contract.STEP_RECORD_FAILURE
STATUS_WAIT: Final = rollout_contract.STATUS_WAIT
STATUS_FAILED: Final = rollout_contract.STATUS_FAILED
ERROR_TRANSIENT: Final = contract.ERROR_TRANSIENT
# Lambda's limit for all environment variables together is 4 KB: the settings of every
# rollout of a stack (an id of 13 characters, as WorkSpaces ids are, per unresolved token).
MAX_ENVIRONMENT_BYTES: Final = 3800
TOKEN_ID_LENGTH: Final = 13

MAX_CANARY_COUNT: Final = 100
MAX_CANARY_PERCENT: Final = 50
MAX_BATCH_SIZE: Final = 50
# EventBridge Scheduler: cron(minutes hours day-of-month month day-of-week year), and
# rate(value unit). A rollout runs at most hourly (rate in hours or days).
CRON: Final = re.compile(r"cron\(([^()]+)\)")
CRON_FIELD: Final = re.compile(r"[0-9A-Za-z*?,/#\-]+")
RATE: Final = re.compile(r"rate\((1 (hour|day)|[1-9][0-9]{0,4} (hours|days))\)")
SCHEDULE_TEXT: Final = (
    "an EventBridge Scheduler expression: cron(minutes hours day-of-month month day-of-week "
    "year), with ? in day-of-month or day-of-week, e.g. cron(0 3 ? * SUN *); or rate(N hours|"
    "days)"
)
# Lambda's own bound per call: a batch's rebuild calls and describes fit well within it.
STEP_TIMEOUT_MINUTES: Final = 5


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def check_schedule(problems: Problems, value: Any) -> bool:
    """A cron() or rate() expression EventBridge Scheduler accepts (literal text)."""
    if not problems.text("schedule", value, max_len=256, tokens=False):
        return False
    cron = CRON.fullmatch(value)
    if cron is not None:
        fields = cron.group(1).split(" ")
        ok = len(fields) == 6 and all(CRON_FIELD.fullmatch(f) for f in fields)
        return problems.check(
            ok and "?" in (fields[2], fields[4]), "schedule", value, SCHEDULE_TEXT
        )
    return problems.check(RATE.fullmatch(value) is not None, "schedule", value, SCHEDULE_TEXT)


def check_time_zone(problems: Problems, value: Any) -> bool:
    """An IANA time zone name (literal text), as EventBridge Scheduler takes it."""
    if not problems.text("time_zone", value, max_len=64, tokens=False):
        return False
    return problems.check(value in _time_zones(), "time_zone", value, "an IANA time zone, e.g. UTC")


@dataclass(frozen=True)
class RolloutSchedule:
    """How and when a persona's new image reaches its existing WorkSpaces (a
    :class:`WorkspaceRollout` without the bundle). See :class:`WorkspaceRollout` for each
    field; give each persona its own ``schedule`` to stagger their patch cycles."""

    schedule: str
    time_zone: str = "UTC"
    canary_count: int | None = None
    canary_percent: float | None = None
    batch_size: int = 10
    batch_pause: Duration | None = None
    window: Duration | None = None
    rebuild_timeout: Duration | None = None
    enabled: bool = True

    def apply(self, scope: Construct, id_: str, bundle: IWorkspaceBundle) -> WorkspaceRollout:
        """The rollout of `bundle` on this schedule."""
        return WorkspaceRollout(
            scope,
            id_,
            bundle=bundle,
            schedule=self.schedule,
            time_zone=self.time_zone,
            canary_count=self.canary_count,
            canary_percent=self.canary_percent,
            batch_size=self.batch_size,
            batch_pause=self.batch_pause,
            window=self.window,
            rebuild_timeout=self.rebuild_timeout,
            enabled=self.enabled,
        )


class WorkspaceRollout(Construct):
    """Rebuild the WorkSpaces created from ``bundle`` onto its current image, in a
    maintenance window. Opt-in: without this construct no WorkSpace is ever rebuilt.

    **Data loss:** a rebuild restores the user volume from its latest rebuild snapshot: work
    done after it is lost. CONNECTED users (and those whose state is UNKNOWN) are never
    rebuilt, nor are WorkSpaces whose latest rebuild snapshot is not newer than the user's
    last connection (``DescribeWorkspaceSnapshots``, ``LastKnownUserConnectionTimestamp``);
    WorkSpaces that are not AVAILABLE or STOPPED are skipped. Skipped WorkSpaces are tried
    again at the next run.

    **What is rebuilt:** the first run for an image lists every WorkSpace of the bundle at
    that moment and rebuilds those. The API does not say which image a WorkSpace runs, so
    the first run after a rollout is declared rebuilds the whole fleet, and WorkSpaces
    created between the bundle's update and that first run are rebuilt too (once more, onto
    the image they already run). WorkSpaces created after the list was taken are not in it.
    If the bundle moves to another image during a rollout, no further batch starts (state
    ``SUPERSEDED``) and the next run starts over, canary first, for that image.

    :param bundle: the bundle whose WorkSpaces are rebuilt (a :class:`WorkspaceBundle`, whose
        deployed image the run checks the bundle still uses before each batch, or an
        imported bundle).
    :param schedule: the maintenance window's start, an EventBridge Scheduler expression:
        ``cron(0 3 ? * SUN *)`` (minutes hours day-of-month month day-of-week year; ``?`` in
        day-of-month or day-of-week) or ``rate(N hours|days)``. Not a token.
    :param time_zone: an IANA time zone for a cron expression. Default ``UTC``.
    :param canary_count: WorkSpaces rebuilt first, alone, 1-100. Default 1 (when neither
        canary prop is given).
    :param canary_percent: instead, a share of the bundle's WorkSpaces, 1-50 % (at least one).
    :param batch_size: WorkSpaces rebuilt together after the canary, 1-50. Default 10.
    :param batch_pause: pause after each batch settles, before the next starts, 0 s-12 h
        (also spaces the API calls). Default 10 minutes.
    :param window: how long after the schedule fires new batches may start, 1-24 h (batches
        started go on settling). Default 4 hours.
    :param rebuild_timeout: how long a rebuilt WorkSpace may take to come back AVAILABLE
        before the rollout stops as failed, 30 min-12 h. Default 3 hours.
    :param enabled: False keeps the schedule but pauses it. Default True.

    The run stops at the first failure (a ``FailedRequests`` entry, or a rebuilt WorkSpace
    ending ERROR or UNHEALTHY); later batches are not started, and the schedule does not
    retry that image until an operator starts a run with ``"Retry": true`` or a new image
    is deployed. Every setting lives in the rollout function's configuration: an execution's
    input names only the bundle (and ``Retry``). Progress and result: the item
    :attr:`record_key` of the stack's table :attr:`records` (``GetItem``).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        bundle: IWorkspaceBundle,
        schedule: str,
        time_zone: str = "UTC",
        canary_count: int | None = None,
        canary_percent: float | None = None,
        batch_size: int = 10,
        batch_pause: Duration | None = None,
        window: Duration | None = None,
        rebuild_timeout: Duration | None = None,
        enabled: bool = True,
    ) -> None:
        super().__init__(scope, id_)
        batch_pause = Duration.minutes(10) if batch_pause is None else batch_pause
        window = Duration.hours(4) if window is None else window
        rebuild_timeout = Duration.hours(3) if rebuild_timeout is None else rebuild_timeout
        problems = Problems.of(self)
        bundle_id = getattr(bundle, "bundle_id", None)
        if not isinstance(bundle_id, str):
            problems.add("bundle", bundle, "a WorkspaceBundle or an imported bundle (bundle_id)")
        elif not is_token(bundle_id):
            problems.text(
                "bundle",
                bundle_id,
                min_len=12,
                max_len=67,
                pattern=BUNDLE_ID_PATTERN,
                pattern_text="a bundle id: wsb- and 8-63 lowercase letters or digits",
            )
        check_schedule(problems, schedule)
        check_time_zone(problems, time_zone)
        if canary_count is not None and canary_percent is not None:
            problems.add(
                "canary_percent", canary_percent, "canary_count or canary_percent, not both"
            )
        if canary_count is not None:
            check_int(problems, "canary_count", canary_count, 1, MAX_CANARY_COUNT)
        if canary_percent is not None and (
            isinstance(canary_percent, bool)
            or not isinstance(canary_percent, int | float)
            or not 1 <= canary_percent <= MAX_CANARY_PERCENT
        ):
            problems.add("canary_percent", canary_percent, f"a percentage 1-{MAX_CANARY_PERCENT}")
        check_int(problems, "batch_size", batch_size, 1, MAX_BATCH_SIZE)
        check_duration(problems, "batch_pause", batch_pause, 0, 43200, "0 s to 12 hours")
        check_duration(problems, "window", window, 3600, 86400, "1 to 24 hours")
        check_duration(
            problems, "rebuild_timeout", rebuild_timeout, 1800, 43200, "30 minutes to 12 hours"
        )
        problems.check(isinstance(enabled, bool), "enabled", enabled, "True or False")
        check_no_secrets(problems, {"schedule": schedule, "time_zone": time_zone})
        if isinstance(bundle_id, str) and not problems.found:
            RolloutRuntime.of(self).claim(problems, bundle)
        problems.raise_if_any()
        assert isinstance(bundle_id, str)

        self.bundle = bundle
        self.bundle_id = bundle_id
        runtime = RolloutRuntime.of(self)
        # The record: an item CloudFormation never writes (no deploy resets it), in a table
        # removed with the stack.
        self.records = runtime.table
        self.record_key = bundle_id
        expected_image = bundle.image_id if isinstance(bundle, WorkspaceBundle) else ""
        settings: dict[str, Any] = {
            "ImageId": expected_image,
            "BatchSize": int(batch_size),
            "PauseSeconds": int(seconds_of(batch_pause)),
            "WindowSeconds": int(seconds_of(window)),
            "RebuildTimeoutSeconds": int(seconds_of(rebuild_timeout)),
        }
        if canary_percent is not None:
            settings["CanaryPercent"] = float(canary_percent)
        else:
            settings["CanaryCount"] = int(canary_count or 1)
        runtime.allow(self, bundle_id, settings)
        # Imported by the first rollout, not with the package (about 0.05 s with DynamoDB).
        from aws_cdk import aws_scheduler as scheduler  # noqa: PLC0415
        from aws_cdk import aws_scheduler_targets as scheduler_targets  # noqa: PLC0415

        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description="workspaces-image-bakery: rebuild the bundle's WorkSpaces onto its image",
            schedule=scheduler.ScheduleExpression.expression(schedule, TimeZone.of(time_zone)),
            target=scheduler_targets.StepFunctionsStartExecution(
                runtime.state_machine,
                # The bundle only: the settings are the function's, the run is the
                # execution's id.
                input=scheduler.ScheduleTargetInput.from_object(
                    {"Rollout": {"BundleId": bundle_id}}
                ),
                role=runtime.scheduler_role,
                retry_attempts=3,
                max_event_age=Duration.hours(1),
            ),
            enabled=enabled,
        )


class RolloutRuntime(Construct):
    """The stack's one rollout workflow: a Lambda function, a state machine and the role
    the schedules start it with. Use :meth:`of`; it is created with the first rollout."""

    @classmethod
    def of(cls, scope: Construct) -> RolloutRuntime:
        stack = Stack.of(scope)
        existing = stack.node.try_find_child(ROLLOUT_RUNTIME_ID)
        if isinstance(existing, RolloutRuntime):
            return existing
        return cls(stack, ROLLOUT_RUNTIME_ID)

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self._bundles: list[object] = []
        self._bundle_ids: list[str] = []
        self._settings: dict[str, dict[str, Any]] = {}
        self._records: iam.PolicyStatement | None = None
        from aws_cdk import aws_dynamodb as dynamodb  # noqa: PLC0415 (see the schedule)

        self.table = dynamodb.Table(
            self,
            RECORDS_ID,
            partition_key=dynamodb.Attribute(name=RECORD_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.function = lambda_.Function(
            self,
            "Step",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            code=runtime_code(),
            handler=f"{RUNTIME_PACKAGE}.rollout.steps.handler",
            timeout=Duration.minutes(STEP_TIMEOUT_MINUTES),
            memory_size=256,
            description="workspaces-image-bakery: one step of a rollout to existing WorkSpaces",
            log_group=logs.LogGroup(
                self, "StepLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
            ),
        )
        self.function.add_environment(ENV_ROLLOUT_TABLE, self.table.table_name)
        self.state_machine = self._state_machine()
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            description="EventBridge Scheduler starts the rollout workflow",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
        )
        self._grant()
        self._suppress_nag()

    def claim(self, problems: Problems, bundle: object) -> None:
        """One rollout per bundle: two would share (and fight over) one record."""
        if any(b is bundle for b in self._bundles):
            problems.add(
                "bundle", getattr(bundle, "node", bundle), "a bundle no other rollout uses"
            )
        else:
            self._bundles.append(bundle)

    def allow(self, scope: Construct, bundle_id: str, settings: dict[str, Any]) -> None:
        """Let the workflow roll out this bundle with these settings, and read and write its
        record (its item only: ``dynamodb:LeadingKeys``)."""
        candidate = {**self._settings, bundle_id: settings}

        def size(value: Any) -> int:
            return TOKEN_ID_LENGTH + 2 if is_token(value) else len(json.dumps(value))

        estimate = 2 + sum(
            size(key) + 2 + sum(size(k) + size(v) + 2 for k, v in values.items())
            for key, values in candidate.items()
        )
        if estimate > MAX_ENVIRONMENT_BYTES:
            problems = Problems.of(scope)
            problems.add(
                "bundle",
                bundle_id,
                f"at most {len(self._settings)} rollouts per stack: their settings fill the "
                "rollout function's environment (Lambda's 4 KB); put more in another stack",
            )
            problems.raise_if_any()
        self._bundle_ids.append(bundle_id)
        self._settings = candidate
        self.function.add_environment(
            ENV_ROLLOUT_SETTINGS, Stack.of(self).to_json_string(self._settings)
        )
        if self._records is None:
            self._records = iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem"],
                resources=[self.table.table_arn],
            )
            self.function.add_to_role_policy(self._records)
        self._records.add_condition(
            "ForAllValues:StringEquals", {"dynamodb:LeadingKeys": list(self._bundle_ids)}
        )

    def _step(self, id_: str, step: str, selector: dict[str, str] | None) -> tasks.LambdaInvoke:
        # Loaded with the first rollout, not with every persona.
        from aws_cdk import aws_stepfunctions_tasks as tasks  # noqa: PLC0415

        # The run is the execution: a duplicate start is another run, which the record's
        # lock keeps off the bundle.
        payload: dict[str, object] = {
            "Step": step,
            "Rollout.$": "$.Rollout",
            "RunId.$": "$$.Execution.Id",
        }
        if step == STEP_RECORD_FAILURE:
            payload["Error.$"] = "$.Error"
        task = tasks.LambdaInvoke(
            self,
            id_,
            lambda_function=self.function,
            payload=sfn.TaskInput.from_object(payload),
            result_selector=selector,
            result_path=f"$.{id_}" if selector else sfn.JsonPath.DISCARD,
            retry_on_service_exceptions=True,
        )
        task.add_retry(
            # Throttling that outlived botocore's retries, and Lambda's own throttling.
            errors=[ERROR_TRANSIENT, "Lambda.TooManyRequestsException"],
            interval=Duration.seconds(30),
            backoff_rate=2,
            max_attempts=5,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task

    def _state_machine(self) -> sfn.StateMachine:
        """Advance; wait as the step says; advance again, until done or failed. Any error
        is written to the record before the execution fails."""
        advance = self._step(
            "Advance",
            STEP_ADVANCE,
            {"Status.$": "$.Payload.Status", "WaitSeconds.$": "$.Payload.WaitSeconds"},
        )
        record_failure = self._step("RecordFailure", STEP_RECORD_FAILURE, None)
        record_failure.next(
            sfn.Fail(self, "RolloutError", error="RolloutFailed", cause="see the rollout record")
        )
        advance.add_catch(record_failure, errors=[sfn.Errors.ALL], result_path="$.Error")
        wait = sfn.Wait(
            self, "WaitForRebuilds", time=sfn.WaitTime.seconds_path("$.Advance.WaitSeconds")
        )
        wait.next(advance)
        advance.next(
            sfn.Choice(self, "RolloutGoesOn?")
            .when(sfn.Condition.string_equals("$.Advance.Status", STATUS_WAIT), wait)
            .when(
                sfn.Condition.string_equals("$.Advance.Status", STATUS_FAILED),
                sfn.Fail(
                    self, "RolloutStopped", error="RolloutStopped", cause="see the rollout record"
                ),
            )
            .otherwise(sfn.Succeed(self, "RolloutDone"))
        )
        return logged_workflow(
            self,
            comment="Rebuilds a bundle's WorkSpaces onto its image: canary, then batches",
            definition=advance,
            # The longest window (24 h) and rebuild bound (12 h) with pauses, and a margin.
            timeout=Duration.hours(48),
        )

    def _grant(self) -> None:
        """Least privilege (docs/rollout.md: IAM the rollout adds)."""
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                # These actions support no resource types (Service Authorization Reference).
                actions=[
                    "workspaces:DescribeWorkspaceBundles",
                    "workspaces:DescribeWorkspaces",
                    "workspaces:DescribeWorkspacesConnectionStatus",
                    # Resource types not checked against the Service Authorization Reference.
                    "workspaces:DescribeWorkspaceSnapshots",
                ],
                resources=["*"],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["workspaces:RebuildWorkspaces"],
                resources=[
                    Arn.format(
                        ArnComponents(
                            service="workspaces",
                            resource="workspace",
                            resource_name="*",
                            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                            partition=Aws.PARTITION,
                            region=Aws.REGION,
                            account=Aws.ACCOUNT_ID,
                        )
                    )
                ],
            )
        )
        self.state_machine.grant_start_execution(self.scheduler_role)

    def _suppress_nag(self) -> None:
        suppress(
            self,
            [
                basic_execution_role("the function"),
                star_resource(
                    "Resource * only for what supports no resource types (WorkSpaces "
                    "DescribeWorkspaces, DescribeWorkspaceBundles, "
                    "DescribeWorkspacesConnectionStatus, DescribeWorkspaceSnapshots, read "
                    "only; Step Functions logging and X-Ray)."
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "The WorkSpaces created from a bundle are the users' own and unknown at "
                    "deploy time: RebuildWorkspaces is limited to WorkSpaces of this account "
                    "and Region, and the function rebuilds only those DescribeWorkspaces "
                    "lists for the stack's bundles.",
                    [
                        "Resource::arn:<AWS::Partition>:workspaces:<AWS::Region>:"
                        "<AWS::AccountId>:workspace/*"
                    ],
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "The state machine invokes its function's versions.",
                    [VERSIONS_OF_AN_ARN],
                ),
            ],
        )
