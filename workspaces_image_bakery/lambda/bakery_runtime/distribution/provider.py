"""Lambda entry points of the distribution provider (the CDK Provider framework's on_event
and is_complete): regional copies and bundles, shares and shared copies.

Like custom_resource.py, it acts only on events CloudFormation confirms it sent for the
stack in its own configuration (OWNER_STACK_ID; core/authenticate.py). Returns
{"PhysicalResourceId", "Data"} (on_event) or {"IsComplete", "Data"} (is_complete), or
raises; the framework answers CloudFormation and never gets a response URL from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..core.authenticate import authenticate
from ..core.aws import Clients, error_code, error_message
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
    pass

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

    The copy's id and name reach the bundle through the copy resource's answer, which the
    Provider framework's waiter carries with CloudFormation's response URL in its execution
    input: whoever may read that execution can answer for the copy. So the bundle takes its
    expected name from the template (known at synth) and the source image from the template
    too, and checks the copy's source tag, written by CopyWorkspaceImage for this stack.
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
    # (is_complete's event carries on_event's answer: `waiter`).
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
    """on_event: start or finish the resource's change."""
    event = _parse(raw, clients)
    logger.info("%s %s (%s)", event.request_type, event.where, event.physical_id)
    return _answer(event, lambda: _ON_EVENT[event.resource_type](event, clients))


def check(raw: Mapping[str, Any], clients: DistributionClients) -> dict[str, Any]:
    """is_complete: only copies take time; everything else is done after on_event."""
    event = _parse(raw, clients, waiter=True)
    if event.resource_type not in (d.COPY_RESOURCE_TYPE, d.SHARED_COPY_RESOURCE_TYPE):
        return {"IsComplete": True}
    shared = event.resource_type == d.SHARED_COPY_RESOURCE_TYPE
    return _answer(event, lambda: copy_resource.is_complete(raw, event, clients, shared=shared))


def _lambda_clients() -> DistributionClients:
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = DistributionClients()
    return _clients


def on_event(event: dict[str, Any], context: object) -> dict[str, Any]:
    return dispatch(event, _lambda_clients())


def is_complete(event: dict[str, Any], context: object) -> dict[str, Any]:
    return check(event, _lambda_clients())
