"""Vendors' apt repositories and signed packages made in the tests, for the system root to
fetch as file:// URLs: real ``.deb`` files (dpkg-deb), real indexes (dpkg-scanpackages), a
Release with the indexes' SHA-256 clear-signed into InRelease, and detached signatures, all
with a key made here (tests/harness/gpg.py). Stand-ins for vendors this network does not
reach (Microsoft, Launchpad, Puppet, AWS's CloudWatch bucket)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.gpg import gpg


@dataclass(frozen=True)
class StandIn:
    """A package with a vendor's name and version and the files a script runs or checks:
    path -> (text, mode)."""

    package: str
    version: str
    files: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    architecture: str = "amd64"

    @property
    def filename(self) -> str:
        return f"{self.package}_{self.version}_{self.architecture}.deb"


def build_deb(stand_in: StandIn, folder: Path) -> Path:
    """The stand-in as a real .deb in `folder`."""
    with tempfile.TemporaryDirectory() as work:
        tree = Path(work)
        (tree / "DEBIAN").mkdir()
        (tree / "DEBIAN/control").write_text(
            f"Package: {stand_in.package}\nVersion: {stand_in.version}\n"
            f"Architecture: {stand_in.architecture}\nMaintainer: Vendor <v@example.com>\n"
            f"Description: stand-in for the vendor's {stand_in.package} (system tests)\n"
        )
        for path, (text, mode) in stand_in.files.items():
            target = tree / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(mode)
        folder.mkdir(parents=True, exist_ok=True)
        deb = folder / stand_in.filename
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
            check=True,
            capture_output=True,
        )
    return deb


def _release(lines: Sequence[str], indexes: Mapping[str, bytes]) -> str:
    date = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")
    sums = "".join(
        f" {hashlib.sha256(body).hexdigest()} {len(body)} {name}\n"
        for name, body in indexes.items()
    )
    return "".join(f"{line}\n" for line in ["Origin: Vendor", "Label: Vendor", *lines]) + (
        f"Date: {date}\nSHA256:\n{sums}"
    )


def _scan(folder: Path, under: str) -> bytes:
    return subprocess.run(
        ["dpkg-scanpackages", "--multiversion", under],
        cwd=folder,
        check=True,
        capture_output=True,
    ).stdout


def apt_repository(
    folder: Path,
    suite: str,
    components: Sequence[str],
    stand_ins: Sequence[StandIn],
    signer: Path,
) -> None:
    """An apt repository in `folder` holding `stand_ins`, its InRelease signed by `signer`'s
    key: flat (index next to the packages) when `suite` ends in ``/``, else the usual
    ``dists/<suite>/<component>/binary-amd64/Packages`` with the packages in ``pool/``
    (each component lists them all)."""
    if suite.endswith("/"):
        for stand_in in stand_ins:
            build_deb(stand_in, folder)
        packages = _scan(folder, ".")
        (folder / "Packages").write_bytes(packages)
        release_dir = folder
        release = _release(["Architectures: all amd64"], {"Packages": packages})
    else:
        for stand_in in stand_ins:
            build_deb(stand_in, folder / "pool")
        packages = _scan(folder, "pool")
        release_dir = folder / "dists" / suite
        indexes = {f"{c}/binary-amd64/Packages": packages for c in components}
        for name, body in indexes.items():
            (release_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (release_dir / name).write_bytes(body)
        release = _release(
            [
                f"Suite: {suite}",
                f"Codename: {suite}",
                "Architectures: amd64",
                f"Components: {' '.join(components)}",
            ],
            indexes,
        )
    (release_dir / "Release").write_text(release)
    gpg(
        signer,
        "--yes",
        "--clearsign",
        "-o",
        str(release_dir / "InRelease"),
        str(release_dir / "Release"),
    )


def export_key(home: Path, target: Path) -> None:
    """The public key of `home` (armored) at `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(gpg(home, "--armor", "--export"))


def detached_signature(signer: Path, file: Path, target: Path) -> None:
    """`signer`'s detached binary signature of `file` at `target`."""
    gpg(signer, "--yes", "--detach-sign", "-o", str(target), str(file))


def copy_into(root: Path, folder: Path, where: str) -> None:
    """`folder` copied to `where` (an absolute path) inside `root`."""
    target = root / where.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, target)
