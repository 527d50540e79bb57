#!/usr/bin/env python3
"""Build once, promote everywhere: a CDK Pipelines app for WorkSpaces images.

The image is built in one place only, the build stage (an ``ImageBakeryStack`` with a
persona, in the build account), which shares it with the accounts of the later stages.
Each later stage copies the shared image into its own account (``SharedImageCopy``), binds
its bundle to that copy, and copies it on to its other Regions (``RegionalCopies``): no
stage after the build ever builds an image. The later stages find the image by name, which
the synth knows (the name carries the recipe fingerprint), so a new build is promoted by
the next pipeline run without passing ids between accounts.

Copies live in the later stages on purpose: a failing copy (a full image quota in one
Region) fails its resource, and CloudFormation rolls back that whole stack operation. Here
that is one later stage's stack; the build stage's image and share, and the earlier stages,
stay. Copies declared next to the build (a persona's ``distribution``) would roll the new image
back with them.

Patches without a code change: the persona's template is checked for pending security
updates every Monday night (``PatchSchedule``). When some are pending, the build account's
patch check raises the persona's patch level and puts an ``Image Patch Level Raised``
event; a rule forwards it to the tooling account, where it starts this pipeline. The synth
step reads the levels (``workspaces-image-bakery patch-levels``, through the build
account's CDK lookup role) and passes them to the synth, so the level is part of the
recipe and the build stage's deploy builds the patched image (docs/patching.md).

    npx cdk synth --app "python examples/pipeline_app.py"

works offline: every account and Region is written out (placeholders below; replace them,
or pass ``-c templateWorkspaceId=ws-...``). Bootstrap each target account with
``cdk bootstrap --trust <tooling account>`` before the first deploy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from workspaces_image_bakery import (
    Compute,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    PatchSchedule,
    TemplateBuild,
    WorkspaceBundle,
)
from workspaces_image_bakery.distribution.distribution import (
    ImageShare,
    RegionalCopies,
    SharedImageCopy,
)

TOOLING = cdk.Environment(account="111111111111", region="us-east-1")
BUILD = cdk.Environment(account="222222222222", region="us-east-1")
REPOSITORY = "example-org/linux-desktops"
CONNECTION_ARN = (
    "arn:aws:codeconnections:us-east-1:111111111111:connection/00000000-0000-0000-0000-000000000000"
)
DEFAULT_TEMPLATE_WORKSPACE = "ws-0123456789"
DEFAULT_MANAGED_NODE = "mi-0123456789abcdef0"
BUILD_STACK = "ImageBuild-Bakery"
# What the patch check puts on the build account's default bus (docs/patching.md).
PATCH_EVENT = events.EventPattern(
    source=["workspaces-image-bakery"], detail_type=["Image Patch Level Raised"]
)
# The synth step: the patch levels from the build account (its CDK lookup role may read the
# stack and the evidence bucket), then the synth with them. A failed read fails the step.
LOOKUP_ROLE = (
    f"arn:aws:iam::{BUILD.account}:role/cdk-hnb659fds-lookup-role-{BUILD.account}-{BUILD.region}"
)
SYNTH_COMMANDS = [
    "pip install --require-hashes -r requirements-dev.lock",
    "pip install --no-deps --no-build-isolation -e .",
    "npm ci",
    f"LEVELS=$(workspaces-image-bakery --region {BUILD.region} patch-levels "
    f"--stack {BUILD_STACK} --role-arn {LOOKUP_ROLE} --missing-ok) && "
    'npx cdk synth --app "python examples/pipeline_app.py" '
    '-c workspaces-image-bakery:patch-levels="$LEVELS"',
]
TAG_DEFAULTS = {"Project": "linux-desktops", "CostCenter": "cc-1234"}
PERSONA_TAGS = {
    "Role": "software development",
    "Confidentiality": "internal",
    "Compliance": "none",
}


@dataclass(frozen=True)
class Target:
    """A later stage: its account, its home Region (where the image is shared and first
    copied) and its other Regions (copies of its own copy)."""

    name: str
    account: str
    region: str = "us-east-1"
    other_regions: Sequence[str] = field(default_factory=tuple)
    approval: bool = False


TARGETS = (
    Target("Test", "333333333333"),
    Target("Prod", "444444444444", other_regions=("eu-west-1", "ap-southeast-2"), approval=True),
)


class BuildStage(cdk.Stage):
    """The one place the image is built, then shared with every later stage's account."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        template_workspace_id: str,
        managed_node_id: str,
        share_with: Sequence[str],
    ) -> None:
        super().__init__(scope, id_)
        self.bakery = ImageBakeryStack(
            self,
            "Bakery",
            env=BUILD,
            tag_defaults={**TAG_DEFAULTS, "Stage": "dev"},
            description="Builds the WorkSpaces images once; later stages copy them",
        )
        self.developer = self.bakery.add_persona(
            "Developer",
            name="developer",
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id=template_workspace_id,
            baked_applications=["git 2.47", "python 3.12"],
            preparation=ImagePreparation(install_steps=["apt-get install -y git python3"]),
            build=TemplateBuild(managed_node_id=managed_node_id),
            patch_schedule=PatchSchedule(schedule="cron(0 2 ? * MON *)", time_zone="UTC"),
            compute=Compute(compute_type="PERFORMANCE"),
            tags=PERSONA_TAGS,
        )
        # The patch check's event goes on to the tooling account, which starts the pipeline.
        events.Rule(
            self.bakery,
            "PatchLevelRaised",
            event_pattern=PATCH_EVENT,
            targets=[
                targets.EventBus(
                    events.EventBus.from_event_bus_arn(
                        self.bakery,
                        "ToolingBus",
                        f"arn:aws:events:{TOOLING.region}:{TOOLING.account}:event-bus/default",
                    )
                )
            ],
        )
        ImageShare(
            self.bakery, "ShareDeveloper", image=self.developer.image, account_ids=share_with
        )

    @property
    def image_name(self) -> str:
        """The image's name, known at synth: the later stages find the shared image by it."""
        return self.developer.image.image_name


class PromotionStage(cdk.Stage):
    """A later stage: the shared image copied into this account, a bundle on the copy, and
    copies with bundles in the stage's other Regions. No image is built here."""

    def __init__(self, scope: Construct, id_: str, *, target: Target, image_name: str) -> None:
        super().__init__(scope, id_)
        stage = target.name.lower()
        stack = cdk.Stack(
            self,
            "Desktops",
            env=cdk.Environment(account=target.account, region=target.region),
            description=f"WorkSpaces images and bundles promoted to {stage}",
        )
        tags = {**TAG_DEFAULTS, **PERSONA_TAGS, "Stage": stage}
        self.image = SharedImageCopy(
            stack,
            "DeveloperImage",
            source_account_id=BUILD.account or "",
            source_region=BUILD.region,
            source_image_name=image_name,
            tags=tags,
        )
        description = "developer persona bundle (fully-baked image)"
        self.bundle = WorkspaceBundle(
            stack,
            "DeveloperBundle",
            base_name=f"developer-{stage}",
            description=description,
            image=self.image,
            compute_type="PERFORMANCE",
            tags=tags,
        )
        self.regions = RegionalCopies(
            stack,
            "DeveloperRegions",
            image=self.image,
            regions=target.other_regions,
            bundle_base_name=f"developer-{stage}",
            bundle_description=description,
            compute_type="PERFORMANCE",
            tags=tags,
        )
        self.stack = stack


class PipelineStack(cdk.Stack):
    """The pipeline: synth, the build stage, then each later stage in order."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        template_workspace_id: str,
        managed_node_id: str,
        env: cdk.Environment,
    ) -> None:
        super().__init__(scope, id_, env=env)
        pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            cross_account_keys=True,
            synth=pipelines.ShellStep(
                "Synth",
                input=pipelines.CodePipelineSource.connection(
                    REPOSITORY, "main", connection_arn=CONNECTION_ARN
                ),
                commands=SYNTH_COMMANDS,
            ),
            synth_code_build_defaults=pipelines.CodeBuildOptions(
                role_policy=[
                    iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[LOOKUP_ROLE])
                ]
            ),
        )
        self.build_stage = BuildStage(
            self,
            "ImageBuild",
            template_workspace_id=template_workspace_id,
            managed_node_id=managed_node_id,
            share_with=[t.account for t in TARGETS],
        )
        pipeline.add_stage(self.build_stage)
        self.promotions: list[PromotionStage] = []
        for target in TARGETS:
            promotion = PromotionStage(
                self, target.name, target=target, image_name=self.build_stage.image_name
            )
            pre = (
                [pipelines.ManualApprovalStep(f"PromoteTo{target.name}")] if target.approval else []
            )
            pipeline.add_stage(promotion, pre=pre)
            self.promotions.append(promotion)
        pipeline.build_pipeline()
        # A raised patch level (forwarded by the build account) starts the pipeline.
        events.CfnEventBusPolicy(
            self,
            "BuildAccountMayForward",
            statement_id="workspaces-image-bakery-patch-levels",
            action="events:PutEvents",
            principal=BUILD.account,
        )
        events.Rule(
            self,
            "PatchLevelRaised",
            event_pattern=events.EventPattern(
                source=PATCH_EVENT.source,
                detail_type=PATCH_EVENT.detail_type,
                account=[BUILD.account or ""],
            ),
            targets=[targets.CodePipeline(pipeline.pipeline)],
        )


def build(app: cdk.App) -> PipelineStack:
    """Declare the pipeline in `app` (the test calls this too)."""
    template = app.node.try_get_context("templateWorkspaceId") or DEFAULT_TEMPLATE_WORKSPACE
    node = app.node.try_get_context("templateManagedNode") or DEFAULT_MANAGED_NODE
    return PipelineStack(
        app,
        "WorkSpacesImagePipeline",
        env=TOOLING,
        template_workspace_id=str(template),
        managed_node_id=str(node),
    )


if __name__ == "__main__":
    pipeline_app = cdk.App()
    build(pipeline_app)
    pipeline_app.synth()
