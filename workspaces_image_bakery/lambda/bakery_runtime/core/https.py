"""One PUT to a pre-signed URL: a WaitCondition handle or a custom resource's ResponseURL.
The URL is a credential: errors name its host only."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request

from .errors import BuildFailed, TransientError


def put(url: str, body: bytes, *, what: str) -> None:
    """PUT `body` to a pre-signed URL (signed with an empty Content-Type) of `what`.

    Every failure a later attempt may fix (a dropped or reset connection, a response that
    never came, a 5xx) is a TransientError, which the workflow retries; a 4xx (an expired
    or deleted handle) is not.
    """
    host = urllib.parse.urlsplit(url).hostname
    request = urllib.request.Request(  # noqa: S310 - callers check the URL first
        url, data=body, method="PUT", headers={"Content-Type": ""}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code in (408, 429):
            raise TransientError(f"could not reach {what} at {host}: HTTP {error.code}") from None
        raise BuildFailed(
            f"{what} at {host} refused the answer (HTTP {error.code}); its stack operation "
            "has probably ended"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        # URLError wraps refused and unresolved connections; a reset connection or a closed
        # one without a response (RemoteDisconnected) comes as OSError or HTTPException.
        reason = getattr(error, "reason", None) or type(error).__name__
        raise TransientError(f"could not reach {what} at {host}: {reason}") from None
