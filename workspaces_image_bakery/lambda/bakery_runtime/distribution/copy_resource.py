"""Custom::WorkSpacesImageCopy and Custom::WorkSpacesSharedImageCopy: an image copied with
CopyWorkspaceImage, which runs in the destination Region.

A regional copy takes this stack's image from the function's own Region (the stack's) to
another Region of the same account. A shared copy takes an image another account shared
with this one (UpdateWorkspaceImagePermission) into this account, in the stack's Region;
it is found by id or by name and must be owned by the account the stack names.

handle starts the copy and answers at once; is_complete, asked every minute by the
distribution's handler (provider.run), reports the copy done once it is AVAILABLE. Every
copy is tagged with the id of the image it was copied from
(distribution_contract.SOURCE_TAG_KEY). A copy this stack started before (a retried event,
or one a failed deploy left) is adopted only when it carries this stack's ownership tag
*and* was copied from the very source named now; a same-named copy of another source (a
rolled-back build's image) is deleted once settled, or fails the resource naming both ids
while it is still copying or in use: it is never adopted.

A failing copy fails its own resource, and the handler changes nothing else; CloudFormation
then rolls the whole stack operation back, so an image built in the same update is deleted
and its bundle returns to the previous image. Keep copies in a later stack or pipeline stage
to keep the home build when a copy fails (docs/distribution.md: Regions and accounts).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import error_code, error_message, owner, rolling_back
from ..core.errors import BuildFailed, InvalidPropertiesError
from ..core.events import ResourceEvent
from ..core.properties import image_id_from_build_result, parse_tags, tag_list
from ..core.workspaces import (
    NOT_FOUND_CODES,
    describe_tags,
    mark_kept,
    owned_image,
    sync_tags,
    verify_image,
)
from . import contract as d

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient
    from mypy_boto3_workspaces.type_defs import WorkspaceImageTypeDef

    from .clients import DistributionClients

logger = logging.getLogger(__name__)

IMAGE_ID = re.compile(r"^wsi-[0-9a-z]{9,63}$")
# A commercial, GovCloud or China Region name (e.g. eu-west-1, us-gov-west-1, cn-north-1).
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
IMAGE_NAME = re.compile(r"^[a-zA-Z0-9_./()\\-]{1,64}$")


def _text(props: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str]) -> str:
    value = props.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidPropertiesError(f"{where}: property {key} is not valid, got {value!r}")
    return value


def source_image_id(props: Mapping[str, Any], key: str, where: str) -> str:
    """An image id, or the build result it is read from ({"image": "wsi-..."}, the image
    build's WaitCondition data, which a copy of this stack's own image is given)."""
    raw = props.get(key)
    if not isinstance(raw, str | Mapping):
        raise InvalidPropertiesError(
            f"{where}: property {key} must be a string or the build's result, got {raw!r}"
        )
    try:
        return image_id_from_build_result(raw, where)
    except InvalidPropertiesError:
        raise InvalidPropertiesError(
            f"{where}: property {key} must be an image id or an image build's result, got {raw!r}"
        ) from None


def _optional(
    props: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str]
) -> str | None:
    return None if props.get(key) in (None, "") else _text(props, key, where, pattern)


@dataclass(frozen=True)
class CopyProperties:
    """What a copy resource asks for."""

    region: str | None
    source_image_id: str | None
    source_image_name: str | None
    tags: dict[str, str]
    source_region: str | None = None
    source_account_id: str | None = None

    @classmethod
    def parse(cls, props: Mapping[str, Any], where: str, *, shared: bool) -> CopyProperties:
        if shared:
            parsed = cls(
                region=None,
                source_image_id=_optional(props, d.SOURCE_IMAGE_ID, where, IMAGE_ID),
                source_image_name=_optional(props, d.SOURCE_IMAGE_NAME, where, IMAGE_NAME),
                tags=parse_tags(props, where),
                source_region=_text(props, d.SOURCE_REGION, where, REGION),
                source_account_id=_text(props, d.SOURCE_ACCOUNT_ID, where, ACCOUNT_ID),
            )
            if parsed.source_image_id is None and parsed.source_image_name is None:
                raise InvalidPropertiesError(
                    f"{where}: one of {d.SOURCE_IMAGE_ID} and {d.SOURCE_IMAGE_NAME} is required"
                )
            return parsed
        return cls(
            region=_text(props, d.REGION, where, REGION),
            source_image_id=source_image_id(props, d.SOURCE_IMAGE_ID, where),
            source_image_name=_optional(props, d.SOURCE_IMAGE_NAME, where, IMAGE_NAME),
            tags=parse_tags(props, where),
        )

    def replacement_key(self) -> tuple[str | None, ...]:
        """What a copy cannot change in place: a change makes a new copy."""
        return (
            self.region,
            self.source_image_id,
            self.source_image_name,
            self.source_region,
            self.source_account_id,
        )


@dataclass(frozen=True)
class Target:
    """Where the copy is made, and the client of that Region."""

    region: str
    client: WorkSpacesClient


def _target(props: CopyProperties, clients: DistributionClients) -> Target:
    region = props.region or clients.home_region
    return Target(region, clients.workspaces(region))


def _result(
    image_id: str, name: str, target: Target, source_id: str, started: float | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "PhysicalResourceId": image_id,
        "Data": {
            d.ATTR_IMAGE_ID: image_id,
            d.ATTR_IMAGE_NAME: name,
            d.ATTR_REGION: target.region,
            d.ATTR_SOURCE_IMAGE_ID: source_id,
        },
    }
    if started is not None:
        result[d.STARTED_AT] = int(started)
    return result


def _home_source(
    event: ResourceEvent, props: CopyProperties, clients: DistributionClients
) -> WorkspaceImageTypeDef:
    """This stack's image in its own Region, checked like a bundle checks its image."""
    assert props.source_image_id is not None
    try:
        return verify_image(
            clients.base.workspaces,
            props.source_image_id,
            owner=owner(),
            expected_name=props.source_image_name,
            built_here=props.source_image_name is not None,
        )
    except BuildFailed as wrong:
        raise BuildFailed(
            f"{event.where}: refusing to copy image {props.source_image_id}: {wrong}"
        ) from None


def _shared_source(
    event: ResourceEvent, props: CopyProperties, clients: DistributionClients
) -> WorkspaceImageTypeDef:
    """The image the source account shared with this one, found by id or by name, after
    checking who owns it (AWS: verify a shared image's owner before copying it)."""
    assert props.source_region is not None
    client = clients.workspaces(props.source_region)
    account = props.source_account_id
    if props.source_image_id is not None:
        found = client.describe_workspace_images(ImageIds=[props.source_image_id]).get("Images", [])
    else:
        pages = client.get_paginator("describe_workspace_images").paginate(ImageType="SHARED")
        found = [
            i
            for page in pages
            for i in page.get("Images", [])
            if i.get("Name") == props.source_image_name
        ]
    what = props.source_image_id or props.source_image_name
    mine = [i for i in found if i.get("OwnerAccountId") == account]
    if not mine:
        others = sorted({str(i.get("OwnerAccountId")) for i in found})
        raise BuildFailed(
            f"{event.where}: no image {what} shared by account {account} in "
            f"{props.source_region}"
            + (f" (only from {', '.join(others)}, which is not trusted)" if others else "")
            + "; share it from the building stack first (ImageShare with this account)"
        )
    image = mine[0]
    if props.source_image_name is not None and image.get("Name") != props.source_image_name:
        raise BuildFailed(
            f"{event.where}: shared image {image['ImageId']} is named {image.get('Name')}, not "
            f"{props.source_image_name}"
        )
    if image.get("State") != "AVAILABLE":
        raise BuildFailed(
            f"{event.where}: shared image {image['ImageId']} is {image.get('State')}, not AVAILABLE"
        )
    return image


def _user_tags(props: CopyProperties) -> dict[str, str]:
    """The resource's tags, without a key the library writes itself."""
    return {k: v for k, v in props.tags.items() if k not in (c.OWNER_TAG_KEY, d.SOURCE_TAG_KEY)}


def _adopt(target: Target, image: WorkspaceImageTypeDef, tags: Mapping[str, str]) -> None:
    """A copy this stack started before, of the same source (a retried event, or a copy a
    failed deploy left running): clear the mark a delete left on it."""
    image_id = image["ImageId"]
    logger.info("adopting copy %s (%s) in %s", image_id, image.get("Name"), target.region)
    if c.KEPT_TAG_KEY in tags:
        target.client.delete_tags(ResourceId=image_id, TagKeys=[c.KEPT_TAG_KEY])


# How long on_event waits for a deleted stale copy to disappear before copying again.
STALE_GONE_POLLS = 6
STALE_GONE_SECONDS = 10.0


def _stale(
    event: ResourceEvent, target: Target, stale: WorkspaceImageTypeDef, copied_from: str | None
) -> str:
    """How to name a same-named copy of another source in a message."""
    return (
        f"{event.where} ({target.region}): the image named {stale.get('Name')} "
        f"({stale['ImageId']}) that this stack copied earlier is a copy of "
        f"{copied_from or 'an unrecorded source'}"
    )


def _remove_stale(
    event: ResourceEvent,
    target: Target,
    stale: WorkspaceImageTypeDef,
    copied_from: str | None,
    source_id: str,
) -> None:
    """A copy this stack owns, with the name the new copy needs, but of another source (a
    rolled-back build's image): delete it once settled, else fail naming both ids."""
    stale_id = stale["ImageId"]
    what = f"{_stale(event, target, stale, copied_from)}, not of {source_id}"
    if stale_id == event.physical_id:
        raise BuildFailed(
            f"{what}, and it is this resource's current copy: it is left and not adopted. "
            f"Delete it by hand (after moving its bundles), then deploy again to copy {source_id}"
        )
    state = stale.get("State", "")
    if state not in ("AVAILABLE", "ERROR"):
        raise BuildFailed(
            f"{what}; it is {state}, so it is neither adopted nor deleted. Deploy again once it "
            f"is AVAILABLE or ERROR: it is deleted then and {source_id} copied"
        )
    try:
        target.client.delete_workspace_image(ImageId=stale_id)
    except ClientError as error:
        code = error_code(error)
        if code in NOT_FOUND_CODES:
            return
        if code in ("ResourceAssociatedException", "InvalidResourceStateException"):
            raise BuildFailed(
                f"{what}; it cannot be deleted ({code}: a bundle uses it, or it is shared), so "
                f"{source_id} cannot be copied under its name. Free it and delete it by hand, "
                "then deploy again"
            ) from None
        raise
    logger.warning(
        "deleted %s (%s) in %s: a copy of %s, not of %s",
        stale_id,
        stale.get("Name"),
        target.region,
        copied_from,
        source_id,
    )
    for _ in range(STALE_GONE_POLLS):
        if _image(target.client, stale_id) is None:
            return
        time.sleep(STALE_GONE_SECONDS)


def _start(
    event: ResourceEvent,
    props: CopyProperties,
    target: Target,
    source: WorkspaceImageTypeDef,
    source_region: str,
) -> dict[str, Any]:
    name = source.get("Name", "")
    source_id = source["ImageId"]
    stack = owner()
    try:
        existing = owned_image(target.client, name, stack)
    except BuildFailed as foreign:
        raise BuildFailed(f"{event.where} ({target.region}): {foreign}") from None
    if existing is not None:
        tags = describe_tags(target.client, existing["ImageId"])
        copied_from = tags.get(d.SOURCE_TAG_KEY)
        if copied_from == source_id:
            _adopt(target, existing, tags)
            return _result(existing["ImageId"], name, target, source_id, time.time())
        _remove_stale(event, target, existing, copied_from, source_id)
    description = source.get("Description") or f"copy of {name}"
    tags = {**_user_tags(props), d.SOURCE_TAG_KEY: source_id, c.OWNER_TAG_KEY: stack}
    try:
        created = target.client.copy_workspace_image(
            Name=name,
            Description=description,
            SourceImageId=source_id,
            SourceRegion=source_region,
            Tags=tag_list(tags),  # type: ignore[arg-type]
        )
    except ClientError as error:
        code = error_code(error)
        if code == "ResourceLimitExceededException":
            raise BuildFailed(
                f"{event.where}: cannot copy image {name} ({source_id}) to {target.region}: "
                f"the Region's image quota is reached ({error_message(error)}). Delete unused "
                f"images in {target.region} or ask AWS for a higher quota, then deploy again; "
                "nothing else was changed"
            ) from None
        if code == "ResourceAlreadyExistsException":
            existing = owned_image(target.client, name, stack)
            if existing is not None:
                tags = describe_tags(target.client, existing["ImageId"])
                copied_from = tags.get(d.SOURCE_TAG_KEY)
                if copied_from == source_id:
                    _adopt(target, existing, tags)
                    return _result(existing["ImageId"], name, target, source_id, time.time())
                raise BuildFailed(
                    f"{_stale(event, target, existing, copied_from)}, not of {source_id}, and "
                    "still holds the name; nothing was copied. Deploy again once it is gone"
                ) from None
        raise
    logger.info(
        "copying %s (%s) from %s to %s as %s",
        source_id,
        name,
        source_region,
        target.region,
        created["ImageId"],
    )
    return _result(created["ImageId"], name, target, source_id, time.time())


def _create(
    event: ResourceEvent, props: CopyProperties, clients: DistributionClients, *, shared: bool
) -> dict[str, Any]:
    target = _target(props, clients)
    if shared:
        assert props.source_region is not None
        return _start(
            event, props, target, _shared_source(event, props, clients), props.source_region
        )
    if target.region == clients.home_region:
        raise BuildFailed(
            f"{event.where}: {target.region} is the stack's own Region, where the image already "
            "is; list other Regions only"
        )
    return _start(event, props, target, _home_source(event, props, clients), clients.home_region)


def _image(client: WorkSpacesClient, image_id: str) -> WorkspaceImageTypeDef | None:
    try:
        images = client.describe_workspace_images(ImageIds=[image_id]).get("Images", [])
    except ClientError as error:
        if error_code(error) in NOT_FOUND_CODES:
            return None
        raise
    return images[0] if images else None


def _update(
    event: ResourceEvent, props: CopyProperties, clients: DistributionClients, *, shared: bool
) -> dict[str, Any]:
    try:
        old = CopyProperties.parse(event.old_properties, event.where, shared=shared)
    except InvalidPropertiesError:
        old = None
    if old is None or old.replacement_key() != props.replacement_key():
        # A new source image: a new copy; CloudFormation deletes the old one afterwards.
        return _create(event, props, clients, shared=shared)
    target = _target(props, clients)
    image_id = event.physical_id or ""
    image = _image(target.client, image_id) if IMAGE_ID.match(image_id) else None
    tags = describe_tags(target.client, image_id) if image is not None else {}
    if image is None or tags.get(c.OWNER_TAG_KEY) != owner():
        logger.warning("copy %s in %s is gone; copying again", image_id, target.region)
        return _create(event, props, clients, shared=shared)
    copied_from = tags.get(d.SOURCE_TAG_KEY)
    if copied_from is not None and props.source_image_id not in (None, copied_from):
        raise BuildFailed(
            f"{_stale(event, target, image, copied_from)}, not of {props.source_image_id} as "
            "the resource says: it is left and not adopted. Delete it by hand (after moving "
            "its bundles), then deploy again"
        )
    # Only the tags may have changed: is_complete applies them once the copy is AVAILABLE.
    source = copied_from or props.source_image_id or ""
    return _result(image_id, image.get("Name", ""), target, source, time.time())


def _delete(event: ResourceEvent, clients: DistributionClients, *, shared: bool) -> dict[str, Any]:
    image_id = event.physical_id or ""
    if not IMAGE_ID.match(image_id):
        return {"PhysicalResourceId": image_id}  # a create that failed before it copied
    try:
        props = CopyProperties.parse(event.properties, event.where, shared=shared)
        target = _target(props, clients)
    except InvalidPropertiesError:
        target = Target(clients.home_region, clients.base.workspaces)
    tagged = describe_tags(target.client, image_id).get(c.OWNER_TAG_KEY)
    if tagged != owner():
        # Gone, or not made by this stack: never deleted.
        logger.info(
            "copy %s in %s is gone or not this stack's; left alone", image_id, target.region
        )
        return {"PhysicalResourceId": image_id}
    image = _image(target.client, image_id)
    if image is None:
        return {"PhysicalResourceId": image_id}
    if image.get("State") == "PENDING" and rolling_back(clients.base, owner()):
        mark_kept(
            target.client,
            image_id,
            # A tag value: letters, digits, spaces and _ . : / = + - @ only.
            "still copying when a rollback deleted it: a later deploy of the same source adopts "
            "it - a deploy of another source deletes it once settled",
        )
        return {"PhysicalResourceId": image_id}
    if image.get("State") == "PENDING":
        # Still copying (a Region removed, or the stack deleted): nothing will come back for
        # it, so the waiter deletes it once it settles.
        return {"PhysicalResourceId": image_id, d.STARTED_AT: int(time.time())}
    return _delete_settled(target, image_id)


def _delete_settled(target: Target, image_id: str) -> dict[str, Any]:
    """Delete a copy that is no longer PENDING (one in use or shared is kept and marked)."""
    try:
        target.client.delete_workspace_image(ImageId=image_id)
    except ClientError as error:
        code = error_code(error)
        if code in NOT_FOUND_CODES:
            return {"PhysicalResourceId": image_id}
        if code in ("ResourceAssociatedException", "InvalidResourceStateException"):
            mark_kept(
                target.client,
                image_id,
                f"{code} when its stack deleted it: a bundle uses it or it is shared - delete "
                "it by hand once free",
            )
            return {"PhysicalResourceId": image_id}
        raise
    logger.info("deleted copy %s in %s", image_id, target.region)
    return {"PhysicalResourceId": image_id}


def handle(event: ResourceEvent, clients: DistributionClients, *, shared: bool) -> dict[str, Any]:
    """on_event: start, adopt, re-tag or delete a copy."""
    if event.request_type == "Delete":
        return _delete(event, clients, shared=shared)
    props = CopyProperties.parse(event.properties, event.where, shared=shared)
    if event.request_type == "Create":
        return _create(event, props, clients, shared=shared)
    return _update(event, props, clients, shared=shared)


def _delete_complete(
    raw: Mapping[str, Any], event: ResourceEvent, clients: DistributionClients, *, shared: bool
) -> dict[str, Any]:
    """The waiter after a Delete that found its copy PENDING: delete it once it settles; one
    still PENDING near CloudFormation's hour is marked kept (the stack operation goes on)."""
    image_id = event.physical_id or ""
    if d.STARTED_AT not in raw or not IMAGE_ID.match(image_id):
        return {"IsComplete": True}
    try:
        target = _target(
            CopyProperties.parse(event.properties, event.where, shared=shared), clients
        )
    except InvalidPropertiesError:
        return {"IsComplete": True}
    image = _image(target.client, image_id)
    if image is None or describe_tags(target.client, image_id).get(c.OWNER_TAG_KEY) != owner():
        return {"IsComplete": True}  # gone, or not this stack's: never deleted
    if image.get("State") != "PENDING":
        _delete_settled(target, image_id)
        return {"IsComplete": True}
    started = raw.get(d.STARTED_AT)
    waited = time.time() - float(started) if isinstance(started, int | float | str) else 0.0
    if waited > d.COPY_DEADLINE_SECONDS:
        mark_kept(
            target.client,
            image_id,
            # A tag value: letters, digits, spaces and _ . : / = + - @ only.
            "still copying an hour after its stack deleted it: delete it by hand once settled",
        )
        return {"IsComplete": True}
    return {"IsComplete": False}


def is_complete(
    raw: Mapping[str, Any], event: ResourceEvent, clients: DistributionClients, *, shared: bool
) -> dict[str, Any]:
    """The waiter's question: is the copy AVAILABLE? An ERROR copy is deleted and fails the
    resource with the service's reason; one still PENDING near CloudFormation's hour fails
    it with a reason too (the copy goes on, and the next deploy adopts it if it copies the
    same source then, else deletes it once settled). A failed resource makes CloudFormation
    roll back the whole stack operation, not this resource only."""
    if event.request_type == "Delete":
        return _delete_complete(raw, event, clients, shared=shared)
    props = CopyProperties.parse(event.properties, event.where, shared=shared)
    target = _target(props, clients)
    image_id = event.physical_id or ""
    image = _image(target.client, image_id) if IMAGE_ID.match(image_id) else None
    if image is None:
        raise BuildFailed(
            f"{event.where}: the copy {image_id} in {target.region} is gone (deleted outside "
            "CloudFormation); deploy again to copy again"
        )
    name = image.get("Name", "")
    state = image.get("State", "")
    if state == "AVAILABLE":
        # The source tag is kept as CopyWorkspaceImage wrote it (never written afterwards).
        copied_from = describe_tags(target.client, image_id).get(d.SOURCE_TAG_KEY)
        wanted = _user_tags(props)
        if copied_from is not None:
            wanted[d.SOURCE_TAG_KEY] = copied_from
        sync_tags(target.client, image_id, wanted, owner())
        data = raw.get("Data")
        source_id = data.get(d.ATTR_SOURCE_IMAGE_ID, "") if isinstance(data, Mapping) else ""
        return {"IsComplete": True, **_result(image_id, name, target, str(source_id))}
    if state == "ERROR":
        reason = f"{image.get('ErrorCode', '')}: {image.get('ErrorMessage', '')}"
        _delete(event, clients, shared=shared)
        raise BuildFailed(
            f"{event.where}: copying image {name} to {target.region} ended in ERROR ({reason}); "
            "the failed copy was deleted, deploy again to retry"
        )
    started = raw.get(d.STARTED_AT)
    waited = time.time() - float(started) if isinstance(started, int | float | str) else 0.0
    if waited > d.COPY_DEADLINE_SECONDS:
        raise BuildFailed(
            f"{event.where}: the copy {image_id} ({name}) in {target.region} is still {state} "
            f"after {int(waited // 60)} minutes, and CloudFormation waits for a custom resource "
            "at most an hour. The copy goes on: deploy again later and this stack adopts it "
            "(if it still copies the same source)"
        )
    return {"IsComplete": False}
