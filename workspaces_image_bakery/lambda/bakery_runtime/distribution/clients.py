"""The distribution handlers' clients: the home Region's, and WorkSpaces in each Region."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import boto3

from ..core.aws import RETRY_CONFIG, Clients

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient


def home_region() -> str:
    """The function's own Region (the stack's), as the Lambda runtime sets it."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")


def _workspaces_in(region: str) -> WorkSpacesClient:
    return boto3.client("workspaces", region_name=region, config=RETRY_CONFIG)


@dataclass
class DistributionClients:
    """The home Region's clients and a WorkSpaces client per Region (tests pass fakes)."""

    base: Clients = field(default_factory=Clients)
    regional: Callable[[str], WorkSpacesClient] = _workspaces_in
    home_region: str = field(default_factory=home_region)
    _cache: dict[str, WorkSpacesClient] = field(default_factory=dict)

    def workspaces(self, region: str) -> WorkSpacesClient:
        if region == self.home_region:
            return self.base.workspaces
        if region not in self._cache:
            self._cache[region] = self.regional(region)
        return self._cache[region]

    def in_region(self, region: str) -> Clients:
        """The home clients with WorkSpaces in `region` (for the bundle handlers)."""
        return replace(self.base, workspaces=self.workspaces(region))
