"""The preparation, the first-boot unit, the seal and the restore unit, run as root in a real
Debian bookworm system (tests/system/root.py): real apt-get, dpkg, useradd, userdel, gpasswd,
visudo, dconf, systemctl (on unit files), systemd-analyze and ssh-keygen. No stand-ins, no
BAKERY_ROOT: the scripts act on / inside the chroot as they do on a WorkSpace.

What this cannot show: a booted systemd (units are checked and enabled, not started), the
SSM agent (Debian has no package; its state is planted files), Ubuntu's own archive (the
root is Debian that says it is Ubuntu 22.04), and the RPM family: Rocky Linux 8 and RHEL 8
(dnf) and Amazon Linux 2 (yum) are not run for real, because no Rocky, RHEL or Amazon Linux
archive is reachable from these machines, and a Debian root with Debian's rpm and dnf would
show only that dnf accepts its flags on an empty package database.
tests/test_preparation_script.py runs those scripts with stand-ins; on GitHub's runners the
distributions' official container images could run them for real."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.system.conftest import LISTED, SHADOW_BACKUPS, Prepared, steps
from tests.system.persona import (
    FINGERPRINT,
    LAUNCH_APPLICATIONS,
    PREPARATION,
    TEMPLATE_SETUP,
    script,
)
from tests.system.root import UBUNTU_24_04, bash_in, extract, listing, remove_root, run_in
from tests.system.template_identity import (
    PLANTED,
    SSM,
    STASHED_SSM,
    digest,
    host_keys,
    left_on_root_volume,
    plant_template,
    seal,
    there,
)
from workspaces_image_bakery.preparation import (
    DONE_MARKER,
    FAILED_MARKER,
    FIRSTBOOT_SERVICE,
    RESTORE_SERVICE,
    SEALED_FAILED,
    SEALED_OK,
    SUDO_SERVICE,
    TEMPLATE_IDENTITY_FILE,
    TEMPLATE_STASH_DIR,
    VERSION_FILE,
    OperatingSystem,
    read_seal_output,
    seal_items,
)
from workspaces_image_bakery.preparation.boot_units import SUDO_PATH
from workspaces_image_bakery.preparation.seal import SEAL_DEFERRED_SCRIPT

pytestmark = pytest.mark.system

UNITS = (SUDO_SERVICE, SUDO_PATH, FIRSTBOOT_SERVICE, RESTORE_SERVICE)
LIBEXEC = "/usr/local/libexec/workspaces-image-bakery"


def test_the_script_completes_with_real_tools(prepared: Prepared) -> None:
    """The rendered script runs to its end on a real system: apt-get updates, upgrades and
    installs from Debian's archive, the agents' checks pass, systemctl enables the agents and
    masks the configuration-management agent, dconf compiles the locked defaults, gpasswd
    and visudo take alice's sudo away, useradd and userdel make and remove the build user,
    and the version file is written last."""
    root = prepared.root
    assert prepared.first.returncode == 0, prepared.first.stderr[-3000:]
    assert steps(prepared.first.stdout)[-6:] == [
        "validate-1",
        "validate-2",
        "remove-build-users",
        "record-agents",
        "clean-down",
        "write-version-file",
    ]
    assert "hold-agent:puppet-agent" in steps(prepared.first.stdout)
    # The second run checks the template against the agents the first one recorded.
    assert "check-known-template" in steps(prepared.second.stdout)
    assert (root / "etc/workspaces-image-bakery/agents").read_text().startswith("auditd\t")
    assert prepared.first.stdout.splitlines()[-1] == f"{DONE_MARKER}recipe={FINGERPRINT}"
    status = (root / "var/lib/dpkg/status").read_text()
    for package in ("jq", "auditd", "rsyslog", "puppet-agent"):
        assert f"Package: {package}\nStatus: install ok installed" in status, package
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert {p.name for p in wants.iterdir()} >= {"auditd.service", "rsyslog.service", *UNITS}
    assert all((wants / unit).readlink().is_absolute() for unit in UNITS)
    assert not there(wants / "puppet.service")
    assert (root / "etc/systemd/system/puppet.service").readlink() == Path("/dev/null")
    assert (root / "etc/dconf/db/local").is_file()  # compiled by dconf update
    # The launch applications, where Debian's puppet-agent (Facter) reads external facts.
    facts = json.loads((root / "etc/facter/facts.d/workspaces_image_bakery.json").read_text())
    assert facts["launch_applications"] == list(LAUNCH_APPLICATIONS) and facts["design"] == "thin"
    assert (
        "/org/gnome/desktop/session/idle-delay"
        in (root / "etc/dconf/db/local.d/locks/50-workspaces-image-bakery").read_text()
    )
    assert "clipboard = paste-only" in (root / "etc/wsp/wsp.conf").read_text()
    group = (root / "etc/group").read_text()
    assert "\nsudo:x:27:\n" in group
    assert not there(root / "etc/sudoers.d/01-ws-admin-user")
    assert "builder" not in (root / "etc/passwd").read_text()
    assert (
        (root / VERSION_FILE.lstrip("/"))
        .read_text()
        .startswith("persona=system-test\nversion=1.0.0\n")
    )


def test_a_second_run_changes_nothing(prepared: Prepared) -> None:
    """Run again on the prepared system, the script succeeds with the same steps and leaves
    /etc, /usr/local and dpkg's status as they were (paths, modes, hashes, link targets),
    apart from the account backups useradd and userdel rewrite (see SHADOW_BACKUPS)."""
    assert prepared.second.returncode == 0, prepared.second.stderr[-3000:]
    assert steps(prepared.second.stdout) == steps(prepared.first.stdout)

    def kept(listing: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in listing.items() if k not in SHADOW_BACKUPS}

    assert len(prepared.after_first) > 500
    assert kept(prepared.after_second) == kept(prepared.after_first)
    assert set(prepared.after_second) == set(prepared.after_first)


def test_every_unit_the_script_writes_passes_systemd_analyze_verify(prepared: Prepared) -> None:
    """systemd's own checker, inside the system, accepts each unit file the script writes
    (sections, keys, the helper scripts they start exist and are executable)."""
    paths = [f"/etc/systemd/system/{unit}" for unit in UNITS]
    result = run_in(prepared.root, ["systemd-analyze", "verify", *paths])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
    # The checker does find faults (the same call on a broken unit fails).
    broken = bash_in(
        prepared.root,
        "printf '[Service]\\nExecStart=/nonexistent\\nBogus=1\\n' > /run/broken.service\n"
        "systemd-analyze verify /run/broken.service\n",
    )
    assert broken.returncode != 0 and "Bogus" in broken.stderr


def test_a_failing_install_step_stops_the_script(fresh_root: Path) -> None:
    """An install step that fails for real (apt-get cannot find a package, exit 100) stops
    the script at that step: the failure marker names it with apt's exit code, the script
    exits with it, and no version file (the build's success marker) is written."""
    failing = replace(
        PREPARATION,
        install_steps=("apt-get install -y jq", "apt-get install -y bakery-no-such-package"),
    )
    result = bash_in(fresh_root, script(failing))
    assert result.returncode == 100
    failed = [line for line in result.stderr.splitlines() if line.startswith(FAILED_MARKER)]
    assert failed == [f"{FAILED_MARKER}install-step-2 (exit 100)"]
    assert steps(result.stdout)[-1] == "install-step-2"
    assert "Unable to locate package bakery-no-such-package" in result.stderr
    assert DONE_MARKER not in result.stdout
    assert not there(fresh_root / VERSION_FILE.lstrip("/"))


def test_the_first_boot_unit_sheds_the_template_on_another_workspace(prepared_copy: Path) -> None:
    """The first-boot script, run in the system: on the template (same hostname and
    machine-id) it does nothing; on a WorkSpace made from the image (another machine-id, no
    DMI UUID in a chroot) it removes the SSM registration and Puppet's enrolment, makes new
    SSH host keys with ssh-keygen, unmasks and enables puppet.service, and removes itself."""
    root = prepared_copy
    for relative in (f"{SSM}/registration", f"{SSM}/Vault/Store/RegistrationKey"):
        (root / relative.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / relative.lstrip("/")).write_text("template")
    ssl = root / "var/lib/puppet/ssl/certs"
    ssl.mkdir(parents=True, exist_ok=True)
    (ssl / "template.pem").write_text("template")
    keys = host_keys(root)
    assert keys

    same = run_in(root, [f"{LIBEXEC}/firstboot"])
    assert same.returncode == 0, same.stderr
    assert "this is the template WorkSpace: nothing to do" in same.stdout
    assert (root / "var/lib/amazon/ssm/registration").exists()

    (root / "etc/machine-id").write_text("1234567890abcdef1234567890abcdef\n")
    other = run_in(root, [f"{LIBEXEC}/firstboot"])
    assert other.returncode == 0, other.stderr
    assert "not the template WorkSpace: shedding its identity" in other.stdout
    for gone in (
        "var/lib/amazon/ssm/registration",
        "var/lib/amazon/ssm/Vault",
        "var/lib/puppet/ssl",
    ):
        assert not there(root / gone), gone
    new_keys = host_keys(root)
    assert set(new_keys) == set(keys) and not set(new_keys.values()) & set(keys.values())
    assert not there(root / "etc/systemd/system/puppet.service")  # unmasked
    wanted = root / "etc/systemd/system/multi-user.target.wants/puppet.service"
    assert wanted.readlink() == Path("/lib/systemd/system/puppet.service")
    assert (root / "etc/machine-id").read_text() == "1234567890abcdef1234567890abcdef\n"
    for gone in (
        f"etc/systemd/system/{FIRSTBOOT_SERVICE}",
        f"etc/systemd/system/multi-user.target.wants/{FIRSTBOOT_SERVICE}",
        TEMPLATE_IDENTITY_FILE.lstrip("/"),
        f"{LIBEXEC.lstrip('/')}/firstboot",
    ):
        assert not there(root / gone), gone


def test_the_seal_leaves_the_template_off_the_root_volume_and_the_restore_brings_it_back(
    prepared_copy: Path, home_volume: Path
) -> None:
    """The seal in the system, with /home on a file system of its own: planted identity
    files (SSM registration, Vault and output, SSH host keys, machine-id, cloud-init state,
    histories of root, of a system user and of a user, Puppet's ssl folders, logs, journal)
    are reported absent or deferred; the deferred step's command, run here directly, moves
    the SSM files into the stash on /home. Then nothing of them is on the root volume. The
    restore unit's script puts the registration and the host keys back and deletes the
    stash; a second seal after it is as good as the first."""
    root = prepared_copy
    plant_template(root)
    keys = host_keys(root)
    code, stdout, stderr = seal(root, PREPARATION)
    assert code == 0, stdout + stderr
    assert stdout.splitlines()[-1] == SEALED_OK
    outcome = read_seal_output(stdout)
    assert list(outcome.items) == list(seal_items(PREPARATION))
    assert {i for i, (state, _) in outcome.items.items() if state != "absent"} == {
        "ssm-agent-output",
        "ssm-registration",
    }
    scheduled = (root / "run/bakery-shims/systemd-run.log").read_text().splitlines()
    assert len(scheduled) == 1 and scheduled[0].endswith(f"/bin/bash {SEAL_DEFERRED_SCRIPT}")
    assert "--on-active=20" in scheduled[0] and "BAKERY_ROOT" not in scheduled[0]

    deferred = run_in(root, ["/bin/bash", SEAL_DEFERRED_SCRIPT])
    assert deferred.returncode == 0, deferred.stderr
    assert left_on_root_volume(root) == []
    stash = home_volume / TEMPLATE_STASH_DIR.removeprefix("/home/")
    assert sorted(p.name for p in (stash / "ssm").iterdir()) == sorted(STASHED_SSM)
    assert (stash / "ssm/registration").read_text() == PLANTED[f"{SSM}/registration"] + "\n"
    assert {p.name: digest(p) for p in sorted((stash / "ssh").iterdir())} == keys
    assert stash.stat().st_mode & 0o777 == 0o700
    assert not there(root / "home/alice/.bash_history")

    # The template's next boot: the restore unit's script.
    restore = run_in(root, [f"{LIBEXEC}/restore-template"])
    assert restore.returncode == 0, restore.stderr
    assert not there(stash)
    for name in STASHED_SSM:
        assert (root / SSM.lstrip("/") / name).exists(), name
    assert host_keys(root) == keys
    identity = (root / TEMPLATE_IDENTITY_FILE.lstrip("/")).read_text()
    assert "\nmachine-id=\n" in identity  # what the template now has (systemd fills it at boot)

    # Sealing again is as good: the restored registration is deferred again.
    code, stdout, _ = seal(root, PREPARATION)
    assert code == 0 and stdout.splitlines()[-1] == SEALED_OK


def test_the_seal_refuses_to_stash_on_the_root_volume(prepared_copy: Path) -> None:
    """Where /home is on the root file system a stash would be in the image: the seal keeps
    the host keys, machine-id and SSM registration where they were, reports them present
    and fails, so the build takes no image and the template keeps its channel."""
    root = prepared_copy
    plant_template(root)
    code, stdout, stderr = seal(root, PREPARATION)
    assert code == 1
    assert "/home is on the root volume" in stderr
    outcome = read_seal_output(stdout)
    assert outcome.failed == ("ssh-host-keys", "machine-id", "ssm-agent-output", "ssm-registration")
    assert stdout.splitlines()[-1] == SEALED_FAILED + " ".join(outcome.failed)
    assert (root / "var/lib/amazon/ssm/registration").exists()
    assert not there(root / "run/bakery-shims/systemd-run.log")
    assert not there(root / TEMPLATE_STASH_DIR.lstrip("/"))


# Installs OpenSSL at bookworm's version when bookworm-security has a newer one, and prints
# "main <version>" and "security <version>" (nothing when the security suite has none newer).
PLANT_OLDER_OPENSSL = r"""set -e
apt-get update -qq
suite_version() {  # the candidate version of libssl3 from the suite matching $1
  apt-cache madison libssl3 | awk -F'|' -v want="$1" \
    '$3 ~ want {gsub(/ /, "", $2); print $2; exit}'
}
main=$(suite_version ' bookworm/main')
security=$(suite_version 'bookworm-security')
if [ -n "$main" ] && [ -n "$security" ] && dpkg --compare-versions "$security" gt "$main"; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    --allow-downgrades "libssl3=$main" "openssl=$main" >/dev/null
  echo "main $main"
  echo "security $security"
fi
"""


def test_the_pending_updates_document_reads_real_apt(fresh_root: Path) -> None:
    """The patch check's document, run for real: apt-get update against Debian's archive and
    its security suite, then the simulated upgrade. It lists exactly the packages the
    simulation takes from a -security suite (parsed here independently), each once, and a
    count line that matches; nothing is installed."""
    from workspaces_image_bakery.patching.pending_updates import (
        COUNT,
        PENDING,
        PENDING_UPDATES_COMMANDS,
    )

    sources = fresh_root / "etc/apt/sources.list.d/security.list"
    sources.write_text("deb http://deb.debian.org/debian-security bookworm-security main\n")
    # A pending security update, planted: OpenSSL at bookworm's own version when the
    # security suite has a newer one (today it does: 3.0.20 and 3.0.22).
    planted = bash_in(fresh_root, PLANT_OLDER_OPENSSL)
    assert planted.returncode == 0, planted.stderr
    versions = dict(line.split() for line in planted.stdout.splitlines() if line.count(" ") == 1)
    before = bash_in(fresh_root, "dpkg-query -W -f='${Package} ${Version}\\n' | sort")
    checked = bash_in(fresh_root, "\n".join(PENDING_UPDATES_COMMANDS) + "\n")
    assert checked.returncode == 0, checked.stderr
    listed = [
        line.removeprefix(PENDING)
        for line in checked.stdout.splitlines()
        if line.startswith(PENDING)
    ]
    (count,) = [line for line in checked.stdout.splitlines() if line.startswith(COUNT)]
    assert int(count.removeprefix(COUNT)) == len(listed)
    simulated = bash_in(fresh_root, "apt-get -s -o Debug::NoLocking=1 dist-upgrade")
    expected = set()
    for line in simulated.stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["Inst"] and "-security" in line:
            new = parts[3] if parts[2].startswith("[") else parts[2]
            expected.add(f"{parts[1]} {new.strip('()')}")
    assert sorted(listed) == sorted(expected)
    assert len(set(listed)) == len(listed)
    if "security" in versions:  # the archive had a newer OpenSSL in its security suite
        assert f"libssl3 {versions['security']}" in listed, checked.stdout
        assert f"openssl {versions['security']}" in listed, checked.stdout
    after = bash_in(fresh_root, "dpkg-query -W -f='${Package} ${Version}\\n' | sort")
    assert after.stdout == before.stdout  # a simulation: nothing installed


def test_the_container_jobs_ubuntu_script_runs_twice_on_a_real_root(
    fresh_root: Path, tmp_path: Path
) -> None:
    """What the pull request's scripts job runs in ubuntu:22.04 (tools/ci/os_scripts.py),
    run here in the Debian root that says it is Ubuntu 22.04: its set-up, then the script
    twice; both runs complete and the version file carries the recipe."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tools" / "ci" / "os_scripts.py"
    spec = importlib.util.spec_from_file_location("os_scripts", path)
    assert spec is not None and spec.loader is not None
    os_scripts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(os_scripts)
    os_scripts.write(tmp_path)
    setup = bash_in(fresh_root, (tmp_path / "ubuntu-22.04.setup.sh").read_text())
    assert setup.returncode == 0, setup.stderr
    prepare = (tmp_path / "ubuntu-22.04.sh").read_text()
    for run in (1, 2):
        result = bash_in(fresh_root, prepare)
        assert result.returncode == 0, (run, result.stderr[-2000:])
        assert DONE_MARKER in result.stdout
    version = (fresh_root / VERSION_FILE.lstrip("/")).read_text()
    assert f"recipe={'c0' * 32}" in version


def test_the_ubuntu_24_04_script_runs_twice_on_a_root_that_says_24_04(
    tarball: Path, fresh_root: Path, tmp_path: Path
) -> None:
    """Today's Ubuntu: the persona rendered for Ubuntu 24.04 completes on a root whose
    os-release says 24.04 (Debian bookworm underneath), twice, with the same steps, leaving
    /etc, /usr/local and dpkg's status as they were. On the 22.04 root the same script
    stops at its OS check, before it changes anything."""
    text = script(replace(PREPARATION, operating_system=OperatingSystem.UBUNTU_24_04))
    wrong = bash_in(fresh_root, text)
    assert wrong.returncode != 0
    assert steps(wrong.stdout)[-1] == "check-operating-system"
    assert "24.04" in wrong.stderr
    root = extract(tarball, tmp_path / "noble", UBUNTU_24_04)
    try:
        setup = bash_in(root, TEMPLATE_SETUP)
        assert setup.returncode == 0, setup.stderr
        first = bash_in(root, text)
        after_first = listing(root, LISTED)
        second = bash_in(root, text)
        after_second = listing(root, LISTED)
        assert first.returncode == 0, first.stderr[-3000:]
        assert second.returncode == 0, second.stderr[-3000:]
        assert first.stdout.splitlines()[-1] == f"{DONE_MARKER}recipe={FINGERPRINT}"
        assert steps(second.stdout) == steps(first.stdout)
        kept = [
            {k: v for k, v in found.items() if k not in SHADOW_BACKUPS}
            for found in (after_first, after_second)
        ]
        assert kept[0] == kept[1]
    finally:
        remove_root(root)
