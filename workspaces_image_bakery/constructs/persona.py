"""A persona: a group of users with the same application, access and compute needs.

Each persona gets one image (built from its template WorkSpace when its recipe changes)
and one custom bundle bound to it, tagged by the tagging policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

from aws_cdk import Duration, RemovalPolicy
from constructs import Construct

from ..validation import Problems
from .bundle import WorkspaceBundle
from .image import DEFAULT_BUILD_TIMEOUT, WorkspaceImage
from .tagging_policy import TaggingPolicy

PERSONA_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,31}"
VERSION_PATTERN = r"[0-9A-Za-z][0-9A-Za-z._-]{0,19}"
# Entries end up in the Software tag: keep to characters every AWS tag value accepts.
APPLICATION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9 ._:/=+@-]{0,63}"


class ImageDesign(Enum):
    """The whitepaper's image design options."""

    FULLY_BAKED = "fully-baked"
    """Every application is in the image; nothing is delivered at launch."""
    THIN = "thin"
    """Some applications (and the config-management agent) are baked; the rest arrive at launch."""
    ZERO = "zero"
    """Only the OS and a config-management agent; every application arrives at launch."""


class Persona(Construct):
    """One persona's image and custom bundle.

    :param name: lowercase letters, digits and ``-``, 1-32 characters; names the image and
        bundle and the Name tag.
    :param design: FULLY_BAKED, THIN or ZERO.
    :param image_version: the image version (Version tag), 1-20 of ``0-9A-Za-z._-``.
    :param template_workspace_id: the prepared, unencrypted WorkSpace to snapshot.
    :param tagging_policy: the policy that derives and checks the tags.
    :param baked_applications: installed in the image (Software tag). A change rebuilds the
        image. Default none. Each 1-64 of ``A-Za-z0-9 ._:/=+@-``.
    :param launch_applications: delivered at launch by the config-management agent; not in
        the image, so a change does not rebuild it. Default none.
    :param config_management_agent: the agent baked in to deliver launch applications
        (e.g. "puppet-agent 8"); required for THIN and ZERO. Default none.
    :param compute_type: default STANDARD.
    :param root_volume_gib: default the smallest valid size (80 for STANDARD).
    :param user_volume_gib: default the smallest valid size (10 for STANDARD).
    :param tags: the persona's own tags (Role, System, Confidentiality, Compliance, ...),
        over the policy's defaults. Default none.
    :param build_timeout: how long an image build may take. Default 6 hours, at most 12.
    :param removal_policy: for replaced or removed images and bundles. Default DESTROY.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        design: ImageDesign,
        image_version: str,
        template_workspace_id: str,
        tagging_policy: TaggingPolicy,
        baked_applications: Sequence[str] = (),
        launch_applications: Sequence[str] = (),
        config_management_agent: str | None = None,
        compute_type: str = "STANDARD",
        root_volume_gib: int | None = None,
        user_volume_gib: int | None = None,
        tags: Mapping[str, str] | None = None,
        build_timeout: Duration = DEFAULT_BUILD_TIMEOUT,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        problems = Problems(self.node.path)
        problems.text(
            "name",
            name,
            max_len=32,
            pattern=PERSONA_NAME_PATTERN,
            pattern_text="lowercase letters, digits and -, starting with a letter or digit",
        )
        problems.text(
            "image_version",
            image_version,
            max_len=20,
            pattern=VERSION_PATTERN,
            pattern_text="letters, digits and . _ -",
        )
        if not isinstance(design, ImageDesign):
            problems.add("design", design, "ImageDesign.FULLY_BAKED, THIN or ZERO")
        for field, apps in (
            ("baked_applications", baked_applications),
            ("launch_applications", launch_applications),
        ):
            for index, app in enumerate(apps):
                problems.text(
                    f"{field}[{index}]",
                    app,
                    max_len=64,
                    pattern=APPLICATION_PATTERN,
                    pattern_text="1-64 of letters, digits, spaces and . _ : / = + @ -",
                )
        if config_management_agent is not None:
            problems.text(
                "config_management_agent",
                config_management_agent,
                max_len=64,
                pattern=APPLICATION_PATTERN,
                pattern_text="1-64 of letters, digits, spaces and . _ : / = + @ -",
            )
        if design is ImageDesign.FULLY_BAKED and launch_applications:
            problems.add(
                "launch_applications",
                list(launch_applications),
                "none for a fully baked image: bake them in, or choose THIN",
            )
        if design is ImageDesign.ZERO and baked_applications:
            problems.add(
                "baked_applications",
                list(baked_applications),
                "none for a zero image: deliver them at launch, or choose THIN",
            )
        if design in (ImageDesign.THIN, ImageDesign.ZERO) and not config_management_agent:
            problems.add(
                "config_management_agent",
                config_management_agent,
                f"an agent that delivers the launch applications of a {design.value} image",
            )
        software = [
            *baked_applications,
            *([config_management_agent] if config_management_agent else []),
        ]
        self.tags = tagging_policy.tags_for(
            problems, name=name, version=image_version, software=software, tags=tags or {}
        )
        problems.raise_if_any()

        self.name = name
        self.design = design
        self.image_version = image_version
        self.baked_applications = tuple(baked_applications)
        self.launch_applications = tuple(launch_applications)
        self.config_management_agent = config_management_agent
        description = f"{name} {design.value} image version {image_version}"
        self.image = WorkspaceImage(
            self,
            "Image",
            base_name=f"{name}-{image_version}",
            description=description,
            template_workspace_id=template_workspace_id,
            persona=name,
            recipe={
                "persona": name,
                "design": design.value,
                "version": image_version,
                "baked_applications": list(baked_applications),
                "config_management_agent": config_management_agent,
            },
            tags=self.tags,
            build_timeout=build_timeout,
            removal_policy=removal_policy,
        )
        self.bundle = WorkspaceBundle(
            self,
            "Bundle",
            base_name=name,
            description=f"{name} persona bundle ({design.value} image)",
            image=self.image,
            compute_type=compute_type,
            root_volume_gib=root_volume_gib,
            user_volume_gib=user_volume_gib,
            tags=self.tags,
            removal_policy=removal_policy,
        )
