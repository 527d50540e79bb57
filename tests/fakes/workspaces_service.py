"""A stateful, fault-injecting stand-in for the WorkSpaces API, behind a real boto3 client.

It answers at botocore's ``before-send`` hook, so botocore serializes and validates every
request (required members, types, minimum lengths) and parses every response. What
botocore leaves to the service, the fake checks from the same service model: enums,
patterns and maximum lengths, answering ``InvalidParameterValuesException`` as AWS does.

State moves over time as the real service's does: a started WorkSpace goes STARTING ->
AVAILABLE after a few describes; an image stays PENDING for a few polls, then ends
AVAILABLE or ERROR; the template WorkSpace is SUSPENDED while it is imaged. Any call can
be made to fail with any error code, any number of times.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.model import ListShape, Shape, StructureShape

from .transport import response, service_model, session

REGION = "us-east-1"
ACCOUNT = "123456789012"
OWNER_TAG = "workspaces-image-bakery:stack"
# An endpoint of its own, so that moto (when active for other services) ignores these calls.
ENDPOINT = "https://workspaces.fake.test"


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass
class Fault:
    code: str
    message: str
    times: int
    after: int = 0
    applied: bool = False


@dataclass
class Workspace:
    workspace_id: str
    state: str = "AVAILABLE"
    root_encrypted: bool = False
    user_encrypted: bool = False
    modifications: list[dict[str, str]] = field(default_factory=list)
    describes_until_available: int = 0
    settles_after: int | None = None
    ip_address: str = "10.0.1.20"
    reboots: int = 0


@dataclass
class Image:
    image_id: str
    name: str
    description: str
    workspace_id: str
    state: str = "PENDING"
    polls_left: int = 2
    outcome: str = "AVAILABLE"
    error_code: str = ""
    error_message: str = ""
    owner_account: str = ACCOUNT
    # Accounts the image is shared with, and application associations (ids).
    shared_with: list[str] = field(default_factory=list)
    associations: list[str] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime(2026, 11, 27, tzinfo=UTC))


@dataclass
class Bundle:
    bundle_id: str
    name: str
    description: str
    image_id: str
    compute_type: str
    root_gib: str
    user_gib: str


class FakeWorkSpaces:
    """The service's state and its API. Create clients with :meth:`client`."""

    def __init__(self, *, page_size: int = 25, image_polls: int = 2, image_quota: int = 40) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.images: dict[str, Image] = {}
        self.bundles: dict[str, Bundle] = {}
        self.tags: dict[str, dict[str, str]] = defaultdict(dict)
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.page_size = page_size
        self.image_polls = image_polls
        # The Region's image quota: CreateWorkspaceImage beyond it is refused, as AWS does.
        self.image_quota = image_quota
        self.next_outcome: tuple[str, str, str] = ("AVAILABLE", "", "")
        self._ids = itertools.count(1)
        self._model = service_model("workspaces")

    # ----- set-up helpers for tests -------------------------------------------------
    def add_workspace(self, workspace_id: str, **kwargs: Any) -> Workspace:
        workspace = Workspace(workspace_id, **kwargs)
        self.workspaces[workspace_id] = workspace
        return workspace

    def fail(
        self,
        operation: str,
        code: str,
        message: str = "injected",
        times: int = 1,
        after: int = 0,
        applied: bool = False,
    ) -> None:
        """After `after` good calls, the next `times` calls of `operation` fail with `code`.

        With `applied`, the call takes effect and only its answer is lost (a 5xx after the
        work was done), as when a connection drops.
        """
        self.faults[operation].append(Fault(code, message, times, after, applied))

    def add_foreign(self) -> tuple[str, str]:
        """An image and a bundle somebody else made (no ownership tag): never to be touched."""
        number = next(self._ids)
        image = Image(
            f"wsi-{number:09d}f", f"someone-elses-image-{number}", "not ours", "ws-other0000"
        )
        image.state = "AVAILABLE"
        self.images[image.image_id] = image
        self.tags[image.image_id] = {"Team": "other"}
        bundle = Bundle(
            f"wsb-{number:09d}f",
            f"someone-elses-bundle-{number}",
            "not ours",
            image.image_id,
            "VALUE",
            "80",
            "10",
        )
        self.bundles[bundle.bundle_id] = bundle
        self.tags[bundle.bundle_id] = {"Team": "other"}
        return image.image_id, bundle.bundle_id

    def image_ends_in_error(self, code: str, message: str) -> None:
        """The next image created ends in ERROR with this code and message."""
        self.next_outcome = ("ERROR", code, message)

    def client(self, config: Config | None = None) -> Any:
        """A real boto3 WorkSpaces client (the library's retry config) that this fake answers."""
        client = session(REGION).client("workspaces", config=config, endpoint_url=ENDPOINT)
        client.meta.events.register_first(
            "before-send.workspaces",
            self._on_send,  # type: ignore[arg-type]
        )
        return client

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    # ----- transport ----------------------------------------------------------------
    def _on_send(self, request: Any, **_: Any) -> AWSResponse:
        operation = request.headers["X-Amz-Target"].decode().split(".")[-1]
        params = json.loads(request.body or b"{}")
        self.calls.append((operation, params))
        try:
            fault = self._fault(operation)
            self._check_model(operation, params)
            body = getattr(self, f"_op_{operation}")(params)
            status = 200
            if fault is not None:
                raise ServiceError(fault.code, fault.message, 500)
        except ServiceError as error:
            body, status = {"__type": error.code, "message": error.message}, error.status
        payload = json.dumps(body, default=_json_default).encode()
        return response(request.url, status, "application/x-amz-json-1.1", payload)

    def _fault(self, operation: str) -> Fault | None:
        """Raise the injected error now, or return it to raise after the call took effect."""
        queue = self.faults.get(operation)
        if not queue:
            return None
        fault = queue[0]
        if fault.after > 0:
            fault.after -= 1
            return None
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        if fault.applied:
            return fault
        status = 500 if fault.code.startswith("Internal") else 400
        raise ServiceError(fault.code, fault.message, status)

    def _check_model(self, operation: str, params: dict[str, Any]) -> None:
        shape = self._model.operation_model(operation).input_shape
        assert shape is not None
        problems: list[str] = []
        check_request(shape, params, operation, problems)
        if problems:
            raise ServiceError("InvalidParameterValuesException", "; ".join(problems))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):09d}x"

    def _page(
        self, items: list[dict[str, Any]], params: dict[str, Any], key: str
    ) -> dict[str, Any]:
        start = int(params.get("NextToken") or 0)
        limit = min(self.page_size, int(params.get("MaxResults") or params.get("Limit") or 25))
        result: dict[str, Any] = {key: items[start : start + limit]}
        if start + limit < len(items):
            result["NextToken"] = str(start + limit)
        return result

    # ----- WorkSpaces -----------------------------------------------------------------
    def _op_DescribeWorkspaces(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("WorkspaceIds")
        found = []
        for workspace in self.workspaces.values():
            if wanted and workspace.workspace_id not in wanted:
                continue
            if workspace.state == "STARTING":
                workspace.describes_until_available -= 1
                if workspace.describes_until_available <= 0:
                    workspace.state = "AVAILABLE"
            if workspace.state == "SUSPENDED":
                # Time passes while the WorkSpace is imaged: its image moves on.
                for image in list(self.images.values()):
                    if image.workspace_id == workspace.workspace_id:
                        self._advance(image)
            if workspace.settles_after is not None:
                # Busy (rebuilding, in maintenance, being modified) for a number of describes.
                workspace.settles_after -= 1
                if workspace.settles_after <= 0:
                    workspace.state, workspace.modifications = "AVAILABLE", []
                    workspace.settles_after = None
            found.append(
                {
                    "WorkspaceId": workspace.workspace_id,
                    "State": workspace.state,
                    "RootVolumeEncryptionEnabled": workspace.root_encrypted,
                    "UserVolumeEncryptionEnabled": workspace.user_encrypted,
                    "ModificationStates": workspace.modifications,
                    "IpAddress": workspace.ip_address,
                }
            )
        return self._page(found, params, "Workspaces")

    def _each_workspace(
        self, requests: list[dict[str, str]], needs: str, then: Any
    ) -> dict[str, Any]:
        """Start or reboot: `then(workspace)` for each one in state `needs`, else a
        FailedRequests entry as the service reports it."""
        failed = []
        for request in requests:
            workspace = self.workspaces.get(request["WorkspaceId"])
            if workspace is None or workspace.state != needs:
                failed.append(
                    {
                        "WorkspaceId": request["WorkspaceId"],
                        "ErrorCode": f"InvalidResourceState.WorkspaceNot{needs.title()}",
                        "ErrorMessage": f"The WorkSpace is not {needs}.",
                    }
                )
                continue
            then(workspace)
        return {"FailedRequests": failed}

    def _op_StartWorkspaces(self, params: dict[str, Any]) -> dict[str, Any]:
        def start(workspace: Workspace) -> None:
            workspace.state, workspace.describes_until_available = "STARTING", 2

        return self._each_workspace(params["StartWorkspaceRequests"], "STOPPED", start)

    def _op_RebootWorkspaces(self, params: dict[str, Any]) -> dict[str, Any]:
        def reboot(workspace: Workspace) -> None:
            workspace.state, workspace.settles_after = "REBOOTING", 2
            workspace.reboots += 1

        return self._each_workspace(params["RebootWorkspaceRequests"], "AVAILABLE", reboot)

    # ----- images -----------------------------------------------------------------------
    def _image_view(self, image: Image) -> dict[str, Any]:
        view: dict[str, Any] = {
            "ImageId": image.image_id,
            "Name": image.name,
            "Description": image.description,
            "State": image.state,
            "OperatingSystem": {"Type": "LINUX"},
            "Created": image.created,
            "OwnerAccountId": image.owner_account,
        }
        if image.state == "ERROR":
            view["ErrorCode"] = image.error_code
            view["ErrorMessage"] = image.error_message
        return view

    def _op_CreateWorkspaceImage(self, params: dict[str, Any]) -> dict[str, Any]:
        workspace = self.workspaces.get(params["WorkspaceId"])
        if workspace is None:
            raise ServiceError("ResourceNotFoundException", "The WorkSpace was not found.")
        if workspace.root_encrypted or workspace.user_encrypted:
            raise ServiceError(
                "OperationNotSupportedException", "Encrypted WorkSpaces cannot be imaged."
            )
        busy = [m for m in workspace.modifications if m["State"] != "UPDATE_FAILED"]
        if workspace.state != "AVAILABLE" or busy:
            raise ServiceError(
                "InvalidResourceStateException", f"The WorkSpace is {workspace.state}."
            )
        if any(i.name == params["Name"] for i in self.images.values()):
            raise ServiceError("ResourceAlreadyExistsException", "An image with this name exists.")
        if len(self.images) >= self.image_quota:
            raise ServiceError(
                "ResourceLimitExceededException", "The image quota for this Region is reached."
            )
        outcome, code, message = self.next_outcome
        self.next_outcome = ("AVAILABLE", "", "")
        image = Image(
            self._new_id("wsi"),
            params["Name"],
            params["Description"],
            workspace.workspace_id,
            polls_left=self.image_polls,
            outcome=outcome,
            error_code=code,
            error_message=message,
            created=datetime(2026, 11, 27, tzinfo=UTC) + timedelta(minutes=len(self.calls)),
        )
        self.images[image.image_id] = image
        self.tags[image.image_id] = {t["Key"]: t.get("Value", "") for t in params.get("Tags", [])}
        workspace.state = "SUSPENDED"
        view = self._image_view(image)
        view.pop("ErrorCode", None)
        return {**view, "RequiredTenancy": "DEFAULT"}

    def _advance(self, image: Image) -> None:
        if image.state != "PENDING":
            return
        image.polls_left -= 1
        if image.polls_left <= 0:
            image.state = image.outcome
            workspace = self.workspaces.get(image.workspace_id)
            if workspace is not None and workspace.state == "SUSPENDED":
                workspace.state = "AVAILABLE"

    def _op_DescribeWorkspaceImages(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("ImageIds")
        found = []
        for image in self.images.values():
            if wanted and image.image_id not in wanted:
                continue
            if wanted:
                self._advance(image)
            found.append(self._image_view(image))
        return self._page(found, params, "Images")

    def _op_DescribeImageAssociations(self, params: dict[str, Any]) -> dict[str, Any]:
        image = self.images.get(params["ImageId"])
        if image is None:
            raise ServiceError("ResourceNotFoundException", "The image was not found.")
        return {
            "Associations": [
                {
                    "AssociatedResourceId": app,
                    "AssociatedResourceType": "APPLICATION",
                    "ImageId": image.image_id,
                    "State": "COMPLETED",
                }
                for app in image.associations
            ]
        }

    def _op_DescribeWorkspaceImagePermissions(self, params: dict[str, Any]) -> dict[str, Any]:
        image = self.images.get(params["ImageId"])
        if image is None:
            raise ServiceError("ResourceNotFoundException", "The image was not found.")
        permissions = [{"SharedAccountId": account} for account in image.shared_with]
        return {"ImageId": image.image_id, **self._page(permissions, params, "ImagePermissions")}

    def _op_DeleteWorkspaceImage(self, params: dict[str, Any]) -> dict[str, Any]:
        image = self.images.get(params["ImageId"])
        if image is None:
            return {}  # Not documented; the library checks existence first.
        if image.state == "PENDING":
            raise ServiceError("InvalidResourceStateException", "The image is PENDING.")
        if any(b.image_id == image.image_id for b in self.bundles.values()):
            raise ServiceError("ResourceAssociatedException", "A bundle uses the image.")
        if image.shared_with or image.associations:
            raise ServiceError("ResourceAssociatedException", "The image is shared or associated.")
        del self.images[image.image_id]
        self.tags.pop(image.image_id, None)
        return {}

    # ----- bundles ---------------------------------------------------------------------
    def _bundle_view(self, bundle: Bundle) -> dict[str, Any]:
        return {
            "BundleId": bundle.bundle_id,
            "Name": bundle.name,
            "Owner": ACCOUNT,
            "Description": bundle.description,
            "ImageId": bundle.image_id,
            "ComputeType": {"Name": bundle.compute_type},
            "RootStorage": {"Capacity": bundle.root_gib},
            "UserStorage": {"Capacity": bundle.user_gib},
            "State": "AVAILABLE",
            "BundleType": "REGULAR",
        }

    def _op_CreateWorkspaceBundle(self, params: dict[str, Any]) -> dict[str, Any]:
        if any(b.name == params["BundleName"] for b in self.bundles.values()):
            raise ServiceError("ResourceAlreadyExistsException", "A bundle with this name exists.")
        image = self.images.get(params["ImageId"])
        if image is None:
            raise ServiceError("ResourceNotFoundException", "The image was not found.")
        if image.state != "AVAILABLE":
            raise ServiceError("ResourceUnavailableException", "The image is not AVAILABLE.")
        bundle = Bundle(
            self._new_id("wsb"),
            params["BundleName"],
            params["BundleDescription"],
            params["ImageId"],
            params["ComputeType"]["Name"],
            params.get("RootStorage", {}).get("Capacity", "80"),
            params["UserStorage"]["Capacity"],
        )
        self.bundles[bundle.bundle_id] = bundle
        self.tags[bundle.bundle_id] = {t["Key"]: t.get("Value", "") for t in params.get("Tags", [])}
        return {"WorkspaceBundle": self._bundle_view(bundle)}

    def _op_DescribeWorkspaceBundles(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("BundleIds")
        found = [
            self._bundle_view(b)
            for b in self.bundles.values()
            if not wanted or b.bundle_id in wanted
        ]
        return self._page(found, params, "Bundles")

    def _op_UpdateWorkspaceBundle(self, params: dict[str, Any]) -> dict[str, Any]:
        bundle = self.bundles.get(params.get("BundleId", ""))
        if bundle is None:
            raise ServiceError("ResourceNotFoundException", "The bundle was not found.")
        image = self.images.get(params.get("ImageId", ""))
        if image is None or image.state != "AVAILABLE":
            raise ServiceError("ResourceUnavailableException", "The image is not AVAILABLE.")
        bundle.image_id = image.image_id
        return {}

    def _op_DeleteWorkspaceBundle(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.bundles.pop(params.get("BundleId", ""), None) is None:
            raise ServiceError("ResourceNotFoundException", "The bundle was not found.")
        self.tags.pop(params["BundleId"], None)
        return {}

    # ----- tags -------------------------------------------------------------------------
    def _exists(self, resource_id: str) -> bool:
        return (
            resource_id in self.images
            or resource_id in self.bundles
            or resource_id in self.workspaces
        )

    def _op_DescribeTags(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self._exists(params["ResourceId"]):
            raise ServiceError("ResourceNotFoundException", "The resource was not found.")
        tags = self.tags[params["ResourceId"]]
        return {"TagList": [{"Key": k, "Value": v} for k, v in tags.items()]}

    def _op_CreateTags(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self._exists(params["ResourceId"]):
            raise ServiceError("ResourceNotFoundException", "The resource was not found.")
        tags = self.tags[params["ResourceId"]]
        tags.update({t["Key"]: t.get("Value", "") for t in params["Tags"]})
        if len(tags) > 50:
            raise ServiceError("ResourceLimitExceededException", "At most 50 tags.")
        return {}

    def _op_DeleteTags(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self._exists(params["ResourceId"]):
            raise ServiceError("ResourceNotFoundException", "The resource was not found.")
        for key in params["TagKeys"]:
            self.tags[params["ResourceId"]].pop(key, None)
        return {}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(value)


def check_request(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    """What AWS checks and botocore does not: enum, pattern and max of every member."""
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            if isinstance(value, dict) and name in value:
                check_request(member, value[name], f"{path}.{name}", problems)
        return
    if isinstance(shape, ListShape):
        maximum = shape.metadata.get("max")
        if maximum is not None and len(value) > maximum:
            problems.append(f"{path}: at most {maximum} items")
        for index, item in enumerate(value):
            check_request(shape.member, item, f"{path}[{index}]", problems)
        return
    if shape.type_name != "string" or not isinstance(value, str):
        return
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        problems.append(f"{path}: {value!r} is not one of {enum}")
    maximum = shape.metadata.get("max")
    if maximum is not None and len(value) > maximum:
        problems.append(f"{path}: longer than {maximum}")
    pattern = shape.metadata.get("pattern")
    if pattern and not re.search(pattern, value):
        problems.append(f"{path}: {value!r} does not match {pattern}")
