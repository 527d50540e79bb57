"""The preparation script, run for real: bash runs the rendered script of every operating
system (and both protocols where AWS offers them) in a throw-away root (BAKERY_ROOT), with
the package managers, systemctl, systemd-run, dconf, journalctl, visudo, hostname, gpasswd,
userdel, ssh-keygen and the agents' installers replaced by recording stand-ins on PATH
(tests/fixtures/stand_ins/recorder). tests/system/ runs it in a real Debian system root."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from workspaces_image_bakery.preparation import (
    DONE_MARKER,
    FAILED_MARKER,
    FIRSTBOOT_SERVICE,
    MAX_SCRIPT_BYTES,
    OPERATING_SYSTEMS,
    STEP_MARKER,
    SUDO_SERVICE,
    TEMPLATE_IDENTITY_FILE,
    VERSION_FILE,
    Agent,
    AgentKind,
    Clipboard,
    Desktop,
    DesktopSettings,
    ImagePreparation,
    OperatingSystem,
    StreamingProtocol,
    preparation_problems,
    render_script,
)
from workspaces_image_bakery.preparation.boot_units import RESTORE_SERVICE
from workspaces_image_bakery.preparation.desktop import LOCKS

SHELLCHECK = Path(sys.executable).parent / "shellcheck"
RECORDER = Path(__file__).parent / "fixtures" / "stand_ins" / "recorder"
STAND_INS = [
    *("apt-get", "dnf", "yum", "systemctl", "systemd-run", "dconf", "journalctl", "visudo"),
    *("hostname",),
    *("gpasswd", "userdel", "ssh-keygen", "install-apps", "validate-apps"),
    *("install-clamav", "check-clamav", "install-cwagent", "check-cwagent"),
    *("install-puppet", "check-puppet"),
]
WSP_CONF = "[general]\nclipboard = ignored\n\n[policies]\nclipboard = {}\naudio-in = enabled\n"
FINGERPRINT = "0123abcd" * 8
MACHINE_ID = "0f0e0d0c0b0a09080706050403020100"
OS_RELEASE = {
    OperatingSystem.UBUNTU_22_04: 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n',
    OperatingSystem.UBUNTU_24_04: 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n',
    OperatingSystem.ROCKY_8: 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="8.10"\n',
    OperatingSystem.ROCKY_9: 'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.6"\n',
    OperatingSystem.RHEL_8: 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="8.9"\n',
    OperatingSystem.RHEL_9: 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.6"\n',
    OperatingSystem.AMAZON_LINUX_2: 'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nVERSION_ID="2"\n',
}
CASES = [
    (OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP),
    (OperatingSystem.UBUNTU_24_04, StreamingProtocol.WSP),
    (OperatingSystem.ROCKY_8, StreamingProtocol.WSP),
    (OperatingSystem.ROCKY_9, StreamingProtocol.WSP),
    (OperatingSystem.RHEL_8, StreamingProtocol.WSP),
    (OperatingSystem.RHEL_9, StreamingProtocol.WSP),
    (OperatingSystem.AMAZON_LINUX_2, StreamingProtocol.PCOIP),
    (OperatingSystem.AMAZON_LINUX_2, StreamingProtocol.WSP),
]
CASE_IDS = [f"{o.value}-{p.value}" for o, p in CASES]
PUPPET = Agent(
    "puppet-agent",
    AgentKind.CONFIGURATION_MANAGEMENT,
    install="install-puppet --server puppet.example.com",
    check="check-puppet",
    service="puppet.service",
    identity_paths=("/etc/puppetlabs/puppet/ssl",),
)
AGENTS = (
    Agent("clamav", AgentKind.SECURITY, install="install-clamav", check="check-clamav"),
    Agent("cwagent", AgentKind.LOG_FORWARDING, install="install-cwagent", check="check-cwagent"),
    PUPPET,
)
# Planted in the root before a run: everything that must be gone afterwards.
SECRETS = [
    "root/.aws/credentials",
    "root/.ssh/id_rsa",
    "root/.ssh/authorized_keys",
    "root/.bash_history",
    "root/.python_history",
    "root/.viminfo",
    "home/alice/.aws/config",
    "home/alice/.ssh/id_ed25519",
    "home/alice/.ssh/id_ed25519.pub",
    "home/alice/.ssh/authorized_keys",
    "home/alice/.bash_history",
    "home/alice/.zsh_history",
    "home/alice/.lesshst",
    "home/alice/.git-credentials",
    "srv/builder/.bash_history",
    "var/log/syslog.1",
    "var/log/syslog.2.gz",
    "var/log/messages-20261101",
    f"var/log/journal/{MACHINE_ID}/system.journal",
    f"var/log/journal/{MACHINE_ID}/user-1001@0001.journal~",
    "var/cache/apt/archives/git_2.34_amd64.deb",
    "var/cache/apt/pkgcache.bin",
    "var/cache/dnf/baseos-1234/repodata/primary.xml.gz",
    "var/cache/yum/x86_64/2/amzn2-core/packages/git.rpm",
    "tmp/installer.run",
    "tmp/.hidden-token",
    "var/tmp/build/output.tar",
]
EMPTIED_LOGS = [
    "var/log/syslog",
    "var/log/wtmp",
    "var/log/btmp",
    "var/log/lastlog",
    "var/log/app/custom.txt",
]
# Planted and left alone: host keys (image creation wipes them), the template's SSM
# registration (the build's channel), lock files, the desktop's socket folders.
KEPT = [
    "etc/ssh/ssh_host_ed25519_key",
    "etc/ssh/ssh_host_ed25519_key.pub",
    "var/lib/amazon/ssm/registration",
    "var/lib/amazon/ssm/Vault/Store/RegistrationKey",
    "var/lib/amazon/ssm/mi-0123456789abcdef0/document/state",
    "var/cache/apt/archives/lock",
    "tmp/.X11-unix/X0",
    "etc/puppetlabs/puppet/ssl/certs/template.pem",
]


def preparation(
    os_: OperatingSystem = OperatingSystem.UBUNTU_22_04,
    protocol: StreamingProtocol | None = None,
    **changes: object,
) -> ImagePreparation:
    gnome = OPERATING_SYSTEMS[os_].desktop is Desktop.GNOME
    prepared = ImagePreparation(
        operating_system=os_,
        streaming_protocol=protocol,
        install_steps=["install-apps --all"],
        validation_steps=["validate-apps"],
        agents=AGENTS,
        clipboard=Clipboard.CLIENT_TO_WORKSPACE,
        desktop=DesktopSettings(
            background="/usr/share/backgrounds/corporate.png",
            favourites=("firefox.desktop", "org.gnome.Terminal.desktop") if gnome else (),
            settings={"org/gnome/desktop/session/idle-delay": "uint32 900"},
        ),
        build_users=("builder",),
    )
    return replace(prepared, **changes)  # type: ignore[arg-type]


def script_of(prepared: ImagePreparation) -> str:
    return render_script(
        prepared,
        persona="developer",
        version="1.0.0",
        fingerprint=FINGERPRINT,
        software=["git 2.47"],
    )


def plant(root: Path, relative: str, text: str = "secret\n") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_root(base: Path, os_: OperatingSystem, protocol: StreamingProtocol) -> Path:
    root = base / "root"
    plant(root, "etc/os-release", OS_RELEASE[os_])
    plant(root, "etc/machine-id", MACHINE_ID + "\n")
    plant(root, "sys/class/dmi/id/product_uuid", "ec2a1b2c-0000-1111-2222-333344445555\n")
    plant(root, "etc/login.defs", "UID_MIN                  1000\n")
    plant(
        root,
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
        "alice:x:1001:1001::/home/alice:/bin/bash\nbuilder:x:1002:1002::/srv/builder:/bin/bash\n"
        "ssm-user:x:1003:1003::/home/ssm-user:/bin/bash\n",
    )
    plant(root, "etc/group", "root:x:0:\nsudo:x:27:alice,ssm-user,daemon\nwheel:x:10:root,alice\n")
    plant(root, "etc/sudoers", "root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n")
    plant(root, "etc/sudoers.d/01-ws-admin-user", "alice ALL=(ALL:ALL) ALL\n")
    plant(root, "etc/sudoers.d/ssm-agent-users", "ssm-user ALL=(ALL) NOPASSWD:ALL\n")
    plant(
        root,
        "etc/sudoers.d/90-admins",
        "%Linux_WorkSpaces_Admins ALL=(ALL) ALL\nDefaults env_reset\n"
        "alice ALL = (ALL) \\\n    /usr/bin/apt-get\n",
    )
    if protocol is StreamingProtocol.WSP:
        plant(
            root,
            "etc/wsp/wsp.conf",
            WSP_CONF.format("enabled"),
        )
    else:
        plant(
            root,
            "etc/pcoip-agent/pcoip-agent.conf",
            "# PCoIP agent settings\npcoip.enable_audio = 1\n",
        )
    plant(root, "lib/systemd/system/puppet.service", "[Service]\nExecStart=/opt/puppet\n")
    plant(
        root,
        "lib/systemd/system/amazon-ssm-agent.service",
        "[Service]\nExecStart=/usr/bin/amazon-ssm-agent\n",
    )
    plant(root, "usr/share/backgrounds/corporate.png", "png")
    for relative in [*SECRETS, *KEPT]:
        plant(root, relative)
    for relative in EMPTIED_LOGS:
        plant(root, relative, "log line\n")
    (root / "home/ssm-user").mkdir(parents=True)
    return root


@dataclass
class Run:
    result: subprocess.CompletedProcess[str]
    commands: list[str]

    @property
    def steps(self) -> list[str]:
        return [
            line.removeprefix(STEP_MARKER)
            for line in self.result.stdout.splitlines()
            if line.startswith(STEP_MARKER)
        ]

    def index(self, prefix: str) -> int:
        return next(i for i, c in enumerate(self.commands) if c.startswith(prefix))


def stand_ins(base: Path) -> Path:
    bin_dir = base / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for name in STAND_INS:
            (bin_dir / name).symlink_to(RECORDER)
    return bin_dir


def run_bash(base: Path, script: Path, root: Path, **env: str) -> Run:
    log = base / "commands.log"
    log.unlink(missing_ok=True)
    home = base / "home"
    home.mkdir(exist_ok=True)
    environment = {
        "PATH": f"{stand_ins(base)}:{os.environ['PATH']}",
        "BAKERY_ROOT": str(root),
        "BAKERY_STAND_IN_LOG": str(log),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **env,
    }
    result = subprocess.run(
        ["bash", str(script)], env=environment, capture_output=True, text=True, check=False
    )
    commands = log.read_text().splitlines() if log.exists() else []
    return Run(result, commands)


def prepare(base: Path, prepared: ImagePreparation, root: Path, **env: str) -> Run:
    script = base / "prepare.sh"
    script.write_text(script_of(prepared))
    return run_bash(base, script, root, **env)


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest.update(f"{path.relative_to(root)}:{info.st_mode:o}\n".encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request: pytest.FixtureRequest) -> tuple[OperatingSystem, StreamingProtocol]:
    os_, protocol = request.param
    return os_, protocol


def test_every_operating_system_is_prepared_in_full(
    case: tuple[OperatingSystem, StreamingProtocol], tmp_path: Path
) -> None:
    os_, protocol = case
    root = make_root(tmp_path, os_, protocol)
    run = prepare(tmp_path, preparation(os_, protocol), root)
    assert run.result.returncode == 0, run.result.stderr
    assert run.steps == [
        "preflight",
        "check-operating-system",
        "check-known-template",
        "patch-os",
        "install-step-1",
        "install-agent:clamav",
        "install-agent:cwagent",
        "install-agent:puppet-agent",
        "check-agent:clamav",
        "check-agent:cwagent",
        "check-agent:puppet-agent",
        "hold-agent:puppet-agent",
        "write-launch-facts",
        "configure-streaming-protocol",
        "configure-desktop",
        "remove-user-sudo",
        "install-first-boot",
        "install-template-restore",
        "validate-1",
        "remove-build-users",
        "record-agents",
        "clean-down",
        "write-version-file",
    ]
    assert run.result.stdout.splitlines()[-1] == f"{DONE_MARKER}recipe={FINGERPRINT}"

    # Commands, in order: patch, install, agents' installs, then their checks.
    patch = {
        OperatingSystem.UBUNTU_22_04: "apt-get",
        OperatingSystem.UBUNTU_24_04: "apt-get",
        OperatingSystem.ROCKY_8: "dnf -y --refresh upgrade",
        OperatingSystem.ROCKY_9: "dnf -y --refresh upgrade",
        OperatingSystem.RHEL_8: "dnf -y --refresh upgrade",
        OperatingSystem.RHEL_9: "dnf -y --refresh upgrade",
        OperatingSystem.AMAZON_LINUX_2: "yum -y update",
    }[os_]
    assert run.index(patch) < run.index("install-apps --all") < run.index("install-clamav")
    assert run.index("install-puppet") < run.index("check-clamav") < run.index("validate-apps")
    if os_ is OperatingSystem.UBUNTU_22_04:
        assert run.commands[:2] == [
            "apt-get -o DPkg::Lock::Timeout=600 -o APT::Update::Error-Mode=any update",
            "apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef "
            "-o Dpkg::Options::=--force-confold -y --with-new-pkgs upgrade",
        ]
    # The configuration-management agent is held on the template: disabled and masked.
    assert f"systemctl --root={root} disable puppet.service" in run.commands
    assert f"systemctl --root={root} mask puppet.service" in run.commands
    assert not [c for c in run.commands if "enable puppet" in c or "start puppet" in c]
    assert f"systemctl --root={root} enable {FIRSTBOOT_SERVICE}" in run.commands
    assert f"systemctl --root={root} enable {RESTORE_SERVICE}" in run.commands
    assert f"dconf update {root}/etc/dconf/db" in run.commands
    assert f"journalctl --directory={root}/var/log/journal --vacuum-time=1s" in run.commands
    assert f"userdel --root {root} --force --remove builder" in run.commands
    assert not any("reboot" in c for c in run.commands)

    # The protocol's clipboard policy, under the documented key, once.
    if protocol is StreamingProtocol.WSP:
        assert (root / "etc/wsp/wsp.conf").read_text() == WSP_CONF.format("paste-only")
    else:
        assert (root / "etc/pcoip-agent/pcoip-agent.conf").read_text() == (
            "# PCoIP agent settings\npcoip.enable_audio = 1\npcoip.server_clipboard_state = 2\n"
        )

    # Desktop defaults and their locks, for the OS's desktop.
    keyfile = (root / "etc/dconf/db/local.d/50-workspaces-image-bakery").read_text()
    locks = (root / "etc/dconf/db/local.d/locks/50-workspaces-image-bakery").read_text()
    assert (root / "etc/dconf/profile/user").read_text() == "user-db:user\nsystem-db:local\n"
    assert "[org/gnome/desktop/session]\nidle-delay=uint32 900" in keyfile
    if OPERATING_SYSTEMS[os_].desktop is Desktop.GNOME:
        assert "picture-uri='file:///usr/share/backgrounds/corporate.png'" in keyfile
        assert "favorite-apps=['firefox.desktop', 'org.gnome.Terminal.desktop']" in keyfile
        assert "/org/gnome/shell/favorite-apps\n" in locks
    else:
        assert (
            "[org/mate/desktop/background]\npicture-filename='/usr/share/backgrounds/corporate.png'"
            in keyfile
        )
        assert "/org/mate/desktop/background/picture-filename\n" in locks
    assert "/org/gnome/desktop/session/idle-delay\n" in locks

    # The boot units and their scripts.
    for unit in (SUDO_SERVICE, FIRSTBOOT_SERVICE, RESTORE_SERVICE):
        assert (
            "[Install]\nWantedBy=multi-user.target"
            in (root / "etc/systemd/system" / unit).read_text()
        )
    assert (
        "Before=amazon-ssm-agent.service"
        in (root / "etc/systemd/system" / FIRSTBOOT_SERVICE).read_text()
    )
    assert (root / "usr/local/libexec/workspaces-image-bakery/firstboot").stat().st_mode & 0o111
    identity = (root / TEMPLATE_IDENTITY_FILE.lstrip("/")).read_text()
    assert identity.startswith(
        f"hostname=template-host\nmachine-id={MACHINE_ID}\nproduct-uuid=ec2a1b2c"
    )

    # The version file, last, on the system disk.
    version = root / VERSION_FILE.lstrip("/")
    lines = version.read_text().splitlines()
    assert lines[:4] == [
        "persona=developer",
        "version=1.0.0",
        f"recipe={FINGERPRINT}",
        "software=git 2.47, clamav, cwagent, puppet-agent",
    ]
    assert lines[4].startswith("built=20") and lines[4].endswith("Z") and len(lines) == 5
    newest = max(p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file())
    assert version.stat().st_mtime_ns == newest

    # What clean-down leaves: no secrets, histories, rotated logs, caches or temporary files.
    assert [s for s in SECRETS if (root / s).exists()] == []
    assert [p for p in EMPTIED_LOGS if (root / p).read_text()] == []
    assert [k for k in KEPT if not (root / k).exists()] == []


def test_a_second_run_changes_nothing(
    case: tuple[OperatingSystem, StreamingProtocol], tmp_path: Path
) -> None:
    os_, protocol = case
    root = make_root(tmp_path, os_, protocol)
    first = prepare(tmp_path, preparation(os_, protocol), root)
    assert first.result.returncode == 0, first.result.stderr
    before = tree_hash(root)
    second = prepare(tmp_path, preparation(os_, protocol), root)
    assert second.result.returncode == 0, second.result.stderr
    assert tree_hash(root) == before
    assert second.steps == first.steps


@pytest.mark.parametrize(
    ("os_", "fail", "step"),
    [
        (OperatingSystem.UBUNTU_22_04, "apt-get:update", "patch-os"),
        (OperatingSystem.UBUNTU_22_04, "apt-get:upgrade", "patch-os"),
        (OperatingSystem.ROCKY_8, "dnf", "patch-os"),
        (OperatingSystem.AMAZON_LINUX_2, "yum", "patch-os"),
        (OperatingSystem.UBUNTU_22_04, "install-apps", "install-step-1"),
        (OperatingSystem.RHEL_8, "install-cwagent", "install-agent:cwagent"),
        (OperatingSystem.UBUNTU_22_04, "check-clamav", "check-agent:clamav"),
        (OperatingSystem.UBUNTU_22_04, "validate-apps", "validate-1"),
        (OperatingSystem.UBUNTU_22_04, "dconf", "configure-desktop"),
        (OperatingSystem.UBUNTU_22_04, "visudo", "remove-user-sudo"),
    ],
)
def test_a_failure_stops_the_script_at_its_step(
    os_: OperatingSystem, fail: str, step: str, tmp_path: Path
) -> None:
    protocol = OPERATING_SYSTEMS[os_].default_protocol
    root = make_root(tmp_path, os_, protocol)
    run = prepare(tmp_path, preparation(os_), root, BAKERY_FAIL=fail)
    code = 1 if fail == "visudo" else 42  # the sudo removal exits 1 when visudo refuses
    assert run.result.returncode == code
    failed = [line for line in run.result.stderr.splitlines() if line.startswith(FAILED_MARKER)]
    assert failed == [f"{FAILED_MARKER}{step} (exit {code})"]
    assert run.steps[-1] == step
    assert DONE_MARKER not in run.result.stdout
    assert not (root / VERSION_FILE.lstrip("/")).exists()
    if step == "patch-os":
        assert not any(c.startswith("install-") for c in run.commands)
    if step == "remove-user-sudo":  # visudo refused: the sudoers files are as they were
        assert (root / "etc/sudoers.d/01-ws-admin-user").read_text() == "alice ALL=(ALL:ALL) ALL\n"


def test_a_missing_protocol_configuration_fails_the_script(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    (root / "etc/wsp/wsp.conf").unlink()
    run = prepare(tmp_path, preparation(), root)
    assert run.result.returncode != 0
    failed = [line for line in run.result.stderr.splitlines() if line.startswith(FAILED_MARKER)]
    assert failed == [f"{FAILED_MARKER}configure-streaming-protocol (exit 1)"]
    assert f"{root}/etc/wsp/wsp.conf is missing" in run.result.stderr
    assert not (root / VERSION_FILE.lstrip("/")).exists()


def test_another_operating_system_is_refused_before_any_change(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.ROCKY_8, StreamingProtocol.WSP)
    before = tree_hash(root)
    run = prepare(tmp_path, preparation(OperatingSystem.UBUNTU_22_04), root)
    assert f"{FAILED_MARKER}check-operating-system (exit 1)" in run.result.stderr
    assert "this is rocky 8.10, not Ubuntu 22.04" in run.result.stderr
    assert run.commands == [] and tree_hash(root) == before


def test_nothing_outside_the_root_is_touched(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    home = tmp_path / "home"
    for relative in (".bash_history", ".aws/credentials", ".ssh/authorized_keys"):
        plant(home, relative)
    outside = tree_hash(home)
    run = prepare(tmp_path, preparation(), root)
    assert run.result.returncode == 0, run.result.stderr
    assert tree_hash(home) == outside
    paths = [
        word.split("=", 1)[-1]
        for command in run.commands
        for word in command.split()
        if word.startswith("/") or "=/" in word
    ]
    assert paths and all(p.startswith(str(root)) for p in paths), paths


def test_scripts_pass_shellcheck(tmp_path: Path) -> None:
    scripts: list[Path] = []
    for index, (os_, protocol) in enumerate(CASES):
        for prepared in (
            preparation(os_, protocol),
            ImagePreparation(operating_system=os_, streaming_protocol=protocol),
            preparation(
                os_, protocol, remove_user_sudo=False, desktop=None, agents=(), build_users=()
            ),
        ):
            script = tmp_path / f"prepare-{index}-{len(scripts)}.sh"
            script.write_text(script_of(prepared))
            scripts.append(script)
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    assert prepare(tmp_path, preparation(), root).result.returncode == 0
    helpers = sorted((root / "usr/local/libexec/workspaces-image-bakery").iterdir())
    assert [h.name for h in helpers] == ["firstboot", "remove-user-sudo", "restore-template"]
    result = subprocess.run(
        [str(SHELLCHECK), "-s", "bash", *map(str, [*scripts, *helpers])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_users_lose_sudo_but_root_the_ssm_agent_and_groups_keep_it(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    run = prepare(tmp_path, preparation(), root)
    assert run.result.returncode == 0, run.result.stderr
    removed = [c for c in run.commands if c.startswith("gpasswd")]
    assert removed == [
        f"gpasswd --root {root} --delete alice sudo",
        f"gpasswd --root {root} --delete alice wheel",
    ]
    sudoers = root / "etc/sudoers.d"
    assert not (sudoers / "01-ws-admin-user").exists()  # it only granted a user
    assert (sudoers / "ssm-agent-users").read_text() == "ssm-user ALL=(ALL) NOPASSWD:ALL\n"
    assert (sudoers / "90-admins").read_text() == (
        "%Linux_WorkSpaces_Admins ALL=(ALL) ALL\nDefaults env_reset\n"
        "# workspaces-image-bakery: alice ALL = (ALL) \\\n"
        "# workspaces-image-bakery:     /usr/bin/apt-get\n"
    )
    assert sorted(p.name for p in sudoers.iterdir()) == ["90-admins", "ssm-agent-users"]
    assert f"visudo -c -q -f {root}/etc/sudoers" in run.commands
    path_unit = (
        root / "etc/systemd/system/workspaces-image-bakery-remove-user-sudo.path"
    ).read_text()
    assert "PathChanged=/etc/sudoers.d" in path_unit


def test_turning_features_off_takes_out_what_an_earlier_run_left(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    assert prepare(tmp_path, preparation(), root).result.returncode == 0
    run = prepare(tmp_path, preparation(remove_user_sudo=False, desktop=None), root)
    assert run.result.returncode == 0, run.result.stderr
    assert "keep-user-sudo" in run.steps
    assert not (root / "etc/systemd/system" / SUDO_SERVICE).exists()
    assert not (root / "etc/dconf/db/local.d/50-workspaces-image-bakery").exists()
    assert f"dconf update {root}/etc/dconf/db" in run.commands


def test_the_first_boot_unit_sheds_the_template_identity_only_elsewhere(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    assert prepare(tmp_path, preparation(), root).result.returncode == 0
    firstboot = root / "usr/local/libexec/workspaces-image-bakery/firstboot"

    # On the template itself (same hostname and machine-id): nothing happens.
    before = tree_hash(root)
    same = run_bash(tmp_path, firstboot, root)
    assert same.result.returncode == 0, same.result.stderr
    assert "this is the template WorkSpace: nothing to do" in same.result.stdout
    assert tree_hash(root) == before and same.commands == ["hostname"]

    # A WorkSpace launched from the image: another hostname (the same instance UUID does not
    # make it the template).
    other = run_bash(tmp_path, firstboot, root, BAKERY_HOSTNAME="ws-new-desktop")
    assert other.result.returncode == 0, other.result.stderr
    for gone in (
        "var/lib/amazon/ssm/registration",
        "var/lib/amazon/ssm/Vault",
        "var/lib/amazon/ssm/mi-0123456789abcdef0",
        "etc/puppetlabs/puppet/ssl",
        TEMPLATE_IDENTITY_FILE.lstrip("/"),
        f"etc/systemd/system/{FIRSTBOOT_SERVICE}",
        "usr/local/libexec/workspaces-image-bakery/firstboot",
        "etc/ssh/ssh_host_ed25519_key",
    ):
        assert not (root / gone).exists(), gone
    assert (root / "etc/machine-id").read_text() == ""
    assert other.commands[1:] == [
        "systemctl stop amazon-ssm-agent.service",
        f"systemctl --root={root} disable amazon-ssm-agent.service",
        f"ssh-keygen -A -f {root}",
        # The configuration-management agent, held on the template, starts here.
        f"systemctl --root={root} unmask puppet.service",
        f"systemctl --root={root} enable puppet.service",
        "systemctl --no-block start puppet.service",
        f"systemctl --root={root} disable {FIRSTBOOT_SERVICE}",
    ]


def test_the_first_boot_unit_sees_another_instance_and_keeps_an_ssm_agent_that_manages(
    tmp_path: Path,
) -> None:
    """A WorkSpace with the template's hostname on another EC2 instance (another DMI UUID) is
    not the template; an SSM agent that is also the configuration-management agent stays
    enabled on the template (it is the build's channel) and is restarted, not disabled."""
    ssm = Agent(
        "amazon-ssm-agent",
        AgentKind.CONFIGURATION_MANAGEMENT,
        install="install-puppet",
        check="check-puppet",
        service="amazon-ssm-agent.service",
    )
    root = make_root(tmp_path, OperatingSystem.ROCKY_8, StreamingProtocol.WSP)
    prepared = preparation(OperatingSystem.ROCKY_8, agents=(ssm,))
    assert prepare(tmp_path, prepared, root).result.returncode == 0
    assert not [c for c in prepare(tmp_path, prepared, root).commands if "mask" in c]
    (root / "sys/class/dmi/id/product_uuid").write_text("ec2ffff0-0000-1111-2222-333344445555\n")
    other = run_bash(tmp_path, root / "usr/local/libexec/workspaces-image-bakery/firstboot", root)
    assert other.result.returncode == 0, other.result.stderr
    assert not (root / "var/lib/amazon/ssm/registration").exists()
    assert "systemctl --no-block start amazon-ssm-agent.service" in other.commands
    assert not any("disable amazon-ssm-agent" in c for c in other.commands)
    assert (root / "etc/puppetlabs/puppet/ssl/certs/template.pem").exists()  # not declared


def test_the_template_with_a_new_machine_id_is_still_the_template(tmp_path: Path) -> None:
    """The seal empties the template's machine-id before its image, so the template comes
    back with a new one: the same instance (DMI UUID) and hostname keep it the template, and
    the first-boot unit changes nothing. Without a UUID on either side, the machine-id
    decides."""
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    assert prepare(tmp_path, preparation(), root).result.returncode == 0
    firstboot = root / "usr/local/libexec/workspaces-image-bakery/firstboot"
    (root / "etc/machine-id").write_text("ffffffffffffffffffffffffffffffff\n")
    before = tree_hash(root)
    same = run_bash(tmp_path, firstboot, root)
    assert "this is the template WorkSpace: nothing to do" in same.result.stdout
    assert tree_hash(root) == before

    (root / "sys/class/dmi/id/product_uuid").unlink()
    other = run_bash(tmp_path, firstboot, root)
    assert other.result.returncode == 0, other.result.stderr
    assert "not the template WorkSpace" in other.result.stdout
    assert not (root / "var/lib/amazon/ssm/registration").exists()


def test_a_workspace_from_a_sealed_image_keeps_its_new_machine_id_and_gets_host_keys(
    tmp_path: Path,
) -> None:
    """On a WorkSpace made from a sealed image systemd already made a new machine-id (the
    image's was empty) and there are no host keys: the first-boot unit keeps the machine-id,
    makes the missing host keys and starts the held configuration-management agent."""
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    assert prepare(tmp_path, preparation(), root).result.returncode == 0
    new_id = "1234567890abcdef1234567890abcdef\n"
    (root / "etc/machine-id").write_text(new_id)
    (root / "sys/class/dmi/id/product_uuid").write_text("ec2ffff0-0000-1111-2222-333344445555\n")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    run = run_bash(tmp_path, root / "usr/local/libexec/workspaces-image-bakery/firstboot", root)
    assert run.result.returncode == 0, run.result.stderr
    assert (root / "etc/machine-id").read_text() == new_id
    assert f"ssh-keygen -A -f {root}" in run.commands
    assert "systemctl --no-block start puppet.service" in run.commands


def test_a_configuration_management_unit_in_etc_is_disabled_not_masked(tmp_path: Path) -> None:
    """systemctl cannot mask a unit whose file is in /etc/systemd/system: the script disables
    it only (and a second run still changes nothing)."""
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    (root / "lib/systemd/system/puppet.service").unlink()
    plant(root, "etc/systemd/system/puppet.service", "[Service]\nExecStart=/opt/puppet\n")
    run = prepare(tmp_path, preparation(), root)
    assert run.result.returncode == 0, run.result.stderr
    assert f"systemctl --root={root} disable puppet.service" in run.commands
    assert not [c for c in run.commands if "mask" in c]
    before = tree_hash(root)
    assert prepare(tmp_path, preparation(), root).result.returncode == 0
    assert tree_hash(root) == before


def test_the_script_stays_well_under_the_ssm_document_limit() -> None:
    assert len(script_of(preparation()).encode()) < MAX_SCRIPT_BYTES / 2
    huge = preparation(install_steps=["install-apps " + "x" * 200] * 300)
    assert huge.problems() == []
    assert preparation_problems(huge) == [
        ("preparation", preparation_problems(huge)[0][1], preparation_problems(huge)[0][2]),
    ]
    assert "under 60000 bytes" in preparation_problems(huge)[0][2]


def test_the_review_call_style_still_renders() -> None:
    text = render_script(ImagePreparation(), persona="office", version="2", fingerprint="f00d")
    assert "\npersona=office\nversion=2\nrecipe=f00d\nsoftware=\nBAKERY_VERSION\n" in text


# --- what the declaration accepts --------------------------------------------------------


def fields_of(prepared: ImagePreparation) -> dict[str, str]:
    return {field: allowed for field, _, allowed in prepared.problems()}


def test_the_defaults_are_valid_and_stream_with_the_os_protocol() -> None:
    assert ImagePreparation().problems() == []
    assert preparation().problems() == []
    assert ImagePreparation().protocol is StreamingProtocol.WSP
    for os_ in OFFERED:
        assert preparation(os_).problems() == []


OFFERED = [o for o in OperatingSystem if OPERATING_SYSTEMS[o].offered]


@pytest.mark.parametrize("os_", OFFERED)
def test_pcoip_is_refused_where_aws_offers_only_dcv(os_: OperatingSystem) -> None:
    label = OPERATING_SYSTEMS[os_].label
    assert fields_of(preparation(os_, StreamingProtocol.PCOIP)) == {
        "preparation.streaming_protocol": f"WSP (DCV): what AWS offers for {label} WorkSpaces"
    }


def test_amazon_linux_2_is_refused_now_that_aws_retired_it() -> None:
    problems = fields_of(preparation(OperatingSystem.AMAZON_LINUX_2, StreamingProtocol.PCOIP))
    assert list(problems) == ["preparation.operating_system"]
    assert "June 30, 2026" in problems["preparation.operating_system"]


def test_the_offered_systems_are_those_the_guide_documents() -> None:
    assert {o.name for o in OFFERED} == {
        "UBUNTU_22_04",
        "UBUNTU_24_04",
        "ROCKY_8",
        "ROCKY_9",
        "RHEL_8",
        "RHEL_9",
    }


@pytest.mark.parametrize(
    "os_", [OperatingSystem.UBUNTU_26_04, OperatingSystem.ROCKY_10, OperatingSystem.RHEL_10]
)
def test_systems_the_api_lists_but_the_guide_does_not_are_refused_with_why(
    os_: OperatingSystem,
) -> None:
    """The WorkSpaces API (botocore) names them; no bundle or DCV configuration is
    documented yet: refused, saying so and what is offered instead."""
    import botocore.session

    api = botocore.session.get_session().get_service_model("workspaces")
    names: Any = api.shape_for("OperatingSystemName")
    assert os_.name in names.enum
    problems = fields_of(preparation(os_))
    assert list(problems) == ["preparation.operating_system"]
    why = problems["preparation.operating_system"]
    assert "no public bundle, desktop or DCV configuration is documented" in why
    assert "UBUNTU_24_04, ROCKY_8, ROCKY_9, RHEL_8 or RHEL_9" in why


def test_options_without_a_documented_setting_are_refused() -> None:
    assert preparation(aes256_only=False).problems() == []
    assert "cipher setting" in fields_of(preparation(aes256_only=True))["preparation.aes256_only"]
    mate = fields_of(
        preparation(
            OperatingSystem.AMAZON_LINUX_2,
            desktop=DesktopSettings(favourites=["firefox.desktop"]),
        )
    )
    assert "none on MATE" in mate["preparation.desktop.favourites"]


def puppet(**changes: object) -> dict[str, object]:
    return {"agents": [replace(PUPPET, **changes)]}  # type: ignore[arg-type]


def desk(**settings: object) -> dict[str, object]:
    return {"desktop": DesktopSettings(**settings)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (puppet(service=None), "agents[0].service"),
        ({"agents": [PUPPET, PUPPET]}, "agents[1].name"),
        (puppet(name="puppet agent"), "agents[0].name"),
        (puppet(service="puppet"), "agents[0].service"),
        (puppet(check=" "), "agents[0].check"),
        (puppet(identity_paths=["/etc"]), "agents[0].identity_paths[0]"),
        (puppet(identity_paths=["/a/../etc"]), "agents[0].identity_paths[0]"),
        ({"agents": ["puppet"]}, "agents[0]"),
        ({"agents": "puppet"}, "agents"),
        ({"build_users": ["root"]}, "build_users[0]"),
        ({"build_users": ["Build User"]}, "build_users[0]"),
        (desk(background="/home/alice/bg.png"), "desktop.background"),
        (desk(background="bg.png"), "desktop.background"),
        (desk(favourites=["firefox"]), "desktop.favourites[0]"),
        (desk(settings={"idle-delay": "1"}), "desktop.settings"),
        (desk(settings={"org/a/b": "'x'\n[org/c]"}), "desktop.settings[org/a/b]"),
        (
            desk(favourites=["a.desktop"], settings={"org/gnome/shell/favorite-apps": "[]"}),
            "desktop.settings[org/gnome/shell/favorite-apps]",
        ),
        ({"desktop": {"background": "/x.png"}}, "desktop"),
        ({"streaming_protocol": "wsp"}, "streaming_protocol"),
        ({"clipboard": 2}, "clipboard"),
        ({"install_steps": "apt-get install -y git"}, "install_steps"),
        ({"install_steps": ["install-apps ${Token[TOKEN.12]}"]}, "install_steps[0]"),
    ],
)
def test_malformed_fields_are_problems(changes: dict[str, object], field: str) -> None:
    prepared = replace(preparation(), **changes)  # type: ignore[arg-type]
    assert f"preparation.{field}" in fields_of(prepared)


def test_the_recipe_and_the_secret_scan_cover_every_field() -> None:
    prepared = preparation()
    declared = {f for f in ImagePreparation.__dataclass_fields__}
    recipe = prepared.recipe()
    # application_packages only when given: recipes without it keep their fingerprints.
    assert set(recipe) == declared - {"application_packages"}
    named = replace(prepared, application_packages={"vscode 1.95": "code"})
    assert set(named.recipe()) == declared and named.recipe() != recipe
    assert recipe["streaming_protocol"] == "wsp"
    assert recipe["agents"][2] == {  # type: ignore[index]
        "name": "puppet-agent",
        "kind": "configuration-management",
        "install": "install-puppet --server puppet.example.com",
        "check": "check-puppet",
        "service": "puppet.service",
        "identity_paths": ["/etc/puppetlabs/puppet/ssl"],
    }
    strings = prepared.user_strings()
    assert strings["preparation.agents[2].install"] == "install-puppet --server puppet.example.com"
    assert strings["preparation.agents[0].check"] == "check-clamav"
    assert strings["preparation.desktop.background"] == "/usr/share/backgrounds/corporate.png"
    assert strings["preparation.desktop.settings[org/gnome/desktop/session/idle-delay]"] == (
        "org/gnome/desktop/session/idle-delay=uint32 900"
    )
    assert strings["preparation.build_users[0]"] == "builder"
    assert prepared.installed_software() == ["clamav", "cwagent", "puppet-agent"]
    assert prepared.recipe() != preparation(clipboard=Clipboard.DISABLED).recipe()
    # Declaring the OS's default protocol is the same image as leaving it out.
    assert preparation(protocol=StreamingProtocol.WSP).recipe() == prepared.recipe()


def test_thin_and_zero_personas_need_a_configuration_management_agent() -> None:
    import aws_cdk as cdk

    from workspaces_image_bakery import BakeryValidationError, ImageDesign, Persona, TaggingPolicy

    def persona(design: ImageDesign, prepared: ImagePreparation) -> Persona:
        stack = cdk.Stack(cdk.App(), "Prep")
        policy = TaggingPolicy(
            stack,
            "Tags",
            defaults={
                "Project": "p",
                "CostCenter": "c",
                "Stage": "dev",
                "Role": "r",
                "Confidentiality": "internal",
            },
        )
        return Persona(
            stack,
            "P",
            name="developer",
            design=design,
            image_version="1.0.0",
            template_workspace_id="ws-dev0template1",
            tagging_policy=policy,
            launch_applications=["docker-ce"] if design is not ImageDesign.FULLY_BAKED else [],
            config_management_agent="puppet-agent 8",
            preparation=prepared,
        )

    without = preparation(agents=AGENTS[:2])
    for design in (ImageDesign.THIN, ImageDesign.ZERO):
        with pytest.raises(BakeryValidationError) as error:
            persona(design, without)
        fields = [p.field for p in error.value.problems]
        assert fields == ["preparation.agents"], str(error.value)
        assert "CONFIGURATION_MANAGEMENT" in str(error.value)
    assert persona(ImageDesign.THIN, preparation()).preparation is not None
    assert persona(ImageDesign.FULLY_BAKED, without).preparation is not None


def test_unlocked_desktop_defaults_leave_no_locks(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    assert prepare(tmp_path, preparation(), root).result.returncode == 0
    assert (root / LOCKS.lstrip("/")).exists()
    default = preparation().desktop
    assert default is not None
    run = prepare(tmp_path, preparation(desktop=replace(default, locked=False)), root)
    assert run.result.returncode == 0, run.result.stderr
    assert (root / "etc/dconf/db/local.d/50-workspaces-image-bakery").exists()
    assert not (root / LOCKS.lstrip("/")).exists()


def test_without_patching_no_package_is_updated(tmp_path: Path) -> None:
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    run = prepare(tmp_path, preparation(patch_os=False), root)
    assert run.result.returncode == 0, run.result.stderr
    assert "patch-os" not in run.steps
    assert not [c for c in run.commands if " upgrade" in c or c.endswith(" update")]


def test_the_launch_facts_reach_each_installed_tool(tmp_path: Path) -> None:
    """The persona's launch applications, design and version go into the bakery's launch
    facts and, where a tool's configuration folder exists, where that tool reads facts:
    Facter's external facts, Ansible's local facts, an Ohai hint, Salt grains. A second
    run changes nothing; a persona with neither launch applications nor an agent gets none."""
    import json

    from workspaces_image_bakery.preparation.script import LAUNCH_FACTS_FILE

    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    for folder in ("etc/puppetlabs", "etc/ansible", "etc/salt"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    script = tmp_path / "thin.sh"
    script.write_text(
        render_script(
            preparation(),
            persona="developer",
            version="1.0.0",
            fingerprint=FINGERPRINT,
            design="thin",
            launch_applications=["docker-ce", "jetbrains-toolbox"],
        )
    )
    first = run_bash(tmp_path, script, root)
    assert first.result.returncode == 0, first.result.stderr
    assert "write-launch-facts" in first.steps
    facts = json.loads((root / LAUNCH_FACTS_FILE.lstrip("/")).read_text())
    assert facts == {
        "design": "thin",
        "image_version": "1.0.0",
        "launch_applications": ["docker-ce", "jetbrains-toolbox"],
        "persona": "developer",
    }
    puppet = root / "etc/puppetlabs/facter/facts.d/workspaces_image_bakery.json"
    ansible = root / "etc/ansible/facts.d/workspaces_image_bakery.fact"
    assert json.loads(puppet.read_text()) == facts == json.loads(ansible.read_text())
    salt = (root / "etc/salt/minion.d/workspaces_image_bakery.conf").read_text()
    assert salt.startswith("grains:\n  workspaces_image_bakery: {")
    assert not (root / "etc/chef").exists() and not (root / "etc/facter").exists()
    before = tree_hash(root)
    run_bash(tmp_path, script, root)
    assert tree_hash(root) == before
    baked = render_script(
        ImagePreparation(), persona="office", version="1", fingerprint=FINGERPRINT
    )
    assert "write-launch-facts" not in baked


def test_a_template_with_an_agent_the_recipe_dropped_is_refused_before_any_change(
    tmp_path: Path,
) -> None:
    """A template prepared by an earlier recipe carries its agents: one the new recipe no
    longer declares would stay installed and enabled in the image while the version file and
    the Software tag leave it out. The script stops at once, naming it and its service."""
    root = make_root(tmp_path, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    first = prepare(tmp_path, preparation(), root)
    assert first.result.returncode == 0, first.result.stderr
    before = tree_hash(root)
    kept = tuple(a for a in AGENTS if a.name == "cwagent")
    second = prepare(tmp_path, preparation(agents=kept), root)
    assert second.result.returncode != 0
    assert second.steps[-1] == "check-known-template"
    assert "no longer declares: clamav, puppet-agent (puppet.service)." in second.result.stderr
    assert tree_hash(root) == before and second.commands == []
    again = prepare(tmp_path, preparation(), root)  # the same recipe again: fine
    assert again.result.returncode == 0, again.result.stderr
