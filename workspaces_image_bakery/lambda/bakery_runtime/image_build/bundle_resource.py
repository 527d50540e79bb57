"""Custom::WorkSpacesBundle: a custom bundle bound to the persona's current image.

A new image updates the bundle in place (UpdateWorkspaceBundle keeps the bundle id).
Name, description, compute type and volumes cannot change in place: a change creates a new
bundle (new physical id) and CloudFormation deletes the old one after the update succeeded.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import Clients, error_code, error_message, owner
from ..core.errors import BuildFailed, InvalidPropertiesError
from ..core.events import ResourceEvent
from ..core.properties import BundleProperties, tag_list
from ..core.workspaces import (
    bundle_by_id,
    bundles_named,
    describe_tags,
    mark_kept,
    sync_tags,
    verify_image,
)
from ..evidence import record
from ..release.retention import find_released

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient
    from mypy_boto3_workspaces.type_defs import WorkspaceBundleTypeDef

logger = logging.getLogger(__name__)


def _result(bundle_id: str, props: BundleProperties) -> dict[str, Any]:
    return {
        "PhysicalResourceId": bundle_id,
        "Data": {c.ATTR_BUNDLE_ID: bundle_id, c.ATTR_IMAGE_ID: props.image_id},
    }


def check_image(event: ResourceEvent, props: BundleProperties, clients: Clients) -> None:
    """Before a bundle is created on, or moved to, an image: it must be the right image."""
    try:
        verify_image(
            clients.workspaces,
            props.image_id,
            owner=owner(),
            expected_name=props.expected_image_name,
            built_here=props.image_from_build,
        )
    except BuildFailed as wrong:
        raise BuildFailed(
            f"{event.where} ({props.bundle_name}): refusing image {props.image_id}: {wrong}"
        ) from None


def _point_at_image(
    event: ResourceEvent,
    props: BundleProperties,
    clients: Clients,
    bundle_id: str,
    current_image: str,
) -> None:
    if current_image != props.image_id:
        check_image(event, props, clients)
        clients.workspaces.update_workspace_bundle(BundleId=bundle_id, ImageId=props.image_id)
        logger.info(
            "bundle %s now uses image %s (was %s)", bundle_id, props.image_id, current_image
        )


def create_bundle(
    event: ResourceEvent, props: BundleProperties, clients: Clients
) -> dict[str, Any]:
    """Create the bundle, or adopt the one with this name that this stack created before."""
    adopted = _adopt(event, props, clients)
    if adopted is not None:
        return adopted
    check_image(event, props, clients)
    try:
        created = _create(clients.workspaces, props, owner())
    except ClientError as error:
        code = error_code(error)
        if code == "ResourceLimitExceededException":
            raise BuildFailed(
                f"{event.where}: the Region's custom bundle quota is reached (50, not "
                f"adjustable): {error_message(error)}. Delete unused bundles"
            ) from None
        if code == "ResourceAlreadyExistsException":
            # An earlier attempt's answer was lost after the bundle was made: adopt it.
            adopted = _adopt(event, props, clients)
            if adopted is not None:
                return adopted
        raise
    logger.info("created bundle %s (%s)", created["BundleId"], props.bundle_name)
    return _result(created["BundleId"], props)


def _adopt(
    event: ResourceEvent, props: BundleProperties, clients: Clients
) -> dict[str, Any] | None:
    """The result for the same-named bundle this stack made; an error for a foreign one."""
    client = clients.workspaces
    stack = owner()
    for bundle in bundles_named(client, props.bundle_name):
        if describe_tags(client, bundle["BundleId"]).get(c.OWNER_TAG_KEY) != stack:
            raise BuildFailed(
                f"{event.where}: a bundle named {props.bundle_name} already exists "
                f"({bundle['BundleId']}) and is not managed by this stack; it is left alone. "
                "Choose another bundle name or delete that bundle"
            )
        logger.info("adopting bundle %s (%s)", bundle["BundleId"], props.bundle_name)
        _point_at_image(event, props, clients, bundle["BundleId"], bundle.get("ImageId", ""))
        sync_tags(client, bundle["BundleId"], props.tags, stack)
        return _result(bundle["BundleId"], props)
    return None


def _create(
    client: WorkSpacesClient, props: BundleProperties, stack: str
) -> WorkspaceBundleTypeDef:
    return client.create_workspace_bundle(
        BundleName=props.bundle_name,
        BundleDescription=props.description,
        ImageId=props.image_id,
        ComputeType={"Name": props.compute_type},  # type: ignore[typeddict-item]
        RootStorage={"Capacity": str(props.root_volume_gib)},
        UserStorage={"Capacity": str(props.user_volume_gib)},
        Tags=tag_list({**props.tags, c.OWNER_TAG_KEY: stack}),  # type: ignore[arg-type]
    )["WorkspaceBundle"]


def update_bundle(
    event: ResourceEvent, props: BundleProperties, clients: Clients
) -> dict[str, Any]:
    try:
        old = BundleProperties.parse(event.old_properties, event.where)
    except InvalidPropertiesError:
        old = None
    if old is None or old.replacement_key() != props.replacement_key():
        return create_bundle(event, props, clients)
    bundle_id = event.physical_id or ""
    bundle = bundle_by_id(clients.workspaces, bundle_id)
    if bundle is None:
        # Deleted outside CloudFormation: make a new one (CloudFormation then forgets the old id).
        logger.warning("bundle %s is gone; creating %s again", bundle_id, props.bundle_name)
        return create_bundle(event, props, clients)
    _point_at_image(event, props, clients, bundle_id, bundle.get("ImageId", ""))
    sync_tags(clients.workspaces, bundle_id, props.tags, owner())
    return _result(bundle_id, props)


def delete_bundle(event: ResourceEvent, clients: Clients) -> dict[str, Any]:
    bundle_id = event.physical_id or ""
    if not bundle_id.startswith("wsb-"):
        return {"PhysicalResourceId": bundle_id}  # a create that failed before it made one
    stack = owner()
    tagged = describe_tags(clients.workspaces, bundle_id).get(c.OWNER_TAG_KEY)
    if tagged is None:
        logger.info("bundle %s is already gone", bundle_id)
        return {"PhysicalResourceId": bundle_id}
    if tagged != stack:
        logger.warning("bundle %s belongs to another stack; not deleting it", bundle_id)
        return {"PhysicalResourceId": bundle_id}
    try:
        clients.workspaces.delete_workspace_bundle(BundleId=bundle_id)
    except ClientError as error:
        code = error_code(error)
        if code == "ResourceNotFoundException":
            return {"PhysicalResourceId": bundle_id}
        if code == "ResourceAssociatedException":
            # WorkSpaces launched from the bundle still exist (AWS: delete them first).
            mark_kept(
                clients.workspaces,
                bundle_id,
                "in use by WorkSpaces when its stack deleted it: delete by hand once free",
            )
            return {"PhysicalResourceId": bundle_id}
        raise
    logger.info("deleted bundle %s", bundle_id)
    return {"PhysicalResourceId": bundle_id}


def resolve_release(
    event: ResourceEvent, props: BundleProperties, clients: Clients
) -> BundleProperties:
    """A bundle that serves a released version: the persona's retained image of it.

    The image is found by this stack's ownership tag and the persona and version tags, but
    users are moved to it only when its as-built record (written by the runtime alone) names
    this stack and this image: tags are labels anyone who may tag can write. Then it is
    checked like a built one (name, account, ownership, AVAILABLE) before the bundle moves.
    """
    if props.released_version is None or props.persona is None:
        return props
    try:
        image = find_released(clients.workspaces, props.persona, props.released_version, owner())
    except BuildFailed as missing:
        raise BuildFailed(f"{event.where} ({props.bundle_name}): {missing}") from None
    why = record.why_not_owned(
        clients.s3, props.persona, image.image_id, image.name, image.tags, owner()
    )
    if why is not None:
        raise BuildFailed(
            f"{event.where} ({props.bundle_name}): refusing to pin version "
            f"{props.released_version} to image {image.image_id} ({image.name}): {why}. A pin "
            "moves users only to an image whose as-built record names this stack (built by it "
            "since 0.4.0); the bundle stays where it is"
        )
    logger.info(
        "bundle %s serves released version %s: image %s (%s)",
        props.bundle_name,
        props.released_version,
        image.image_id,
        image.name,
    )
    # The bundle describes what it serves: the released image's own Version and Software.
    content: dict[str, str] = {
        k: image.tags[k] for k in c.IMAGE_CONTENT_TAG_KEYS if k in image.tags
    }
    return replace(
        props,
        image_id=image.image_id,
        expected_image_name=image.name,
        tags={**props.tags, **content},
    )


def handle(event: ResourceEvent, clients: Clients) -> dict[str, Any]:
    if event.request_type == "Delete":
        return delete_bundle(event, clients)
    props = resolve_release(event, BundleProperties.parse(event.properties, event.where), clients)
    if event.request_type == "Create":
        return create_bundle(event, props, clients)
    return update_bundle(event, props, clients)
