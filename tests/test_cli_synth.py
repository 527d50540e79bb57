"""`cdk synth` with the pinned CLI, then cfn-lint on every template the app produces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import cfn_lint

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtual environment: python, node, npx
# One `cdk synth` (about 15 s) for the module: its tests run in one pytest-xdist worker, and
# the assembly lasts the worker's session (a module's fixture is made again when the worker
# ran other modules' tests in between).
pytestmark = pytest.mark.xdist_group("cdk-cli-synth")


@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdk.out")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "CI": "true"}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(key, None)
    subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_cli_is_the_pinned_version() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/aws-cdk"]["version"]
    assert pinned.startswith("2.1148.")
    installed = json.loads((ROOT / "node_modules/aws-cdk/package.json").read_text())["version"]
    assert installed == pinned


def test_synth_writes_the_stack_template(cloud_assembly: Path) -> None:
    templates = sorted(cloud_assembly.glob("*.template.json"))
    assert [t.name for t in templates] == ["WorkSpacesImageBakery.template.json"]
    resources = json.loads(templates[0].read_text())["Resources"]
    assert sum(r["Type"] == "Custom::WorkSpacesBundle" for r in resources.values()) == 3


def test_cfn_lint_finds_no_errors(cloud_assembly: Path) -> None:
    templates = sorted(cloud_assembly.glob("*.template.json"))
    assert templates
    for template in templates:
        assert cfn_lint.errors(template) == []


def test_cfn_lint_reports_what_the_command_reports() -> None:
    """The control: the in-process check finds an error the `cfn-lint` command finds (an
    unknown property), and leaves out a warning (an unused parameter), as the command's
    exit code and levels do."""
    broken = {
        "Parameters": {"Unused": {"Type": "String"}},
        "Resources": {"Logs": {"Type": "AWS::S3::Bucket", "Properties": {"Colour": "red"}}},
    }
    (error,) = cfn_lint.errors(broken)
    assert error.startswith("E3002 Resources/Logs/Properties/Colour:"), error
