"""The scheduled patch check: are security updates pending on a persona's template?

A persona's EventBridge Scheduler schedule starts the stack's patch workflow with
``{"Patch": {"Persona": <name>}}``; the workflow calls :func:`handler` with ``Step``
``CheckForUpdates`` once, then ``PollCheck`` until the command ends (waiting happens in the
state machine). Only the persona's name is read from the input: it must be one the
function's own configuration (``PATCH_SETTINGS``) names, and the node and the failure bound
come from there (the schedule's name from ``PATCH_SCHEDULE_PREFIX`` and the persona).

The check sends the stack's pending-updates document to the template's managed node (Run
Command). It prints one line per package with a pending **security** update (apt: the
packages ``apt-get -s dist-upgrade`` would take from a ``-security`` suite; dnf/yum: the
packages ``updateinfo list --security`` names). Then:

- none pending: the state notes the check; nothing starts;
- some pending: the persona's **patch level** becomes ``<UTC time>-<digest of the list>``
  (kept when the list is the one already raised), the state keeps it with the packages,
  and an ``Image Patch Level Raised`` event goes to the default bus. A pipeline run that
  event starts reads the levels (``workspaces-image-bakery patch-levels``) before its synth:
  the level is part of the persona's recipe, so the deploy builds the image (the
  preparation patches the template first), through CloudFormation like any other build;
- the list is the one the persona was last built at: the build did not clear it (held
  packages, a preparation that does not patch); nothing starts again, the state says so.

A build of the raised level that fails counts (``image_build`` records it in the state); when
``failuresBeforeDisable`` builds failed in a row, the next check disables its own schedule
(``UpdateSchedule`` with ``State: DISABLED``, everything else as ``GetSchedule`` read it),
puts an ``Image Patch Schedule Disabled`` event, and starts nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import RETRY_CONFIG, error_code, owner, stack_name
from ..core.errors import BuildFailed
from . import contract as pc
from . import state as patch_state

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

logger = logging.getLogger(__name__)

# The check is short (a package index refresh and a simulated upgrade).
COMMAND_TIMEOUT_SECONDS = 900
# How many package names the state and the event keep (the count is always whole).
MAX_LISTED = 100
_PERSONA = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SCHEDULE_FIELDS = (
    "Name",
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "FlexibleTimeWindow",
    "Target",
    "Description",
    "StartDate",
    "EndDate",
    "KmsKeyArn",
    "ActionAfterCompletion",
)


@dataclass
class PatchClients:
    """The AWS clients the patch check uses; tests pass clients backed by fakes."""

    ssm: SSMClient = field(default_factory=lambda: boto3.client("ssm", config=RETRY_CONFIG))
    s3: S3Client = field(default_factory=lambda: boto3.client("s3", config=RETRY_CONFIG))
    events: EventBridgeClient = field(
        default_factory=lambda: boto3.client("events", config=RETRY_CONFIG)
    )
    # EventBridge Scheduler (no type stubs pinned for it).
    scheduler: Any = field(default_factory=lambda: boto3.client("scheduler", config=RETRY_CONFIG))


def settings_of(persona: Any) -> dict[str, Any]:
    """The persona's settings from the function's own configuration; anything else is
    refused (an execution's input only names a persona)."""
    configured = json.loads(os.environ.get(pc.ENV_PATCH_SETTINGS, "{}"))
    if not isinstance(persona, str) or not _PERSONA.match(persona) or persona not in configured:
        raise BuildFailed(f"{str(persona)[:40]!r} is not a persona with a patch schedule here")
    return dict(configured[persona])


def pending_packages(stdout: str) -> list[str]:
    """The packages the document found with a pending security update, sorted."""
    return sorted(
        {
            line.removeprefix(pc.PENDING_LINE).strip()
            for line in stdout.splitlines()
            if line.startswith(pc.PENDING_LINE) and line.removeprefix(pc.PENDING_LINE).strip()
        }
    )


def level_of(packages: list[str], now: float) -> str:
    digest = hashlib.sha256("\n".join(packages).encode()).hexdigest()[:8]
    return f"{dt.datetime.fromtimestamp(now, dt.UTC):%Y%m%dT%H%MZ}-{digest}"


def _iso(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds")


def check(persona: str, clients: PatchClients, now: float) -> dict[str, Any]:
    """Disable the schedule after too many failed builds; else send the check."""
    settings = settings_of(persona)
    state = patch_state.load(clients.s3, persona)
    bound = int(settings[pc.FAILURES_BEFORE_DISABLE])
    failures = int(state.get("failures", 0))
    if failures >= bound:
        disable_schedule(
            clients, pc.schedule_name(os.environ.get(pc.ENV_SCHEDULE_PREFIX, ""), persona)
        )
        # Counted again from nought once an operator enables the schedule.
        state["disabled"] = {"at": _iso(now), "failures": failures, "level": state.get("level")}
        state["failures"] = 0
        patch_state.save(clients.s3, persona, state)
        _publish(
            clients,
            pc.EVENT_SCHEDULE_DISABLED,
            persona,
            now,
            {
                "failures": failures,
                "level": state.get("level"),
                "reason": f"{failures} builds of patch level {state.get('level')} failed in a "
                "row; the patch schedule is disabled: fix the build, then enable the schedule",
            },
        )
        return {"Status": pc.STATUS_DISABLED, "CommandId": ""}
    try:
        sent = clients.ssm.send_command(
            DocumentName=os.environ[pc.ENV_PENDING_DOCUMENT],
            InstanceIds=[str(settings[pc.NODE])],
            TimeoutSeconds=COMMAND_TIMEOUT_SECONDS,
            Comment=f"workspaces-image-bakery: pending security updates ({persona})"[:100],
        )
    except ClientError as error:
        if error_code(error) not in ("InvalidInstanceId", "InvalidTarget"):
            raise
        _note(clients, persona, state, now, pc.STATUS_UNREACHABLE, error_code(error))
        return {"Status": pc.STATUS_UNREACHABLE, "CommandId": ""}
    return {"Status": pc.STATUS_SENT, "CommandId": sent["Command"]["CommandId"]}


def poll(persona: str, command_id: str, clients: PatchClients, now: float) -> dict[str, Any]:
    """While the command runs: WAIT. Then what it found (see the module's doc)."""
    settings = settings_of(persona)
    if not re.fullmatch(r"[0-9a-f-]{36}", command_id):
        raise BuildFailed(f"{command_id[:40]!r} is not a command id")
    try:
        invocation = clients.ssm.get_command_invocation(
            CommandId=command_id, InstanceId=str(settings[pc.NODE])
        )
    except ClientError as error:
        if error_code(error) == "InvocationDoesNotExist":
            return {"Status": pc.STATUS_WAIT}
        raise
    status = str(invocation.get("Status", ""))
    if status in ("Pending", "InProgress", "Delayed"):
        return {"Status": pc.STATUS_WAIT}
    state = patch_state.load(clients.s3, persona)
    if status != "Success":
        _note(clients, persona, state, now, "FAILED", str(invocation.get("StatusDetails", "")))
        raise BuildFailed(
            f"the pending-updates check on {persona}'s template ended "
            f"{invocation.get('StatusDetails', status)} (exit {invocation.get('ResponseCode')})"
        )
    packages = pending_packages(str(invocation.get("StandardOutputContent", "")))
    if not packages:
        _note(clients, persona, state, now, pc.STATUS_CURRENT, "no security update pending")
        return {"Status": pc.STATUS_CURRENT}
    digest = level_of(packages, now).rsplit("-", 1)[1]
    current = str(state.get("level", ""))
    if current.endswith(f"-{digest}") and state.get("built_level") == current:
        _note(
            clients,
            persona,
            state,
            now,
            pc.STATUS_UNCHANGED,
            f"the {len(packages)} updates of level {current} are still pending after its build",
        )
        return {"Status": pc.STATUS_UNCHANGED, "Level": current}
    level = current if current.endswith(f"-{digest}") else level_of(packages, now)
    state.update(level=level, found=_iso(now), pending=len(packages))
    state["packages"] = packages[:MAX_LISTED]
    _note(clients, persona, state, now, pc.STATUS_RAISED, f"{len(packages)} pending")
    _publish(
        clients,
        pc.EVENT_LEVEL_RAISED,
        persona,
        now,
        {"level": level, "pending": len(packages), "packages": packages[:MAX_LISTED]},
    )
    return {"Status": pc.STATUS_RAISED, "Level": level}


def _note(
    clients: PatchClients,
    persona: str,
    state: dict[str, Any],
    now: float,
    result: str,
    detail: str,
) -> None:
    state["checked"] = {"at": _iso(now), "result": result, "detail": detail[:500]}
    patch_state.save(clients.s3, persona, state)
    logger.info("patch check of %s: %s (%s)", persona, result, detail[:200])


def _publish(
    clients: PatchClients, detail_type: str, persona: str, now: float, detail: dict[str, Any]
) -> None:
    stack = owner()
    answer = clients.events.put_events(
        Entries=[
            {
                "Source": c.EVENT_SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(
                    {"stack": stack_name(stack), "stackId": stack, "persona": persona, **detail},
                    sort_keys=True,
                ),
                "Resources": [stack],
                "Time": dt.datetime.fromtimestamp(now, dt.UTC),
            }
        ]
    )
    if answer.get("FailedEntryCount"):
        # The trigger is the event: a lost one must show (the next check sends it again).
        raise BuildFailed(f"the {detail_type} event was not published: {answer.get('Entries')}")


def disable_schedule(clients: PatchClients, name: str) -> None:
    """UpdateSchedule replaces the whole schedule: everything GetSchedule read, DISABLED."""
    current = clients.scheduler.get_schedule(Name=name)
    kept = {k: current[k] for k in _SCHEDULE_FIELDS if current.get(k) not in (None, "")}
    clients.scheduler.update_schedule(**kept, State="DISABLED")
    logger.info("patch schedule %s disabled", name)


def run_step(
    event: Mapping[str, Any], clients: PatchClients, now: Callable[[], float]
) -> dict[str, Any]:
    patch = event.get("Patch")
    persona = patch.get("Persona") if isinstance(patch, Mapping) else None
    step = event.get("Step")
    if step == pc.STEP_CHECK:
        return check(str(persona), clients, now())
    if step == pc.STEP_POLL:
        return poll(str(persona), str(event.get("CommandId", "")), clients, now())
    raise BuildFailed(f"unknown patch step {str(step)[:40]!r}")


_clients: PatchClients | None = None


def handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    """Lambda entry point of the patch workflow."""
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = PatchClients()
    return run_step(event, _clients, time.time)
