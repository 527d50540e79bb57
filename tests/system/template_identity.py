"""A template's identity planted in a system root before the seal, and what the seal must
leave on the root volume (nothing of it): shared by the system tests of the test persona
and of the reference app's personas."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.system.root import bash_in
from workspaces_image_bakery.preparation import ImagePreparation, render_seal_script

# Planted before the seal: a template's identity, as the SSM agent, sshd, cloud-init, a shell,
# Puppet and journald leave it (paths in the root).
SSM = "/var/lib/amazon/ssm"
PLANTED = {
    f"{SSM}/registration": '{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"eu-west-1"}',
    f"{SSM}/Vault/Store/RegistrationKey": "private key of the managed node",
    f"{SSM}/runtimeconfig/identity_config.json": '{"IdentityType":"OnPrem"}',
    f"{SSM}/mi-0123456789abcdef0/document/orchestration/cmd-1/awsrunShellScript/stdout": "out",
    "/var/log/amazon/ssm/amazon-ssm-agent.log": "INFO the agent's log",
    "/var/lib/cloud/instances/i-0123/obj.pkl": "cloud-init state",
    "/var/lib/cloud/data/instance-id": "i-0123",
    "/var/lib/cloud/sem/config_ssh": "done",
    "/root/.bash_history": "aws configure",
    "/var/lib/bakery-svc/.bash_history": "a system user's history",
    "/home/alice/.bash_history": "alice's history",
    "/var/lib/puppet/ssl/private_keys/template.pem": "puppet key",
    "/etc/puppetlabs/puppet/ssl/certs/template.pem": "puppet cert",
    "/var/log/syslog": "a line after the clean-down",
    "/var/log/syslog.1": "a rotated log",
    "/var/log/journal/0f0e0d0c0b0a09080706050403020100/system.journal": "journal",
}
STASHED_SSM = ("registration", "Vault", "runtimeconfig")
# A stand-in for systemd-run (no systemd runs in the chroot): it records the command line.
SYSTEMD_RUN = """#!/bin/sh
printf '%s\\n' "$*" >> /run/bakery-shims/systemd-run.log
"""


def there(path: Path) -> bool:
    """Whether `path` exists in the root (a symlink counts: its absolute target would be
    resolved on the host)."""
    return path.is_symlink() or path.exists()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def host_keys(root: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted((root / "etc/ssh").glob("ssh_host_*"))}


def plant_template(root: Path) -> None:
    setup = bash_in(
        root,
        "set -e\n"
        "useradd --system --create-home --home-dir /var/lib/bakery-svc bakery-svc\n"
        "mkdir -p /run/bakery-shims\n",
    )
    assert setup.returncode == 0, setup.stderr
    for relative, text in PLANTED.items():
        path = root / relative.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    (root / "etc/machine-id").write_text("0f0e0d0c0b0a09080706050403020100\n")
    shim = root / "run/bakery-shims/systemd-run"
    shim.write_text(SYSTEMD_RUN)
    shim.chmod(0o755)


def seal(root: Path, preparation: ImagePreparation) -> tuple[int, str, str]:
    """The seal of `preparation`'s template run in `root` (systemd-run is the shim)."""
    result = bash_in(
        root,
        render_seal_script(preparation),
        env={"PATH": "/run/bakery-shims:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"},
    )
    return result.returncode, result.stdout, result.stderr


def left_on_root_volume(root: Path) -> list[str]:
    """Every planted or identifying file still on the root volume (all but /home)."""
    found = [
        p
        for p in PLANTED
        if not p.startswith(("/home/", "/var/log/")) and there(root / p.lstrip("/"))
    ]
    found += [f"/etc/ssh/{p.name}" for p in (root / "etc/ssh").glob("ssh_host_*")]
    if (root / "etc/machine-id").read_text():
        found.append("/etc/machine-id")
    found += [
        f"/{p.relative_to(root)}"
        for p in (root / "var/log").rglob("*")
        if p.is_file() and not p.is_symlink() and (p.stat().st_size or "journal" in p.parts)
    ]
    return found


@contextmanager
def home_of_its_own(root: Path) -> Iterator[Path]:
    """/home of `root` on a file system of its own (a tmpfs), as a WorkSpace's user volume
    is, holding what the root had in /home; unmounted at the end."""
    home = root / "home"
    saved = root.parent / "home-before"
    shutil.copytree(home, saved, symlinks=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "bakery-home", str(home)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{saved}/.", str(home)], check=True)
        yield home
    finally:
        subprocess.run(["umount", "--lazy", str(home)], check=False)
