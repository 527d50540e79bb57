"""The pull-request workflow runs the checks, synthesizes against the base branch and posts
the review; `make synth` honours the baseline it passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from workspaces_image_bakery import load_baseline

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "pull-request.yml"


def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True] == {"pull_request": None}  # YAML reads the key `on` as True
    assert workflow["permissions"]["pull-requests"] == "write"
    job: dict[str, Any] = workflow["jobs"]["review"]
    result: list[dict[str, Any]] = job["steps"]
    return result


def test_workflow_tests_synthesizes_and_posts_the_review() -> None:
    runs = "\n".join(s.get("run", "") for s in steps())
    assert "make test" in runs
    assert "make synth" in runs  # the base branch
    assert "workspaces-image-bakery:baseline=$baseline" in runs
    assert "cdk diff" in runs
    post = next(s for s in steps() if s.get("uses", "").startswith("actions/github-script"))
    assert "cdk.out/review.md" in post["with"]["script"]
    role = next(s for s in steps() if "configure-aws-credentials" in s.get("uses", ""))
    assert role["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"


def test_no_baseline_is_understood(tmp_path: Path) -> None:
    assert load_baseline("none") is None
    assert load_baseline(tmp_path) is None
    assert load_baseline(None) is None
