"""WorkSpaces look-ups and tag updates shared by the image and bundle handlers.

Every list call pages through NextToken with botocore's paginators. Ownership is the
OWNER_TAG_KEY tag whose value is the CloudFormation stack id: a handler adopts only what
its own stack created.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from . import contract as c
from .aws import account_of, error_code
from .errors import BuildFailed
from .properties import tag_list

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient
    from mypy_boto3_workspaces.type_defs import (
        WorkspaceBundleTypeDef,
        WorkspaceImageTypeDef,
        WorkspaceTypeDef,
    )

logger = logging.getLogger(__name__)

NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "ResourceNotFound"})


def describe_tags(client: WorkSpacesClient, resource_id: str) -> dict[str, str]:
    """The resource's tags; an empty dict when the resource is gone."""
    try:
        response = client.describe_tags(ResourceId=resource_id)
    except ClientError as error:
        if error_code(error) in NOT_FOUND_CODES:
            return {}
        raise
    return {t["Key"]: t.get("Value", "") for t in response.get("TagList", [])}


def images_named(client: WorkSpacesClient, name: str) -> list[WorkspaceImageTypeDef]:
    """Owned images whose name is `name`, across every page (botocore's paginator)."""
    pages = client.get_paginator("describe_workspace_images").paginate(ImageType="OWNED")
    return [i for page in pages for i in page.get("Images", []) if i.get("Name") == name]


def image_by_id(client: WorkSpacesClient, image_id: str) -> WorkspaceImageTypeDef | None:
    images = client.describe_workspace_images(ImageIds=[image_id]).get("Images", [])
    return images[0] if images else None


def owned_image(client: WorkSpacesClient, name: str, owner: str) -> WorkspaceImageTypeDef | None:
    """The image called `name` that this stack created, or None.

    An image with that name that the stack did not create is an error: it is never adopted.
    """
    images = images_named(client, name)
    for image in images:
        if describe_tags(client, image["ImageId"]).get(c.OWNER_TAG_KEY) == owner:
            return image
    if images:
        raise BuildFailed(
            f"an image named {name} already exists ({images[0]['ImageId']}) and was not created "
            "by this stack; it is left alone. Delete or rename it, or change the persona's image "
            "version"
        )
    return None


def verify_image(
    client: WorkSpacesClient,
    image_id: str,
    *,
    owner: str,
    expected_name: str | None,
    built_here: bool,
) -> WorkspaceImageTypeDef:
    """The image a bundle is about to use, after checking it is the one it should be.

    The id may come from a WaitCondition signal, which anyone holding the handle URL can
    send: the image must exist, belong to this account and be AVAILABLE; when it comes from
    the stack's own build (`built_here`) it must carry this stack's ownership tag, and when
    the image resource's name is known (`expected_name`) it must have that name. Raises
    BuildFailed naming the image and why.
    """
    image = image_by_id(client, image_id)
    if image is None:
        raise BuildFailed(
            f"image {image_id}{f' ({expected_name})' if expected_name else ''} does not exist: "
            "it was deleted, or never existed in this account and Region"
        )
    name = image.get("Name", "")
    account = account_of(owner)
    if account and image.get("OwnerAccountId", account) != account:
        raise BuildFailed(
            f"image {image_id} ({name}) belongs to account {image.get('OwnerAccountId')}, not "
            f"{account}; a bundle uses images of its own account only (copy a shared image first)"
        )
    if expected_name is not None and name != expected_name:
        raise BuildFailed(
            f"image {image_id} is named {name}, not {expected_name} as the image resource "
            "built it; the build result was not produced by this stack's build"
        )
    tagged = describe_tags(client, image_id).get(c.OWNER_TAG_KEY)
    if (built_here or expected_name is not None) and tagged != owner:
        raise BuildFailed(
            f"image {image_id} ({name}) does not carry this stack's ownership tag "
            f"{c.OWNER_TAG_KEY}; it was not built by this stack"
        )
    state = image.get("State", "")
    if state != "AVAILABLE":
        raise BuildFailed(f"image {image_id} ({name}) is {state}, not AVAILABLE")
    return image


def shared_with(client: WorkSpacesClient, image_id: str) -> list[str]:
    """The accounts the image is shared with, across every page (botocore has no paginator
    for DescribeWorkspaceImagePermissions)."""
    accounts: list[str] = []
    token = ""
    while True:
        page = (
            client.describe_workspace_image_permissions(ImageId=image_id, NextToken=token)
            if token
            else client.describe_workspace_image_permissions(ImageId=image_id)
        )
        accounts += [
            p["SharedAccountId"] for p in page.get("ImagePermissions", []) if "SharedAccountId" in p
        ]
        token = page.get("NextToken", "")
        if not token:
            return accounts


def bundles_named(client: WorkSpacesClient, name: str) -> list[WorkspaceBundleTypeDef]:
    """The account's own custom bundles whose name is `name`, across every page (botocore's
    paginator)."""
    pages = client.get_paginator("describe_workspace_bundles").paginate()
    return [b for page in pages for b in page.get("Bundles", []) if b.get("Name") == name]


def bundle_by_id(client: WorkSpacesClient, bundle_id: str) -> WorkspaceBundleTypeDef | None:
    try:
        bundles = client.describe_workspace_bundles(BundleIds=[bundle_id]).get("Bundles", [])
    except ClientError as error:
        if error_code(error) in NOT_FOUND_CODES | {"InvalidParameterValuesException"}:
            return None
        raise
    return bundles[0] if bundles else None


def workspace_by_id(client: WorkSpacesClient, workspace_id: str) -> WorkspaceTypeDef | None:
    workspaces = client.describe_workspaces(WorkspaceIds=[workspace_id]).get("Workspaces", [])
    return workspaces[0] if workspaces else None


def sync_tags(
    client: WorkSpacesClient,
    resource_id: str,
    desired: Mapping[str, str],
    owner: str,
    current: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Make the resource's tags exactly `desired` plus the ownership tag (`current`: its
    tags when the caller just read them).

    Returns the keys written and the keys removed, in that order. Calls nothing when the
    tags already match, so an unrelated deploy makes no tag calls.
    """
    wanted = {**desired, c.OWNER_TAG_KEY: owner}
    current = describe_tags(client, resource_id) if current is None else current
    stale = sorted(k for k in current if k not in wanted and k not in c.LIBRARY_TAG_KEYS)
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if stale:
        client.delete_tags(ResourceId=resource_id, TagKeys=stale)
    if changed:
        client.create_tags(ResourceId=resource_id, Tags=tag_list(changed))  # type: ignore[arg-type]
    if stale or changed:
        logger.info("tags of %s: wrote %s, removed %s", resource_id, sorted(changed), stale)
    return sorted(changed), stale


def mark_kept(client: WorkSpacesClient, resource_id: str, why: str) -> None:
    """Tag a resource CloudFormation deleted but that had to be kept, and log it.

    The delete still reports success (the stack operation must finish); the tag and the log
    line tell an operator what is left and why (docs/operations.md: Teardown).
    """
    logger.warning("%s is kept: %s", resource_id, why)
    try:
        client.create_tags(
            ResourceId=resource_id,
            Tags=[{"Key": c.KEPT_TAG_KEY, "Value": why[:255]}],
        )
    except ClientError as error:
        logger.warning("could not tag %s as kept: %s", resource_id, error_code(error))
