"""Lambda entry point of the CDK Provider framework's on_event handler.

Returns {"PhysicalResourceId", "Data"} or raises; the framework answers CloudFormation.
The event's ResponseURL is a pre-signed URL and is never logged. Nothing is done for an
event CloudFormation does not confirm it sent (core/authenticate.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.authenticate import authenticate
from ..core.aws import Clients, error_code, error_message
from ..core.errors import BuildFailed
from ..core.events import ResourceEvent
from . import bundle_resource, image_id_resource, image_resource

logger = logging.getLogger(__name__)
logging.getLogger().setLevel(logging.INFO)

_HANDLERS = {
    c.IMAGE_RESOURCE_TYPE: image_resource.handle,
    c.BUNDLE_RESOURCE_TYPE: bundle_resource.handle,
    c.IMAGE_ID_RESOURCE_TYPE: image_id_resource.handle,
}
_clients: Clients | None = None


def dispatch(raw: Mapping[str, Any], clients: Clients) -> dict[str, Any]:
    event = ResourceEvent.parse(raw)
    logger.info("%s %s (%s)", event.request_type, event.where, event.physical_id)
    handle = _HANDLERS.get(event.resource_type)
    if handle is None:
        raise ValueError(
            f"unknown resource type {event.resource_type}; expected {sorted(_HANDLERS)}"
        )
    # Only CloudFormation, working on this resource of the runtime's own stack, sends it.
    authenticate(event, clients.cloudformation)
    try:
        return handle(event, clients)
    except ClientError as error:
        raise BuildFailed(
            f"{event.where}: {error.operation_name} failed: {error_code(error)}: "
            f"{error_message(error)}"
        ) from None


def on_event(event: dict[str, Any], context: object) -> dict[str, Any]:
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = Clients()
    return dispatch(event, _clients)
