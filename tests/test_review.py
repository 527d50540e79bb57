"""The review written next to the templates: golden, stable, and right about rebuilds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match

from workspaces_image_bakery import ImageDesign, load_baseline, write_review

from .harness.synth import synth_reference

GOLDEN = Path(__file__).parent / "golden" / "review.md"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


@pytest.fixture(scope="module")
def reference() -> cdk.Stack:
    stack, _ = synth_reference()
    return stack


def review_of(stack: cdk.Stack, folder: Path, baseline: dict[str, str] | None) -> str:
    path, _ = write_review([stack], folder, baseline)
    return path.read_text()


def test_review_matches_the_golden_file(reference: cdk.Stack, tmp_path: Path) -> None:
    text = review_of(reference, tmp_path, None)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_review_is_stable_across_synths(reference: cdk.Stack, tmp_path: Path) -> None:
    again, _ = synth_reference()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert review_of(reference, tmp_path / "a", None) == review_of(again, tmp_path / "b", None)


def test_review_tells_which_personas_build_a_new_image(
    reference: cdk.Stack, tmp_path: Path
) -> None:
    template = cdk.assertions.Template.from_stack(reference).to_json()
    for resource in template["Resources"].values():
        if (
            resource["Type"] == "Custom::WorkSpacesImage"
            and resource["Properties"]["Persona"] == "office"
        ):
            resource["Properties"]["ImageName"] = "office-0.9.0-00000000"
    baseline_file = tmp_path / "base.template.json"
    baseline_file.write_text(json.dumps(template))
    baseline = load_baseline(baseline_file)
    assert baseline is not None
    text = review_of(reference, tmp_path, baseline)
    assert "New images on deploy: **1** (office)" in text
    assert "**yes**: recipe changed (was `office-0.9.0-00000000`)" in text
    assert text.count("no: recipe unchanged") == 2
    del baseline["contractor"]
    assert "**yes**: new persona" in review_of(reference, tmp_path, baseline)


def test_review_shows_personas_checklist_and_diagram(reference: cdk.Stack, tmp_path: Path) -> None:
    text = review_of(reference, tmp_path, None)
    for persona, design in (
        ("developer", "thin"),
        ("office", "fully-baked"),
        ("contractor", "zero"),
    ):
        assert f"### {persona}" in text
        assert f"| Design option | {design} |" in text
    assert "| Delivered at launch | docker-ce, jetbrains-toolbox (by puppet-agent 8) |" in text
    assert re.search(r"`developer-[0-9a-f]{6}`: PERFORMANCE, root 80 GB, user 10 GB", text)
    assert "## Image design checklist (whitepaper Appendix A)" in text
    assert text.count("| n/a | n/a | n/a |") == 2  # items 11 and 21 need evidence from outside
    assert "```mermaid\nflowchart LR" in text
    assert '--> i0["image developer-1.0.0-' in text
    assert "no Compliance tag" in text  # CDK warnings are shown


def test_preparation_scripts_pass_shellcheck(reference: cdk.Stack, tmp_path: Path) -> None:
    write_review([reference], tmp_path, None)
    scripts = sorted((tmp_path / "preparation").glob("*.sh"))
    assert [s.name for s in scripts] == ["contractor.sh", "developer.sh", "office.sh"]
    result = subprocess.run(
        [str(SHELLCHECK), *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    developer = (tmp_path / "preparation" / "developer.sh").read_text()
    assert "set_pcoip pcoip.enable_aes_256_gcm 1" in developer
    assert "set_pcoip pcoip.server_clipboard_state 2" in developer
    assert "recipe=" in developer and "git --version" in developer


def test_checklist_minimum_fails_synth_below_it() -> None:
    with pytest.raises(RuntimeError) as error:
        synth_reference(context={"workspaces-image-bakery:checklist-minimum": "4.9"})
    assert "below the minimum 4.9" in str(error.value)
    synth_reference(context={"workspaces-image-bakery:checklist-minimum": "3"})


def test_lesser_problems_are_cdk_warnings() -> None:
    def oversized(stack: cdk.Stack) -> None:
        stack.add_persona(  # type: ignore[attr-defined]
            "Big",
            name="big",
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id="ws-big0template1",
            baked_applications=[f"app{i}" for i in range(12)],
            root_volume_gib=175,
            user_volume_gib=100,
            tags={"Role": "r", "Confidentiality": "internal"},
        )

    stack, _ = synth_reference(customize=oversized)
    warnings = Annotations.from_stack(stack).find_warning(
        "/WorkSpacesImageBakery/Big", Match.any_value()
    )
    text = " ".join(str(w.entry.data) for w in warnings)
    assert "above the smallest valid pair 80/10" in text
    assert "a fully baked image with 12 applications" in text
    assert "no Compliance tag" in text
