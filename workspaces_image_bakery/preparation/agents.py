"""Agents baked into the image: what the whitepaper asks for (security posture, central
logs, performance monitoring, remote assistance) and the configuration-management agent
that delivers a thin or zero image's applications at launch."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

AGENT_NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}"
SERVICE_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9@._:-]{0,247}\.service"
SAFE_PATH_PATTERN: Final = r"/[A-Za-z0-9._+@/-]{1,1023}"


class AgentKind(Enum):
    """What an agent is for (the whitepaper's security and supportability items)."""

    SECURITY = "security"
    """Checks the WorkSpace's security posture (antivirus, malware, event monitoring)."""
    LOG_FORWARDING = "log-forwarding"
    """Ships application and operating system logs for central analysis."""
    MONITORING = "monitoring"
    """Application performance and reliability analysis."""
    REMOTE_ASSISTANCE = "remote-assistance"
    """Lets support staff help users."""
    CONFIGURATION_MANAGEMENT = "configuration-management"
    """Delivers launch applications and runtime configuration when a WorkSpace starts."""


@dataclass(frozen=True)
class Agent:
    """An agent the script installs, then verifies.

    :param name: 1-64 of ``A-Za-z0-9._+-``; names the script's steps and the Software tag.
    :param kind: an ``AgentKind``.
    :param install: shell command that installs it (run with ``bash -c`` as root). Scanned
        for secrets.
    :param check: shell command that exits 0 only if the agent is installed and working;
        run after every install. Scanned for secrets.
    :param service: the systemd unit (``*.service``) that runs the agent; the script enables
        it. A CONFIGURATION_MANAGEMENT agent's unit is instead held on the template (stopped,
        disabled and masked, so the template never enrols) and the first-boot unit of a
        WorkSpace launched from the image unmasks, enables and starts it once it has shed the
        template's identity; the SSM agent's unit, the build's channel, stays enabled.
        Required for CONFIGURATION_MANAGEMENT. Default none.
    :param identity_paths: machine-specific state the agent creates when it enrols (e.g.
        ``/etc/puppetlabs/puppet/ssl``); the seal takes it off the template before the image
        and the first-boot unit removes it on a WorkSpace that is not the template, so the
        agent enrols as the new machine. Default none.
    """

    name: str
    kind: AgentKind
    install: str
    check: str
    service: str | None = None
    identity_paths: Sequence[str] = ()

    def problems(self, where: str) -> list[tuple[str, object, str]]:
        """(field, value, allowed) for every malformed field; `where` prefixes the field."""
        found: list[tuple[str, object, str]] = []
        if not isinstance(self.name, str) or not re.fullmatch(AGENT_NAME_PATTERN, self.name):
            found.append((f"{where}.name", self.name, "1-64 of letters, digits and . _ + -"))
        if not isinstance(self.kind, AgentKind):
            found.append((f"{where}.kind", self.kind, "an AgentKind"))
        for attribute in ("install", "check"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not value.strip():
                found.append((f"{where}.{attribute}", value, "a non-empty shell command"))
        service = self.service
        if service is not None and (
            not isinstance(service, str) or not re.fullmatch(SERVICE_PATTERN, service)
        ):
            found.append((f"{where}.service", service, "a systemd unit name ending in .service"))
        if self.kind is AgentKind.CONFIGURATION_MANAGEMENT and service is None:
            found.append(
                (
                    f"{where}.service",
                    service,
                    "the systemd unit that bootstraps the configuration-management agent at "
                    "launch (e.g. puppet.service)",
                )
            )
        paths = self.identity_paths
        if isinstance(paths, str) or not isinstance(paths, list | tuple):
            found.append((f"{where}.identity_paths", paths, "a list of absolute paths"))
        else:
            for index, path in enumerate(paths):
                if not is_safe_path(path) or path.rstrip("/") in ("", "/etc", "/var", "/usr"):
                    found.append(
                        (
                            f"{where}.identity_paths[{index}]",
                            path,
                            "an absolute path of letters, digits and . _ + @ / - (no ..), "
                            "below a top-level folder",
                        )
                    )
        return found

    def recipe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "install": self.install,
            "check": self.check,
            "service": self.service,
            "identity_paths": list(self.identity_paths),
        }

    def user_strings(self, where: str) -> dict[str, str]:
        found = {f"{where}.name": self.name, f"{where}.install": self.install}
        found[f"{where}.check"] = self.check
        if self.service:
            found[f"{where}.service"] = self.service
        for index, path in enumerate(self.identity_paths):
            found[f"{where}.identity_paths[{index}]"] = path
        return found


def is_safe_path(path: object) -> bool:
    """An absolute path the script can quote and prefix with its root: no ``..``."""
    return (
        isinstance(path, str)
        and re.fullmatch(SAFE_PATH_PATTERN, path) is not None
        and ".." not in path.split("/")
    )
