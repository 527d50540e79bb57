"""What a prepared template holds, listed on the template itself by the stack's inventory
document (one SSM document per stack) after the reboot, just before the image is taken:
its operating system, its installed packages (from its own package database), the state of
every systemd unit, whether the evidence files the checklist reads are present, and any
licence file left on the root volume (names only, never contents).

This module is the contract between that document and the build: the construct side loads
it by path (``INVENTORY_COMMANDS``) and the runtime parses what it printed
(``parse_inventory_output``). Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

MARKER: Final = "==> bakery inventory: "
# The command that lists the template's installed packages, one per line, tab-separated
# (the SBOM's input; see sbom.parse_inventory). dpkg-query's status column lets the parser
# leave out packages removed with their configuration files kept.
PACKAGE_QUERY: Final[dict[str, str]] = {
    "deb": r"dpkg-query -W -f='${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\n'",
    "rpm": r"rpm -qa --queryformat '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n'",
}
# Files whose presence is evidence for a checklist item: a log-forwarding agent's
# configuration (item 17). Only these well-known paths are looked at.
EVIDENCE_FILES: Final[dict[str, tuple[str, ...]]] = {
    "amazon-cloudwatch-agent.service": (
        "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json",
        "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.toml",
    ),
    "fluent-bit.service": ("/etc/fluent-bit/fluent-bit.conf",),
    "td-agent-bit.service": ("/etc/td-agent-bit/td-agent-bit.conf",),
    "rsyslog.service": ("/etc/rsyslog.conf",),
}
# The launch facts the preparation script writes for the configuration-management agent
# (item 7: the launch applications reach it); preparation/script.py writes this path.
LAUNCH_FACTS_FILE: Final = "/etc/workspaces-image-bakery/launch-facts.json"
_FILES: Final = tuple(
    sorted({LAUNCH_FACTS_FILE, *(path for paths in EVIDENCE_FILES.values() for path in paths)})
)
# Where applications leave licence files on the root volume (item 4: licence details are
# stored outside the image), and the names such files go by (FlexLM, RLM, vendor keys).
LICENCE_DIRECTORIES: Final = ("/etc", "/opt", "/usr/local", "/srv", "/var/lib", "/root")
LICENCE_NAMES: Final = ("*.lic", "license.dat", "licence.dat", "*.license", "*.licence")
# At most this many licence files are listed (a count beyond it is enough to fail item 4).
LICENCE_LIMIT: Final = 50
_LICENCE_FIND: Final = (
    "find "
    + " ".join(LICENCE_DIRECTORIES)
    + " -xdev -type f \\( "
    + " -o ".join(f"-iname '{name}'" for name in LICENCE_NAMES)
    + f" \\) -print 2>/dev/null | head -n {LICENCE_LIMIT} || true"
)

INVENTORY_COMMANDS: Final[tuple[str, ...]] = (
    "set -euo pipefail",
    ". /etc/os-release",
    f'printf \'{MARKER}os %s %s\\n\' "${{ID:-unknown}}" "${{VERSION_ID:-unknown}}"',
    "if command -v dpkg-query >/dev/null 2>&1; then family=deb; else family=rpm; fi",
    f"printf '{MARKER}family %s\\n' \"$family\"",
    f"echo '{MARKER}packages'",
    f'if [ "$family" = deb ]; then {PACKAGE_QUERY["deb"]}; else {PACKAGE_QUERY["rpm"]}; fi',
    f"echo '{MARKER}units'",
    "systemctl list-unit-files --no-legend --no-pager | awk 'NF >= 2 {print $1 \"\\t\" $2}'",
    f"echo '{MARKER}files'",
    "for f in " + " ".join(_FILES) + "; do",
    '  if [ -s "$f" ]; then state=present; else state=absent; fi',
    '  printf \'%s\\t%s\\n\' "$f" "$state"',
    "done",
    f"echo '{MARKER}licences'",
    _LICENCE_FIND,
    f"echo '{MARKER}end'",
)

_OS_LINE: Final = re.compile(r"os (\S+) (\S+)")
_FAMILY_LINE: Final = re.compile(r"family (deb|rpm)")
SECTIONS: Final = ("packages", "units", "files", "licences")


@dataclass(frozen=True)
class Inventory:
    """What the inventory document printed, parsed."""

    os_id: str
    os_version: str
    family: str
    packages_text: str
    units: dict[str, str] = field(default_factory=dict)
    files: dict[str, bool] = field(default_factory=dict)
    # Licence files found on the root volume (paths; at most LICENCE_LIMIT).
    licence_files: tuple[str, ...] = ()

    def unit_state(self, unit: str) -> str:
        """The unit's state (enabled, disabled, masked, static, ...) or "absent"."""
        return self.units.get(unit, "absent")

    def to_json(self) -> dict[str, object]:
        return {
            "os_id": self.os_id,
            "os_version": self.os_version,
            "family": self.family,
            "packages_text": self.packages_text,
            "units": dict(sorted(self.units.items())),
            "files": dict(sorted(self.files.items())),
            "licence_files": list(self.licence_files),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Inventory:
        units = data.get("units")
        files = data.get("files")
        licences = data.get("licence_files")
        return cls(
            os_id=str(data["os_id"]),
            os_version=str(data["os_version"]),
            family=str(data["family"]),
            packages_text=str(data["packages_text"]),
            units={str(k): str(v) for k, v in (units if isinstance(units, dict) else {}).items()},
            files={str(k): bool(v) for k, v in (files if isinstance(files, dict) else {}).items()},
            licence_files=tuple(str(f) for f in licences) if isinstance(licences, list) else (),
        )


def parse_inventory_output(text: str) -> Inventory:
    """Parse the document's whole output; ValueError names what is missing or malformed."""
    os_id = os_version = family = ""
    sections: dict[str, list[str]] = {name: [] for name in SECTIONS}
    current: str | None = None
    ended = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(MARKER):
            word = line[len(MARKER) :].strip()
            if (found := _OS_LINE.fullmatch(word)) is not None:
                os_id, os_version = found.group(1), found.group(2)
            elif (found := _FAMILY_LINE.fullmatch(word)) is not None:
                family = found.group(1)
            elif word in SECTIONS:
                current = word
            elif word == "end":
                ended = True
                current = None
            else:
                raise ValueError(f"inventory line {number}: unknown marker {word!r}")
        elif current is not None and line.strip():
            sections[current].append(line)
    missing = [
        what
        for what, value in (("os", os_id), ("family", family), ("end", "x" if ended else ""))
        if not value
    ]
    if missing:
        raise ValueError(f"the inventory output lacks its {', '.join(missing)} line(s)")
    units: dict[str, str] = {}
    for line in sections["units"]:
        name, _, state = line.partition("\t")
        units[name.strip()] = state.strip()
    files: dict[str, bool] = {}
    for line in sections["files"]:
        path, _, state = line.partition("\t")
        files[path.strip()] = state.strip() == "present"
    return Inventory(
        os_id=os_id,
        os_version=os_version,
        family=family,
        packages_text="\n".join(sections["packages"]) + "\n",
        units=units,
        files=files,
        licence_files=tuple(line.strip() for line in sections["licences"]),
    )
