"""Fixtures of the system tests (``make system-test``): a real Debian root per test, and one
root prepared by the persona's script (twice) that tests copy before they change it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system.persona import PREPARATION, TEMPLATE_SETUP, script
from tests.system.root import (
    Result,
    bash_in,
    cached_tarball,
    copy_root,
    extract,
    listing,
    remove_root,
)
from tests.system.template_identity import home_of_its_own
from workspaces_image_bakery.preparation import STEP_MARKER

# Compared between the two runs: configuration, local programs and the package database.
LISTED = ("/etc", "/usr/local", "/var/lib/dpkg/status")
# useradd and userdel keep the previous /etc/passwd, group, shadow and gshadow as "<file>-".
# Every run creates the build user in an install step and deletes it at the end; on the first
# run the packages' system users are added after it, on the second before it, so these
# backups differ in line order. The files themselves must not.
SHADOW_BACKUPS = ("/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-")


def steps(stdout: str) -> list[str]:
    """The steps a script's markers name, in order."""
    return [line.removeprefix(STEP_MARKER) for line in stdout.splitlines() if STEP_MARKER in line]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the system tests run as root (unshare, chroot, mounts)"
    for tool in ("mmdebstrap", "unshare", "chroot", "tar"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (make system-test installs mmdebstrap)"
    return None


@pytest.fixture(scope="session")
def tarball() -> Path:
    """The cached Debian root (built from Debian's archive on first use)."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    path, _ = cached_tarball()
    return path


@pytest.fixture
def fresh_root(tarball: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh extraction of the Debian root, set up as the persona's template WorkSpace."""
    root = extract(tarball, tmp_path / "root")
    setup = bash_in(root, TEMPLATE_SETUP)
    assert setup.returncode == 0, setup.stderr
    yield root
    remove_root(root)


@dataclass(frozen=True)
class Prepared:
    root: Path
    first: Result
    second: Result
    after_first: dict[str, str]
    after_second: dict[str, str]


@pytest.fixture(scope="module")
def prepared(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    """The root after the persona's script ran twice, with listings after each run."""
    root = extract(tarball, tmp_path_factory.mktemp("prepared") / "root")
    setup = bash_in(root, TEMPLATE_SETUP)
    assert setup.returncode == 0, setup.stderr
    text = script(PREPARATION)
    first = bash_in(root, text)
    after_first = listing(root, LISTED)
    second = bash_in(root, text)
    after_second = listing(root, LISTED)
    yield Prepared(root, first, second, after_first, after_second)
    remove_root(root)


@pytest.fixture
def prepared_copy(prepared: Prepared, tmp_path: Path) -> Iterator[Path]:
    """A copy of the prepared root, for a test that changes it."""
    assert prepared.first.returncode == 0, prepared.first.stderr[-3000:]
    root = copy_root(prepared.root, tmp_path / "root")
    yield root
    remove_root(root)


@pytest.fixture
def home_volume(prepared_copy: Path) -> Iterator[Path]:
    """/home of the copy on a file system of its own (a tmpfs), as a WorkSpace's user volume
    is; what the root had in /home is copied onto it."""
    with home_of_its_own(prepared_copy) as home:
        yield home
