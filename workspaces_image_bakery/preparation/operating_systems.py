"""What the preparation needs to know about each Linux WorkSpaces operating system and
streaming protocol: package manager, desktop, protocols AWS offers, and where (and under
which documented key) the protocol's clipboard policy lives.

Sources (Amazon WorkSpaces Administration Guide, checked 2026-11-27):

- [MODERN] "Manage your Linux WorkSpaces in WorkSpaces Personal",
  https://docs.aws.amazon.com/workspaces/latest/adminguide/manage_modern_linux_workspaces.html:
  Ubuntu 22.04/24.04, RHEL 8/9 and Rocky Linux 8/9; "All Linux WorkSpaces use DCV for
  streaming"; clipboard: ``clipboard = enabled|disabled|paste-only|copy-only`` at the end of
  the ``[policies]`` group of ``/etc/wsp/wsp.conf`` (#linux_dcv_clipboard); "Amazon Linux 2
  reaches end-of-life on June 30, 2026".
- [AL2] "Manage your Amazon Linux 2 WorkSpaces in WorkSpaces Personal",
  https://docs.aws.amazon.com/workspaces/latest/adminguide/manage_linux_workspace.html:
  PCoIP clipboard ``pcoip.server_clipboard_state = 0|1|2|3`` in
  ``/etc/pcoip-agent/pcoip-agent.conf``; DCV on Amazon Linux 2 "currently only available in
  the AWS GovCloud (US-West) and AWS GovCloud (US-East)", same ``clipboard`` key in
  ``/etc/wsp/wsp.conf``.
- [MIGRATE] "Migrate a Linux WorkSpace to a different operating system",
  https://docs.aws.amazon.com/workspaces/latest/adminguide/migrate-linux-workspaces.html:
  "Amazon Linux 2 has reached end-of-life and new WorkSpaces cannot be created with AL2
  bundles."
- [DESKTOP] Amazon WorkSpaces User Guide, smart cards: "GNOME Terminal on Ubuntu, Rocky
  Linux, or Red Hat Enterprise Linux WorkSpaces, or MATE Terminal on AL2 WorkSpaces"; the
  whitepaper: "Amazon Linux WorkSpaces use the MATE desktop environment".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class OperatingSystem(Enum):
    """Linux WorkSpaces operating systems.

    Ubuntu 22.04/24.04, Rocky Linux 8/9 and RHEL 8/9 are the Linux WorkSpaces the guide
    documents ([MODERN] above): GNOME, DCV, apt-get or dnf. ``AMAZON_LINUX_2`` reached end of
    life on June 30, 2026 and AWS no longer creates new WorkSpaces from Amazon Linux 2
    bundles ([MIGRATE] above): a preparation for it still renders (its MATE desktop and
    PCoIP are supported) but is refused by validation. ``UBUNTU_26_04``, ``ROCKY_10`` and
    ``RHEL_10`` are in the WorkSpaces API but not in the guide: refused (``NOT_YET_TEXT``).
    """

    UBUNTU_22_04 = "ubuntu-22.04"
    UBUNTU_24_04 = "ubuntu-24.04"
    ROCKY_8 = "rocky-8"
    ROCKY_9 = "rocky-9"
    RHEL_8 = "rhel-8"
    RHEL_9 = "rhel-9"
    AMAZON_LINUX_2 = "amazon-linux-2"
    # Listed by the WorkSpaces API, not yet by the Administration Guide: refused (NOT_YET_TEXT).
    UBUNTU_26_04 = "ubuntu-26.04"
    ROCKY_10 = "rocky-10"
    RHEL_10 = "rhel-10"


class StreamingProtocol(Enum):
    """The WorkSpaces streaming protocol the template WorkSpace (and its image) uses."""

    PCOIP = "pcoip"
    """PCoIP; configured in ``/etc/pcoip-agent/pcoip-agent.conf``."""
    WSP = "wsp"
    """WorkSpaces Streaming Protocol, now called Amazon DCV; configured in ``/etc/wsp/wsp.conf``."""


class Desktop(Enum):
    """The desktop environment of an operating system (its dconf keys differ)."""

    GNOME = "gnome"
    MATE = "mate"


class Clipboard(Enum):
    """Clipboard redirection policy (values are PCoIP's ``pcoip.server_clipboard_state``)."""

    DISABLED = 0
    BOTH_DIRECTIONS = 1
    CLIENT_TO_WORKSPACE = 2
    """Copy on the user's device, paste in the WorkSpace only (DCV: ``paste-only``)."""
    WORKSPACE_TO_CLIENT = 3
    """Copy in the WorkSpace, paste on the user's device only (DCV: ``copy-only``)."""


class PackageManager(Enum):
    APT = "apt-get"
    DNF = "dnf"
    YUM = "yum"


@dataclass(frozen=True)
class OsFacts:
    """One operating system as the script sees it."""

    label: str
    os_release_id: str
    """``ID`` in ``/etc/os-release``."""
    os_release_version: str
    """``VERSION_ID`` in ``/etc/os-release``, or its major part (``8`` matches ``8.10``)."""
    package_manager: PackageManager
    desktop: Desktop
    default_protocol: StreamingProtocol
    protocols: tuple[StreamingProtocol, ...]
    offered: bool
    """Whether AWS creates WorkSpaces with this operating system, as its guide documents."""
    refusal: str = ""
    """Why a preparation for it is refused (when not ``offered``)."""


OFFERED_TEXT: Final = "UBUNTU_22_04, UBUNTU_24_04, ROCKY_8, ROCKY_9, RHEL_8 or RHEL_9"
# The WorkSpaces API (botocore 1.44's OperatingSystemName) lists UBUNTU_26_04, ROCKY_10 and
# RHEL_10, but the Administration Guide's Linux page ([MODERN]) does not document WorkSpaces
# or public bundles for them yet: their desktop, packages and DCV configuration are unknown.
NOT_YET_TEXT: Final = (
    "an operating system the WorkSpaces Administration Guide documents for Linux WorkSpaces "
    "(Ubuntu 22.04/24.04, Rocky Linux 8/9, RHEL 8/9, checked 2026-11-27): the WorkSpaces API "
    "lists this one, but no public bundle, desktop or DCV configuration is documented for it "
    f"yet, so it is refused until AWS does; use {OFFERED_TEXT}"
)


def _dcv_gnome(
    label: str, os_id: str, version: str, package_manager: PackageManager, refusal: str = ""
) -> OsFacts:
    """A Linux WorkSpace as the guide documents them all ([MODERN]): GNOME, DCV only."""
    wsp = StreamingProtocol.WSP
    return OsFacts(
        label, os_id, version, package_manager, Desktop.GNOME, wsp, (wsp,), not refusal, refusal
    )


OPERATING_SYSTEMS: Final[dict[OperatingSystem, OsFacts]] = {
    OperatingSystem.UBUNTU_22_04: _dcv_gnome("Ubuntu 22.04", "ubuntu", "22.04", PackageManager.APT),
    OperatingSystem.UBUNTU_24_04: _dcv_gnome("Ubuntu 24.04", "ubuntu", "24.04", PackageManager.APT),
    OperatingSystem.ROCKY_8: _dcv_gnome("Rocky Linux 8", "rocky", "8", PackageManager.DNF),
    OperatingSystem.ROCKY_9: _dcv_gnome("Rocky Linux 9", "rocky", "9", PackageManager.DNF),
    OperatingSystem.RHEL_8: _dcv_gnome(
        "Red Hat Enterprise Linux 8", "rhel", "8", PackageManager.DNF
    ),
    OperatingSystem.RHEL_9: _dcv_gnome(
        "Red Hat Enterprise Linux 9", "rhel", "9", PackageManager.DNF
    ),
    OperatingSystem.AMAZON_LINUX_2: OsFacts(
        "Amazon Linux 2",
        "amzn",
        "2",
        PackageManager.YUM,
        Desktop.MATE,
        StreamingProtocol.PCOIP,
        (StreamingProtocol.PCOIP, StreamingProtocol.WSP),
        offered=False,
    ),
    OperatingSystem.UBUNTU_26_04: _dcv_gnome(
        "Ubuntu 26.04", "ubuntu", "26.04", PackageManager.APT, refusal=NOT_YET_TEXT
    ),
    OperatingSystem.ROCKY_10: _dcv_gnome(
        "Rocky Linux 10", "rocky", "10", PackageManager.DNF, refusal=NOT_YET_TEXT
    ),
    OperatingSystem.RHEL_10: _dcv_gnome(
        "Red Hat Enterprise Linux 10", "rhel", "10", PackageManager.DNF, refusal=NOT_YET_TEXT
    ),
}

RETIRED_TEXT: Final = (
    "an operating system AWS still offers: Amazon Linux 2 reached end of life on June 30, "
    "2026 and new WorkSpaces cannot be created with Amazon Linux 2 bundles (WorkSpaces "
    f"Administration Guide, 'Migrate a Linux WorkSpace'); use {OFFERED_TEXT}"
)


@dataclass(frozen=True)
class ProtocolFacts:
    """Where a protocol's settings live and the documented clipboard key."""

    label: str
    config_file: str
    group: str
    """The ``[group]`` the keys go in; empty for a flat ``key = value`` file."""
    clipboard_key: str
    clipboard_values: dict[Clipboard, str]
    citation: str


PROTOCOLS: Final[dict[StreamingProtocol, ProtocolFacts]] = {
    StreamingProtocol.PCOIP: ProtocolFacts(
        "PCoIP",
        "/etc/pcoip-agent/pcoip-agent.conf",
        "",
        "pcoip.server_clipboard_state",
        {c: str(c.value) for c in Clipboard},
        "WorkSpaces Administration Guide, manage_linux_workspace.html, 'Configure clipboard "
        "redirection for PCoIP Amazon Linux WorkSpaces'",
    ),
    StreamingProtocol.WSP: ProtocolFacts(
        "WSP (DCV)",
        "/etc/wsp/wsp.conf",
        "policies",
        "clipboard",
        {
            Clipboard.DISABLED: "disabled",
            Clipboard.BOTH_DIRECTIONS: "enabled",
            Clipboard.CLIENT_TO_WORKSPACE: "paste-only",
            Clipboard.WORKSPACE_TO_CLIENT: "copy-only",
        },
        "WorkSpaces Administration Guide, manage_modern_linux_workspaces.html"
        "#linux_dcv_clipboard, 'Enable or disable clipboard redirection'",
    ),
}

# Neither protocol has a documented cipher switch for Linux WorkSpaces, so "AES-256 only"
# is refused rather than written under a guessed key. PCoIP: the WorkSpaces guide documents
# only the clipboard, audio and time zone keys of pcoip-agent.conf; pcoip.enable_aes_256_gcm,
# pcoip.enable_aes_128_gcm and pcoip.enable_salsa20_256_round12 are documented as Windows
# Group Policy values only. WSP (DCV): the guide documents no cipher setting in wsp.conf
# (the DCV connection is TLS-encrypted by the service).
AES256_ONLY_TEXT: Final = (
    "False: neither PCoIP nor WSP (DCV) documents a cipher setting for Linux WorkSpaces "
    "(the PCoIP AES/Salsa20 switches are documented for Windows Group Policy only), so the "
    "script cannot force AES-256; leave the protocol's default encryption"
)
