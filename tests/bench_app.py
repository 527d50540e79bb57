"""One benchmark run in a process of its own:
`python -m tests.bench_app KIND PERSONAS OUTDIR [SOURCE]`.

KIND is `library` (personas prepared by hand), `prepared` (personas prepared in the build),
`plain`: a plain CDK app with one Provider, one state machine and, per persona, two
custom resources and a WaitCondition with its handle, or `same`: a plain CDK app that
declares the very template and assets the library synthesized into SOURCE (a cloud
assembly), each resource a `CfnResource`: the least a CDK app pays for the same resources.
Prints one JSON line: resources, template bytes, jsii round trips and the process's peak
memory.

`python -m tests.bench_app in-process PERSONAS ROUNDS SOURCE` declares and synthesizes the
library, same and plain apps in turn in this one process, ROUNDS times after one untimed
round of each (the CDK's template validator, the modules and the caches are then warm for
all three), and prints each kind's median seconds as one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudformation as cfn
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr

from .harness.jsii_calls import jsii_calls


def plain(app: cdk.App, personas: int) -> cdk.Stack:
    stack = cdk.Stack(app, "Plain")
    function = lambda_.Function(
        stack,
        "OnEvent",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
    )
    provider = cr.Provider(stack, "Provider", on_event_handler=function)
    sfn.StateMachine(
        stack, "Build", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "P"))
    )
    for index in range(personas):
        handle = cfn.CfnWaitConditionHandle(stack, f"Handle{index}")
        image = cdk.CustomResource(
            stack,
            f"Image{index}",
            service_token=provider.service_token,
            resource_type="Custom::WorkSpacesImage",
            properties={"ImageName": f"p{index}", "WaitHandle": handle.ref},
        )
        wait = cfn.CfnWaitCondition(stack, f"Wait{index}", handle=handle.ref, count=1)
        wait.node.add_dependency(image)
        cdk.CustomResource(
            stack,
            f"Bundle{index}",
            service_token=provider.service_token,
            resource_type="Custom::WorkSpacesBundle",
            properties={"Image": wait.attr_data},
        )
    return stack


def same(app: cdk.App, source: Path) -> cdk.Stack:
    """The template in `source` (one stack's cloud assembly) declared resource by resource
    with the same logical ids and options, and its file assets staged again (the CDK's own
    parameter and rule for the bootstrap version are the stack's own)."""
    (template_path,) = source.glob("*.template.json")
    template = json.loads(template_path.read_text())
    (assets_path,) = source.glob("*.assets.json")
    stack = cdk.Stack(app, "Same")
    for digest, asset in json.loads(assets_path.read_text())["files"].items():
        path = asset["source"]["path"]
        if not path.endswith(".template.json"):
            s3_assets.Asset(stack, f"Asset{digest[:12]}", path=str(source / path))
    for logical_id, declared in template["Resources"].items():
        resource = cdk.CfnResource(
            stack, logical_id, type=declared["Type"], properties=declared.get("Properties")
        )
        resource.override_logical_id(logical_id)
        for option in ("DependsOn", "Metadata", "DeletionPolicy", "UpdateReplacePolicy"):
            if option in declared:
                resource.add_override(option, declared[option])
    for name, output in template.get("Outputs", {}).items():
        cdk.CfnOutput(
            stack,
            name,
            value=cdk.Token.as_string(output["Value"]),
            description=output.get("Description"),
        ).override_logical_id(name)
    return stack


def library(app: cdk.App, personas: int, *, prepared: bool) -> cdk.Stack:
    from .harness.stacks import many_personas_stack

    return many_personas_stack(personas, in_build=prepared, app=app)


# The library's Region image-quota check needs room for many personas (harness.stacks's
# SCALE_CONTEXT; not imported here, so the plain app does not import the library).
CONTEXT = {
    "workspaces-image-bakery:review": "false",
    "workspaces-image-bakery:image-quota": "1000",
}


def kernel_peak_mb() -> int:
    """The peak resident memory (VmHWM) of this process's descendants, summed: the jsii
    kernel (a Node.js launcher and the Node.js program it starts), still running at this
    point. 0 where /proc is not there."""
    total, pending = 0, [os.getpid()]
    while pending:
        for children in Path(f"/proc/{pending.pop()}/task").glob("*/children"):
            for pid in children.read_text().split():
                pending.append(int(pid))
                status = Path(f"/proc/{pid}/status")
                lines = status.read_text().splitlines() if status.exists() else []
                total += sum(int(x.split()[1]) for x in lines if x.startswith("VmHWM:"))
    return total // 1024


def declare(app: cdk.App, kind: str, personas: int, source: Path | None) -> cdk.Stack:
    if kind == "plain":
        return plain(app, personas)
    if kind == "same":
        assert source is not None
        return same(app, source)
    return library(app, personas, prepared=kind == "prepared")


def in_process(personas: int, rounds: int, source: Path) -> dict[str, float]:
    """Median seconds to declare and synthesize each kind, the kinds in turn in this one
    process, after one untimed round of each."""
    times: dict[str, list[float]] = {"library": [], "same": [], "plain": []}
    for round_ in range(rounds + 1):
        for kind, measured in times.items():
            with tempfile.TemporaryDirectory() as outdir:
                start = time.perf_counter()
                app = cdk.App(outdir=outdir, context=CONTEXT)
                declare(app, kind, personas, source)
                app.synth()
                if round_:
                    measured.append(time.perf_counter() - start)
    return {kind: statistics.median(measured) for kind, measured in times.items()}


def main() -> None:
    if sys.argv[1] == "in-process":
        personas, rounds, source = int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
        print(json.dumps(in_process(personas, rounds, source)))
        return
    kind, personas, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with jsii_calls() as calls:
        app = cdk.App(outdir=outdir, context=CONTEXT)
        stack = declare(app, kind, personas, Path(sys.argv[4]) if kind == "same" else None)
        app.synth()
    template = Path(outdir) / f"{stack.stack_name}.template.json"
    print(
        json.dumps(
            {
                "resources": len(json.loads(template.read_text())["Resources"]),
                "bytes": template.stat().st_size,
                "jsii": sum(calls.values()),
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "node_mb": kernel_peak_mb(),
            }
        )
    )


if __name__ == "__main__":
    main()
