"""Rolling a bundle's current image out to the WorkSpaces created from it (opt-in).

``RebuildWorkspaces`` recreates a WorkSpace's root volume from its bundle's current image
and restores the user volume from its last snapshot (taken every 12 hours): a rebuild can
lose up to 12 hours of a user's work. So a rollout rebuilds only WorkSpaces whose user is
DISCONNECTED (never CONNECTED, never UNKNOWN) and that are AVAILABLE or STOPPED, a canary
share first, then batches, and stops at the first failure.

The rollout state machine calls :func:`handler` with ``{"Step": "Advance" | "RecordFailure",
"Rollout": {...}}`` again and again; waiting happens in the state machine. Each call moves
the rollout one step on and returns ``{"Status": WAIT | DONE | FAILED, "WaitSeconds": n}``.

Progress lives in one SSM parameter per bundle, ``/workspaces-image-bakery/rollout/<bundle
id>``, as JSON (the record): the image, the run, the WorkSpaces still to rebuild onto it
(``pending``, the bundle's WorkSpaces when the rollout of that image began), the batch being
rebuilt, the counts and the failure. WorkSpaces created after that moment come from the new
image already and are never rebuilt. Operators and the CLI read it with ``GetParameter``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import ClientError

from .aws import RETRY_CONFIG, error_code, error_message, raise_if_transient
from .errors import TransientError

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_workspaces import WorkSpacesClient

logger = logging.getLogger(__name__)
logging.getLogger().setLevel(logging.INFO)

PARAMETER_PREFIX: Final = "/workspaces-image-bakery/rollout/"
# The bundles this stack rolls out (comma-separated ids): an input naming another bundle is
# refused, whoever started the execution.
ENV_ROLLOUT_BUNDLES: Final = "ROLLOUT_BUNDLES"

STEP_ADVANCE: Final = "Advance"
STEP_RECORD_FAILURE: Final = "RecordFailure"
STATUS_WAIT: Final = "WAIT"
STATUS_DONE: Final = "DONE"
STATUS_FAILED: Final = "FAILED"

# The record's states.
STATE_NOT_STARTED: Final = "NOT_STARTED"  # the placeholder the stack writes
STATE_RUNNING: Final = "RUNNING"
STATE_COMPLETED: Final = "COMPLETED"  # every WorkSpace of the bundle runs the image
STATE_PARTIAL: Final = "PARTIAL"  # the run ended with WorkSpaces skipped: the next run goes on
STATE_FAILED: Final = "FAILED"  # stopped at a failure: no further rebuild onto this image

# How often a batch being rebuilt is looked at.
REBUILD_POLL_SECONDS: Final = 300
# The API takes one WorkSpace per RebuildWorkspaces request, 25 per describe (botocore).
DESCRIBE_CHUNK: Final = 25
# A record above this is refused by SSM (Intelligent-Tiering: 4 KB standard, 8 KB advanced).
MAX_RECORD_BYTES: Final = 8192
MAX_FAILURES_KEPT: Final = 10
# The last WorkSpaces rebuilt, for operators (the count covers them all).
RECENT_KEPT: Final = 20

REBUILDABLE: Final = frozenset({"AVAILABLE", "STOPPED"})
SETTLED: Final = frozenset({"AVAILABLE", "STOPPED"})
BROKEN: Final = frozenset({"ERROR", "UNHEALTHY", "IMPAIRED"})
GONE: Final = frozenset({"TERMINATING", "TERMINATED"})


class RolloutFailed(Exception):  # noqa: N818 - the name is the Step Functions error name
    """The rollout cannot go on; the message says why."""


def parameter_name(bundle_id: str) -> str:
    """Where a bundle's rollout record lives."""
    return f"{PARAMETER_PREFIX}{bundle_id}"


@dataclass(frozen=True)
class Settings:
    """One rollout's settings, from the schedule's input (checked at synth time)."""

    bundle_id: str
    expected_image: str
    run_id: str
    canary_count: int
    canary_percent: float
    batch_size: int
    pause_seconds: int
    window_seconds: int
    rebuild_timeout_seconds: int
    retry: bool = False

    @classmethod
    def from_input(cls, value: Mapping[str, Any]) -> Settings:
        def number(key: str, default: float, low: float, high: float) -> float:
            raw = value.get(key, default)
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
                raise RolloutFailed(f"rollout input {key}={raw!r} is not a number")
            return min(high, max(low, float(raw)))

        bundle_id = str(value.get("BundleId", ""))
        if not bundle_id.startswith("wsb-"):
            raise RolloutFailed(f"rollout input BundleId={bundle_id!r} is not a bundle id")
        return cls(
            bundle_id=bundle_id,
            expected_image=str(value.get("ImageId") or ""),
            run_id=str(value.get("RunId") or "manual"),
            canary_count=int(number("CanaryCount", 0, 0, 100)),
            canary_percent=number("CanaryPercent", 0, 0, 50),
            batch_size=int(number("BatchSize", 10, 1, 50)),
            pause_seconds=int(number("PauseSeconds", 600, 0, 86400)),
            window_seconds=int(number("WindowSeconds", 4 * 3600, 3600, 86400)),
            rebuild_timeout_seconds=int(number("RebuildTimeoutSeconds", 3 * 3600, 60, 43200)),
            retry=value.get("Retry") is True,
        )

    def canary_size(self, total: int) -> int:
        if self.canary_count:
            return self.canary_count
        if self.canary_percent:
            return max(1, math.ceil(total * self.canary_percent / 100))
        return 1

    @property
    def stale_after_seconds(self) -> int:
        """A RUNNING record older than this belongs to a run that is over (its state
        machine's timeout): a new run takes over."""
        return self.window_seconds + self.rebuild_timeout_seconds + self.pause_seconds + 3600


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _epoch(text: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return 0.0


def _chunks(items: list[str], size: int = DESCRIBE_CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ----- the record ------------------------------------------------------------------------
def load_record(ssm: SSMClient, bundle_id: str) -> dict[str, Any]:
    """The bundle's record; an empty one when there is none yet."""
    try:
        value = ssm.get_parameter(Name=parameter_name(bundle_id))["Parameter"].get("Value", "")
    except ClientError as error:
        if error_code(error) == "ParameterNotFound":
            return {}
        raise
    try:
        record = json.loads(value)
    except json.JSONDecodeError:
        logger.warning("the rollout record of %s is not JSON; starting afresh", bundle_id)
        return {}
    return record if isinstance(record, dict) else {}


def save_record(ssm: SSMClient, bundle_id: str, record: dict[str, Any], now: float) -> None:
    """Write the record; one too big for SSM is replaced by a FAILED record saying why."""
    image = str(record.get("image", ""))
    record["updated"] = _iso(now)
    record["rebuiltCount"] = int(record.get("rebuiltCount", 0))
    record["pendingCount"] = len(record.get("pending", []))
    record["failed"] = list(record.get("failed", []))[:MAX_FAILURES_KEPT]
    value = json.dumps(record, separators=(",", ":"), sort_keys=True)
    if len(value.encode()) > MAX_RECORD_BYTES:
        reason = (
            f"the rollout record of bundle {bundle_id} would be {len(value.encode())} bytes, "
            f"more than SSM's {MAX_RECORD_BYTES}: the bundle has too many WorkSpaces "
            f"({record['pendingCount']} to rebuild) for one record; split its users across "
            "bundles (personas)"
        )
        # What an operator needs to see, in place of the record that does not fit.
        record.clear()
        record.update(
            bundle=bundle_id,
            image=image,
            state=STATE_FAILED,
            updated=_iso(now),
            finished=_iso(now),
            note=reason,
        )
        ssm.put_parameter(
            Name=parameter_name(bundle_id),
            Value=json.dumps(record, separators=(",", ":"), sort_keys=True),
            Type="String",
            Overwrite=True,
            Tier="Intelligent-Tiering",
        )
        raise RolloutFailed(reason)
    ssm.put_parameter(
        Name=parameter_name(bundle_id),
        Value=value,
        Type="String",
        Overwrite=True,
        Tier="Intelligent-Tiering",
    )


# ----- WorkSpaces look-ups -----------------------------------------------------------------
def bundle_image(client: WorkSpacesClient, bundle_id: str) -> str:
    bundles = client.describe_workspace_bundles(BundleIds=[bundle_id]).get("Bundles", [])
    if not bundles:
        raise RolloutFailed(f"bundle {bundle_id} does not exist in this account and Region")
    return str(bundles[0].get("ImageId", ""))


def workspaces_of_bundle(client: WorkSpacesClient, bundle_id: str) -> list[str]:
    """Every WorkSpace created from the bundle and not being deleted (all pages)."""
    pages = client.get_paginator("describe_workspaces").paginate(BundleId=bundle_id)
    return [
        w["WorkspaceId"]
        for page in pages
        for w in page.get("Workspaces", [])
        if w.get("State") not in GONE
    ]


def workspace_states(client: WorkSpacesClient, ids: list[str]) -> dict[str, str]:
    """State by id; a WorkSpace that no longer exists is absent."""
    states: dict[str, str] = {}
    for chunk in _chunks(ids):
        for workspace in client.describe_workspaces(WorkspaceIds=chunk).get("Workspaces", []):
            states[workspace["WorkspaceId"]] = str(workspace.get("State", ""))
    return states


def connection_states(client: WorkSpacesClient, ids: list[str]) -> dict[str, str]:
    """Connection state by id (CONNECTED, DISCONNECTED, UNKNOWN); absent means unknown."""
    states: dict[str, str] = {}
    for chunk in _chunks(ids):
        token: str | None = None
        while True:
            answer = client.describe_workspaces_connection_status(
                WorkspaceIds=chunk, **({"NextToken": token} if token else {})
            )
            for status in answer.get("WorkspacesConnectionStatus", []):
                states[status.get("WorkspaceId", "")] = str(status.get("ConnectionState", ""))
            token = answer.get("NextToken")
            if not token:
                break
    return states


# ----- the steps ---------------------------------------------------------------------------
@dataclass
class Outcome:
    status: str
    wait_seconds: int = 0
    reason: str = ""

    def answer(self) -> dict[str, Any]:
        return {"Status": self.status, "WaitSeconds": self.wait_seconds, "Reason": self.reason}


def _finish(record: dict[str, Any], now: float, note: str) -> Outcome:
    record["state"] = STATE_COMPLETED if not record.get("pending") else STATE_PARTIAL
    record["finished"] = _iso(now)
    record["note"] = note
    logger.info("rollout of %s: %s (%s)", record.get("image"), record["state"], note)
    return Outcome(STATUS_DONE, 0, note)


def _fail(record: dict[str, Any], now: float, failures: list[dict[str, str]]) -> Outcome:
    record["state"] = STATE_FAILED
    record["finished"] = _iso(now)
    record["failed"] = [*failures, *record.get("failed", [])]
    first = failures[0]
    record["note"] = (
        f"stopped: {first['workspaceId']} {first['reason']}; later batches were not started"
    )
    logger.error("rollout of %s stopped: %s", record.get("image"), failures)
    return Outcome(STATUS_FAILED, 0, record["note"])


def begin(
    settings: Settings, clients: Clients, record: dict[str, Any], now: float
) -> Outcome | None:
    """The first call of a run: decide whether there is anything to do, and from where.
    Returns an outcome when the run ends here, else None (``record`` is ready to go on)."""
    image = bundle_image(clients.workspaces, settings.bundle_id)
    if settings.expected_image and image != settings.expected_image:
        # The record of the image being rolled out is kept as it is.
        record.update(
            note=(
                f"the bundle uses {image}, not {settings.expected_image} as the stack deployed "
                "(a deploy in progress, or a change outside the stack): nothing was rebuilt"
            ),
            checked=_iso(now),
        )
        return Outcome(STATUS_DONE, 0, record["note"])
    same_image = record.get("image") == image
    state = record.get("state")
    if same_image and state == STATE_COMPLETED:
        record.update(checked=_iso(now), note="every WorkSpace of the bundle runs the image")
        return Outcome(STATUS_DONE, 0, record["note"])
    if same_image and state == STATE_FAILED and not settings.retry:
        record["checked"] = _iso(now)
        return Outcome(
            STATUS_DONE,
            0,
            "the rollout of this image failed earlier; start a run with Retry to go on",
        )
    if not same_image:
        pending = workspaces_of_bundle(clients.workspaces, settings.bundle_id)
        record.clear()
        record.update(
            bundle=settings.bundle_id,
            image=image,
            started=_iso(now),
            total=len(pending),
            pending=pending,
            rebuiltCount=0,
            canaryDone=False,
            failed=[],
            inFlight=[],
        )
    elif state == STATE_FAILED:
        record["failed"] = []
    record.update(
        state=STATE_RUNNING,
        run=settings.run_id,
        runStarted=_iso(now),
        finished=None,
        note="",
        skippedConnected=[],
        skippedState=[],
    )
    record.pop("checked", None)
    return None


def check_batch(
    settings: Settings, clients: Clients, record: dict[str, Any], now: float
) -> Outcome | None:
    """Look at the batch being rebuilt: None once every one of them settled AVAILABLE."""
    in_flight: list[str] = list(record.get("inFlight", []))
    states = workspace_states(clients.workspaces, in_flight)
    failures = [
        {"workspaceId": w, "reason": f"ended {states[w]} after its rebuild"}
        for w in in_flight
        if states.get(w) in BROKEN
    ]
    done = [w for w in in_flight if states.get(w) in SETTLED]
    gone = [w for w in in_flight if w not in states or states[w] in GONE]
    finished = set(done) | set(gone)
    record["pending"] = [w for w in record.get("pending", []) if w not in finished]
    record["rebuiltCount"] = int(record.get("rebuiltCount", 0)) + len(done)
    record["rebuilt"] = [*record.get("rebuilt", []), *done][-RECENT_KEPT:]
    record["inFlight"] = [w for w in in_flight if w not in finished]
    if failures:
        return _fail(record, now, failures)
    if record["inFlight"]:
        if now - _epoch(record.get("batchStarted")) > settings.rebuild_timeout_seconds:
            return _fail(
                record,
                now,
                [
                    {
                        "workspaceId": w,
                        "reason": f"still {states.get(w)} {settings.rebuild_timeout_seconds} s "
                        "after its rebuild",
                    }
                    for w in record["inFlight"]
                ],
            )
        return Outcome(STATUS_WAIT, REBUILD_POLL_SECONDS)
    record["canaryDone"] = True
    return None


def choose_batch(clients: Clients, record: dict[str, Any], size: int) -> list[str]:
    """The next WorkSpaces to rebuild, in the order of the record: DISCONNECTED users on
    AVAILABLE or STOPPED WorkSpaces. The others are skipped until the next run."""
    skipped = set(record["skippedConnected"]) | set(record["skippedState"])
    candidates = [w for w in record.get("pending", []) if w not in skipped]
    chosen: list[str] = []
    gone: set[str] = set()
    for chunk in _chunks(candidates):
        if len(chosen) >= size:
            break
        states = workspace_states(clients.workspaces, chunk)
        gone.update(w for w in chunk if w not in states or states[w] in GONE)
        ready = [w for w in chunk if states.get(w) in REBUILDABLE]
        record["skippedState"].extend(
            w for w in chunk if w not in gone and states.get(w) not in REBUILDABLE
        )
        connections = connection_states(clients.workspaces, ready) if ready else {}
        for workspace_id in ready:
            if connections.get(workspace_id) != "DISCONNECTED":
                record["skippedConnected"].append(workspace_id)
            elif len(chosen) < size:
                chosen.append(workspace_id)
    record["pending"] = [w for w in record.get("pending", []) if w not in gone]
    return chosen


def rebuild(
    settings: Settings, clients: Clients, record: dict[str, Any], batch: list[str], now: float
) -> Outcome:
    """Rebuild the batch, one request per WorkSpace (the API takes one); stop at the first
    FailedRequests entry or refused call. Throttling that outlives botocore's retries is
    left to the workflow's retry, with the WorkSpaces rebuilt so far recorded."""
    record["batchStarted"] = _iso(now)
    for workspace_id in batch:
        try:
            answer = clients.workspaces.rebuild_workspaces(
                RebuildWorkspaceRequests=[{"WorkspaceId": workspace_id}]
            )
        except ClientError as error:
            raise_if_transient(error)
            return _fail(
                record,
                now,
                [
                    {
                        "workspaceId": workspace_id,
                        "reason": f"could not be rebuilt: {error_code(error)}: "
                        f"{error_message(error)}",
                    }
                ],
            )
        failed = answer.get("FailedRequests", [])
        if failed:
            return _fail(
                record,
                now,
                [
                    {
                        "workspaceId": workspace_id,
                        "reason": f"could not be rebuilt: {f.get('ErrorCode', '')}: "
                        f"{f.get('ErrorMessage', '')}",
                    }
                    for f in failed
                ],
            )
        record["inFlight"] = [*record.get("inFlight", []), workspace_id]
        logger.info("rebuilding %s onto %s", workspace_id, record.get("image"))
    return Outcome(STATUS_WAIT, REBUILD_POLL_SECONDS)


def advance(settings: Settings, clients: Clients, now: float) -> Outcome:
    """Move the bundle's rollout one step on; the record is saved whatever happens."""
    record = load_record(clients.ssm, settings.bundle_id)
    first_call = record.get("run") != settings.run_id or record.get("state") != STATE_RUNNING
    if first_call and record.get("state") == STATE_RUNNING:
        age = now - _epoch(record.get("updated"))
        if age < settings.stale_after_seconds:
            return Outcome(STATUS_DONE, 0, f"run {record.get('run')} is rolling out this bundle")
    try:
        if first_call:
            ended = begin(settings, clients, record, now)
            if ended is not None:
                return ended
            # The run's starting point is saved before anything is rebuilt.
            save_record(clients.ssm, settings.bundle_id, record, now)
        if record.get("inFlight"):
            waiting = check_batch(settings, clients, record, now)
            if waiting is not None:
                return waiting
            if record.get("pending"):
                return Outcome(STATUS_WAIT, max(1, settings.pause_seconds))
        if not record.get("pending"):
            return _finish(record, now, "every WorkSpace of the bundle runs the image")
        if now - _epoch(record.get("runStarted")) > settings.window_seconds:
            return _finish(record, now, "the maintenance window ended; the next run goes on")
        size = (
            settings.batch_size
            if record.get("canaryDone")
            else settings.canary_size(int(record.get("total", 0)))
        )
        batch = choose_batch(clients, record, size)
        if not batch:
            skipped = len(record["skippedConnected"]) + len(record["skippedState"])
            return _finish(
                record,
                now,
                f"{skipped} WorkSpace(s) skipped (user connected, or not AVAILABLE/STOPPED); "
                "the next run tries them again"
                if record.get("pending")
                else "every WorkSpace of the bundle runs the image",
            )
        return rebuild(settings, clients, record, batch, now)
    finally:
        save_record(clients.ssm, settings.bundle_id, record, now)


def record_failure(
    settings: Settings, clients: Clients, error: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """The workflow's catch: mark this run's record FAILED with the step's error."""
    record = load_record(clients.ssm, settings.bundle_id)
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and parsed.get("errorMessage"):
            cause = str(parsed["errorMessage"])
    except json.JSONDecodeError:
        pass
    reason = f"{error.get('Error', 'Error')}: {cause}"[:500]
    if record.get("run") == settings.run_id and record.get("state") == STATE_RUNNING:
        record.update(state=STATE_FAILED, finished=_iso(now), note=f"the rollout stopped: {reason}")
        save_record(clients.ssm, settings.bundle_id, record, now)
    return {"Reason": reason}


@dataclass
class Clients:
    """The clients a rollout uses (tests pass clients backed by fakes)."""

    workspaces: WorkSpacesClient
    ssm: SSMClient

    @classmethod
    def default(cls) -> Clients:
        return cls(
            workspaces=boto3.client("workspaces", config=RETRY_CONFIG),
            ssm=boto3.client("ssm", config=RETRY_CONFIG),
        )


def allowed_bundles() -> set[str]:
    return {b for b in os.environ.get(ENV_ROLLOUT_BUNDLES, "").split(",") if b}


def run_step(
    event: Mapping[str, Any], clients: Clients, *, now: float | None = None
) -> dict[str, Any]:
    """Run one step. Throttling past botocore's retries comes out as TransientError (the
    workflow retries the step); anything else as RolloutFailed."""
    at = time.time() if now is None else now
    settings = Settings.from_input(event.get("Rollout") or {})
    if settings.bundle_id not in allowed_bundles():
        raise RolloutFailed(
            f"bundle {settings.bundle_id} is not rolled out by this stack ({ENV_ROLLOUT_BUNDLES})"
        )
    step = str(event.get("Step"))
    try:
        if step == STEP_ADVANCE:
            return advance(settings, clients, at).answer()
        if step == STEP_RECORD_FAILURE:
            return record_failure(settings, clients, event.get("Error") or {}, at)
    except ClientError as error:
        raise_if_transient(error)
        raise RolloutFailed(f"{step}: {error_code(error)}: {error_message(error)}") from None
    except TransientError:
        raise
    raise RolloutFailed(f"unknown rollout step {step!r}")


_clients: Clients | None = None


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point of the rollout workflow."""
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = Clients.default()
    logger.info("rollout step %s", event.get("Step"))
    return run_step(event, _clients)
