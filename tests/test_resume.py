"""Resume from the failed step: a build that fails after its preparation leaves a resume
point; a redeploy of the same recipe on an unchanged template starts at the failed step
(no Run Command call before it), a touched template or a changed recipe starts over.
Driven through the deployed workflow against the WorkSpaces, SSM and Inspector fakes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from bakery_runtime.core import contract

from workspaces_image_bakery import (
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    TemplateBuild,
    VulnerabilityGate,
)
from workspaces_image_bakery.image_build.run_command import resume_guard_lines

from .fakes.inspector_scan_service import Advisory
from .harness.cloudformation import DeployError
from .harness.world import World, world

NODE = "mi-00000000000000001"  # the SSM fake's first managed node
TEMPLATE = "ws-off0template1"
BUCKET = "bakery-evidence-fake"
CHECKS = ["systemctl is-active --quiet clamav-daemon"]
FAILED_CHECK = (
    "Failed",
    "==> bakery step: check 1: systemctl is-active --quiet clamav-daemon\n",
    "==> bakery failed: check 1: systemctl is-active --quiet clamav-daemon (exit 3)\n",
    3,
)
XZ = Advisory("CVE-2024-3094", "CRITICAL", "5.6.1+really5.4.5-1")


def _template(version: str, *, gate: bool = False) -> dict[str, Any]:
    app = cdk.App(context={"workspaces-image-bakery:review": "false"})
    stack = ImageBakeryStack(
        app, "Resume", tag_defaults={"Project": "desktops", "CostCenter": "cc-1", "Stage": "dev"}
    )
    stack.add_persona(
        "Office",
        name="office",
        design=ImageDesign.FULLY_BAKED,
        image_version=version,
        template_workspace_id=TEMPLATE,
        baked_applications=["libreoffice 7.6"],
        tags={"Role": "office", "Confidentiality": "internal"},
        preparation=ImagePreparation(),
        build=TemplateBuild(managed_node_id=NODE, validation_commands=CHECKS),
        vulnerability_gate=VulnerabilityGate() if gate else None,
    )
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    return {
        "1.0": _template("1.0"),
        "1.1": _template("1.1"),
        "1.2": _template("1.2"),
        "gated": _template("1.0", gate=True),
    }


def _sends(w: World, since: int = 0) -> list[dict[str, Any]]:
    return [p for op, p in w.ssm.calls[since:] if op == "SendCommand"]


def _what(send: dict[str, Any]) -> str:
    """A command's purpose (prepare, validate, seal) or its document (marker, inventory)."""
    purpose = send.get("Parameters", {}).get("purpose")
    return purpose[0] if purpose else str(send["DocumentName"])


def _json(w: World, key: str) -> dict[str, Any]:
    body = w.clients.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return dict(json.loads(body))


def _record(w: World, version: str) -> dict[str, Any]:
    (key,) = [
        o["Key"]
        for o in w.clients.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
        if o["Key"].startswith(f"{contract.RECORDS_PREFIX}office/office-{version}-")
    ]
    return _json(w, key)


def _reasons(w: World) -> list[str]:
    return [s["Reason"] for got in w.cloudformation.signals.received.values() for s in got]


def _fail_validation(w: World, templates: dict[str, dict[str, Any]]) -> str:
    """1.0 deployed, then 1.1 fails its validation; the failure's stack event."""
    node = w.ssm.add_node(TEMPLATE)
    w.cloudformation.deploy(templates["1.0"])
    node.validation_outcome = FAILED_CHECK
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(templates["1.1"])
    node.validation_outcome = None  # fixed (for example the check, or a flaky service)
    return str(failure.value)


def test_a_redeploy_resumes_at_the_failed_validation_with_no_command_before_it(
    templates: dict[str, dict[str, Any]],
) -> None:
    with world(templates["1.0"]) as w:
        message = _fail_validation(w, templates)
        node = w.ssm.nodes[NODE]
        digest = hashlib.sha256(node.version_file.encode()).hexdigest()
        point = _json(w, f"{contract.RESUME_PREFIX}office.json")
        before = len(w.ssm.calls)
        w.cloudformation.deploy(templates["1.1"])
        sends = _sends(w, before)
        record = _record(w, "1.1")
        kept = _json(w, f"{contract.RESUME_PREFIX}office.json")
        reasons = _reasons(w)
    # The failure says the preparation is kept, and where the next deploy resumes.
    assert "a deploy of this recipe resumes at the validation" in message
    assert point["at"] == "validation" and point["version_sha256"] == digest
    # The resumed build's first command is the failed step; nothing prepares the template
    # again, and every command carries the version file's digest for the guard.
    assert [_what(s) for s in sends] == ["validate", "Inventory-fake", "seal"]
    assert all(s["Parameters"][contract.RESUME_PARAMETER] == [digest] for s in sends)
    assert w.ssm.guard_stops == 0
    # The record says where the build resumed from and keeps the failed build's evidence
    # of the preparation (it is what the image holds).
    assert record["resume"]["at"] == "validation" and not record["resume"]["restarted"]
    assert record["resume"]["from_execution"] == point["execution"]
    assert record["preparation"]["status"] == "Success"
    assert record["marker"]["version_sha256"] == digest
    assert record["validation"]["status"] == "Success"
    assert any("resumed at the validation after build" in r for r in reasons)
    # A success keeps the point at the inventory, naming its image (see the bundle's case).
    assert kept["at"] == "inventory" and kept["image_id"] == record["image"]["id"]


def test_a_bundle_that_fails_after_the_image_resumes_at_the_inventory(
    templates: dict[str, dict[str, Any]],
) -> None:
    """The image was taken, then the bundle failed: CloudFormation rolls the image back. The
    template still holds the preparation, so the redeploy takes the inventory, seals and
    images again without preparing."""
    with world(templates["1.0"]) as w:
        w.ssm.add_node(TEMPLATE)
        w.cloudformation.deploy(templates["1.0"])
        w.fake.fail("UpdateWorkspaceBundle", "AccessDeniedException", "denied")
        with pytest.raises(DeployError, match="AccessDeniedException"):
            w.cloudformation.deploy(templates["1.1"])
        rolled_back = [p["Name"] for op, p in w.fake.calls if op == "CreateWorkspaceImage"][-1]
        assert rolled_back.startswith("office-1.1-") and rolled_back not in w.images()
        before = len(w.ssm.calls)
        w.cloudformation.deploy(templates["1.1"])
        sends = _sends(w, before)
        record = _record(w, "1.1")
        reasons = _reasons(w)
    assert [_what(s) for s in sends] == ["Inventory-fake", "seal"]
    assert record["resume"]["at"] == "inventory" and record["resume"]["image_id"]
    assert any(
        "was rolled back or removed; its preparation was not run again" in r for r in reasons
    )


def test_a_touched_template_stops_the_first_command_and_the_build_starts_over(
    templates: dict[str, dict[str, Any]],
) -> None:
    with world(templates["1.0"]) as w:
        _fail_validation(w, templates)
        node = w.ssm.nodes[NODE]
        node.version_file += "edited=by hand\n"  # someone prepared the template since
        before = len(w.ssm.calls)
        w.cloudformation.deploy(templates["1.1"])
        sends = _sends(w, before)
        record = _record(w, "1.1")
        reasons = _reasons(w)
    assert w.ssm.guard_stops == 1
    what = [_what(s) for s in sends]
    # The guard stopped the validation before it ran; the build prepared again, and its
    # later commands carry no expected digest.
    assert what == [
        "validate",
        "prepare",
        "RecipeMarker-fake",
        "validate",
        "Inventory-fake",
        "seal",
    ]
    assert all(s["Parameters"].get(contract.RESUME_PARAMETER, [""]) == [""] for s in sends[1:])
    assert record["resume"]["restarted"] is True
    assert any("so this build prepared it again" in r for r in reasons)


def test_a_changed_recipe_starts_over(templates: dict[str, dict[str, Any]]) -> None:
    with world(templates["1.0"]) as w:
        _fail_validation(w, templates)
        before = len(w.ssm.calls)
        w.cloudformation.deploy(templates["1.2"])
        sends = _sends(w, before)
        record = _record(w, "1.2")
    assert _what(sends[0]) == "prepare"
    assert all(s["Parameters"].get(contract.RESUME_PARAMETER, [""]) == [""] for s in sends)
    assert record["resume"] is None and w.ssm.guard_stops == 0


def test_a_build_stopped_by_the_vulnerability_gate_resumes_at_the_inventory(
    templates: dict[str, dict[str, Any]],
) -> None:
    with world(templates["gated"]) as w:
        w.ssm.add_node(TEMPLATE)
        w.inspector.advisories["bash"] = [XZ]
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(templates["gated"])
        w.inspector.advisories.clear()  # the fixed package is in the archive now
        before = len(w.ssm.calls)
        w.cloudformation.deploy(templates["gated"])
        sends = _sends(w, before)
        record = _record(w, "1.0")
    assert "resumes at the inventory" in str(failure.value)
    # The inventory is taken again (the record lists what the image holds), then sealed.
    assert [_what(s) for s in sends] == ["Inventory-fake", "seal"]
    assert record["resume"]["at"] == "inventory"
    assert record["vulnerabilities"]["summary"]["CRITICAL"] == 0


def test_a_failed_preparation_leaves_nothing_to_resume(
    templates: dict[str, dict[str, Any]],
) -> None:
    with world(templates["1.0"]) as w:
        node = w.ssm.add_node(TEMPLATE)
        node.outcome = ("Failed", "==> bakery step: patch\n", "==> bakery failed: patch\n", 100)
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(templates["1.0"])
        before = len(w.ssm.calls)
        w.cloudformation.deploy(templates["1.0"])
        sends = _sends(w, before)
    assert "resumes at" not in str(failure.value)
    assert _what(sends[0]) == "prepare"


@pytest.mark.parametrize(
    ("expected", "content", "code"),
    [
        ("", "anything\n", 0),  # not a resumed build: no check
        ("same", "recipe=abc\n", 0),
        ("same", None, 96),  # the file is gone
        (hashlib.sha256(b"recipe=old\n").hexdigest(), "recipe=abc\n", 96),
    ],
)
def test_the_guard_runs_in_bash_against_the_version_file(
    tmp_path: Any, expected: str, content: str | None, code: int
) -> None:
    """The document's guard lines, run by bash: they pass only when the version file has
    the expected digest (or none is expected), and stop with the guard's step name."""
    version = tmp_path / "version"
    if content is not None:
        version.write_text(content)
    if expected == "same":
        expected = hashlib.sha256(b"recipe=abc\n").hexdigest()
    script = "\n".join([*resume_guard_lines(expected, str(version)), "echo ran"])
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == code
    assert ("ran" in done.stdout) == (code == 0)
    if code:
        assert contract.FAILED_MARKER + contract.RESUME_GUARD_STEP in done.stderr
