"""The persona the system tests prepare: Ubuntu 22.04 as far as the script can tell (the
root's os-release says so), with packages that exist in Debian bookworm: jq as the baked
application, auditd (security), rsyslog (log forwarding) and Debian's puppet-agent
(configuration management; its ssldir is /var/lib/puppet/ssl)."""

from __future__ import annotations

from workspaces_image_bakery.preparation import (
    Agent,
    AgentKind,
    Clipboard,
    DesktopSettings,
    ImagePreparation,
    OperatingSystem,
    render_script,
)

FINGERPRINT = "5e7e" * 16
# Delivered at launch by the configuration-management agent (Debian's puppet-agent reads
# Facter's external facts from /etc/facter/facts.d).
LAUNCH_APPLICATIONS = ("libreoffice", "gimp")
AGENTS = (
    Agent(
        "auditd",
        AgentKind.SECURITY,
        install="apt-get install -y auditd",
        check="auditctl -v",
        service="auditd.service",
    ),
    Agent(
        "rsyslog",
        AgentKind.LOG_FORWARDING,
        install="apt-get install -y rsyslog",
        check="rsyslogd -v",
        service="rsyslog.service",
    ),
    Agent(
        "puppet-agent",
        AgentKind.CONFIGURATION_MANAGEMENT,
        install="apt-get install -y puppet-agent",
        check="puppet --version",
        service="puppet.service",
        identity_paths=("/var/lib/puppet/ssl",),
    ),
)
PREPARATION = ImagePreparation(
    operating_system=OperatingSystem.UBUNTU_22_04,
    install_steps=(
        "apt-get install -y jq",
        "id -u builder || useradd --create-home --shell /bin/bash builder",
    ),
    validation_steps=("jq --version", "test -x /usr/bin/jq"),
    agents=AGENTS,
    clipboard=Clipboard.CLIENT_TO_WORKSPACE,
    desktop=DesktopSettings(
        favourites=("firefox.desktop",),
        settings={"org/gnome/desktop/session/idle-delay": "uint32 900"},
    ),
    build_users=("builder",),
)
# What the root gets before the script, as a template WorkSpace has it: the WSP agent's
# configuration, a user WorkSpaces made an administrator, base-files held (an upgrade would
# put Debian's os-release back).
TEMPLATE_SETUP = """set -euo pipefail
mkdir -p /etc/wsp
printf '[policies]\\nclipboard = enabled\\n' > /etc/wsp/wsp.conf
id -u alice > /dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo alice
printf 'alice ALL=(ALL:ALL) ALL\\n' > /etc/sudoers.d/01-ws-admin-user
chmod 0440 /etc/sudoers.d/01-ws-admin-user
apt-mark hold base-files > /dev/null
"""


def script(preparation: ImagePreparation) -> str:
    return render_script(
        preparation,
        persona="system-test",
        version="1.0.0",
        fingerprint=FINGERPRINT,
        design="thin",
        launch_applications=LAUNCH_APPLICATIONS,
    )
