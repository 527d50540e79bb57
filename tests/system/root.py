"""A real Debian system root for the system tests: built once with mmdebstrap from Debian's
archive, cached as a tarball under build/system-root/ (keyed by what goes into it), extracted
per test into a temporary folder and entered as root with ``unshare --mount --pid --fork
--mount-proc`` and ``chroot`` (with /dev, /proc and the host's /etc/resolv.conf for apt).

systemd does not run inside: ``SYSTEMD_OFFLINE=1`` makes systemctl act on unit files only
(enable, disable, mask) and say so for start and stop, as in a package's maintainer script;
a ``policy-rc.d`` keeps packages from starting daemons.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / "build" / "system-root"
SUITE = "bookworm"
# What the root is made of: the tools the preparation script runs.
# What a Linux WorkSpace's template has that Debian's minimal root lacks (curl and gnupg: a
# vendor's key and package are fetched and checked with them).
BASE_PACKAGES = (
    "sudo",
    "systemd",
    "dbus",
    "openssh-server",
    "dconf-cli",
    "passwd",
    "curl",
    "gnupg",
)
# The persona's packages (tests/system/test_debian_root.py), downloaded into the cached root's
# apt cache so each run installs them for real without fetching them again.
PERSONA_PACKAGES = ("jq", "auditd", "rsyslog", "puppet-agent")
MAX_AGE_SECONDS = 7 * 24 * 3600  # a week-old root is rebuilt (fewer upgrades per run)
FORMAT = "1"  # bump when the way the root is made changes
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ubuntu_os_release(release: str, name: str, extra: str = "") -> str:
    """An Ubuntu os-release file as Ubuntu ships it: `release` like ``22.04.5``, `name` like
    ``Jammy Jellyfish`` (its first word, lower case, is the codename)."""
    version = ".".join(release.split(".")[:2])
    codename = name.split(maxsplit=1)[0].lower()
    return (
        f'PRETTY_NAME="Ubuntu {release} LTS"\nNAME="Ubuntu"\nVERSION_ID="{version}"\n'
        f'VERSION="{release} LTS ({name})"\nVERSION_CODENAME={codename}\nID=ubuntu\n'
        'ID_LIKE=debian\nHOME_URL="https://www.ubuntu.com/"\n'
        'SUPPORT_URL="https://help.ubuntu.com/"\n'
        'BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"\n'
        'PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"\n'
        f"UBUNTU_CODENAME={codename}\n{extra}"
    )


UBUNTU_22_04 = ubuntu_os_release("22.04.5", "Jammy Jellyfish")
UBUNTU_24_04 = ubuntu_os_release("24.04.3", "Noble Numbat", "LOGO=ubuntu-logo\n")


def mmdebstrap_command(target: Path) -> list[str]:
    download = " ".join(PERSONA_PACKAGES)
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=apt",
        f"--include={','.join(BASE_PACKAGES)}",
        "--skip=cleanup/apt/cache",
        f'--customize-hook=chroot "$1" apt-get install --download-only -y -qq {download}',
        SUITE,
        str(target),
    ]


def cache_key() -> str:
    text = "\n".join([FORMAT, *mmdebstrap_command(Path("root.tar"))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_tarball() -> tuple[Path, bool]:
    """The cached root tarball (built when missing or older than a week) and whether this
    call built it. A lock file serialises parallel test processes."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"{SUITE}-{cache_key()}.tar"
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists() and time.time() - tarball.stat().st_mtime < MAX_AGE_SECONDS:
            return tarball, False
        partial = tarball.with_suffix(".partial.tar")
        partial.unlink(missing_ok=True)
        subprocess.run(mmdebstrap_command(partial), check=True)
        partial.replace(tarball)
        for old in CACHE_DIR.glob(f"{SUITE}-*.tar"):
            if old != tarball:
                old.unlink()
        return tarball, True


def extract(tarball: Path, target: Path, os_release: str = UBUNTU_22_04) -> Path:
    """The root, extracted into `target`, made to look like the template of an Ubuntu
    persona: Ubuntu's os-release (22.04 unless `os_release` says otherwise; base-files held
    so an upgrade keeps it), the WSP agent's configuration file, and no daemon started by a
    package."""
    target.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(target), "--numeric-owner"], check=True)
    release_file = target / "etc/os-release"
    release_file.unlink()
    release_file.write_text(os_release)
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# system tests: packages start no daemon here\nexit 101\n")
    policy.chmod(0o755)
    resolv = target / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.touch()
    return target


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_in(
    root: Path,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    hostname: str | None = None,
    timeout: float = 1800,
) -> Result:
    """`command` as root inside `root`: its own mount and PID namespaces (and UTS, for
    `hostname`), /dev, /proc and the host's resolv.conf mounted, then chroot. Nothing of the
    host but those is visible; the mounts end with the command."""
    setup = [
        "set -e",
        'R="$1"; shift',
        *(["hostname " + hostname] if hostname else []),
        'mount --rbind /dev "$R/dev"',
        'mount -t proc proc "$R/proc"',
        'mount --bind /etc/resolv.conf "$R/etc/resolv.conf"',
        'exec chroot "$R" "$@"',
    ]
    environment = {
        "PATH": PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "SYSTEMD_OFFLINE": "1",
        **(env or {}),
    }
    argv = [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        *(["--uts"] if hostname else []),
        "sh",
        "-c",
        "\n".join(setup),
        "sh",
        str(root),
        "/usr/bin/env",
        "-i",
        *(f"{key}={value}" for key, value in environment.items()),
        *command,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=timeout, env={"PATH": PATH}
    )
    return Result(done.returncode, done.stdout, done.stderr)


def bash_in(root: Path, script: str, **kwargs: object) -> Result:
    """A bash script (text) run inside `root` as a file under /run (never part of a listing)."""
    folder = root / "run/bakery-tests"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"script-{time.monotonic_ns()}.sh"
    path.write_text(script)
    return run_in(root, ["/bin/bash", f"/{path.relative_to(root)}"], **kwargs)  # type: ignore[arg-type]


def listing(root: Path, tops: Sequence[str], exclude: Sequence[str] = ()) -> dict[str, str]:
    """Path -> what it is (file hash and mode, symlink target, folder mode) under `tops`."""
    found: dict[str, str] = {}
    for top in tops:
        start = root / top.lstrip("/")
        paths = [start] if not start.is_dir() or start.is_symlink() else sorted(start.rglob("*"))
        for path in paths:
            relative = "/" + str(path.relative_to(root))
            if any(relative.startswith(prefix) for prefix in exclude):
                continue
            info = path.lstat()
            if path.is_symlink():
                found[relative] = f"-> {os.readlink(path)}"
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[relative] = f"{info.st_mode:o} {digest}"
            else:
                found[relative] = f"{info.st_mode:o}"
    return found


def copy_root(source: Path, target: Path) -> Path:
    """A copy of a prepared root for a test that changes it (cp -a keeps owners and links)."""
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(target)], check=True)
    return target


def remove_root(root: Path) -> None:
    """Delete a root, never through a mount still on it (its /home tmpfs, say)."""
    prefix = str(root.resolve())
    with open("/proc/self/mounts") as mounts:
        inside = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for mount in sorted(inside, reverse=True):
        subprocess.run(["umount", "--lazy", mount], check=True)
    shutil.rmtree(root, ignore_errors=True)
