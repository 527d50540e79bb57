"""A corpus of bad configurations: each is refused at synth time, naming the exact field.

Every problem of a construct is reported in one error with the construct path, the field,
the bad value and what is allowed.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import Duration

from workspaces_image_bakery import (
    BakeryValidationError,
    Compute,
    Distribution,
    ImageDesign,
    ImagePreparation,
    Persona,
    Release,
    TaggingPolicy,
    TemplateBuild,
    WorkspaceBundle,
    WorkspaceImage,
)

GOOD: dict[str, Any] = {
    "name": "developer",
    "design": ImageDesign.THIN,
    "image_version": "1.0.0",
    "template_workspace_id": "ws-dev0template1",
    "baked_applications": ["git 2.47"],
    "launch_applications": ["docker-ce"],
    "config_management_agent": "puppet-agent 8",
    "tags": {"Role": "development", "Confidentiality": "internal"},
}
DEFAULTS = {"Project": "desktops", "CostCenter": "cc-1", "Stage": "dev"}


def persona(stack: cdk.Stack | None = None, **overrides: Any) -> Persona:
    stack = stack or cdk.Stack(cdk.App(), "Corpus")
    policy = stack.node.try_find_child("Tags") or TaggingPolicy(stack, "Tags", defaults=DEFAULTS)
    assert isinstance(policy, TaggingPolicy)
    return Persona(stack, "P", tagging_policy=policy, **{**GOOD, **overrides})


def image(stack: cdk.Stack, id_: str, **overrides: Any) -> WorkspaceImage:
    props: dict[str, Any] = {
        "base_name": "shared",
        "description": "d",
        "template_workspace_id": "ws-abcdefgh1",
        "persona": "p",
        "recipe": {},
        "tags": {},
    }
    return WorkspaceImage(stack, id_, **{**props, **overrides})


def problems_of(**overrides: Any) -> BakeryValidationError:
    with pytest.raises(BakeryValidationError) as error:
        persona(**overrides)
    return error.value


AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PASSWORD = "hunter2x"


def steps(*commands: str) -> ImagePreparation:
    return ImagePreparation(install_steps=list(commands))


CORPUS: list[tuple[str, dict[str, Any], str]] = [
    ("empty name", {"name": ""}, "name"),
    ("name too long", {"name": "d" * 33}, "name"),
    ("name with capitals", {"name": "Developer"}, "name"),
    ("name with space", {"name": "dev team"}, "name"),
    ("name not a string", {"name": 42}, "name"),
    ("name is None", {"name": None}, "name"),
    ("name is a token", {"name": cdk.Fn.import_value("persona-name")}, "name"),
    ("version is None", {"image_version": None}, "image_version"),
    ("template id is None", {"template_workspace_id": None}, "template_workspace_id"),
    ("version with space", {"image_version": "1 0"}, "image_version"),
    ("version too long", {"image_version": "1." * 11}, "image_version"),
    ("empty version", {"image_version": ""}, "image_version"),
    ("design as a string", {"design": "thin"}, "design"),
    ("template id without prefix", {"template_workspace_id": "abcdefgh1"}, "template_workspace_id"),
    ("template id upper case", {"template_workspace_id": "ws-ABCDEFGH1"}, "template_workspace_id"),
    ("template id too short", {"template_workspace_id": "ws-abc"}, "template_workspace_id"),
    ("application with comma", {"baked_applications": ["git, svn"]}, "baked_applications[0]"),
    ("application too long", {"baked_applications": ["a" * 65]}, "baked_applications[0]"),
    ("applications as a string", {"baked_applications": "git"}, "baked_applications"),
    ("application not a string", {"launch_applications": [7]}, "launch_applications[0]"),
    ("baked and launched", {"launch_applications": ["git 2.47"]}, "launch_applications"),
    ("zero image with baked apps", {"design": ImageDesign.ZERO}, "baked_applications"),
    (
        "fully baked with launch apps",
        {"design": ImageDesign.FULLY_BAKED, "config_management_agent": None},
        "launch_applications",
    ),
    ("thin without agent", {"config_management_agent": None}, "config_management_agent"),
    ("agent with semicolon", {"config_management_agent": "puppet; rm -rf"}, "config_management_agent"),
    ("retired GRAPHICS", {"compute": Compute(compute_type="GRAPHICS")}, "compute.compute_type"),
    ("retired GRAPHICSPRO", {"compute": Compute(compute_type="GRAPHICSPRO")}, "compute.compute_type"),
    ("unknown compute type", {"compute": Compute(compute_type="HUGE")}, "compute.compute_type"),
    ("root 80 with user 20", {"compute": Compute(user_volume_gib=20)}, "compute.root_volume_gib/compute.user_volume_gib"),
    ("root 100 on STANDARD", {"compute": Compute(root_volume_gib=100)}, "compute.root_volume_gib/compute.user_volume_gib"),
    ("root above 2000", {"compute": Compute(root_volume_gib=2500, user_volume_gib=100)}, "compute.root_volume_gib"),
    ("user above 2000", {"compute": Compute(root_volume_gib=175, user_volume_gib=2001)}, "compute.user_volume_gib"),
    ("volume not a number", {"compute": Compute(root_volume_gib="80")}, "compute.root_volume_gib"),  # type: ignore[arg-type]
    (
        "graphics below 100/100",
        {"compute": Compute(compute_type="GRAPHICS_G4DN", root_volume_gib=80, user_volume_gib=10)},
        "compute.root_volume_gib/compute.user_volume_gib",
    ),
    (
        "general purpose below 175",
        {"compute": Compute(compute_type="GENERALPURPOSE_4XLARGE", root_volume_gib=80, user_volume_gib=100)},
        "compute.root_volume_gib/compute.user_volume_gib",
    ),
    ("compute as a mapping", {"compute": {"compute_type": "VALUE"}}, "compute"),
    ("missing required Role", {"tags": {"Confidentiality": "internal"}}, "tags[Role]"),
    ("Stage not allowed", {"tags": {**GOOD["tags"], "Stage": "qa"}}, "tags[Stage]"),
    ("Confidentiality not allowed", {"tags": {"Role": "r", "Confidentiality": "secret!"}}, "tags[Confidentiality]"),
    ("derived Name set", {"tags": {**GOOD["tags"], "Name": "x"}}, "tags[Name]"),
    ("derived Version set", {"tags": {**GOOD["tags"], "Version": "2"}}, "tags[Version]"),
    ("aws: tag key", {"tags": {**GOOD["tags"], "aws:owner": "me"}}, "tag key"),
    ("tag key too long", {"tags": {**GOOD["tags"], "k" * 128: "v"}}, "tag key"),
    ("tag value too long", {"tags": {**GOOD["tags"], "System": "v" * 256}}, "tags[System]"),
    ("too many tags", {"tags": {**GOOD["tags"], **{f"K{i}": "v" for i in range(45)}}}, "tags"),
    ("ownership tag key", {"tags": {**GOOD["tags"], "workspaces-image-bakery:stack": "x"}}, "tag key"),
    ("tags not a mapping", {"tags": ["Role=dev"]}, "tags"),
    ("tag value with #", {"tags": {**GOOD["tags"], "System": "eng#1"}}, "tags[System]"),
    ("tag value with an emoji", {"tags": {**GOOD["tags"], "System": "eng \N{ROCKET}"}}, "tags[System]"),
    ("tag key with a comma", {"tags": {**GOOD["tags"], "Cost,Center": "x"}}, "tag key"),
    (
        "Software tag over 255",
        {"baked_applications": [f"application-{i:02d}-{'x' * 40}" for i in range(6)]},
        "tags[Software]",
    ),
    ("secret in a tag", {"tags": {**GOOD["tags"], "System": AWS_KEY}}, "tags[System]"),
    (
        "secret in an install step",
        {"preparation": ImagePreparation(install_steps=[f"export AWS_ACCESS_KEY_ID={AWS_KEY}"])},
        "preparation.install_steps[0]",
    ),
    (
        "private key in a validation step",
        {"preparation": ImagePreparation(validation_steps=["echo '-----BEGIN RSA PRIVATE KEY-----'"])},
        "preparation.validation_steps[0]",
    ),
    (
        "password in an application entry",
        {"launch_applications": ["password: Sup3rS3cretPassw0rd"]},
        "launch_applications[0]",
    ),
    ("basic-auth URL in an install step", {"preparation": steps(f"curl -fsSL https://admin:{PASSWORD}@repo.example.com/a.rpm")}, "preparation.install_steps[0]"),
    ("curl -u user:password", {"preparation": steps(f"curl -u admin:{PASSWORD} https://repo.example.com/a.rpm")}, "preparation.install_steps[0]"),
    ("--password flag", {"preparation": steps(f"mysql --password {PASSWORD} -e 'select 1'")}, "preparation.install_steps[0]"),
    ("sshpass -p", {"preparation": steps(f"sshpass -p {PASSWORD} scp app.tar host:/tmp")}, "preparation.install_steps[0]"),
    ("password assignment", {"preparation": steps("true", f"export DB_PASSWORD={PASSWORD}")}, "preparation.install_steps[1]"),
    ("password in an entry that also breaks the pattern", {"launch_applications": [f"PASSWORD={PASSWORD}"]}, "launch_applications[0]"),
    ("licence as a literal", {"license_references": {"git 2.47": "ABCD-1234-EFGH"}}, "license_references[git 2.47]"),
    ("licence for an unknown app", {"license_references": {"photoshop": "/licenses/ps"}}, "license_references[photoshop]"),
    ("preparation of the wrong type", {"preparation": {"patch_os": True}}, "preparation"),
    ("build timeout too short", {"build": TemplateBuild(timeout=Duration.minutes(10))}, "build.timeout"),
    ("build timeout above 12 h", {"build": TemplateBuild(timeout=Duration.hours(13))}, "build.timeout"),
    ("build timeout not a Duration", {"build": TemplateBuild(timeout=3600)}, "build.timeout"),  # type: ignore[arg-type]
    ("managed node id malformed", {"build": TemplateBuild(managed_node_id="i-0123456789abcdef0")}, "build.managed_node_id"),
    ("validation command too long", {"build": TemplateBuild(validation_commands=["x" * 1001])}, "build.validation_commands[0]"),
    ("secret in a validation command", {"build": TemplateBuild(validation_commands=[f"curl -u admin:{PASSWORD} https://x"])}, "build.validation_commands[0]"),
    ("validation without a managed node", {"build": TemplateBuild(validation_commands=["true"])}, "build.validation_commands"),
    ("build as a mapping", {"build": {"timeout": Duration.hours(1)}}, "build"),
    ("retained images 0", {"release": Release(retained_images=0)}, "release.retained_images"),
    ("retained images above 20", {"release": Release(retained_images=21)}, "release.retained_images"),
    ("pin with 1 retained", {"release": Release(retained_images=1, released_version="0.9")}, "release.retained_images"),
    ("candidate without released version", {"release": Release(candidate_bundle=True)}, "release.released_version"),
    ("released version with space", {"release": Release(released_version="1 0")}, "release.released_version"),
    ("candidate not a bool", {"release": Release(candidate_bundle="yes")}, "release.candidate_bundle"),  # type: ignore[arg-type]
    ("removal policy SNAPSHOT", {"release": Release(removal_policy=cdk.RemovalPolicy.SNAPSHOT)}, "release.removal_policy"),
    ("release as a mapping", {"release": {"retained_images": 2}}, "release"),
    ("region not a Region", {"distribution": Distribution(regions=["Europe"])}, "distribution.regions[0]"),
    ("regions as a string", {"distribution": Distribution(regions="eu-west-1")}, "distribution.regions"),
    ("account too short", {"distribution": Distribution(accounts=["12345"])}, "distribution.accounts[0]"),
    ("regions with a pinned release", {"distribution": Distribution(regions=["eu-west-1"]), "release": Release(released_version="0.9")}, "distribution.regions"),
    ("distribution as a list", {"distribution": ["eu-west-1"]}, "distribution"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "overrides", "field"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_configuration_names_the_field(
    case: str, overrides: dict[str, Any], field: str
) -> None:
    error = problems_of(**overrides)
    assert field in error.fields, (case, str(error))
    problem = next(p for p in error.problems if p.field == field)
    assert problem.path.endswith("/P") or "/P/" in problem.path
    assert problem.allowed
    assert AWS_KEY not in str(error) and "Sup3rS3cret" not in str(error)
    assert "ABCD-1234-EFGH" not in str(error) and PASSWORD not in str(error)
    assert PASSWORD not in repr([p.value for p in error.problems])


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


def test_every_problem_comes_in_one_error() -> None:
    error = problems_of(
        name="Bad Name",
        image_version="1 0",
        compute=Compute(compute_type="GRAPHICS"),
        release=Release(retained_images=0),
        tags={"Confidentiality": "secret!", "aws:x": "y"},
    )
    assert {
        "name",
        "image_version",
        "compute.compute_type",
        "release.retained_images",
        "tags[Role]",
        "tags[Confidentiality]",
        "tag key",
    } <= set(error.fields)
    message = str(error)
    assert (
        "Corpus/P: compute.compute_type='GRAPHICS' is not valid; allowed: a current type; GRAPHICS is retired, use GRAPHICS_G4DN"
        in message
    )


def test_duplicate_persona_names_in_one_app() -> None:
    app = cdk.App()
    first = cdk.Stack(app, "One")
    persona(first)
    second = cdk.Stack(app, "Two")
    with pytest.raises(BakeryValidationError) as error:
        persona(second)
    assert "name" in error.value.fields
    assert "used by One/P" in str(error.value)


def test_duplicate_bundle_and_image_names_with_the_plain_constructs() -> None:
    stack = cdk.Stack(cdk.App(), "Plain")
    first = image(stack, "I1")
    WorkspaceBundle(stack, "B1", base_name="shared", description="d", image=first)
    with pytest.raises(BakeryValidationError) as image_error:
        image(stack, "I2")
    # The same persona too: retention finds a persona's images by it.
    assert image_error.value.fields == ["base_name", "persona"]
    with pytest.raises(BakeryValidationError) as bundle_error:
        WorkspaceBundle(stack, "B2", base_name="shared", description="d", image=first)
    assert bundle_error.value.fields == ["base_name"]


def test_more_bundles_than_the_region_quota() -> None:
    stack = cdk.Stack(cdk.App(), "Many", env=cdk.Environment(region="eu-west-1"))
    for index in range(50):
        WorkspaceBundle(
            stack, f"B{index}", base_name=f"b{index}", description="d", image="wsi-0123456789"
        )
    with pytest.raises(BakeryValidationError) as error:
        WorkspaceBundle(stack, "B50", base_name="b50", description="d", image="wsi-0123456789")
    assert error.value.fields == ["bundles"]
    assert "at most 50 custom bundles per Region" in str(error.value)


def test_tokens_are_skipped_not_rejected() -> None:
    stack = cdk.Stack(cdk.App(), "Tokens")
    template_id = cdk.CfnParameter(stack, "TemplateId").value_as_string
    user = cdk.CfnParameter(stack, "UserGib", type="Number").value_as_number
    built = persona(stack, template_workspace_id=template_id, compute=Compute(user_volume_gib=user))  # type: ignore[arg-type]
    assert built.image.template_workspace_id == template_id


def test_descriptions_are_required_on_the_plain_constructs() -> None:
    stack = cdk.Stack(cdk.App(), "Descriptions")
    with pytest.raises(BakeryValidationError) as error:
        WorkspaceBundle(stack, "B", base_name="b", description="", image="wsi-0123456789")
    assert error.value.fields == ["description"]
    with pytest.raises(BakeryValidationError) as error:
        image(stack, "I", base_name="i", description="has, a comma")
    assert error.value.fields == ["description"]


def test_malformed_preparation_never_echoes_its_content() -> None:
    error = problems_of(preparation=ImagePreparation(install_steps=f"export KEY={AWS_KEY}"))
    assert "preparation.install_steps" in error.fields
    assert AWS_KEY not in str(error) and "<str>" in str(error)


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"defaults": {"Project": 7}}, "defaults"),
        ({"defaults": {"Name": "x"}}, "defaults[Name]"),
        ({"defaults": {"Owner": AWS_KEY}}, "defaults[Owner]"),
        ({"required": "Role"}, "required"),
        ({"allowed_values": {"Stage": "prod"}}, "allowed_values"),
        ({"allowed_values": {"aws:stage": ["x"]}}, "tag key"),
    ],
)
def test_bad_tagging_policy_names_the_field(props: dict[str, Any], field: str) -> None:
    with pytest.raises(BakeryValidationError) as error:
        TaggingPolicy(cdk.Stack(cdk.App(), "Policy"), "Tags", **props)
    assert field in error.value.fields
    assert AWS_KEY not in str(error.value)
