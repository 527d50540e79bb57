"""DescribeStacks for the handlers' rollback check, behind a real boto3 client.

CloudFormation speaks the query protocol: the fake answers with the XML that botocore
parses, for the one stack whose status the test harness sets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.awsrequest import AWSResponse

from .transport import response

ENDPOINT = "https://cloudformation.fake.test"
NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


class FakeCloudFormation:
    def __init__(self, stack_id: str) -> None:
        self.stack_id = stack_id
        self.status = "CREATE_IN_PROGRESS"
        self.calls = 0

    def client(self, config: Any = None) -> Any:
        client = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("cloudformation", config=config, endpoint_url=ENDPOINT)
        client.meta.events.register_first(
            "before-send.cloudformation",
            self._on_send,  # type: ignore[arg-type]
        )
        return client

    def _on_send(self, request: Any, **_: Any) -> AWSResponse:
        params = parse_qs(
            request.body.decode() if isinstance(request.body, bytes) else request.body
        )
        assert params["Action"] == ["DescribeStacks"], params
        assert params["StackName"] == [self.stack_id], params
        self.calls += 1
        name = self.stack_id.split("/")[1]
        body = (
            f'<DescribeStacksResponse xmlns="{NAMESPACE}"><DescribeStacksResult><Stacks><member>'
            f"<StackName>{name}</StackName><StackId>{self.stack_id}</StackId>"
            "<CreationTime>2026-11-27T00:00:00Z</CreationTime>"
            f"<StackStatus>{self.status}</StackStatus>"
            "</member></Stacks></DescribeStacksResult>"
            "<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
            "</DescribeStacksResponse>"
        ).encode()
        return response(request.url, 200, "text/xml", body)
