"""Reports builds that ended without reporting, so a deploy never waits 12 hours for nothing.

An EventBridge rule sends every execution of the build workflow that ends FAILED, TIMED_OUT
or ABORTED here: stopped by hand, out of time, failed in a state without a catch, its
function deleted or throttled past every retry. Unless the execution ended in the
workflow's own reporting Fail state, or was stopped by its stack, the build's WaitCondition
gets a FAILURE with the reason within minutes, instead of at its 12-hour backstop.

Nothing from the event is trusted: the execution is read back from Step Functions, must
belong to this runtime's state machine, and its wait handle must be one of this stack's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import Clients, error_code, owner
from ..core.errors import BuildFailed
from . import notify, preparation, request, wait_condition
from .steps import failure_reason

logger = logging.getLogger(__name__)
logging.getLogger().setLevel(logging.INFO)

ENDED = frozenset(c.EXECUTION_ENDED_STATUSES)
# The stack event shows this much of the execution's own cause.
MAX_CAUSE_CHARS = 600
SILENT_ERRORS = frozenset({c.ERROR_BUILD_REPORTED, c.ERROR_STACK_OPERATION})


def on_execution_end(
    event: Mapping[str, Any],
    clients: Clients,
    *,
    send: wait_condition.Sender = wait_condition.http_put,
) -> dict[str, Any]:
    """Signal FAILURE for a build that ended without reporting; returns what was done."""
    if event.get("detail-type") != c.EXECUTION_STATUS_CHANGE:
        return {"Action": "ignored", "Why": "not an execution status change"}
    detail = event.get("detail")
    arn = str(detail.get("executionArn", "")) if isinstance(detail, Mapping) else ""
    if not arn:
        return {"Action": "ignored", "Why": "no execution ARN"}
    try:
        execution = clients.stepfunctions.describe_execution(executionArn=arn)
    except ClientError as missing:
        if error_code(missing) in ("ExecutionDoesNotExist", "InvalidArn"):
            return {"Action": "ignored", "Why": error_code(missing)}
        raise
    if execution["stateMachineArn"] != os.environ.get(c.ENV_STATE_MACHINE_ARN):
        return {"Action": "ignored", "Why": "another state machine's execution"}
    status = execution["status"]
    error = str(execution.get("error") or "")
    if status not in ENDED or error in SILENT_ERRORS:
        return {"Action": "ignored", "Why": f"{status} {error}".strip()}
    # The request the image resource wrote for this execution, never the execution's input.
    try:
        build = request.load(clients.s3, str(execution["name"]))
    except BuildFailed:
        return {"Action": "ignored", "Why": "not a build of this stack (no request of its own)"}
    except (KeyError, TypeError, ValueError):
        return {"Action": "ignored", "Why": "a malformed build request"}
    # A command it left running on the template is cancelled before anything else.
    preparation.cancel_command(clients, str(execution["name"]))
    cause = failure_reason({"Error": error or status, "Cause": execution.get("cause") or ""})
    reason = (
        f"persona {build.persona}: the image build {execution['name']} ended {status} without "
        f"reporting ({cause[:MAX_CAUSE_CHARS]}). The image {build.image_name} is cleaned up by "
        "the rollback; see the state machine's execution history"
    )
    stack = owner()
    try:
        wait_condition.signal(
            build.wait_handle, owner=stack, success=False, reason=reason, send=send
        )
    except BuildFailed as refused:
        logger.warning("execution %s: not signalled: %s", execution["name"], refused)
        return {"Action": "ignored", "Why": str(refused)}
    stopped = execution.get("stopDate")
    notify.publish_build_end(
        clients,
        build,
        stack_id=stack,
        succeeded=False,
        now=stopped.timestamp() if stopped is not None else time.time(),
        reason=reason,
        execution=execution["name"],
    )
    return {"Action": "signalled", "Reason": reason}


_clients: Clients | None = None


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point of the EventBridge rule."""
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = Clients()
    result = on_execution_end(event, _clients)
    logger.info("execution ended: %s", result.get("Action"))
    return result
