"""Every custom-resource event is checked with CloudFormation before anything is done.

Whoever may invoke a runtime function (``lambda:InvokeFunction``) can send it any event,
and a stack's id is no secret. So an event is believed only when CloudFormation itself
says that it is working on that resource of the runtime's own stack now:

- the event's ``StackId`` is the runtime's own stack (``OWNER_STACK_ID``);
- ``DescribeStacks``: the stack is in an operation that sends custom resources requests
  (a status ending in ``_IN_PROGRESS``; not ``REVIEW_IN_PROGRESS`` nor an import's);
- ``DescribeStackResource`` (the stack, the event's ``LogicalResourceId``): the stack has
  that resource, of the event's ``ResourceType``, and CloudFormation is working on it: a
  Create's resource is ``CREATE_IN_PROGRESS`` (CloudFormation knows no physical id of its
  own yet, so none is compared); an Update's is in progress (not creating nor deleting)
  with the event's ``PhysicalResourceId``; a Delete's has the event's physical id and is in
  progress, or failed while the stack rolls back (what failed is deleted then).

Two Deletes name a physical id that the stack's record of the resource does not hold,
and are believed on other evidence:

- the cleanup of a replaced resource (``UPDATE_COMPLETE_CLEANUP_IN_PROGRESS``, or after a
  rollback ``UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS``): the logical id now names the
  replacement, so the physical id is believed when the stack's events of this operation
  (``DescribeStackEvents``, newest first, back to the stack's ``UPDATE_IN_PROGRESS``) show
  it for that logical id and type; the same holds when ``DescribeStackResource`` no longer
  answers for a resource removed from the template;
- a Create that CloudFormation gave up on (another resource failed first): the record has
  no physical id, and CloudFormation sends the Delete with an id of its own making while
  the stack rolls back or is deleted.

The CDK Provider framework's ``is_complete`` (``waiter=True``) gets the event merged with
``on_event``'s answer, so its ``PhysicalResourceId`` of an Update may be the replacement
that CloudFormation has not recorded yet: there the physical id is not compared.

A look that fails (a read of CloudFormation's just after it began the operation may lag)
is made again after ``RETRY_DELAYS``; then the event is refused with what did not match.

What this cannot prove: that the event's properties are CloudFormation's. An invoke that
names exactly the resource CloudFormation is working on, while it works on it, is believed
with whatever properties it carries; the handlers' own checks (the ownership tag, the
image a bundle may use, the WaitCondition handle) still hold then. Who may invoke the
functions is the stack's IAM to keep narrow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from .aws import error_code, error_message, owner
from .errors import BuildFailed
from .events import ResourceEvent

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

logger = logging.getLogger(__name__)

IN_PROGRESS: Final = "_IN_PROGRESS"
# In progress, but creating, updating or deleting no custom resource.
NOT_SENDING: Final = frozenset(
    {"REVIEW_IN_PROGRESS", "IMPORT_IN_PROGRESS", "IMPORT_ROLLBACK_IN_PROGRESS"}
)
# Where a replaced resource's physical id is deleted after its replacement took the name.
CLEANUP: Final = frozenset(
    {"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"}
)
# Where a resource whose creation never finished is deleted.
UNDOING: Final = frozenset(
    {
        "ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "DELETE_IN_PROGRESS",
    }
)
STACK_TYPE: Final = "AWS::CloudFormation::Stack"
# Pages of stack events read back to the operation's start (DescribeStackEvents).
MAX_EVENT_PAGES: Final = 10
# Seconds before each further look (the last look refuses).
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0)


class EventRefused(BuildFailed):
    """The event is not one CloudFormation sent: nothing was done."""


def authenticate(
    event: ResourceEvent,
    cloudformation: CloudFormationClient,
    *,
    waiter: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return when CloudFormation says it sent `event` now; raise EventRefused otherwise."""
    stack = owner()
    if event.stack_id != stack:
        # Only the runtime's own stack sends its events; anything else is a direct invoke.
        raise EventRefused(
            f"{event.where}: the event names stack {event.stack_id or 'none'}, not the stack "
            "this runtime belongs to; nothing was done"
        )
    why = ""
    for delay in (*RETRY_DELAYS, None):
        try:
            why = mismatch(event, cloudformation, stack, waiter=waiter)
        except ClientError as error:
            why = (
                f"it could not be checked with CloudFormation ({error.operation_name}: "
                f"{error_code(error)}: {error_message(error)})"
            )
        if not why:
            return
        if delay is None:
            break
        logger.warning("%s %s: %s; looking again", event.request_type, event.where, why)
        sleep(delay)
    raise EventRefused(
        f"{event.where}: refusing the {event.request_type} event: {why}. CloudFormation did "
        "not send it (a direct invoke of the function?); nothing was done"
    )


def mismatch(
    event: ResourceEvent, cloudformation: CloudFormationClient, stack: str, *, waiter: bool
) -> str:
    """What CloudFormation says that does not fit `event` ("" when everything fits)."""
    stacks = cloudformation.describe_stacks(StackName=stack).get("Stacks", [])
    status = str(stacks[0].get("StackStatus", "")) if stacks else ""
    if not status.endswith(IN_PROGRESS) or status in NOT_SENDING:
        return (
            f"the stack is {status or 'not found'}, in no operation that sends custom "
            "resource requests"
        )
    if not event.logical_id:
        return "the event names no logical id"
    detail = _resource(cloudformation, stack, event.logical_id)
    if detail is None:
        if (
            event.request_type == "Delete"
            and status in CLEANUP
            and _named_in_this_operation(cloudformation, stack, event)
        ):
            return ""  # a resource removed from the template, no longer described
        return f"the stack has no resource {event.logical_id}"
    kind = str(detail.get("ResourceType", ""))
    if kind != event.resource_type:
        return f"the stack's resource {event.logical_id} is a {kind}, not a {event.resource_type}"
    resource_status = str(detail.get("ResourceStatus", ""))
    recorded = str(detail.get("PhysicalResourceId") or "") or None
    named = f"the stack's resource {event.logical_id}"
    if event.request_type == "Create":
        if resource_status != "CREATE_IN_PROGRESS":
            return f"{named} is {resource_status}, not being created"
        return ""
    if not event.physical_id:
        return "the event names no physical id"
    if event.request_type == "Update":
        if recorded != event.physical_id and not waiter:
            return f"{named} has physical id {recorded or 'none'}, not {event.physical_id}"
        if not resource_status.endswith(IN_PROGRESS) or resource_status.startswith(
            ("CREATE_", "DELETE_")
        ):
            return f"{named} is {resource_status}, not being updated"
        return ""
    if recorded == event.physical_id:
        if resource_status.endswith(IN_PROGRESS) and not resource_status.startswith("CREATE_"):
            return ""
        if resource_status.endswith("_FAILED") and status in UNDOING:
            return ""  # what failed is deleted by the rollback
        return f"{named} is {resource_status}, not being deleted"
    if recorded is None and status in UNDOING:
        return ""  # a Create given up on: CloudFormation names the resource itself
    if status in CLEANUP and _named_in_this_operation(cloudformation, stack, event):
        return ""  # the replaced resource, after its replacement took the logical id
    return f"{named} has physical id {recorded or 'none'}, not {event.physical_id}"


def _resource(
    cloudformation: CloudFormationClient, stack: str, logical_id: str
) -> Mapping[str, Any] | None:
    try:
        detail: Mapping[str, Any] = cloudformation.describe_stack_resource(
            StackName=stack, LogicalResourceId=logical_id
        )["StackResourceDetail"]
    except ClientError as error:
        if error_code(error) == "ValidationError":  # "Resource X does not exist for stack Y"
            return None
        raise
    return detail


def _named_in_this_operation(
    cloudformation: CloudFormationClient, stack: str, event: ResourceEvent
) -> bool:
    """True when a stack event of the current update names the event's physical id for its
    logical id and type (the events come newest first; the update began with the stack's
    own UPDATE_IN_PROGRESS)."""
    if not event.physical_id:
        return False
    pages = cloudformation.get_paginator("describe_stack_events").paginate(StackName=stack)
    for number, page in enumerate(pages):
        if number >= MAX_EVENT_PAGES:
            return False
        for stack_event in page.get("StackEvents", []):
            if (
                stack_event.get("LogicalResourceId") == event.logical_id
                and stack_event.get("ResourceType") == event.resource_type
                and stack_event.get("PhysicalResourceId") == event.physical_id
            ):
                return True
            if (
                stack_event.get("ResourceType") == STACK_TYPE
                and stack_event.get("PhysicalResourceId") == stack
                and stack_event.get("ResourceStatus") == "UPDATE_IN_PROGRESS"
            ):
                return False
    return False
