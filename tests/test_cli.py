"""The ``workspaces-image-bakery`` console script, run with Click's CliRunner against the
botocore-validated fakes (WorkSpaces, CloudFormation) and moto's Step Functions after a
real deploy through the harness. ``status`` and ``watch`` only read."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from bakery_runtime.core import contract
from botocore.stub import Stubber
from click.testing import CliRunner, Result

from workspaces_image_bakery.operations import register_template
from workspaces_image_bakery.operations.cli import EXIT_FAILURE, EXIT_NOTHING_FOUND, Aws, cli

from .harness.cloudformation import STACK_ID, handle_url
from .harness.stacks import two_personas
from .harness.world import World, world

Templates = dict[str, dict[str, Any]]
READS = ("Describe", "List", "Get")


@pytest.fixture(scope="module")
def templates() -> Templates:
    return {"v1": two_personas()}


def _record_calls(client: Any, calls: list[str]) -> None:
    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register_first("before-call", record)


@pytest.fixture
def building(templates: Templates) -> Iterator[tuple[World, Aws, list[str]]]:
    """The stack deployed, a new developer build waiting for its image, and a kept image."""
    with world(templates["v1"], foreign=True) as w:
        cfn = w.cloudformation
        cfn.deploy(templates["v1"])
        logical = next(k for k in cfn.stack.sent if k.startswith("DeveloperImage"))
        props = {
            **cfn.stack.sent[logical],
            "ImageName": "developer-1.1.0-0000aaaa",
            "WaitHandle": handle_url("DeveloperImageBuildHandleNew"),
        }
        props[contract.TAGS] = [
            {**t, "Value": "1.1.0"} if t["Key"] == contract.VERSION_TAG_KEY else t
            for t in props[contract.TAGS]
        ]
        cfn.send_event("Create", "DeveloperImageNew", contract.IMAGE_RESOURCE_TYPE, props)
        cfn.run_builds(pause_at="PollImage")
        run = cfn.runs[-1]
        sfn = w.clients.stepfunctions

        # moto answers a canned history; Step Functions' is the states the run entered.
        def history(parsed: dict[str, Any], **_: Any) -> None:
            parsed["events"] = [
                {
                    "timestamp": dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
                    "type": "TaskStateEntered" if "Wait" not in name else "WaitStateEntered",
                    "id": index + 2,
                    "stateEnteredEventDetails": {"name": name},
                }
                for index, name in reversed(list(enumerate(run.visited)))
            ]

        sfn.meta.events.register("after-call.sfn.GetExecutionHistory", history)
        (execution,) = sfn.list_executions(
            stateMachineArn=cfn.state_machine_arn, statusFilter="RUNNING"
        )["executions"]
        start = execution["startDate"]
        kept = next(i for i in w.fake.images.values() if i.name.startswith("office-"))
        w.fake.tags[kept.image_id][contract.KEPT_TAG_KEY] = "in use by a bundle when deleted"
        calls: list[str] = []
        for client in (w.clients.workspaces, w.clients.cloudformation, sfn):
            _record_calls(client, calls)
        aws = Aws(
            workspaces=w.clients.workspaces,
            cloudformation=w.clients.cloudformation,
            stepfunctions=sfn,
            clock=lambda: start + dt.timedelta(minutes=25),
        )
        yield w, aws, calls


def _invoke(aws: Aws, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=aws)


def _read_only(calls: list[str]) -> None:
    assert calls, "no AWS call was made"
    assert all(c.startswith(READS) for c in calls), sorted(set(calls))


def test_status_shows_personas_builds_and_what_was_left_behind(
    building: tuple[World, Aws, list[str]],
) -> None:
    w, aws, calls = building
    result = _invoke(aws, "status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Stack WorkSpacesImageBakery  ({STACK_ID})" in out
    for name, image in w.images().items():
        assert name in out and image["id"] in out
    for name, bundle in w.bundles().items():
        assert f"{name} " in out and bundle["id"] in out
    assert "someone-elses" not in out  # not the stack's
    build_row = next(line for line in out.splitlines() if "FirstWaitForImage" in line)
    assert "developer" in build_row and "25m00s" in build_row
    assert "the image is being created (PENDING)" in build_row
    kept_row = next(line for line in out.splitlines() if contract.KEPT_TAG_KEY in line)
    assert "office-1.0.0-" in kept_row and "in use by a bundle" in kept_row
    _read_only(calls)
    assert "ListStackResources" in calls and "GetExecutionHistory" in calls


def test_status_as_json(building: tuple[World, Aws, list[str]]) -> None:
    w, aws, calls = building
    result = _invoke(aws, "status", "--output", "json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["stacks"]
    assert report["stack"] == "WorkSpacesImageBakery"
    assert report["stateMachine"] == w.cloudformation.state_machine_arn
    personas = {p["persona"]: p for p in report["personas"]}
    assert sorted(personas) == ["developer", "office"]
    developer = personas["developer"]
    assert {i["version"] for i in developer["images"]} == {"1.0.0", "1.1.0"}
    assert {i["state"] for i in developer["images"]} == {"AVAILABLE", "PENDING"}
    created = {i.image_id: i.created.isoformat() for i in w.fake.images.values()}
    assert all(i["created"] == created[i["id"]] for i in developer["images"])
    (bundle,) = developer["bundles"]
    assert bundle["imageName"].startswith("developer-1.0.0-")
    (build,) = report["builds"]
    assert build["persona"] == "developer" and build["kind"] == "build"
    assert build["step"] == "FirstWaitForImage" and build["elapsedSeconds"] == 1500
    assert "wait_handle" not in json.dumps(report) and "X-Amz-Signature" not in result.stdout
    (left,) = report["leftBehind"]
    assert left["kind"] == "image" and left["tag"] == contract.KEPT_TAG_KEY
    _read_only(calls)


def test_status_of_a_stack_by_name(building: tuple[World, Aws, list[str]]) -> None:
    _, aws, calls = building
    result = _invoke(aws, "status", "--stack", "WorkSpacesImageBakery", "--output", "json")
    assert result.exit_code == 0, result.output
    assert [s["stackId"] for s in json.loads(result.stdout)["stacks"]] == [STACK_ID]
    _read_only(calls)


def test_nothing_found_exits_3(templates: Templates) -> None:
    with world(templates["v1"], foreign=True) as w:
        aws = Aws(workspaces=w.clients.workspaces, cloudformation=w.clients.cloudformation)
        result = _invoke(aws, "status", "--output", "json")
        assert result.exit_code == EXIT_NOTHING_FOUND
        assert json.loads(result.stdout) == {"stacks": []}
        result = _invoke(aws, "status")
        assert result.exit_code == EXIT_NOTHING_FOUND
        assert "No WorkSpaces image bakery stack found" in result.stdout


def test_an_aws_error_exits_1(building: tuple[World, Aws, list[str]]) -> None:
    w, aws, _ = building
    w.fake.fail("DescribeWorkspaceImages", "AccessDeniedException", "not allowed")
    result = _invoke(aws, "status")
    assert result.exit_code == EXIT_FAILURE
    assert "AccessDeniedException" in result.stderr and "not allowed" in result.stderr


def test_watch_follows_a_build_until_it_ends(building: tuple[World, Aws, list[str]]) -> None:
    w, aws, calls = building
    start = aws.clock()
    now = [start]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += dt.timedelta(seconds=seconds)
        if len(slept) == 2:  # the build ends while the CLI waits (not a call of the CLI)
            made = len(calls)
            (arn,) = w.cloudformation.running()
            w.clients.stepfunctions.stop_execution(executionArn=arn)
            del calls[made:]

    aws.clock, aws.sleep = (lambda: now[0]), sleep
    result = _invoke(aws, "watch", "--interval", "60", "--output", "json")
    assert result.exit_code == 0, result.output
    looks = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(look["builds"]) for look in looks] == [1, 1, 0]
    assert [look["builds"][0]["elapsedSeconds"] for look in looks[:2]] == [1500, 1560]
    assert looks[0]["builds"][0]["step"] == "FirstWaitForImage"
    assert slept == [60, 60]
    _read_only(calls)
    table = _invoke(aws, "watch", "--output", "table")
    assert table.exit_code == EXIT_NOTHING_FOUND
    assert "no build running" in table.stdout


def test_watch_stops_after_max_polls(building: tuple[World, Aws, list[str]]) -> None:
    _, aws, _ = building
    aws.sleep = lambda seconds: None
    result = _invoke(aws, "watch", "--max-polls", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("1 build(s) running") == 2
    assert "25m00s" in result.stdout and "FirstWaitForImage" in result.stdout


ACTIVATION = {
    "ActivationId": "e488f2f6-e686-4afb-8a04-ef6dfEXAMPLE",
    "ActivationCode": "CODE0123456789abcdefXYZ",
}


def test_register_template_as_a_subcommand_and_as_a_module() -> None:
    client = boto3.client("ssm", region_name="eu-west-1")
    workspaces = boto3.client("workspaces", region_name="eu-west-1")
    tagged = {
        "ResourceId": "ws-abcdefgh1",
        "Tags": [{"Key": "workspaces-image-bakery:template", "Value": "ws-abcdefgh1"}],
    }
    with Stubber(client) as stub, Stubber(workspaces) as tags:
        stub.add_response("create_activation", ACTIVATION)
        tags.add_response("create_tags", {}, tagged)
        tags.add_response("create_tags", {}, tagged)
        result = _invoke(
            Aws(ssm=client, workspaces=workspaces),
            "register-template",
            "--workspace",
            "ws-abcdefgh1",
            "--role",
            "Bakery-TemplateNodeRole-1",
            "--output",
            "json",
        )
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert answer["activationId"] == ACTIVATION["ActivationId"]
        assert answer["region"] == "eu-west-1"
        assert "amazon-ssm-agent -register" in answer["instructions"]
        stub.add_response("create_activation", ACTIVATION)
        code = register_template.main(
            ["--workspace", "ws-abcdefgh1", "--role", "r", "--region", "eu-west-1"],
            client=client,
            workspaces_client=workspaces,
        )
        assert code == 0
        stub.assert_no_pending_responses()
        tags.assert_no_pending_responses()
    result = _invoke(Aws(ssm=client), "register-template", "--workspace", "bad", "--role", "r")
    assert result.exit_code == 2 and "expected ws-" in result.stderr


def test_a_running_build_is_estimated_from_the_personas_earlier_builds(
    building: tuple[World, Aws, list[str]],
) -> None:
    w, aws, _ = building
    # The first deploy's builds recorded how long they took (a first wait, one short poll).
    recorded = contract.FIRST_IMAGE_WAIT_SECONDS + contract.IMAGE_POLL_SECONDS
    developer = next(i for i in w.fake.images.values() if i.name.startswith("developer-1.0.0-"))
    assert w.fake.tags[developer.image_id][contract.BUILD_SECONDS_TAG_KEY] == str(recorded)
    result = _invoke(aws, "status", "--output", "json")
    (report,) = json.loads(result.stdout)["stacks"]
    (build,) = report["builds"]
    assert build["estimatedRemainingSeconds"] == recorded - 25 * 60
    table = _invoke(aws, "status").stdout
    row = next(line for line in table.splitlines() if "FirstWaitForImage" in line)
    assert f"about {(recorded - 25 * 60) // 60}m" in row


def test_estimates_take_the_median_and_say_when_there_is_nothing_to_go_by() -> None:
    from workspaces_image_bakery.operations.cli import estimate_remaining

    images = [{"buildSeconds": s} for s in (3000, 2400, 9000)] + [{"buildSeconds": None}]
    assert estimate_remaining(images, 600) == 2400
    assert estimate_remaining(images, 5000) == 0
    assert estimate_remaining([{"buildSeconds": None}], 60) is None


ROLLOUT_TABLE = "Bakery-RolloutRecords-1A2B3C"


def _with_rollout_table(cloudformation: Any) -> None:
    """The stack as a WorkspaceRollout makes it: its resources include the record table."""

    def add(parsed: dict[str, Any], **_: Any) -> None:
        parsed["StackResourceSummaries"].append(
            {
                "LogicalResourceId": "WorkSpacesImageBakeryRolloutRecordsC41E69B5",
                "PhysicalResourceId": ROLLOUT_TABLE,
                "ResourceType": "AWS::DynamoDB::Table",
                "LastUpdatedTimestamp": dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
                "ResourceStatus": "CREATE_COMPLETE",
            }
        )

    cloudformation.meta.events.register("after-call.cloudformation.ListStackResources", add)


def _records_table() -> Any:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")  # moto's, inside the world
    dynamodb.create_table(
        TableName=ROLLOUT_TABLE,
        KeySchema=[{"AttributeName": "bundleId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "bundleId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


def test_status_shows_a_bundles_last_rollout(building: tuple[World, Aws, list[str]]) -> None:
    w, aws, calls = building
    developer = next(b for n, b in w.bundles().items() if n.startswith("developer-"))
    office = next(b for n, b in w.bundles().items() if n.startswith("office-"))
    image = next(i for n, i in w.images().items() if n.startswith("developer-1.0.0-"))
    dynamodb = _records_table()
    record = {
        "state": "FAILED",
        "image": image["id"],
        "bundle": developer["id"],
        "started": "2026-11-29T03:00:00+00:00",
        "updated": "2026-11-29T04:10:00+00:00",
        "rebuiltCount": 3,
        "total": 9,
        "pending": ["ws-00000000a", "ws-00000000b"],
        "skippedConnected": ["ws-00000000c"],
        "skippedSnapshot": ["ws-00000000e"],
        "failed": [{"workspaceId": "ws-00000000d", "reason": "ended ERROR after its rebuild"}],
        "note": "stopped: ws-00000000d ended ERROR after its rebuild",
    }
    dynamodb.put_item(
        TableName=ROLLOUT_TABLE,
        Item={
            "bundleId": {"S": developer["id"]},
            "version": {"N": "7"},
            "record": {"S": json.dumps(record)},
        },
    )
    _with_rollout_table(w.clients.cloudformation)
    _record_calls(dynamodb, calls)
    aws.dynamodb = dynamodb
    result = _invoke(aws, "status", "--output", "json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["stacks"]
    bundles = {b["id"]: b for p in report["personas"] for b in p["bundles"]}
    shown = bundles[developer["id"]]["rollout"]
    assert shown["state"] == "FAILED" and shown["rebuilt"] == 3 and shown["pending"] == 2
    assert shown["skippedConnected"] == ["ws-00000000c"]
    assert shown["skippedSnapshot"] == ["ws-00000000e"]
    assert shown["failed"][0]["workspaceId"] == "ws-00000000d"
    assert bundles[office["id"]]["rollout"] is None  # no record: no rollout, or not run yet
    table = _invoke(aws, "status").stdout
    row = next(line for line in table.splitlines() if "ws-00000000d" in line)
    assert "developer" in row and "FAILED" in row and "3/9" in row
    assert "GetItem" in calls
    _read_only(calls)


def test_status_without_a_rollout_or_the_right_to_read_it(
    building: tuple[World, Aws, list[str]],
) -> None:
    w, aws, calls = building
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    _record_calls(dynamodb, calls)
    aws.dynamodb = dynamodb
    # No rollout in the stack: no table, nothing read.
    result = _invoke(aws, "status", "--output", "json")
    (report,) = json.loads(result.stdout)["stacks"]
    assert all(b["rollout"] is None for p in report["personas"] for b in p["bundles"])
    assert "Rollouts" not in _invoke(aws, "status").stdout
    assert "GetItem" not in calls
    _with_rollout_table(w.clients.cloudformation)
    with Stubber(dynamodb) as stub:
        for _ in range(2):
            stub.add_client_error("get_item", "AccessDeniedException", "no dynamodb for you")
        result = _invoke(aws, "status", "--output", "json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["stacks"]
    shown = [b["rollout"] for p in report["personas"] for b in p["bundles"]]
    assert all(r["state"] == "UNREADABLE" and "AccessDenied" in r["note"] for r in shown)
    _read_only(calls)


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Region anywhere: not in the environment, not in a profile (a fresh default session
    reads an empty config file)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.mark.parametrize(
    "args",
    [
        ["register-template", "--workspace", "ws-abcdefgh1", "--role", "r"],
        ["status"],
        ["status", "--stack", "WorkSpacesImageBakery"],
        ["watch", "--max-polls", "1"],
    ],
)
def test_without_a_region_one_line_names_region_and_exits_2(
    no_region: None, args: list[str]
) -> None:
    result = CliRunner().invoke(cli, args, obj=None)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: no AWS Region") and "--region" in line, line
    assert f"--region eu-west-1 {args[0]} " in line and "Traceback" not in result.output
    assert result.stdout == ""


def test_register_template_as_a_module_without_a_region(
    no_region: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert register_template.main(["--workspace", "ws-abcdefgh1", "--role", "r"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "no AWS Region" in line and "--region" in line


def test_as_built_says_it_could_not_read_records_without_credentials(tmp_path: Path) -> None:
    """Without credentials (a fork, no role) the review's as-built section says so, and the
    command still succeeds: the comment shows the declared side with that reason."""
    import botocore.session
    from click.testing import CliRunner

    from workspaces_image_bakery.operations.cli import Aws, cli
    from workspaces_image_bakery.review.as_built import declared_entry, write_declared

    session = botocore.session.Session()
    session.get_component("credential_provider").providers = []
    workspaces: Any = session.create_client("workspaces", region_name="eu-west-1")
    (tmp_path / "preparation").mkdir()
    write_declared(tmp_path / "preparation", {"office": declared_entry("S", "office-1", 4.0, {})})
    result = CliRunner().invoke(
        cli, ["as-built", "--assembly", str(tmp_path)], obj=Aws(workspaces=workspaces)
    )
    assert result.exit_code == 0, result.output
    assert "**Not read**: the records could not be read (Unable to locate credentials)" in (
        result.stdout
    )
    missing = CliRunner().invoke(cli, ["as-built", "--assembly", str(tmp_path / "preparation")])
    assert missing.exit_code != 0 and "no declared checklist in the assembly" in missing.output
