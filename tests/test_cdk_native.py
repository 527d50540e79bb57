"""The constructs behave like the CDK's own: Tags.of reaches images and bundles (and the
tagging policy checks what it adds), images and bundles have interfaces and imports, and
removal policies are applied the CDK way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import RemovalPolicy, Tags
from aws_cdk.assertions import Template

from workspaces_image_bakery import (
    DEFAULT_ALLOWED,
    BakeryValidationError,
    ImageDesign,
    IWorkspaceBundle,
    IWorkspaceImage,
    Persona,
    TaggingPolicy,
    WorkspaceBundle,
    WorkspaceImage,
    load_baseline,
    write_review,
)
from workspaces_image_bakery.core.runtime_assets import contract
from workspaces_image_bakery.core.validation import Problems
from workspaces_image_bakery.review import review as review_module
from workspaces_image_bakery.review.review import REVIEW_CONTEXT, REVIEW_FILE

DEFAULTS = {
    "Project": "desktops",
    "CostCenter": "cc-1",
    "Stage": "dev",
    "Role": "developer",
    "Confidentiality": "internal",
}


def persona(stack: cdk.Stack, **overrides: Any) -> Persona:
    props: dict[str, Any] = {
        "name": "developer",
        "design": ImageDesign.FULLY_BAKED,
        "image_version": "1.0.0",
        "template_workspace_id": "ws-dev0template1",
        "tagging_policy": TaggingPolicy(stack, "Tags", defaults=DEFAULTS),
        **overrides,
    }
    return Persona(stack, "P", **props)


def tags_of(template: Template, resource_type: str) -> dict[str, str]:
    (resource,) = template.find_resources(resource_type).values()
    return {t["Key"]: t["Value"] for t in resource["Properties"].get(contract.TAGS, [])}


def both_tags(template: Template) -> tuple[dict[str, str], dict[str, str]]:
    return (
        tags_of(template, contract.IMAGE_RESOURCE_TYPE),
        tags_of(template, contract.BUNDLE_RESOURCE_TYPE),
    )


# --- Tags.of ----------------------------------------------------------------------------


def test_tags_of_reaches_the_image_and_the_bundle() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    made = persona(stack)
    Tags.of(app).add("Owner", "platform-team")
    for tags in both_tags(Template.from_stack(stack)):
        assert tags["Owner"] == "platform-team"
        assert tags["Name"] == "developer"
    assert made.image.tags["Owner"] == "platform-team"
    assert made.facts().tags["Owner"] == "platform-team"


def test_tags_of_wins_over_the_persona_and_policy_tags_of_the_same_key() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    persona(stack, tags={"System": "engineering"})
    Tags.of(stack).add("System", "from-tags-of")
    Tags.of(stack).add("Stage", "prod")
    for tags in both_tags(Template.from_stack(stack)):
        assert tags["System"] == "from-tags-of"
        assert tags["Stage"] == "prod"


def test_a_lower_priority_leaves_the_persona_tag() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    persona(stack, tags={"System": "engineering"})
    Tags.of(stack).add("System", "fallback", priority=10)
    for tags in both_tags(Template.from_stack(stack)):
        assert tags["System"] == "engineering"


def test_derived_tags_stay_derived() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    persona(stack)
    Tags.of(app).add("Name", "everything")
    Tags.of(app).add("Version", "9")
    for tags in both_tags(Template.from_stack(stack)):
        assert (tags["Name"], tags["Version"]) == ("developer", "1.0.0")


def test_tags_of_is_checked_by_the_tagging_policy() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    persona(stack)
    Tags.of(app).add("Stage", "staging")
    with pytest.raises(Exception, match=r"tags\[Stage\]='staging' is not valid"):
        app.synth()


def test_tags_of_removing_a_required_tag_fails_synth() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    persona(stack)
    Tags.of(app).remove("Role")
    with pytest.raises(Exception, match=r"tags\[Role\]=None .*requires Role"):
        app.synth()


def test_tags_of_is_checked_by_the_tag_rules_and_the_secret_scan() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    persona(stack)
    Tags.of(app).add("workspaces-image-bakery:stack", "x")
    Tags.of(app).add("Key", "AKIAIOSFODNN7EXAMPLE")
    with pytest.raises(Exception) as raised:
        app.synth()
    assert "ownership tag" in str(raised.value)
    assert "no secrets" in str(raised.value)
    assert "AKIAIOSFODNN7EXAMPLE" not in str(raised.value)


def test_a_tags_of_problem_names_each_persona_it_hits_once() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    policy = TaggingPolicy(stack, "Tags", defaults=DEFAULTS)
    for name, id_ in (("developer", "Dev"), ("office", "Office")):
        Persona(
            stack,
            id_,
            name=name,
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id="ws-dev0template1",
            tagging_policy=policy,
        )
    Tags.of(app).add("Stage", "staging")
    with pytest.raises(Exception) as raised:
        app.synth()
    lines = [line for line in str(raised.value).splitlines() if "is not valid" in line]
    assert sorted(lines) == [
        f"  [S] persona {name} (S/{id_}): tags[Stage]='staging' is not valid; "
        "allowed: one of dev, test, prod"
        for name, id_ in (("developer", "Dev"), ("office", "Office"))
    ]


def test_a_tags_of_problem_of_images_and_bundles_declared_directly_names_each() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    image = WorkspaceImage(
        stack,
        "Image",
        base_name="direct",
        description="direct",
        template_workspace_id="ws-dev0template1",
        persona="direct",
        recipe={},
        tags={},
    )
    WorkspaceBundle(stack, "Bundle", base_name="direct", description="direct", image=image)
    Tags.of(app).add("Owner", "bad\x00value")
    with pytest.raises(Exception) as raised:
        app.synth()
    lines = [line for line in str(raised.value).splitlines() if "is not valid" in line]
    assert [line.split(":", 1)[0] for line in lines] == ["  [S] S/Image", "  [S] S/Bundle"]


def test_tags_of_reaches_images_and_bundles_declared_directly() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    image = WorkspaceImage(
        stack,
        "Image",
        base_name="direct",
        description="direct",
        template_workspace_id="ws-dev0template1",
        persona="direct",
        recipe={},
        tags={},
    )
    WorkspaceBundle(stack, "Bundle", base_name="direct", description="direct", image=image)
    Tags.of(app).add("Owner", "team")
    assert both_tags(Template.from_stack(stack)) == ({"Owner": "team"}, {"Owner": "team"})


def test_include_resource_types_selects_images_or_bundles() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    persona(stack)
    Tags.of(app).add("Backup", "yes", include_resource_types=[contract.BUNDLE_RESOURCE_TYPE])
    image, bundle = both_tags(Template.from_stack(stack))
    assert "Backup" not in image
    assert bundle["Backup"] == "yes"


# --- Interfaces, imports, attributes ----------------------------------------------------


def test_image_id_is_an_attribute_of_a_resource_that_reads_the_build_signal() -> None:
    untouched = cdk.Stack(cdk.App(), "Untouched")
    persona(untouched)
    Template.from_stack(untouched).resource_count_is(contract.IMAGE_ID_RESOURCE_TYPE, 0)

    stack = cdk.Stack(cdk.App(), "S")
    made = persona(stack)
    first, again = made.image.image_id, made.image.image_id
    assert first == again  # one resource, however often it is read
    (logical, attribute) = stack.resolve(first)["Fn::GetAtt"]
    assert attribute == contract.ATTR_IMAGE_ID
    template = Template.from_stack(stack)
    template.resource_count_is(contract.IMAGE_ID_RESOURCE_TYPE, 1)
    resource = template.to_json()["Resources"][logical]
    assert resource["Type"] == contract.IMAGE_ID_RESOURCE_TYPE
    assert resource["Properties"][contract.IMAGE_BUILD_RESULT] == {
        "Fn::GetAtt": [stack.get_logical_id(made.image.wait), "Data"]
    }
    assert resource["Properties"][contract.EXPECTED_IMAGE_NAME] == made.image.image_name


def test_a_bundle_takes_an_imported_image() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    image: IWorkspaceImage = WorkspaceImage.from_image_id(stack, "Golden", "wsi-abcdefghi")
    assert image.image_name is None
    bundle = WorkspaceBundle(stack, "B", base_name="b", description="b", image=image)
    assert bundle.image is image
    (resource,) = Template.from_stack(stack).find_resources(contract.BUNDLE_RESOURCE_TYPE).values()
    assert resource["Properties"][contract.IMAGE_BUILD_RESULT] == "wsi-abcdefghi"
    assert contract.EXPECTED_IMAGE_NAME not in resource["Properties"]


def test_imports_check_their_ids() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    with pytest.raises(BakeryValidationError, match="image_id"):
        WorkspaceImage.from_image_id(stack, "Bad", "ami-123")
    with pytest.raises(BakeryValidationError, match="bundle_id"):
        WorkspaceBundle.from_bundle_id(stack, "BadBundle", "wsi-abcdefghi")
    bundle: IWorkspaceBundle = WorkspaceBundle.from_bundle_id(stack, "Ok", "wsb-abcdefgh1")
    assert bundle.bundle_id == "wsb-abcdefgh1"
    token = cdk.CfnParameter(stack, "Id").value_as_string
    assert WorkspaceImage.from_image_id(stack, "Token", token).image_id == token


def test_built_image_and_bundle_satisfy_the_interfaces() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    made = persona(stack)
    image: IWorkspaceImage = made.image
    bundle: IWorkspaceBundle = made.bundle
    assert image.image_name == made.image.image_name
    assert cdk.Token.is_unresolved(bundle.bundle_id)


def test_apply_removal_policy() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    made = persona(stack)
    made.apply_removal_policy(RemovalPolicy.RETAIN)
    template = Template.from_stack(stack)
    for resource_type in (contract.IMAGE_RESOURCE_TYPE, contract.BUNDLE_RESOURCE_TYPE):
        (resource,) = template.find_resources(resource_type).values()
        assert resource["DeletionPolicy"] == "Retain"
    with pytest.raises(BakeryValidationError, match="removal_policy"):
        made.image.apply_removal_policy(RemovalPolicy.SNAPSHOT)


# --- The review on every synth ----------------------------------------------------------


def synth_app(outdir: Path, **context: Any) -> cdk.App:
    app = cdk.App(outdir=str(outdir), context=context)
    persona(cdk.Stack(app, "Desktops"))
    app.synth()
    return app


def test_every_synth_writes_the_review_without_app_code(tmp_path: Path) -> None:
    synth_app(tmp_path)
    review = (tmp_path / REVIEW_FILE).read_text()
    assert review.startswith("# WorkSpaces images and bundles: Desktops")
    assert "unknown (no baseline template given)" in review
    assert (tmp_path / "preparation" / "developer.recipe.json").is_file()


def test_the_review_compares_with_the_previous_synth(tmp_path: Path) -> None:
    synth_app(tmp_path)
    synth_app(tmp_path)
    review = (tmp_path / REVIEW_FILE).read_text()
    assert "New images on deploy: none." in review
    assert "| developer | no |" in review


def test_the_review_can_be_turned_off(tmp_path: Path) -> None:
    synth_app(tmp_path, **{REVIEW_CONTEXT: "false"})
    assert not (tmp_path / REVIEW_FILE).exists()
    assert (tmp_path / "Desktops.template.json").exists()


def test_an_explicit_write_review_after_synth_does_not_write_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = load_baseline(tmp_path)
    app = synth_app(tmp_path)
    written = (tmp_path / REVIEW_FILE).stat().st_mtime_ns
    writes: list[object] = []
    monkeypatch.setattr(review_module, "_write", lambda *args: writes.append(args))
    stack = app.node.find_child("Desktops")
    assert isinstance(stack, cdk.Stack)
    path, summary = write_review([stack], tmp_path, baseline)
    assert writes == []
    assert path == tmp_path / REVIEW_FILE
    assert summary.startswith("Image design checklist (declared):")
    assert (tmp_path / REVIEW_FILE).stat().st_mtime_ns == written
    # Elsewhere, or with another baseline, it writes.
    write_review([stack], tmp_path / "elsewhere", baseline)
    assert len(writes) == 1


# --- Allowed values merge per key -------------------------------------------------------


def test_allowed_values_for_one_key_keep_the_other_defaults() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    policy = TaggingPolicy(stack, "Policy", allowed_values={"Stage": ["dev", "staging", "prod"]})
    assert policy.allowed_values == {
        "Stage": ("dev", "staging", "prod"),
        "Confidentiality": tuple(DEFAULT_ALLOWED["Confidentiality"]),
    }
    problems = Problems("S/P")
    policy.check_values(problems, {**DEFAULTS, "Stage": "staging", "Confidentiality": "secret"})
    assert [p.field for p in problems.found] == ["tags[Confidentiality]"]


def test_allowed_values_extend_the_exported_defaults_or_lift_one() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    extended = TaggingPolicy(
        stack,
        "Extended",
        allowed_values={"Stage": [*DEFAULT_ALLOWED["Stage"], "qa"], "Compliance": ["iso-27001"]},
    )
    assert extended.allowed_values["Stage"] == ("dev", "test", "prod", "qa")
    assert set(extended.allowed_values) == {"Stage", "Confidentiality", "Compliance"}
    lifted = TaggingPolicy(stack, "Lifted", allowed_values={"Stage": None})
    assert set(lifted.allowed_values) == {"Confidentiality"}


def test_a_nested_stage_gets_its_review_in_its_own_assembly(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    persona(cdk.Stack(cdk.Stage(app, "Prod"), "Desktops"))
    app.synth()
    assert (tmp_path / "assembly-Prod" / REVIEW_FILE).is_file()
    assert not (tmp_path / REVIEW_FILE).exists()


def test_names_stay_unique_across_the_stacks_of_an_app() -> None:
    app = cdk.App()
    persona(cdk.Stack(app, "A"))
    with pytest.raises(BakeryValidationError, match=r"used by A/P"):
        persona(cdk.Stack(app, "B"))
