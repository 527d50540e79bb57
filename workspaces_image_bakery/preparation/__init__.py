"""How a persona's template WorkSpace is prepared: the whitepaper's image creation process
and recommended customizations, declared in code and rendered as one bash script.

The build runs the script as root on the template WorkSpace through SSM Run Command, then
reboots the WorkSpace and takes the image. The script checks the OS, patches it, runs the
install steps, installs and checks the agents, writes the streaming protocol's clipboard
policy, the desktop defaults (dconf, locked), a unit that removes users' sudo rights at
boot and a first-boot unit that sheds the template's identity, runs the validation steps,
cleans down and writes the version file last. The preparation is part of the image recipe:
changing it builds a new image.

- ``operating_systems``: the OS and protocol facts (with their AWS sources);
- ``agents``: ``Agent`` and ``AgentKind``;
- ``desktop``: ``DesktopSettings`` (GNOME and MATE dconf keys);
- ``model``: ``ImagePreparation``;
- ``script``: ``render_script`` and the contract with the build (markers, version file);
- ``boot_units``: the sudo-removal and first-boot units and their scripts.
"""

from .agents import Agent, AgentKind
from .boot_units import FIRSTBOOT_SERVICE, SUDO_SERVICE, TEMPLATE_IDENTITY_FILE
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
    render_script,
)

__all__ = [
    "DONE_MARKER",
    "FAILED_MARKER",
    "FIRSTBOOT_SERVICE",
    "MAX_SCRIPT_BYTES",
    "OPERATING_SYSTEMS",
    "PROTOCOLS",
    "STEP_MARKER",
    "SUDO_SERVICE",
    "TEMPLATE_IDENTITY_FILE",
    "VERSION_FILE",
    "Agent",
    "AgentKind",
    "Clipboard",
    "Desktop",
    "DesktopSettings",
    "ImagePreparation",
    "OperatingSystem",
    "StreamingProtocol",
    "render_script",
]
