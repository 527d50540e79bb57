"""How a persona's template WorkSpace is prepared: the whitepaper's image creation process
and recommended customizations, declared in code and rendered as one bash script.

The build runs the script as root on the template WorkSpace through SSM Run Command, then
reboots the WorkSpace, validates it, runs the seal (``render_seal_script``) and takes the
image. The script checks the OS, patches it, runs the install steps, installs and checks the
agents (a configuration-management agent is held until a WorkSpace's first boot), writes the
streaming protocol's clipboard policy, the desktop defaults (dconf, locked), a unit that
removes users' sudo rights at boot, a first-boot unit that sheds the template's identity and
a unit that restores the template after the seal, runs the validation steps, cleans down
and writes the version file last. The seal then takes the template's identity, histories and
logs off the root volume just before the image. The preparation is part of the image recipe:
changing it builds a new image.

- ``operating_systems``: the OS and protocol facts (with their AWS sources);
- ``agents``: ``Agent`` and ``AgentKind``;
- ``desktop``: ``DesktopSettings`` (GNOME and MATE dconf keys);
- ``model``: ``ImagePreparation``;
- ``script``: ``render_script`` and the contract with the build (markers, version file);
- ``boot_units``: the sudo-removal, first-boot and template-restore units and their scripts;
- ``seal``: ``render_seal_script``, the build's last command before the image, and its
  contract with the build (items, markers).
"""

from .agents import Agent, AgentKind
from .boot_units import (
    FIRSTBOOT_SERVICE,
    RESTORE_SERVICE,
    SUDO_SERVICE,
    TEMPLATE_IDENTITY_FILE,
    TEMPLATE_STASH_DIR,
)
from .desktop import DesktopSettings
from .model import ImagePreparation
from .operating_systems import (
    OPERATING_SYSTEMS,
    PROTOCOLS,
    Clipboard,
    Desktop,
    OperatingSystem,
    StreamingProtocol,
)
from .script import (
    DONE_MARKER,
    FAILED_MARKER,
    MAX_SCRIPT_BYTES,
    STEP_MARKER,
    VERSION_FILE,
    preparation_problems,
    render_script,
)
from .seal import (
    DEFERRED_ITEMS,
    SEAL_ITEMS,
    SEAL_MARKER,
    SEAL_SETTLED_SECONDS,
    SEALED_FAILED,
    SEALED_MARKER,
    SEALED_OK,
    SealOutcome,
    read_seal_output,
    render_seal_script,
    seal_items,
)

__all__ = [
    "DEFERRED_ITEMS",
    "DONE_MARKER",
    "FAILED_MARKER",
    "FIRSTBOOT_SERVICE",
    "MAX_SCRIPT_BYTES",
    "OPERATING_SYSTEMS",
    "PROTOCOLS",
    "RESTORE_SERVICE",
    "SEALED_FAILED",
    "SEALED_MARKER",
    "SEALED_OK",
    "SEAL_ITEMS",
    "SEAL_MARKER",
    "SEAL_SETTLED_SECONDS",
    "STEP_MARKER",
    "SUDO_SERVICE",
    "TEMPLATE_IDENTITY_FILE",
    "TEMPLATE_STASH_DIR",
    "VERSION_FILE",
    "Agent",
    "AgentKind",
    "Clipboard",
    "Desktop",
    "DesktopSettings",
    "ImagePreparation",
    "OperatingSystem",
    "SealOutcome",
    "StreamingProtocol",
    "preparation_problems",
    "read_seal_output",
    "render_script",
    "render_seal_script",
    "seal_items",
]
