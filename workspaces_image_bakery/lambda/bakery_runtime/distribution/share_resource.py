"""Custom::WorkSpacesImageShare: the accounts an image of this stack is shared with.

UpdateWorkspaceImagePermission shares (AllowCopyImage true) or unshares one image with one
account, in the image's Region; the receiving account then copies it (a shared copy). Create
and Update make the image's permissions exactly the declared accounts; a new image takes the
old one's place and the old image is unshared at once (AWS: a shared image cannot be
deleted); Delete unshares the image from every account. Only images that carry this stack's
ownership tag are ever shared or unshared.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import contract as c
from ..core.aws import owner
from ..core.errors import BuildFailed, InvalidPropertiesError
from ..core.events import ResourceEvent
from ..core.workspaces import describe_tags, image_by_id, shared_with, verify_image
from ..evidence import record
from . import contract as d
from .copy_resource import ACCOUNT_ID, IMAGE_ID, IMAGE_NAME, source_image_id

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient

    from .clients import DistributionClients

logger = logging.getLogger(__name__)
MAX_ACCOUNTS = 100


@dataclass(frozen=True)
class ShareProperties:
    image_id: str
    account_ids: tuple[str, ...]
    expected_image_name: str | None

    @classmethod
    def parse(cls, props: Mapping[str, Any], where: str) -> ShareProperties:
        image_id = source_image_id(props, d.IMAGE_ID, where)
        raw = props.get(d.ACCOUNT_IDS, [])
        if not isinstance(raw, list) or len(raw) > MAX_ACCOUNTS:
            raise InvalidPropertiesError(
                f"{where}: property {d.ACCOUNT_IDS} must be a list of at most {MAX_ACCOUNTS} "
                f"account ids, got {raw!r}"
            )
        for account in raw:
            if not isinstance(account, str) or not ACCOUNT_ID.match(account):
                raise InvalidPropertiesError(
                    f"{where}: each of {d.ACCOUNT_IDS} must be 12 digits, got {account!r}"
                )
        name = props.get(d.EXPECTED_IMAGE_NAME)
        if name is not None and (not isinstance(name, str) or not IMAGE_NAME.match(name)):
            raise InvalidPropertiesError(
                f"{where}: property {d.EXPECTED_IMAGE_NAME} is not an image name, got {name!r}"
            )
        return cls(image_id, tuple(sorted(set(raw))), name)


def _owned(client: WorkSpacesClient, image_id: str) -> bool:
    return describe_tags(client, image_id).get(c.OWNER_TAG_KEY) == owner()


def _set(client: WorkSpacesClient, image_id: str, wanted: set[str]) -> tuple[list[str], list[str]]:
    """Share with exactly `wanted`: returns the accounts added and removed."""
    current = set(shared_with(client, image_id))
    added, removed = sorted(wanted - current), sorted(current - wanted)
    for account in added:
        client.update_workspace_image_permission(
            ImageId=image_id, AllowCopyImage=True, SharedAccountId=account
        )
    for account in removed:
        client.update_workspace_image_permission(
            ImageId=image_id, AllowCopyImage=False, SharedAccountId=account
        )
    if added or removed:
        logger.info("image %s: shared with %s, unshared from %s", image_id, added, removed)
    return added, removed


def _unproven(clients: DistributionClients, image_id: str) -> str | None:
    """Why the image is not proven this stack's (its as-built record), or None."""
    image = image_by_id(clients.base.workspaces, image_id)
    if image is None:
        return "it does not exist"
    tags = describe_tags(clients.base.workspaces, image_id)
    try:
        return record.why_not_owned(
            clients.base.s3,
            tags.get(c.PERSONA_TAG_KEY, ""),
            image_id,
            str(image.get("Name", "")),
            tags,
            owner(),
        )
    except BuildFailed as no_store:
        return f"its record cannot be read ({no_store})"


def _previous_image(event: ResourceEvent) -> str | None:
    """The image an Update moves away from (None when it cannot be read)."""
    if event.request_type != "Update" or d.IMAGE_ID not in event.old_properties:
        return None
    try:
        return source_image_id(event.old_properties, d.IMAGE_ID, event.where)
    except InvalidPropertiesError:
        return None


def _apply(event: ResourceEvent, clients: DistributionClients) -> dict[str, Any]:
    props = ShareProperties.parse(event.properties, event.where)
    client = clients.base.workspaces
    try:
        verify_image(
            client,
            props.image_id,
            owner=owner(),
            expected_name=props.expected_image_name,
            built_here=True,
        )
    except BuildFailed as wrong:
        raise BuildFailed(
            f"{event.where}: refusing to share image {props.image_id}: {wrong}"
        ) from None
    why = _unproven(clients, props.image_id)
    if why is not None:
        raise BuildFailed(
            f"{event.where}: refusing to share image {props.image_id}: {why}. Only an image "
            "whose as-built record names this stack is shared (a tag is a label anyone who "
            "may tag can write)"
        )
    _set(client, props.image_id, set(props.account_ids))
    previous = _previous_image(event)
    if previous is not None and previous != props.image_id and _owned(client, previous):
        # The old image is deleted after the update: unshare it now (AWS refuses to delete
        # a shared image).
        _set(client, previous, set())
    return {
        "PhysicalResourceId": props.image_id,
        "Data": {d.ATTR_IMAGE_ID: props.image_id, d.ATTR_ACCOUNT_IDS: ",".join(props.account_ids)},
    }


def _delete(event: ResourceEvent, clients: DistributionClients) -> dict[str, Any]:
    image_id = event.physical_id or ""
    client = clients.base.workspaces
    if IMAGE_ID.match(image_id) and _owned(client, image_id):
        _set(client, image_id, set())
    else:
        logger.info("image %s is gone or not this stack's; its permissions are left", image_id)
    return {"PhysicalResourceId": image_id}


def handle(event: ResourceEvent, clients: DistributionClients) -> dict[str, Any]:
    if event.request_type == "Delete":
        return _delete(event, clients)
    return _apply(event, clients)
