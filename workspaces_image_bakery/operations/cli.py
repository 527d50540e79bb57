"""``workspaces-image-bakery``: what the bakery's stacks hold and build, for operators.

    workspaces-image-bakery status [--stack NAME] [--output table|json]
    workspaces-image-bakery watch [--stack NAME] [--interval 30] [--output table|json]
    workspaces-image-bakery register-template --workspace ws-... --role ROLE

``status`` and ``watch`` only read (Describe*, List*, Get*); ``status`` shows each bundle's
last rollout to existing WorkSpaces from its record (``dynamodb:GetItem`` on the stack's
rollout table, found with ``ListStackResources``). Stacks are found by the
ownership tag ``workspaces-image-bakery:stack`` on WorkSpaces images and bundles, or named
with ``--stack``. Exit codes: 0 success, 1 failure (an AWS error), 2 usage, 3 nothing found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import click
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from rich.console import Console
from rich.table import Table

from ..core.runtime_assets import contract, rollout_contract
from ..review import as_built
from . import patch_levels, registration
from . import report as reports

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_workspaces import WorkSpacesClient

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOTHING_FOUND = 3
STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"
TABLE_TYPE = "AWS::DynamoDB::Table"
# What each state of the build workflow is doing (docs/operations.md).
STEP_MEANINGS = {
    "CheckTemplate": "checking the template WorkSpace",
    "WaitForTemplate": "waiting for the template WorkSpace to be AVAILABLE",
    "PrepareTemplate": "sending the preparation (Run Command)",
    "WaitForManagedNode": "waiting for the template's managed node to be online",
    "WaitForPreparation": "the preparation script runs on the template",
    "PollPreparation": "reading the preparation's result",
    "RebootTemplate": "rebooting the template",
    "WaitForReboot": "waiting for the template to come back",
    "CheckRebooted": "checking the rebooted template",
    "VerifyMarker": "checking the template's recipe marker",
    "WaitForManagedNodeAgain": "waiting for the managed node after the reboot",
    "WaitForMarker": "reading the recipe marker",
    "PollMarker": "checking the recipe marker",
    "Image": "creating the image",
    "FirstWaitForImage": "the image is being created (PENDING)",
    "WaitForImage": "the image is being created (PENDING)",
    "PollImage": "checking the image",
    "SignalSuccess": "reporting success to CloudFormation",
    "SignalFailure": "reporting the failure to CloudFormation",
    "WaitForUnfinishedImage": "cleanup: waiting for an unfinished image",
    "CleanupImage": "cleanup: deleting an unfinished image",
}
_RETRY = Config(retries={"mode": "standard", "max_attempts": 10})
# Where a bundle's rollout record lives (docs/rollout.md): an item
# of the stack's rollout table, keyed by bundle id (bakery_runtime/rollout/contract.py).
ROLLOUT_TABLE_PREFIX = rollout_contract.TABLE_LOGICAL_ID_START
ROLLOUT_KEY = rollout_contract.KEY
ROLLOUT_RECORD = rollout_contract.RECORD


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class NoRegion(click.ClickException):
    """No AWS Region from ``--region``, the environment or the profile: a usage error, told
    in one line (botocore's NoRegionError would be a traceback, or a vague line)."""

    exit_code = EXIT_USAGE

    def __init__(self) -> None:
        context = click.get_current_context(silent=True)
        command = context.info_name if context is not None and context.parent else "COMMAND"
        super().__init__(
            "no AWS Region: pass one with --region before the command "
            f"(workspaces-image-bakery --region eu-west-1 {command} ...), "
            "or set AWS_REGION or your profile's region"
        )

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


@dataclass
class Aws:
    """The clients the commands use (tests pass clients backed by fakes) and the clock."""

    region: str | None = None
    workspaces: WorkSpacesClient | None = None
    cloudformation: CloudFormationClient | None = None
    stepfunctions: SFNClient | None = None
    ssm: SSMClient | None = None
    dynamodb: Any = None
    s3: Any = None
    clock: Callable[[], dt.datetime] = _now
    sleep: Callable[[float], None] = time.sleep
    _made: dict[str, Any] = field(default_factory=dict)

    def assuming(self, role_arn: str) -> Aws:
        """These clients' settings, with the role's temporary credentials (sts:AssumeRole);
        clients given explicitly (tests) are kept."""
        credentials = self.client("sts").assume_role(
            RoleArn=role_arn, RoleSessionName="workspaces-image-bakery-cli"
        )["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.region,
        )
        made = {
            service: session.client(cast(Any, service), config=_RETRY)
            for service in ("cloudformation", "s3", "workspaces", "stepfunctions", "ssm")
        }
        return dataclasses.replace(
            self,
            **{k: getattr(self, k) or v for k, v in made.items()},
            _made={},
        )

    def client(self, service: str) -> Any:
        given = getattr(self, service, None)
        if given is not None:
            return given
        if service not in self._made:
            try:
                self._made[service] = boto3.client(
                    cast(Any, service), region_name=self.region, config=_RETRY
                )
            except NoRegionError:
                raise NoRegion() from None
        return self._made[service]


# ----- reading -------------------------------------------------------------------------
def _pages(call: Callable[..., Any], key: str, **params: Any) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(**params, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def _tags(workspaces: WorkSpacesClient, resource_id: str) -> dict[str, str]:
    answer = workspaces.describe_tags(ResourceId=resource_id)
    return {t["Key"]: t.get("Value", "") for t in answer.get("TagList", [])}


def stack_name(stack_id: str) -> str:
    parts = stack_id.split(":", 5)
    pieces = parts[5].split("/") if len(parts) == 6 else []
    return pieces[1] if len(pieces) >= 2 and pieces[0] == "stack" else stack_id


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    return str(value or "")


@dataclass
class Inventory:
    """Every image and bundle of the account that carries the ownership tag, with tags."""

    images: list[tuple[dict[str, Any], dict[str, str]]]
    bundles: list[tuple[dict[str, Any], dict[str, str]]]

    @classmethod
    def read(cls, workspaces: WorkSpacesClient) -> Inventory:
        images = []
        for image in _pages(workspaces.describe_workspace_images, "Images", ImageType="OWNED"):
            tags = _tags(workspaces, image["ImageId"])
            if contract.OWNER_TAG_KEY in tags:
                images.append((image, tags))
        bundles = []
        for bundle in _pages(workspaces.describe_workspace_bundles, "Bundles"):
            tags = _tags(workspaces, bundle["BundleId"])
            if contract.OWNER_TAG_KEY in tags:
                bundles.append((bundle, tags))
        return cls(images, bundles)

    def stack_ids(self) -> list[str]:
        owners = {t[contract.OWNER_TAG_KEY] for _, t in self.images + self.bundles}
        return sorted(owners)


def _persona_of_image(name: str) -> str:
    parts = name.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else name


def _persona_of_bundle(name: str) -> str:
    return name.rsplit("-", 1)[0] if "-" in name else name


def _stack_resources(cloudformation: CloudFormationClient, stack_id: str) -> list[dict[str, Any]]:
    return list(
        _pages(cloudformation.list_stack_resources, "StackResourceSummaries", StackName=stack_id)
    )


def _state_machines(resources: list[dict[str, Any]]) -> list[str]:
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == STATE_MACHINE_TYPE and r.get("PhysicalResourceId")
    ]


def _rollout_table(resources: list[dict[str, Any]]) -> str | None:
    """The stack's rollout record table (created with its first WorkspaceRollout)."""
    for resource in resources:
        if (
            resource["ResourceType"] == TABLE_TYPE
            and resource["LogicalResourceId"].startswith(ROLLOUT_TABLE_PREFIX)
            and resource.get("PhysicalResourceId")
        ):
            return str(resource["PhysicalResourceId"])
    return None


def current_step(stepfunctions: SFNClient, execution_arn: str) -> str:
    """The state the execution entered last (its history, newest first)."""
    history = stepfunctions.get_execution_history(
        executionArn=execution_arn, reverseOrder=True, maxResults=50
    )
    for event in history.get("events", []):
        entered = event.get("stateEnteredEventDetails")
        if event["type"].endswith("StateEntered") and entered:
            return str(entered["name"])
    return ""


def running_builds(aws: Aws, state_machine: str) -> list[dict[str, Any]]:
    sfn: SFNClient = aws.client("stepfunctions")
    now = aws.clock()
    builds = []
    for execution in _pages(
        sfn.list_executions, "executions", stateMachineArn=state_machine, statusFilter="RUNNING"
    ):
        arn = execution["executionArn"]
        described = sfn.describe_execution(executionArn=arn)
        # A build's input names its persona only (its request is in the evidence store);
        # an execution started before 0.5 carried the whole request: only the persona is read.
        build_input = json.loads(described.get("input") or "{}")
        persona = str(
            build_input.get("Persona") or (build_input.get("Build") or {}).get("persona", "")
        )
        kind = "cleanup" if "Cleanup" in build_input else "build"
        step = current_step(sfn, arn)
        started = execution["startDate"]
        builds.append(
            {
                "execution": execution["name"],
                "executionArn": arn,
                "kind": kind,
                "persona": persona,
                "step": step,
                "meaning": STEP_MEANINGS.get(step, ""),
                "started": _iso(started),
                "elapsedSeconds": max(0, int((now - started).total_seconds())),
            }
        )
    return builds


def read_rollout(aws: Aws, table: str | None, bundle_id: str) -> dict[str, Any] | None:
    """The bundle's rollout record (``dynamodb:GetItem``, read only), summed up; None when
    the stack has no rollout table or the bundle no record (no rollout, or it has not run
    yet). An error reading it is reported in the summary, never raised."""
    if table is None:
        return None
    dynamodb = aws.client("dynamodb")
    try:
        item = dynamodb.get_item(TableName=table, Key={ROLLOUT_KEY: {"S": bundle_id}}).get("Item")
    except ClientError as error:
        code = error.response["Error"].get("Code", "")
        return {
            "state": "UNREADABLE",
            "note": f"{code}: {error.response['Error'].get('Message', '')}",
        }
    except BotoCoreError as error:
        return {"state": "UNREADABLE", "note": str(error)}
    if not item:
        return None
    try:
        record = json.loads(item.get(ROLLOUT_RECORD, {}).get("S", ""))
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        return {"state": "UNREADABLE", "note": "the record is not a JSON object"}
    failed = record.get("failed") or []
    return {
        "state": str(record.get("state", "")),
        "image": str(record.get("image", "")),
        "started": str(record.get("started") or ""),
        "updated": str(record.get("updated") or ""),
        "finished": str(record.get("finished") or ""),
        "rebuilt": int(record.get("rebuiltCount") or 0),
        "total": int(record.get("total") or 0),
        "pending": len(record.get("pending") or []),
        "inFlight": list(record.get("inFlight") or []),
        "skippedConnected": list(record.get("skippedConnected") or []),
        "skippedState": list(record.get("skippedState") or []),
        "skippedSnapshot": list(record.get("skippedSnapshot") or []),
        "failed": [f for f in failed if isinstance(f, dict)],
        "note": str(record.get("note") or ""),
    }


def stack_report(aws: Aws, stack_id: str, inventory: Inventory) -> dict[str, Any]:
    """A stack's personas (images and bundles), running builds and what was left behind."""
    images = [(i, t) for i, t in inventory.images if t[contract.OWNER_TAG_KEY] == stack_id]
    bundles = [(b, t) for b, t in inventory.bundles if t[contract.OWNER_TAG_KEY] == stack_id]
    names = {i["ImageId"]: i.get("Name", "") for i, _ in inventory.images}
    personas: dict[str, dict[str, Any]] = {}

    def persona(name: str) -> dict[str, Any]:
        return personas.setdefault(name, {"persona": name, "images": [], "bundles": []})

    left: list[dict[str, str]] = []
    for image, tags in images:
        persona(_persona_of_image(image.get("Name", "")))["images"].append(
            {
                "name": image.get("Name", ""),
                "id": image["ImageId"],
                "version": tags.get(contract.VERSION_TAG_KEY, ""),
                "state": image.get("State", ""),
                "buildSeconds": _int_or_none(tags.get(contract.BUILD_SECONDS_TAG_KEY)),
                "created": _iso(image.get("Created")),
            }
        )
        for key in (contract.CLEANUP_TAG_KEY, contract.KEPT_TAG_KEY):
            if key in tags:
                left.append(
                    {"kind": "image", "id": image["ImageId"], "name": image.get("Name", ""),
                     "tag": key, "value": tags[key]}
                )  # fmt: skip
    for bundle, tags in bundles:
        image_id = bundle.get("ImageId", "")
        persona(_persona_of_bundle(bundle.get("Name", "")))["bundles"].append(
            {
                "name": bundle.get("Name", ""),
                "id": bundle["BundleId"],
                "imageId": image_id,
                "imageName": names.get(image_id, ""),
                "rollout": None,
            }
        )
        if contract.KEPT_TAG_KEY in tags:
            left.append(
                {"kind": "bundle", "id": bundle["BundleId"], "name": bundle.get("Name", ""),
                 "tag": contract.KEPT_TAG_KEY, "value": tags[contract.KEPT_TAG_KEY]}
            )  # fmt: skip
    report: dict[str, Any] = {
        "stack": stack_name(stack_id),
        "stackId": stack_id,
        "stateMachine": None,
        "personas": [personas[k] for k in sorted(personas)],
        "builds": [],
        "leftBehind": left,
    }
    try:
        resources = _stack_resources(aws.client("cloudformation"), stack_id)
    except ClientError as error:
        # A deleted stack: its images and bundles may remain (kept or retained); its
        # rollout table went with it.
        report["note"] = f"no stack resources: {error.response['Error'].get('Message', '')}"
        return report
    report["patching"] = _patching(aws, resources)
    table = _rollout_table(resources)
    for persona_report in personas.values():
        for bundle_report in persona_report["bundles"]:
            bundle_report["rollout"] = read_rollout(aws, table, bundle_report["id"])
    for machine in _state_machines(resources):
        report["stateMachine"] = machine
        report["builds"].extend(running_builds(aws, machine))
    for build in report["builds"]:
        earlier = personas.get(build["persona"], {}).get("images", [])
        build["estimatedRemainingSeconds"] = estimate_remaining(earlier, build["elapsedSeconds"])
    return report


def _patching(aws: Aws, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each persona's patch level and last check (empty without a patch schedule)."""
    bucket = reports.evidence_bucket(resources)
    if bucket is None:
        return []
    states = patch_levels.read_states(aws.client("s3"), bucket)
    return [patch_levels.summary(p, s) for p, s in sorted(states.items())]


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def estimate_remaining(images: list[dict[str, Any]], elapsed: int) -> int | None:
    """From the median of the persona's earlier builds (their build-seconds tag); None when
    there is none to go by."""
    durations = sorted(i["buildSeconds"] for i in images if i.get("buildSeconds") is not None)
    if not durations:
        return None
    return max(0, int(statistics.median(durations)) - elapsed)


def _resolve_stack(aws: Aws, stack: str) -> str:
    """A stack name (or id) to its id."""
    if stack.startswith("arn:"):
        return stack
    cloudformation: CloudFormationClient = aws.client("cloudformation")
    return cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]


def collect(aws: Aws, stack: str | None) -> list[dict[str, Any]]:
    inventory = Inventory.read(aws.client("workspaces"))
    stack_ids = [_resolve_stack(aws, stack)] if stack else inventory.stack_ids()
    return [stack_report(aws, stack_id, inventory) for stack_id in stack_ids]


def _empty(reports: list[dict[str, Any]]) -> bool:
    return all(not r["personas"] and not r["builds"] and not r["leftBehind"] for r in reports)


# ----- rendering ---------------------------------------------------------------------------
def _console() -> Console:
    # A terminal's own width; a pipe (or a test) gets a fixed one, so nothing is cut.
    width = None if sys.stdout.isatty() else 160
    return Console(width=width, soft_wrap=False, highlight=False)


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _estimate(seconds: int | None) -> str:
    if seconds is None:
        return "no earlier build"
    return f"about {_duration(seconds)}" if seconds else "any moment (past the usual)"


def _builds_table(builds: list[dict[str, Any]]) -> Table:
    table = Table(title="Builds in progress", title_justify="left")
    for column in ("Persona", "Kind", "Step", "What it does", "Elapsed", "Left (est.)"):
        table.add_column(column)
    table.add_column("Execution", overflow="fold")
    for build in builds:
        table.add_row(
            build["persona"],
            build["kind"],
            build["step"],
            build["meaning"],
            _duration(build["elapsedSeconds"]),
            _estimate(build.get("estimatedRemainingSeconds")),
            build["execution"],
        )
    return table


def names_of(report: dict[str, Any]) -> dict[str, str]:
    """Image names by id, from a stack report."""
    return {i["id"]: i["name"] for p in report["personas"] for i in p["images"]}


def _rollouts_table(rollouts: list[tuple[str, dict[str, Any]]], names: dict[str, str]) -> Table:
    table = Table(title="Rollouts to existing WorkSpaces (last run)", title_justify="left")
    for column in ("Persona", "Bundle", "State", "Image", "Rebuilt", "Left", "Skipped (connected)",
                   "Skipped (snapshot)", "Failed", "Updated"):  # fmt: skip
        table.add_column(column)
    table.add_column("Note", overflow="fold")
    for persona, bundle in rollouts:
        record = bundle["rollout"]
        failed = record.get("failed") or []
        table.add_row(
            persona,
            bundle["id"],
            record.get("state", ""),
            names.get(record.get("image", ""), record.get("image", "")),
            f"{record.get('rebuilt', 0)}/{record.get('total', 0)}",
            str(record.get("pending", 0)),
            str(len(record.get("skippedConnected") or [])),
            str(len(record.get("skippedSnapshot") or [])),
            ", ".join(str(f.get("workspaceId", "")) for f in failed),
            record.get("updated", ""),
            record.get("note", ""),
        )
    return table


def render_status(console: Console, reports: list[dict[str, Any]]) -> None:
    for report in reports:
        console.print(f"Stack {report['stack']}  ({report['stackId']})")
        images = Table(title="Images", title_justify="left")
        for column in ("Persona", "Image", "Version", "State", "Created", "Id"):
            images.add_column(column)
        bundles = Table(title="Bundles", title_justify="left")
        for column in ("Persona", "Bundle", "Id", "Image"):
            bundles.add_column(column)
        for persona in report["personas"]:
            for image in persona["images"]:
                images.add_row(
                    persona["persona"],
                    image["name"],
                    image["version"],
                    image["state"],
                    image["created"],
                    image["id"],
                )
            for bundle in persona["bundles"]:
                bundles.add_row(
                    persona["persona"],
                    bundle["name"],
                    bundle["id"],
                    bundle["imageName"] or bundle["imageId"],
                )
        console.print(images)
        console.print(bundles)
        rollouts = [
            (persona["persona"], bundle)
            for persona in report["personas"]
            for bundle in persona["bundles"]
            if bundle.get("rollout")
        ]
        if rollouts:
            console.print(_rollouts_table(rollouts, names_of(report)))
        if report.get("patching"):
            console.print(_patching_table(report["patching"]))
        if report["builds"]:
            console.print(_builds_table(report["builds"]))
        else:
            console.print("Builds in progress: none")
        if report["leftBehind"]:
            left = Table(title="Left behind", title_justify="left")
            for column in ("Kind", "Id", "Name", "Tag", "Why"):
                left.add_column(column)
            for item in report["leftBehind"]:
                left.add_row(item["kind"], item["id"], item["name"], item["tag"], item["value"])
            console.print(left)
        else:
            console.print("Left behind: nothing")
        if report.get("note"):
            console.print(report["note"])
        console.print()


def _patching_table(states: list[dict[str, Any]]) -> Table:
    table = Table(title="Patch cadence", title_justify="left")
    for column in ("Persona", "Patch level", "Built at level", "Updates found", "Last check",
                   "Failed builds", "Schedule"):  # fmt: skip
        table.add_column(column)
    for item in states:
        table.add_row(
            item["persona"],
            item["level"] or "-",
            item["builtLevel"] or "-",
            f"{item['updatesFound'] or '-'} ({item['pending'] or 0} pending)",
            f"{item['lastCheck'] or '-'} {item['lastResult'] or ''}".strip(),
            str(item["failures"]),
            f"disabled {item['disabled']['at']}" if item["disabled"] else "enabled",
        )
    return table


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _failed(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)


# ----- commands ------------------------------------------------------------------------------
OUTPUT = click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="a table for people, or JSON for scripts",
)


@click.group()
@click.option("--region", default=None, help="default: your configured Region")
@click.pass_context
def cli(ctx: click.Context, region: str | None) -> None:
    """See what the WorkSpaces image bakery's stacks hold and build."""
    if ctx.obj is None:
        ctx.obj = Aws(region=region)
    elif region is not None:
        ctx.obj.region = region


@cli.command()
@click.option("--stack", default=None, help="a stack name or id; default: every bakery stack")
@OUTPUT
@click.pass_obj
def status(aws: Aws, stack: str | None, output: str) -> None:
    """Each persona's images and bundles, the last rollout to existing WorkSpaces, builds in
    progress and what was left behind."""
    try:
        reports = collect(aws, stack)
    except (ClientError, BotoCoreError) as error:
        _failed(error)
        raise SystemExit(EXIT_FAILURE) from None
    if output == "json":
        _echo_json({"stacks": reports})
    elif not reports:
        click.echo("No WorkSpaces image bakery stack found (no image or bundle is tagged).")
    else:
        render_status(_console(), reports)
    if not reports or _empty(reports):
        raise SystemExit(EXIT_NOTHING_FOUND)


@cli.command()
@click.option("--stack", default=None, help="a stack name or id; default: every bakery stack")
@click.option("--interval", default=30, show_default=True, help="seconds between looks")
@click.option("--max-polls", default=0, help="stop after this many looks (0: until done)")
@OUTPUT
@click.pass_obj
def watch(aws: Aws, stack: str | None, interval: int, max_polls: int, output: str) -> None:
    """Follow running builds live: the current step and the time elapsed, until none runs."""
    polls = 0
    console = _console()
    seen = False
    while True:
        try:
            reports = collect(aws, stack)
        except (ClientError, BotoCoreError) as error:
            _failed(error)
            raise SystemExit(EXIT_FAILURE) from None
        builds = [
            {**b, "stack": r["stack"]} for r in reports for b in r["builds"] if b["kind"] == "build"
        ]
        polls += 1
        at = _iso(aws.clock())
        if output == "json":  # one JSON document per line and look
            click.echo(json.dumps({"at": at, "builds": builds}, sort_keys=True))
        elif builds:
            console.print(f"{at}: {len(builds)} build(s) running")
            console.print(_builds_table(builds))
        else:
            console.print(f"{at}: no build running")
        seen = seen or bool(builds)
        if not builds or (max_polls and polls >= max_polls):
            break
        aws.sleep(interval)
    if not seen:
        raise SystemExit(EXIT_NOTHING_FOUND)


@cli.command()
@click.argument("persona")
@click.option("--stack", default=None, help="a stack name or id; default: the persona's stack")
@OUTPUT
@click.pass_obj
def report(aws: Aws, persona: str, stack: str | None, output: str) -> None:
    """What the build did for PERSONA's newest image, from its as-built record (checked
    against the image): steps, seal, as-built checklist, SBOM, and the package changes from
    the persona's previous image."""
    try:
        inventory = Inventory.read(aws.client("workspaces"))
        owners = [_resolve_stack(aws, stack)] if stack else inventory.stack_ids()
        found = []
        for owner in owners:
            resources = _stack_resources(aws.client("cloudformation"), owner)
            found.append(
                reports.persona_report(
                    aws.client("s3"),
                    reports.evidence_bucket(resources),
                    inventory.images,
                    persona,
                    owner,
                )
            )
    except (ClientError, BotoCoreError) as error:
        _failed(error)
        raise SystemExit(EXIT_FAILURE) from None
    found = [r for r in found if r["images"]] or found[:1]
    if output == "json":
        _echo_json({"reports": found})
    else:
        for item in found:
            _render_report(item)
    if not found or not found[0].get("record"):
        raise SystemExit(EXIT_NOTHING_FOUND)


@cli.command("patch-levels")
@click.option("--stack", required=True, help="the stack's name or id")
@click.option(
    "--role-arn",
    default=None,
    help="read with this role (another account's, e.g. its CDK lookup role)",
)
@click.option(
    "--missing-ok",
    is_flag=True,
    help="print {} when the stack does not exist yet (a first deploy)",
)
@click.pass_obj
def patch_levels_command(aws: Aws, stack: str, role_arn: str | None, missing_ok: bool) -> None:
    """Print the personas' patch levels as JSON, for the next synth:
    cdk synth -c workspaces-image-bakery:patch-levels="$(workspaces-image-bakery patch-levels
    --stack NAME)". Levels are what the stack's patch check raised (docs/patching.md)."""
    try:
        if role_arn is not None:
            aws = aws.assuming(role_arn)
        try:
            owner = _resolve_stack(aws, stack)
        except ClientError as error:
            if not (missing_ok and "does not exist" in str(error)):
                raise
            click.echo("{}")
            return
        bucket = reports.evidence_bucket(_stack_resources(aws.client("cloudformation"), owner))
        states = {} if bucket is None else patch_levels.read_states(aws.client("s3"), bucket)
    except (ClientError, BotoCoreError) as error:
        _failed(error)
        raise SystemExit(EXIT_FAILURE) from None
    chosen, refused = patch_levels.levels(states)
    for line in refused:
        click.echo(f"left out: {line}", err=True)
    click.echo(json.dumps(chosen, sort_keys=True, separators=(",", ":")))


def _render_report(item: dict[str, Any]) -> None:
    console = _console()
    console.print(f"Persona {item['persona']} in {stack_name(item['stack'])}")
    if "problem" in item:
        console.print(f"  {item['problem']}")
        return
    console.print(f"  image {item['image']['name']} ({item['image']['id']})")
    for refused in item.get("refused", []):
        console.print(f"  refused: {refused}")
    record = item.get("record")
    if not record:
        return
    console.print(f"  built {record['started']} -> {record['ended']} ({record['execution']})")
    console.print(f"  steps: {', '.join(record['steps']) or 'none (prepared by hand)'}")
    console.print(f"  output: {record['output'] or 'none'}")
    console.print(f"  SBOM: {record['sbom'] or 'none (no inventory)'}")
    table = Table("item", "score", "evidence (as built)")
    for entry in record["checklist"]:
        score = "-" if entry["score"] is None else str(entry["score"])
        table.add_row(str(entry["number"]), score, entry["evidence"])
    console.print(table)
    console.print(f"  as-built score: {record['score']}")
    _render_vulnerabilities(console, item.get("vulnerabilities"), item.get("previous_image"))
    diff = item.get("package_diff")
    if diff is None:
        console.print("  package diff: no previous image with an SBOM")
    else:
        console.print(
            f"  packages since {item['previous_image']}: {len(diff['added'])} added, "
            f"{len(diff['removed'])} removed, {len(diff['upgraded'])} upgraded, "
            f"{len(diff['downgraded'])} downgraded"
        )
        for change in diff["upgraded"] + diff["downgraded"]:
            console.print(f"    {change[0]} {change[2]} -> {change[3]}")
        for added in diff["added"]:
            console.print(f"    + {added[0]} {added[1]}")
        for removed in diff["removed"]:
            console.print(f"    - {removed[0]} {removed[1]}")


def _render_vulnerabilities(console: Any, scan: dict[str, Any] | None, previous: Any) -> None:
    if scan is None:
        console.print("  vulnerabilities: not scanned (no inventory)")
        return
    if not scan["scanned"]:
        console.print(f"  vulnerabilities: the scan failed ({scan['error']})")
        return
    order = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
    counts = ", ".join(f"{k} {scan['summary'][k]}" for k in order if k in scan["summary"])
    gate = f"gate {scan['gate']}" if scan["gate"] else "no gate"
    accepted = f"; accepted: {', '.join(scan['accepted'])}" if scan["accepted"] else ""
    console.print(f"  vulnerabilities: {counts} ({gate}{accepted})")
    if scan["new"] is not None:
        console.print(
            f"  since {previous}: {len(scan['new'])} new, {len(scan['gone'])} gone"
            + "".join(f"\n    + {n}" for n in scan["new"])
            + "".join(f"\n    - {g}" for g in scan["gone"])
        )


@cli.command("as-built")
@click.option(
    "--assembly",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="the pull request's cloud assembly (cdk.out): its declared checklist",
)
@click.option(
    "--output",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="the review's section, or JSON",
)
@click.pass_obj
def as_built_command(aws: Aws, assembly: str, output: str) -> None:
    """The review's as-built section: for each persona of ASSEMBLY, the as-built checklist
    of the image its bundle serves (record checked against the image) beside the pull
    request's declared checklist, and the packages changed since the image before it. What
    cannot be read (no credentials, a stack not deployed) is said in the section; the
    command fails only when the assembly has no declared checklist."""
    try:
        declared = as_built.read_declared(Path(assembly))
    except ValueError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(EXIT_FAILURE) from None
    found: dict[str, dict[str, Any]] = {}
    problem = None
    try:
        inventory = Inventory.read(aws.client("workspaces"))
        stacks: dict[str, tuple[str, str | None] | str] = {}
        for name in sorted({str(d.get("stack", "")) for d in declared.values()}):
            try:
                owner = _resolve_stack(aws, name)
            except ClientError as error:
                stacks[name] = f"stack {name} not read: {error.response['Error'].get('Message')}"
                continue
            resources = _stack_resources(aws.client("cloudformation"), owner)
            stacks[name] = (owner, reports.evidence_bucket(resources))
        for persona, entry in declared.items():
            where = stacks[str(entry.get("stack", ""))]
            if isinstance(where, str):
                found[persona] = {"problem": where}
                continue
            owner, bucket = where
            served = as_built.served_image(
                inventory.bundles,
                inventory.images,
                persona,
                owner,
                contract.PERSONA_TAG_KEY,
                contract.OWNER_TAG_KEY,
            )
            found[persona] = reports.persona_report(
                aws.client("s3"), bucket, inventory.images, persona, owner, served
            )
    except (ClientError, BotoCoreError) as error:
        problem = f"the records could not be read ({error})"
    if output == "json":
        _echo_json({"problem": problem, "reports": found})
    else:
        click.echo(as_built.render_as_built(declared, found, problem=problem), nl=False)


@cli.command("register-template")
@click.option("--workspace", required=True, help="the template WorkSpace id (ws-...)")
@click.option("--role", required=True, help="the stack's TemplateNodeRoleName output")
@OUTPUT
@click.pass_obj
def register_template(aws: Aws, workspace: str, role: str, output: str) -> None:
    """Register a template WorkSpace with Systems Manager (once per template), and tag it
    with its own id (workspaces-image-bakery:template)."""
    ssm: SSMClient = aws.client("ssm")
    region = aws.region or ssm.meta.region_name
    try:
        activation = registration.create_activation(workspace, role, client=ssm, region=region)
        registration.tag_template(workspace, client=aws.client("workspaces"))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--workspace") from None
    except (ClientError, BotoCoreError) as error:
        _failed(error)
        raise SystemExit(EXIT_FAILURE) from None
    if output == "json":
        _echo_json(
            {
                "activationId": activation.activation_id,
                "activationCode": activation.code,
                "region": activation.region,
                "workspaceId": activation.workspace_id,
                "instructions": activation.instructions(),
            }
        )
    else:
        click.echo(activation.instructions())


def run(args: list[str], aws: Aws | None = None) -> int:
    """Run the CLI in-process (``python -m ...operations.register_template`` uses it)."""
    try:
        result = cli.main(args=args, obj=aws, standalone_mode=False)
    except click.ClickException as error:  # a usage error, or NoRegion
        click.echo(f"error: {error.format_message()}", err=True)
        return error.exit_code
    except SystemExit as done:
        return int(done.code or 0)
    return int(result or 0)


def main() -> None:
    """The console script."""
    cli(obj=None)


if __name__ == "__main__":  # python -m workspaces_image_bakery.operations.cli (no install)
    main()
