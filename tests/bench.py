"""`make bench`: synth time, jsii round trips and template size as personas grow, against a
plain CDK app with the same resources per persona, and the API calls a deploy makes.

Times are measured and printed, never asserted; counts are deterministic and asserted in
the tests (test_scale.py, test_lifecycle.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The handlers import as the Lambda runtime sees them (tests/conftest.py does the same).
sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent / "workspaces_image_bakery" / "lambda")
)

import aws_cdk as cdk
from aws_cdk import aws_cloudformation as cfn
from aws_cdk.assertions import Template
from bakery_runtime import contract

from .harness.jsii_calls import jsii_calls
from .harness.stacks import many_personas, two_personas
from .harness.world import world


def plain(personas: int) -> dict[str, Any]:
    """A plain CDK app with what the library declares per persona: two custom resources, a
    WaitConditionHandle and a WaitCondition (no runtime, no validation, no review)."""
    stack = cdk.Stack(cdk.App(), "Plain")
    for index in range(personas):
        handle = cfn.CfnWaitConditionHandle(stack, f"Handle{index}")
        image = cdk.CustomResource(
            stack,
            f"Image{index}",
            service_token="arn:aws:lambda:eu-west-1:111111111111:function:f",
            resource_type="Custom::WorkSpacesImage",
            properties={"ImageName": f"p{index}", "WaitHandle": handle.ref},
        )
        wait = cfn.CfnWaitCondition(stack, f"Wait{index}", handle=handle.ref, count=1)
        wait.node.add_dependency(image)
        cdk.CustomResource(
            stack,
            f"Bundle{index}",
            service_token="arn:aws:lambda:eu-west-1:111111111111:function:f",
            resource_type="Custom::WorkSpacesBundle",
            properties={"Image": wait.attr_data},
        )
    return dict(Template.from_stack(stack).to_json())


def synth(personas: int, build: Callable[[int], dict[str, Any]]) -> tuple[float, int, int]:
    """Seconds, jsii round trips and resources of declaring and synthesizing `personas`."""
    start = time.perf_counter()
    with jsii_calls() as calls:
        template = build(personas)
    return time.perf_counter() - start, sum(calls.values()), len(template["Resources"])


def deploy_calls() -> dict[str, int]:
    template = two_personas()
    with world(template) as w:
        w.cloudformation.deploy(template)
        calls: dict[str, int] = {}
        for operation, _ in w.fake.calls:
            calls[operation] = calls.get(operation, 0) + 1
        return calls


def main() -> None:
    synth(1, plain)  # start the jsii kernel and load aws-cdk-lib before measuring
    print("personas  library: seconds  jsii calls  resources   plain CDK: seconds  jsii calls")
    for personas in (1, 10, 25, 50):
        seconds, calls, resources = synth(personas, many_personas)
        plain_seconds, plain_calls, _ = synth(personas, plain)
        print(
            f"{personas:8d}  {seconds:16.2f}  {calls:10d}  {resources:9d}"
            f"   {plain_seconds:17.2f}  {plain_calls:10d}"
        )
    print("\nWorkSpaces API calls of a first deploy of two personas:")
    for operation, count in sorted(deploy_calls().items()):
        print(f"  {operation:28s} {count}")
    print("\nImage polling (a first wait, then short polls; both cut to the deadline):")
    for minutes in (30, 45, 90):
        looks = 1 + max(0, minutes * 60 - contract.FIRST_IMAGE_WAIT_SECONDS) // (
            contract.IMAGE_POLL_SECONDS
        )
        print(f"  a {minutes}-minute build: {looks} looks at the image")
    print(
        f"  worst-case delay after AVAILABLE (builds of {contract.FIRST_IMAGE_WAIT_SECONDS // 60}"
        f" minutes or more): {contract.IMAGE_POLL_SECONDS} s plus the Lambda and the signal"
    )


if __name__ == "__main__":
    main()
