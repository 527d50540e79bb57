"""Small stacks for handler and lifecycle tests, synthesized to plain template dicts."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk.assertions import Template

from workspaces_image_bakery import (
    Compute,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    Release,
    TemplateBuild,
)


def two_personas(
    *,
    developer_version: str = "1.0.0",
    office_version: str = "1.0.0",
    stage: str = "dev",
    developer_compute: str = "PERFORMANCE",
    developer_system: str | None = "engineering",
    developer_build_timeout: Duration | None = None,
    office_template: str = "ws-off0template1",
    removal_policy: cdk.RemovalPolicy | None = None,
    office_removal_policy: cdk.RemovalPolicy | None = None,
    office_node: str | None = None,
    context: dict[str, Any] | None = None,
    office_gate: Any = None,
) -> dict[str, Any]:
    """A thin developer persona and a fully baked office persona.

    With `office_node`, the office template is prepared in the build through that managed
    node (the SSM fake's first node is mi-00000000000000001).
    """
    app = cdk.App(context=context or {})
    stack = ImageBakeryStack(
        app,
        "Lifecycle",
        tag_defaults={"Project": "desktops", "CostCenter": "cc-1", "Stage": stage},
    )
    stack.add_persona(
        "Developer",
        name="developer",
        design=ImageDesign.THIN,
        image_version=developer_version,
        template_workspace_id="ws-dev0template1",
        baked_applications=["git 2.47"],
        launch_applications=["docker-ce"],
        config_management_agent="puppet-agent 8",
        compute=Compute(compute_type=developer_compute),
        build=TemplateBuild(timeout=developer_build_timeout),
        release=Release(removal_policy=removal_policy) if removal_policy else None,
        tags={
            "Role": "development",
            "Confidentiality": "internal",
            **({"System": developer_system} if developer_system else {}),
        },
    )
    office_policy = office_removal_policy or removal_policy
    stack.add_persona(
        "Office",
        name="office",
        design=ImageDesign.FULLY_BAKED,
        image_version=office_version,
        template_workspace_id=office_template,
        **(
            {"preparation": ImagePreparation(), "build": TemplateBuild(managed_node_id=office_node)}
            if office_node
            else {}
        ),
        release=Release(removal_policy=office_policy) if office_policy else None,
        baked_applications=["libreoffice 7.6"],
        tags={"Role": "office", "Confidentiality": "internal"},
        vulnerability_gate=office_gate,
    )
    return dict(Template.from_stack(stack).to_json())


# Many personas need a Region image quota above the default 40: each holds its retained
# images and the one being built (the synth-time check in validation.register_images).
SCALE_CONTEXT = {"workspaces-image-bakery:image-quota": "1000"}


def many_personas_stack(
    count: int,
    *,
    prepared: bool = False,
    in_build: bool = False,
    app: cdk.App | None = None,
) -> ImageBakeryStack:
    """A stack of `count` fully baked personas, each on its own template WorkSpace; with
    `prepared`, each declares a preparation (prepared by hand: no managed node), and with
    `in_build` also a managed node (prepared in the build)."""
    stack = ImageBakeryStack(
        app or cdk.App(context=SCALE_CONTEXT),
        "Scale",
        tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"},
    )
    for index in range(count):
        stack.add_persona(
            f"P{index}",
            name=f"persona-{index}",
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id=f"ws-template{index:04d}",
            baked_applications=["firefox"],
            preparation=(
                ImagePreparation(install_steps=["apt-get install -y firefox-esr"])
                if prepared or in_build
                else None
            ),
            build=TemplateBuild(managed_node_id=f"mi-{index:017d}" if in_build else None),
            tags={"Role": "r", "Confidentiality": "internal"},
        )
    return stack


def many_personas(count: int) -> dict[str, Any]:
    """The template of :func:`many_personas_stack`."""
    return dict(Template.from_stack(many_personas_stack(count)).to_json())
