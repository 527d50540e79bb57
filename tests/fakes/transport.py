"""What the fakes share: their boto3 session, a botocore response built from bytes,
answered at before-send."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.model import ServiceModel


@functools.cache
def session(region: str) -> boto3.session.Session:
    """The fakes' one session per Region (a session registers botocore's ~130 built-in
    handlers, some 30 ms; each fake world made several). A fake's answers are registered on
    its client's own event system, which each client copies from the session, so clients of
    one session never see each other's fakes."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )


@functools.cache
def service_model(service: str) -> ServiceModel:
    """`service`'s botocore model: what a fake validates and answers with."""
    client: Any = session("us-east-1").client(service)  # type: ignore[call-overload]
    model: ServiceModel = client.meta.service_model
    return model


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


def throttle(client: Any, operation: str, times: int) -> None:
    """The next `times` calls of `operation` on `client` are throttled, as AWS does under load.

    Registered ahead of moto or a fake, so later calls reach them; botocore parses the
    error from the service's own protocol (JSON for Step Functions, XML for CloudFormation).
    """
    service = client.meta.service_model
    event = f"before-send.{service.service_id.hyphenize()}.{operation}"
    left = [times]

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if left[0] <= 0:
            return None
        left[0] -= 1
        if service.protocol == "query":
            body = (
                b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                b"<Message>Rate exceeded</Message></Error><RequestId>fake</RequestId>"
                b"</ErrorResponse>"
            )
            return response(request.url, 400, "text/xml", body)
        body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
        return response(request.url, 400, "application/x-amz-json-1.0", body)

    client.meta.events.register_first(event, answer)
