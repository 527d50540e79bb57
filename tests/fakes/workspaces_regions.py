"""WorkSpaces in several accounts and Regions: one :class:`FakeWorkSpaces` per account and
Region, with image copies, shares and a per-Region image quota.

Each fake answers its own boto3 client (a Region-specific signer and endpoint), validates
every request against botocore's service model like the single-Region fake, and adds:

- ``CopyWorkspaceImage`` (called in the destination Region, as AWS does): the source image
  must be the caller's own in ``SourceRegion`` or shared with the caller there, and
  AVAILABLE; the copy is PENDING for a few describes, then AVAILABLE (or ERROR). A Region
  whose owned images reach its quota answers ``ResourceLimitExceededException``.
- ``UpdateWorkspaceImagePermission`` / ``DescribeWorkspaceImagePermissions``: sharing within
  one Region; unsharing an account the image is not shared with is refused, and so is
  deleting a shared image (AWS: unshare it first).
- ``DescribeWorkspaceImages`` with ``ImageType`` OWNED / SHARED, and by id for images shared
  with the caller (their ``OwnerAccountId`` is the sharing account).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config

from .transport import session
from .workspaces_service import ACCOUNT, FakeWorkSpaces, Image, ServiceError

HOME = "us-east-1"
# Images per Region: older docs say 20; the tests lower it to fill a Region quickly.
DEFAULT_IMAGE_QUOTA = 20


class RegionalWorkSpaces(FakeWorkSpaces):
    """WorkSpaces of one account in one Region."""

    def __init__(
        self, world: WorkSpacesWorld, account: str, region: str, *, image_quota: int
    ) -> None:
        super().__init__(image_polls=world.image_polls)
        self.world = world
        self.account = account
        self.region = region
        self.image_quota = image_quota
        # image id -> accounts it is shared with (AllowCopyImage true).
        self.permissions: dict[str, set[str]] = {}
        self.next_copy_outcome: tuple[str, str, str] = ("AVAILABLE", "", "")

    def client(self, config: Config | None = None) -> Any:
        client = session(self.region).client(
            "workspaces",
            config=config,
            endpoint_url=f"https://workspaces.{self.region}.{self.account}.fake.test",
        )
        client.meta.events.register_first(
            "before-send.workspaces",
            self._on_send,  # type: ignore[arg-type]
        )
        return client

    # ----- set-up helpers -----------------------------------------------------------------
    def add_image(self, name: str, *, tags: dict[str, str] | None = None) -> str:
        """An AVAILABLE image of this account here (as a finished build leaves it)."""
        image = Image(self._new_id("wsi"), name, f"{name} image", "ws-template01")
        image.state, image.owner_account = "AVAILABLE", self.account
        self.images[image.image_id] = image
        self.tags[image.image_id] = dict(tags or {})
        return image.image_id

    def copy_ends_in_error(self, code: str, message: str) -> None:
        self.next_copy_outcome = ("ERROR", code, message)

    def owned_images(self) -> list[Image]:
        return [i for i in self.images.values() if i.owner_account == self.account]

    # ----- images ---------------------------------------------------------------------------
    def _op_CreateWorkspaceImage(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_quota()
        body = super()._op_CreateWorkspaceImage(params)
        self.images[body["ImageId"]].owner_account = self.account
        return body

    def _check_quota(self) -> None:
        if len(self.owned_images()) >= self.image_quota:
            raise ServiceError(
                "ResourceLimitExceededException",
                f"The image quota of {self.image_quota} in {self.region} is reached.",
            )

    def _op_CopyWorkspaceImage(self, params: dict[str, Any]) -> dict[str, Any]:
        source = self.world.visible_image(
            self.account, params["SourceRegion"], params["SourceImageId"]
        )
        if source is None:
            raise ServiceError("ResourceNotFoundException", "The source image was not found.")
        if source.state != "AVAILABLE":
            raise ServiceError("ResourceUnavailableException", "The source image is not AVAILABLE.")
        if any(i.name == params["Name"] for i in self.owned_images()):
            raise ServiceError("ResourceAlreadyExistsException", "An image with this name exists.")
        self._check_quota()
        outcome, code, message = self.next_copy_outcome
        self.next_copy_outcome = ("AVAILABLE", "", "")
        image = Image(
            self._new_id("wsi"),
            params["Name"],
            params.get("Description", ""),
            "",
            polls_left=self.image_polls,
            outcome=outcome,
            error_code=code,
            error_message=message,
            owner_account=self.account,
        )
        self.images[image.image_id] = image
        self.tags[image.image_id] = {t["Key"]: t.get("Value", "") for t in params.get("Tags", [])}
        return {"ImageId": image.image_id}

    def _op_DescribeWorkspaceImages(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("ImageIds")
        kind = params.get("ImageType")
        found = []
        if kind != "SHARED":
            for image in self.owned_images():
                if wanted and image.image_id not in wanted:
                    continue
                if wanted:
                    self._advance(image)
                found.append(self._image_view(image))
        if kind != "OWNED":
            for image in self.world.shared_with(self.account, self.region):
                if wanted and image.image_id not in wanted:
                    continue
                found.append(self._image_view(image))
        return self._page(found, params, "Images")

    def _op_DeleteWorkspaceImage(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.permissions.get(params["ImageId"]):
            raise ServiceError(
                "InvalidResourceStateException", "A shared image must be unshared first."
            )
        self.permissions.pop(params["ImageId"], None)
        return super()._op_DeleteWorkspaceImage(params)

    # ----- permissions ----------------------------------------------------------------------
    def _op_UpdateWorkspaceImagePermission(self, params: dict[str, Any]) -> dict[str, Any]:
        image = self.images.get(params["ImageId"])
        if image is None or image.owner_account != self.account:
            raise ServiceError("ResourceNotFoundException", "The image was not found.")
        if image.state != "AVAILABLE":
            raise ServiceError("ResourceUnavailableException", "The image is not AVAILABLE.")
        account = params["SharedAccountId"]
        shared = self.permissions.setdefault(image.image_id, set())
        if params["AllowCopyImage"]:
            shared.add(account)
        elif account in shared:
            shared.discard(account)
        else:
            raise ServiceError(
                "InvalidParameterValuesException",
                "The permission can be revoked only after the image has been shared.",
            )
        return {}

    def _op_DescribeWorkspaceImagePermissions(self, params: dict[str, Any]) -> dict[str, Any]:
        image = self.images.get(params["ImageId"])
        if image is None or image.owner_account != self.account:
            raise ServiceError("ResourceNotFoundException", "The image was not found.")
        entries = [{"SharedAccountId": a} for a in sorted(self.permissions.get(image.image_id, ()))]
        page = self._page(entries, params, "ImagePermissions")
        return {"ImageId": image.image_id, **page}


@dataclass
class WorkSpacesWorld:
    """Every account's WorkSpaces in every Region, created on first use."""

    image_quota: dict[str, int] = field(default_factory=dict)
    image_polls: int = 2
    fakes: dict[tuple[str, str], RegionalWorkSpaces] = field(default_factory=dict)

    def fake(self, region: str = HOME, account: str = ACCOUNT) -> RegionalWorkSpaces:
        key = (account, region)
        if key not in self.fakes:
            quota = self.image_quota.get(region, DEFAULT_IMAGE_QUOTA)
            self.fakes[key] = RegionalWorkSpaces(self, account, region, image_quota=quota)
        return self.fakes[key]

    def clients_of(self, account: str = ACCOUNT) -> Callable[[str], Any]:
        """A client factory for `account`: Region -> its WorkSpaces client."""
        return lambda region: self.fake(region, account).client()

    def visible_image(self, account: str, region: str, image_id: str) -> Image | None:
        """`account`'s own image in `region`, or one shared with it there."""
        own = self.fake(region, account).images.get(image_id)
        if own is not None and own.owner_account == account:
            return own
        for image in self.shared_with(account, region):
            if image.image_id == image_id:
                return image
        return None

    def shared_with(self, account: str, region: str) -> list[Image]:
        found = []
        for (owner, where), fake in self.fakes.items():
            if where != region or owner == account:
                continue
            for image_id, accounts in fake.permissions.items():
                if account in accounts and image_id in fake.images:
                    found.append(fake.images[image_id])
        return found
