"""DescribeStacks, DescribeStackResource and DescribeStackEvents for the handlers (their
authentication of each event, their rollback and replacement checks), behind a real boto3
client.

CloudFormation speaks the query protocol: the fake answers with the XML that botocore
parses, for the one stack whose status, resources and events the test harness sets. As
the API reference and botocore's model say: a StackResourceDetail always has
LogicalResourceId, ResourceType, LastUpdatedTimestamp and ResourceStatus, and a
PhysicalResourceId only once CloudFormation knows one (not while a resource is first
created); a logical id the stack does not have is a ValidationError; DescribeStackEvents
lists the newest event first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from botocore.awsrequest import AWSResponse

from .transport import response, session

ENDPOINT = "https://cloudformation.fake.test"
NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


@dataclass(frozen=True)
class StackResource:
    """What DescribeStackResource says of one of the stack's resources."""

    resource_type: str
    status: str
    physical_id: str | None


class FakeCloudFormation:
    def __init__(self, stack_id: str) -> None:
        self.stack_id = stack_id
        self.status = "CREATE_IN_PROGRESS"
        self.calls = 0
        # ListStackResources answers the runtime's state machine (the CLI looks it up).
        self.state_machine_arn: str | None = None
        # ... and the evidence store (the CLI's report reads it).
        self.evidence_bucket: str | None = None
        self.actions: list[str] = []
        # Logical id -> physical id of the stack's resources (the harness sets it).
        self.resources: Callable[[], dict[str, str]] = dict
        # Logical id -> the resource as CloudFormation describes it (the harness sets it);
        # by default each of `resources`, an up-to-date image resource.
        self.describe: Callable[[str], StackResource | None] = self._from_resources
        # The stack's events, oldest first: (logical id, type, status, physical id or "").
        self.events: list[tuple[str, str, str, str]] = []

    def _from_resources(self, logical: str) -> StackResource | None:
        physical = self.resources().get(logical)
        if physical is None:
            return None
        return StackResource("Custom::WorkSpacesImage", "UPDATE_COMPLETE", physical)

    def event(self, logical: str, resource_type: str, status: str, physical: str = "") -> None:
        """Record a stack event (the stack's own: logical id = the stack's name)."""
        self.events.append((logical, resource_type, status, physical))

    def stack_event(self, status: str) -> None:
        name = self.stack_id.split("/")[1]
        self.event(name, "AWS::CloudFormation::Stack", status, self.stack_id)

    def client(self, config: Any = None) -> Any:
        client = session("us-east-1").client("cloudformation", config=config, endpoint_url=ENDPOINT)
        client.meta.events.register_first(
            "before-send.cloudformation",
            self._on_send,  # type: ignore[arg-type]
        )
        return client

    def _on_send(self, request: Any, **_: Any) -> AWSResponse:
        params = parse_qs(
            request.body.decode() if isinstance(request.body, bytes) else request.body
        )
        name = self.stack_id.split("/")[1]
        self.actions.append(params["Action"][0])
        if params["Action"] == ["ListStackResources"]:
            return self._list_stack_resources(request.url, params)
        if params["Action"] == ["DescribeStackResource"]:
            return self._describe_stack_resource(request.url, params)
        if params["Action"] == ["DescribeStackEvents"]:
            return self._describe_stack_events(request.url, params)
        assert params["Action"] == ["DescribeStacks"], params
        if params["StackName"] == [name]:  # by name: the CLI's --stack
            return self._describe(request.url, name)
        if not params["StackName"][0].startswith("arn:"):  # another stack's name
            return self._no_stack(request.url, params["StackName"][0])
        assert params["StackName"] == [self.stack_id], params
        self.calls += 1
        return self._describe(request.url, name)

    def _describe(self, url: str, name: str) -> AWSResponse:
        body = (
            f'<DescribeStacksResponse xmlns="{NAMESPACE}"><DescribeStacksResult><Stacks><member>'
            f"<StackName>{name}</StackName><StackId>{self.stack_id}</StackId>"
            "<CreationTime>2026-11-27T00:00:00Z</CreationTime>"
            f"<StackStatus>{self.status}</StackStatus>"
            "</member></Stacks></DescribeStacksResult>"
            "<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
            "</DescribeStacksResponse>"
        ).encode()
        return response(url, 200, "text/xml", body)

    def _describe_stack_resource(self, url: str, params: dict[str, list[str]]) -> AWSResponse:
        assert params["StackName"] == [self.stack_id], params
        (logical,) = params["LogicalResourceId"]
        resource = self.describe(logical)
        if resource is None:
            body = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>"
                f"<Message>Resource {logical} does not exist for stack {self.stack_id}</Message>"
                "</Error><RequestId>fake</RequestId></ErrorResponse>"
            ).encode()
            return response(url, 400, "text/xml", body)
        body = (
            f'<DescribeStackResourceResponse xmlns="{NAMESPACE}"><DescribeStackResourceResult>'
            f"<StackResourceDetail><StackId>{self.stack_id}</StackId>"
            f"<LogicalResourceId>{escape(logical)}</LogicalResourceId>"
            + (
                f"<PhysicalResourceId>{escape(resource.physical_id)}</PhysicalResourceId>"
                if resource.physical_id is not None
                else ""
            )
            + f"<ResourceType>{escape(resource.resource_type)}</ResourceType>"
            "<LastUpdatedTimestamp>2026-11-27T00:00:00Z</LastUpdatedTimestamp>"
            f"<ResourceStatus>{resource.status}</ResourceStatus>"
            "</StackResourceDetail></DescribeStackResourceResult>"
            "<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
            "</DescribeStackResourceResponse>"
        ).encode()
        return response(url, 200, "text/xml", body)

    def _describe_stack_events(self, url: str, params: dict[str, list[str]]) -> AWSResponse:
        """Every event on one page, newest first (no NextToken)."""
        assert params["StackName"] == [self.stack_id], params
        name = self.stack_id.split("/")[1]
        members = "".join(
            f"<member><StackId>{self.stack_id}</StackId><EventId>e{index}</EventId>"
            f"<StackName>{name}</StackName>"
            f"<LogicalResourceId>{escape(logical)}</LogicalResourceId>"
            + (f"<PhysicalResourceId>{escape(physical)}</PhysicalResourceId>" if physical else "")
            + f"<ResourceType>{escape(kind)}</ResourceType>"
            f"<Timestamp>2026-11-27T00:00:{index % 60:02d}Z</Timestamp>"
            f"<ResourceStatus>{status}</ResourceStatus></member>"
            for index, (logical, kind, status, physical) in reversed(list(enumerate(self.events)))
        )
        body = (
            f'<DescribeStackEventsResponse xmlns="{NAMESPACE}"><DescribeStackEventsResult>'
            f"<StackEvents>{members}</StackEvents></DescribeStackEventsResult>"
            "<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
            "</DescribeStackEventsResponse>"
        ).encode()
        return response(url, 200, "text/xml", body)

    @staticmethod
    def _no_stack(url: str, name: str) -> AWSResponse:
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>"
            f"<Message>Stack with id {name} does not exist</Message>"
            "</Error><RequestId>fake</RequestId></ErrorResponse>"
        ).encode()
        return response(url, 400, "text/xml", body)

    def _list_stack_resources(self, url: str, params: dict[str, list[str]]) -> AWSResponse:
        if params["StackName"] != [self.stack_id]:
            return self._no_stack(url, params["StackName"][0])
        members = [
            ("WorkSpacesImageBakeryRuntimeWorkflowStep0A1B2C3D", "AWS::Lambda::Function", "fn"),
        ]
        if self.state_machine_arn:
            members.append(
                (
                    "WorkSpacesImageBakeryRuntimeImageBuild0A1B2C3D",
                    "AWS::StepFunctions::StateMachine",
                    self.state_machine_arn,
                )
            )
        if self.evidence_bucket:
            members.append(
                (
                    "WorkSpacesImageBakeryRuntimeEvidenceBucket0A1B2C3D",
                    "AWS::S3::Bucket",
                    self.evidence_bucket,
                )
            )
        summaries = "".join(
            f"<member><LogicalResourceId>{logical}</LogicalResourceId>"
            f"<PhysicalResourceId>{physical}</PhysicalResourceId>"
            f"<ResourceType>{kind}</ResourceType>"
            "<LastUpdatedTimestamp>2026-11-27T00:00:00Z</LastUpdatedTimestamp>"
            "<ResourceStatus>CREATE_COMPLETE</ResourceStatus></member>"
            for logical, kind, physical in members
        )
        body = (
            f'<ListStackResourcesResponse xmlns="{NAMESPACE}"><ListStackResourcesResult>'
            f"<StackResourceSummaries>{summaries}</StackResourceSummaries>"
            "</ListStackResourcesResult>"
            "<ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>"
            "</ListStackResourcesResponse>"
        ).encode()
        return response(url, 200, "text/xml", body)
