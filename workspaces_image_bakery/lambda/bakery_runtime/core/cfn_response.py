"""Answers CloudFormation for a custom resource, through the event's pre-signed ResponseURL.

The distribution's handler answers CloudFormation itself (no Provider framework), so that
the response URL never enters a Step Functions input or history: it stays in the Lambda
event, which only CloudFormation and the function itself send. The URL is a credential: it
is never logged, and errors name only its host. It is used only when it points at
CloudFormation's custom-resource response bucket of the runtime's own Region
(``cloudformation-custom-resource-response-<region without dashes>``, as AWS's Lambda
guide shows it, "Using AWS Lambda with CloudFormation").
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

from .errors import BuildFailed

# What CloudFormation shows as the Reason; the whole response must stay under 4,096 bytes.
MAX_REASON_CHARS: Final = 1000
# A Create that failed answers with this physical id; the Delete of its rollback is then
# answered at once, touching nothing (the CDK Provider framework does the same).
CREATE_FAILED: Final = "WorkSpacesImageBakery::CREATE_FAILED"
_REGION: Final = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_DNS_SUFFIX: Final = {
    "aws": "amazonaws.com",
    "aws-us-gov": "amazonaws.com",
    "aws-cn": "amazonaws.com.cn",
}

Sender = Callable[[str, bytes], None]


def response_hosts(owner: str) -> frozenset[str]:
    """The hosts that serve CloudFormation's response bucket for the stack `owner`."""
    parts = owner.split(":")
    partition, region = (parts[1], parts[3]) if len(parts) > 5 else ("", "")
    suffix = _DNS_SUFFIX.get(partition)
    if suffix is None or not _REGION.match(region):
        raise BuildFailed("the runtime's stack id names no Region it can answer in")
    bucket = f"cloudformation-custom-resource-response-{region.replace('-', '')}"
    endpoints = (f"s3.{suffix}", f"s3.{region}.{suffix}", f"s3-{region}.{suffix}")
    return frozenset(f"{bucket}.{endpoint}" for endpoint in endpoints)


def check_response_url(url: str, owner: str) -> None:
    """Raise BuildFailed unless `url` is https on CloudFormation's response bucket of the
    stack's Region, on the default port."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise BuildFailed("the event's ResponseURL is not a URL; nothing was answered") from None
    if parts.scheme != "https" or port is not None or parts.hostname not in response_hosts(owner):
        raise BuildFailed(
            f"the event's ResponseURL ({parts.hostname}) is not CloudFormation's response "
            "bucket of this stack's Region; nothing was answered"
        )


def response_body(
    event: Mapping[str, Any],
    *,
    success: bool,
    physical_id: str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
) -> bytes:
    """The response CloudFormation expects (the fields of AWS's cfn-response module)."""
    return json.dumps(
        {
            "Status": "SUCCESS" if success else "FAILED",
            "Reason": reason[:MAX_REASON_CHARS],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": dict(data or {}),
        }
    ).encode()


def answer(
    event: Mapping[str, Any],
    *,
    owner: str,
    send: Sender,
    success: bool,
    physical_id: str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
) -> None:
    url = str(event.get("ResponseURL", ""))
    check_response_url(url, owner)
    send(
        url,
        response_body(event, success=success, physical_id=physical_id, reason=reason, data=data),
    )
