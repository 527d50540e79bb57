"""A vendor's apt repository added the way the reference app adds VS Code's, Python 3.12's and
Firefox ESR's, run for real in the Debian system root: a repository made here (a package,
its index, an InRelease signed with a key made here, served as file://), real gpg, real
apt-get. The repository is trusted only with the pinned key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.gpg import make_key as _key
from tests.system.root import bash_in
from tests.system.vendor_mirror import StandIn, apt_repository, export_key
from workspaces_image_bakery.preparation.vendor_repository import AptRepository

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    fingerprint = _key(folder / "vendor")
    _key(folder / "other")
    return folder / "vendor", fingerprint, folder / "other"


def _serve(root: Path, signer: Path, key_home: Path) -> None:
    repo = root / "srv" / "vendor"
    apt_repository(repo, "./", (), [StandIn("vendor-agent", "2.0-1", architecture="all")], signer)
    export_key(key_home, repo / "key.asc")


def _vendor(fingerprint: str) -> AptRepository:
    return AptRepository(
        name="vendor",
        url="file:///srv/vendor",
        suite="./",
        components=(),
        key_url="file:///srv/vendor/key.asc",
        fingerprint=" ".join(fingerprint[i : i + 4] for i in range(0, 40, 4)),
    )


def test_a_repository_signed_by_the_pinned_key_installs_its_package(
    fresh_root: Path, keys: tuple[Path, str, Path]
) -> None:
    vendor, fingerprint, _ = keys
    _serve(fresh_root, vendor, vendor)
    script = (
        "set -euo pipefail\n" + _vendor(fingerprint).add() + "\napt-get install -y vendor-agent\n"
    )
    result = bash_in(fresh_root, script)
    assert result.returncode == 0, result.stderr[-2000:]
    installed = bash_in(fresh_root, "dpkg-query -W -f='${Version}' vendor-agent")
    assert installed.stdout == "2.0-1"
    listed = bash_in(
        fresh_root, "gpg --batch --with-colons --show-keys /etc/apt/keyrings/vendor.gpg"
    )
    assert [line.split(":")[9] for line in listed.stdout.splitlines() if line.startswith("fpr:")][
        :1
    ] == [fingerprint]
    source = (fresh_root / "etc/apt/sources.list.d/vendor.list").read_text()
    assert "signed-by=/etc/apt/keyrings/vendor.gpg" in source


def test_another_key_is_refused_before_anything_is_trusted(
    fresh_root: Path, keys: tuple[Path, str, Path]
) -> None:
    """The key file holds another key than the pinned one: the script stops, naming the
    repository, and writes neither a keyring nor a source."""
    vendor, fingerprint, other = keys
    _serve(fresh_root, vendor, other)  # the key URL serves the other key
    result = bash_in(fresh_root, "set -euo pipefail\n" + _vendor(fingerprint).add())
    assert result.returncode == 1
    assert "vendor: the key at file:///srv/vendor/key.asc is not" in result.stderr
    assert not (fresh_root / "etc/apt/keyrings/vendor.gpg").exists()
    assert not (fresh_root / "etc/apt/sources.list.d/vendor.list").exists()


def test_an_index_signed_by_another_key_is_refused_by_apt(
    fresh_root: Path, keys: tuple[Path, str, Path]
) -> None:
    """The pinned key is served, but the repository's index is signed by another key: apt
    refuses the repository and nothing from it can be installed."""
    vendor, fingerprint, other = keys
    _serve(fresh_root, other, vendor)
    result = bash_in(fresh_root, "set -euo pipefail\n" + _vendor(fingerprint).add())
    assert result.returncode != 0
    installed = bash_in(fresh_root, "apt-get install -y vendor-agent")
    assert installed.returncode != 0
