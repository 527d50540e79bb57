"""The image build request that the custom resource hands to the build workflow."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..core import contract as c
from ..core.errors import BuildFailed
from ..core.properties import ImageProperties
from ..evidence import store

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The workflow gives up this long before CloudFormation's WaitCondition times out, so the
# stack event carries the workflow's own reason instead of a bare timeout. It is longer
# than the longest Wait between two deadline checks, plus room for the failure signal.
# (The waits for the image are cut to the deadline, so only the fixed waits count.)
DEADLINE_MARGIN_SECONDS = (
    2
    * max(
        c.IMAGE_POLL_SECONDS,
        c.TEMPLATE_POLL_SECONDS,
        c.COMMAND_POLL_SECONDS,
        c.REBOOT_SETTLE_SECONDS,
    )
    + 60
)


@dataclass(frozen=True)
class BuildRequest:
    """Everything the workflow steps need.

    The image resource's function writes it into the evidence store under the execution's
    name (:func:`save`), where only the runtime's roles may write, and the workflow's first
    state reads it back from there (:func:`load`) by the name in the state machine's
    context object: whoever may start an execution can write its input, never this. The
    owner is still the runtime's own configuration (:func:`aws.owner`), and the wait handle
    is still checked to be one of that stack's handles before it is signalled.
    """

    image_name: str
    description: str
    template_workspace_id: str
    persona: str
    tags: dict[str, str]
    deadline: int
    bound_seconds: int
    wait_handle: str
    # The full recipe fingerprint: the marker the preparation leaves in the version file.
    recipe: str = ""
    # Set when the build prepares the template through Run Command (see ImageProperties).
    preparation_script: dict[str, str] | None = None
    managed_node_id: str | None = None
    # The Region's image quota the first step checks (the app's context value). A wrong
    # value only moves where a full Region is reported: AWS enforces the real quota.
    image_quota: int = c.DEFAULT_IMAGE_QUOTA
    # Set when checks run on the prepared template before the image is taken. IAM lets the
    # runtime send only the stack's own script document to the declared nodes, and the
    # document runs only the scripts the stack declares (their digests are its allowed values).
    validation_script: dict[str, str] | None = None
    # The seal script (with the preparation channel): the last command before the image.
    seal_script: dict[str, str] | None = None
    # What the persona declares that the as-built checklist checks (Expectations property).
    expectations: dict[str, Any] | None = None

    @property
    def prepared_in_build(self) -> bool:
        return bool(self.preparation_script and self.managed_node_id)

    @classmethod
    def for_image(cls, props: ImageProperties, now: float | None = None) -> BuildRequest:
        start = int(time.time() if now is None else now)
        return cls(
            image_name=props.image_name,
            description=props.description,
            template_workspace_id=props.template_workspace_id,
            persona=props.persona,
            tags=props.all_tags(),
            deadline=start + props.build_timeout_seconds - DEADLINE_MARGIN_SECONDS,
            bound_seconds=props.build_timeout_seconds,
            wait_handle=props.wait_handle,
            recipe=props.recipe,
            preparation_script=props.preparation_script,
            managed_node_id=props.managed_node_id,
            image_quota=props.image_quota,
            validation_script=props.validation_script,
            expectations=props.expectations,
            seal_script=props.seal_script,
        )

    def to_input(self) -> dict[str, Any]:
        """The execution input; absent preparation keys are left out (the workflow's Choice
        states test whether they are present)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_input(cls, data: Mapping[str, Any]) -> BuildRequest:
        return cls(
            image_name=str(data["image_name"]),
            description=str(data["description"]),
            template_workspace_id=str(data["template_workspace_id"]),
            persona=str(data["persona"]),
            tags={str(k): str(v) for k, v in dict(data["tags"]).items()},
            deadline=int(data["deadline"]),
            bound_seconds=int(data["bound_seconds"]),
            wait_handle=str(data["wait_handle"]),
            recipe=str(data.get("recipe") or ""),
            preparation_script=_script(data.get("preparation_script")),
            managed_node_id=_optional(data.get("managed_node_id")),
            image_quota=int(data.get("image_quota") or c.DEFAULT_IMAGE_QUOTA),
            validation_script=_script(data.get("validation_script")),
            seal_script=_script(data.get("seal_script")),
            expectations=dict(data["expectations"])
            if isinstance(data.get("expectations"), Mapping)
            else None,
        )


def _script(value: Any) -> dict[str, str] | None:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else None


def _optional(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


# The piece of the build's work that holds its request (store.work_key).
REQUEST_PIECE = "request"


def save(s3: S3Client, execution: str, build: BuildRequest) -> None:
    """Keep the request for the execution `execution` (once: a re-sent event keeps the first)."""
    key = store.work_key(execution, REQUEST_PIECE)
    if store.get_json(s3, key) is None:
        store.put_json(s3, key, build.to_input())


def load(s3: S3Client, execution: str) -> BuildRequest:
    """The request the image resource wrote for `execution`; BuildFailed when there is none
    (an execution started by anyone else: it builds nothing and signals nothing)."""
    data = store.get_json(s3, store.work_key(execution, REQUEST_PIECE)) if execution else None
    if not isinstance(data, Mapping):
        raise BuildFailed(
            f"execution {execution!r} has no build request in the evidence store: only the "
            "image resource starts builds, so this execution builds nothing"
        )
    return BuildRequest.from_input(data)
