"""Each build's end is an EventBridge event and CloudWatch metrics (docs/build.md: Build
events, metrics and notifications), published through real boto3 clients that the monitoring
fake answers after botocore validated the request against the service model. Publishing never
fails a build.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from bakery_runtime.core import contract
from bakery_runtime.core.aws import stack_name
from bakery_runtime.image_build import notify
from bakery_runtime.image_build import watch as build_watch
from bakery_runtime.image_build.request import BuildRequest

from .harness.cloudformation import STACK_ID, DeployError, handle_url
from .harness.stacks import two_personas
from .harness.world import World, world

Templates = dict[str, dict[str, Any]]
STACK = "WorkSpacesImageBakery"  # the name in harness.cloudformation.STACK_ID

# The fake image is AVAILABLE at its second look: the first wait, then one short poll.
BUILD_SECONDS = contract.FIRST_IMAGE_WAIT_SECONDS + contract.IMAGE_POLL_SECONDS


@pytest.fixture(scope="module")
def templates() -> Templates:
    return {"v1": two_personas(), "v2": two_personas(developer_version="1.1.0")}


@pytest.fixture
def deployed(templates: Templates) -> Iterator[World]:
    with world(templates["v1"]) as w:
        w.cloudformation.deploy(templates["v1"])
        yield w


def test_a_successful_deploy_publishes_one_event_and_metrics_per_build(deployed: World) -> None:
    m = deployed.monitoring
    succeeded = m.detail(contract.DETAIL_TYPE_SUCCEEDED)
    assert m.detail(contract.DETAIL_TYPE_FAILED) == []
    assert sorted(d["persona"] for d in succeeded) == ["developer", "office"]
    images = deployed.images()
    for detail in succeeded:
        image = images[detail["imageName"]]
        assert detail == {
            "stack": STACK,
            "stackId": STACK_ID,
            "persona": detail["persona"],
            "imageName": detail["imageName"],
            "version": "1.0.0",
            "imageId": image["id"],
            "durationSeconds": BUILD_SECONDS,
            "outcome": "SUCCEEDED",
            "reason": f"image {detail['imageName']} is AVAILABLE",
        }
    for entry in m.events:
        assert entry["Source"] == contract.EVENT_SOURCE
        assert entry["Resources"] == [STACK_ID]
        assert "EventBusName" not in entry  # the default bus
    assert {c for c, _ in m.calls} == {"PutEvents", "PutMetricData"}
    assert {d["Namespace"] for d in m.metrics} == {contract.METRIC_NAMESPACE}
    assert sorted(m.datapoints(contract.METRIC_BUILD_DURATION, contract.DIMENSION_PERSONA)) == [
        ("developer", float(BUILD_SECONDS), "Seconds"),
        ("office", float(BUILD_SECONDS), "Seconds"),
    ]
    assert sorted(m.datapoints(contract.METRIC_BUILD_FAILED, contract.DIMENSION_PERSONA)) == [
        ("developer", 0.0, "Count"),
        ("office", 0.0, "Count"),
    ]
    assert m.datapoints(contract.METRIC_BUILD_FAILED, contract.DIMENSION_STACK) == [
        (STACK, 0.0, "Count"),
        (STACK, 0.0, "Count"),
    ]


def test_a_failed_build_publishes_its_reason(deployed: World, templates: Templates) -> None:
    w = deployed
    w.fake.image_ends_in_error("InsufficientDiskSpace", "Root volume is 98% full")
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(templates["v2"])
    (detail,) = w.monitoring.detail(contract.DETAIL_TYPE_FAILED)
    assert detail["persona"] == "developer"
    assert detail["version"] == "1.1.0"
    assert detail["outcome"] == "FAILED"
    assert detail["imageName"].startswith("developer-1.1.0-")
    assert detail["imageId"].startswith("wsi-")  # the failed image, deleted since
    assert "InsufficientDiskSpace: Root volume is 98% full" in detail["reason"]
    assert detail["reason"] in str(failure.value)
    assert detail["durationSeconds"] == BUILD_SECONDS
    assert w.monitoring.datapoints(contract.METRIC_BUILD_FAILED, contract.DIMENSION_STACK)[-1] == (
        STACK,
        1.0,
        "Count",
    )
    assert (
        w.monitoring.datapoints(contract.METRIC_BUILD_FAILED, contract.DIMENSION_PERSONA)[-1][:2]
    ) == ("developer", 1.0)


def test_the_build_watch_publishes_a_build_that_ended_silently(templates: Templates) -> None:
    with world(templates["v1"]) as w:
        cfn = w.cloudformation
        cfn.deploy(templates["v1"])
        before = len(w.monitoring.events)
        logical = next(k for k in cfn.stack.sent if k.startswith("DeveloperImage"))
        props = {
            **cfn.stack.sent[logical],
            "ImageName": "developer-1.1.0-0000aaaa",
            "WaitHandle": handle_url("DeveloperImageBuildHandleNew"),
        }
        cfn.send_event("Create", "DeveloperImageNew", contract.IMAGE_RESOURCE_TYPE, props)
        (arn,) = cfn.running()
        w.clients.stepfunctions.stop_execution(executionArn=arn)
        event = {
            "detail-type": contract.EXECUTION_STATUS_CHANGE,
            "source": "aws.states",
            "detail": {"executionArn": arn, "status": "ABORTED"},
        }
        result = build_watch.on_execution_end(event, w.clients, send=lambda url, body: None)
        assert result["Action"] == "signalled"
        (entry,) = w.monitoring.events[before:]
        assert entry["DetailType"] == contract.DETAIL_TYPE_FAILED
        detail = json.loads(entry["Detail"])
        assert detail["persona"] == "developer"
        assert detail["execution"] == arn.split(":")[-1]
        assert "ended ABORTED without reporting" in detail["reason"]
        assert detail["reason"] == result["Reason"]
        assert "imageId" not in detail


def test_publishing_never_fails_a_build(templates: Templates) -> None:
    with world(templates["v1"]) as w:
        w.monitoring.fail("PutEvents", "AccessDeniedException")
        w.monitoring.fail("PutMetricData", "InternalServiceFault")
        w.cloudformation.deploy(templates["v1"])  # does not raise
        assert len(w.bundles()) == 2
        assert w.monitoring.events == [] and w.monitoring.metrics == []
        assert {c for c, _ in w.monitoring.calls} == {"PutEvents", "PutMetricData"}


def test_a_request_the_model_refuses_is_logged_not_raised(
    deployed: World, caplog: pytest.LogCaptureFixture
) -> None:
    build = BuildRequest(
        image_name="developer-1.0.0-0123abcd",
        description="d",
        template_workspace_id="ws-dev0template1",
        persona="p" * 300,  # a dimension value is at most 1024 characters; a source name 256
        tags={"Version": "1.0.0"},
        deadline=1000,
        bound_seconds=1000,
        wait_handle=handle_url("H"),
    )
    published = notify.publish_build_end(
        deployed.clients,
        build,
        stack_id=STACK_ID,
        succeeded=True,
        now=2000.0,
        reason="ok",
    )
    assert published is True
    long_stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/" + "s" * 1100 + "/1"
    published = notify.publish_build_end(
        deployed.clients, build, stack_id=long_stack, succeeded=True, now=2000.0
    )
    assert published is False
    assert "build metrics not published" in caplog.text


def test_the_stack_name_comes_from_the_stack_id() -> None:
    assert stack_name(STACK_ID) == STACK
    assert stack_name("not-an-arn") == "not-an-arn"
