"""A custom WorkSpaces bundle bound to an image.

A new image updates the bundle in place (same bundle id). Name, description, compute type
and volumes cannot change in place, so the bundle's name carries a short digest of them:
a change creates the replacement under a new name before the old bundle is deleted
(WorkSpaces will not reuse a deleted bundle's name for about two hours).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from constructs import Construct

from ..runtime_assets import contract
from ..tag_rules import check_tags, tag_strings
from ..validation import Problems, check_no_secrets, check_removal_policy, register_bundle
from .build_runtime import BuildRuntime
from .compute import check_compute
from .image import MAX_NAME_LENGTH, WorkspaceImage, check_name_and_description, resync_property

SHAPE_CHARS = 6
MAX_BASE_NAME_LENGTH = MAX_NAME_LENGTH - SHAPE_CHARS - 1
IMAGE_ID_PATTERN = r"wsi-[0-9a-z]{9,63}"  # botocore's WorkspaceImageId
IMAGE = "a WorkspaceImage, or an image id: wsi- and 9-63 lowercase letters or digits"


class WorkspaceBundle(Construct):
    """A custom bundle whose image follows ``image`` on every deploy.

    :param base_name: bundle name before the shape digest; 1-57 characters of
        ``a-zA-Z0-9_./()-`` (the API allows 64 and the suffix takes 7).
    :param description: 1-255 characters of ``a-zA-Z0-9_./() -``. Not a token: it is
        part of the shape digest.
    :param image: the WorkspaceImage whose builds the bundle uses, or an image id
        (``wsi-`` + 9-63 lowercase letters or digits; may be a deploy-time token).
    :param compute_type: a current WorkSpaces compute type. Default STANDARD.
    :param root_volume_gib: root volume. Default: the smallest valid size for the compute type.
    :param user_volume_gib: user volume. Default: the smallest valid size for the compute type.
    :param tags: tags of the bundle (values may be deploy-time tokens); a change is
        applied in place. Default None: none.
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
        image: WorkspaceImage | str,
        compute_type: str = "STANDARD",
        root_volume_gib: int | None = None,
        user_volume_gib: int | None = None,
        tags: Mapping[str, str] | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        problems = Problems(self.node.path)
        check_name_and_description(
            problems, self, "bundle", base_name, MAX_BASE_NAME_LENGTH, description, 255
        )
        if isinstance(image, str):
            problems.text(
                "image", image, min_len=13, max_len=67, pattern=IMAGE_ID_PATTERN, pattern_text=IMAGE
            )
        elif not isinstance(image, WorkspaceImage):
            problems.add("image", image, IMAGE)
        register_bundle(problems, self, Stack.of(self).region)
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
                "image": image,
                **tag_strings("tags", checked_tags),
            },
        )
        problems.raise_if_any()

        shape = f"{description}|{compute_type}|{self.root_volume_gib}|{self.user_volume_gib}"
        digest = hashlib.sha256(shape.encode()).hexdigest()[:SHAPE_CHARS]
        self.bundle_name = f"{base_name}-{digest}"
        self.compute_type = compute_type
        self.description = description
        self.tags = dict(tags or {})
        self.image = image if isinstance(image, WorkspaceImage) else None
        build_result = image.build_result if isinstance(image, WorkspaceImage) else image

        self.resource = CustomResource(
            self,
            "Resource",
            service_token=BuildRuntime.of(self).service_token,
            resource_type=contract.BUNDLE_RESOURCE_TYPE,
            removal_policy=removal_policy,
            service_timeout=Duration.minutes(10),
            properties={
                contract.BUNDLE_NAME: self.bundle_name,
                contract.BUNDLE_DESCRIPTION: description,
                contract.COMPUTE_TYPE: compute_type,
                contract.ROOT_VOLUME_GIB: str(self.root_volume_gib),
                contract.USER_VOLUME_GIB: str(self.user_volume_gib),
                contract.IMAGE_BUILD_RESULT: build_result,
                # The handler checks the signalled image against the name it was built under.
                **(
                    {contract.EXPECTED_IMAGE_NAME: self.image.image_name}
                    if self.image is not None
                    else {}
                ),
                contract.TAGS: [{"Key": k, "Value": self.tags[k]} for k in sorted(self.tags)],
                **resync_property(self),
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
