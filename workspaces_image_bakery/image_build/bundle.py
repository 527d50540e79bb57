"""A custom WorkSpaces bundle bound to an image.

A new image updates the bundle in place (same bundle id). Name, description, compute type
and volumes cannot change in place, so the bundle's name carries a short digest of them:
a change creates the replacement under a new name before the old bundle is deleted
(WorkSpaces will not reuse a deleted bundle's name for about two hours).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol

import jsii
from aws_cdk import CustomResource, ITaggableV2, RemovalPolicy, Stack, TagManager
from constructs import Construct

from ..core.compute import check_compute
from ..core.naming import (
    BUNDLE_ID_PATTERN,
    BUNDLE_ID_TEXT,
    IMAGE_ID_PATTERN,
    IMAGE_ID_TEXT,
    MAX_NAME_LENGTH,
    check_name_and_description,
)
from ..core.runtime_assets import contract
from ..core.tag_rules import check_tags, tag_strings
from ..core.tagging import TagCheck, tag_manager
from ..core.validation import (
    Problems,
    check_no_secrets,
    check_removal_policy,
    region_of,
    register_bundle,
)
from ..release.release import ReleasedImage
from .image import IWorkspaceImage, WorkspaceImage, resync_property, runtime_of, service_timeout

SHAPE_CHARS = 6
MAX_BASE_NAME_LENGTH = MAX_NAME_LENGTH - SHAPE_CHARS - 1
IMAGE = "a WorkspaceImage, a ReleasedImage, an imported image, or an image id: " + IMAGE_ID_TEXT


class IWorkspaceBundle(Protocol):
    """A WorkSpaces bundle: one this app declares (:class:`WorkspaceBundle`) or one
    imported with :meth:`WorkspaceBundle.from_bundle_id`."""

    @property
    def bundle_id(self) -> str:
        """The bundle id (wsb-...); a deploy-time token for a bundle this app declares."""
        ...


class ImportedBundle(Construct):
    """A bundle declared elsewhere, by id (see :meth:`WorkspaceBundle.from_bundle_id`)."""

    def __init__(self, scope: Construct, id_: str, bundle_id: str) -> None:
        super().__init__(scope, id_)
        problems = Problems.of(self)
        problems.text(
            "bundle_id",
            bundle_id,
            min_len=12,
            max_len=67,
            pattern=BUNDLE_ID_PATTERN,
            pattern_text=BUNDLE_ID_TEXT,
        )
        check_no_secrets(problems, {"bundle_id": bundle_id})
        problems.raise_if_any()
        self._bundle_id = bundle_id

    @property
    def bundle_id(self) -> str:
        """The bundle id given."""
        return self._bundle_id


@jsii.implements(ITaggableV2)
class WorkspaceBundle(Construct):
    """A custom bundle whose image follows ``image`` on every deploy.

    :param base_name: bundle name before the shape digest; 1-57 characters of
        ``a-zA-Z0-9_./()-`` (the API allows 64 and the suffix takes 7).
    :param description: 1-255 characters of ``a-zA-Z0-9_./() -``. Not a token: it is
        part of the shape digest.
    :param image: the WorkspaceImage whose builds the bundle uses, a
        :class:`ReleasedImage` (a persona's retained image of a version, found at deploy
        time; no build), an image imported with :meth:`WorkspaceImage.from_image_id`, or an
        image id (``wsi-`` + 9-63 lowercase letters or digits; may be a deploy-time token).
    :param compute_type: a current WorkSpaces compute type. Default STANDARD.
    :param root_volume_gib: root volume. Default: the smallest valid size for the compute type.
    :param user_volume_gib: user volume. Default: the smallest valid size for the compute type.
    :param tags: tags of the bundle (values may be deploy-time tokens); a change is
        applied in place. Default None: none. ``Tags.of(scope).add(...)`` reaches the
        bundle too and wins over these for the same key (the CDK's priorities).
    :param removal_policy: what happens to a replaced or removed bundle. Default DESTROY.

    Names, description, an image id and every tag key and value are scanned for secrets.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        base_name: str,
        description: str,
        image: IWorkspaceImage | ReleasedImage | str,
        compute_type: str = "STANDARD",
        root_volume_gib: int | None = None,
        user_volume_gib: int | None = None,
        tags: Mapping[str, str] | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        self.stack = image.stack if isinstance(image, WorkspaceImage) else Stack.of(self)
        problems = Problems.of(self)
        check_name_and_description(
            problems, self.stack, "bundle", base_name, MAX_BASE_NAME_LENGTH, description, 255
        )
        # An id: given as text, or from an image imported (any IWorkspaceImage but one built
        # here, whose id the bundle reads from the build's signal).
        released = image if isinstance(image, ReleasedImage) else None
        image_id: object = (
            None
            if isinstance(image, WorkspaceImage | ReleasedImage)
            else getattr(image, "image_id", image)
        )
        if isinstance(image_id, str):
            problems.text(
                "image",
                image_id,
                min_len=13,
                max_len=67,
                pattern=IMAGE_ID_PATTERN,
                pattern_text=IMAGE,
            )
        elif not isinstance(image, WorkspaceImage | ReleasedImage):
            problems.add("image", image, IMAGE)
        register_bundle(problems, self.stack, region_of(self.stack))
        self.root_volume_gib, self.user_volume_gib = check_compute(
            problems, compute_type, root_volume_gib, user_volume_gib
        )
        checked_tags = {} if tags is None else check_tags(problems, "tags", tags)
        check_removal_policy(problems, removal_policy)
        check_no_secrets(
            problems,
            {
                "base_name": base_name,
                "description": description,
                "image": image_id,
                **tag_strings("tags", checked_tags),
            },
        )
        problems.raise_if_any()

        shape = f"{description}|{compute_type}|{self.root_volume_gib}|{self.user_volume_gib}"
        digest = hashlib.sha256(shape.encode()).hexdigest()[:SHAPE_CHARS]
        self.bundle_name = f"{base_name}-{digest}"
        self.compute_type = compute_type
        self.description = description
        self._declared_tags = dict(tags or {})
        self._tag_manager = tag_manager(contract.BUNDLE_RESOURCE_TYPE, self._declared_tags)
        TagCheck.register(self.stack, self)
        self.image: IWorkspaceImage | ReleasedImage | None = (
            None if isinstance(image, str) else image
        )
        built = image if isinstance(image, WorkspaceImage) else None
        source: dict[str, object]
        if released is not None:
            source = dict(released.bundle_properties())
        elif built is not None:
            # The handler checks the signalled image against the name it was built under.
            source = {
                # The WaitCondition's Data as is: renders as build_result does, one round
                # trip fewer than its string form.
                contract.IMAGE_BUILD_RESULT: built.wait.attr_data,
                contract.EXPECTED_IMAGE_NAME: built.image_name,
            }
        else:
            source = {contract.IMAGE_BUILD_RESULT: str(image_id)}

        self.resource = CustomResource(
            self,
            "Resource",
            service_token=runtime_of(self.stack).service_token,
            resource_type=contract.BUNDLE_RESOURCE_TYPE,
            removal_policy=removal_policy,
            service_timeout=service_timeout(),
            properties={
                contract.BUNDLE_NAME: self.bundle_name,
                contract.BUNDLE_DESCRIPTION: description,
                contract.COMPUTE_TYPE: compute_type,
                contract.ROOT_VOLUME_GIB: str(self.root_volume_gib),
                contract.USER_VOLUME_GIB: str(self.user_volume_gib),
                **source,
                contract.TAGS: self._tag_manager.rendered_tags,
                **resync_property(self.stack),
            },
        )

    @property
    def bundle_id(self) -> str:
        """The bundle's id (wsb-...), the same across image updates."""
        return self.resource.get_att_string(contract.ATTR_BUNDLE_ID)

    @property
    def image_id(self) -> str:
        """The id of the image the bundle uses after this deploy."""
        return self.resource.get_att_string(contract.ATTR_IMAGE_ID)

    @classmethod
    def from_bundle_id(cls, scope: Construct, id_: str, bundle_id: str) -> IWorkspaceBundle:
        """A bundle declared elsewhere (``wsb-`` + 8-63 lowercase letters or digits; may
        be a deploy-time token)."""
        return ImportedBundle(scope, id_, bundle_id)

    @property
    def cdk_tag_manager(self) -> TagManager:
        """The bundle's tags as the CDK manages them (``Tags.of`` reaches them)."""
        return self._tag_manager

    @property
    def declared_tags(self) -> dict[str, str]:
        """The tags given to the construct."""
        return dict(self._declared_tags)

    @property
    def tags(self) -> dict[str, str]:
        """The bundle's tags now: the given ones and, after synth, those of ``Tags.of``."""
        return dict(self._tag_manager.tag_values())

    @property
    def path(self) -> str:
        """The construct path."""
        return self.node.path

    def apply_removal_policy(self, policy: RemovalPolicy) -> None:
        """What happens to a replaced or removed bundle: DESTROY or RETAIN."""
        problems = Problems.of(self)
        check_removal_policy(problems, policy)
        problems.raise_if_any()
        self.resource.apply_removal_policy(policy)
