"""A typed view of the custom-resource events the CDK Provider framework passes on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

RequestType = Literal["Create", "Update", "Delete"]


@dataclass(frozen=True)
class ResourceEvent:
    request_type: RequestType
    resource_type: str
    logical_id: str
    stack_id: str
    request_id: str
    physical_id: str | None
    properties: Mapping[str, Any]
    old_properties: Mapping[str, Any]

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> ResourceEvent:
        request_type = event.get("RequestType")
        if request_type not in ("Create", "Update", "Delete"):
            raise ValueError(f"unknown RequestType {request_type!r}")
        return cls(
            request_type=cast(RequestType, request_type),
            resource_type=str(event.get("ResourceType", "")),
            logical_id=str(event.get("LogicalResourceId", "")),
            stack_id=str(event.get("StackId", "")),
            request_id=str(event.get("RequestId", "")),
            physical_id=event.get("PhysicalResourceId"),
            properties=event.get("ResourceProperties", {}),
            old_properties=event.get("OldResourceProperties", {}),
        )

    @property
    def where(self) -> str:
        return f"{self.resource_type} {self.logical_id}"
