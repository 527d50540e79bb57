"""examples/pipeline_app.py synthesizes offline, builds the image once and promotes it."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from bakery_runtime.core import contract
from bakery_runtime.distribution import contract as dc

from examples import pipeline_app


@pytest.fixture(scope="module")
def synthesized() -> tuple[pipeline_app.PipelineStack, dict[str, dict[str, Any]]]:
    """The app synthesized once, in-process and with no AWS account: stage -> template."""
    app = cdk.App()
    pipeline = pipeline_app.build(app)
    assembly = app.synth()
    templates: dict[str, dict[str, Any]] = {
        "Pipeline": assembly.get_stack_by_name(pipeline.stack_name).template
    }
    for stage in [pipeline.build_stage, *pipeline.promotions]:
        (stack,) = stage.synth().stacks
        templates[stage.stage_name] = stack.template
    return pipeline, templates


def _types(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in template["Resources"].values():
        found.setdefault(resource["Type"], []).append(resource)
    return found


def test_the_image_is_built_once_in_the_build_stage_and_shared(
    synthesized: tuple[pipeline_app.PipelineStack, dict[str, dict[str, Any]]],
) -> None:
    pipeline, templates = synthesized
    build = _types(templates["ImageBuild"])
    assert len(build[contract.IMAGE_RESOURCE_TYPE]) == 1
    (share,) = build[dc.SHARE_RESOURCE_TYPE]
    assert share["Properties"][dc.ACCOUNT_IDS] == sorted(t.account for t in pipeline_app.TARGETS)
    assert pipeline.build_stage.bakery.account == pipeline_app.BUILD.account


def test_later_stages_copy_the_shared_image_and_never_build(
    synthesized: tuple[pipeline_app.PipelineStack, dict[str, dict[str, Any]]],
) -> None:
    pipeline, templates = synthesized
    image_name = pipeline.build_stage.image_name
    for target in pipeline_app.TARGETS:
        resources = _types(templates[target.name])
        assert contract.IMAGE_RESOURCE_TYPE not in resources, target.name
        (copy,) = resources[dc.SHARED_COPY_RESOURCE_TYPE]
        assert copy["Properties"][dc.SOURCE_IMAGE_NAME] == image_name
        assert copy["Properties"][dc.SOURCE_ACCOUNT_ID] == pipeline_app.BUILD.account
        (bundle,) = resources[contract.BUNDLE_RESOURCE_TYPE]
        assert "Fn::GetAtt" in bundle["Properties"][contract.IMAGE_BUILD_RESULT]
        regions = sorted(
            c["Properties"][dc.REGION] for c in resources.get(dc.COPY_RESOURCE_TYPE, [])
        )
        assert regions == sorted(target.other_regions)
        assert len(resources.get(dc.REGIONAL_BUNDLE_RESOURCE_TYPE, [])) == len(regions)


def test_each_stage_deploys_to_its_own_account_in_pipeline_order(
    synthesized: tuple[pipeline_app.PipelineStack, dict[str, dict[str, Any]]],
) -> None:
    pipeline, templates = synthesized
    (codepipeline,) = _types(templates["Pipeline"])["AWS::CodePipeline::Pipeline"]
    names = [s["Name"] for s in codepipeline["Properties"]["Stages"]]
    stages = ["ImageBuild", *(t.name for t in pipeline_app.TARGETS)]
    assert [n for n in names if n in stages] == stages
    accounts = {p.stage_name: p.stack.account for p in pipeline.promotions}
    assert accounts == {t.name: t.account for t in pipeline_app.TARGETS}
    assert pipeline.account == pipeline_app.TOOLING.account


def test_a_raised_patch_level_starts_the_pipeline_whose_synth_reads_it(
    synthesized: tuple[pipeline_app.PipelineStack, dict[str, dict[str, Any]]],
) -> None:
    """The trigger: the build account forwards the patch check's event to the tooling
    account, whose rule starts the pipeline; its synth step reads the levels from the build
    stage's stack (through the lookup role) and synthesizes with them."""
    pipeline, templates = synthesized
    assert pipeline.build_stage.bakery.stack_name == pipeline_app.BUILD_STACK
    build = _types(templates["ImageBuild"])
    (schedule,) = build["AWS::Scheduler::Schedule"]
    assert schedule["Properties"]["ScheduleExpression"] == "cron(0 2 ? * MON *)"
    (forward,) = [
        r
        for r in build["AWS::Events::Rule"]
        if r["Properties"]["EventPattern"].get("detail-type") == ["Image Patch Level Raised"]
    ]
    assert str(pipeline_app.TOOLING.account) in str(forward["Properties"]["Targets"])
    tooling = _types(templates["Pipeline"])
    (policy,) = tooling["AWS::Events::EventBusPolicy"]
    assert policy["Properties"]["Principal"] == pipeline_app.BUILD.account
    (start,) = tooling["AWS::Events::Rule"]
    assert start["Properties"]["EventPattern"]["account"] == [pipeline_app.BUILD.account]
    assert "codepipeline" in str(start["Properties"]["Targets"]).lower()
    synth = pipeline_app.SYNTH_COMMANDS[-1]
    assert f"patch-levels --stack {pipeline_app.BUILD_STACK}" in synth
    assert '-c workspaces-image-bakery:patch-levels="$LEVELS"' in synth
    assert synth.index("patch-levels") < synth.index("npx cdk synth") and " && " in synth
    projects = tooling["AWS::CodeBuild::Project"]
    assert any(pipeline_app.SYNTH_COMMANDS[-1].split(" && ")[0] in str(p) for p in projects)
