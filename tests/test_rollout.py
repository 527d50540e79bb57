"""The opt-in rollout of a bundle's image to existing WorkSpaces: props checked at synth, the
template (schedule, workflow, record table, IAM, cdk-nag, cfn-lint), and the synthesized
workflow run with the project's ASL runner against the WorkSpaces fleet fake and moto's
DynamoDB."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import Duration
from aws_cdk.assertions import Annotations, Match, Template
from bakery_runtime.core.aws import RETRY_CONFIG
from bakery_runtime.core.errors import TransientError
from bakery_runtime.rollout import contract as rollout_contract
from bakery_runtime.rollout import steps as rollout
from cdk_nag import AwsSolutionsChecks
from moto import mock_aws

from workspaces_image_bakery import BakeryValidationError, ImageBakeryStack, ImageDesign
from workspaces_image_bakery.image_build.bundle import WorkspaceBundle
from workspaces_image_bakery.rollout.rollout import RolloutSchedule, WorkspaceRollout

from .fakes.workspaces_fleet import FakeWorkSpacesFleet
from .harness import asl, cfn_lint

SHARED_BUNDLE = "wsb-shared0001"
DEVELOPER_BUNDLE = "wsb-developer01"
TABLE = "rollout-records"
# The ASL runner reads paths of the input only: the context object ($$) is put in the input.
CONTEXT = "__context__"


# ----- synth ---------------------------------------------------------------------------------
@dataclass
class Synth:
    template: dict[str, Any]
    nag: list[Any]


@pytest.fixture(scope="module")
def synth() -> Synth:
    """One stack: a persona's bundle rolled out weekly with the defaults, and an imported
    bundle rolled out with a canary share and small batches. Synthesized once."""
    app = cdk.App()
    stack = ImageBakeryStack(
        app, "Rollouts", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    developer = stack.add_persona(
        "Developer",
        name="developer",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0.0",
        template_workspace_id="ws-dev0template1",
        tags={"Role": "r", "Confidentiality": "internal"},
    )
    # As a persona's `rollout` prop would: inside the persona, on its bundle.
    RolloutSchedule("cron(0 3 ? * SUN *)", time_zone="Europe/Berlin").apply(
        developer, "Rollout", developer.bundle
    )
    WorkspaceRollout(
        stack,
        "SharedRollout",
        bundle=WorkspaceBundle.from_bundle_id(stack, "Shared", SHARED_BUNDLE),
        schedule="rate(7 days)",
        canary_percent=10,
        batch_size=2,
        batch_pause=Duration.minutes(5),
    )
    # A tag reaching every resource: it must not reach (and reset) any record.
    cdk.Tags.of(app).add("Team", "desktops")
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    template = dict(Template.from_stack(stack).to_json())
    annotations = Annotations.from_stack(stack)
    nag = [
        *annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")),
        *annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")),
    ]
    return Synth(template, nag)


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _rollout_machine(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = [
        v
        for k, v in _of_type(template, "AWS::StepFunctions::StateMachine").items()
        if k.startswith("WorkSpacesImageBakeryRollout")
    ]
    return machine


def _schedules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k.split("Rollout")[0]: v["Properties"]
        for k, v in _of_type(template, "AWS::Scheduler::Schedule").items()
    }


def _role_statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    roles = [k for k in _of_type(template, "AWS::IAM::Role") if k.startswith(role_prefix)]
    assert len(roles) == 1, roles
    return [
        s
        for p in _of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": roles[0]} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    """A (possibly Fn::Join'ed) string with tokens shown as <Ref> / <GetAtt>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(_text(p) for p in value["Fn::Join"][1])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    return json.dumps(value)


def test_cdk_nag_finds_nothing(synth: Synth) -> None:
    assert synth.nag == []


def _settings_env(template: dict[str, Any]) -> Any:
    (function,) = [
        f["Properties"]
        for f in _of_type(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "bakery_runtime.rollout.steps.handler"
    ]
    return function["Environment"]["Variables"]


def test_each_rollout_has_its_schedule_and_its_settings_in_the_function(synth: Synth) -> None:
    schedules = _schedules(synth.template)
    developer, shared = schedules["Developer"], schedules["Shared"]
    assert developer["ScheduleExpression"] == "cron(0 3 ? * SUN *)"
    assert developer["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert developer["State"] == "ENABLED"
    assert shared["ScheduleExpression"] == "rate(7 days)"
    # The input names the bundle only: no setting an execution could change.
    assert _text(developer["Target"]["Input"]) == (
        '{"Rollout":{"BundleId":"<DeveloperBundle.BundleId>"}}'.replace(
            "DeveloperBundle", _bundle_logical_id(synth.template)
        )
    )
    assert json.loads(shared["Target"]["Input"]) == {"Rollout": {"BundleId": SHARED_BUNDLE}}
    (machine,) = [
        k
        for k in _of_type(synth.template, "AWS::StepFunctions::StateMachine")
        if k.startswith("WorkSpacesImageBakeryRollout")
    ]
    for schedule in (developer, shared):
        assert schedule["Target"]["Arn"] == {"Ref": machine}
    settings = json.loads(
        _resolve_settings(
            _settings_env(synth.template)[rollout_contract.ENV_ROLLOUT_SETTINGS], "wsi-1"
        )
    )
    assert settings[DEVELOPER_BUNDLE] == {
        "ImageId": "wsi-1", "BatchSize": 10, "PauseSeconds": 600, "WindowSeconds": 14400,
        "RebuildTimeoutSeconds": 10800, "CanaryCount": 1,
    }  # fmt: skip
    assert settings[SHARED_BUNDLE] == {
        "ImageId": "", "BatchSize": 2, "PauseSeconds": 300, "WindowSeconds": 14400,
        "RebuildTimeoutSeconds": 10800, "CanaryPercent": 10,
    }  # fmt: skip


def test_cloudformation_owns_the_table_never_a_record(synth: Synth) -> None:
    """A deploy (a tag, any property) updates what CloudFormation owns: no record is among
    it. The records are items of one table per stack, removed with the stack."""
    assert _of_type(synth.template, "AWS::SSM::Parameter") == {}
    ((logical, table),) = _of_type(synth.template, "AWS::DynamoDB::Table").items()
    assert logical.startswith("WorkSpacesImageBakeryRolloutRecords")
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": rollout.KEY, "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert {"Key": "Team", "Value": "desktops"} in props["Tags"]
    assert table["DeletionPolicy"] == "Delete" and table["UpdateReplacePolicy"] == "Delete"
    env = _settings_env(synth.template)
    assert env[rollout_contract.ENV_ROLLOUT_TABLE] == {"Ref": logical}


def _bundle_logical_id(template: dict[str, Any]) -> str:
    (logical,) = [k for k in template["Resources"] if k.startswith("DeveloperBundle")]
    return str(logical)


def _resolve_settings(value: Any, image_id: str) -> str:
    """The function's ROLLOUT_SETTINGS as deployed: the developer bundle's id and image."""
    parts = value["Fn::Join"][1] if isinstance(value, dict) else [value]
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
        else:
            text += DEVELOPER_BUNDLE if part["Fn::GetAtt"][1] == "BundleId" else image_id
    return text


def test_one_workflow_serves_every_rollout_and_runs_as_its_execution(synth: Synth) -> None:
    functions = [
        f["Properties"]
        for f in _of_type(synth.template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "bakery_runtime.rollout.steps.handler"
    ]
    assert len(functions) == 1
    definition = asl.definition_from_template(_rollout_machine(synth.template))
    assert definition["StartAt"] == "Advance"
    assert definition["States"]["WaitForRebuilds"]["SecondsPath"] == "$.Advance.WaitSeconds"
    for step in ("Advance", "RecordFailure"):
        payload = definition["States"][step]["Parameters"]["Payload"]
        assert payload["RunId.$"] == "$$.Execution.Id" and payload["Rollout.$"] == "$.Rollout"
    assert _rollout_machine(synth.template)["Properties"]["TracingConfiguration"]["Enabled"]


def test_iam_is_scoped(synth: Synth) -> None:
    statements = _role_statements(synth.template, "WorkSpacesImageBakeryRolloutStepServiceRole")
    by_action = {a: s for s in statements for a in _listify(s["Action"])}
    workspaces = sorted(a for a in by_action if a.startswith("workspaces:"))
    assert workspaces == [
        "workspaces:DescribeWorkspaceBundles",
        "workspaces:DescribeWorkspaceSnapshots",
        "workspaces:DescribeWorkspaces",
        "workspaces:DescribeWorkspacesConnectionStatus",
        "workspaces:RebuildWorkspaces",
    ]
    for action in workspaces[:4]:
        assert by_action[action]["Resource"] == "*"
    rebuild = _listify(by_action["workspaces:RebuildWorkspaces"]["Resource"])
    assert [_text(r) for r in rebuild] == [
        "arn:<AWS::Partition>:workspaces:<AWS::Region>:<AWS::AccountId>:workspace/*"
    ]
    # The records: get and put (conditional) on the table, the stack's bundles' items only.
    records = by_action["dynamodb:PutItem"]
    assert by_action["dynamodb:GetItem"] is records
    (table,) = _of_type(synth.template, "AWS::DynamoDB::Table")
    assert records["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
    keys = records["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert [_text(k) for k in keys] == [
        f"<{_bundle_logical_id(synth.template)}.BundleId>",
        SHARED_BUNDLE,
    ]
    assert sorted(a for a in by_action if not a.startswith("workspaces:")) == [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    ]
    scheduler = _role_statements(synth.template, "WorkSpacesImageBakeryRolloutSchedulerRole")
    assert [a for s in scheduler for a in _listify(s["Action"])] == ["states:StartExecution"]
    role = next(
        v
        for k, v in _of_type(synth.template, "AWS::IAM::Role").items()
        if k.startswith("WorkSpacesImageBakeryRolloutSchedulerRole")
    )
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_cfn_lint_finds_no_errors(synth: Synth) -> None:
    assert cfn_lint.errors(synth.template) == []


# ----- props ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Props")


_COUNTER = iter(range(10**6))


def _problems(stack: cdk.Stack, **props: Any) -> dict[str, Any]:
    n = next(_COUNTER)
    bundle = props.pop("bundle", None) or WorkspaceBundle.from_bundle_id(
        stack, f"B{n}", f"wsb-bundle{n:05d}"
    )
    with pytest.raises(BakeryValidationError) as raised:
        WorkspaceRollout(
            stack, f"R{n}", bundle=bundle, **{"schedule": "cron(0 3 ? * SUN *)", **props}
        )
    for problem in raised.value.problems:
        assert problem.path.endswith(f"/R{n}"), problem
    return {p.field: p for p in raised.value.problems}


@pytest.mark.parametrize(
    "schedule",
    [
        "cron(0 3 * * SUN *)",  # neither day field is ?
        "cron(0 3 ? * SUN)",  # five fields
        "cron(0 3 ? * SUN *",
        "rate(5 minutes)",  # a rollout runs at most hourly
        "rate(0 days)",
        "every sunday",
        "at(2026-12-01T03:00:00)",
        "",
    ],
)
def test_a_bad_schedule_is_refused(stack: cdk.Stack, schedule: str) -> None:
    problems = _problems(stack, schedule=schedule)
    assert list(problems) == ["schedule"]
    assert problems["schedule"].value == schedule


def test_every_bad_prop_is_reported_at_once(stack: cdk.Stack) -> None:
    problems = _problems(
        stack,
        time_zone="Mars/Olympus",
        canary_count=0,
        batch_size=-1,
        batch_pause=Duration.hours(13),
        window=Duration.minutes(30),
        rebuild_timeout=Duration.minutes(5),
        enabled="yes",
    )
    assert sorted(problems) == [
        "batch_pause",
        "batch_size",
        "canary_count",
        "enabled",
        "rebuild_timeout",
        "time_zone",
        "window",
    ]
    assert "1-50" in problems["batch_size"].allowed and problems["batch_size"].value == -1
    assert "IANA" in problems["time_zone"].allowed


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"canary_count": 2, "canary_percent": 5}, "canary_percent"),
        ({"canary_percent": 75}, "canary_percent"),
        ({"canary_percent": True}, "canary_percent"),
        ({"canary_count": 101}, "canary_count"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"batch_size": 51}, "batch_size"),
    ],
)
def test_canary_and_batch_bounds(stack: cdk.Stack, props: dict[str, Any], field: str) -> None:
    assert list(_problems(stack, **props)) == [field]


def test_a_bad_bundle_id_and_a_second_rollout_of_one_bundle_are_refused(
    stack: cdk.Stack,
) -> None:
    bad = type("Bundle", (), {"bundle_id": "wsb-NOPE"})()
    assert list(_problems(stack, bundle=bad)) == ["bundle"]
    assert list(_problems(stack, bundle=object())) == ["bundle"]
    bundle = WorkspaceBundle.from_bundle_id(stack, "Twice", "wsb-twice0001")
    WorkspaceRollout(stack, "First", bundle=bundle, schedule="cron(0 3 ? * SUN *)")
    problems = _problems(stack, bundle=bundle)
    assert "no other rollout" in problems["bundle"].allowed


def test_the_settings_must_fit_the_functions_environment() -> None:
    """Every rollout's settings are in the function's environment (Lambda: 4 KB in all)."""
    stack = cdk.Stack(cdk.App(), "Many")
    with pytest.raises(BakeryValidationError) as raised:
        for n in range(40):
            WorkspaceRollout(
                stack,
                f"R{n}",
                bundle=WorkspaceBundle.from_bundle_id(stack, f"B{n}", f"wsb-{n:09d}"),
                schedule="rate(7 days)",
            )
    (problem,) = raised.value.problems
    assert problem.field == "bundle" and "rollouts per stack" in problem.allowed
    assert 20 <= n < 40


def test_a_secret_in_the_schedule_is_never_shown(stack: cdk.Stack) -> None:
    secret = "AKIAIOSFODNN7EXAMPLE"
    with pytest.raises(BakeryValidationError) as raised:
        WorkspaceRollout(
            stack,
            "Secret",
            bundle=WorkspaceBundle.from_bundle_id(stack, "SecretBundle", "wsb-secret0001"),
            schedule=f"cron(0 3 ? * SUN {secret})",
        )
    assert secret not in str(raised.value)


# ----- the workflow, run -------------------------------------------------------------------
def _with_context(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with context paths ($$.x) read from the input's CONTEXT key."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and value.startswith("$$."):
            return f"$.{CONTEXT}.{value[3:]}"
        return value

    result: dict[str, Any] = walk(copy.deepcopy(definition))
    return result


@dataclass
class Fleet:
    fake: FakeWorkSpacesFleet
    clients: rollout.Clients
    clock: asl.Clock
    definition: dict[str, Any]
    template: dict[str, Any]
    monkeypatch: pytest.MonkeyPatch
    runs: int = 0
    # What the Lambda context says is left of each call (ms); tests spend it.
    budget_per_call: int = 900_000
    budget: int = 900_000
    answers: list[dict[str, Any]] = field(default_factory=list)
    _next_rebuild: dict[int, str] = field(default_factory=dict)

    def deploy(self, image_id: str) -> None:
        """The function's configuration as a deploy of the developer bundle on `image_id`
        sets it."""
        value = _settings_env(self.template)[rollout_contract.ENV_ROLLOUT_SETTINGS]
        self.monkeypatch.setenv(
            rollout_contract.ENV_ROLLOUT_SETTINGS, _resolve_settings(value, image_id)
        )

    def start(self, persona: str, bundle_id: str) -> dict[str, Any]:
        """A new execution's input as Scheduler sends it, with the execution's context."""
        target = _schedules(self.template)[persona]["Target"]["Input"]
        text = _resolve_settings(target, "")
        assert json.loads(text)["Rollout"]["BundleId"] == bundle_id
        self.runs += 1
        parsed: dict[str, Any] = json.loads(text)
        parsed[CONTEXT] = {
            "Execution": {
                "Id": f"arn:aws:states:us-east-1:123456789012:execution:R:run-{self.runs}"
            }
        }
        return parsed

    def invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.budget = self.budget_per_call
        try:
            answer = rollout.run_step(
                payload, self.clients, now=self.clock.now, remaining_ms=lambda: self.budget
            )
        except (rollout.RolloutFailed, TransientError) as error:
            cause = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__})
            raise asl.TaskError(type(error).__name__, cause) from None
        self.answers.append(answer)
        return answer

    def resume(self, execution: dict[str, Any], pause_at: str | None = None) -> asl.Run:
        return asl.run(_with_context(self.definition), execution, self.invoke, self.clock, pause_at)

    def run(self, persona: str, bundle_id: str, image_id: str | None = None) -> asl.Run:
        if image_id is not None:
            self.deploy(image_id)
        return self.resume(self.start(persona, bundle_id))

    def step(self, execution: dict[str, Any]) -> dict[str, Any]:
        """One Advance call of an execution, as the state machine makes it."""
        payload = {
            "Step": "Advance",
            "Rollout": execution["Rollout"],
            "RunId": execution[CONTEXT]["Execution"]["Id"],
        }
        return rollout.run_step(payload, self.clients, now=self.clock.now)

    def record(self, bundle_id: str) -> dict[str, Any]:
        return rollout.load_record(self.clients.records, bundle_id)

    def batches(self) -> list[list[str]]:
        """The RebuildWorkspaces calls the service accepted, grouped by the describes between
        (not counting the look at each WorkSpace right before its own rebuild)."""
        groups: list[list[str]] = []
        previous = ""
        upcoming = ""
        for index, (operation, params) in reversed(list(enumerate(self.fake.calls))):
            if operation == "RebuildWorkspaces":
                upcoming = params["RebuildWorkspaceRequests"][0]["WorkspaceId"]
            self._next_rebuild[index] = upcoming
        for index, (operation, params) in enumerate(self.fake.calls):
            if operation == "RebuildWorkspaces":
                workspace_id = params["RebuildWorkspaceRequests"][0]["WorkspaceId"]
                seen = {w for group in groups for w in group}
                if workspace_id in self.fake.rebuilt and workspace_id not in seen:
                    if previous != "RebuildWorkspaces":
                        groups.append([])
                    groups[-1].append(workspace_id)
            elif (
                self._next_rebuild[index]
                in (params.get("WorkspaceIds") or [params.get("WorkspaceId")])
                and len(params.get("WorkspaceIds") or [0]) == 1
            ):
                continue  # a look at the WorkSpace about to be rebuilt
            previous = operation
        return groups


@pytest.fixture
def fleet(synth: Synth, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    with mock_aws():
        fake = FakeWorkSpacesFleet()
        dynamodb = boto3.client("dynamodb", region_name="us-east-1", config=RETRY_CONFIG)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": rollout.KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": rollout.KEY, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients = rollout.Clients(
            workspaces=fake.client(RETRY_CONFIG), records=rollout.RecordStore(dynamodb, TABLE)
        )
        definition = asl.definition_from_template(_rollout_machine(synth.template))
        fleet = Fleet(
            fake, clients, asl.Clock(1_800_000_000.0), definition, synth.template, monkeypatch
        )
        fleet.deploy("wsi-notdeployed")
        yield fleet


def _developer(fleet: Fleet, count: int, **kwargs: Any) -> tuple[str, str, list[str]]:
    """The developer bundle with `count` WorkSpaces on its first image, then a new image."""
    bundle = fleet.fake.add_bundle(bundle_id=DEVELOPER_BUNDLE)
    ids = fleet.fake.add_user_workspaces(bundle, count, **kwargs)
    return bundle, fleet.fake.new_image(bundle), ids


def test_a_rollout_rebuilds_the_canary_then_batches_and_records_the_result(fleet: Fleet) -> None:
    bundle, image, ids = _developer(fleet, 12)
    started = fleet.clock.now
    run = fleet.run("Developer", bundle, image)
    assert run.status == "SUCCEEDED", run.output
    # One canary alone, settled before anything else; then batches of 10.
    assert fleet.batches() == [ids[:1], ids[1:11], ids[11:]]
    assert sorted(fleet.fake.on_image(image)) == sorted(ids)
    assert all(fleet.fake.workspaces[w].state == "AVAILABLE" for w in ids)
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_COMPLETED
    assert record["image"] == image and record["bundle"] == bundle
    assert record["rebuiltCount"] == 12 and record["pending"] == [] and record["failed"] == []
    assert record["total"] == 12 and record["skippedConnected"] == []
    assert record["run"].endswith(":run-1") and record["finished"]
    # Two pauses of 10 minutes between the three batches, and polls while they rebuilt.
    assert fleet.clock.now - started >= 2 * 600


def test_a_second_run_after_completion_rebuilds_nothing(fleet: Fleet) -> None:
    bundle, image, _ = _developer(fleet, 3)
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    rebuilds = fleet.fake.count("RebuildWorkspaces")
    first = fleet.record(bundle)
    run = fleet.run("Developer", bundle, image)
    assert run.status == "SUCCEEDED"
    assert fleet.fake.count("RebuildWorkspaces") == rebuilds
    second = fleet.record(bundle)
    assert second["state"] == rollout_contract.STATE_COMPLETED
    assert second["started"] == first["started"] and second["rebuiltCount"] == 3


def test_connected_users_are_never_rebuilt_and_are_tried_again_next_run(fleet: Fleet) -> None:
    bundle = fleet.fake.add_bundle(bundle_id=DEVELOPER_BUNDLE)
    idle = fleet.fake.add_user_workspaces(bundle, 3)
    connected = fleet.fake.add_user_workspaces(bundle, 2, connection="CONNECTED")
    unknown = fleet.fake.add_user_workspaces(bundle, 1, connection="UNKNOWN")
    stopped = fleet.fake.add_user_workspaces(bundle, 1, state="STOPPED")
    busy = fleet.fake.add_user_workspaces(bundle, 1, state="ADMIN_MAINTENANCE")
    image = fleet.fake.new_image(bundle)
    run = fleet.run("Developer", bundle, image)
    assert run.status == "SUCCEEDED"
    assert sorted(fleet.fake.rebuilt) == sorted(idle + stopped)
    assert not set(fleet.fake.rebuilt) & set(connected + unknown + busy)
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_PARTIAL
    assert sorted(record["skippedConnected"]) == sorted(connected + unknown)
    assert record["skippedState"] == busy
    assert sorted(record["pending"]) == sorted(connected + unknown + busy)
    # A WorkSpace created after the list was taken comes from the image: not in the list.
    (late,) = fleet.fake.add_user_workspaces(bundle, 1)
    for workspace_id in connected + unknown:
        fleet.fake.fleet[workspace_id].connection = "DISCONNECTED"
    fleet.fake.workspaces[busy[0]].state = "AVAILABLE"
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert sorted(fleet.fake.on_image(image)) == sorted(
        idle + stopped + connected + unknown + busy + [late]
    )
    assert late not in fleet.fake.rebuilt and fleet.fake.count("RebuildWorkspaces") == 8
    assert fleet.record(bundle)["state"] == rollout_contract.STATE_COMPLETED


def test_the_first_run_rebuilds_every_workspace_listed_then(fleet: Fleet) -> None:
    """What the docstrings say: WorkSpaces created between the bundle's update and the first
    run are listed and rebuilt (the API does not tell which image a WorkSpace runs)."""
    bundle, image, ids = _developer(fleet, 2)
    between = fleet.fake.add_user_workspaces(bundle, 1)  # on the new image already
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert sorted(fleet.fake.rebuilt) == sorted(ids + between)
    for doc in (rollout.__doc__, WorkspaceRollout.__doc__):
        assert doc is not None and "never rebuilt" not in doc
        assert "created between the bundle's update and" in " ".join(doc.split())


@pytest.mark.parametrize("how", ["ends in ERROR", "refused"])
def test_a_rollout_stops_at_the_first_failure(fleet: Fleet, how: str) -> None:
    bundle = fleet.fake.add_bundle(bundle_id=SHARED_BUNDLE)
    ids = fleet.fake.add_user_workspaces(bundle, 9)
    image = fleet.fake.new_image(bundle)
    broken = ids[3]  # the second batch of two, after the canary (10 % of 9: one)
    if how == "refused":
        fleet.fake.fleet[broken].refuse = ("InvalidResourceState", "The WorkSpace is busy.")
    else:
        fleet.fake.fleet[broken].rebuild_outcome = "ERROR"
    run = fleet.run("Shared", bundle)
    assert run.status == "FAILED" and run.output["Error"] == "RolloutStopped"
    if how == "refused":
        assert fleet.batches() == [ids[:1], ids[1:3]]
    else:
        assert fleet.batches() == [ids[:1], ids[1:3], ids[3:5]]
    assert not set(fleet.fake.rebuilt) & set(ids[5:])  # later batches untouched
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_FAILED
    assert record["failed"][0]["workspaceId"] == broken
    assert ("ERROR" if how == "ends in ERROR" else "InvalidResourceState") in record["failed"][0][
        "reason"
    ]
    assert broken in record["note"]
    # The schedule's next run does not retry a failed image; a run with Retry goes on.
    rebuilds = fleet.fake.count("RebuildWorkspaces")
    assert fleet.run("Shared", bundle).status == "SUCCEEDED"
    assert fleet.fake.count("RebuildWorkspaces") == rebuilds
    assert fleet.record(bundle)["state"] == rollout_contract.STATE_FAILED
    fleet.fake.workspaces[broken].state = "AVAILABLE"
    retry = fleet.start("Shared", bundle)
    retry["Rollout"]["Retry"] = True
    assert fleet.resume(retry).status == "SUCCEEDED"
    assert sorted(fleet.fake.on_image(image)) == sorted(ids)
    assert fleet.record(bundle)["state"] == rollout_contract.STATE_COMPLETED


def test_throttled_rebuilds_are_retried(fleet: Fleet) -> None:
    bundle, image, ids = _developer(fleet, 4)
    # Three throttled answers: botocore's standard retries absorb them.
    fleet.fake.fail("RebuildWorkspaces", "ThrottlingException", "Rate exceeded", times=3)
    run = fleet.run("Developer", bundle, image)
    assert run.status == "SUCCEEDED" and run.retries == 0
    assert fleet.fake.count("RebuildWorkspaces") == 4 + 3
    # Throttling that outlives botocore's eleven attempts (ten retries): the workflow
    # retries the step.
    bundle2 = fleet.fake.add_bundle(bundle_id=SHARED_BUNDLE)
    more = fleet.fake.add_user_workspaces(bundle2, 3)
    fleet.fake.new_image(bundle2)
    fleet.fake.fail("RebuildWorkspaces", "ThrottlingException", "Rate exceeded", times=11)
    run = fleet.run("Shared", bundle2)
    assert run.status == "SUCCEEDED", run.output
    assert run.retries == 1
    assert sorted(fleet.fake.rebuilt) == sorted(ids + more)
    assert fleet.record(bundle2)["state"] == rollout_contract.STATE_COMPLETED


def test_nothing_is_rebuilt_when_the_bundle_is_not_on_the_deployed_image(fleet: Fleet) -> None:
    bundle, image, _ = _developer(fleet, 2)
    run = fleet.run("Developer", bundle, "wsi-000000999x")
    assert run.status == "SUCCEEDED"
    assert fleet.fake.rebuilt == []
    assert image in fleet.record(bundle)["note"]


def test_the_maintenance_window_ends_the_run_and_the_next_goes_on(fleet: Fleet) -> None:
    bundle, image, ids = _developer(fleet, 12)
    # Rebuilds that take long: the 4-hour window closes after the canary and a batch.
    for workspace_id in ids:
        fleet.fake.fleet[workspace_id].rebuild_polls = 25  # 25 polls of 5 minutes
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_PARTIAL and "window" in record["note"]
    assert 0 < record["rebuiltCount"] < 12 and len(record["pending"]) == 12 - record["rebuiltCount"]
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert sorted(fleet.fake.on_image(image)) == sorted(ids)


def test_another_bundle_or_a_running_rollout_is_left_alone(fleet: Fleet) -> None:
    bundle, image, _ = _developer(fleet, 2)
    fleet.deploy(image)
    foreign = fleet.start("Developer", bundle)
    foreign["Rollout"]["BundleId"] = "wsb-notours0001"
    with pytest.raises(rollout.RolloutFailed, match="not rolled out by this stack"):
        fleet.step(foreign)
    # A run still going (its record fresh) keeps the bundle: a second one does nothing.
    first = fleet.start("Developer", bundle)
    assert fleet.step(first)["Status"] == rollout_contract.STATUS_WAIT
    answer = fleet.step(fleet.start("Developer", bundle))
    assert answer["Status"] == rollout_contract.STATUS_DONE and "run-" in answer["Reason"]
    assert fleet.record(bundle)["run"] == first[CONTEXT]["Execution"]["Id"]
    assert fleet.fake.count("RebuildWorkspaces") == 1


# ----- the review's findings, each with the run that showed it ----------------------------
def test_settings_come_from_the_function_not_from_the_execution_input(fleet: Fleet) -> None:
    """Whoever may start an execution cannot pick a bigger canary, bigger batches, another
    window or skip the image check: only the bundle and Retry are read from the input."""
    bundle, image, ids = _developer(fleet, 12)
    fleet.deploy(image)
    execution = fleet.start("Developer", bundle)
    execution["Rollout"].update(
        ImageId="", CanaryCount=50, BatchSize=50, PauseSeconds=0, WindowSeconds=86400,
        RunId="chosen-by-the-caller",
    )  # fmt: skip
    assert fleet.resume(execution).status == "SUCCEEDED"
    assert fleet.batches() == [ids[:1], ids[1:11], ids[11:]]
    assert fleet.record(bundle)["run"] == execution[CONTEXT]["Execution"]["Id"]
    # And the image check holds whatever the input says.
    newer = fleet.fake.new_image(bundle)
    execution = fleet.start("Developer", bundle)
    execution["Rollout"]["ImageId"] = newer
    assert fleet.resume(execution).status == "SUCCEEDED"
    assert fleet.fake.count("RebuildWorkspaces") == 12
    assert (
        newer in fleet.record(bundle)["note"]
        and "nothing was rebuilt" in fleet.record(bundle)["note"]
    )


def test_an_image_deployed_during_a_rollout_stops_it_before_the_next_batch(fleet: Fleet) -> None:
    bundle, image, ids = _developer(fleet, 12)
    fleet.deploy(image)
    execution = fleet.start("Developer", bundle)
    # The canary is being rebuilt (onto `image`) when a deploy moves the bundle on.
    assert fleet.resume(execution, pause_at="WaitForRebuilds").status == "RUNNING"
    assert fleet.fake.rebuilt == ids[:1]
    newer = fleet.fake.new_image(bundle, image_name="persona-1.2.0-22222222")
    run = fleet.resume(execution)  # the same execution goes on
    assert run.status == "SUCCEEDED"
    assert fleet.fake.rebuilt == ids[:1]  # no batch onto the newer image without a canary
    assert fleet.fake.on_image(image) == ids[:1]
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_SUPERSEDED and record["image"] == image
    assert newer in record["note"] and "starts over" in record["note"]
    # The function's configuration follows the deploy; the next run starts over, canary first.
    fleet.deploy(newer)
    fleet.fake.calls.clear()
    fleet.fake.rebuilt.clear()
    assert fleet.run("Developer", bundle).status == "SUCCEEDED"
    assert fleet.batches() == [ids[:1], ids[1:11], ids[11:]]
    assert sorted(fleet.fake.on_image(newer)) == sorted(ids)
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_COMPLETED and record["image"] == newer


def test_a_stack_deploy_ahead_of_the_bundle_also_stops_the_rollout(fleet: Fleet) -> None:
    bundle, image, ids = _developer(fleet, 4)
    fleet.deploy(image)
    execution = fleet.start("Developer", bundle)
    assert fleet.resume(execution, pause_at="WaitForRebuilds").status == "RUNNING"
    fleet.deploy("wsi-000000777x")  # the function has the new image; the bundle not yet
    assert fleet.resume(execution).status == "SUCCEEDED"
    assert fleet.fake.rebuilt == ids[:1]
    assert fleet.record(bundle)["state"] == rollout_contract.STATE_SUPERSEDED


def test_two_runs_at_once_one_takes_the_bundle_the_other_leaves_it(fleet: Fleet) -> None:
    """Both read the record before either wrote it (a duplicate start): the conditional
    write lets one through; the other rebuilds nothing and leaves the record alone."""
    bundle, image, ids = _developer(fleet, 4)
    fleet.deploy(image)
    first, second = fleet.start("Developer", bundle), fleet.start("Developer", bundle)
    answers: list[dict[str, Any]] = []

    def meanwhile(params: dict[str, Any], **_: Any) -> None:
        if "BundleId" in params and not answers:  # the first run lists the bundle...
            answers.append({})
            answers.append(fleet.step(second))  # ...while the second runs its first step

    fleet.clients.workspaces.meta.events.register(
        "provide-client-params.workspaces.DescribeWorkspaces", meanwhile
    )
    answer = fleet.step(first)
    assert answers[1]["Status"] == rollout_contract.STATUS_WAIT  # the second took the bundle
    assert answer["Status"] == rollout_contract.STATUS_DONE and "another run" in answer["Reason"]
    assert fleet.fake.rebuilt == ids[:1]  # one canary, by the second run
    record = fleet.record(bundle)
    assert record["run"] == second[CONTEXT]["Execution"]["Id"]
    assert record["inFlight"] == ids[:1]


def test_each_accepted_rebuild_is_saved_and_a_call_short_of_time_stops_its_batch(
    fleet: Fleet,
) -> None:
    bundle, image, ids = _developer(fleet, 12)
    seen: list[list[str]] = []

    def spend(workspace_id: str) -> None:
        # What a Lambda timeout at this moment would leave: the record as saved so far.
        seen.append(list(fleet.record(bundle).get("inFlight", [])))
        fleet.budget -= 50_000

    fleet.fake.on_rebuild = spend
    fleet.budget_per_call = 200_000  # three rebuilds, then under 60 s left
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    batches = fleet.batches()
    assert batches[0] == ids[:1] and max(len(b) for b in batches) == 3
    assert [w for b in batches for w in b] == ids
    # Every rebuild found the ones before it in its batch already recorded.
    assert seen == [[]] + [b[:i] for b in batches[1:] for i in range(len(b))]
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_COMPLETED and record["rebuiltCount"] == 12


def test_a_call_with_no_time_left_rebuilds_nothing_and_goes_on(fleet: Fleet) -> None:
    bundle, image, ids = _developer(fleet, 2)
    fleet.budget_per_call = 59_000
    fleet.deploy(image)
    execution = fleet.start("Developer", bundle)
    assert fleet.resume(execution, pause_at="WaitForRebuilds").status == "RUNNING"
    assert fleet.fake.rebuilt == [] and fleet.answers[-1]["Status"] == rollout_contract.STATUS_WAIT
    fleet.budget_per_call = 900_000
    assert fleet.resume(execution).status == "SUCCEEDED"
    assert fleet.batches() == [ids[:1], ids[1:]]


def test_a_user_whose_work_is_newer_than_the_last_snapshot_is_not_rebuilt(fleet: Fleet) -> None:
    bundle, image, ids = _developer(fleet, 4)
    after_snapshot, no_snapshot, unknown, fine = ids
    user = fleet.fake.fleet
    user[after_snapshot].last_connected = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    user[no_snapshot].rebuild_snapshots = []
    user[unknown].last_connected = None  # the service gives no last connection
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert fleet.fake.rebuilt == [fine]
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_PARTIAL
    assert sorted(record["skippedSnapshot"]) == sorted([after_snapshot, no_snapshot, unknown])
    assert "snapshot" in record["note"]
    # Three when the batch was chosen (none for the unknown one), one right before the rebuild.
    assert fleet.fake.count("DescribeWorkspaceSnapshots") == 4
    # A snapshot taken after the user left, a last connection known: the next run rebuilds them.
    for workspace_id in (after_snapshot, no_snapshot):
        user[workspace_id].rebuild_snapshots = [dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)]
    user[unknown].last_connected = dt.datetime(2026, 11, 26, 18, 0, tzinfo=dt.UTC)
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert sorted(fleet.fake.on_image(image)) == sorted(ids)
    assert fleet.record(bundle)["state"] == rollout_contract.STATE_COMPLETED


def test_a_bundle_too_big_for_one_record_fails_before_anything_is_rebuilt(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollout, "MAX_RECORD_BYTES", 600)  # 350 KB in AWS
    bundle, image, ids = _developer(fleet, 40)
    run = fleet.run("Developer", bundle, image)
    assert run.status == "FAILED" and run.output["Error"] == "RolloutFailed"
    assert fleet.fake.rebuilt == []
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_FAILED and record["image"] == image
    assert "40 to rebuild" in record["note"] and "split its users" in record["note"]
    assert "pending" not in record
    # A Retry lists the bundle again (nothing was rebuilt yet): still too big, it fails again.
    retry = fleet.start("Developer", bundle)
    retry["Rollout"]["Retry"] = True
    assert fleet.resume(retry).status == "FAILED" and fleet.fake.rebuilt == []
    # Once it fits, a Retry rolls the image out to all of them (not COMPLETED with none).
    monkeypatch.setattr(rollout, "MAX_RECORD_BYTES", 350_000)
    retry = fleet.start("Developer", bundle)
    retry["Rollout"]["Retry"] = True
    assert fleet.resume(retry).status == "SUCCEEDED"
    assert sorted(fleet.fake.rebuilt) == sorted(ids)
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_COMPLETED and record["rebuiltCount"] == 40


def test_a_retry_of_a_record_that_lost_its_list_after_rebuilds_is_refused(fleet: Fleet) -> None:
    bundle, image, _ = _developer(fleet, 3)
    lost = {
        "bundle": bundle,
        "image": image,
        "state": rollout_contract.STATE_FAILED,
        "rebuiltCount": 2,
        "note": "too big",
    }
    rollout.save_record(fleet.clients.records, bundle, lost, fleet.clock.now)
    assert "pending" not in fleet.record(bundle)
    fleet.deploy(image)
    retry = fleet.start("Developer", bundle)
    retry["Rollout"]["Retry"] = True
    assert fleet.resume(retry).status == "SUCCEEDED"
    assert fleet.fake.rebuilt == []
    record = fleet.record(bundle)
    assert record["state"] == rollout_contract.STATE_FAILED and "lost its list" in record["note"]


# ----- the security review: each WorkSpace looked at again right before its rebuild ----------
def test_a_missing_last_connection_means_unknown_and_the_workspace_is_skipped(
    fleet: Fleet,
) -> None:
    """Proves a WorkSpace without LastKnownUserConnectionTimestamp is not rebuilt: before,
    a missing time was read as "the user never connected", so its user volume was restored
    from a snapshot that may predate the user's work."""
    bundle, image, ids = _developer(fleet, 2)
    unknown, known = ids
    fleet.fake.fleet[unknown].last_connected = None
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert fleet.fake.rebuilt == [known]
    record = fleet.record(bundle)
    assert record["skippedSnapshot"] == [unknown] and unknown in record["pending"]
    assert record["state"] == rollout_contract.STATE_PARTIAL


def test_a_workspace_no_longer_on_the_bundle_is_never_rebuilt(fleet: Fleet) -> None:
    """Proves the record's list is not trusted at rebuild time: a WorkSpace listed when the
    rollout began but since moved to another bundle is checked with DescribeWorkspaces
    (its BundleId) right before its rebuild and dropped. Before, the rollout rebuilt every
    id its record listed."""
    bundle, image, ids = _developer(fleet, 3)
    other = fleet.fake.add_bundle(bundle_id="wsb-otherbundle1")
    moved = ids[1]

    def meanwhile(workspace_id: str) -> None:
        # Between the canary's rebuild and the next batch, the WorkSpace moves.
        if workspace_id == ids[0]:
            fleet.fake.fleet[moved].bundle_id = other

    fleet.fake.on_rebuild = meanwhile
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert moved not in fleet.fake.rebuilt
    assert sorted(fleet.fake.rebuilt) == sorted([ids[0], ids[2]])
    assert all(
        p["RebuildWorkspaceRequests"][0]["WorkspaceId"] != moved
        for op, p in fleet.fake.calls
        if op == "RebuildWorkspaces"
    )
    record = fleet.record(bundle)
    assert moved not in record["pending"] and record["state"] == rollout_contract.STATE_COMPLETED


def test_a_workspace_chosen_for_a_batch_is_looked_at_again_right_before_its_rebuild(
    fleet: Fleet,
) -> None:
    """Proves the bundle, the state and the user's connection are read again right before
    each RebuildWorkspaces, not taken from the look that chose the batch: a user who
    connects (or a WorkSpace moved to another bundle) between the choice and the rebuild is
    left alone. Before, the batch chosen was rebuilt as chosen."""
    bundle, image, ids = _developer(fleet, 4)
    other = fleet.fake.add_bundle(bundle_id="wsb-otherbundle1")
    canary, connects, moves, fine = ids
    looks: list[tuple[str, str]] = []
    chosen: list[str] = []

    def after_choosing(params: dict[str, Any], **_: Any) -> None:
        # The batch after the canary is chosen with this look (its WorkSpaces' snapshots);
        # then, before its rebuilds, one user connects and one WorkSpace moves.
        workspace_id = params["WorkspaceId"]
        looks.append(("snapshots", workspace_id))
        if workspace_id == fine and fine not in chosen:
            chosen.append(fine)
            fleet.fake.fleet[connects].connection = "CONNECTED"
            fleet.fake.fleet[moves].bundle_id = other

    fleet.clients.workspaces.meta.events.register(
        "provide-client-params.workspaces.DescribeWorkspaceSnapshots", after_choosing
    )
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert sorted(fleet.fake.rebuilt) == sorted([canary, fine])
    record = fleet.record(bundle)
    assert record["skippedConnected"] == [connects]
    assert moves not in record["pending"] and connects in record["pending"]
    # Each rebuild came right after its own look at the WorkSpace, the bundle first.
    calls = fleet.fake.calls
    for index, (operation, params) in enumerate(calls):
        if operation == "RebuildWorkspaces":
            workspace_id = params["RebuildWorkspaceRequests"][0]["WorkspaceId"]
            assert [op for op, _ in calls[index - 3 : index]] == [
                "DescribeWorkspaces",
                "DescribeWorkspacesConnectionStatus",
                "DescribeWorkspaceSnapshots",
            ]
            assert calls[index - 3][1]["WorkspaceIds"] == [workspace_id]
            assert calls[index - 2][1]["WorkspaceIds"] == [workspace_id]
