"""What the fakes share: a botocore response built from bytes, answered at before-send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def response(url: str, status: int, content_type: str, body: bytes) -> AWSResponse:
    """An HTTP answer that botocore parses like one from AWS."""
    headers = HTTPHeaders()
    headers["Content-Type"] = content_type
    headers["x-amzn-RequestId"] = "fake"
    return AWSResponse(url, status, headers, _Raw(body))
