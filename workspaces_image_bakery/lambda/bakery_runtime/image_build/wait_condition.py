"""Signals a CloudFormation WaitCondition through its handle's pre-signed URL.

The URL is a credential: it is never logged, and errors mention only its host. It arrives
in a workflow's input, which anyone allowed to start an execution can write, so it is
signalled only when it is a WaitCondition handle of the runtime's own stack.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from ..core import contract as c
from ..core.errors import BuildFailed, TransientError

logger = logging.getLogger(__name__)

# CloudFormation shows the Reason in the stack event; keep it readable there.
MAX_REASON_CHARS = 4000
# The handle's host: CloudFormation's wait-condition bucket endpoint in the stack's Region
# (https://cloudformation-waitcondition-<region>.s3[.<region>].amazonaws.com[.cn]/...).
_HANDLE_HOST = re.compile(
    r"^cloudformation-waitcondition-[a-z0-9-]+\.s3([.-][a-z0-9-]+)*\.amazonaws\.com(\.cn)?$"
)

Sender = Callable[[str, bytes], None]


def check_handle(url: str, owner: str) -> None:
    """Raise BuildFailed unless `url` is a WaitCondition handle of the stack `owner`.

    The handle's path is the URL-encoded stack ARN, then the handle's logical id: a handle
    of another stack, or any other URL, is never sent anything.
    """
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parts.path)
    if (
        parts.scheme != "https"
        or not _HANDLE_HOST.match(parts.hostname or "")
        or not path.startswith(f"/{owner}/")
    ):
        raise BuildFailed(
            f"the build's wait handle (host {parts.hostname or 'none'}) is not a WaitCondition "
            "handle of this stack; nothing was signalled. Builds are started by the stack's "
            "image resources only"
        )


def http_put(url: str, body: bytes) -> None:
    """PUT the signal. The pre-signed URL was signed with an empty Content-Type.

    Every failure a later attempt may fix (a dropped or reset connection, a response that
    never came, a 5xx) is a TransientError, which the workflow retries; a 4xx (an expired
    or deleted handle) is not.
    """
    host = urllib.parse.urlsplit(url).hostname
    request = urllib.request.Request(  # noqa: S310 - the URL is a checked CloudFormation handle
        url, data=body, method="PUT", headers={"Content-Type": ""}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code in (408, 429):
            raise TransientError(
                f"could not signal the WaitCondition at {host}: HTTP {error.code}"
            ) from None
        raise BuildFailed(
            f"the WaitCondition at {host} refused the signal (HTTP {error.code}); its stack "
            "operation has probably ended"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        # URLError wraps refused and unresolved connections; a reset connection or a closed
        # one without a response (RemoteDisconnected) comes as OSError or HTTPException.
        reason = getattr(error, "reason", None) or type(error).__name__
        raise TransientError(f"could not signal the WaitCondition at {host}: {reason}") from None


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
