"""Release with a way back: a candidate bundle, promotion, a pinned rollback with no build,
retention and pruning, and the Region's image quota checked before a build."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from bakery_runtime.core import contract

from workspaces_image_bakery import (
    Distribution,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    Release,
    RolloutSchedule,
    TemplateBuild,
)
from workspaces_image_bakery.core.validation import BakeryValidationError

from .fakes.workspaces_service import Image
from .harness import cfn_lint, invariants
from .harness.cloudformation import DeployError
from .harness.world import World, world

Templates = dict[str, dict[str, Any]]


def office(
    version: str,
    *,
    released: str | None = None,
    candidate: bool = False,
    retained: int | None = None,
    context: dict[str, Any] | None = None,
    construct_id: str = "Office",
    name: str = "office",
    tags_extra: dict[str, str] | None = None,
    **more: Any,
) -> ImageBakeryStack:
    app = cdk.App(context=context or {"workspaces-image-bakery:review": "false"})
    stack = ImageBakeryStack(
        app, "Release", tag_defaults={"Project": "desktops", "CostCenter": "cc-1", "Stage": "dev"}
    )
    stack.add_persona(
        construct_id,
        name=name,
        design=ImageDesign.FULLY_BAKED,
        image_version=version,
        template_workspace_id="ws-off0template1",
        baked_applications=["libreoffice 7.6"],
        tags={"Role": "office", "Confidentiality": "internal", **(tags_extra or {})},
        release=Release(
            released_version=released,
            candidate_bundle=candidate,
            retained_images=contract.DEFAULT_RETAINED_IMAGES if retained is None else retained,
        ),
        **more,
    )
    return stack


def template(version: str, **options: Any) -> dict[str, Any]:
    return dict(Template.from_stack(office(version, **options)).to_json())


@pytest.fixture(scope="module")
def templates() -> Templates:
    return {
        "1.0": template("1.0"),
        "1.1": template("1.1"),
        "1.2": template("1.2"),
        "1.1 pinned to 1.0": template("1.1", released="1.0"),
        "1.1 pinned to 0.9": template("1.1", released="0.9"),
        "1.2 pinned to 1.0": template("1.2", released="1.0"),
        "1.0 keep 2": template("1.0", retained=2),
        "1.1 keep 2": template("1.1", retained=2),
        "1.2 keep 2": template("1.2", retained=2),
        "candidate 1.0 released 1.0": template("1.0", released="1.0", candidate=True),
        "candidate 1.1 released 1.0": template("1.1", released="1.0", candidate=True),
        "candidate 1.1 released 1.1": template("1.1", released="1.1", candidate=True),
        "another persona": template("1.0", construct_id="Desk", name="desk"),
    }


@contextmanager
def account(first: dict[str, Any], **options: Any) -> Iterator[tuple[World, dict[str, Any]]]:
    """A world with someone else's image and bundle in the account, deployed once."""
    with world(first, foreign=True, **options) as w:
        foreign = invariants.snapshot_foreign(w)
        w.cloudformation.deploy(first)
        yield w, foreign


def served(w: World) -> dict[str, str]:
    """Bundle kind ("main" or "candidate") -> the name of the image it uses."""
    return {
        ("candidate" if "-candidate-" in name else "main"): str(b["image"])
        for name, b in w.bundles().items()
    }


def images_of_version(w: World, version: str) -> list[str]:
    return [n for n in w.images() if n.startswith(f"office-{version}-")]


# --- test before release ------------------------------------------------------------------


def test_a_candidate_bundle_gets_the_new_image_and_users_get_it_on_promotion(
    templates: Templates,
) -> None:
    with account(templates["candidate 1.0 released 1.0"]) as (w, foreign):
        (first,) = images_of_version(w, "1.0")
        assert served(w) == {"main": first, "candidate": first}
        main_id = next(b["id"] for n, b in w.bundles().items() if "-candidate-" not in n)

        w.cloudformation.deploy(templates["candidate 1.1 released 1.0"])
        (second,) = images_of_version(w, "1.1")
        assert served(w) == {"main": first, "candidate": second}  # testers only
        assert contract.RETAINED_TAG_KEY in w.fake.tags[w.images()[first]["id"]]
        invariants.check(w, foreign=foreign, deployed=templates["candidate 1.1 released 1.0"])

        builds = w.fake.count("CreateWorkspaceImage")
        w.cloudformation.deploy(templates["candidate 1.1 released 1.1"])  # the promotion
        assert served(w) == {"main": second, "candidate": second}
        assert w.fake.count("CreateWorkspaceImage") == builds  # nothing built
        main = next(b for n, b in w.bundles().items() if "-candidate-" not in n)
        assert main["id"] == main_id  # moved in place
        invariants.check(w, foreign=foreign, deployed=templates["candidate 1.1 released 1.1"])


def test_a_failed_candidate_build_reaches_no_bundle(templates: Templates) -> None:
    with account(templates["candidate 1.0 released 1.0"]) as (w, foreign):
        before = served(w)
        w.fake.image_ends_in_error("InsufficientDiskSpace", "Root volume is 98% full")
        with pytest.raises(DeployError, match="InsufficientDiskSpace"):
            w.cloudformation.deploy(templates["candidate 1.1 released 1.0"])
        assert served(w) == before
        invariants.check(w, foreign=foreign, failure="persona office: InsufficientDiskSpace ...")


# --- a way back -----------------------------------------------------------------------------


def test_a_pinned_rollback_moves_the_bundle_back_with_no_build(templates: Templates) -> None:
    with account(templates["1.0"]) as (w, foreign):
        (old,) = images_of_version(w, "1.0")
        w.cloudformation.deploy(templates["1.1"])
        (new,) = images_of_version(w, "1.1")
        assert served(w) == {"main": new}
        calls = len(w.fake.calls)
        builds = w.fake.count("CreateWorkspaceImage")
        runs = len(w.cloudformation.runs)

        w.cloudformation.deploy(templates["1.1 pinned to 1.0"])
        assert served(w) == {"main": old}
        assert w.fake.count("CreateWorkspaceImage") == builds
        assert len(w.cloudformation.runs) == runs  # no build workflow started
        made = [op for op, _ in w.fake.calls[calls:]]
        assert "StartWorkspaces" not in made and "CreateWorkspaceImage" not in made
        assert made.count("UpdateWorkspaceBundle") == 1
        assert set(w.images()) == {old, new}  # both kept: the built one is still declared
        invariants.check(w, foreign=foreign, deployed=templates["1.1 pinned to 1.0"])

        w.cloudformation.deploy(templates["1.1"])  # unpin: back to the build, again no build
        assert served(w) == {"main": new}
        assert w.fake.count("CreateWorkspaceImage") == builds


def test_a_pin_never_waits_for_a_build_nor_moves_users_twice(templates: Templates) -> None:
    """A pin is the emergency brake. A deploy that pins 1.0 while users are on 1.1 and also
    builds 1.2 would move users 1.1 -> 1.0, then back to 1.1 when the 1.2 build failed and
    the stack rolled back. It is refused in seconds instead, before any build starts and
    before the bundle moves; the pin alone then moves users at once, with no build."""
    with account(templates["1.0"]) as (w, foreign):
        w.cloudformation.deploy(templates["1.1"])
        (old,) = images_of_version(w, "1.0")
        (current,) = images_of_version(w, "1.1")
        calls, runs = len(w.fake.calls), len(w.cloudformation.runs)
        with pytest.raises(DeployError, match="A pin never waits for a build") as failure:
            w.cloudformation.deploy(templates["1.2 pinned to 1.0"])
        assert "pins the persona's bundle to version 1.0 (it served 1.1)" in str(failure.value)
        made = [op for op, _ in w.fake.calls[calls:]]
        assert "UpdateWorkspaceBundle" not in made and "CreateWorkspaceImage" not in made
        assert len(w.cloudformation.runs) == runs and served(w) == {"main": current}
        w.cloudformation.deploy(templates["1.1 pinned to 1.0"])  # the pin alone
        assert served(w) == {"main": old} and len(w.cloudformation.runs) == runs
        invariants.check(w, foreign=foreign, deployed=templates["1.1 pinned to 1.0"])


def test_pinning_a_version_that_is_not_retained_names_the_ones_that_are(
    templates: Templates,
) -> None:
    with account(templates["1.0"]) as (w, _):
        w.cloudformation.deploy(templates["1.1"])
        before = served(w)
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(templates["1.1 pinned to 0.9"])
        message = str(failure.value)
        assert "no retained AVAILABLE image of version 0.9" in message
        assert "1.0 (wsi-" in message and "1.1 (wsi-" in message
        assert served(w) == before


def test_a_pin_never_uses_an_image_the_stack_did_not_create(templates: Templates) -> None:
    with account(templates["1.0"]) as (w, _):
        w.cloudformation.deploy(templates["1.1"])
        (old,) = images_of_version(w, "1.0")
        old_id = w.images()[old]["id"]
        # Someone tags their own image as version 1.0 of the persona, and removes ours.
        foreign_id = next(i for i in w.fake.images if not w.owned(i))
        w.fake.tags[foreign_id].update(
            {contract.PERSONA_TAG_KEY: "office", contract.IMAGE_VERSION_TAG_KEY: "1.0"}
        )
        w.fake.images[old_id].state = "ERROR"
        with pytest.raises(DeployError, match=r"no retained AVAILABLE image of version 1\.0"):
            w.cloudformation.deploy(templates["1.1 pinned to 1.0"])
        assert foreign_id not in {
            b.image_id for b in w.fake.bundles.values() if w.owned(b.bundle_id)
        }


def test_a_pin_moves_users_only_to_an_image_whose_record_names_this_stack(
    templates: Templates,
) -> None:
    """An image someone tagged with this stack's ownership, persona and version tags (a tag
    is a label) is refused by a pin: it has no as-built record of this stack. The bundle
    stays where it was."""
    with account(templates["1.0"]) as (w, _):
        w.cloudformation.deploy(templates["1.1"])
        before = served(w)
        (old,) = images_of_version(w, "1.0")
        w.fake.images[w.images()[old]["id"]].state = "ERROR"
        planted = Image("wsi-000000666p", "office-1.0-planted0", "planted", "ws-other0template")
        planted.state = "AVAILABLE"
        w.fake.images[planted.image_id] = planted
        w.fake.tags[planted.image_id] = {
            contract.OWNER_TAG_KEY: w.cloudformation.stack_id,
            contract.PERSONA_TAG_KEY: "office",
            contract.IMAGE_VERSION_TAG_KEY: "1.0",
        }
        with pytest.raises(
            DeployError, match=r"refusing to pin version 1\.0 to image wsi-000000666p"
        ):
            w.cloudformation.deploy(templates["1.1 pinned to 1.0"])
        assert served(w) == before


def test_pruning_keeps_the_retained_count_and_what_is_shared_or_in_use(
    templates: Templates,
) -> None:
    with account(templates["1.0 keep 2"]) as (w, foreign):
        (v10,) = images_of_version(w, "1.0")
        w.cloudformation.deploy(templates["1.1 keep 2"])
        (v11,) = images_of_version(w, "1.1")
        assert set(w.images()) == {v10, v11}

        w.cloudformation.deploy(templates["1.2 keep 2"])
        (v12,) = images_of_version(w, "1.2")
        assert set(w.images()) == {v11, v12}  # 1.0 was beyond the two kept and unused
        invariants.check(w, foreign=foreign, deployed=templates["1.2 keep 2"])


def _shared(w: World, image_id: str) -> None:
    w.fake.images[image_id].shared_with.append("210987654321")


def _associated(w: World, image_id: str) -> None:
    w.fake.images[image_id].associations.append("wsa-0123456789")


def _unreadable(w: World, image_id: str) -> None:
    w.fake.fail("DescribeImageAssociations", "AccessDeniedException", "denied", times=99)


@pytest.mark.parametrize("make_busy", [_shared, _associated, _unreadable])
def test_pruning_never_deletes_a_shared_associated_or_unreadable_image(
    templates: Templates, make_busy: Any
) -> None:
    with account(templates["1.0 keep 2"]) as (w, foreign):
        (v10,) = images_of_version(w, "1.0")
        make_busy(w, w.images()[v10]["id"])
        w.cloudformation.deploy(templates["1.1 keep 2"])
        w.cloudformation.deploy(templates["1.2 keep 2"])
        assert images_of_version(w, "1.0") == [v10]  # beyond the two kept, but kept
        assert w.fake.count("DeleteWorkspaceImage") == 0
        assert snapshot_unchanged(w, foreign)


def snapshot_unchanged(w: World, foreign: dict[str, Any]) -> bool:
    return invariants.snapshot_foreign(w) == foreign


def test_a_stack_delete_removes_the_retained_images_too(templates: Templates) -> None:
    with account(templates["1.0"]) as (w, foreign):
        w.cloudformation.deploy(templates["1.1"])
        w.cloudformation.deploy(templates["1.2"])
        assert len(w.images()) == 3
        w.cloudformation.delete_stack()
        assert w.images() == {} and w.bundles() == {}
        assert snapshot_unchanged(w, foreign)


def test_a_stack_delete_keeps_the_images_of_a_retain_persona() -> None:
    """RETAIN is RETAIN: deleting a stack that mixes a DESTROY persona and a RETAIN one
    prunes the DESTROY persona's images only; the RETAIN persona's image and its retained
    images stay (before, the DESTROY persona's delete pruned every persona of the stack)."""
    from .harness.stacks import two_personas

    first = two_personas(office_removal_policy=cdk.RemovalPolicy.RETAIN)
    second = two_personas(
        developer_version="1.1.0",
        office_version="1.1.0",
        office_removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    with world(first) as w:
        w.cloudformation.deploy(first)
        w.cloudformation.deploy(second)
        office = {n for n in w.images() if n.startswith("office-")}
        assert len(office) == 2
        w.cloudformation.delete_stack()
        left = set(w.images())
    assert left == office


def test_retained_images_of_one_deletes_each_replaced_image() -> None:
    first, second = template("1.0", retained=1), template("1.1", retained=1)
    with account(first) as (w, foreign):
        w.cloudformation.deploy(second)
        assert set(w.images()) == set(images_of_version(w, "1.1"))
        invariants.check(w, foreign=foreign, deployed=second)


# --- the image quota --------------------------------------------------------------------------


def test_a_full_region_fails_the_build_before_anything_is_done() -> None:
    quota = {"workspaces-image-bakery:review": "false", "workspaces-image-bakery:image-quota": "3"}
    first, second, third = (template(v, retained=2, context=quota) for v in ("1.0", "1.1", "1.2"))
    # The foreign image and ours, then 1.1 with 1.0 retained: the quota of three is full.
    with account(first, image_quota=3) as (w, foreign):
        w.cloudformation.deploy(second)
        (old,) = images_of_version(w, "1.0")
        template_reboots = w.fake.workspaces["ws-off0template1"].reboots
        before = len(w.fake.calls)
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(third)
        message = str(failure.value)
        assert "the Region holds 3 images and the image quota is 3" in message
        assert "nothing was started" in message
        # Only this stack's image that no bundle uses is offered for removal.
        assert f"{w.images()[old]['id']} ({old}, version 1.0)" in message
        assert "someone-elses" not in message
        made = {op for op, _ in w.fake.calls[before:]}
        assert not made & {"StartWorkspaces", "CreateWorkspaceImage", "DeleteWorkspaceImage"}
        assert w.fake.workspaces["ws-off0template1"].reboots == template_reboots
        invariants.check(w, foreign=foreign, failure=message)


# --- synth-time checks ------------------------------------------------------------------------


def _error(**options: Any) -> str:
    with pytest.raises(BakeryValidationError) as error:
        office("1.1", **options)
    return str(error.value)


def test_release_props_are_checked_at_synth() -> None:
    assert "release.retained_images=1" in _error(released="1.0", retained=1)
    assert "release.released_version=None" in _error(candidate=True)
    assert "release.retained_images=0" in _error(retained=0)
    assert "release.released_version='1 0'" in _error(released="1 0")


def test_the_region_image_quota_is_checked_at_synth() -> None:
    app = cdk.App(context={"workspaces-image-bakery:review": "false"})
    stack = ImageBakeryStack(
        app, "Quota", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    with pytest.raises(BakeryValidationError) as error:
        for index in range(11):  # 11 x (3 retained + 1 building) = 44 > 40
            stack.add_persona(
                f"P{index}",
                name=f"p-{index}",
                design=ImageDesign.FULLY_BAKED,
                image_version="1.0",
                template_workspace_id=f"ws-quota{index:04d}",
                baked_applications=["firefox"],
                tags={"Role": "r", "Confidentiality": "internal"},
            )
    assert "44 images in the stack's Region" in str(error.value)
    assert "workspaces-image-bakery:image-quota" in str(error.value)


def test_the_review_says_what_the_bundles_serve() -> None:
    stack = office("1.1", released="1.0", candidate=True)
    persona = next(c for c in stack.node.find_all() if type(c).__name__ == "Persona")
    facts = persona.facts()  # type: ignore[attr-defined]
    assert "bundle pinned to retained 1.0" in facts.release
    assert "candidate bundle gets each new image (1.1 now)" in facts.release
    assert facts.candidate_bundle_name.startswith("office-candidate-")


# --- the persona's distribution and rollout props -------------------------------------------


def test_a_persona_copies_shares_and_rolls_out_when_asked() -> None:
    app = cdk.App(context={"workspaces-image-bakery:review": "false"})
    stack = ImageBakeryStack(
        app, "Spread", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    stack.add_persona(
        "Office",
        name="office",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0",
        template_workspace_id="ws-off0template1",
        baked_applications=["libreoffice 7.6"],
        tags={"Role": "office", "Confidentiality": "internal"},
        distribution=Distribution(
            regions=["eu-west-1", "ap-southeast-2"], accounts=["210987654321"]
        ),
        rollout=RolloutSchedule(schedule="cron(0 3 ? * SUN *)"),
    )
    synthesized = Template.from_stack(stack)
    synthesized.resource_count_is("Custom::WorkSpacesImageCopy", 2)
    synthesized.resource_count_is("Custom::WorkSpacesRegionalBundle", 2)
    synthesized.resource_count_is("Custom::WorkSpacesImageShare", 1)
    synthesized.resource_count_is("AWS::Scheduler::Schedule", 1)
    copy = next(iter(synthesized.find_resources("Custom::WorkSpacesImageCopy").values()))
    tags = {t["Key"]: t["Value"] for t in copy["Properties"]["Tags"]}
    assert tags["Name"] == "office" and tags["Version"] == "1.0"  # the derived tags


def test_a_plain_persona_makes_no_copy_share_or_schedule(templates: Templates) -> None:
    kinds = {r["Type"] for r in templates["1.0"]["Resources"].values()}
    assert not kinds & {
        "Custom::WorkSpacesImageCopy",
        "Custom::WorkSpacesImageShare",
        "AWS::Scheduler::Schedule",
    }


def test_regions_follow_the_build_so_they_refuse_a_pin() -> None:
    message = _error(released="1.0", distribution=Distribution(regions=["eu-west-1"]))
    assert "distribution.regions=['eu-west-1']" in message
    assert "release.released_version" in message


# --- validation before release ----------------------------------------------------------------

NODE = "mi-00000000000000001"  # the SSM fake's first managed node
CHECKS = ["systemctl is-active --quiet clamav-daemon", "test -x /usr/bin/libreoffice"]


def validated(version: str, released: str) -> dict[str, Any]:
    return template(
        version,
        released=released,
        candidate=True,
        preparation=ImagePreparation(),
        build=TemplateBuild(managed_node_id=NODE, validation_commands=CHECKS),
    )


@pytest.fixture(scope="module")
def validated_templates() -> Templates:
    return {"1.0": validated("1.0", "1.0"), "1.1": validated("1.1", "1.0")}


def test_validation_runs_on_the_prepared_template_before_the_image(
    validated_templates: Templates,
) -> None:
    with world(validated_templates["1.0"], foreign=True) as w:
        node = w.ssm.add_node("ws-off0template1")
        w.cloudformation.deploy(validated_templates["1.0"])
        assert node.validations == 1
        run = next(r for r in w.cloudformation.runs if "ValidateTemplate" in r.visited)
        steps = [s for s in run.visited if s in ("VerifyMarker", "ValidateTemplate", "Image")]
        assert steps == ["VerifyMarker", "ValidateTemplate", "Image"]
        script = "\n".join(w.ssm.script_sent("validate"))  # downloaded from its asset
        assert "bash -c 'systemctl is-active --quiet clamav-daemon'" in script
        assert "check 2: test -x /usr/bin/libreoffice" in script


def test_a_build_that_fails_validation_is_not_released(validated_templates: Templates) -> None:
    with world(validated_templates["1.0"], foreign=True) as w:
        node = w.ssm.add_node("ws-off0template1")
        foreign = invariants.snapshot_foreign(w)
        w.cloudformation.deploy(validated_templates["1.0"])
        before = served(w)
        node.validation_outcome = (
            "Failed",
            "==> bakery step: check 1: systemctl is-active --quiet clamav-daemon\n",
            "==> bakery failed: check 1: systemctl is-active --quiet clamav-daemon (exit 3)\n",
            3,
        )
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(validated_templates["1.1"])
        message = str(failure.value)
        assert "the validation on template WorkSpace ws-off0template1" in message
        assert "check 1: systemctl is-active --quiet clamav-daemon (exit 3)" in message
        assert "with exit code 3" in message and "no image was taken" in message
        assert images_of_version(w, "1.1") == []
        assert served(w) == before  # neither the candidate nor the persona's bundle moved
        invariants.check(w, foreign=foreign, failure=message, persona="office")


def test_validation_needs_a_managed_node() -> None:
    message = _error(build=TemplateBuild(validation_commands=["true"]))
    assert "build.validation_commands=" in message and "build.managed_node_id" in message


# --- retention through CloudFormation's lifecycle ---------------------------------------------


def test_a_removed_persona_takes_its_retained_images_with_it(templates: Templates) -> None:
    with account(templates["1.0"]) as (w, foreign):
        w.cloudformation.deploy(templates["1.1"])
        assert len(images_of_version(w, "1.0") + images_of_version(w, "1.1")) == 2
        w.cloudformation.deploy(templates["another persona"])  # office removed, desk added
        assert images_of_version(w, "1.0") == images_of_version(w, "1.1") == []
        assert [n for n in w.images() if n.startswith("desk-")]
        invariants.check(w, foreign=foreign, deployed=templates["another persona"])


def test_a_rollback_never_deletes_a_retained_image_a_build_adopted(templates: Templates) -> None:
    with account(templates["1.0"]) as (w, foreign):
        (v10,) = images_of_version(w, "1.0")
        w.cloudformation.deploy(templates["1.1"])
        # Going back to 1.0's recipe adopts the retained image by name and ownership; then
        # the bundle update fails and CloudFormation rolls back, deleting what it created.
        w.fake.fail("UpdateWorkspaceBundle", "AccessDeniedException", "denied")
        with pytest.raises(DeployError, match="AccessDeniedException") as failure:
            w.cloudformation.deploy(templates["1.0"])
        assert images_of_version(w, "1.0") == [v10]  # the way back is still there
        assert served(w) == {"main": images_of_version(w, "1.1")[0]}
        invariants.check(w, foreign=foreign, failure=str(failure.value))


def test_lowering_retained_images_prunes_in_that_deploy(templates: Templates) -> None:
    with account(templates["1.0"]) as (w, _):
        w.cloudformation.deploy(templates["1.1"])
        w.cloudformation.deploy(templates["1.2"])
        assert len(w.images()) == 3
        builds = w.fake.count("CreateWorkspaceImage")
        w.cloudformation.deploy(templates["1.2 keep 2"])  # same recipe: an in-place update
        assert images_of_version(w, "1.0") == []
        assert len(w.images()) == 2
        assert w.fake.count("CreateWorkspaceImage") == builds


def test_a_pinned_bundle_carries_the_released_images_version(templates: Templates) -> None:
    with account(templates["1.0"]) as (w, foreign):
        w.cloudformation.deploy(templates["1.1"])
        w.cloudformation.deploy(templates["1.1 pinned to 1.0"])
        (bundle,) = w.bundles().values()
        assert bundle["tags"]["Version"] == "1.0"
        invariants.check(w, foreign=foreign, deployed=templates["1.1 pinned to 1.0"])
    resources = templates["1.1 pinned to 1.0"]["Resources"]
    (image,) = [k for k, r in resources.items() if r["Type"] == "Custom::WorkSpacesImage"]
    (pinned,) = [r for r in resources.values() if r["Type"] == "Custom::WorkSpacesBundle"]
    assert image in pinned["DependsOn"]  # deleted before the image on a stack delete


def test_regional_copies_count_against_each_regions_image_quota() -> None:
    quota = {"workspaces-image-bakery:review": "false", "workspaces-image-bakery:image-quota": "5"}
    app = cdk.App(context=quota)
    tags = {"Project": "p", "CostCenter": "c", "Stage": "dev"}

    def persona(stack: ImageBakeryStack, index: int, **props: Any) -> None:
        stack.add_persona(
            f"P{index}",
            name=f"p-{index}",
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0",
            template_workspace_id=f"ws-region{index:04d}",
            baked_applications=["firefox"],
            release=Release(retained_images=1),
            tags={"Role": "r", "Confidentiality": "internal"},
            **props,
        )

    ireland = ImageBakeryStack(
        app, "Ireland", env=cdk.Environment(region="eu-west-1"), tag_defaults=tags
    )
    persona(ireland, 0)
    persona(ireland, 1)  # 2 x (1 retained + 1 building) = 4 images in eu-west-1
    virginia = ImageBakeryStack(
        app, "Virginia", env=cdk.Environment(region="us-east-1"), tag_defaults=tags
    )
    with pytest.raises(BakeryValidationError) as error:
        persona(virginia, 2, distribution=Distribution(regions=["eu-west-1"]))  # 2 more there
    assert "6 images in eu-west-1" in str(error.value)
    assert "regions=" in str(error.value)


# --- WorkspaceImage.image_id ------------------------------------------------------------------


def test_image_id_answers_the_checked_id_of_the_built_image() -> None:
    stack = office("1.0")
    persona = next(c for c in stack.node.find_all() if type(c).__name__ == "Persona")
    cdk.CfnOutput(stack, "OfficeImageId", value=persona.image.image_id)  # type: ignore[attr-defined]
    made = dict(Template.from_stack(stack).to_json())
    assert cfn_lint.errors(made) == []
    (logical,) = [
        k for k, r in made["Resources"].items() if r["Type"] == "Custom::WorkSpacesImageId"
    ]
    with world(made, foreign=True) as w:
        w.cloudformation.deploy(made)
        (image,) = images_of_version(w, "1.0")
        assert w.cloudformation.stack.data[logical]["ImageId"] == w.images()[image]["id"]
        # A signal naming another image is refused, as a bundle refuses it.
        foreign_id = next(i for i in w.fake.images if not w.owned(i))
        forged = dict(w.cloudformation.stack.sent[logical])
        forged[contract.IMAGE_BUILD_RESULT] = json.dumps({"image": foreign_id})
        with pytest.raises(Exception, match=f"refusing image {foreign_id}"):
            w.cloudformation.send_event(
                "Update",
                logical,
                "Custom::WorkSpacesImageId",
                forged,
                old_properties=w.cloudformation.stack.sent[logical],
                physical_id=w.images()[image]["id"],
            )


def test_the_quota_is_checked_once_per_build_before_the_template() -> None:
    machine = template("1.0")["Resources"]
    (definition,) = [
        r["Properties"]["DefinitionString"]
        for r in machine.values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    text = json.dumps(definition)
    assert text.count(f'\\"Step\\":\\"{contract.STEP_CHECK_QUOTA}\\"') == 1
    with account(template("1.0")) as (w, _):
        run = w.cloudformation.runs[0]
        assert run.visited[:3] == ["CleanupOrBuild?", "LoadRequest", "CheckImageQuota"]
        assert run.visited.count("CheckImageQuota") == 1


def test_pruning_never_deletes_the_image_the_stack_declares(templates: Templates) -> None:
    from bakery_runtime.release.retention import prune

    with account(templates["1.0"]) as (w, _):
        w.cloudformation.deploy(templates["1.1"])
        w.cloudformation.deploy(templates["1.2"])
        (oldest,) = images_of_version(w, "1.0")
        # As after a build adopted 1.0's image again: it is the one declared, and the oldest.
        result = prune(w.clients.workspaces, "office", 1, w.cloudformation.stack_id, current=oldest)
        assert w.images()[oldest]["id"] not in result.deleted
        assert oldest in w.images()


def test_pruning_deletes_only_images_whose_record_names_this_stack(templates: Templates) -> None:
    """An unused image that someone tagged with exactly this stack's id and persona (or one
    built before records existed) is kept: ownership is the runtime-written record, and the
    tag only a label. A pruned image's record and SBOM go with it."""
    from datetime import UTC, datetime

    from bakery_runtime.image_build.image_resource import _prune_quietly

    from .fakes.workspaces_service import Image

    with account(templates["1.0"]) as (w, _):
        w.cloudformation.deploy(templates["1.1"])
        stack = w.cloudformation.stack_id
        planted = Image("wsi-000000777p", "office-0.9-deadbeef", "planted", "ws-off0template1")
        planted.state = "AVAILABLE"
        planted.created = datetime(2026, 1, 1, tzinfo=UTC)
        w.fake.images[planted.image_id] = planted
        w.fake.tags[planted.image_id] = {
            contract.OWNER_TAG_KEY: stack,
            contract.PERSONA_TAG_KEY: "office",
            contract.IMAGE_VERSION_TAG_KEY: "0.9",
        }
        (old,) = images_of_version(w, "1.0")
        (new,) = images_of_version(w, "1.1")
        records = {
            o["Key"]
            for o in w.clients.s3.list_objects_v2(Bucket="bakery-evidence-fake").get("Contents", [])
        }
        assert f"records/office/{old}.json" in records
        _prune_quietly(w.clients, "office", 1, stack, current=new)
        assert planted.image_id in w.fake.images  # no record: kept
        assert old not in w.images() and new in w.images()
        left = {
            o["Key"]
            for o in w.clients.s3.list_objects_v2(Bucket="bakery-evidence-fake").get("Contents", [])
        }
        assert f"records/office/{old}.json" not in left
        assert f"records/office/{new}.json" in left


def test_tags_leave_room_for_the_librarys_own() -> None:
    many = {f"Key{i}": "v" for i in range(41)}  # with the persona's Role and Confidentiality
    with pytest.raises(BakeryValidationError) as error:
        office("1.0", tags_extra=many)
    assert "at most 40" in str(error.value)
