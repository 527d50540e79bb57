"""The pull-request workflow runs the pull request's code only where there are no credentials
and no write token: `test` checks and synthesizes, `diff` reads the synthesized assembly with
the base branch's CLI, `comment` posts the review. `make synth` honours the baseline it passes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from workspaces_image_bakery import load_baseline
from workspaces_image_bakery.review.as_built import AS_BUILT_MARKER

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "pull-request.yml"

# What runs code from the pull request: its Makefile, its Python, its CDK app.
RUNS_PR_CODE = re.compile(
    r"\bmake\b|\bpython3?\b|\bcdk synth\b|\bnpx cdk synth\b|\bbash \"?os-scripts/"
)
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# In the text: `uses: owner/repo@<40 hex> # v1.2.3`
PINNED_LINE = re.compile(r"^\s*(- )?uses: \S+@[0-9a-f]{40} # v\d+(\.\d+)*\s*$")
BOT = "github-actions[bot]"


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def jobs() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = workflow()["jobs"]
    return result


def steps(job: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = jobs()[job]["steps"]
    return result


def runs(job: str) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def scripts(job: str) -> str:
    """Everything a job executes: its shell steps and its github-script scripts."""
    inline = [s.get("with", {}).get("script", "") for s in steps(job)]
    return runs(job) + "\n" + "\n".join(inline)


def uses(job: str, action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if s.get("uses", "").startswith(action + "@")]


def test_triggers_on_pull_request_only_and_grants_nothing_at_the_top() -> None:
    loaded = workflow()
    assert loaded[True] == {"pull_request": None}  # YAML reads the key `on` as True
    assert loaded["permissions"] == {}
    assert loaded["concurrency"]["cancel-in-progress"] is True
    assert set(jobs()) == {"test", "scripts", "diff", "comment"}
    for name, job in jobs().items():
        assert "permissions" in job, f"job {name} must declare its own permissions"


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    used = [s["uses"] for job in jobs().values() for s in job["steps"] if "uses" in s]
    assert used
    for action in used:
        assert PINNED.match(action), f"{action} is not pinned to a 40-hex commit SHA"
    lines = [line for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert len(lines) == len(used)
    for line in lines:
        assert PINNED_LINE.match(line), f"{line.strip()!r} lacks '@<sha> # vX.Y.Z'"


def base_only(text: str) -> str:
    """A job's scripts without the base branch's own Python (a venv, then its command line
    from the base checkout): what is left must not run the pull request's code."""
    return text.replace(BASE_CLI, "").replace('python -m venv "$RUNNER_TEMP/cli"', "")


def test_jobs_that_run_pull_request_code_hold_no_credentials_or_write_token() -> None:
    runners = [name for name in jobs() if RUNS_PR_CODE.search(base_only(scripts(name)))]
    assert runners == ["test", "scripts"]
    for name in runners:
        permissions: dict[str, str] = jobs()[name]["permissions"]
        assert "id-token" not in permissions
        assert "write" not in permissions.values()
        assert permissions == ({"contents": "read"} if name == "test" else {})
        assert not any("configure-aws-credentials" in s.get("uses", "") for s in steps(name))


def test_every_checkout_drops_its_credentials() -> None:
    checkouts = [s for name in jobs() for s in uses(name, "actions/checkout")]
    assert len(checkouts) == 2  # test (the pull request) and diff (the base branch)
    for checkout in checkouts:
        assert checkout["with"]["persist-credentials"] is False


def test_test_job_checks_synthesizes_against_the_base_and_uploads_the_assembly() -> None:
    script = runs("test")
    assert "make test" in script
    assert "make synth" in script  # the base branch, in a worktree
    assert "git worktree add" in script
    assert "workspaces-image-bakery:baseline=$baseline" in script
    uploads = {
        s["with"]["name"]: s["with"]["path"] for s in uses("test", "actions/upload-artifact")
    }
    assert uploads == {
        "cloud-assembly": "cdk.out/",
        "review": "cdk.out/review.md",
        "os-scripts": "build/os-scripts/",
    }


def test_diff_job_runs_only_for_this_repository_with_a_role() -> None:
    job = jobs()["diff"]
    assert job["needs"] == "test"
    condition = job["if"]
    assert "vars.AWS_ROLE_ARN != ''" in condition
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    role = uses("diff", "aws-actions/configure-aws-credentials")
    assert [r["with"]["role-to-assume"] for r in role] == ["${{ vars.AWS_ROLE_ARN }}"]


def test_diff_job_reads_the_downloaded_assembly_with_the_base_branch_cli() -> None:
    (checkout,) = uses("diff", "actions/checkout")
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    (download,) = uses("diff", "actions/download-artifact")
    assert download["with"]["name"] == "cloud-assembly"
    assembly = download["with"]["path"]
    script = runs("diff")
    assert "npm ci --ignore-scripts" in script
    cdk_lines = [line for line in script.splitlines() if re.search(r"\bcdk\b", line)]
    invocations = [line for line in cdk_lines if re.search(r"\bcdk\b\S*\s+diff\b", line)]
    assert len(invocations) == 1
    assert '--app "$ASSEMBLY"' in invocations[0]
    assert "--method=template" in invocations[0]
    assert script.count("--app") == 1
    for step in steps("diff"):
        if "$ASSEMBLY" in step.get("run", ""):
            assert step["env"]["ASSEMBLY"] == assembly
    # Credentials arrive only after the assembly was checked, and nothing of the pull
    # request runs after them.
    names = [s.get("uses", s.get("name", "")) for s in steps("diff")]
    credentials = next(i for i, n in enumerate(names) if "configure-aws-credentials" in n)
    check = next(i for i, n in enumerate(names) if n.startswith("Check the assembly"))
    assert check < credentials
    assert not RUNS_PR_CODE.search(base_only(runs("diff")))


# The one Python the diff job runs: the base branch's command line, from its checkout.
BASE_CLI = 'PYTHONPATH="$GITHUB_WORKSPACE" "$RUNNER_TEMP/cli/bin/python" -m'


def test_diff_job_renders_the_as_built_section_with_the_base_branch_code_only() -> None:
    """The as-built section is made by the base branch's command line (its checkout on the
    Python path, no build), whose packages are pinned by hash, reading the pull request's
    assembly as data; the comment job puts it in place of the review's marker."""
    (step,) = [s for s in steps("diff") if "as-built" in s.get("run", "")]
    script = step["run"]
    assert BASE_CLI in script and "workspaces_image_bakery.operations.cli" in script
    assert (
        '--require-hashes --no-deps \\\n  -r "$GITHUB_WORKSPACE/tools/ci/cli-requirements.txt"'
        in script
    )
    assert script.count("python") == 2  # the venv, and the base branch's command line
    assert 'as-built --assembly "$ASSEMBLY"' in script
    requirements = (WORKFLOW.parents[2] / "tools" / "ci" / "cli-requirements.txt").read_text()
    pins = [line for line in requirements.splitlines() if re.match(r"^[a-z]", line)]
    assert pins and all("==" in pin and pin.endswith(" \\") for pin in pins)
    assert {"boto3", "click", "rich", "packageurl-python"} <= {p.split("==")[0] for p in pins}
    (post,) = uses("comment", "actions/github-script")
    assert "body.replace(asBuiltMarker, () => asBuilt)" in post["with"]["script"]
    assert AS_BUILT_MARKER in post["with"]["script"]
    assert "every score here is declared" in post["with"]["script"]


def test_comment_job_runs_no_project_code_and_finds_its_comment_by_the_bot() -> None:
    job = jobs()["comment"]
    assert job["needs"] == ["test", "diff"]
    assert "needs.test.result == 'success'" in job["if"]
    assert "cancelled()" in job["if"] or "always()" in job["if"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert not uses("comment", "actions/checkout")
    executed = scripts("comment")
    assert not re.search(r"\bmake\b|\bpython3?\b|\bnpx\b", executed)
    downloads = [s["with"]["name"] for s in uses("comment", "actions/download-artifact")]
    assert downloads == ["review", "cdk-diff"]
    (post,) = uses("comment", "actions/github-script")
    script = post["with"]["script"]
    assert f"c.user.login === '{BOT}'" in script
    assert "c.user.type === 'Bot'" in script
    assert "c.body.startsWith(marker)" in script
    assert "body.slice(0, 65000)" in script
    assert "GITHUB_STEP_SUMMARY" in script or "core.summary" in script
    assert "not shown for pull requests from forks" in script
    assert post["env"]["REVIEW"].endswith("/review.md")


def test_no_baseline_is_understood(tmp_path: Path) -> None:
    assert load_baseline("none") is None
    assert load_baseline(tmp_path) is None
    assert load_baseline(None) is None


def test_diff_job_runs_in_an_environment_that_the_roles_trust_policy_pins() -> None:
    """Anyone who may push a branch can edit the workflow: the role trusts only the subject
    of the `cdk-diff` environment, whose reviewers approve each run."""
    assert jobs()["diff"]["environment"] == "cdk-diff"
    review = (WORKFLOW.parent.parent.parent / "docs" / "review.md").read_text()
    assert '"token.actions.githubusercontent.com:sub": "repo:OWNER/REPO:environment:cdk-diff"' in (
        review
    )
    assert 'repo:OWNER/REPO:pull_request"' not in review
    for job in ("test", "comment"):
        assert "environment" not in jobs()[job]


def test_each_supported_os_script_runs_in_its_official_image(tmp_path: Path) -> None:
    """The scripts job's matrix is the render tool's: one entry per OS the library supports
    (the refused ones left out), each in that distribution's official image; each script
    and its set-up are valid bash that shellcheck passes. (The job itself runs on GitHub's
    runners only: no container registry is reachable here.)"""
    import importlib.util
    import subprocess
    import sys

    path = WORKFLOW.parent.parent.parent / "tools" / "ci" / "os_scripts.py"
    spec = importlib.util.spec_from_file_location("os_scripts", path)
    assert spec is not None and spec.loader is not None
    os_scripts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(os_scripts)
    matrix: Any = os_scripts.write(tmp_path)
    job = jobs()["scripts"]
    assert job["strategy"]["matrix"] == matrix
    assert job["container"]["image"] == "${{ matrix.image }}"
    assert job["needs"] == "test" and job["strategy"]["fail-fast"] is False
    names = [entry["os"] for entry in matrix["include"]]
    assert names == ["ubuntu-22.04", "ubuntu-24.04", "rocky-8", "rocky-9", "rhel-8", "rhel-9"]
    images = {entry["image"] for entry in matrix["include"]}
    assert {"ubuntu:22.04", "rockylinux:9", "registry.access.redhat.com/ubi9/ubi"} <= images
    shellcheck = Path(sys.executable).parent / "shellcheck"
    for name in names:
        for script in (tmp_path / f"{name}.sh", tmp_path / f"{name}.setup.sh"):
            assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
            checked = subprocess.run(
                [str(shellcheck), "--shell=bash", "--severity=warning", str(script)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert checked.returncode == 0, (script.name, checked.stdout)
    uploaded = [s for s in steps("test") if s.get("with", {}).get("name") == "os-scripts"]
    assert uploaded and "tools/ci/os_scripts.py build/os-scripts" in runs("test")
