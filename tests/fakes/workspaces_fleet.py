"""The WorkSpaces fake with users' WorkSpaces: created from a bundle, connected or not, and
rebuilt onto the bundle's current image (``RebuildWorkspaces``).

As the service documents (API reference, checked 2026-11-27): ``RebuildWorkspaces`` takes
one WorkSpace per request (botocore's model: 1 item) and rebuilds only a WorkSpace that is
AVAILABLE, ERROR, UNHEALTHY, STOPPED or REBOOTING; any other is answered with a
``FailedRequests`` entry (WorkspaceId, ErrorCode, ErrorMessage), not an error. A rebuilt
WorkSpace is REBUILDING for a few describes, then AVAILABLE (or what the test set).
``DescribeWorkspaces`` filters by one of WorkspaceIds, BundleId, DirectoryId or UserName.
``DescribeWorkspacesConnectionStatus`` takes up to 25 ids and answers, per WorkSpace,
``ConnectionState`` and ``LastKnownUserConnectionTimestamp``. ``DescribeWorkspaceSnapshots``
takes one ``WorkspaceId`` and answers ``RebuildSnapshots`` and ``RestoreSnapshots``, lists of
``{"SnapshotTime": timestamp}`` (botocore's model, checked 2026-11-27). When AWS takes the
snapshots is not modelled: a test sets each WorkSpace's times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .workspaces_service import Bundle, FakeWorkSpaces, Image, ServiceError

REBUILDABLE = frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "REBOOTING"})
DIRECTORY = "d-1234567890"
# By default a user last connected before the WorkSpace's latest rebuild snapshot.
LAST_CONNECTED = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
SNAPSHOT_TAKEN = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


@dataclass
class UserWorkspace:
    """What the service knows of a user's WorkSpace beyond the base fake's state."""

    workspace_id: str
    bundle_id: str
    user: str
    connection: str = "DISCONNECTED"
    image_id: str = ""
    rebuilds: int = 0
    rebuild_polls: int = 2
    polls_left: int = 0
    # How the next rebuild ends: AVAILABLE, ERROR, UNHEALTHY.
    rebuild_outcome: str = "AVAILABLE"
    # A FailedRequests answer for the next rebuild: (ErrorCode, ErrorMessage).
    refuse: tuple[str, str] | None = None
    # LastKnownUserConnectionTimestamp (None: not answered) and the rebuild snapshots' times.
    last_connected: datetime | None = LAST_CONNECTED
    rebuild_snapshots: list[datetime] = field(default_factory=lambda: [SNAPSHOT_TAKEN])


class FakeWorkSpacesFleet(FakeWorkSpaces):
    """:class:`FakeWorkSpaces` plus users' WorkSpaces created from its bundles."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fleet: dict[str, UserWorkspace] = {}
        self.rebuilt: list[str] = []  # every WorkSpace id RebuildWorkspaces accepted, in order
        # Called with the WorkSpace id before each RebuildWorkspaces request is answered.
        self.on_rebuild: Callable[[str], None] | None = None

    # ----- set-up helpers ---------------------------------------------------------------
    def add_bundle(
        self, image_name: str = "persona-1.0.0-00000000", bundle_id: str | None = None
    ) -> str:
        """A bundle on a new AVAILABLE image; returns the bundle id."""
        image = Image(self._new_id("wsi"), image_name, "image", "ws-template00")
        image.state = "AVAILABLE"
        self.images[image.image_id] = image
        bundle = Bundle(
            bundle_id or self._new_id("wsb"),
            "persona-abcdef",
            "bundle",
            image.image_id,
            "STANDARD",
            "80",
            "10",
        )
        self.bundles[bundle.bundle_id] = bundle
        return bundle.bundle_id

    def new_image(self, bundle_id: str, image_name: str = "persona-1.1.0-11111111") -> str:
        """A new AVAILABLE image the bundle now uses (UpdateWorkspaceBundle)."""
        image = Image(self._new_id("wsi"), image_name, "image", "ws-template00")
        image.state = "AVAILABLE"
        self.images[image.image_id] = image
        self.bundles[bundle_id].image_id = image.image_id
        return image.image_id

    def add_user_workspaces(
        self,
        bundle_id: str,
        count: int,
        *,
        state: str = "AVAILABLE",
        connection: str = "DISCONNECTED",
    ) -> list[str]:
        """`count` WorkSpaces created from the bundle's current image."""
        ids = []
        for _ in range(count):
            workspace_id = f"ws-{next(self._ids):09d}u"
            self.add_workspace(workspace_id, state=state)
            self.fleet[workspace_id] = UserWorkspace(
                workspace_id,
                bundle_id,
                f"user{len(self.fleet) + 1}",
                connection=connection,
                image_id=self.bundles[bundle_id].image_id,
            )
            ids.append(workspace_id)
        return ids

    def on_image(self, image_id: str) -> list[str]:
        return [w.workspace_id for w in self.fleet.values() if w.image_id == image_id]

    # ----- WorkSpaces ---------------------------------------------------------------------
    def _tick(self, workspace_id: str) -> None:
        """Time passes for a WorkSpace being rebuilt."""
        user = self.fleet.get(workspace_id)
        workspace = self.workspaces.get(workspace_id)
        if user is None or workspace is None or workspace.state != "REBUILDING":
            return
        user.polls_left -= 1
        if user.polls_left <= 0:
            workspace.state = user.rebuild_outcome
            user.rebuild_outcome = "AVAILABLE"

    def _op_DescribeWorkspaces(self, params: dict[str, Any]) -> dict[str, Any]:
        filters = [
            k for k in ("WorkspaceIds", "BundleId", "DirectoryId", "UserName") if k in params
        ]
        if len(filters) > 1:
            raise ServiceError(
                "InvalidParameterValuesException",
                "You can specify only one filter: WorkspaceIds, BundleId, DirectoryId or UserName.",
            )
        if "BundleId" in params:
            wanted = [w for w, u in self.fleet.items() if u.bundle_id == params["BundleId"]]
        elif "UserName" in params:
            wanted = [w for w, u in self.fleet.items() if u.user == params["UserName"]]
        else:
            wanted = list(params.get("WorkspaceIds") or self.workspaces)
        wanted = [w for w in wanted if w in self.workspaces]
        for workspace_id in wanted:
            self._tick(workspace_id)
        views: list[dict[str, Any]] = []
        if wanted:
            # Every view from the base fake (its states move on), then this call's page.
            page_size, self.page_size = self.page_size, len(wanted)
            try:
                views = super()._op_DescribeWorkspaces(
                    {"WorkspaceIds": wanted, "Limit": len(wanted)}
                )["Workspaces"]
            finally:
                self.page_size = page_size
        for view in views:
            user = self.fleet.get(view["WorkspaceId"])
            if user is not None:
                view.update(BundleId=user.bundle_id, UserName=user.user, DirectoryId=DIRECTORY)
        return self._page(views, params, "Workspaces")

    def _op_RebuildWorkspaces(self, params: dict[str, Any]) -> dict[str, Any]:
        failed = []
        for request in params["RebuildWorkspaceRequests"]:
            workspace_id = request["WorkspaceId"]
            if self.on_rebuild is not None:
                self.on_rebuild(workspace_id)
            workspace = self.workspaces.get(workspace_id)
            user = self.fleet.get(workspace_id)
            if workspace is None or user is None:
                failed.append(
                    {
                        "WorkspaceId": workspace_id,
                        "ErrorCode": "ResourceNotFound.Workspace",
                        "ErrorMessage": "The WorkSpace was not found.",
                    }
                )
                continue
            if user.refuse is not None:
                code, message = user.refuse
                user.refuse = None
                failed.append(
                    {"WorkspaceId": workspace_id, "ErrorCode": code, "ErrorMessage": message}
                )
                continue
            if workspace.state not in REBUILDABLE:
                failed.append(
                    {
                        "WorkspaceId": workspace_id,
                        "ErrorCode": "InvalidResourceState",
                        "ErrorMessage": f"The WorkSpace is {workspace.state}.",
                    }
                )
                continue
            workspace.state = "REBUILDING"
            user.polls_left = user.rebuild_polls
            user.rebuilds += 1
            user.image_id = self.bundles[user.bundle_id].image_id
            user.connection = "DISCONNECTED"
            self.rebuilt.append(workspace_id)
        return {"FailedRequests": failed}

    def _op_DescribeWorkspacesConnectionStatus(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("WorkspaceIds") or list(self.fleet)
        found = []
        for workspace_id in wanted:
            user = self.fleet.get(workspace_id)
            if user is None:
                continue
            status: dict[str, Any] = {
                "WorkspaceId": workspace_id,
                "ConnectionState": user.connection,
            }
            if user.last_connected is not None:
                status["LastKnownUserConnectionTimestamp"] = user.last_connected
            found.append(status)
        return self._page(found, params, "WorkspacesConnectionStatus")

    def _op_DescribeWorkspaceSnapshots(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.fleet.get(params["WorkspaceId"])
        if user is None or params["WorkspaceId"] not in self.workspaces:
            raise ServiceError(
                "ResourceNotFoundException", f"The WorkSpace {params['WorkspaceId']} was not found."
            )
        times = [{"SnapshotTime": t} for t in user.rebuild_snapshots]
        return {"RebuildSnapshots": times, "RestoreSnapshots": times}
