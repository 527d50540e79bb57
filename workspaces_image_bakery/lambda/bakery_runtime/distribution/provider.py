"""The distribution's custom-resource handler: regional copies and bundles, shares and
shared copies. It answers CloudFormation itself.

Why not the CDK Provider framework: its waiter is a Step Functions state machine whose
execution input (and history) is the whole event, CloudFormation's response URL included,
so anyone who may read executions could answer for a copy while it is pending. Here the
event stays in the Lambda invocation: :func:`handler` acts on it (``dispatch``, the
framework's on_event), then asks every ``POLL_SECONDS`` whether it is done (``check``, the
framework's is_complete) and answers through the ResponseURL (core/cfn_response.py). When
the function's own time runs short it hands the event on to a new invocation of itself
(asynchronous, ``HANDED_OVER`` set); a copy is bounded by ``COPY_DEADLINE_SECONDS`` and
the resource by its ``ServiceTimeout`` as before.

Like custom_resource.py, it acts only on events CloudFormation confirms it sent for the
stack in its own configuration (OWNER_STACK_ID; core/authenticate.py), and it answers
only to CloudFormation's response bucket of its own Region.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import ClientError

from ..core import cfn_response, https
from ..core.authenticate import authenticate
from ..core.aws import Clients, error_code, error_message, owner
from ..core.errors import BuildFailed, InvalidPropertiesError
from ..core.events import ResourceEvent
from ..core.properties import BundleProperties
from ..core.workspaces import describe_tags
from ..image_build import bundle_resource
from . import contract as d
from . import copy_resource, share_resource
from .clients import DistributionClients
from .copy_resource import REGION, source_image_id

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

logger = logging.getLogger(__name__)
logging.getLogger().setLevel(logging.INFO)


def _regional_bundle(event: ResourceEvent, clients: DistributionClients) -> dict[str, Any]:
    """A Custom::WorkSpacesBundle's whole lifecycle, with WorkSpaces in another Region."""
    props = event.properties or event.old_properties
    region = props.get(d.REGION)
    if not isinstance(region, str) or not REGION.match(region):
        raise InvalidPropertiesError(f"{event.where}: property {d.REGION} is not a Region")
    regional = clients.in_region(region)
    if event.request_type != "Delete":
        _check_copied_from(event, regional)
    return bundle_resource.handle(event, regional)


def _check_copied_from(event: ResourceEvent, clients: Clients) -> None:
    """The copy a regional bundle binds to must be a copy of the image this deploy copies.

    The copy's id reaches the bundle through the copy resource's answer. Only this handler
    gives that answer now (the response URL never leaves its invocations), but the bundle
    still believes nothing else of it: its expected name and source image come from the
    template, and it checks the copy's source tag, written by CopyWorkspaceImage for this
    stack.
    """
    if d.EXPECTED_SOURCE_IMAGE_ID not in event.properties:
        return
    # An image id, or the build's result (the WaitCondition's data), as the copy takes it.
    expected = source_image_id(event.properties, d.EXPECTED_SOURCE_IMAGE_ID, event.where)
    props = BundleProperties.parse(event.properties, event.where)
    copied_from = describe_tags(clients.workspaces, props.image_id).get(d.SOURCE_TAG_KEY)
    if copied_from != expected:
        raise BuildFailed(
            f"{event.where} ({props.bundle_name}): refusing image {props.image_id}: it is a "
            f"copy of {copied_from or 'no image of this stack'}, not of {expected} (the image "
            "this deploy copies); the copy's answer was not this stack's copy"
        )


_ON_EVENT: dict[str, Callable[[ResourceEvent, DistributionClients], dict[str, Any]]] = {
    d.COPY_RESOURCE_TYPE: lambda e, cl: copy_resource.handle(e, cl, shared=False),
    d.SHARED_COPY_RESOURCE_TYPE: lambda e, cl: copy_resource.handle(e, cl, shared=True),
    d.REGIONAL_BUNDLE_RESOURCE_TYPE: _regional_bundle,
    d.SHARE_RESOURCE_TYPE: share_resource.handle,
}
_clients: DistributionClients | None = None


def _parse(
    raw: Mapping[str, Any], clients: DistributionClients, *, waiter: bool = False
) -> ResourceEvent:
    event = ResourceEvent.parse(raw)
    if event.resource_type not in _ON_EVENT:
        raise ValueError(
            f"unknown resource type {event.resource_type}; expected {sorted(_ON_EVENT)}"
        )
    # Only CloudFormation, working on this resource of the runtime's own stack, sends it
    # (a check's event carries the dispatch's answer: `waiter`).
    authenticate(event, clients.base.cloudformation, waiter=waiter)
    return event


def _answer(event: ResourceEvent, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except ClientError as error:
        raise BuildFailed(
            f"{event.where}: {error.operation_name} failed: {error_code(error)}: "
            f"{error_message(error)}"
        ) from None


def dispatch(raw: Mapping[str, Any], clients: DistributionClients) -> dict[str, Any]:
    """Start or finish the resource's change (the framework's on_event)."""
    event = _parse(raw, clients)
    logger.info("%s %s (%s)", event.request_type, event.where, event.physical_id)
    return _answer(event, lambda: _ON_EVENT[event.resource_type](event, clients))


def check(raw: Mapping[str, Any], clients: DistributionClients) -> dict[str, Any]:
    """Whether the change is done (the framework's is_complete): only copies take time."""
    event = _parse(raw, clients, waiter=True)
    if event.resource_type not in (d.COPY_RESOURCE_TYPE, d.SHARED_COPY_RESOURCE_TYPE):
        return {"IsComplete": True}
    shared = event.resource_type == d.SHARED_COPY_RESOURCE_TYPE
    return _answer(event, lambda: copy_resource.is_complete(raw, event, clients, shared=shared))


# Set on an event one invocation hands on to the next: dispatch already ran, and the event
# carries its answer (as the Provider framework merged it for is_complete).
HANDED_OVER: Final = "BakeryHandedOver"
# The time an invocation keeps for its answer or its hand-over (its timeout is 15 minutes).
RESERVE_MILLIS: Final = 120_000


@dataclass(frozen=True)
class Runner:
    """What the handler needs besides the event (tests pass fakes for all of it)."""

    clients: DistributionClients
    send: cfn_response.Sender
    hand_over: Callable[[dict[str, Any]], None]
    remaining_millis: Callable[[], int]
    sleep: Callable[[float], None] = time.sleep


def _physical_id(raw: Mapping[str, Any]) -> str:
    return str(raw.get("PhysicalResourceId") or cfn_response.CREATE_FAILED)


def run(raw: Mapping[str, Any], runner: Runner) -> None:
    """Act on the event, wait for it, and answer CloudFormation (or hand it on)."""

    def answer(success: bool, physical_id: str, reason: str = "", data: Any = None) -> None:
        cfn_response.answer(
            raw,
            owner=owner(),
            send=runner.send,
            success=success,
            physical_id=physical_id,
            reason=reason,
            data=data,
        )

    # Nothing is done for an event that could not be answered to CloudFormation.
    cfn_response.check_response_url(str(raw.get("ResponseURL", "")), owner())
    if raw.get("RequestType") == "Delete" and raw.get("PhysicalResourceId") == (
        cfn_response.CREATE_FAILED
    ):
        answer(True, cfn_response.CREATE_FAILED)  # nothing was made: nothing to delete
        return
    if raw.get(HANDED_OVER):
        waiting = dict(raw)
    else:
        try:
            result = dispatch(raw, runner.clients)
        except Exception as error:
            logger.error("%s failed: %s", raw.get("LogicalResourceId"), error)
            answer(False, _physical_id(raw), str(error))
            return
        waiting = {**raw, **result}
    while True:
        try:
            done = check(waiting, runner.clients)
        except Exception as error:
            logger.error("%s failed: %s", raw.get("LogicalResourceId"), error)
            answer(False, str(waiting.get("PhysicalResourceId") or _physical_id(raw)), str(error))
            return
        if done.get("IsComplete"):
            data = {**(waiting.get("Data") or {}), **(done.get("Data") or {})}
            answer(True, str(waiting["PhysicalResourceId"]), data=data)
            return
        if runner.remaining_millis() < RESERVE_MILLIS + POLL_MILLIS:
            logger.info("%s still in progress: handed on", raw.get("LogicalResourceId"))
            runner.hand_over({**waiting, HANDED_OVER: True})
            return
        runner.sleep(d.POLL_SECONDS)


POLL_MILLIS: Final = d.POLL_SECONDS * 1000


def _lambda_clients() -> DistributionClients:
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = DistributionClients()
    return _clients


def _hand_over(client: LambdaClient, function_arn: str, event: dict[str, Any]) -> None:
    client.invoke(
        FunctionName=function_arn, InvocationType="Event", Payload=json.dumps(event).encode()
    )


def handler(event: dict[str, Any], context: Any) -> None:
    """The custom resources' ServiceToken (CloudFormation invokes it asynchronously)."""
    client: LambdaClient = boto3.client("lambda")
    run(
        event,
        Runner(
            clients=_lambda_clients(),
            send=functools.partial(https.put, what="CloudFormation's response bucket"),
            hand_over=functools.partial(_hand_over, client, context.invoked_function_arn),
            remaining_millis=context.get_remaining_time_in_millis,
        ),
    )
