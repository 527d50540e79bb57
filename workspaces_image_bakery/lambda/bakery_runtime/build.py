"""The image build request that the custom resource hands to the build workflow."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .properties import ImageProperties

# The workflow gives up this long before CloudFormation's WaitCondition times out, so the
# stack event carries the workflow's own reason instead of a bare timeout.
DEADLINE_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class BuildRequest:
    """Everything the workflow steps need; travels as the execution input's "Build"."""

    image_name: str
    description: str
    template_workspace_id: str
    persona: str
    tags: dict[str, str]
    owner: str
    deadline: int
    bound_seconds: int
    wait_handle: str

    @classmethod
    def for_image(
        cls, props: ImageProperties, owner: str, now: float | None = None
    ) -> BuildRequest:
        start = int(time.time() if now is None else now)
        return cls(
            image_name=props.image_name,
            description=props.description,
            template_workspace_id=props.template_workspace_id,
            persona=props.persona,
            tags=dict(props.tags),
            owner=owner,
            deadline=start + props.build_timeout_seconds - DEADLINE_MARGIN_SECONDS,
            bound_seconds=props.build_timeout_seconds,
            wait_handle=props.wait_handle,
        )

    def to_input(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_input(cls, data: Mapping[str, Any]) -> BuildRequest:
        return cls(
            image_name=str(data["image_name"]),
            description=str(data["description"]),
            template_workspace_id=str(data["template_workspace_id"]),
            persona=str(data["persona"]),
            tags={str(k): str(v) for k, v in dict(data["tags"]).items()},
            owner=str(data["owner"]),
            deadline=int(data["deadline"]),
            bound_seconds=int(data["bound_seconds"]),
            wait_handle=str(data["wait_handle"]),
        )
