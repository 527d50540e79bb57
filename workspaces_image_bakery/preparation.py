"""How a persona's template WorkSpace is prepared: the whitepaper's image creation process
and recommended customizations, declared in code and rendered as a shell script.

The script (written next to the templates, one per persona) is what the team runs on the
template WorkSpace, by hand or through its configuration management, before the image is
taken: patch the OS, run the team's install steps, configure PCoIP (AES-256 only,
clipboard policy), write a version file, run the validation steps, clean down. Its digest
is part of the image recipe, so changing the preparation builds a new image.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum


class OperatingSystem(Enum):
    """Linux WorkSpaces operating systems (Amazon Linux 2 support ended in 2026)."""

    UBUNTU_22_04 = "ubuntu-22.04"
    ROCKY_8 = "rocky-8"
    RHEL_8 = "rhel-8"
    AMAZON_LINUX_2 = "amazon-linux-2"


class Clipboard(Enum):
    """PCoIP ``pcoip.server_clipboard_state`` values (see ``man pcoip-agent.conf``)."""

    DISABLED = 0
    BOTH_DIRECTIONS = 1
    CLIENT_TO_WORKSPACE = 2
    WORKSPACE_TO_CLIENT = 3


PATCH_COMMANDS = {
    OperatingSystem.UBUNTU_22_04: (
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -y upgrade"
    ),
    OperatingSystem.ROCKY_8: "dnf -y update",
    OperatingSystem.RHEL_8: "dnf -y update",
    OperatingSystem.AMAZON_LINUX_2: "yum -y update",
}
PCOIP_CONF = "/etc/pcoip-agent/pcoip-agent.conf"
VERSION_FILE = "/etc/workspaces-image-version"


@dataclass(frozen=True)
class ImagePreparation:
    """The preparation of a persona's template WorkSpace.

    :param operating_system: default UBUNTU_22_04.
    :param patch_os: update every package first (whitepaper step 2). Default True.
    :param install_steps: the team's shell commands that install the baked applications and
        agents from a shared location (steps 3-5). Default none. Scanned for secrets.
    :param validation_steps: commands that test the build (step 7); non-zero exit stops the
        script. Default none.
    :param pcoip_aes256_only: allow only AES-256-GCM for PCoIP. Default True.
    :param clipboard: PCoIP clipboard policy. Default DISABLED.
    :param remove_user_sudo: the persona's users have no sudo rights (a startup script or
        configuration management removes them). Default True.
    :param security_agents: agents that check the WorkSpace's security posture (antivirus,
        malware, event monitoring). Default none.
    :param log_forwarding_agent: agent that ships application and OS logs for analysis.
    :param monitoring_agents: agents for application performance and reliability analysis.
    :param remote_assistance_tools: tools support staff use to help users.
    """

    operating_system: OperatingSystem = OperatingSystem.UBUNTU_22_04
    patch_os: bool = True
    install_steps: Sequence[str] = field(default_factory=tuple)
    validation_steps: Sequence[str] = field(default_factory=tuple)
    pcoip_aes256_only: bool = True
    clipboard: Clipboard = Clipboard.DISABLED
    remove_user_sudo: bool = True
    security_agents: Sequence[str] = field(default_factory=tuple)
    log_forwarding_agent: str | None = None
    monitoring_agents: Sequence[str] = field(default_factory=tuple)
    remote_assistance_tools: Sequence[str] = field(default_factory=tuple)

    def problems(self) -> list[tuple[str, object, str]]:
        """(field, value, allowed) for every malformed field."""
        found: list[tuple[str, object, str]] = []
        if not isinstance(self.operating_system, OperatingSystem):
            found.append(
                ("preparation.operating_system", self.operating_system, "an OperatingSystem")
            )
        if not isinstance(self.clipboard, Clipboard):
            found.append(("preparation.clipboard", self.clipboard, "a Clipboard"))
        for name in ("patch_os", "pcoip_aes256_only", "remove_user_sudo"):
            if not isinstance(getattr(self, name), bool):
                found.append((f"preparation.{name}", getattr(self, name), "True or False"))
        for name in (
            "install_steps",
            "validation_steps",
            "security_agents",
            "monitoring_agents",
            "remote_assistance_tools",
        ):
            values = getattr(self, name)
            if isinstance(values, str) or not isinstance(values, list | tuple):
                found.append((f"preparation.{name}", values, "a list of strings"))
            elif not all(isinstance(v, str) and v.strip() for v in values):
                found.append((f"preparation.{name}", values, "non-empty strings"))
        agent = self.log_forwarding_agent
        if agent is not None and not (isinstance(agent, str) and agent.strip()):
            found.append(("preparation.log_forwarding_agent", agent, "a non-empty string"))
        return found

    def recipe(self) -> dict[str, object]:
        """What of the preparation changes the image: all of it."""
        return {
            "operating_system": self.operating_system.value,
            "patch_os": self.patch_os,
            "install_steps": list(self.install_steps),
            "validation_steps": list(self.validation_steps),
            "pcoip_aes256_only": self.pcoip_aes256_only,
            "clipboard": self.clipboard.value,
            "remove_user_sudo": self.remove_user_sudo,
            "security_agents": list(self.security_agents),
            "log_forwarding_agent": self.log_forwarding_agent,
            "monitoring_agents": list(self.monitoring_agents),
            "remote_assistance_tools": list(self.remote_assistance_tools),
        }

    def user_strings(self) -> dict[str, str]:
        """Every free-text input, by field, for the secret scan."""
        found: dict[str, str] = {}
        for name in ("install_steps", "validation_steps", "security_agents", "monitoring_agents"):
            for index, value in enumerate(getattr(self, name)):
                found[f"preparation.{name}[{index}]"] = value
        for index, value in enumerate(self.remote_assistance_tools):
            found[f"preparation.remote_assistance_tools[{index}]"] = value
        if self.log_forwarding_agent:
            found["preparation.log_forwarding_agent"] = self.log_forwarding_agent
        return found


def render_script(
    preparation: ImagePreparation, *, persona: str, version: str, fingerprint: str
) -> str:
    """The preparation as a bash script (checked with shellcheck in the tests)."""
    lines = [
        "#!/usr/bin/env bash",
        f"# Prepares the template WorkSpace of persona {persona}, image version {version}.",
        "# Generated by workspaces-image-bakery; run as root on the template WorkSpace,",
        "# then deploy: the image is taken from the WorkSpace as it is left by this script.",
        "set -euo pipefail",
        "",
    ]
    if preparation.patch_os:
        lines += [
            "# Whitepaper step 2: the most recent operating system patches.",
            PATCH_COMMANDS[preparation.operating_system],
            "",
        ]
    if preparation.install_steps:
        lines += ["# Steps 3-5: features, applications, agents and drivers."]
        lines += [*list(preparation.install_steps), ""]
    if preparation.pcoip_aes256_only or preparation.clipboard is not None:
        lines += [
            "# PCoIP: AES-256 only and the clipboard policy (takes effect when the agent starts).",
            f"conf={shlex.quote(PCOIP_CONF)}",
            'if [ -f "$conf" ]; then',
            "  set_pcoip() {",
            '    if grep -q "^$1" "$conf"; then sed -i "s|^$1.*|$1 = $2|" "$conf";',
            '    else printf "%s = %s\\n" "$1" "$2" >> "$conf"; fi',
            "  }",
        ]
        if preparation.pcoip_aes256_only:
            lines += [
                "  set_pcoip pcoip.enable_aes_256_gcm 1",
                "  set_pcoip pcoip.enable_aes_128_gcm 0",
                "  set_pcoip pcoip.enable_salsa20_256_round12 0",
            ]
        lines += [
            f"  set_pcoip pcoip.server_clipboard_state {preparation.clipboard.value}",
            "fi",
            "",
        ]
    lines += [
        "# Step 9: a version control file on the image.",
        f"cat > {VERSION_FILE} <<'VERSION'",
        f"persona={persona}",
        f"version={version}",
        f"recipe={fingerprint}",
        "VERSION",
        "",
    ]
    if preparation.validation_steps:
        lines += ["# Step 7: test the build.", *list(preparation.validation_steps), ""]
    lines += [
        "# Step 8: clean down (temporary install files, logs, shell history).",
        "rm -rf /tmp/* /var/tmp/*",
        "find /var/log -type f -name '*.log' -exec truncate -s 0 {} +",
        "rm -f /root/.bash_history",
        "",
        "# Step 10: reboot before the image is taken.",
        'echo "Prepared; reboot, then deploy to take the image."',
        "",
    ]
    return "\n".join(lines)
