"""Publishes each build's end: an EventBridge event on the default bus and CloudWatch metrics.

The event (source ``workspaces-image-bakery``, detail-type ``Image Build Succeeded`` or
``Image Build Failed``) carries the stack, persona, image name, version, image id when
known, duration and reason. The metrics (namespace ``WorkSpacesImageBakery``) are
``BuildDuration`` (seconds) and ``BuildFailed`` (count: 1 or 0) per persona, and
``BuildFailed`` per stack for the stack's alarm.

Publishing never fails a build: an error is logged and the build goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from ..core import contract as c
from ..core.aws import stack_name
from .request import DEADLINE_MARGIN_SECONDS, BuildRequest

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef

    from ..core.aws import Clients

logger = logging.getLogger(__name__)

# EventBridge allows 256 KB per entry; the reason is kept readable.
MAX_REASON_CHARS = 4000


def started_at(build: BuildRequest) -> float:
    """When the image resource started the build (BuildRequest.for_image's deadline)."""
    return float(build.deadline - build.bound_seconds + DEADLINE_MARGIN_SECONDS)


def build_end_detail(
    build: BuildRequest,
    *,
    stack_id: str,
    succeeded: bool,
    now: float,
    image_id: str = "",
    reason: str = "",
    execution: str = "",
) -> dict[str, Any]:
    """The event's detail: what an operator needs to know about the build that ended."""
    detail: dict[str, Any] = {
        "stack": stack_name(stack_id),
        "stackId": stack_id,
        "persona": build.persona,
        "imageName": build.image_name,
        "version": build.tags.get(c.VERSION_TAG_KEY, ""),
        "durationSeconds": max(0, round(now - started_at(build))),
        "outcome": "SUCCEEDED" if succeeded else "FAILED",
        "reason": reason[:MAX_REASON_CHARS],
    }
    if image_id:
        detail["imageId"] = image_id
    if execution:
        detail["execution"] = execution
    return detail


def publish_build_end(
    clients: Clients,
    build: BuildRequest,
    *,
    stack_id: str,
    succeeded: bool,
    now: float,
    image_id: str = "",
    reason: str = "",
    execution: str = "",
) -> bool:
    """PutEvents and PutMetricData for one build's end; False (logged) when either failed."""
    detail = build_end_detail(
        build,
        stack_id=stack_id,
        succeeded=succeeded,
        now=now,
        image_id=image_id,
        reason=reason,
        execution=execution,
    )
    published = True
    try:
        answer = clients.events.put_events(
            Entries=[
                {
                    "Source": c.EVENT_SOURCE,
                    "DetailType": c.DETAIL_TYPE_SUCCEEDED if succeeded else c.DETAIL_TYPE_FAILED,
                    "Detail": json.dumps(detail, sort_keys=True),
                    "Resources": [stack_id],
                    "Time": dt.datetime.fromtimestamp(now, dt.UTC),
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            entry = answer.get("Entries", [{}])[0]
            logger.warning(
                "build-end event not published: %s %s",
                entry.get("ErrorCode"),
                entry.get("ErrorMessage"),
            )
            published = False
    except Exception as error:  # publishing must never fail the build
        logger.warning("build-end event not published: %s", error)
        published = False
    persona: list[DimensionTypeDef] = [{"Name": c.DIMENSION_PERSONA, "Value": build.persona}]
    stack: list[DimensionTypeDef] = [{"Name": c.DIMENSION_STACK, "Value": detail["stack"]}]
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    failed = 0.0 if succeeded else 1.0
    try:
        clients.cloudwatch.put_metric_data(
            Namespace=c.METRIC_NAMESPACE,
            MetricData=[
                {
                    "MetricName": c.METRIC_BUILD_DURATION,
                    "Dimensions": persona,
                    "Timestamp": at,
                    "Value": float(detail["durationSeconds"]),
                    "Unit": "Seconds",
                },
                {
                    "MetricName": c.METRIC_BUILD_FAILED,
                    "Dimensions": persona,
                    "Timestamp": at,
                    "Value": failed,
                    "Unit": "Count",
                },
                {
                    "MetricName": c.METRIC_BUILD_FAILED,
                    "Dimensions": stack,
                    "Timestamp": at,
                    "Value": failed,
                    "Unit": "Count",
                },
            ],
        )
    except Exception as error:  # publishing must never fail the build
        logger.warning("build metrics not published: %s", error)
        published = False
    return published
