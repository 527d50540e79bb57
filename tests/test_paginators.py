"""The runtime's list calls page with botocore's paginators, not a loop of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from bakery_runtime.core import workspaces


class PagingOnly:
    """A client that can only page: what the handlers need of it for list calls."""

    def __init__(self, pages: dict[str, list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def get_paginator(self, operation: str) -> PagingOnly.Paginator:
        return PagingOnly.Paginator(self, operation)

    class Paginator:
        def __init__(self, client: PagingOnly, operation: str) -> None:
            self.client, self.operation = client, operation

        def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
            self.client.asked.append((self.operation, kwargs))
            return iter(self.client.pages[self.operation])


def test_the_list_operations_have_paginators() -> None:
    client = boto3.client("workspaces", region_name="eu-west-1")
    assert client.can_paginate("describe_workspace_images")
    assert client.can_paginate("describe_workspace_bundles")


def test_images_and_bundles_are_listed_through_the_paginators() -> None:
    client = PagingOnly(
        {
            "describe_workspace_images": [
                {"Images": [{"ImageId": "wsi-000000001", "Name": "a"}]},
                {"Images": [{"ImageId": "wsi-000000002", "Name": "b"}]},
            ],
            "describe_workspace_bundles": [
                {"Bundles": [{"BundleId": "wsb-00000001", "Name": "b"}]},
                {},
                {"Bundles": [{"BundleId": "wsb-00000002", "Name": "b"}]},
            ],
        }
    )
    images = workspaces.images_named(client, "b")  # type: ignore[arg-type]
    bundles = workspaces.bundles_named(client, "b")  # type: ignore[arg-type]
    assert [i["ImageId"] for i in images] == ["wsi-000000002"]
    assert [b["BundleId"] for b in bundles] == ["wsb-00000001", "wsb-00000002"]
    assert client.asked == [
        ("describe_workspace_images", {"ImageType": "OWNED"}),
        ("describe_workspace_bundles", {}),
    ]
