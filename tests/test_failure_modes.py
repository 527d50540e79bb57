"""Faults, retries and rollbacks: each scenario ends with the six invariants checked.

The WorkSpaces fake holds state over time and injects errors behind a real boto3 client;
the real handlers and the deployed workflow definition run through CloudFormation's event
sequences (create, update, rollback, delete). See docs/security.md "Failure modes".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .fakes.transport import throttle
from .harness import invariants
from .harness.cloudformation import DeployError
from .harness.stacks import two_personas
from .harness.world import World, world

Templates = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def templates() -> Templates:
    return {
        "v1": two_personas(),
        "v2": two_personas(developer_version="1.1.0"),
        "v2-tags": two_personas(developer_version="1.1.0", stage="test", developer_system=None),
        "both": two_personas(developer_version="1.1.0", office_version="1.1.0"),
        "compute": two_personas(developer_compute="POWER"),
        "resync": two_personas(context={"workspaces-image-bakery:resync": "1"}),
        "tags": two_personas(stage="test"),
    }


@contextmanager
def scenario(template: dict[str, Any], **options: Any) -> Iterator[tuple[World, dict[str, Any]]]:
    with world(template, foreign=True, **options) as w:
        yield w, invariants.snapshot_foreign(w)


def fails(w: World, template: dict[str, Any]) -> str:
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(template)
    return str(failure.value)


def bundle_image(w: World, persona: str) -> str:
    (image,) = [b["image"] for n, b in w.bundles().items() if n.startswith(f"{persona}-")]
    return str(image)


# 1
def test_template_workspace_does_not_exist(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        del w.fake.workspaces["ws-dev0template1"]
        message = fails(w, templates["v1"])
        assert "template WorkSpace ws-dev0template1 does not exist" in message
        assert "persona developer" in message
        assert w.images() == {} and w.bundles() == {}
        invariants.check(w, foreign=foreign, failure=message, persona="developer")


# 2
@pytest.mark.parametrize("volume", ["root", "user"])
def test_encrypted_template_is_refused_before_imaging(templates: Templates, volume: str) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.fake.workspaces["ws-dev0template1"].__setattr__(f"{volume}_encrypted", True)
        message = fails(w, templates["v1"])
        assert f"encrypted {volume} volume" in message
        assert w.fake.count("CreateWorkspaceImage") == 0
        invariants.check(w, foreign=foreign, failure=message, persona="developer")


def test_template_encrypted_after_the_build_started_fails_in_the_workflow(
    templates: Templates,
) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        cfn = w.cloudformation
        original = cfn.run_builds

        def encrypt_then_run(pause_at: str | None = None) -> None:
            w.fake.workspaces["ws-off0template1"].user_encrypted = True
            original(pause_at)

        cfn.run_builds = encrypt_then_run  # type: ignore[method-assign]
        message = fails(w, templates["v1"])
        assert "encrypted user volume" in message
        assert "checking the template WorkSpace" in message
        invariants.check(w, foreign=foreign, failure=message, persona="office")


# 3
def test_stopped_template_is_started_waited_for_and_imaged(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.fake.workspaces["ws-dev0template1"].state = "STOPPED"
        w.cloudformation.deploy(templates["v1"])
        assert w.fake.count("StartWorkspaces") == 1
        assert bundle_image(w, "developer").startswith("developer-1.0.0-")
        assert (
            "WaitForTemplate"
            in w.cloudformation.runs[-1].visited + w.cloudformation.runs[0].visited
        )
        invariants.check(w, foreign=foreign, deployed=templates["v1"])


# 4
@pytest.mark.parametrize(
    ("state", "modifications"),
    [
        ("REBUILDING", []),
        ("MAINTENANCE", []),
        ("SUSPENDED", []),
        ("AVAILABLE", [{"Resource": "COMPUTE_TYPE", "State": "UPDATE_IN_PROGRESS"}]),
    ],
)
def test_busy_template_is_waited_for(
    templates: Templates, state: str, modifications: list[dict[str, str]]
) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        workspace = w.fake.workspaces["ws-dev0template1"]
        workspace.state, workspace.modifications, workspace.settles_after = state, modifications, 5
        w.cloudformation.deploy(templates["v1"])
        assert bundle_image(w, "developer").startswith("developer-1.0.0-")
        invariants.check(w, foreign=foreign, deployed=templates["v1"])


def test_template_busy_beyond_the_bound_fails_clearly(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.fake.workspaces["ws-dev0template1"].state = "REBUILDING"
        message = fails(w, templates["v1"])
        assert "did not finish within its bound of 21600 s" in message
        assert "waiting for template WorkSpace ws-dev0template1" in message
        assert w.fake.count("CreateWorkspaceImage") == 1  # only the office image was made
        invariants.check(w, foreign=foreign, failure=message, persona="developer")


# 5
def test_image_quota_reached(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.fake.fail("CreateWorkspaceImage", "ResourceLimitExceededException", "Images limit: 40")
        message = fails(w, templates["v1"])
        assert (
            "image quota is reached (ResourceLimitExceededException: Images limit: 40)" in message
        )
        assert "Service Quotas" in message
        invariants.check(w, foreign=foreign, failure=message)


# 6
def test_image_in_error_fails_with_its_code_and_keeps_the_previous_image(
    templates: Templates,
) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        previous = bundle_image(w, "developer")
        w.fake.image_ends_in_error("InsufficientDiskSpace", "Root volume is 98% full")
        message = fails(w, templates["v2"])
        assert "InsufficientDiskSpace: Root volume is 98% full" in message
        assert "waiting for the image" in message
        assert bundle_image(w, "developer") == previous
        invariants.check(w, foreign=foreign, failure=message, persona="developer")


# 7
OPERATIONS = [
    "DescribeWorkspaces",
    "StartWorkspaces",
    "CreateWorkspaceImage",
    "DescribeWorkspaceImages",
    "DeleteWorkspaceImage",
    "CreateWorkspaceBundle",
    "DescribeWorkspaceBundles",
    "UpdateWorkspaceBundle",
    "DeleteWorkspaceBundle",
    "DescribeTags",
    "CreateTags",
    "DeleteTags",
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_throttling_is_retried_with_backoff(templates: Templates, operation: str) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.fake.workspaces["ws-dev0template1"].state = "STOPPED"
        w.fake.fail(operation, "ThrottlingException", "Rate exceeded", times=4)
        w.cloudformation.deploy(templates["v1"])
        w.cloudformation.deploy(templates["v2"])
        w.cloudformation.deploy(templates["v2-tags"])
        invariants.check(w, foreign=foreign, deployed=templates["v2-tags"])
        w.cloudformation.delete_stack()
        assert w.images() == {} and w.bundles() == {}
        assert not w.fake.faults[operation], f"{operation} was never called"


def test_throttling_beyond_botocore_retries_is_retried_by_the_workflow(
    templates: Templates,
) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        # 12 in a row outlast botocore's 10 attempts; the workflow's Retry takes over.
        w.fake.fail("DescribeWorkspaceImages", "ThrottlingException", "Rate exceeded", times=12)
        w.cloudformation.deploy(templates["v1"])
        assert sum(run.retries for run in w.cloudformation.runs) >= 1
        invariants.check(w, foreign=foreign, deployed=templates["v1"])


# 8
def test_lost_create_response_and_retried_step_make_one_image(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        # The image is created but the answer is lost: botocore retries, the service says the
        # template is busy (it is being imaged), and the step adopts its own image by name
        # and ownership tag instead of waiting for the template.
        w.fake.fail("CreateWorkspaceImage", "InternalServerError", "oops", applied=True)
        w.cloudformation.deploy(templates["v1"])
        assert len(w.images()) == 2
        assert w.fake.count("CreateWorkspaceImage") == 3  # 2 personas + 1 botocore retry
        invariants.check(w, foreign=foreign, deployed=templates["v1"])


def test_lost_bundle_response_makes_one_bundle(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.fake.fail("CreateWorkspaceBundle", "InternalServerError", "oops", applied=True)
        w.cloudformation.deploy(templates["v1"])
        assert len(w.bundles()) == 2
        invariants.check(w, foreign=foreign, deployed=templates["v1"])


# 9
def test_build_outliving_its_bound_fails_and_the_image_is_cleaned_up(
    templates: Templates,
) -> None:
    with scenario(templates["v1"], image_polls=10_000) as (w, foreign):
        message = fails(w, templates["v1"])
        assert "did not finish within its bound of 21600 s" in message
        pending = [i for i in w.fake.images.values() if i.state == "PENDING"]
        assert pending, "the unfinished image is handed to a cleanup execution"
        for image in pending:  # the image settles some time later
            image.polls_left = 1
        w.cloudformation.run_builds()
        invariants.check(w, foreign=foreign, failure=message)
        assert w.images() == {}


# 10
@pytest.mark.parametrize("how", ["rollback", "delete"])
def test_stack_operation_ending_mid_build_stops_the_build(templates: Templates, how: str) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        cfn = w.cloudformation
        cfn.deploy(templates["v1"])
        previous = bundle_image(w, "developer")
        if how == "rollback":
            original = cfn.run_builds
            cfn.run_builds = lambda pause_at=None: original("WaitForImage")  # type: ignore[method-assign]
            message = fails(w, templates["v2"])  # the build is still running: rollback
            cfn.run_builds = original  # type: ignore[method-assign]
            assert "timed out" in message
            assert bundle_image(w, "developer") == previous
        else:
            cfn.deploy(templates["v1"])
            cfn.send_event(
                "Create",
                "Extra",
                "Custom::WorkSpacesImage",
                {
                    **cfn.stack.sent[next(k for k in cfn.stack.sent if "DeveloperImage" in k)],
                    "ImageName": "developer-9.9.9-00000000",
                },
            )
            cfn.run_builds(pause_at="WaitForImage")
            cfn.send_event(
                "Delete",
                "Extra",
                "Custom::WorkSpacesImage",
                {},
                physical_id="developer-9.9.9-00000000",
            )
        pending = [i for i in w.fake.images.values() if i.state == "PENDING"]
        assert pending
        for image in pending:  # the image settles some time later
            image.polls_left = 1
        cfn.run_builds()  # the cleanup execution deletes the image once it settled
        assert all(i.state == "AVAILABLE" for i in w.fake.images.values())
        invariants.check(w, foreign=foreign, deployed=templates["v1"])


# 11
def test_rollback_after_the_bundle_moved_restores_the_previous_image(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        before = {p: bundle_image(w, p) for p in ("developer", "office")}
        w.fake.fail("UpdateWorkspaceBundle", "AccessDeniedException", "denied", after=1)
        message = fails(w, templates["both"])
        assert "UpdateWorkspaceBundle failed: AccessDeniedException" in message
        assert {p: bundle_image(w, p) for p in ("developer", "office")} == before
        invariants.check(w, foreign=foreign, deployed=templates["v1"], failure=message)


# 12
def test_bundle_deleted_out_of_band(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        (gone,) = [b["id"] for n, b in w.bundles().items() if n.startswith("developer-")]
        del w.fake.bundles[gone]
        w.fake.tags.pop(gone)
        w.cloudformation.deploy(templates["v2"])  # an update recreates it
        assert bundle_image(w, "developer").startswith("developer-1.1.0-")
        invariants.check(w, foreign=foreign, deployed=templates["v2"])
        (again,) = [b["id"] for n, b in w.bundles().items() if n.startswith("developer-")]
        del w.fake.bundles[again]
        w.fake.tags.pop(again)
        w.cloudformation.delete_stack()  # delete of something already gone succeeds
        invariants.check(w, foreign=foreign)
        assert w.images() == {} and w.bundles() == {}


def test_image_deleted_out_of_band(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        (bundle_id,) = [b["id"] for n, b in w.bundles().items() if n.startswith("developer-")]
        image_id = w.fake.bundles[bundle_id].image_id
        del w.fake.bundles[bundle_id], w.fake.images[image_id]  # both, as AWS requires
        message = fails(w, templates["tags"])
        assert "no longer exists" in message and "rebuild" in message
        w.cloudformation.deploy(templates["v2"])  # a new version builds it again
        invariants.check(w, foreign=foreign, deployed=templates["v2"])
        w.cloudformation.delete_stack()
        invariants.check(w, foreign=foreign)


# 13
def test_bundle_name_taken_by_a_foreign_bundle(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, _):
        name = next(
            r["Properties"]["BundleName"]
            for r in templates["v1"]["Resources"].values()
            if r["Type"] == "Custom::WorkSpacesBundle"
        )
        other = next(iter(w.fake.bundles.values()))
        other.name = name
        foreign = invariants.snapshot_foreign(w)  # with the renamed bundle
        message = fails(w, templates["v1"])
        assert f"a bundle named {name} already exists" in message
        assert "not managed by this stack" in message
        invariants.check(w, foreign=foreign, failure=message)


# 14
def test_tags_changed_out_of_band_are_restored_by_a_resync_deploy(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        cfn = w.cloudformation
        cfn.deploy(templates["v1"])
        for resource_id in [*w.fake.images, *w.fake.bundles]:
            if w.owned(resource_id):
                w.fake.tags[resource_id]["Stage"] = "hacked"
                w.fake.tags[resource_id]["Extra"] = "added by hand"
                w.fake.tags[resource_id].pop("Role")
        cfn.deploy(templates["resync"])
        assert w.fake.count("CreateWorkspaceImage") == 2
        invariants.check(w, foreign=foreign, deployed=templates["resync"])


# 15
def test_two_builds_one_fails_the_other_persona_is_untouched(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        before = {p: bundle_image(w, p) for p in ("developer", "office")}
        w.fake.image_ends_in_error("OperatingSystemNotSupported", "not supported")
        message = fails(w, templates["both"])
        assert "OperatingSystemNotSupported" in message
        assert {p: bundle_image(w, p) for p in ("developer", "office")} == before
        invariants.check(w, foreign=foreign, deployed=templates["v1"], failure=message)


# 16
def test_bundle_replacement_failing_half_way_keeps_the_old_bundle(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        before = {n: b["id"] for n, b in w.bundles().items()}
        w.fake.fail("CreateWorkspaceBundle", "ResourceLimitExceededException", "bundle limit")
        message = fails(w, templates["compute"])
        assert "custom bundle quota is reached" in message
        assert {n: b["id"] for n, b in w.bundles().items()} == before
        assert all(b["compute"] == "PERFORMANCE" for n, b in w.bundles().items() if "dev" in n)
        invariants.check(w, foreign=foreign, deployed=templates["v1"], failure=message)
        w.cloudformation.deploy(templates["compute"])  # the same change later succeeds
        assert {n: b["compute"] for n, b in w.bundles().items() if n.startswith("developer")} == {
            next(n for n in w.bundles() if n.startswith("developer")): "POWER"
        }
        invariants.check(w, foreign=foreign, deployed=templates["compute"])


# 18
def test_list_calls_page_through_next_token(templates: Templates) -> None:
    with scenario(templates["v1"], page_size=1) as (w, _):
        for _ in range(3):
            w.fake.add_foreign()
        foreign = invariants.snapshot_foreign(w)
        cfn = w.cloudformation
        cfn.deploy(templates["v1"])
        cfn.deploy(templates["v2"])
        retried = [
            p for op, p in w.fake.calls if op == "DescribeWorkspaceImages" and "NextToken" in p
        ]
        assert retried, "the image look-up read later pages"
        assert any(op == "DescribeWorkspaceBundles" and "NextToken" in p for op, p in w.fake.calls)
        invariants.check(w, foreign=foreign, deployed=templates["v2"])
        cfn.delete_stack()
        invariants.check(w, foreign=foreign)


def test_an_image_handed_to_cleanup_is_never_adopted_by_a_later_build(
    templates: Templates,
) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        cfn = w.cloudformation
        original = cfn.run_builds
        cfn.run_builds = lambda pause_at=None: original("WaitForImage")  # type: ignore[method-assign]
        fails(w, templates["v1"])  # rolled back mid-build: both images PENDING, marked
        cfn.run_builds = original  # type: ignore[method-assign]
        pending = [i for i in w.fake.images.values() if i.state == "PENDING"]
        assert len(pending) == 2
        assert all("workspaces-image-bakery:cleanup" in w.fake.tags[i.image_id] for i in pending)
        # A redeploy now (with the template WorkSpaces free again): its builds wait for the
        # cleanup instead of adopting the half-made images.
        for workspace in w.fake.workspaces.values():
            workspace.state = "AVAILABLE"
        message = fails(w, templates["v1"])
        assert "is being cleaned up" in message
        for image in pending:
            image.polls_left = 1
        cfn.run_builds()  # the cleanup executions delete the settled images
        cfn.deploy(templates["v1"])  # and the next deploy builds afresh
        assert all(i.image_id not in {p.image_id for p in pending} for i in w.fake.images.values())
        invariants.check(w, foreign=foreign, deployed=templates["v1"])


@pytest.mark.parametrize("operation", ["StartExecution", "ListExecutions", "StopExecution"])
def test_step_functions_throttling_is_retried(templates: Templates, operation: str) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        throttle(w.clients.stepfunctions, operation, times=4)
        w.cloudformation.deploy(templates["v2"])
        invariants.check(w, foreign=foreign, deployed=templates["v2"])


def test_cloudformation_throttling_is_retried(templates: Templates) -> None:
    with scenario(templates["v1"]) as (w, foreign):
        w.cloudformation.deploy(templates["v1"])
        (bundle_id,) = [b["id"] for n, b in w.bundles().items() if n.startswith("developer-")]
        image_id = w.fake.bundles[bundle_id].image_id
        del w.fake.bundles[bundle_id], w.fake.images[image_id]
        throttle(w.clients.cloudformation, "DescribeStacks", times=4)
        fails(w, templates["tags"])  # the rollback asks DescribeStacks, through the throttling
        assert w.cloudformation.status.calls >= 1
        invariants.check(w, foreign=foreign)
