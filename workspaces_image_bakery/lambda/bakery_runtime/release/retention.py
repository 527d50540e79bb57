"""A way back: a persona's retained images, the released version a bundle serves, pruning
beyond the retained count, and the Region's image quota checked before a build.

A persona's images are found by the library's tags (persona, version, recipe) together
with this stack's ownership tag, never by name alone. An image is deleted only when it is
this stack's, outside the retained count, used by no bundle, associated with nothing and
shared with no account; anything else is kept and logged with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import error_code, raise_if_transient
from ..core.errors import BuildFailed
from ..core.workspaces import describe_tags, shared_with

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient
    from mypy_boto3_workspaces.type_defs import WorkspaceImageTypeDef

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PersonaImage:
    """One of a persona's images, with the tags that say what it is."""

    image_id: str
    name: str
    state: str
    created: datetime
    version: str
    recipe: str
    tags: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.version or '?'} ({self.image_id}, {self.name}, {self.state})"


@dataclass
class PruneResult:
    """What a prune did: the ids deleted, and the ids kept with the reason."""

    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


def owned_images(client: WorkSpacesClient) -> list[WorkspaceImageTypeDef]:
    """Every image this account owns in the Region (botocore's paginator)."""
    pages = client.get_paginator("describe_workspace_images").paginate(ImageType="OWNED")
    return [image for page in pages for image in page.get("Images", [])]


def persona_images(client: WorkSpacesClient, persona: str | None, owner: str) -> list[PersonaImage]:
    """The persona's images that this stack created (every persona's with None), newest
    first; images marked for cleanup (left by a stopped build) are not among them."""
    found: list[PersonaImage] = []
    for image in owned_images(client):
        tags = describe_tags(client, image["ImageId"])
        if tags.get(c.OWNER_TAG_KEY) != owner or c.PERSONA_TAG_KEY not in tags:
            continue
        if (persona is not None and tags[c.PERSONA_TAG_KEY] != persona) or (
            c.CLEANUP_TAG_KEY in tags
        ):
            continue
        found.append(
            PersonaImage(
                image_id=image["ImageId"],
                name=image.get("Name", ""),
                state=image.get("State", ""),
                created=image.get("Created", _EPOCH),
                version=tags.get(c.IMAGE_VERSION_TAG_KEY, ""),
                recipe=tags.get(c.RECIPE_TAG_KEY, ""),
                tags=tags,
            )
        )
    return sorted(found, key=lambda i: (i.created, i.name), reverse=True)


def find_released(client: WorkSpacesClient, persona: str, version: str, owner: str) -> PersonaImage:
    """The persona's newest AVAILABLE retained image of `version`; an error that lists the
    versions that exist when there is none."""
    images = persona_images(client, persona, owner)
    for image in images:
        if image.version == version and image.state == "AVAILABLE":
            return image
    retained = ", ".join(i.describe() for i in images) or "none"
    raise BuildFailed(
        f"persona {persona} has no retained AVAILABLE image of version {version}; the images "
        f"this stack keeps for it: {retained}. Release one of these versions, or the version "
        "this deploy builds"
    )


def bundle_images(client: WorkSpacesClient) -> set[str]:
    """The ids of the images the account's own bundles use (botocore's paginator)."""
    pages = client.get_paginator("describe_workspace_bundles").paginate()
    return {b["ImageId"] for page in pages for b in page.get("Bundles", []) if "ImageId" in b}


def why_in_use(client: WorkSpacesClient, image_id: str, used_by_bundles: set[str]) -> str | None:
    """Why the image must be kept (a bundle uses it, it is associated or shared), or None.

    DescribeImageAssociations reports application associations only (its resource-type
    enum in botocore's model is APPLICATION), so bundle use is read from the bundles. A
    look-up that fails is a reason to keep the image, never to delete it.
    """
    if image_id in used_by_bundles:
        return "a bundle uses it"
    try:
        associations = client.describe_image_associations(
            ImageId=image_id, AssociatedResourceTypes=["APPLICATION"]
        ).get("Associations", [])
        if associations:
            return f"associated with {len(associations)} application(s)"
        shared = shared_with(client, image_id)
    except ClientError as error:
        raise_if_transient(error)
        return f"its associations could not be read ({error_code(error)})"
    if shared:
        return f"shared with account(s) {', '.join(sorted(shared))}"
    return None


OwnershipCheck = Callable[[PersonaImage], "str | None"]


def prune(
    client: WorkSpacesClient,
    persona: str | None,
    keep: int,
    owner: str,
    current: str | None = None,
    not_owned: OwnershipCheck | None = None,
    forget: Callable[[PersonaImage], None] | None = None,
) -> PruneResult:
    """Delete the persona's images (every persona's of this stack with None) beyond the
    newest `keep` that nothing uses. The image named `current` (the one the stack now
    declares) counts first and is never deleted, however old: a build may have adopted an
    earlier image by name. With `not_owned`, an image is deleted only when it says None
    (the image's as-built record names this stack); `forget` then drops its record."""
    result = PruneResult()
    found = persona_images(client, persona, owner)
    images = [i for i in found if i.name == current] + [i for i in found if i.name != current]
    older = images[max(keep, 1 if current else 0) :]
    if not older:
        return result
    used = bundle_images(client)
    for image in older:
        reason = (
            "it is PENDING"
            if image.state == "PENDING"
            else why_in_use(client, image.image_id, used)
        )
        if reason is None and not_owned is not None:
            reason = not_owned(image)
        if reason is not None:
            result.kept[image.image_id] = reason
            logger.info(
                "keeping image %s beyond the retained %d: %s", image.describe(), keep, reason
            )
            continue
        try:
            client.delete_workspace_image(ImageId=image.image_id)
        except ClientError as error:
            raise_if_transient(error)
            result.kept[image.image_id] = f"delete failed ({error_code(error)})"
            logger.warning("could not delete image %s: %s", image.describe(), error_code(error))
            continue
        result.deleted.append(image.image_id)
        logger.info("pruned image %s (beyond the retained %d)", image.describe(), keep)
        if forget is not None:
            forget(image)
    return result


def mark_retained(client: WorkSpacesClient, image_id: str, now: datetime | None = None) -> None:
    """Tag a replaced image as kept for a way back."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.create_tags(ResourceId=image_id, Tags=[{"Key": c.RETAINED_TAG_KEY, "Value": when}])


def check_quota(client: WorkSpacesClient, quota: int, owner: str) -> None:
    """Before a build: the Region must have room for one more image, or the build fails
    now, naming the images of this stack that nothing uses (oldest first)."""
    images = owned_images(client)
    if len(images) < quota:
        return
    used = bundle_images(client)
    removable: list[str] = []
    for image in sorted(images, key=lambda i: i.get("Created", _EPOCH)):
        tags = describe_tags(client, image["ImageId"])
        if tags.get(c.OWNER_TAG_KEY) != owner or image["ImageId"] in used:
            continue
        version = tags.get(c.IMAGE_VERSION_TAG_KEY, "?")
        removable.append(f"{image['ImageId']} ({image.get('Name', '')}, version {version})")
    hint = (
        f"this stack's images that no bundle uses, oldest first: {'; '.join(removable[:10])}"
        if removable
        else "none of them is this stack's and unused"
    )
    raise BuildFailed(
        f"the Region holds {len(images)} images and the image quota is {quota} "
        f"(context value workspaces-image-bakery:image-quota): a build needs room for one "
        f"more, so nothing was started. {hint}. Delete images you no longer need, or deploy "
        "once with a lower retained_images and no other change to the persona (that deploy "
        "prunes), or raise the quota in Service Quotas and the context value"
    )
