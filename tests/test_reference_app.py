"""The reference app's template: resources, wiring, IAM scope, cdk-nag and determinism."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from .harness.synth import resources_of, synth_reference


@pytest.fixture(scope="module")
def reference() -> tuple[cdk.Stack, Template]:
    return synth_reference()


def test_one_image_wait_and_bundle_per_persona(reference: tuple[cdk.Stack, Template]) -> None:
    _, template = reference
    template.resource_count_is("Custom::WorkSpacesImage", 3)
    template.resource_count_is("Custom::WorkSpacesBundle", 3)
    template.resource_count_is("AWS::CloudFormation::WaitCondition", 3)
    template.resource_count_is("AWS::CloudFormation::WaitConditionHandle", 3)
    # One shared runtime: on_event, workflow step, build watch and the Provider framework's
    # function, and one rule that reports builds that ended without reporting; and the
    # office persona's patch cadence: the stack's patch check (its function and workflow)
    # and the persona's schedule.
    template.resource_count_is("AWS::StepFunctions::StateMachine", 2)
    template.resource_count_is("AWS::Lambda::Function", 5)
    template.resource_count_is("AWS::Events::Rule", 1)
    template.resource_count_is("AWS::Scheduler::Schedule", 1)


def test_image_resource_carries_name_recipe_tags_and_handle(
    reference: tuple[cdk.Stack, Template],
) -> None:
    _, template = reference
    template.has_resource_properties(
        "Custom::WorkSpacesImage",
        {
            "ImageName": Match.string_like_regexp(r"^developer-1\.0\.0-[0-9a-f]{8}$"),
            "ImageDescription": "developer thin image version 1.0.0",
            "TemplateWorkspaceId": "ws-dev0template1",
            "Persona": "developer",
            "BuildTimeoutSeconds": "21600",
            "WaitHandle": {"Ref": Match.string_like_regexp("BuildHandle")},
            # Prepared in the build: the persona's script (its asset's key and digest), run by
            # the stack's script document on its template's managed node.
            "PreparationScript": {
                "Key": Match.string_like_regexp(r"^[0-9a-f]{64}\.sh$"),
                "Sha256": Match.string_like_regexp(r"^[0-9a-f]{64}$"),
            },
            "ManagedNodeId": "mi-0dev0template0001",
            "Tags": Match.array_with(
                [
                    {"Key": "Name", "Value": "developer"},
                    {
                        "Key": "Software",
                        "Value": "git 2.47 / python 3.12 / vscode 1.95 / clamav / auditd / "
                        "amazon-cloudwatch-agent / collectd / puppet-agent",
                    },
                    {"Key": "Stage", "Value": "dev"},
                    {"Key": "Version", "Value": "1.0.0"},
                ]
            ),
        },
    )


def test_wait_condition_waits_for_its_image_and_bundle_waits_for_the_build(
    reference: tuple[cdk.Stack, Template],
) -> None:
    _, template = reference
    images = resources_of(template, "Custom::WorkSpacesImage")
    waits = resources_of(template, "AWS::CloudFormation::WaitCondition")
    for wait in waits.values():
        # Never updated (WaitConditions cannot be): the persona's bound is the workflow's.
        assert wait["Properties"]["Timeout"] == "43200"
        assert wait["Properties"]["Count"] == 1
        assert len(wait["DependsOn"]) == 1 and wait["DependsOn"][0] in images
    bundles = resources_of(template, "Custom::WorkSpacesBundle")
    for bundle in bundles.values():
        result = bundle["Properties"]["ImageBuildResult"]["Fn::GetAtt"]
        assert result[0] in waits and result[1] == "Data"
    template.has_resource_properties(
        "Custom::WorkSpacesBundle",
        {
            "BundleName": Match.string_like_regexp(r"^contractor-[0-9a-f]{6}$"),
            "ComputeType": "VALUE",
            "RootVolumeGib": "80",
            "UserVolumeGib": "10",
        },
    )


def test_template_workspaces_are_the_only_ones_the_runtime_may_start(
    reference: tuple[cdk.Stack, Template],
) -> None:
    _, template = reference
    policies = json.dumps(
        [
            p["Properties"]["PolicyDocument"]
            for p in resources_of(template, "AWS::IAM::Policy").values()
        ]
    )
    for workspace_id in ("ws-dev0template1", "ws-off0template1", "ws-con0template1"):
        assert f":workspace/{workspace_id}" in policies
    assert ":workspace/*" not in policies


def test_state_machine_logs_without_execution_data(reference: tuple[cdk.Stack, Template]) -> None:
    _, template = reference
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like(
                {"IncludeExecutionData": False, "Level": "ALL"}
            ),
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_cdk_nag_aws_solutions_has_no_unsuppressed_findings(
    reference: tuple[cdk.Stack, Template],
) -> None:
    stack, _ = reference
    annotations = Annotations.from_stack(stack)
    errors = annotations.find_error("*", Match.string_like_regexp(r"AwsSolutions-.*"))
    warnings = annotations.find_warning("*", Match.string_like_regexp(r"AwsSolutions-.*"))
    assert errors == []
    assert warnings == []


def test_every_nag_suppression_gives_a_reason(reference: tuple[cdk.Stack, Template]) -> None:
    _, template = reference
    suppressions: list[dict[str, Any]] = []
    for resource in template.to_json()["Resources"].values():
        suppressions += resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    assert suppressions, "the runtime's IAM wildcards should be suppressed with reasons"
    for suppression in suppressions:
        assert len(suppression["reason"]) >= 40, suppression


def test_synth_is_deterministic(reference: tuple[cdk.Stack, Template]) -> None:
    _, template = reference
    _, again = synth_reference()
    assert again.to_json() == template.to_json()


def test_cdk_nag_is_clean_with_a_template_workspace_from_a_parameter() -> None:
    from cdk_nag import AwsSolutionsChecks

    from workspaces_image_bakery import ImageBakeryStack, ImageDesign

    app = cdk.App()
    stack = ImageBakeryStack(
        app, "T", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    template_id = cdk.CfnParameter(stack, "TemplateId").value_as_string
    stack.add_persona(
        "P",
        name="p",
        design=ImageDesign.FULLY_BAKED,
        image_version="1",
        template_workspace_id=template_id,
        tags={"Role": "r", "Confidentiality": "internal", "Compliance": "none"},
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    Template.from_stack(stack).has_resource_properties(
        "Custom::WorkSpacesImage", {"TemplateWorkspaceId": {"Ref": "TemplateId"}}
    )
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp("AwsSolutions-.*")
    )
    assert errors == []
