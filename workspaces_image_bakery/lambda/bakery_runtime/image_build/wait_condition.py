"""Signals a CloudFormation WaitCondition through its handle's pre-signed URL.

The URL is a credential: it is never logged, and errors mention only its host. It arrives
in a workflow's input, which anyone allowed to start an execution can write, so it is
signalled only when it is a WaitCondition handle of the runtime's own stack.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Callable

from ..core import contract as c
from ..core import https
from ..core.errors import BuildFailed

logger = logging.getLogger(__name__)

# CloudFormation shows the Reason in the stack event; keep it readable there.
MAX_REASON_CHARS = 4000
# A handle is a pre-signed URL of CloudFormation's wait-condition bucket in the stack's own
# Region, cloudformation-waitcondition-<region> (the bucket AWS documents for VPC endpoint
# policies). Its hosts as seen in handles: <bucket>.s3.amazonaws.com,
# <bucket>.s3.<region>.amazonaws.com and <bucket>.s3-<region>.amazonaws.com; the same
# bucket path-style (s3[.-<region>].amazonaws.com/<bucket>/...) is accepted too. The
# Region and partition come from the runtime's own stack id, never from the URL.
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_DNS_SUFFIX = {"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}

Sender = Callable[[str, bytes], None]


def handle_bucket(owner: str) -> tuple[str, frozenset[str], frozenset[str]]:
    """CloudFormation's wait-condition bucket for the stack `owner` (a stack ARN), the hosts
    that serve it virtual-hosted, and the S3 endpoints that serve it path-style."""
    parts = owner.split(":")
    partition, region = (parts[1], parts[3]) if len(parts) > 5 else ("", "")
    suffix = _DNS_SUFFIX.get(partition)
    if suffix is None or not _REGION.match(region):
        raise BuildFailed(
            "the runtime's stack id names no Region this runtime knows a WaitCondition "
            "endpoint for; nothing was signalled"
        )
    bucket = f"cloudformation-waitcondition-{region}"
    endpoints = frozenset({f"s3.{suffix}", f"s3.{region}.{suffix}", f"s3-{region}.{suffix}"})
    return bucket, frozenset(f"{bucket}.{e}" for e in endpoints), endpoints


def check_handle(url: str, owner: str) -> None:
    """Raise BuildFailed unless `url` is a WaitCondition handle of the stack `owner`.

    The host must serve CloudFormation's wait-condition bucket of the stack's own Region
    (:func:`handle_bucket`), over https on the default port; the key is the URL-encoded
    stack ARN, then the handle's logical id. Any other URL, a handle of another stack, or
    one of a bucket anyone could create, is never sent anything.
    """
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parts.path)
    host = (parts.hostname or "").lower()
    bucket, virtual_hosts, path_style_hosts = handle_bucket(owner)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if host in path_style_hosts and path.startswith(f"/{bucket}/"):
        path = path[len(bucket) + 1 :]
    elif host not in virtual_hosts:
        host = ""
    if (
        parts.scheme != "https"
        or not host
        or port not in (None, 443)
        or parts.username is not None
        or not path.startswith(f"/{owner}/")
    ):
        raise BuildFailed(
            f"the build's wait handle (host {parts.hostname or 'none'}) is not a WaitCondition "
            f"handle of this stack (CloudFormation's bucket {bucket}); nothing was signalled. "
            "Builds are started by the stack's image resources only"
        )


def http_put(url: str, body: bytes) -> None:
    """PUT the signal (core/https.py: a 5xx or a lost connection is a TransientError)."""
    https.put(url, body, what="the WaitCondition")


def signal_body(success: bool, reason: str, data: str) -> bytes:
    return json.dumps(
        {
            "Status": "SUCCESS" if success else "FAILURE",
            "Reason": reason[:MAX_REASON_CHARS],
            "UniqueId": c.WAIT_SIGNAL_UNIQUE_ID,
            "Data": data,
        }
    ).encode()


def signal(
    url: str,
    *,
    owner: str,
    success: bool,
    reason: str,
    data: str = "",
    send: Sender = http_put,
) -> None:
    check_handle(url, owner)
    send(url, signal_body(success, reason, data))
    logger.info("signalled the WaitCondition: %s", "SUCCESS" if success else "FAILURE")
