"""The WaitCondition signal: only this stack's handles, every transient failure retried,
never the URL in a message."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from bakery_runtime.core import contract
from bakery_runtime.core.errors import BuildFailed, TransientError
from bakery_runtime.image_build import wait_condition

from .harness.cloudformation import STACK_ID, handle_url

OTHER_STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/Other/3333-4444"


class _Handle(http.server.BaseHTTPRequestHandler):
    """A handle endpoint that answers as told: 200, an HTTP error, a reset or a hang-up."""

    requests: ClassVar[list[dict[str, Any]]] = []
    behaviours: ClassVar[list[str]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        behaviour = self.behaviours.pop(0) if self.behaviours else "200"
        self.requests.append(
            {"path": self.path, "content_type": self.headers.get("Content-Type"), "body": body}
        )
        if behaviour == "reset":
            # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer".
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.close()
            return
        if behaviour == "hang-up":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(int(behaviour))
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def endpoint() -> Iterator[str]:
    _Handle.requests.clear()
    _Handle.behaviours.clear()
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/handle?X-Amz-Signature=secret"
    finally:
        server.shutdown()


def test_signal_is_a_put_with_an_empty_content_type(endpoint: str) -> None:
    wait_condition.http_put(endpoint, wait_condition.signal_body(True, "built", "wsi-0123456789"))
    (request,) = _Handle.requests
    assert request["path"].startswith("/handle?")
    assert not request["content_type"]
    assert json.loads(request["body"]) == {
        "Status": "SUCCESS",
        "Reason": "built",
        "UniqueId": contract.WAIT_SIGNAL_UNIQUE_ID,
        "Data": "wsi-0123456789",
    }


@pytest.mark.parametrize("behaviour", ["reset", "hang-up", "500", "503"])
def test_dropped_connections_and_server_errors_are_transient(endpoint: str, behaviour: str) -> None:
    _Handle.behaviours.append(behaviour)
    with pytest.raises(TransientError) as error:
        wait_condition.http_put(endpoint, b"{}")
    assert "secret" not in str(error.value)
    assert "127.0.0.1" in str(error.value)


@pytest.mark.parametrize("status", ["403", "404"])
def test_a_refused_signal_is_not_retried(endpoint: str, status: str) -> None:
    _Handle.behaviours.append(status)
    with pytest.raises(BuildFailed, match=f"HTTP {status}") as error:
        wait_condition.http_put(endpoint, b"{}")
    assert "secret" not in str(error.value)


def test_an_unreachable_handle_is_transient_and_does_not_show_the_url() -> None:
    url = "http://127.0.0.1:9/handle?X-Amz-Signature=supersecret"
    with pytest.raises(TransientError) as error:
        wait_condition.http_put(url, b"{}")
    assert "supersecret" not in str(error.value)


ENCODED = STACK_ID.replace(":", "%3A")
OREGON_STACK = STACK_ID.replace("us-east-1", "us-west-2")
PARIS_STACK = STACK_ID.replace("us-east-1", "eu-west-3")
BEIJING_STACK = STACK_ID.replace("arn:aws:", "arn:aws-cn:").replace("us-east-1", "cn-north-1")


def _encoded(stack_id: str) -> str:
    return stack_id.replace(":", "%3A")


@pytest.mark.parametrize(
    ("url", "owner"),
    [
        (handle_url("DeveloperImageBuildHandle1234"), STACK_ID),
        # Forms seen in AWS documentation and in the wild: every character encoded, the
        # legacy s3-<region> host, the global host, an extra id before the logical id.
        (
            "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/"
            + ENCODED.replace("/", "%2F")
            + "%2FHandle?Expires=1&AWSAccessKeyId=A&Signature=s",
            STACK_ID,
        ),
        (
            "https://cloudformation-waitcondition-us-west-2.s3-us-west-2.amazonaws.com/"
            f"{_encoded(OREGON_STACK)}/H?x=1",
            OREGON_STACK,
        ),
        (
            "https://cloudformation-waitcondition-eu-west-3.s3.eu-west-3.amazonaws.com/"
            f"{_encoded(PARIS_STACK)}/0a1b2c3d-0000-1111-2222-333344445555/Handle?X-Amz-Signature=s",
            PARIS_STACK,
        ),
        # The same bucket path-style, and the China partition's suffix.
        (
            "https://s3.us-east-1.amazonaws.com/cloudformation-waitcondition-us-east-1/"
            f"{ENCODED}/Handle?X-Amz-Signature=s",
            STACK_ID,
        ),
        (
            "https://cloudformation-waitcondition-cn-north-1.s3.cn-north-1.amazonaws.com.cn/"
            f"{_encoded(BEIJING_STACK)}/Handle?X-Amz-Signature=s",
            BEIJING_STACK,
        ),
    ],
)
def test_handles_of_this_stack_are_accepted(url: str, owner: str) -> None:
    wait_condition.check_handle(url, owner)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (
            f"https://cloudformation-waitcondition-attacker.s3.amazonaws.com/{ENCODED}/H",
            "a bucket anyone can create with CloudFormation's prefix",
        ),
        (
            f"https://cloudformation-waitcondition-us-west-2.s3.us-west-2.amazonaws.com/{ENCODED}/H",
            "CloudFormation's bucket of another Region",
        ),
        (
            f"https://cloudformation-waitcondition-us-east-1.s3.evil.amazonaws.com/{ENCODED}/H",
            "an S3-looking host that is not an S3 endpoint of the Region",
        ),
        (
            f"https://cloudformation-waitcondition-us-east-1-x.s3.us-east-1.amazonaws.com/{ENCODED}/H",
            "a bucket whose name starts like CloudFormation's",
        ),
        (
            f"https://s3.us-east-1.amazonaws.com/cloudformation-waitcondition-attacker/{ENCODED}/H",
            "another bucket path-style",
        ),
        (
            f"https://s3.us-east-1.amazonaws.com/{ENCODED}/H",
            "an S3 endpoint without the bucket",
        ),
        (
            f"https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com:8443/{ENCODED}/H",
            "another port",
        ),
        (
            f"https://u:p@cloudformation-waitcondition-us-east-1.s3.amazonaws.com/{ENCODED}/H",
            "credentials in the URL",
        ),
        (
            "https://cloudformation-waitcondition-us-east-1.s3.us-east-1.amazonaws.com.cn/"
            f"{ENCODED}/H",
            "the China partition's suffix for a stack of the aws partition",
        ),
    ],
)
def test_only_cloudformations_bucket_of_the_stacks_region_is_signalled(url: str, why: str) -> None:
    """Proves the host is pinned: before, any cloudformation-waitcondition-<anything> bucket
    on any *.s3*.amazonaws.com host passed, so a bucket anyone can create (or the bucket of
    another Region) received the build's signal. Now only the stack's own Region's bucket
    does, virtual-hosted or path-style, on the default https port."""
    sent: list[bytes] = []
    with pytest.raises(BuildFailed, match="not a WaitCondition handle of this stack") as refused:
        wait_condition.signal(
            url,
            owner=STACK_ID,
            success=True,
            reason=why,
            data="wsi-0123456789",
            send=lambda _url, body: sent.append(body),
        )
    assert sent == []
    assert "cloudformation-waitcondition-us-east-1" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (handle_url("Handle", stack_id=OTHER_STACK), "another stack's handle"),
        (handle_url("Handle").replace("https://", "http://"), "not https"),
        (
            f"https://attacker.example/{STACK_ID}/Handle",
            "not CloudFormation's wait-condition host",
        ),
        (
            f"https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com.attacker.example/"
            f"{STACK_ID}/H",
            "a look-alike host",
        ),
        (
            f"https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/{STACK_ID}2/H",
            "a stack whose id starts like this one's",
        ),
    ],
)
def test_anything_else_is_never_sent_anything(url: str, why: str) -> None:
    sent: list[bytes] = []
    with pytest.raises(BuildFailed, match="not a WaitCondition handle of this stack"):
        wait_condition.signal(
            url,
            owner=STACK_ID,
            success=True,
            reason=why,
            data="wsi-0123456789",
            send=lambda _url, body: sent.append(body),
        )
    assert sent == []
