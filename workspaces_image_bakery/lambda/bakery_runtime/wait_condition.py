"""Signals a CloudFormation WaitCondition through its handle's pre-signed URL.

The URL is a credential: it is never logged, and errors mention only its host.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from . import contract as c
from .errors import TransientError

logger = logging.getLogger(__name__)

# CloudFormation shows the Reason in the stack event; keep it readable there.
MAX_REASON_CHARS = 4000

Sender = Callable[[str, bytes], None]


def http_put(url: str, body: bytes) -> None:
    """PUT the signal. The pre-signed URL was signed with an empty Content-Type."""
    request = urllib.request.Request(  # noqa: S310 - the URL is CloudFormation's https handle
        url, data=body, method="PUT", headers={"Content-Type": ""}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
    except (urllib.error.URLError, TimeoutError) as error:
        host = urllib.parse.urlsplit(url).hostname
        raise TransientError(f"could not signal the WaitCondition at {host}: {error}") from None


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
    url: str, *, success: bool, reason: str, data: str = "", send: Sender = http_put
) -> None:
    send(url, signal_body(success, reason, data))
    logger.info("signalled the WaitCondition: %s", "SUCCESS" if success else "FAILURE")
