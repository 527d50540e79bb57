"""The seal, run for real by bash in a throw-away root (BAKERY_ROOT), with systemctl,
systemd-run, journalctl and hostname replaced by the recording stand-ins of
tests/test_preparation_script.py: its output contract (one line per item, then ``sealed``),
what it takes off the root volume, the deferred step, and the template's restore.
tests/system/ runs the same scripts in a real Debian system root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.test_preparation_script import (
    AGENTS,
    MACHINE_ID,
    SHELLCHECK,
    Run,
    make_root,
    plant,
    preparation,
    prepare,
    run_bash,
    stand_ins,
    tree_hash,
)
from workspaces_image_bakery.preparation import (
    DEFERRED_ITEMS,
    SEAL_ITEMS,
    SEAL_MARKER,
    SEALED_FAILED,
    SEALED_OK,
    TEMPLATE_IDENTITY_FILE,
    TEMPLATE_STASH_DIR,
    Agent,
    AgentKind,
    ImagePreparation,
    OperatingSystem,
    StreamingProtocol,
    read_seal_output,
    render_seal_script,
    seal_items,
)
from workspaces_image_bakery.preparation.seal import (
    SEAL_DEFERRED_SCRIPT,
    SEAL_DEFERRED_UNIT,
    deferred_script,
)

STASH = TEMPLATE_STASH_DIR.lstrip("/")
DEFERRED = SEAL_DEFERRED_SCRIPT.lstrip("/")
SAFE = Agent(
    "safe-agent",
    AgentKind.SECURITY,
    install="install-clamav",
    check="check-clamav",
    identity_paths=("/opt/safe/enrolment",),
)
# What a template holds when the build seals it (paths in the root).
IDENTITY = {
    "etc/ssh/ssh_host_ed25519_key": "ssh-host-keys",
    "etc/ssh/ssh_host_ed25519_key.pub": "ssh-host-keys",
    "etc/ssh/ssh_host_rsa_key": "ssh-host-keys",
    "var/lib/dbus/machine-id": "machine-id",
    "var/lib/cloud/instances/i-0123/obj.pkl": "cloud-init-state",
    "var/lib/cloud/data/instance-id": "cloud-init-state",
    "var/lib/cloud/sem/config_ssh": "cloud-init-state",
    "root/.bash_history": "shell-histories",
    "root/.lesshst": "shell-histories",
    "var/lib/postgresql/.psql_history": "shell-histories",
    "home/alice/.bash_history": "shell-histories",
    "var/log/syslog.1": "logs",
    "var/log/app/old.log.gz": "logs",
    f"var/log/journal/{MACHINE_ID}/system.journal": "journal",
    "etc/puppetlabs/puppet/ssl/certs/template.pem": "agent-enrolment:puppet",
    "var/lib/puppet/ssl/private_keys/template.pem": "agent-enrolment:puppet",
    "etc/chef/client.pem": "agent-enrolment:chef",
    "etc/salt/pki/minion/minion.pem": "agent-enrolment:salt",
    "etc/salt/minion_id": "agent-enrolment:salt",
    "opt/safe/enrolment/token": "agent-enrolment:safe-agent",
}
EMPTIED = ["var/log/syslog", "var/log/wtmp", "var/log/app/current.log"]
SSM_REGISTRATION = [
    "var/lib/amazon/ssm/registration",
    "var/lib/amazon/ssm/Vault/Store/RegistrationKey",
    "var/lib/amazon/ssm/runtimeconfig/identity_config.json",
]
SSM_OUTPUT = [
    "var/lib/amazon/ssm/mi-0123456789abcdef0/document/orchestration/cmd/stdout",
    "var/log/amazon/ssm/amazon-ssm-agent.log",
]


def sealed_preparation() -> ImagePreparation:
    return preparation(agents=(*AGENTS, SAFE))


def template_root(base: Path) -> Path:
    """A root as the preparation leaves it, then the identity a running template gathers."""
    root = make_root(base, OperatingSystem.UBUNTU_22_04, StreamingProtocol.WSP)
    assert prepare(base, sealed_preparation(), root).result.returncode == 0
    plant(
        root,
        "etc/passwd",
        (root / "etc/passwd").read_text() + "postgres:x:110:110::/var/lib/postgresql:/bin/bash\n",
    )
    for relative in [*IDENTITY, *SSM_REGISTRATION, *SSM_OUTPUT]:
        plant(root, relative)
    for relative in EMPTIED:
        plant(root, relative, "a line written after the clean-down\n")
    (root / "etc/machine-id").write_text(MACHINE_ID + "\n")
    return root


def seal(base: Path, root: Path, prepared: ImagePreparation | None = None, **env: str) -> Run:
    script = base / "seal.sh"
    script.write_text(render_seal_script(prepared or sealed_preparation()))
    return run_bash(base, script, root, **env)


def lines(run: Run) -> list[str]:
    return [
        line.removeprefix(SEAL_MARKER)
        for line in run.result.stdout.splitlines()
        if line.startswith(SEAL_MARKER)
    ]


def refusing(base: Path, command: str, pattern: str) -> None:
    """A stand-in for `command` that refuses (like an immutable file) every argument matching
    `pattern`, runs the real command on the others and then fails."""
    real = subprocess.run(
        ["bash", "-c", f"type -P {command}"], capture_output=True, text=True, check=True
    )
    shim = stand_ins(base) / command
    shim.write_text(
        "#!/usr/bin/env bash\n"
        "args=() refused=0\n"
        'for arg in "$@"; do\n'
        f"  if [[ $arg == {pattern} ]]; then\n"
        f'    echo "{command}: cannot change $arg: Operation not permitted" >&2\n'
        "    refused=1\n"
        "  else\n"
        '    args+=("$arg")\n'
        "  fi\n"
        "done\n"
        f'{real.stdout.strip()} "${{args[@]}}" || exit\n'
        'exit "$refused"\n'
    )
    shim.chmod(0o755)


def test_the_items_are_the_fixed_ones_plus_the_declared_agents() -> None:
    """Every seal reports SEAL_ITEMS; a declared agent's identity_paths add its own item
    before the two deferred SSM items."""
    assert seal_items(ImagePreparation()) == SEAL_ITEMS
    items = seal_items(sealed_preparation())
    assert items[-2:] == DEFERRED_ITEMS
    assert [i for i in items if i not in SEAL_ITEMS] == [
        "agent-enrolment:puppet-agent",
        "agent-enrolment:safe-agent",
    ]


def test_a_clean_root_is_sealed(tmp_path: Path) -> None:
    """Nothing to take off: every item is absent, the last line is 'sealed: ok', exit 0 and
    nothing is scheduled or written."""
    root = tmp_path / "root"
    plant(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    before = tree_hash(root)
    run = seal(tmp_path, root)
    assert run.result.returncode == 0, run.result.stderr
    assert lines(run) == [f"{item} absent" for item in seal_items(sealed_preparation())]
    assert run.result.stdout.splitlines()[-1] == SEALED_OK
    assert run.commands == [] and tree_hash(root) == before
    assert read_seal_output(run.result.stdout).sealed


def test_the_seal_takes_the_template_off_the_root_volume_and_the_restore_gives_it_back(
    tmp_path: Path,
) -> None:
    """The whole cycle in a throw-away root: the seal removes every item or moves it to the
    stash on /home, defers the SSM registration and output to a transient systemd unit;
    the deferred step (run here directly) stops the agent and moves the registration; a
    second seal finds nothing; the restore unit's script puts registration and host keys
    back at the template's next boot and records its new machine-id."""
    root = template_root(tmp_path)
    run = seal(tmp_path, root)
    assert run.result.returncode == 0, run.result.stderr
    outcome = read_seal_output(run.result.stdout)
    assert outcome.sealed and outcome.failed == ()
    assert {item: state for item, (state, _) in outcome.items.items()} == {
        **{item: "absent" for item in seal_items(sealed_preparation())},
        "ssm-agent-output": "deferred",
        "ssm-registration": "deferred",
    }
    assert run.result.stdout.splitlines()[-1] == SEALED_OK

    # Off the root volume; the host keys in the stash; the machine-id empty.
    assert [p for p in IDENTITY if (root / p).exists()] == []
    assert [p for p in EMPTIED if (root / p).read_text()] == []
    assert (root / "etc/machine-id").read_text() == ""
    stash = root / STASH
    assert sorted(p.name for p in (stash / "ssh").iterdir()) == [
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
        "ssh_host_rsa_key",
    ]
    assert stash.stat().st_mode & 0o777 == 0o700
    # The SSM agent's files wait for the deferred step, scheduled outside the agent.
    assert [p for p in [*SSM_REGISTRATION, *SSM_OUTPUT] if not (root / p).exists()] == []
    assert run.commands == [
        f"systemd-run --quiet --unit={SEAL_DEFERRED_UNIT} --collect --description=Seal the "
        "template WorkSpace: stash its SSM registration (workspaces-image-bakery) "
        f"--on-active=20 --timer-property=AccuracySec=1s --setenv=BAKERY_ROOT={root} "
        f"/bin/bash {root}/{DEFERRED}"
    ]
    assert (root / DEFERRED).read_text() == deferred_script()

    # The deferred step: the agent stops, its registration goes to the stash, its output goes.
    deferred = run_bash(tmp_path, root / DEFERRED, root)
    assert deferred.result.returncode == 0, deferred.result.stderr
    assert deferred.commands == ["systemctl stop amazon-ssm-agent.service"]
    assert [p for p in [*SSM_REGISTRATION, *SSM_OUTPUT] if (root / p).exists()] == []
    for relative in SSM_REGISTRATION:
        moved = stash / "ssm" / relative.removeprefix("var/lib/amazon/ssm/")
        assert moved.read_text() == "secret\n", moved

    # Sealing again changes nothing and schedules nothing.
    (root / DEFERRED).unlink()
    before = tree_hash(root)
    again = seal(tmp_path, root)
    assert again.result.returncode == 0, again.result.stderr
    assert lines(again) == [f"{item} absent" for item in seal_items(sealed_preparation())]
    assert again.commands == [] and tree_hash(root) == before

    # The template's next boot: a new machine-id, the restore unit, then the first-boot unit.
    (root / "etc/machine-id").write_text("ffffffffffffffffffffffffffffffff\n")
    restore = run_bash(
        tmp_path, root / "usr/local/libexec/workspaces-image-bakery/restore-template", root
    )
    assert restore.result.returncode == 0, restore.result.stderr
    assert not stash.exists()
    assert [p for p in SSM_REGISTRATION if not (root / p).exists()] == []
    assert (root / "etc/ssh/ssh_host_rsa_key").exists()
    identity = (root / TEMPLATE_IDENTITY_FILE.lstrip("/")).read_text()
    assert "machine-id=ffffffffffffffffffffffffffffffff\n" in identity
    assert "\nssh-host-keys=" in identity
    firstboot = run_bash(
        tmp_path, root / "usr/local/libexec/workspaces-image-bakery/firstboot", root
    )
    assert "this is the template WorkSpace: nothing to do" in firstboot.result.stdout
    # Without the stash (any WorkSpace made from the image) the restore does nothing.
    before = tree_hash(root)
    assert (
        run_bash(
            tmp_path, root / "usr/local/libexec/workspaces-image-bakery/restore-template", root
        ).result.returncode
        == 0
    )
    assert tree_hash(root) == before


@pytest.mark.parametrize(
    ("command", "pattern", "item", "path"),
    [
        (
            "rm",
            "*/etc/puppetlabs/puppet/ssl",
            "agent-enrolment:puppet",
            "/etc/puppetlabs/puppet/ssl",
        ),
        (
            "rm",
            "*/var/lib/postgresql/.psql_history",
            "shell-histories",
            "/var/lib/postgresql/.psql_history",
        ),
        ("mv", "*/ssh_host_rsa_key", "ssh-host-keys", "/etc/ssh/ssh_host_rsa_key"),
        ("truncate", "*/var/log/syslog", "logs", "/var/log/syslog"),
        ("truncate", "*/etc/machine-id", "machine-id", "/etc/machine-id"),
    ],
)
def test_a_leftover_the_seal_cannot_remove_fails_it(
    tmp_path: Path, command: str, pattern: str, item: str, path: str
) -> None:
    """A file the seal cannot change (a stand-in refuses it, as for an immutable file) is
    reported present with its path; the last line names the item, the exit code is 1, and
    the SSM registration is not deferred: the template keeps its channel."""
    root = template_root(tmp_path)
    refusing(tmp_path, command, pattern)
    run = seal(tmp_path, root)
    assert run.result.returncode == 1
    outcome = read_seal_output(run.result.stdout)
    assert f"{item} present {path}" in lines(run)
    assert outcome.items["ssm-registration"] == ("present", "/var/lib/amazon/ssm/registration")
    assert outcome.items["ssm-agent-output"][0] == "present"
    # The preparation declares puppet-agent with Puppet's ssl folder: it fails as well.
    also = ("agent-enrolment:puppet-agent",) if item == "agent-enrolment:puppet" else ()
    assert outcome.failed == (item, *also, "ssm-agent-output", "ssm-registration")
    assert run.result.stdout.splitlines()[-1] == SEALED_FAILED + " ".join(outcome.failed)
    assert not outcome.sealed
    assert not [c for c in run.commands if c.startswith("systemd-run")]
    assert (root / "var/lib/amazon/ssm/registration").exists()


def test_a_deferral_that_cannot_be_scheduled_fails_the_seal(tmp_path: Path) -> None:
    """systemd-run fails: the SSM items stay present and the seal fails."""
    root = template_root(tmp_path)
    run = seal(tmp_path, root, BAKERY_FAIL="systemd-run")
    assert run.result.returncode == 1
    assert "the deferred step could not be scheduled" in run.result.stderr
    assert run.result.stdout.splitlines()[-1] == f"{SEALED_FAILED}ssm-agent-output ssm-registration"


def test_log_lines_written_after_the_seal_started_are_not_leftovers(tmp_path: Path) -> None:
    """A daemon that keeps writing (rsyslog, the agent) adds lines while the seal runs: they
    are the deferred step's, not the template's history, and do not fail the seal."""
    root = template_root(tmp_path)
    bin_dir = stand_ins(tmp_path)
    (bin_dir / "truncate").write_text(
        '#!/usr/bin/env bash\n/usr/bin/truncate "$@"\nfor a in "$@"; do\n'
        '  if [[ $a == */var/log/syslog ]]; then echo "new line" >> "$a"; fi\ndone\n'
    )
    (bin_dir / "truncate").chmod(0o755)
    run = seal(tmp_path, root)
    assert run.result.returncode == 0, run.result.stdout
    assert (root / "var/log/syslog").read_text() == "new line\n"
    (bin_dir / "truncate").unlink()
    assert run_bash(tmp_path, root / DEFERRED, root).result.returncode == 0
    assert (root / "var/log/syslog").read_text() == ""


def test_a_bad_root_fails_the_preflight(tmp_path: Path) -> None:
    """A relative BAKERY_ROOT stops the seal before it touches anything: one line,
    'sealed: failed preflight', exit 2."""
    run = seal(tmp_path, tmp_path / "root", BAKERY_ROOT="relative/root")
    assert run.result.returncode == 2
    assert run.result.stdout.splitlines() == [f"{SEALED_FAILED}preflight"]


def test_reading_the_output() -> None:
    """read_seal_output: 'sealed' only with the ok line and every item absent or deferred
    (and deferred only for the SSM items)."""
    ok = f"{SEAL_MARKER}logs absent\n{SEAL_MARKER}ssm-registration deferred\n{SEALED_OK}\n"
    assert read_seal_output(ok).sealed
    assert not read_seal_output(ok.replace("logs absent", "logs deferred")).sealed
    assert not read_seal_output(f"{SEAL_MARKER}logs absent\n").sealed
    failed = read_seal_output(
        f"{SEAL_MARKER}logs present /var/log/my app.log\n{SEALED_FAILED}logs\n"
    )
    assert failed.items == {"logs": ("present", "/var/log/my app.log")}
    assert failed.failed == ("logs",) and not failed.sealed


def test_the_seal_and_its_helpers_pass_shellcheck(tmp_path: Path) -> None:
    """shellcheck finds nothing in the seal (with and without declared agents) or in its
    deferred step."""
    scripts = []
    for index, prepared in enumerate((ImagePreparation(), sealed_preparation())):
        script = tmp_path / f"seal-{index}.sh"
        script.write_text(render_seal_script(prepared))
        scripts.append(script)
    deferred = tmp_path / "deferred.sh"
    deferred.write_text(deferred_script())
    result = subprocess.run(
        [str(SHELLCHECK), "-s", "bash", *map(str, [*scripts, deferred])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
