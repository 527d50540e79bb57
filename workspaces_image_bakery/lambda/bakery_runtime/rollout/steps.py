"""Rolling a bundle's current image out to the WorkSpaces created from it (opt-in).

``RebuildWorkspaces`` recreates a WorkSpace's root volume from its bundle's current image
and restores the user volume from its last rebuild snapshot: a rebuild loses what the user
did after that snapshot. So a rollout rebuilds only WorkSpaces that are AVAILABLE or STOPPED,
whose user is DISCONNECTED (never CONNECTED, never UNKNOWN) and whose latest rebuild snapshot
(``DescribeWorkspaceSnapshots``) is newer than the user's last connection
(``LastKnownUserConnectionTimestamp``; a WorkSpace the service gives no such time for is
skipped: its user's last connection is unknown, not "never"); a canary share first, then
batches; it stops at the first failure. Right before each ``RebuildWorkspaces`` the
WorkSpace is looked at again (``DescribeWorkspaces``, ``DescribeWorkspacesConnectionStatus``,
and its snapshots): one no longer created from the bundle (``BundleId``) is dropped from the
record, one whose state, user or snapshot no longer allows a rebuild is skipped.

The rollout state machine calls :func:`handler` with ``{"Step": "Advance" | "RecordFailure",
"RunId": <the execution's id>, "Rollout": {"BundleId": ..., "Retry": true?}}`` again and
again; waiting happens in the state machine. Only the bundle id and ``Retry`` are read from
the input: the bundle must be one the function's own configuration (``ROLLOUT_SETTINGS``,
bundle id -> settings) names, and every safety setting (image, canary, batch size, pause,
window, rebuild timeout) comes from there. Each call moves the rollout one step on and
returns ``{"Status": WAIT | DONE | FAILED, "WaitSeconds": n}``.

Progress lives in one DynamoDB item per bundle in the stack's table (``ROLLOUT_TABLE``):
``bundleId``, ``version`` and ``record``, JSON. CloudFormation creates the table and never
writes an item, so no deploy resets a record. Every write is conditional on the version
read (an optimistic lock): a run whose write finds another version leaves the bundle alone.
The record holds the image, the run, the WorkSpaces still to rebuild onto it (``pending``),
the batch being rebuilt (``inFlight``, saved after each accepted rebuild), the counts and
the failure.

``pending`` is listed once, by the first run for an image (the bundle already uses it): every
WorkSpace of the bundle then, whatever image it runs (the API does not say which). So the
first run after the rollout is enabled lists the whole fleet, and WorkSpaces created
between the bundle's update and that first run are listed (and rebuilt) too. WorkSpaces
created after the list was taken are not in it: they come from the image already, and only
a later image's rollout rebuilds them. Operators and the CLI read the item with
``GetItem``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import boto3
from botocore.exceptions import ClientError

from ..core.aws import RETRY_CONFIG, error_code, error_message, raise_if_transient
from ..core.errors import TransientError
from . import contract as rc
from .contract import (
    ENV_ROLLOUT_SETTINGS,
    ENV_ROLLOUT_TABLE,
    STATE_COMPLETED,
    STATE_FAILED,
    STATE_PARTIAL,
    STATE_RUNNING,
    STATE_SUPERSEDED,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_WAIT,
    STEP_ADVANCE,
    STEP_RECORD_FAILURE,
)

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient

logger = logging.getLogger(__name__)
logging.getLogger().setLevel(logging.INFO)

# The function's configuration (ENV_ROLLOUT_TABLE, ENV_ROLLOUT_SETTINGS): an input naming
# a bundle that is not in it is refused, whoever started the execution.
KEY: Final = rc.KEY
VERSION: Final = rc.VERSION
RECORD: Final = rc.RECORD

# How often a batch being rebuilt is looked at.
REBUILD_POLL_SECONDS: Final = 300
# A batch stops (the rest waits for the next step) when the Lambda call has less left.
MIN_REMAINING_MS: Final = 60_000
# The API takes one WorkSpace per RebuildWorkspaces request, 25 per describe (botocore).
DESCRIBE_CHUNK: Final = 25
# DynamoDB's item limit is 400 KB; the record stays well below it (about 10,000 WorkSpaces
# still to rebuild per bundle).
MAX_RECORD_BYTES: Final = 350_000
MAX_FAILURES_KEPT: Final = 10
# The last WorkSpaces rebuilt, for operators (the count covers them all).
RECENT_KEPT: Final = 20
SKIP_LISTS: Final = ("skippedConnected", "skippedState", "skippedSnapshot")

REBUILDABLE: Final = frozenset({"AVAILABLE", "STOPPED"})
SETTLED: Final = frozenset({"AVAILABLE", "STOPPED"})
BROKEN: Final = frozenset({"ERROR", "UNHEALTHY", "IMPAIRED"})
GONE: Final = frozenset({"TERMINATING", "TERMINATED"})
THROTTLED: Final = frozenset({"ProvisionedThroughputExceededException"})


class RolloutFailed(Exception):  # noqa: N818 - the name is the Step Functions error name
    """The rollout cannot go on; the message says why."""


class LockLost(Exception):  # noqa: N818 - not an error of the workflow: the run ends
    """Another run wrote the bundle's record since this run read it."""


@dataclass(frozen=True)
class Settings:
    """One rollout's settings: the function's configuration for the bundle (checked at synth
    time), and from the execution only its id and ``Retry``."""

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
    def configured(
        cls, bundle_id: str, value: Mapping[str, Any], *, run_id: str, retry: bool
    ) -> Settings:
        def number(key: str, default: float, low: float, high: float) -> float:
            raw = value.get(key, default)
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
                raise RolloutFailed(f"{ENV_ROLLOUT_SETTINGS}: {key}={raw!r} is not a number")
            return min(high, max(low, float(raw)))

        return cls(
            bundle_id=bundle_id,
            expected_image=str(value.get("ImageId") or ""),
            run_id=run_id,
            canary_count=int(number("CanaryCount", 0, 0, 100)),
            canary_percent=number("CanaryPercent", 0, 0, 50),
            batch_size=int(number("BatchSize", 10, 1, 50)),
            pause_seconds=int(number("PauseSeconds", 600, 0, 86400)),
            window_seconds=int(number("WindowSeconds", 4 * 3600, 3600, 86400)),
            rebuild_timeout_seconds=int(number("RebuildTimeoutSeconds", 3 * 3600, 60, 43200)),
            retry=retry,
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


def configured_bundles() -> dict[str, Any]:
    """The function's own configuration: bundle id -> settings."""
    try:
        value = json.loads(os.environ.get(ENV_ROLLOUT_SETTINGS) or "{}")
    except json.JSONDecodeError:
        raise RolloutFailed(f"{ENV_ROLLOUT_SETTINGS} is not JSON") from None
    if not isinstance(value, dict):
        raise RolloutFailed(f"{ENV_ROLLOUT_SETTINGS} is not a JSON object")
    return {str(k): v for k, v in value.items() if isinstance(v, dict)}


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
class DynamoDBClient(Protocol):
    """The two calls of a boto3 DynamoDB client the rollout makes."""

    def get_item(self, **kwargs: Any) -> Any: ...

    def put_item(self, **kwargs: Any) -> Any: ...


@dataclass
class RecordStore:
    """The stack's record table: one item per bundle."""

    client: DynamoDBClient
    table: str

    def load(self, bundle_id: str) -> dict[str, Any]:
        """The bundle's record with its ``version`` (0: no item yet); empty when none."""
        try:
            item = self.client.get_item(
                TableName=self.table, Key={KEY: {"S": bundle_id}}, ConsistentRead=True
            ).get("Item")
        except ClientError as error:
            self._transient(error)
            raise
        if not item:
            return {}
        version = int(item.get(VERSION, {}).get("N", "0"))
        try:
            record = json.loads(item.get(RECORD, {}).get("S", ""))
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            logger.warning("the rollout record of %s is not a JSON object", bundle_id)
            record = {}
        record[VERSION] = version
        return record

    def put(self, bundle_id: str, record: dict[str, Any], value: str) -> None:
        """Write `value` if the item is still at the record's version; the version moves on.
        Raises :class:`LockLost` when another run wrote since."""
        expected = int(record.get(VERSION, 0))
        condition: dict[str, Any] = (
            {"ConditionExpression": f"attribute_not_exists({KEY})"}
            if expected == 0
            else {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": VERSION},
                "ExpressionAttributeValues": {":v": {"N": str(expected)}},
            }
        )
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    KEY: {"S": bundle_id},
                    VERSION: {"N": str(expected + 1)},
                    RECORD: {"S": value},
                },
                **condition,
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise LockLost(
                    f"another run wrote the record of bundle {bundle_id} (version {expected} "
                    "is gone): this run leaves the bundle alone"
                ) from None
            self._transient(error)
            raise
        record[VERSION] = expected + 1

    @staticmethod
    def _transient(error: ClientError) -> None:
        if error_code(error) in THROTTLED:
            raise TransientError(f"{error_code(error)}: {error_message(error)}") from error
        raise_if_transient(error)


def load_record(store: RecordStore, bundle_id: str) -> dict[str, Any]:
    return store.load(bundle_id)


def _dump(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != VERSION}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def save_record(store: RecordStore, bundle_id: str, record: dict[str, Any], now: float) -> None:
    """Write the record (conditionally: :class:`LockLost` if another run wrote since). One
    too big for an item is replaced by a FAILED record saying why, without ``pending``."""
    record["updated"] = _iso(now)
    record["rebuiltCount"] = int(record.get("rebuiltCount", 0))
    record["pendingCount"] = len(record.get("pending", []))
    record["failed"] = list(record.get("failed", []))[:MAX_FAILURES_KEPT]
    value = _dump(record)
    if len(value.encode()) > MAX_RECORD_BYTES:
        reason = (
            f"the rollout record of bundle {bundle_id} would be {len(value.encode())} bytes, "
            f"more than {MAX_RECORD_BYTES}: the bundle has too many WorkSpaces "
            f"({record['pendingCount']} to rebuild) for one record; split its users across "
            "bundles (personas)"
        )
        # What an operator needs to see, in place of the record that does not fit. Without
        # `pending`: a Retry lists the bundle again only if nothing was rebuilt yet.
        kept = {k: record.get(k) for k in ("image", "rebuiltCount", "rebuilt", "inFlight", "run")}
        version = record.get(VERSION, 0)
        record.clear()
        record.update(
            kept,
            bundle=bundle_id,
            state=STATE_FAILED,
            updated=_iso(now),
            finished=_iso(now),
            note=reason,
        )
        record[VERSION] = version
        store.put(bundle_id, record, _dump(record))
        raise RolloutFailed(reason)
    store.put(bundle_id, record, value)


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


@dataclass(frozen=True)
class Connection:
    state: str  # CONNECTED, DISCONNECTED, UNKNOWN
    last_connected: dt.datetime | None  # LastKnownUserConnectionTimestamp


def connections(client: WorkSpacesClient, ids: list[str]) -> dict[str, Connection]:
    """Connection state and the user's last connection by id; absent means unknown."""
    found: dict[str, Connection] = {}
    for chunk in _chunks(ids):
        token: str | None = None
        while True:
            answer = client.describe_workspaces_connection_status(
                WorkspaceIds=chunk, **({"NextToken": token} if token else {})
            )
            for status in answer.get("WorkspacesConnectionStatus", []):
                found[status.get("WorkspaceId", "")] = Connection(
                    str(status.get("ConnectionState", "")),
                    status.get("LastKnownUserConnectionTimestamp"),
                )
            token = answer.get("NextToken")
            if not token:
                break
    return found


def unsaved_work(client: WorkSpacesClient, workspace_id: str, connection: Connection) -> str:
    """Why a rebuild would lose the user's work since the last snapshot ("" when it would
    not): a rebuild restores the user volume from the latest rebuild snapshot, so that
    snapshot must be newer than the user's last connection. Without the user's last
    connection (no ``LastKnownUserConnectionTimestamp``) nothing says the snapshot is newer:
    the WorkSpace is skipped, never taken for one whose user never connected."""
    if connection.last_connected is None:
        return "the user's last connection is unknown (no LastKnownUserConnectionTimestamp)"
    snapshots = client.describe_workspace_snapshots(WorkspaceId=workspace_id)
    times = [
        s["SnapshotTime"] for s in snapshots.get("RebuildSnapshots", []) if "SnapshotTime" in s
    ]
    if not times:
        return "no rebuild snapshot"
    latest = max(times)
    last = connection.last_connected
    if latest <= last:
        return (
            f"the latest rebuild snapshot ({latest.isoformat(timespec='seconds')}) is older "
            f"than the user's last connection ({last.isoformat(timespec='seconds')})"
        )
    return ""


# ----- the steps ---------------------------------------------------------------------------
@dataclass
class Outcome:
    status: str
    wait_seconds: int = 0
    reason: str = ""

    def answer(self) -> dict[str, Any]:
        return {"Status": self.status, "WaitSeconds": self.wait_seconds, "Reason": self.reason}


def _skipped(record: Mapping[str, Any]) -> int:
    return sum(len(record.get(key) or []) for key in SKIP_LISTS)


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


def _start_over(
    settings: Settings, clients: Clients, record: dict[str, Any], image: str, now: float
) -> None:
    """The rollout of `image` begins: every WorkSpace of the bundle now is to be rebuilt."""
    pending = workspaces_of_bundle(clients.workspaces, settings.bundle_id)
    version = record.get(VERSION, 0)
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
    record[VERSION] = version


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
    state = record.get("state")
    same_image = record.get("image") == image and state != STATE_SUPERSEDED
    if same_image and state == STATE_COMPLETED:
        record.update(checked=_iso(now), note="every WorkSpace listed for the image runs it")
        return Outcome(STATUS_DONE, 0, record["note"])
    if same_image and state == STATE_FAILED and not settings.retry:
        record["checked"] = _iso(now)
        return Outcome(
            STATUS_DONE,
            0,
            "the rollout of this image failed earlier; start a run with Retry to go on",
        )
    if same_image and "pending" not in record:
        # A record that lost its list (too big to save). Listing the bundle again is safe
        # only while nothing was rebuilt onto the image: the list would name those again.
        if int(record.get("rebuiltCount") or 0) or record.get("inFlight"):
            note = (
                f"the record lost its list of WorkSpaces still to rebuild after "
                f"{int(record.get('rebuiltCount') or 0)} were rebuilt onto {image}; a retry "
                "would rebuild those again, so nothing was rebuilt. Split the bundle's users "
                "across bundles, or deploy a new image (its rollout starts over)"
            )
            record.update(checked=_iso(now), note=note)
            return Outcome(STATUS_DONE, 0, note)
        same_image = False
    if not same_image:
        _start_over(settings, clients, record, image, now)
    elif state == STATE_FAILED:
        record["failed"] = []
    record.update(
        state=STATE_RUNNING,
        run=settings.run_id,
        runStarted=_iso(now),
        finished=None,
        note="",
        **{key: [] for key in SKIP_LISTS},
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
    # The canary is done once as many as its size settled (a batch cut short goes on).
    record["canaryDone"] = bool(record.get("canaryDone")) or record[
        "rebuiltCount"
    ] >= settings.canary_size(int(record.get("total", 0)))
    return None


def superseded(
    settings: Settings, clients: Clients, record: dict[str, Any], now: float
) -> Outcome | None:
    """Before another batch: stop if the bundle (or the stack's deployed image) moved on
    from the image being rolled out. ``RebuildWorkspaces`` takes the bundle's current image,
    so a later batch would get the new image with no canary."""
    image = bundle_image(clients.workspaces, settings.bundle_id)
    rolling = str(record.get("image", ""))
    deployed = settings.expected_image or image
    if image == rolling and deployed == rolling:
        return None
    record["state"] = STATE_SUPERSEDED
    record["finished"] = _iso(now)
    record["note"] = (
        f"the bundle now uses {image} (the stack deployed {deployed}) during the rollout of "
        f"{rolling}: no further batch was started ({int(record.get('rebuiltCount', 0))} "
        f"WorkSpace(s) were rebuilt onto {rolling}); the next run starts over, canary first, "
        "for the new image"
    )
    logger.warning("rollout of %s superseded: %s", rolling, record["note"])
    return Outcome(STATUS_DONE, 0, record["note"])


def choose_batch(clients: Clients, record: dict[str, Any], size: int) -> list[str]:
    """The next WorkSpaces to rebuild, in the order of the record: AVAILABLE or STOPPED,
    their user DISCONNECTED, and a rebuild snapshot newer than the user's last connection.
    The others are skipped until the next run."""
    skipped = {w for key in SKIP_LISTS for w in record[key]}
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
        found = connections(clients.workspaces, ready) if ready else {}
        for workspace_id in ready:
            if len(chosen) >= size:
                break  # looked at again for the next batch
            connection = found.get(workspace_id)
            if connection is None or connection.state != "DISCONNECTED":
                record["skippedConnected"].append(workspace_id)
                continue
            why = unsaved_work(clients.workspaces, workspace_id, connection)
            if why:
                logger.info("skipping %s: %s", workspace_id, why)
                record["skippedSnapshot"].append(workspace_id)
                continue
            chosen.append(workspace_id)
    record["pending"] = [w for w in record.get("pending", []) if w not in gone]
    return chosen


def recheck(clients: Clients, bundle_id: str, workspace_id: str) -> tuple[str, str]:
    """Right before its rebuild, what the service says of the WorkSpace now: ("", "") when
    it may be rebuilt, else where it goes and why. ``"dropped"``: gone, or no longer created
    from the bundle (the record's list is older than the WorkSpace's move); else the name of
    the skip list (the next run looks at it again)."""
    found = clients.workspaces.describe_workspaces(WorkspaceIds=[workspace_id]).get(
        "Workspaces", []
    )
    workspace = next((w for w in found if w.get("WorkspaceId") == workspace_id), None)
    if workspace is None or workspace.get("State") in GONE:
        return "dropped", "no longer exists"
    if workspace.get("BundleId") != bundle_id:
        return "dropped", f"is now of bundle {workspace.get('BundleId') or 'none'}"
    if workspace.get("State") not in REBUILDABLE:
        return "skippedState", f"is {workspace.get('State')}"
    connection = connections(clients.workspaces, [workspace_id]).get(workspace_id)
    if connection is None or connection.state != "DISCONNECTED":
        return "skippedConnected", f"its user is {connection.state if connection else 'UNKNOWN'}"
    why = unsaved_work(clients.workspaces, workspace_id, connection)
    return ("skippedSnapshot", why) if why else ("", "")


def rebuild(
    settings: Settings,
    clients: Clients,
    record: dict[str, Any],
    batch: list[str],
    now: float,
    remaining_ms: Callable[[], int],
) -> Outcome:
    """Rebuild the batch, one request per WorkSpace (the API takes one), each looked at again
    just before (:func:`recheck`), saving the record after each accepted rebuild; stop at
    the first FailedRequests entry or refused call, and leave the rest of the batch for the
    next step when the call has under a minute left. Throttling that outlives botocore's
    retries is left to the workflow's retry."""
    record["batchStarted"] = _iso(now)
    looked_at = 0
    for workspace_id in batch:
        if remaining_ms() < MIN_REMAINING_MS:
            logger.warning(
                "under %d s left in this call: the batch goes on at the next step",
                MIN_REMAINING_MS // 1000,
            )
            break
        looked_at += 1
        where, why = recheck(clients, settings.bundle_id, workspace_id)
        if where == "dropped":
            logger.info("not rebuilding %s: it %s; dropped from the list", workspace_id, why)
            record["pending"] = [w for w in record.get("pending", []) if w != workspace_id]
            record["leftBundle"] = [*record.get("leftBundle", []), workspace_id][-RECENT_KEPT:]
            continue
        if where:
            logger.info("not rebuilding %s now: %s", workspace_id, why)
            record.setdefault(where, []).append(workspace_id)
            continue
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
        # Saved at once: a call cut off (a Lambda timeout) must not forget a rebuild.
        save_record(clients.records, settings.bundle_id, record, now)
    if not record.get("inFlight"):
        if looked_at:  # every one of them changed since it was chosen: choose again
            return Outcome(STATUS_WAIT, 1, "the batch changed before its rebuild: choosing again")
        return Outcome(STATUS_WAIT, 1, "no time left in this call: the next step goes on")
    return Outcome(STATUS_WAIT, REBUILD_POLL_SECONDS)


def _step(
    settings: Settings,
    clients: Clients,
    record: dict[str, Any],
    now: float,
    first_call: bool,
    remaining_ms: Callable[[], int],
) -> Outcome:
    if first_call:
        ended = begin(settings, clients, record, now)
        if ended is not None:
            return ended
        # The run's starting point is saved before anything is rebuilt: it takes the lock.
        save_record(clients.records, settings.bundle_id, record, now)
    if record.get("inFlight"):
        waiting = check_batch(settings, clients, record, now)
        if waiting is not None:
            return waiting
        if record.get("pending"):
            return Outcome(STATUS_WAIT, max(1, settings.pause_seconds))
    if not record.get("pending"):
        return _finish(record, now, "every WorkSpace listed for the image runs it")
    if now - _epoch(record.get("runStarted")) > settings.window_seconds:
        return _finish(record, now, "the maintenance window ended; the next run goes on")
    if not first_call:  # the first call read the bundle's image just now
        moved = superseded(settings, clients, record, now)
        if moved is not None:
            return moved
    size = (
        settings.batch_size
        if record.get("canaryDone")
        else max(
            1,
            settings.canary_size(int(record.get("total", 0))) - int(record.get("rebuiltCount", 0)),
        )
    )
    batch = choose_batch(clients, record, size)
    if not batch:
        return _finish(
            record,
            now,
            f"{_skipped(record)} WorkSpace(s) skipped (user connected, not AVAILABLE/STOPPED, "
            "or no rebuild snapshot newer than the user's last connection); the next run "
            "tries them again"
            if record.get("pending")
            else "every WorkSpace listed for the image runs it",
        )
    return rebuild(settings, clients, record, batch, now, remaining_ms)


def advance(
    settings: Settings,
    clients: Clients,
    now: float,
    remaining_ms: Callable[[], int] = lambda: 900_000,
) -> Outcome:
    """Move the bundle's rollout one step on; the record is saved whatever happens, unless
    another run wrote it since it was read (then this run leaves the bundle alone)."""
    record = load_record(clients.records, settings.bundle_id)
    first_call = record.get("run") != settings.run_id or record.get("state") != STATE_RUNNING
    if first_call and record.get("state") == STATE_RUNNING:
        age = now - _epoch(record.get("updated"))
        if age < settings.stale_after_seconds:
            return Outcome(STATUS_DONE, 0, f"run {record.get('run')} is rolling out this bundle")
    try:
        try:
            outcome = _step(settings, clients, record, now, first_call, remaining_ms)
        finally:
            save_record(clients.records, settings.bundle_id, record, now)
    except LockLost as lost:
        logger.warning("%s", lost)
        return Outcome(STATUS_DONE, 0, str(lost))
    return outcome


def record_failure(
    settings: Settings, clients: Clients, error: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """The workflow's catch: mark this run's record FAILED with the step's error."""
    record = load_record(clients.records, settings.bundle_id)
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
        try:
            save_record(clients.records, settings.bundle_id, record, now)
        except LockLost as lost:
            logger.warning("%s", lost)
    return {"Reason": reason}


@dataclass
class Clients:
    """The clients a rollout uses (tests pass clients backed by fakes)."""

    workspaces: WorkSpacesClient
    records: RecordStore = field(repr=False)

    @classmethod
    def default(cls) -> Clients:
        return cls(
            workspaces=boto3.client("workspaces", config=RETRY_CONFIG),
            records=RecordStore(
                boto3.client("dynamodb", config=RETRY_CONFIG), os.environ[ENV_ROLLOUT_TABLE]
            ),
        )


def settings_of(event: Mapping[str, Any]) -> Settings:
    """The bundle's settings from the function's configuration; from the input only the
    bundle id and ``Retry``, and the execution's id (``$$.Execution.Id``) as the run."""
    rollout_input = event.get("Rollout") or {}
    if not isinstance(rollout_input, Mapping):
        raise RolloutFailed("the rollout input is not an object")
    bundle_id = str(rollout_input.get("BundleId", ""))
    configured = configured_bundles()
    if bundle_id not in configured:
        raise RolloutFailed(
            f"bundle {bundle_id!r} is not rolled out by this stack ({ENV_ROLLOUT_SETTINGS})"
        )
    run_id = str(event.get("RunId") or "")
    if not run_id:
        raise RolloutFailed("the step has no RunId (the execution's id)")
    return Settings.configured(
        bundle_id, configured[bundle_id], run_id=run_id, retry=rollout_input.get("Retry") is True
    )


def run_step(
    event: Mapping[str, Any],
    clients: Clients,
    *,
    now: float | None = None,
    remaining_ms: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Run one step. Throttling past botocore's retries comes out as TransientError (the
    workflow retries the step); anything else as RolloutFailed."""
    at = time.time() if now is None else now
    settings = settings_of(event)
    step = str(event.get("Step"))
    try:
        if step == STEP_ADVANCE:
            return advance(settings, clients, at, remaining_ms or (lambda: 900_000)).answer()
        if step == STEP_RECORD_FAILURE:
            return record_failure(settings, clients, event.get("Error") or {}, at)
    except ClientError as error:
        raise_if_transient(error)
        raise RolloutFailed(f"{step}: {error_code(error)}: {error_message(error)}") from None
    except TransientError:
        raise
    raise RolloutFailed(f"unknown rollout step {step!r}")


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


_clients: Clients | None = None


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point of the rollout workflow."""
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = Clients.default()
    logger.info("rollout step %s", event.get("Step"))
    return run_step(event, _clients, remaining_ms=context.get_remaining_time_in_millis)
