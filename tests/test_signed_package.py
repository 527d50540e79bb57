"""A vendor's package goes into an image only when its signature is good, made by the key
with the fingerprint written in code, and it is the pinned version: run for real with gpg
and dpkg-deb on packages and keys made here (file:// URLs stand in for the vendor's)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workspaces_image_bakery.preparation.signed_package import SignedPackage

from .harness.gpg import gpg as _gpg
from .harness.gpg import make_key as _key


def _deb(folder: Path, version: str) -> Path:
    control = folder / "pkg" / "DEBIAN"
    control.mkdir(parents=True)
    (control / "control").write_text(
        f"Package: vendor-agent\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Vendor <v@example.com>\nDescription: test package\n"
    )
    deb = folder / "vendor-agent.deb"
    subprocess.run(
        ["dpkg-deb", "--build", str(folder / "pkg"), str(deb)], check=True, capture_output=True
    )
    return deb


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A vendor's key (fingerprint), a package of version 1.300066.0-1 signed with it, and
    the public key, in one folder; and another key that is not the vendor's."""
    folder = tmp_path_factory.mktemp("vendor")
    fingerprint = _key(folder / "home")
    deb = _deb(folder, "1.300066.0-1")
    _gpg(folder / "home", "--yes", "--detach-sign", "-o", f"{deb}.sig", str(deb))
    (folder / "key.gpg").write_text(_gpg(folder / "home", "--armor", "--export"))
    _key(folder / "other-home")
    return folder, fingerprint, deb


def _run(package: SignedPackage) -> subprocess.CompletedProcess[str]:
    script = (
        "set -euo pipefail\n" + package.download_and_verify() + '\nrm -rf "$work"\necho verified\n'
    )
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)


def _package(
    folder: Path, fingerprint: str, *, version: str = "1.300066.0", sig: str = ""
) -> SignedPackage:
    spaced = " ".join(fingerprint[i : i + 4] for i in range(0, 40, 4))
    return SignedPackage(
        name="vendor-agent",
        url=f"file://{folder}/vendor-agent.deb",
        signature_url=f"file://{folder}/{sig or 'vendor-agent.deb.sig'}",
        key_url=f"file://{folder}/key.gpg",
        fingerprint=spaced,
        version=version,
    )


def test_a_package_signed_by_the_pinned_key_at_the_pinned_version_is_installed(
    vendor: tuple[Path, str, Path],
) -> None:
    folder, fingerprint, _ = vendor
    result = _run(_package(folder, fingerprint))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("verified")


def test_a_changed_package_another_key_or_another_version_is_refused(
    vendor: tuple[Path, str, Path],
) -> None:
    folder, fingerprint, deb = vendor
    tampered = folder / "tampered"
    tampered.mkdir(exist_ok=True)
    (tampered / "vendor-agent.deb").write_bytes(deb.read_bytes() + b"\0")
    (tampered / "vendor-agent.deb.sig").write_bytes(Path(f"{deb}.sig").read_bytes())
    (tampered / "key.gpg").write_text((folder / "key.gpg").read_text())
    changed = _run(_package(tampered, fingerprint))
    assert changed.returncode == 1 and "the signature is not good" in changed.stderr
    # Signed by a key that is in the downloaded key file but is not the pinned one.
    other = folder / "other"
    other.mkdir(exist_ok=True)
    (other / "vendor-agent.deb").write_bytes(deb.read_bytes())
    _gpg(
        folder / "other-home",
        "--yes",
        "--detach-sign",
        "-o",
        str(other / "vendor-agent.deb.sig"),
        str(deb),
    )
    (other / "key.gpg").write_text(
        (folder / "key.gpg").read_text() + _gpg(folder / "other-home", "--armor", "--export")
    )
    foreign = _run(_package(other, fingerprint))
    assert foreign.returncode == 1 and "not made by the key" in foreign.stderr
    newer = _run(_package(folder, fingerprint, version="1.300070.0"))
    assert newer.returncode == 1
    assert "is version 1.300066.0-1, not the pinned 1.300070.0" in newer.stderr


def test_a_signed_package_needs_urls_a_fingerprint_and_a_version() -> None:
    with pytest.raises(ValueError) as error:
        SignedPackage("agent", "http://x/a.deb", "https://x/a.sig", "https://x/k", "1234", "")
    message = str(error.value)
    assert "url='http://x/a.deb'" in message and "fingerprint='1234'" in message
    assert "version=''" in message


def test_a_vendor_repository_needs_https_a_fingerprint_and_plain_words(tmp_path: Path) -> None:
    """AptRepository (run for real in tests/system/test_vendor_repository.py): checked when
    made, written with its own keyring, and its commands pass shellcheck."""
    import sys

    from workspaces_image_bakery.preparation.vendor_repository import AptRepository

    good = {
        "name": "vscode",
        "url": "https://packages.microsoft.com/repos/code",
        "suite": "stable",
        "components": ("main",),
        "key_url": "https://packages.microsoft.com/keys/microsoft.asc",
        "fingerprint": "BC52 8686 B50D 79E3 39D3 721C EB3E 94AD BE12 29CF",
    }
    repository = AptRepository(**good)  # type: ignore[arg-type]
    assert repository.source_line == (
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/vscode.gpg] "
        "https://packages.microsoft.com/repos/code stable main"
    )
    arm = AptRepository(**{**good, "architectures": ("amd64", "arm64")})  # type: ignore[arg-type]
    assert "[arch=amd64,arm64 signed-by=" in arm.source_line
    for change, named in (
        ({"url": "http://packages.microsoft.com/repos/code"}, "url="),
        ({"fingerprint": "BC52 8686"}, "fingerprint="),
        ({"suite": "stable; rm -rf /"}, "plain words"),
        ({"components": ()}, "at least one otherwise"),
        ({"suite": "./", "components": ("main",)}, "none for a flat repository"),
        ({"name": "VS Code"}, "name="),
    ):
        with pytest.raises(ValueError, match=named):
            AptRepository(**{**good, **change})  # type: ignore[arg-type]
    script = tmp_path / "add.sh"
    script.write_text("#!/bin/bash\nset -euo pipefail\n" + repository.add() + "\n")
    shellcheck = Path(sys.executable).parent / "shellcheck"
    checked = subprocess.run(
        [str(shellcheck), str(script)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout
