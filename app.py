#!/usr/bin/env python3
"""Reference app: three personas, one for each of the whitepaper's image design options.

Point the personas at your own template WorkSpaces with cdk.json's context
``templateWorkspaceIds`` or ``cdk synth -c templateWorkspaceIds='{"developer": "ws-..."}'``.
Every synth also writes ``review.md`` and the preparation scripts next to the templates.
"""

from __future__ import annotations

import json
import os
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from workspaces_image_bakery import (
    BASELINE_CONTEXT,
    Clipboard,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    load_baseline,
    write_review,
)

# Agents every persona's image carries (the whitepaper's security and supportability items).
SECURITY_AGENTS = ("clamav", "auditd")
LOG_AGENT = "amazon-cloudwatch-agent"


def template_workspace_ids(app: cdk.App) -> dict[str, str]:
    raw: Any = app.node.try_get_context("templateWorkspaceIds") or {}
    return dict(json.loads(raw) if isinstance(raw, str) else raw)


def build(app: cdk.App) -> ImageBakeryStack:
    """Declare the reference stack in `app` (tests call this too)."""
    templates = template_workspace_ids(app)
    stack = ImageBakeryStack(
        app,
        "WorkSpacesImageBakery",
        description="WorkSpaces Linux images and custom bundles per persona",
        tag_defaults={"Project": "linux-desktops", "CostCenter": "cc-1234", "Stage": "dev"},
    )
    stack.add_persona(
        "Developer",
        name="developer",
        design=ImageDesign.THIN,
        image_version="1.0.0",
        template_workspace_id=templates["developer"],
        baked_applications=["git 2.47", "python 3.12", "vscode 1.95"],
        launch_applications=["docker-ce", "jetbrains-toolbox"],
        config_management_agent="puppet-agent 8",
        license_references={"jetbrains-toolbox": "/licenses/jetbrains"},
        preparation=ImagePreparation(
            install_steps=["apt-get install -y git python3.12 code puppet-agent"],
            validation_steps=["git --version", "python3.12 --version"],
            clipboard=Clipboard.CLIENT_TO_WORKSPACE,
            security_agents=SECURITY_AGENTS,
            log_forwarding_agent=LOG_AGENT,
            monitoring_agents=("amazon-cloudwatch-agent",),
        ),
        compute_type="PERFORMANCE",
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
        baked_applications=["libreoffice 7.6", "firefox esr", "evolution", "pidgin"],
        preparation=ImagePreparation(
            install_steps=["apt-get install -y libreoffice firefox-esr evolution pidgin"],
            validation_steps=["libreoffice --version"],
            security_agents=SECURITY_AGENTS,
            log_forwarding_agent=LOG_AGENT,
            remote_assistance_tools=("remmina",),
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
        launch_applications=["firefox esr", "libreoffice 7.6"],
        config_management_agent="amazon-ssm-agent",
        preparation=ImagePreparation(
            install_steps=["snap install amazon-ssm-agent --classic"],
            security_agents=SECURITY_AGENTS,
            log_forwarding_agent=LOG_AGENT,
        ),
        compute_type="VALUE",
        tags={"Role": "external contractor", "Confidentiality": "internal"},
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return stack


if __name__ == "__main__":
    reference_app = cdk.App()
    reference_stack = build(reference_app)
    # Compare with the baseline given as context, else with the templates of the last synth.
    outdir = os.environ.get("CDK_OUTDIR", "cdk.out")
    baseline = load_baseline(reference_app.node.try_get_context(BASELINE_CONTEXT) or outdir)
    assembly = reference_app.synth()
    review, summary = write_review([reference_stack], assembly.directory, baseline)
    print(f"{summary}; review: {review}")
