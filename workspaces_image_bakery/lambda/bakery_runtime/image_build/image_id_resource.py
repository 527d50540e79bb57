"""Custom::WorkSpacesImageId: the id of the image a build made, as a CloudFormation attribute.

``WorkspaceImage.image_id`` reads it. The build's result (the WaitCondition's Data,
{"image": "wsi-..."}) is checked like a bundle checks it before the id is returned: the
image must exist in this account, carry this stack's ownership tag, have the name the
image resource built it under and be AVAILABLE. Nothing is created or deleted.
"""

from __future__ import annotations

from typing import Any

from ..core import contract as c
from ..core.aws import Clients, owner
from ..core.errors import BuildFailed, InvalidPropertiesError
from ..core.events import ResourceEvent
from ..core.properties import image_id_from_build_result
from ..core.workspaces import verify_image


def handle(event: ResourceEvent, clients: Clients) -> dict[str, Any]:
    if event.request_type == "Delete":
        return {"PhysicalResourceId": event.physical_id or ""}
    props = event.properties
    expected = props.get(c.EXPECTED_IMAGE_NAME)
    if not isinstance(expected, str) or not expected:
        raise InvalidPropertiesError(
            f"{event.where}: property {c.EXPECTED_IMAGE_NAME} must be a non-empty string, "
            f"got {expected!r}"
        )
    image_id = image_id_from_build_result(props.get(c.IMAGE_BUILD_RESULT), event.where)
    try:
        verify_image(
            clients.workspaces, image_id, owner=owner(), expected_name=expected, built_here=True
        )
    except BuildFailed as wrong:
        raise BuildFailed(f"{event.where}: refusing image {image_id}: {wrong}") from None
    return {"PhysicalResourceId": image_id, "Data": {c.ATTR_IMAGE_ID: image_id}}
