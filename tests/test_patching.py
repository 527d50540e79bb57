"""Patch cadence: a persona's template checked on a schedule for pending security updates.
The synthesized patch workflow runs with the project's ASL runner against the SSM fake (the
pending-updates document runs in bash, with apt-get shimmed), moto's S3 and Scheduler and
the EventBridge fake; the rebuild goes through the normal deploy path (synth with the
levels the command line prints, then a deploy)."""

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
from aws_cdk.assertions import Annotations, Match, Template
from bakery_runtime.core.aws import RETRY_CONFIG
from bakery_runtime.core.errors import BuildFailed
from bakery_runtime.patching import contract as pc
from bakery_runtime.patching import state as patch_state
from bakery_runtime.patching import steps as patch_steps
from cdk_nag import AwsSolutionsChecks
from click.testing import CliRunner

from workspaces_image_bakery import (
    BakeryValidationError,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    PatchSchedule,
    TemplateBuild,
    VulnerabilityGate,
)
from workspaces_image_bakery.operations.cli import Aws, cli
from workspaces_image_bakery.patching.pending_updates import PENDING_UPDATES_COMMANDS

from .fakes.ssm_service import Node
from .harness import asl, cfn_lint
from .harness.cloudformation import STACK_ID, DeployError
from .harness.world import World, world

NODE = "mi-00000000000000001"
TEMPLATE = "ws-off0template1"
BIN = Path(sys.executable).parent
SCHEDULE = PatchSchedule(schedule="cron(0 2 ? * MON *)", time_zone="Europe/Berlin")
SECURITY = [
    ("libssl3", "3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.12", "jammy-security"),
    ("openssh-client", "1:8.9p1-3ubuntu0.6", "1:8.9p1-3ubuntu0.10", "jammy-security"),
]
NOT_SECURITY = [("tzdata", "2024a-0ubuntu0.22.04", "2024b-0ubuntu0.22.04", "jammy-updates")]


def _stack(
    levels: dict[str, str] | None = None,
    *,
    nag: bool = False,
    schedule: Any = SCHEDULE,
    node: str | None = NODE,
    preparation: ImagePreparation | None = None,
) -> ImageBakeryStack:
    context: dict[str, Any] = {"workspaces-image-bakery:review": "false"}
    if levels is not None:
        context[pc.PATCH_LEVELS_CONTEXT] = json.dumps(levels)
    app = cdk.App(context=context)
    stack = ImageBakeryStack(
        app,
        "WorkSpacesImageBakery",
        tag_defaults={"Project": "desktops", "CostCenter": "cc-1", "Stage": "dev"},
        vulnerability_gate=VulnerabilityGate(),
    )
    stack.add_persona(
        "Office",
        name="office",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0",
        template_workspace_id=TEMPLATE,
        baked_applications=["libreoffice 7.6"],
        tags={"Role": "office", "Confidentiality": "internal", "Compliance": "none"},
        preparation=preparation or ImagePreparation(),
        build=TemplateBuild(managed_node_id=node),
        patch_schedule=schedule,
    )
    if nag:
        cdk.Aspects.of(app).add(AwsSolutionsChecks())
    return stack


def _template(levels: dict[str, str] | None = None) -> dict[str, Any]:
    return dict(Template.from_stack(_stack(levels)).to_json())


@dataclass
class Synth:
    template: dict[str, Any]
    nag_errors: list[str]


@pytest.fixture(scope="module")
def synth() -> Synth:
    stack = _stack(nag=True)
    template = dict(Template.from_stack(stack).to_json())
    found = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp("AwsSolutions-.*")
    )
    return Synth(template, [str(f.entry.data).split("]: ", 1)[0] for f in found])


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _recipe(template: dict[str, Any]) -> str:
    (image,) = _of_type(template, "Custom::WorkSpacesImage").values()
    return str(image["Properties"]["Recipe"])


# ----- synth -----------------------------------------------------------------------------------
def test_a_gate_and_a_patch_schedule_synthesize_cdk_nag_and_cfn_lint_clean(synth: Synth) -> None:
    (schedule,) = _of_type(synth.template, "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(0 2 ? * MON *)"
    assert props["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert props["State"] == "ENABLED"
    assert json.loads(props["Target"]["Input"]) == {"Patch": {"Persona": "office"}}
    actions = {
        action
        for policy in _of_type(synth.template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert {"inspector-scan:ScanSbom", "scheduler:UpdateSchedule", "iam:PassRole"} <= actions
    assert synth.nag_errors == []
    assert cfn_lint.errors(synth.template) == []


def test_the_check_may_send_only_its_document_to_the_persona_node(synth: Synth) -> None:
    (function,) = [
        r
        for k, r in _of_type(synth.template, "AWS::Lambda::Function").items()
        if k.startswith("WorkSpacesImageBakeryPatchingStep")
    ]
    settings = json.loads(function["Properties"]["Environment"]["Variables"][pc.ENV_PATCH_SETTINGS])
    assert settings == {"office": {pc.NODE: NODE, pc.FAILURES_BEFORE_DISABLE: 3}}
    (schedule,) = _of_type(synth.template, "AWS::Scheduler::Schedule").values()
    prefix = function["Properties"]["Environment"]["Variables"][pc.ENV_SCHEDULE_PREFIX]
    assert pc.schedule_name(prefix, "office") == schedule["Properties"]["Name"]
    sends = [
        statement
        for k, policy in _of_type(synth.template, "AWS::IAM::Policy").items()
        if k.startswith("WorkSpacesImageBakeryPatchingStep")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "ssm:SendCommand"
    ]
    (send,) = sends
    text = json.dumps(send["Resource"])
    assert (
        f"managed-instance/{NODE}" in text and "WorkSpacesImageBakeryPatchingPendingUpdates" in text
    )


def test_fifty_patch_schedules_fit_the_checks_environment() -> None:
    """Lambda allows 4 KB of environment: the settings of the 50 personas a Region's bundle
    quota allows fit; beyond what fits, the persona is refused at synth, naming why."""
    from workspaces_image_bakery.patching.patch_schedule import PatchRuntime

    stack = _stack()
    runtime = PatchRuntime.of(stack)
    for index in range(1, 50):
        runtime.allow(stack, f"persona-{index:02d}", {pc.NODE: f"mi-{index:017d}", "failures": 3})
    with pytest.raises(BakeryValidationError) as error:
        for index in range(50, 200):
            runtime.allow(
                stack, f"persona-{index:03d}", {pc.NODE: f"mi-{index:017d}", "failures": 3}
            )
    assert "patch schedules per stack" in str(error.value) and "4 KB" in str(error.value)


def test_the_patch_level_is_part_of_the_recipe() -> None:
    without = _recipe(_template())
    raised = _recipe(_template({"office": "20261207T0200Z-1a2b3c4d"}))
    again = _recipe(_template({"office": "20261207T0200Z-1a2b3c4d", "other": "x"}))
    assert without != raised == again


@pytest.mark.parametrize(
    ("props", "levels", "field", "allowed"),
    [
        ({"node": None}, None, "patch_schedule", "build.managed_node_id"),
        ({"schedule": PatchSchedule(schedule="every monday")}, None, "patch_schedule.schedule",
         "cron("),
        ({"schedule": PatchSchedule(schedule="rate(1 day)", time_zone="Mars/Olympus")}, None,
         "patch_schedule.time_zone", "IANA"),
        ({"schedule": PatchSchedule(schedule="rate(1 day)", failures_before_disable=0)}, None,
         "patch_schedule.failures_before_disable", "1-10"),
        ({"schedule": "rate(1 day)"}, None, "patch_schedule", "a PatchSchedule"),
        ({}, {"office": "latest"}, f"context {pc.PATCH_LEVELS_CONTEXT}[office]", "patch level"),
        ({"preparation": ImagePreparation(patch_os=False)}, None, "patch_schedule",
         "preparation.patch_os=True"),
    ],
)  # fmt: skip
def test_bad_patch_props_name_the_field_and_what_is_allowed(
    props: dict[str, Any], levels: dict[str, str] | None, field: str, allowed: str
) -> None:
    with pytest.raises(BakeryValidationError) as error:
        _stack(levels, **props)
    message = str(error.value)
    assert f"{field}=" in message and allowed in message, message


def test_the_pending_updates_document_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "pending.sh"
    script.write_text("#!/bin/bash\n" + "\n".join(PENDING_UPDATES_COMMANDS) + "\n")
    checked = subprocess.run(
        [str(BIN / "shellcheck"), "--severity=style", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout


# ----- the check, run ----------------------------------------------------------------------------
@dataclass
class Patching:
    w: World
    node: Node
    definition: dict[str, Any]
    clients: patch_steps.PatchClients
    clock: asl.Clock
    schedule: str

    def run(self, persona: str = "office") -> asl.Run:
        def invoke(payload: dict[str, Any]) -> dict[str, Any]:
            try:
                return patch_steps.run_step(payload, self.clients, lambda: self.clock.now)
            except BuildFailed as error:
                raise asl.TaskError("BuildFailed", str(error)) from None

        return asl.run(self.definition, {"Patch": {"Persona": persona}}, invoke, self.clock)

    def state(self) -> dict[str, Any]:
        return patch_state.load(self.w.clients.s3, "office")

    def events(self, detail_type: str) -> list[dict[str, Any]]:
        return [
            json.loads(entry["Detail"])
            for op, params in self.w.monitoring.calls
            if op == "PutEvents"
            for entry in params["Entries"]
            if entry["DetailType"] == detail_type
        ]

    def levels(self) -> dict[str, str]:
        """What the pipeline's synth step runs: `workspaces-image-bakery patch-levels`."""
        aws = Aws(cloudformation=self.w.clients.cloudformation, s3=self.w.clients.s3)
        result = CliRunner().invoke(
            cli, ["patch-levels", "--stack", "WorkSpacesImageBakery"], obj=aws
        )
        assert result.exit_code == 0, result.output
        levels: dict[str, str] = json.loads(result.stdout)
        return levels

    def settle(self) -> None:
        """The template back from the build's last reboot (the fake moves on each look)."""
        for _ in range(20):
            (found,) = self.w.clients.workspaces.describe_workspaces(WorkspaceIds=[TEMPLATE])[
                "Workspaces"
            ]
            if found["State"] == "AVAILABLE":
                return
        raise AssertionError(f"{TEMPLATE} stays {found['State']}")

    def builds(self) -> int:
        return sum(1 for op, _ in self.w.fake.calls if op == "CreateWorkspaceImage")


@pytest.fixture
def patching(synth: Synth, monkeypatch: pytest.MonkeyPatch) -> Iterator[Patching]:
    template = _template()
    with world(template) as w:
        node = w.ssm.add_node(TEMPLATE)
        w.cloudformation.deploy(template)
        (function,) = [
            r
            for k, r in _of_type(template, "AWS::Lambda::Function").items()
            if k.startswith("WorkSpacesImageBakeryPatchingStep")
        ]
        settings = function["Properties"]["Environment"]["Variables"][pc.ENV_PATCH_SETTINGS]
        monkeypatch.setenv(pc.ENV_PATCH_SETTINGS, settings)
        variables = function["Properties"]["Environment"]["Variables"]
        monkeypatch.setenv(pc.ENV_SCHEDULE_PREFIX, variables[pc.ENV_SCHEDULE_PREFIX])
        (document,) = [
            n for n in w.cloudformation.documents if n.startswith("WorkSpacesImageBakeryPatching")
        ]
        monkeypatch.setenv(pc.ENV_PENDING_DOCUMENT, document)
        (machine,) = [
            r
            for k, r in _of_type(template, "AWS::StepFunctions::StateMachine").items()
            if k.startswith("WorkSpacesImageBakeryPatchingWorkflow")
        ]
        (schedule,) = _of_type(template, "AWS::Scheduler::Schedule").values()
        scheduler = boto3.client("scheduler", region_name="us-east-1", config=RETRY_CONFIG)
        name = schedule["Properties"]["Name"]
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression=schedule["Properties"]["ScheduleExpression"],
            ScheduleExpressionTimezone=schedule["Properties"]["ScheduleExpressionTimezone"],
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={
                "Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:Patch",
                "RoleArn": "arn:aws:iam::123456789012:role/PatchScheduler",
                "Input": schedule["Properties"]["Target"]["Input"],
            },
            State="ENABLED",
        )
        clients = patch_steps.PatchClients(
            ssm=w.clients.ssm, s3=w.clients.s3, events=w.clients.events, scheduler=scheduler
        )
        patching = Patching(
            w, node, asl.definition_from_template(machine), clients, asl.Clock(1.796e9), name
        )
        patching.settle()
        yield patching


def test_a_check_that_finds_no_security_update_starts_nothing(patching: Patching) -> None:
    patching.node.updates = list(NOT_SECURITY)  # an update, but not a security one
    builds = patching.builds()
    run = patching.run()
    assert run.status == "SUCCEEDED", run
    assert run.output["Poll"]["Status"] == pc.STATUS_CURRENT
    assert patching.node.checks == 1
    assert patching.events(pc.EVENT_LEVEL_RAISED) == []
    assert patching.levels() == {}
    assert patching.builds() == builds
    assert patching.state()["checked"]["result"] == pc.STATUS_CURRENT


def test_pending_updates_raise_the_level_and_the_deploy_rebuilds(patching: Patching) -> None:
    patching.node.updates = [*SECURITY, *NOT_SECURITY]
    run = patching.run()
    assert run.output["Poll"]["Status"] == pc.STATUS_RAISED
    (event,) = patching.events(pc.EVENT_LEVEL_RAISED)
    level = event["level"]
    assert event["persona"] == "office" and event["stackId"] == STACK_ID
    assert event["pending"] == 2
    assert event["packages"] == ["libssl3 3.0.2-0ubuntu1.12", "openssh-client 1:8.9p1-3ubuntu0.10"]
    # The trigger: the pipeline's synth reads the levels; the deploy builds the new recipe.
    levels = patching.levels()
    assert levels == {"office": level}
    builds = patching.builds()
    sends = patching.w.ssm.count("SendCommand")
    raised = _template(levels)
    patching.w.cloudformation.deploy(raised)
    patching.settle()
    assert patching.builds() == builds + 1
    assert patching.w.ssm.count("SendCommand") > sends  # prepared (so patched) again
    assert patching.state()["built_level"] == level
    # Checked again with the same updates still pending: nothing starts again.
    again = patching.run()
    assert again.output["Poll"]["Status"] == pc.STATUS_UNCHANGED
    assert len(patching.events(pc.EVENT_LEVEL_RAISED)) == 1
    # Applied at last: current.
    patching.node.updates = []
    assert patching.run().output["Poll"]["Status"] == pc.STATUS_CURRENT


def test_three_failed_builds_of_a_level_disable_the_schedule(patching: Patching) -> None:
    patching.node.updates = list(SECURITY)
    patching.run()
    raised = _template(patching.levels())
    for _ in range(3):
        patching.node.outcome = ("Failed", "", "==> bakery failed: patch (exit 100)\n", 100)
        with pytest.raises(DeployError):
            patching.w.cloudformation.deploy(raised)
        patching.settle()
    assert patching.state()["failures"] == 3
    checks = patching.node.checks
    run = patching.run()
    assert run.output["Check"]["Status"] == pc.STATUS_DISABLED
    assert patching.node.checks == checks  # no command sent
    schedule = patching.clients.scheduler.get_schedule(Name=patching.schedule)
    assert schedule["State"] == "DISABLED"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"  # the rest kept
    (event,) = patching.events(pc.EVENT_SCHEDULE_DISABLED)
    assert event["failures"] == 3 and "disabled" in event["reason"]
    assert patching.state()["disabled"]["failures"] == 3


def test_an_execution_naming_another_persona_does_nothing(patching: Patching) -> None:
    sends = patching.w.ssm.count("SendCommand")
    run = patching.run("someone-else")
    assert run.status == "FAILED"
    assert patching.node.checks == 0 and patching.w.ssm.count("SendCommand") == sends


def test_status_shows_the_patch_level_and_the_last_check(patching: Patching) -> None:
    patching.node.updates = list(SECURITY)
    patching.run()
    aws = Aws(
        workspaces=patching.w.clients.workspaces,
        cloudformation=patching.w.clients.cloudformation,
        stepfunctions=patching.w.clients.stepfunctions,
        s3=patching.w.clients.s3,
    )
    result = CliRunner().invoke(cli, ["status", "--output", "json"], obj=aws)
    assert result.exit_code == 0, result.output
    (stack,) = json.loads(result.stdout)["stacks"]
    (office,) = stack["patching"]
    assert office["persona"] == "office" and office["level"] == patching.levels()["office"]
    assert office["pending"] == 2 and office["lastResult"] == pc.STATUS_RAISED
    table = CliRunner().invoke(cli, ["status"], obj=aws)
    assert "Patch cadence" in table.stdout


def test_patch_levels_of_a_stack_not_yet_deployed(patching: Patching) -> None:
    aws = Aws(cloudformation=patching.w.clients.cloudformation, s3=patching.w.clients.s3)
    missing = ["patch-levels", "--stack", "NotYetDeployed"]
    first = CliRunner().invoke(cli, [*missing, "--missing-ok"], obj=aws)
    assert first.exit_code == 0 and first.stdout.strip() == "{}"
    refused = CliRunner().invoke(cli, missing, obj=aws)
    assert refused.exit_code == 1 and "does not exist" in refused.stderr


def test_patch_levels_read_through_another_accounts_role(patching: Patching) -> None:
    """--role-arn: sts:AssumeRole (moto's STS, botocore-validated), then the reads."""
    patching.node.updates = list(SECURITY)
    patching.run()
    assumed: list[str] = []
    sts = boto3.client("sts", region_name="us-east-1")
    original = sts.assume_role

    def assume_role(**params: Any) -> Any:
        assumed.append(params["RoleArn"])
        return original(**params)

    sts.assume_role = assume_role
    aws = Aws(cloudformation=patching.w.clients.cloudformation, s3=patching.w.clients.s3)
    aws._made["sts"] = sts
    role = "arn:aws:iam::222222222222:role/cdk-hnb659fds-lookup-role-222222222222-us-east-1"
    result = CliRunner().invoke(
        cli, ["patch-levels", "--stack", "WorkSpacesImageBakery", "--role-arn", role], obj=aws
    )
    assert result.exit_code == 0, result.output
    assert assumed == [role]
    assert json.loads(result.stdout) == {"office": patching.state()["level"]}


def test_a_deploy_below_the_built_level_is_refused(patching: Patching) -> None:
    """Once built at a raised level, a synth without the levels (a deploy from a laptop)
    would build or adopt an image of the older recipe: the image resource refuses it."""
    patching.node.updates = list(SECURITY)
    patching.run()
    level = patching.levels()["office"]
    patching.w.cloudformation.deploy(_template({"office": level}))
    builds = patching.builds()
    with pytest.raises(DeployError) as refused:
        patching.w.cloudformation.deploy(_template())
    message = str(refused.value)
    assert f"last built at patch level {level}" in message and "gave none" in message
    assert "workspaces-image-bakery patch-levels" in message
    assert patching.builds() == builds


def test_the_failure_bound_and_a_paused_schedule_reach_the_template() -> None:
    """failures_before_disable goes into the check's configuration; enabled=False keeps the
    schedule, paused."""
    paused = PatchSchedule(schedule="rate(7 days)", failures_before_disable=5, enabled=False)
    template = dict(Template.from_stack(_stack(schedule=paused)).to_json())
    (schedule,) = _of_type(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["State"] == "DISABLED"
    assert schedule["Properties"]["ScheduleExpression"] == "rate(7 days)"
    (function,) = [
        r
        for k, r in _of_type(template, "AWS::Lambda::Function").items()
        if k.startswith("WorkSpacesImageBakeryPatchingStep")
    ]
    settings = json.loads(function["Properties"]["Environment"]["Variables"][pc.ENV_PATCH_SETTINGS])
    assert settings["office"][pc.FAILURES_BEFORE_DISABLE] == 5
