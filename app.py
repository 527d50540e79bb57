#!/usr/bin/env python3
"""Reference app: three personas, one for each of the whitepaper's image design options.

Point the personas at your own template WorkSpaces with cdk.json's context
``templateWorkspaceIds`` or ``cdk synth -c templateWorkspaceIds='{"developer": "ws-..."}'``,
and at their managed nodes (docs/preparation.md) with
``templateManagedNodes``: the build then runs each persona's preparation on its template.
A persona without a managed node is prepared by hand, and the review says so.
Every synth also writes ``review.md`` and the preparation scripts next to the templates
(the library does it: no code here).
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from workspaces_image_bakery import (
    Clipboard,
    Compute,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    PatchSchedule,
    TemplateBuild,
    VulnerabilityGate,
)
from workspaces_image_bakery.preparation import Agent, AgentKind, DesktopSettings
from workspaces_image_bakery.preparation.signed_package import SignedPackage
from workspaces_image_bakery.preparation.vendor_repository import AptRepository

# Packages Ubuntu 22.04's archive does not carry, from their vendors' apt repositories, each
# trusted only with the key whose fingerprint is written here (as the vendors publish them;
# the script checks the downloaded key against it before apt trusts the repository).
VSCODE_REPOSITORY = AptRepository(
    name="vscode",
    url="https://packages.microsoft.com/repos/code",
    suite="stable",
    components=("main",),
    key_url="https://packages.microsoft.com/keys/microsoft.asc",
    fingerprint="BC52 8686 B50D 79E3 39D3 721C EB3E 94AD BE12 29CF",
)
LAUNCHPAD_KEYS = "https://keyserver.ubuntu.com/pks/lookup?op=get&search=0x"
DEADSNAKES_REPOSITORY = AptRepository(  # python3.12
    name="deadsnakes",
    url="https://ppa.launchpadcontent.net/deadsnakes/ppa/ubuntu",
    suite="jammy",
    components=("main",),
    key_url=f"{LAUNCHPAD_KEYS}BA6932366A755776",
    fingerprint="F23C 5A6C F475 9775 95C8 9F51 BA69 3236 6A75 5776",
)
MOZILLA_REPOSITORY = AptRepository(  # firefox-esr
    name="mozillateam",
    url="https://ppa.launchpadcontent.net/mozillateam/ppa/ubuntu",
    suite="jammy",
    components=("main",),
    key_url=f"{LAUNCHPAD_KEYS}9BDB3D89CE49EC21",
    fingerprint="0AB2 1567 9C57 1D1C 8325 275B 9BDB 3D89 CE49 EC21",
)

# The Amazon CloudWatch agent is not in Ubuntu's archive: AWS's package, installed only when
# AWS's signature on it is good (the key's fingerprint as AWS's CloudWatch guide prints it,
# "Verifying the signature of the CloudWatch agent package") and it is the pinned version.
# When AWS publishes a newer "latest", builds fail naming it until the pin is changed here.
CLOUDWATCH_AGENT_BUCKET = "https://amazoncloudwatch-agent.s3.amazonaws.com"
CLOUDWATCH_AGENT = SignedPackage(
    name="amazon-cloudwatch-agent",
    url=f"{CLOUDWATCH_AGENT_BUCKET}/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb",
    signature_url=f"{CLOUDWATCH_AGENT_BUCKET}/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb.sig",
    key_url=f"{CLOUDWATCH_AGENT_BUCKET}/assets/amazon-cloudwatch-agent.gpg",
    fingerprint="9376 16F3 450B 7D80 6CBD 9725 D581 6730 3B78 9C72",
    version="1.300066.0",
)
# What it forwards: the system log and the authentication log, one stream per WorkSpace.
# Its AWS credentials are not baked in (item 15): each WorkSpace gets them at launch from
# the configuration-management agent (onPremise mode's shared credentials profile).
CLOUDWATCH_AGENT_CONFIG = json.dumps(
    {
        "agent": {"run_as_user": "root"},
        "logs": {
            "logs_collected": {
                "files": {
                    "collect_list": [
                        {
                            "file_path": f"/var/log/{log}",
                            "log_group_name": f"/workspaces/linux/{log}",
                            "log_stream_name": "{hostname}",
                        }
                        for log in ("syslog", "auth.log")
                    ]
                }
            }
        },
    },
    indent=1,
)
CLOUDWATCH_AGENT_INSTALL = "\n".join(
    [
        "apt-get install -y curl gnupg",
        CLOUDWATCH_AGENT.install(),
        "install -d -m 0755 /opt/aws/amazon-cloudwatch-agent/etc",
        "cat > /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<'JSON'",
        CLOUDWATCH_AGENT_CONFIG,
        "JSON",
    ]
)
# Agents every persona's image carries (the whitepaper's security and supportability items).
BASE_AGENTS = (
    Agent(
        "clamav",
        AgentKind.SECURITY,
        install="apt-get install -y clamav clamav-freshclam",
        check="clamscan --version",
        service="clamav-freshclam.service",
    ),
    Agent(
        "auditd",
        AgentKind.SECURITY,
        install="apt-get install -y auditd",
        check="auditctl -v",
        service="auditd.service",
    ),
    Agent(
        "amazon-cloudwatch-agent",
        AgentKind.LOG_FORWARDING,
        install=CLOUDWATCH_AGENT_INSTALL,
        check="test -s /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json",
        service="amazon-cloudwatch-agent.service",
    ),
)


# Thin and zero images: the agent that delivers launch applications and runtime information.
# Its enrolment (the ssl folder) is machine-specific: the first-boot unit removes it on a
# WorkSpace that is not the template, so each WorkSpace enrols as itself.
PUPPET_REPOSITORY = AptRepository(  # puppet-agent 8 (Puppet's 2019 key, renewed 2025)
    name="puppet8",
    url="https://apt.puppet.com",
    suite="jammy",
    components=("puppet8",),
    key_url="https://apt.puppet.com/DEB-GPG-KEY-puppet-20250406",
    fingerprint="D681 1ED3 ADEE B844 1AF5 AA8F 4528 B6CD 9E61 EF26",
)
PUPPET_AGENT = Agent(
    "puppet-agent",
    AgentKind.CONFIGURATION_MANAGEMENT,
    install="\n".join(
        [
            "apt-get install -y curl gnupg",
            PUPPET_REPOSITORY.add(),
            "apt-get install -y puppet-agent",
        ]
    ),
    check="/opt/puppetlabs/bin/puppet --version",
    service="puppet.service",
    identity_paths=["/etc/puppetlabs/puppet/ssl"],
)
PERSONAS = ("developer", "office", "contractor")


def context_map(app: cdk.App, key: str) -> dict[str, str]:
    """A persona -> id mapping from the context (JSON text on the command line)."""
    raw: Any = app.node.try_get_context(key) or {}
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        raise SystemExit(f"context {key} must map persona names to ids, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def template_workspace_ids(app: cdk.App) -> dict[str, str]:
    templates = context_map(app, "templateWorkspaceIds")
    missing = [p for p in PERSONAS if p not in templates]
    if missing:
        raise SystemExit(
            f"context templateWorkspaceIds has no template WorkSpace for {', '.join(missing)}: "
            "add them in cdk.json or pass -c templateWorkspaceIds='{"
            + ", ".join(f'"{p}": "ws-..."' for p in PERSONAS)
            + "}'"
        )
    return templates


def build(app: cdk.App) -> ImageBakeryStack:
    """Declare the reference stack in `app` (tests call this too)."""
    templates = template_workspace_ids(app)
    nodes = context_map(app, "templateManagedNodes")
    stack = ImageBakeryStack(
        app,
        "WorkSpacesImageBakery",
        description="WorkSpaces Linux images and custom bundles per persona",
        tag_defaults={"Project": "linux-desktops", "CostCenter": "cc-1234", "Stage": "dev"},
        # Every build that prepares its template stops before the image on a HIGH or
        # CRITICAL finding (Amazon Inspector ScanSbom); accept one with AcceptedFinding.
        vulnerability_gate=VulnerabilityGate(severity="HIGH"),
    )
    stack.add_persona(
        "Developer",
        name="developer",
        design=ImageDesign.THIN,
        image_version="1.0.0",
        template_workspace_id=templates["developer"],
        build=TemplateBuild(managed_node_id=nodes.get("developer")),
        baked_applications=["git 2.47", "python 3.12", "vscode 1.95"],
        launch_applications=["docker-ce", "jetbrains-toolbox"],
        config_management_agent="puppet-agent 8",
        license_references={"jetbrains-toolbox": "/licenses/jetbrains"},
        preparation=ImagePreparation(
            install_steps=[
                "apt-get install -y curl gnupg",
                VSCODE_REPOSITORY.add(),
                DEADSNAKES_REPOSITORY.add(),
                "apt-get install -y git python3.12 code",
            ],
            # The build checks each baked application's package in the template's inventory.
            application_packages={"vscode 1.95": "code"},
            validation_steps=["git --version", "python3.12 --version"],
            agents=[
                *BASE_AGENTS,
                Agent(
                    "collectd",
                    AgentKind.MONITORING,
                    install="apt-get install -y collectd",
                    check="collectd -t",
                    service="collectd.service",
                ),
                PUPPET_AGENT,
            ],
            clipboard=Clipboard.CLIENT_TO_WORKSPACE,
            desktop=DesktopSettings(
                favourites=["code.desktop", "firefox_firefox.desktop", "org.gnome.Terminal.desktop"]
            ),
        ),
        compute=Compute(compute_type="PERFORMANCE"),
        tags={
            "Role": "software development",
            "System": "engineering",
            "Confidentiality": "internal",
        },
    )
    stack.add_persona(
        "OfficeWorker",
        name="office",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0.0",
        template_workspace_id=templates["office"],
        build=TemplateBuild(managed_node_id=nodes.get("office")),
        # Checked every Monday night for pending security updates; when some are, the
        # patch level rises and the next pipeline run rebuilds (docs/patching.md).
        patch_schedule=(
            PatchSchedule(schedule="cron(0 2 ? * MON *)", time_zone="Europe/Berlin")
            if nodes.get("office")
            else None
        ),
        baked_applications=["libreoffice 7.6", "firefox esr", "evolution", "pidgin"],
        preparation=ImagePreparation(
            install_steps=[
                "apt-get install -y curl gnupg",
                MOZILLA_REPOSITORY.add(),
                "apt-get install -y libreoffice firefox-esr evolution pidgin",
            ],
            validation_steps=["libreoffice --version"],
            # No remote-assistance tool (checklist item 20 says so): Remmina, listed here
            # before, is a remote desktop client, not a way for support to reach the user.
            agents=list(BASE_AGENTS),
            desktop=DesktopSettings(
                settings={
                    "org/gnome/desktop/screensaver/lock-enabled": "true",
                    "org/gnome/desktop/session/idle-delay": "uint32 900",
                }
            ),
        ),
        tags={
            "Role": "office productivity",
            "System": "back office",
            "Confidentiality": "confidential",
            "Compliance": "iso-27001",
        },
    )
    stack.add_persona(
        "Contractor",
        name="contractor",
        design=ImageDesign.ZERO,
        image_version="1.0.0",
        template_workspace_id=templates["contractor"],
        build=TemplateBuild(managed_node_id=nodes.get("contractor")),
        launch_applications=["firefox esr", "libreoffice 7.6"],
        config_management_agent="puppet-agent 8",
        preparation=ImagePreparation(agents=[*BASE_AGENTS, PUPPET_AGENT]),
        compute=Compute(compute_type="VALUE"),
        tags={"Role": "external contractor", "Confidentiality": "internal"},
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return stack


if __name__ == "__main__":
    reference_app = cdk.App()
    build(reference_app)
    # The synth writes review.md and the preparation scripts next to the templates and
    # prints the checklist summary (the baseline: the context value
    # workspaces-image-bakery:baseline, else the templates of the last synth).
    reference_app.synth()
