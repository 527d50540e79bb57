"""Names shared by the distribution constructs and their handlers (copies and shares).

The constructs write these custom-resource properties and the handlers read them, like
``contract`` does for images and bundles. Keep it free of imports beyond the standard library.
"""

from __future__ import annotations

from typing import Final

# A copy of this stack's image, made in another Region of the same account.
COPY_RESOURCE_TYPE: Final = "Custom::WorkSpacesImageCopy"
# A custom bundle in another Region, bound to the copy there.
REGIONAL_BUNDLE_RESOURCE_TYPE: Final = "Custom::WorkSpacesRegionalBundle"
# The accounts an image is shared with (UpdateWorkspaceImagePermission), in its Region.
SHARE_RESOURCE_TYPE: Final = "Custom::WorkSpacesImageShare"
# The receiving account's own copy of an image another account shared with it.
SHARED_COPY_RESOURCE_TYPE: Final = "Custom::WorkSpacesSharedImageCopy"

# Custom::WorkSpacesImageCopy and Custom::WorkSpacesRegionalBundle: the destination Region.
# The source Region of a regional copy is always the function's own Region (the stack's).
REGION: Final = "Region"
# The image to copy or share; its name, when the construct knows it (checked before use).
SOURCE_IMAGE_ID: Final = "SourceImageId"
SOURCE_IMAGE_NAME: Final = "SourceImageName"
# A regional bundle's check of the copy it binds to: the id of the image the copy must have
# been copied from (its SOURCE_TAG_KEY), known without the copy's own (waiter) answer.
EXPECTED_SOURCE_IMAGE_ID: Final = "ExpectedSourceImageId"
# Custom::WorkSpacesSharedImageCopy: where the shared image lives and who must own it.
SOURCE_REGION: Final = "SourceRegion"
SOURCE_ACCOUNT_ID: Final = "SourceAccountId"
# Custom::WorkSpacesImageShare: the image and the account ids it is shared with.
IMAGE_ID: Final = "ImageId"
EXPECTED_IMAGE_NAME: Final = "ExpectedImageName"
ACCOUNT_IDS: Final = "AccountIds"
# Tags of a copy (the list CloudFormation sends, as contract.TAGS).
TAGS: Final = "Tags"
# Written on every copy when CopyWorkspaceImage makes it: the id of the image it was copied
# from. A copy is adopted (a retried event, a later deploy) only when it is a copy of the
# very source the resource names now; a same-named copy of another source is never adopted.
SOURCE_TAG_KEY: Final = "workspaces-image-bakery:source-image"

# Attributes (Fn::GetAtt).
ATTR_IMAGE_ID: Final = "ImageId"
ATTR_IMAGE_NAME: Final = "ImageName"
ATTR_REGION: Final = "Region"
ATTR_SOURCE_IMAGE_ID: Final = "SourceImageId"
ATTR_ACCOUNT_IDS: Final = "AccountIds"

# What dispatch hands to check (provider.run merges the whole answer into the event it
# polls with, as the Provider framework did): when the copy was started, epoch seconds.
STARTED_AT: Final = "BakeryCopyStartedAt"

# The handler checks every POLL_SECONDS for at most TOTAL_TIMEOUT_SECONDS.
# CloudFormation waits for a custom resource at most ServiceTimeout = 3600 s, so a copy
# that is still PENDING after COPY_DEADLINE_SECONDS fails the resource with its own reason
# (before the framework's generic timeout); the copy goes on, and the next deploy adopts it
# if its source is still the same (SOURCE_TAG_KEY).
POLL_SECONDS: Final = 60
TOTAL_TIMEOUT_SECONDS: Final = 3600
COPY_DEADLINE_SECONDS: Final = 3300
