"""Warnings as ``cdk synth`` prints them: the message and the construct, without the jsii
runtime's temporary copy (``/tmp/tmp.../lib/program.js:1:...``) above each as its source.
The CDK records a stack trace with each annotation; a Python app's holds only frames of
node modules and of that runtime, which the CLI took for the app's code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from workspaces_image_bakery import ImageBakeryStack, ImageDesign
from workspaces_image_bakery.core.stack_traces import DISABLE_STACK_TRACE

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtual environment: python, node, npx
# Where the CLI showed a warning's source: the jsii runtime, unpacked in a temporary folder.
RUNTIME_PATH = re.compile(r"(tmp\w*/lib/program\.js|jsii-kernel-|program\.js:\d+)")
NO_COMPLIANCE = "no Compliance tag"


def _stack(app: cdk.App) -> ImageBakeryStack:
    stack = ImageBakeryStack(
        app, "Warned", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    stack.add_persona(
        "Developer",
        name="developer",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0.0",
        template_workspace_id="ws-dev0template1",
        tags={"Role": "developer", "Confidentiality": "internal"},
    )
    return stack


def _warnings(out: Path) -> list[dict[str, object]]:
    metadata = json.loads((out / "Warned.metadata.json").read_text())
    return [e for entries in metadata.values() for e in entries if e["type"] == "aws:cdk:warning"]


def _cli_synth(assembly: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The pinned CDK CLI's ``cdk synth`` of a cloud assembly the app wrote (``--app`` takes
    an assembly folder): it prints the assembly's warnings as it prints an app's."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "CI": "true"}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        env.pop(key, None)
    return subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--app", str(assembly),
         "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip


# The two apps' assemblies: the library's default, and stack traces kept (the control).
KINDS = {"library": {}, "traces kept": {DISABLE_STACK_TRACE: False}}
# The tests that read them share one worker, where each app is synthesized once.
pytestmark = pytest.mark.xdist_group("synth-warnings")


@pytest.fixture(scope="session")
def assemblies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each kind's cloud assembly of the same stack, synthesized in this process."""
    folder = tmp_path_factory.mktemp("warned")
    for name, context in KINDS.items():
        app = cdk.App(outdir=str(folder / name), context=context)
        _stack(app)
        app.synth()
    return {name: folder / name for name in KINDS}


def test_cdk_synth_prints_warnings_without_the_runtimes_temporary_path(
    assemblies: dict[str, Path], tmp_path: Path
) -> None:
    """The app synthesized here, its warnings printed by the real CLI; with the stack
    traces the app may ask for, the CLI shows the runtime's temporary path (the control:
    the check can fail)."""
    printed = {}
    for name, assembly in assemblies.items():
        result = _cli_synth(assembly, tmp_path / f"{name}.out")
        assert result.returncode == 0, result.stderr
        printed[name] = result.stderr.splitlines()
    lines = printed["library"]
    warning = next(i for i, line in enumerate(lines) if NO_COMPLIANCE in line)
    assert lines[warning].startswith("WARNING "), lines[warning - 1 : warning + 2]
    assert [line for line in lines if RUNTIME_PATH.search(line)] == []
    assert all("trace" not in w for w in _warnings(assemblies["library"]))
    assert [line for line in printed["traces kept"] if RUNTIME_PATH.search(line)]


def test_the_library_records_no_stack_trace_with_its_warnings(
    assemblies: dict[str, Path],
) -> None:
    (warning,) = [w for w in _warnings(assemblies["library"]) if NO_COMPLIANCE in str(w["data"])]
    assert "trace" not in warning


def test_an_app_that_asks_for_stack_traces_keeps_them(assemblies: dict[str, Path]) -> None:
    warnings = _warnings(assemblies["traces kept"])
    (warning,) = [w for w in warnings if NO_COMPLIANCE in str(w["data"])]
    assert warning.get("trace")


def test_a_persona_in_a_plain_stack_records_no_stack_trace_either(tmp_path: Path) -> None:
    """A Persona imported into a team's own cdk.Stack (no ImageBakeryStack above it)."""
    from workspaces_image_bakery import Persona, TaggingPolicy

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Warned")
    Persona(
        stack,
        "Developer",
        name="developer",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0.0",
        template_workspace_id="ws-dev0template1",
        tagging_policy=TaggingPolicy(
            stack, "Tags", defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
        ),
        tags={"Role": "developer", "Confidentiality": "internal"},
    )
    app.synth()
    (warning,) = [w for w in _warnings(tmp_path) if NO_COMPLIANCE in str(w["data"])]
    assert "trace" not in warning
