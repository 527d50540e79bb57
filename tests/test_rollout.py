"""The opt-in rollout of a bundle's image to existing WorkSpaces: props checked at synth, the
template (schedule, workflow, IAM, cdk-nag, cfn-lint), and the synthesized workflow run with
the project's ASL runner against the WorkSpaces fleet fake and moto's SSM."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import Duration
from aws_cdk.assertions import Annotations, Match, Template
from bakery_runtime import rollout
from bakery_runtime.aws import RETRY_CONFIG
from bakery_runtime.errors import TransientError
from cdk_nag import AwsSolutionsChecks
from moto import mock_aws

from workspaces_image_bakery import BakeryValidationError, ImageBakeryStack, ImageDesign
from workspaces_image_bakery.constructs.bundle import WorkspaceBundle
from workspaces_image_bakery.constructs.rollout import (
    NOT_STARTED_RECORD,
    RolloutSchedule,
    WorkspaceRollout,
)

from .fakes.workspaces_fleet import FakeWorkSpacesFleet
from .harness import asl

SHARED_BUNDLE = "wsb-shared0001"
BIN = Path(sys.executable).parent


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


def test_each_rollout_has_its_schedule_input_and_record(synth: Synth) -> None:
    schedules = _schedules(synth.template)
    developer, shared = schedules["Developer"], schedules["Shared"]
    assert developer["ScheduleExpression"] == "cron(0 3 ? * SUN *)"
    assert developer["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert developer["State"] == "ENABLED"
    assert shared["ScheduleExpression"] == "rate(7 days)"
    dev_input = _text(developer["Target"]["Input"])
    assert "<aws.scheduler.execution-id>" in dev_input
    assert ".BundleId>" in dev_input and ".ImageId>" in dev_input  # the deployed image
    assert '"CanaryCount":1' in dev_input and '"BatchSize":10' in dev_input
    shared_input = json.loads(_text(shared["Target"]["Input"]))["Rollout"]
    assert shared_input["BundleId"] == SHARED_BUNDLE and shared_input["ImageId"] == ""
    assert shared_input["CanaryPercent"] == 10 and shared_input["BatchSize"] == 2
    assert shared_input["PauseSeconds"] == 300
    (machine,) = [
        k
        for k in _of_type(synth.template, "AWS::StepFunctions::StateMachine")
        if k.startswith("WorkSpacesImageBakeryRollout")
    ]
    for schedule in (developer, shared):
        assert schedule["Target"]["Arn"] == {"Ref": machine}
    records = [p["Properties"] for p in _of_type(synth.template, "AWS::SSM::Parameter").values()]
    names = sorted(_text(r["Name"]) for r in records)
    assert names[1] == f"/workspaces-image-bakery/rollout/{SHARED_BUNDLE}"
    assert names[0].startswith("/workspaces-image-bakery/rollout/<") and "BundleId" in names[0]
    assert all(r["Value"] == NOT_STARTED_RECORD for r in records)
    assert all(r["Tier"] == "Intelligent-Tiering" for r in records)


def test_one_workflow_serves_every_rollout_and_refuses_other_bundles(synth: Synth) -> None:
    functions = [
        f["Properties"]
        for f in _of_type(synth.template, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "bakery_runtime.rollout.handler"
    ]
    assert len(functions) == 1
    allowed = _text(functions[0]["Environment"]["Variables"][rollout.ENV_ROLLOUT_BUNDLES])
    assert allowed.endswith(f",{SHARED_BUNDLE}") and ".BundleId>" in allowed
    definition = asl.definition_from_template(_rollout_machine(synth.template))
    assert definition["StartAt"] == "Advance"
    assert definition["States"]["WaitForRebuilds"]["SecondsPath"] == "$.Advance.WaitSeconds"
    assert _rollout_machine(synth.template)["Properties"]["TracingConfiguration"]["Enabled"]


def test_iam_is_scoped(synth: Synth) -> None:
    statements = _role_statements(synth.template, "WorkSpacesImageBakeryRolloutStepServiceRole")
    by_action = {a: s for s in statements for a in _listify(s["Action"])}
    workspaces = sorted(a for a in by_action if a.startswith("workspaces:"))
    assert workspaces == [
        "workspaces:DescribeWorkspaceBundles",
        "workspaces:DescribeWorkspaces",
        "workspaces:DescribeWorkspacesConnectionStatus",
        "workspaces:RebuildWorkspaces",
    ]
    for action in workspaces[:3]:
        assert by_action[action]["Resource"] == "*"
    rebuild = _listify(by_action["workspaces:RebuildWorkspaces"]["Resource"])
    assert [_text(r) for r in rebuild] == [
        "arn:<AWS::Partition>:workspaces:<AWS::Region>:<AWS::AccountId>:workspace/*"
    ]
    records = [_text(r) for r in _listify(by_action["ssm:PutParameter"]["Resource"])]
    assert by_action["ssm:GetParameter"] is by_action["ssm:PutParameter"]
    assert len(records) == 2 and all(
        r.startswith("arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/"
                     "workspaces-image-bakery/rollout/")
        for r in records
    )  # fmt: skip
    assert not [a for a in by_action if a.startswith("ssm:") and a not in {
        "ssm:GetParameter", "ssm:PutParameter"}]  # fmt: skip
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


def test_cfn_lint_finds_no_errors(synth: Synth, tmp_path: Path) -> None:
    path = tmp_path / "rollouts.template.json"
    path.write_text(json.dumps(synth.template))
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert [f for f in findings if f["Level"] == "Error"] == []


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
@dataclass
class Fleet:
    fake: FakeWorkSpacesFleet
    clients: rollout.Clients
    clock: asl.Clock
    definition: dict[str, Any]
    template: dict[str, Any]
    runs: int = 0

    def schedule_input(self, persona: str, bundle_id: str, image_id: str = "") -> dict[str, Any]:
        """The schedule's input as Scheduler sends it, deploy-time values filled in."""
        target = _schedules(self.template)[persona]["Target"]["Input"]
        parts = target["Fn::Join"][1] if isinstance(target, dict) else [target]
        text = ""
        for part in parts:
            if isinstance(part, str):
                text += part
            else:
                text += bundle_id if part["Fn::GetAtt"][1] == "BundleId" else image_id
        self.runs += 1
        text = text.replace("<aws.scheduler.execution-id>", f"run-{self.runs}")
        text = text.replace("<aws.scheduler.scheduled-time>", "2026-11-29T03:00:00Z")
        parsed: dict[str, Any] = json.loads(text)
        return parsed

    def invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return rollout.run_step(payload, self.clients, now=self.clock.now)
        except (rollout.RolloutFailed, TransientError) as error:
            cause = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__})
            raise asl.TaskError(type(error).__name__, cause) from None

    def run(self, persona: str, bundle_id: str, image_id: str = "") -> asl.Run:
        execution = self.schedule_input(persona, bundle_id, image_id)
        return asl.run(self.definition, execution, self.invoke, self.clock)

    def record(self, bundle_id: str) -> dict[str, Any]:
        return rollout.load_record(self.clients.ssm, bundle_id)

    def batches(self) -> list[list[str]]:
        """The RebuildWorkspaces calls the service accepted, grouped by the describes between."""
        groups: list[list[str]] = []
        previous = ""
        for operation, params in self.fake.calls:
            if operation == "RebuildWorkspaces":
                workspace_id = params["RebuildWorkspaceRequests"][0]["WorkspaceId"]
                seen = {w for group in groups for w in group}
                if workspace_id in self.fake.rebuilt and workspace_id not in seen:
                    if previous != "RebuildWorkspaces":
                        groups.append([])
                    groups[-1].append(workspace_id)
            previous = operation
        return groups


@pytest.fixture
def fleet(synth: Synth, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    with mock_aws():
        fake = FakeWorkSpacesFleet()
        ssm = boto3.client("ssm", region_name="us-east-1", config=RETRY_CONFIG)
        clients = rollout.Clients(workspaces=fake.client(RETRY_CONFIG), ssm=ssm)
        definition = asl.definition_from_template(_rollout_machine(synth.template))
        monkeypatch.setenv(rollout.ENV_ROLLOUT_BUNDLES, f"wsb-developer01,{SHARED_BUNDLE}")
        yield Fleet(fake, clients, asl.Clock(1_800_000_000.0), definition, synth.template)


def _developer(fleet: Fleet, count: int, **kwargs: Any) -> tuple[str, str, list[str]]:
    """The developer bundle with `count` WorkSpaces on its first image, then a new image."""
    bundle = fleet.fake.add_bundle(bundle_id="wsb-developer01")
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
    assert record["state"] == rollout.STATE_COMPLETED
    assert record["image"] == image and record["bundle"] == bundle
    assert record["rebuiltCount"] == 12 and record["pending"] == [] and record["failed"] == []
    assert record["total"] == 12 and record["skippedConnected"] == []
    assert record["run"] == "run-1" and record["finished"]
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
    assert second["state"] == rollout.STATE_COMPLETED
    assert second["started"] == first["started"] and second["rebuiltCount"] == 3


def test_connected_users_are_never_rebuilt_and_are_tried_again_next_run(fleet: Fleet) -> None:
    bundle = fleet.fake.add_bundle(bundle_id="wsb-developer01")
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
    assert record["state"] == rollout.STATE_PARTIAL
    assert sorted(record["skippedConnected"]) == sorted(connected + unknown)
    assert record["skippedState"] == busy
    assert sorted(record["pending"]) == sorted(connected + unknown + busy)
    # A WorkSpace created after the rollout began comes from the new image: never rebuilt.
    (late,) = fleet.fake.add_user_workspaces(bundle, 1)
    for workspace_id in connected + unknown:
        fleet.fake.fleet[workspace_id].connection = "DISCONNECTED"
    fleet.fake.workspaces[busy[0]].state = "AVAILABLE"
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert sorted(fleet.fake.on_image(image)) == sorted(
        idle + stopped + connected + unknown + busy + [late]
    )
    assert late not in fleet.fake.rebuilt and fleet.fake.count("RebuildWorkspaces") == 8
    assert fleet.record(bundle)["state"] == rollout.STATE_COMPLETED


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
    assert record["state"] == rollout.STATE_FAILED
    assert record["failed"][0]["workspaceId"] == broken
    assert ("ERROR" if how == "ends in ERROR" else "InvalidResourceState") in record["failed"][0][
        "reason"
    ]
    assert broken in record["note"]
    # The schedule's next run does not retry a failed image; a run with Retry goes on.
    rebuilds = fleet.fake.count("RebuildWorkspaces")
    assert fleet.run("Shared", bundle).status == "SUCCEEDED"
    assert fleet.fake.count("RebuildWorkspaces") == rebuilds
    assert fleet.record(bundle)["state"] == rollout.STATE_FAILED
    fleet.fake.workspaces[broken].state = "AVAILABLE"
    retry = fleet.schedule_input("Shared", bundle)
    retry["Rollout"]["Retry"] = True
    assert asl.run(fleet.definition, retry, fleet.invoke, fleet.clock).status == "SUCCEEDED"
    assert sorted(fleet.fake.on_image(image)) == sorted(ids)
    assert fleet.record(bundle)["state"] == rollout.STATE_COMPLETED


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
    assert fleet.record(bundle2)["state"] == rollout.STATE_COMPLETED


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
    assert record["state"] == rollout.STATE_PARTIAL and "window" in record["note"]
    assert 0 < record["rebuiltCount"] < 12 and len(record["pending"]) == 12 - record["rebuiltCount"]
    assert fleet.run("Developer", bundle, image).status == "SUCCEEDED"
    assert sorted(fleet.fake.on_image(image)) == sorted(ids)


def test_another_bundle_or_a_running_rollout_is_left_alone(fleet: Fleet) -> None:
    bundle, image, _ = _developer(fleet, 2)
    foreign = fleet.schedule_input("Developer", "wsb-notours0001", image)
    with pytest.raises(rollout.RolloutFailed, match="not rolled out by this stack"):
        rollout.run_step({"Step": "Advance", **foreign}, fleet.clients, now=fleet.clock.now)
    # A run still going (its record fresh) keeps the bundle: a second one does nothing.
    first = fleet.schedule_input("Developer", bundle, image)
    answer = rollout.run_step({"Step": "Advance", **first}, fleet.clients, now=fleet.clock.now)
    assert answer["Status"] == rollout.STATUS_WAIT
    second = fleet.schedule_input("Developer", bundle, image)
    answer = rollout.run_step({"Step": "Advance", **second}, fleet.clients, now=fleet.clock.now)
    assert answer["Status"] == rollout.STATUS_DONE and "run-" in answer["Reason"]
    assert fleet.record(bundle)["run"] == first["Rollout"]["RunId"]


def test_a_bundle_too_big_for_one_record_fails_before_anything_is_rebuilt(fleet: Fleet) -> None:
    bundle, image, _ = _developer(fleet, 600)
    run = fleet.run("Developer", bundle, image)
    assert run.status == "FAILED" and run.output["Error"] == "RolloutFailed"
    assert fleet.fake.rebuilt == []
    record = fleet.record(bundle)
    assert record["state"] == rollout.STATE_FAILED and record["image"] == image
    assert "600 to rebuild" in record["note"] and "split its users" in record["note"]
