"""Adding a persona adds at most 4 resources; 50 personas (the bundle quota) fit one stack."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk.assertions import Template

from workspaces_image_bakery import ImageBakeryStack, ImageDesign

CLOUDFORMATION_RESOURCE_LIMIT = 500


def resource_count(personas: int) -> int:
    app = cdk.App()
    stack = ImageBakeryStack(
        app, "Scale", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    for index in range(personas):
        stack.add_persona(
            f"P{index}",
            name=f"persona-{index}",
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id=f"ws-template{index:04d}",
            baked_applications=["firefox"],
            tags={"Role": "r", "Confidentiality": "internal"},
        )
    return len(Template.from_stack(stack).to_json()["Resources"])


def test_fifty_personas_share_one_runtime() -> None:
    one, fifty = resource_count(1), resource_count(50)
    assert (fifty - one) / 49 == 4
    assert fifty < CLOUDFORMATION_RESOURCE_LIMIT / 2
