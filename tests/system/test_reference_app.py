"""The reference app's own preparation scripts (app.py: developer, office and contractor, all
Ubuntu 22.04), as ``cdk synth`` writes them, run twice as root in the Debian system root
(tests/system/root.py) with real apt-get, dpkg, gpg, systemctl and dconf.

The scripts fetch from Microsoft (VS Code), Launchpad (deadsnakes, Mozilla team), Puppet and
AWS's CloudWatch agent bucket; this network reaches none of them. Each vendor is served
from a repository made here (tests/system/vendor_mirror.py), as file:// inside the root,
signed with a key made here. The only change made to a synthesized script is those URLs and
the key fingerprints pinned for them: the test checks that no other line differs and that
no https URL is left. The vendors' packages are stand-ins carrying the vendor's package
name, a version like the vendor's and the files the script runs or checks; every other
package (git, LibreOffice, Evolution, Pidgin, ClamAV, auditd, collectd) is Debian's, from
Debian's archive, installed for real. What this cannot show: the vendors' real keys,
indexes and packages, and Ubuntu's own archive (the root is Debian that says it is Ubuntu
22.04; where Debian has a newer package than a vendor's stand-in, apt installs Debian's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest

import app as reference
from tests.harness.gpg import make_key
from tests.harness.synth import cdk_context
from tests.system.conftest import LISTED, SHADOW_BACKUPS, steps
from tests.system.persona import TEMPLATE_SETUP
from tests.system.root import Result, bash_in, extract, listing, remove_root, run_in
from tests.system.template_identity import (
    home_of_its_own,
    left_on_root_volume,
    plant_template,
    seal,
)
from tests.system.vendor_mirror import (
    StandIn,
    apt_repository,
    build_deb,
    copy_into,
    detached_signature,
    export_key,
)
from workspaces_image_bakery.preparation import (
    DONE_MARKER,
    SEALED_OK,
    VERSION_FILE,
    ImagePreparation,
    read_seal_output,
)
from workspaces_image_bakery.preparation.seal import SEAL_DEFERRED_SCRIPT

pytestmark = pytest.mark.system

MIRROR = "/srv/vendor"
REPOSITORIES = (
    reference.VSCODE_REPOSITORY,
    reference.DEADSNAKES_REPOSITORY,
    reference.MOZILLA_REPOSITORY,
    reference.PUPPET_REPOSITORY,
)
CLOUDWATCH = reference.CLOUDWATCH_AGENT


def _unit(description: str, command: str) -> str:
    return (
        f"[Unit]\nDescription={description}\n\n[Service]\nExecStart={command}\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def _program(output: str) -> tuple[str, int]:
    return f"#!/bin/sh\necho '{output}'\n", 0o755


DESKTOP_ENTRY = "[Desktop Entry]\nType=Application\nName={0}\nExec={0}\n"
# What each vendor's repository serves (names and versions as the vendors publish them).
STAND_INS: dict[str, list[StandIn]] = {
    "vscode": [
        StandIn(
            "code",
            "1.95.3-1731513102",
            {
                "/usr/bin/code": _program("1.95.3"),
                "/usr/share/applications/code.desktop": (DESKTOP_ENTRY.format("code"), 0o644),
            },
        )
    ],
    "deadsnakes": [
        StandIn("python3.12", "3.12.8-1+jammy1", {"/usr/bin/python3.12": _program("Python 3.12.8")})
    ],
    "mozillateam": [
        StandIn(
            "firefox-esr",
            "140.5.0esr+build1-0ubuntu0.22.04.1~mt1",
            {"/usr/bin/firefox-esr": _program("Mozilla Firefox 140.5.0esr")},
        )
    ],
    "puppet8": [
        StandIn(
            "puppet-agent",
            "8.10.0-1jammy",
            {
                "/opt/puppetlabs/bin/puppet": _program("8.10.0"),
                # Puppet's packages ship their configuration under /etc/puppetlabs.
                "/etc/puppetlabs/puppet/puppet.conf": ("[main]\n", 0o644),
                "/lib/systemd/system/puppet.service": (
                    _unit("Puppet agent", "/opt/puppetlabs/bin/puppet agent --no-daemonize"),
                    0o644,
                ),
            },
        )
    ],
}
CLOUDWATCH_STAND_IN = StandIn(
    CLOUDWATCH.name,
    f"{CLOUDWATCH.version}b1-1",
    {
        "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent": _program("1.300066.0"),
        "/lib/systemd/system/amazon-cloudwatch-agent.service": (
            _unit(
                "Amazon CloudWatch Agent",
                "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent",
            ),
            0o644,
        ),
    },
)


@dataclass(frozen=True)
class Mirror:
    folder: Path  # copied to MIRROR in each root
    swaps: dict[str, str]  # what the scripts fetch and pin -> the mirror's


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Mirror:
    """The vendors' repositories and the CloudWatch agent's files, signed with one key."""
    base = tmp_path_factory.mktemp("mirror")
    fingerprint = make_key(base / "key")
    grouped = " ".join(fingerprint[i : i + 4] for i in range(0, 40, 4))
    folder = base / "srv"
    swaps: dict[str, str] = {}
    for repository in REPOSITORIES:
        where = folder / repository.name
        apt_repository(
            where,
            repository.suite,
            repository.components,
            STAND_INS[repository.name],
            base / "key",
        )
        export_key(base / "key", where / "key.asc")
        swaps[repository.key_url] = f"file://{MIRROR}/{repository.name}/key.asc"
        swaps[repository.url] = f"file://{MIRROR}/{repository.name}"
        swaps[repository.fingerprint] = grouped
    cloudwatch = folder / "cloudwatch"
    deb = build_deb(CLOUDWATCH_STAND_IN, cloudwatch)
    deb = deb.rename(cloudwatch / "amazon-cloudwatch-agent.deb")
    detached_signature(base / "key", deb, cloudwatch / "amazon-cloudwatch-agent.deb.sig")
    export_key(base / "key", cloudwatch / "amazon-cloudwatch-agent.gpg")
    for url, name in (
        (CLOUDWATCH.url, "amazon-cloudwatch-agent.deb"),
        (CLOUDWATCH.signature_url, "amazon-cloudwatch-agent.deb.sig"),
        (CLOUDWATCH.key_url, "amazon-cloudwatch-agent.gpg"),
    ):
        swaps[url] = f"file://{MIRROR}/cloudwatch/{name}"
    swaps[CLOUDWATCH.fingerprint] = grouped
    return Mirror(folder, swaps)


@dataclass(frozen=True)
class Synthesized:
    scripts: dict[str, str]  # persona -> its script as the synth wrote it
    preparations: dict[str, ImagePreparation]


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The reference app's synth: each persona's script as written next to the templates."""
    out = tmp_path_factory.mktemp("cdk.out")
    application = cdk.App(outdir=str(out), context=cdk_context())
    stack = reference.build(application)
    application.synth()
    return Synthesized(
        {name: (out / "preparation" / f"{name}.sh").read_text() for name in reference.PERSONAS},
        {p.name: p.preparation for p in stack.personas if p.preparation is not None},
    )


def swapped(text: str, swaps: dict[str, str]) -> str:
    """`text` with the vendors' URLs and fingerprints replaced (longest first, so a URL that
    begins another is replaced after it)."""
    for old in sorted(swaps, key=len, reverse=True):
        text = text.replace(old, swaps[old])
    return text


@dataclass(frozen=True)
class Run:
    persona: str
    preparation: ImagePreparation
    root: Path
    original: str
    script: str
    first: Result
    second: Result
    after_first: dict[str, str]
    after_second: dict[str, str]


@pytest.fixture(scope="module", params=reference.PERSONAS)
def run(
    request: pytest.FixtureRequest,
    synthesized: Synthesized,
    mirror: Mirror,
    tarball: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """A template root set up as a WorkSpace has it, with the vendors' mirror, after the
    persona's script ran twice."""
    persona: str = request.param
    root = extract(tarball, tmp_path_factory.mktemp(persona) / "root")
    setup = bash_in(root, TEMPLATE_SETUP)
    assert setup.returncode == 0, setup.stderr
    copy_into(root, mirror.folder, MIRROR)
    text = swapped(synthesized.scripts[persona], mirror.swaps)
    first = bash_in(root, text)
    after_first = listing(root, LISTED)
    second = bash_in(root, text)
    after_second = listing(root, LISTED)
    yield Run(
        persona,
        synthesized.preparations[persona],
        root,
        synthesized.scripts[persona],
        text,
        first,
        second,
        after_first,
        after_second,
    )
    remove_root(root)


def test_only_the_vendors_endpoints_and_keys_are_swapped(run: Run, mirror: Mirror) -> None:
    """Every line that differs from the synthesized script held a vendor's URL or pinned
    fingerprint; no https URL is left (nothing but Debian's archive is fetched)."""
    original, script = run.original.splitlines(), run.script.splitlines()
    assert len(original) == len(script)
    changed = [(a, b) for a, b in zip(original, script, strict=True) if a != b]
    assert changed, "the persona fetches from no vendor"
    assert all(any(old in a for old in mirror.swaps) for a, _ in changed)
    assert "https://" not in run.script


def test_the_reference_script_completes_on_a_real_system(run: Run) -> None:
    """The script runs to its end: the vendors' keys are checked and their repositories
    added, every package installed, each agent's check passes and the version file is
    written last."""
    assert run.first.returncode == 0, run.first.stderr[-4000:]
    assert run.first.stdout.splitlines()[-1].startswith(f"{DONE_MARKER}recipe=")
    assert steps(run.first.stdout)[-1] == "write-version-file"
    version = (run.root / VERSION_FILE.lstrip("/")).read_text()
    assert version.startswith(f"persona={run.persona}\nversion=1.0.0\n")
    status = (run.root / "var/lib/dpkg/status").read_text()
    expected = {
        "developer": ["git", "python3.12", "code", "collectd", "puppet-agent"],
        "office": ["libreoffice", "firefox-esr", "evolution", "pidgin"],
        "contractor": ["puppet-agent"],
    }[run.persona]
    for package in [*expected, "clamav", "auditd", CLOUDWATCH.name]:
        assert f"Package: {package}\nStatus: install ok installed" in status, package


def test_the_vendors_packages_come_from_their_repositories(run: Run) -> None:
    """The stand-ins apt installed are the vendors' (checked against the pinned key): each
    repository's keyring holds that key only, and the CloudWatch agent is the pinned one."""
    installed = bash_in(
        run.root,
        "dpkg-query -W -f='${Package} ${Version}\\n' code python3.12 puppet-agent"
        f" {CLOUDWATCH.name} 2>/dev/null || true",
    ).stdout.splitlines()
    versions = dict(line.split(" ", 1) for line in installed if " " in line)
    assert versions[CLOUDWATCH.name] == CLOUDWATCH_STAND_IN.version
    used = {
        "developer": ["vscode", "deadsnakes", "puppet8"],
        "office": ["mozillateam"],
        "contractor": ["puppet8"],
    }[run.persona]
    for name in used:
        for stand_in in STAND_INS[name]:
            if stand_in.package != "firefox-esr":  # Debian's is newer (module docstring)
                assert versions[stand_in.package] == stand_in.version, stand_in.package
        keys = bash_in(
            run.root, f"gpg --batch --with-colons --show-keys /etc/apt/keyrings/{name}.gpg"
        ).stdout
        assert sum(line.startswith("pub:") for line in keys.splitlines()) == 1, name
    if "mozillateam" in used:
        policy = bash_in(run.root, "apt-cache policy firefox-esr").stdout
        assert f"file:{MIRROR}/mozillateam jammy/main" in policy, policy


def test_the_agents_are_enabled_and_the_puppet_agent_held(run: Run) -> None:
    """The image's agents start at boot; the configuration-management agent is masked on the
    template (it enrols as each WorkSpace, at its first boot) and gets the launch
    applications as facts; the CloudWatch agent's configuration is in place."""
    wants = run.root / "etc/systemd/system/multi-user.target.wants"
    enabled = {p.name for p in wants.iterdir()}
    assert {
        "clamav-freshclam.service",
        "auditd.service",
        "amazon-cloudwatch-agent.service",
    } <= enabled
    if run.persona == "developer":
        assert "collectd.service" in enabled
    config = run.root / "opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
    assert json.loads(config.read_text())["logs"]["logs_collected"]["files"]["collect_list"]
    puppet = run.root / "etc/systemd/system/puppet.service"
    if run.persona == "office":
        assert not (puppet.is_symlink() or puppet.exists())
        return
    assert "puppet.service" not in enabled
    assert puppet.readlink() == Path("/dev/null")
    facts = list((run.root / "etc").rglob("facts.d/workspaces_image_bakery.json"))
    assert facts, "no external facts for the configuration-management agent"
    launch = json.loads(facts[0].read_text())["launch_applications"]
    assert (
        launch
        == {
            "developer": ["docker-ce", "jetbrains-toolbox"],
            "contractor": ["firefox esr", "libreoffice 7.6"],
        }[run.persona]
    )


def test_a_second_run_of_the_reference_script_changes_nothing(run: Run) -> None:
    """Run again, the script takes the same steps and leaves /etc, /usr/local and dpkg's
    status as they were (but the account backups useradd and userdel rewrite)."""
    assert run.second.returncode == 0, run.second.stderr[-4000:]
    assert steps(run.second.stdout) == steps(run.first.stdout)

    def kept(found: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in found.items() if k not in SHADOW_BACKUPS}

    assert kept(run.after_second) == kept(run.after_first)


def test_the_validation_commands_pass_on_the_prepared_system(run: Run) -> None:
    """What the build runs again on the rebooted template (the preparation's validation
    steps) passes on the prepared system."""
    for command in run.preparation.validation_steps:
        result = bash_in(run.root, f"set -euo pipefail\n{command}\n")
        assert result.returncode == 0, (command, result.stderr)


# Last for each persona: it changes the prepared root.
def test_the_seal_takes_the_template_off_the_root_volume(run: Run) -> None:
    """The template's identity planted on the prepared root (SSM registration and Vault,
    SSH host keys, machine-id, cloud-init state, histories, Puppet's ssl folders, logs): the
    persona's own seal, with /home on a file system of its own, leaves none of it on the
    root volume once its deferred step has run."""
    plant_template(run.root)
    with home_of_its_own(run.root):
        code, stdout, stderr = seal(run.root, run.preparation)
        assert code == 0, stdout + stderr
        assert stdout.splitlines()[-1] == SEALED_OK
        assert not read_seal_output(stdout).failed
        deferred = run_in(run.root, ["/bin/bash", SEAL_DEFERRED_SCRIPT])
        assert deferred.returncode == 0, deferred.stderr
        assert left_on_root_volume(run.root) == []
