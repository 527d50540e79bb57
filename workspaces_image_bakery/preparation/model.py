"""The declared preparation of a persona's template WorkSpace."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from .agents import Agent, AgentKind
from .desktop import DesktopSettings
from .operating_systems import (
    AES256_ONLY_TEXT,
    OPERATING_SYSTEMS,
    PROTOCOLS,
    RETIRED_TEXT,
    Clipboard,
    OperatingSystem,
    OsFacts,
    StreamingProtocol,
)

BUILD_USER_PATTERN: Final = r"[a-z_][a-z0-9_-]{0,31}"
RESERVED_USERS: Final = frozenset({"root", "ssm-user", "nobody", "daemon", "bin", "sys"})
# A CDK token, as workspaces_image_bakery.core.validation.TOKEN_MARKER (kept import-light here).
_TOKEN: Final = re.compile(r"[$#]\{Token\[[^\]]*\]\}")
Problem = tuple[str, object, str]
# A Debian or RPM package name (Debian Policy 5.6.1: lowercase letters, digits, + - .).
PACKAGE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9+._-]{0,127}")
PACKAGE_NAME_TEXT: Final = "a package name: lowercase letters, digits, + - . _ (1-128)"


@dataclass(frozen=True)
class ImagePreparation:
    """The preparation of a persona's template WorkSpace, rendered as one bash script that
    the build runs as root on the template through SSM Run Command (``script.render_script``).

    :param operating_system: the template's OS. Default UBUNTU_22_04.
    :param streaming_protocol: PCOIP or WSP (DCV). Default the OS's: WSP, the only one AWS
        offers for Ubuntu 22.04, Rocky Linux 8 and RHEL 8; PCOIP for Amazon Linux 2.
    :param patch_os: update every package first (whitepaper step 2). Default True.
    :param install_steps: shell commands that install the baked applications from a shared
        location (steps 3-5), each run with ``bash -c`` as root. Default none.
    :param validation_steps: commands that test the build (step 7); a non-zero exit fails
        it. Default none.
    :param agents: ``Agent`` s to install, then check (security, log forwarding, monitoring,
        remote assistance, configuration management). Default none.
    :param clipboard: clipboard redirection policy, written in the protocol's file.
        Default DISABLED.
    :param aes256_only: force AES-256 streaming encryption. Default False; True is refused:
        neither protocol documents a cipher setting for Linux WorkSpaces.
    :param desktop: ``DesktopSettings`` for every user (dconf, locked). Default none.
    :param remove_user_sudo: a unit removes users' sudo rights at every boot. Default True.
    :param build_users: local accounts made only for the build; the clean-down deletes them
        (accounts the base image brings are kept). Default none.
    :param application_packages: the package that installs a baked application, where its
        label does not name it (``{"vscode 1.95": "code"}``): the build fails before the
        image when the template's inventory does not list a baked application's package.
        Default None: a label names its package as written, with hyphens for spaces, without
        spaces, or by its first word ("firefox esr" -> firefox-esr, "python 3.12" ->
        python3.12, "libreoffice 7.6" -> libreoffice).

    Every free-text input (steps, agents' commands, desktop values) is scanned for secrets.
    """

    operating_system: OperatingSystem = OperatingSystem.UBUNTU_22_04
    streaming_protocol: StreamingProtocol | None = None
    patch_os: bool = True
    install_steps: Sequence[str] = field(default_factory=tuple)
    validation_steps: Sequence[str] = field(default_factory=tuple)
    agents: Sequence[Agent] = field(default_factory=tuple)
    clipboard: Clipboard = Clipboard.DISABLED
    aes256_only: bool = False
    desktop: DesktopSettings | None = None
    remove_user_sudo: bool = True
    build_users: Sequence[str] = field(default_factory=tuple)
    application_packages: Mapping[str, str] | None = None

    @property
    def protocol(self) -> StreamingProtocol:
        """The streaming protocol in effect: the declared one, else the OS's default."""
        if isinstance(self.streaming_protocol, StreamingProtocol):
            return self.streaming_protocol
        return OPERATING_SYSTEMS[self.operating_system].default_protocol

    def installed_software(self) -> list[str]:
        """What the preparation installs by name, for the Software tag: the agents."""
        return list(dict.fromkeys(agent.name for agent in self.agents))

    def agents_of(self, kind: AgentKind) -> tuple[str, ...]:
        """The names of the agents of `kind`."""
        return tuple(agent.name for agent in self.agents if agent.kind is kind)

    def problems(self) -> list[Problem]:
        """(field, value, allowed) for every malformed or unsupported field."""
        found: list[Problem] = []
        facts = self._os_facts(found)
        protocol = self.streaming_protocol
        if protocol is not None and not isinstance(protocol, StreamingProtocol):
            found.append(("preparation.streaming_protocol", protocol, "a StreamingProtocol"))
        elif facts is not None and self.protocol not in facts.protocols:
            offered = " or ".join(PROTOCOLS[p].label for p in facts.protocols)
            found.append(
                (
                    "preparation.streaming_protocol",
                    self.protocol.name,
                    f"{offered}: what AWS offers for {facts.label} WorkSpaces",
                )
            )
        if not isinstance(self.clipboard, Clipboard):
            found.append(("preparation.clipboard", self.clipboard, "a Clipboard"))
        for name in ("patch_os", "aes256_only", "remove_user_sudo"):
            if not isinstance(getattr(self, name), bool):
                found.append((f"preparation.{name}", getattr(self, name), "True or False"))
        if self.aes256_only is True:
            found.append(("preparation.aes256_only", True, AES256_ONLY_TEXT))
        for name in ("install_steps", "validation_steps"):
            found += _commands(f"preparation.{name}", getattr(self, name))
        found += self._agent_problems()
        desktop = self.desktop
        if desktop is not None and not isinstance(desktop, DesktopSettings):
            found.append(("preparation.desktop", desktop, "a DesktopSettings"))
        elif desktop is not None:
            found += desktop.problems(facts.desktop if facts else None)
        found += self._application_package_problems()
        found += self._build_user_problems()
        if not found:
            found += [
                (field_name, "<token>", "literal text known at synth (the script is rendered then)")
                for field_name, text in self.user_strings().items()
                if _TOKEN.search(text)
            ]
        return found

    def launch_delivery_problems(self, design: str) -> list[Problem]:
        """For a thin or zero image (`design`): the agent that delivers launch applications."""
        if self.agents_of(AgentKind.CONFIGURATION_MANAGEMENT):
            return []
        kinds = [a.kind.name for a in self.agents if isinstance(a, Agent)]
        return [
            (
                "preparation.agents",
                kinds,
                f"a CONFIGURATION_MANAGEMENT agent with its service: a {design} image gets its "
                "applications and runtime configuration from it at launch",
            )
        ]

    def recipe(self) -> dict[str, object]:
        """What of the preparation changes the image: all of it."""
        return {
            "operating_system": self.operating_system.value,
            "streaming_protocol": self.protocol.value,
            "patch_os": self.patch_os,
            "install_steps": list(self.install_steps),
            "validation_steps": list(self.validation_steps),
            "agents": [agent.recipe() for agent in self.agents],
            "clipboard": self.clipboard.value,
            "aes256_only": self.aes256_only,
            "desktop": self.desktop.recipe() if self.desktop else None,
            "remove_user_sudo": self.remove_user_sudo,
            "build_users": list(self.build_users),
            # Only when given, so that recipes without it keep their fingerprints.
            **(
                {"application_packages": dict(sorted(self.application_packages.items()))}
                if self.application_packages
                else {}
            ),
        }

    def user_strings(self) -> dict[str, str]:
        """Every free-text input, by field, for the secret scan."""
        found: dict[str, str] = {}
        for name in ("install_steps", "validation_steps", "build_users"):
            values = getattr(self, name)
            if isinstance(values, list | tuple):
                for index, value in enumerate(values):
                    if isinstance(value, str):
                        found[f"preparation.{name}[{index}]"] = value
        if isinstance(self.agents, list | tuple):
            for index, agent in enumerate(self.agents):
                if isinstance(agent, Agent) and not agent.problems("x"):
                    found.update(agent.user_strings(f"preparation.agents[{index}]"))
        if isinstance(self.desktop, DesktopSettings) and not self.desktop.problems(None):
            found.update(self.desktop.user_strings())
        return found

    def _application_package_problems(self) -> list[Problem]:
        value = self.application_packages
        if value is None:
            return []
        field_name = "preparation.application_packages"
        if not isinstance(value, Mapping):
            return [(field_name, value, "a mapping of baked application label -> package name")]
        return [
            (f"{field_name}[{label}]", package, PACKAGE_NAME_TEXT)
            for label, package in value.items()
            if not isinstance(label, str)
            or not isinstance(package, str)
            or not PACKAGE_NAME.fullmatch(package)
        ]

    def _os_facts(self, found: list[Problem]) -> OsFacts | None:
        if not isinstance(self.operating_system, OperatingSystem):
            found.append(
                ("preparation.operating_system", self.operating_system, "an OperatingSystem")
            )
            return None
        facts = OPERATING_SYSTEMS[self.operating_system]
        if not facts.offered:
            found.append(
                (
                    "preparation.operating_system",
                    self.operating_system.name,
                    facts.refusal or RETIRED_TEXT,
                )
            )
        return facts

    def _agent_problems(self) -> list[Problem]:
        agents = self.agents
        if isinstance(agents, str) or not isinstance(agents, list | tuple):
            return [("preparation.agents", agents, "a list of Agent")]
        found: list[Problem] = []
        names: set[str] = set()
        for index, agent in enumerate(agents):
            where = f"preparation.agents[{index}]"
            if not isinstance(agent, Agent):
                found.append((where, agent, "an Agent"))
                continue
            found += agent.problems(where)
            if isinstance(agent.name, str) and agent.name in names:
                found.append((f"{where}.name", agent.name, "a name no other agent has"))
            if isinstance(agent.name, str):
                names.add(agent.name)
        return found

    def _build_user_problems(self) -> list[Problem]:
        users = self.build_users
        if isinstance(users, str) or not isinstance(users, list | tuple):
            return [("preparation.build_users", users, "a list of account names")]
        return [
            (
                f"preparation.build_users[{index}]",
                user,
                "a local account name ([a-z_][a-z0-9_-], up to 32) other than root, ssm-user "
                "and system accounts",
            )
            for index, user in enumerate(users)
            if not isinstance(user, str)
            or not re.fullmatch(BUILD_USER_PATTERN, user)
            or user in RESERVED_USERS
        ]


def _commands(field_name: str, values: object) -> list[Problem]:
    if isinstance(values, str) or not isinstance(values, list | tuple):
        return [(field_name, values, "a list of strings")]
    if not all(isinstance(v, str) and v.strip() for v in values):
        return [(field_name, values, "non-empty strings")]
    return []
