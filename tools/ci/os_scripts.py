"""The preparation script of a small persona for every operating system the library
supports, and what an official container image of that OS needs first, for the pull
request's `scripts` job (.github/workflows/pull-request.yml): each script runs twice, as
root, in that OS's official image on GitHub's runners.

    python tools/ci/os_scripts.py OUT_DIR

writes ``<os>.setup.sh`` (what a template WorkSpace has that the container image lacks:
systemd's tools, sudo, a user WorkSpaces made an administrator, the streaming agent's
configuration folder) and ``<os>.sh`` (the preparation) for each supported OS, and
``matrix.json``: the OS values and their images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workspaces_image_bakery.preparation import (
    ImagePreparation,
    OperatingSystem,
    render_script,
)
from workspaces_image_bakery.preparation.operating_systems import OPERATING_SYSTEMS, PackageManager

# The distributions' official images (Docker Hub's ubuntu and rockylinux, Red Hat's UBI).
IMAGES = {
    OperatingSystem.UBUNTU_22_04: "ubuntu:22.04",
    OperatingSystem.UBUNTU_24_04: "ubuntu:24.04",
    OperatingSystem.ROCKY_8: "rockylinux:8",
    OperatingSystem.ROCKY_9: "rockylinux:9",
    OperatingSystem.RHEL_8: "registry.access.redhat.com/ubi8/ubi",
    OperatingSystem.RHEL_9: "registry.access.redhat.com/ubi9/ubi",
}
# A package each image's repositories carry (UBI's carry a subset of RHEL's).
PACKAGE = {PackageManager.APT: "jq", PackageManager.DNF: "tar", PackageManager.YUM: "tar"}
SETUP = {
    PackageManager.APT: (
        "apt-get update -qq\n"
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd sudo passwd\n"
        "admin=sudo\n"
    ),
    PackageManager.DNF: "dnf install -y -q systemd sudo passwd shadow-utils\nadmin=wheel\n",
    PackageManager.YUM: "yum install -y -q systemd sudo passwd shadow-utils\nadmin=wheel\n",
}
TEMPLATE = """mkdir -p /etc/wsp
printf '[policies]\\nclipboard = enabled\\n' > /etc/wsp/wsp.conf
id -u alice > /dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups "$admin" alice
printf 'alice ALL=(ALL:ALL) ALL\\n' > /etc/sudoers.d/01-ws-admin-user
chmod 0440 /etc/sudoers.d/01-ws-admin-user
"""


def supported() -> list[OperatingSystem]:
    """The operating systems AWS offers Linux WorkSpaces with (the others are refused)."""
    return [o for o in OperatingSystem if OPERATING_SYSTEMS[o].offered]


def preparation(operating_system: OperatingSystem) -> ImagePreparation:
    manager = OPERATING_SYSTEMS[operating_system].package_manager
    package = PACKAGE[manager]
    return ImagePreparation(
        operating_system=operating_system,
        install_steps=(f"{manager.value} install -y {package}",),
        validation_steps=(f"command -v {package}",),
        build_users=("builder",),
    )


def write(out: Path) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    include = []
    for operating_system in supported():
        name = operating_system.value
        manager = OPERATING_SYSTEMS[operating_system].package_manager
        (out / f"{name}.setup.sh").write_text("set -euo pipefail\n" + SETUP[manager] + TEMPLATE)
        (out / f"{name}.sh").write_text(
            render_script(
                preparation(operating_system),
                persona="container",
                version="1.0.0",
                fingerprint="c0" * 32,
            )
        )
        include.append({"os": name, "image": IMAGES[operating_system]})
    matrix: dict[str, object] = {"include": include}
    (out / "matrix.json").write_text(json.dumps(matrix, indent=1) + "\n")
    return matrix


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "build/os-scripts"))
