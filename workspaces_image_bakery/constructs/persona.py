"""A persona: a group of users with the same application, access and compute needs.

Each persona gets one image (built from its template WorkSpace when its recipe changes)
and one custom bundle bound to it, tagged by the tagging policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any, ClassVar
from weakref import WeakSet

import jsii
from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from constructs import Construct, IValidation

from ..checklist import MINIMUM_CONTEXT, PersonaFacts, Scorecard
from ..preparation import ImagePreparation, render_script
from ..runtime_assets import contract
from ..tag_rules import is_tag_mapping, tag_strings
from ..validation import (
    Problems,
    check_no_secrets,
    check_removal_policy,
    check_strings,
    context_of,
    register_name,
    register_template,
    stack_of,
)
from .bundle import WorkspaceBundle
from .compute import check_compute, smallest_volumes
from .distribution import ImageShare, RegionalCopies, check_account, check_region
from .image import (
    DEFAULT_BUILD_TIMEOUT,
    WorkspaceImage,
    check_build_timeout,
    check_template_workspace_id,
)
from .release import ReleasedImage, check_version, plan_release
from .rollout import RolloutSchedule
from .run_command import RunCommandPreparation, check_managed_node_id
from .tagging import DERIVED_TAG_PRIORITY, TagCheck, pin_tag
from .tagging_policy import COMPLIANCE, DERIVED_TAGS, TaggingPolicy

DEFAULT_RETAINED_IMAGES = contract.DEFAULT_RETAINED_IMAGES
REQUIRE_AUTOMATED_CONTEXT = "workspaces-image-bakery:require-automated-preparation"
PERSONA_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,31}"
# Entries end up in the Software tag: keep to characters every AWS tag value accepts.
APPLICATION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9 ._:/=+@-]{0,63}"
APPLICATION_TEXT = "1-64 of letters, digits, spaces and . _ : / = + @ -"
# Licence details live outside the image: an SSM parameter or a Secrets Manager secret.
LICENSE_REFERENCE = re.compile(
    r"^(/[A-Za-z0-9_.\-/]{1,1010}"
    r"|arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9_.\-/]{1,1010}"
    r"|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512})$"
)
# A fully baked image with more applications than this deserves a second look.
LONG_APPLICATION_LIST = 10


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
        bundle and the Name tag. Unique in the app. Not a token (names are made at synth).
    :param design: FULLY_BAKED, THIN or ZERO.
    :param image_version: the image version (Version tag), 1-20 of ``0-9A-Za-z._-``. Not a
        token.
    :param template_workspace_id: the prepared, unencrypted WorkSpace to snapshot; may be
        a deploy-time token (e.g. a CfnParameter).
    :param tagging_policy: the policy that derives and checks the tags.
    :param baked_applications: installed in the image (Software tag). A change rebuilds the
        image. Default none. Each 1-64 of ``A-Za-z0-9 ._:/=+@-``.
    :param launch_applications: delivered at launch by the config-management agent; not in
        the image, so a change does not rebuild it. Default none.
    :param config_management_agent: the agent baked in to deliver launch applications
        (e.g. "puppet-agent 8"); required for THIN and ZERO. Default none.
    :param license_references: application -> where its licence lives: an SSM parameter
        name or ARN, or a Secrets Manager secret ARN; never the licence itself. Default none.
    :param preparation: how the template WorkSpace is prepared (part of the recipe; the
        script is written next to the templates). Default none.
    :param managed_node_id: the template WorkSpace's Systems Manager managed node (``mi-``
        + 17 characters, from its hybrid activation). With it, the build runs the
        preparation on the template through Run Command, reboots it and checks its recipe
        marker before taking the image. Default none: the template is prepared by hand and
        the review and checklist say so; the context value
        ``workspaces-image-bakery:require-automated-preparation=true`` makes that an error.
        A template prepared in the build serves one persona only.
    :param compute_type: default STANDARD.
    :param root_volume_gib: default the smallest valid size (80 for STANDARD).
    :param user_volume_gib: default the smallest valid size (10 for STANDARD).
    :param tags: the persona's own tags (Role, System, Confidentiality, Compliance, ...),
        over the policy's defaults. Default none. A value may be a deploy-time token.
    :param build_timeout: how long an image build may take. Default 6 hours, at most 12.
    :param removal_policy: for replaced or removed images and bundles. Default DESTROY.
    :param retained_images: how many of the persona's images are kept for a way back (the
        one in use counts), 1-20. Default 3. Older ones are deleted once no bundle uses
        them and they are not shared; 1 deletes each replaced image (README: Retention and
        rollback).
    :param released_version: the image version the persona's bundle serves. Default: the
        ``image_version`` this deploy builds. An earlier, retained version pins the bundle
        to it: the deploy moves the bundle back in place, in seconds, with no build (a
        version that is not retained fails the deploy, naming those that are). Needs
        ``retained_images`` of 2 or more. Not a token.
    :param candidate_bundle: release through a candidate bundle (``<name>-candidate``):
        each new image goes to it first, for testers, and the persona's bundle moves to it
        only when ``released_version`` names its version (promotion, reviewed like any
        change). Default False. Needs ``released_version``.
    :param validation_commands: checks that the image is fit for release, run as shell
        commands on the template after its preparation, reboot and marker check, right
        before the image is taken (the image is a snapshot of what they saw). The first that
        exits non-zero fails the build with its output in the stack event: no image, so
        neither the candidate nor the persona's bundle moves. Needs ``managed_node_id``.
        Each 1-1000 characters, scanned for secrets. Not part of the recipe: a change
        applies to the next build. Default none.
    :param regions: other Regions of this account that get a copy of each new image and a
        bundle on it (``CopyWorkspaceImage`` in each; README: Regions and accounts). Default
        none. The regional bundles follow the build, so they cannot be combined with a
        pinned ``released_version`` or a candidate bundle.
    :param share_with_accounts: account ids (12 digits) allowed to copy the image, in this
        Region (``UpdateWorkspaceImagePermission``); exactly these, the rest are unshared.
        Default none. A shared image is never pruned.
    :param rollout: rebuild the persona's existing WorkSpaces onto each new image in its own
        maintenance window (README: Rolling out to existing WorkSpaces). A rebuild resets
        the user volume to its last snapshot. Default None: existing WorkSpaces are never
        rebuilt.

    Every free-text input (applications, agent, tags, licence keys, preparation) is scanned
    for secrets; a flagged value never appears in an error message.
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
        license_references: Mapping[str, str] | None = None,
        preparation: ImagePreparation | None = None,
        managed_node_id: str | None = None,
        compute_type: str = "STANDARD",
        root_volume_gib: int | None = None,
        user_volume_gib: int | None = None,
        tags: Mapping[str, str] | None = None,
        build_timeout: Duration = DEFAULT_BUILD_TIMEOUT,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        retained_images: int = DEFAULT_RETAINED_IMAGES,
        released_version: str | None = None,
        candidate_bundle: bool = False,
        validation_commands: Sequence[str] = (),
        regions: Sequence[str] = (),
        share_with_accounts: Sequence[str] = (),
        rollout: RolloutSchedule | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.stack = stack_of(self, scope)
        problems = Problems.of(self)
        problems.text(
            "name",
            name,
            max_len=32,
            pattern=PERSONA_NAME_PATTERN,
            pattern_text="lowercase letters, digits and -, starting with a letter or digit",
            tokens=False,
        )
        register_name(problems, self.stack, "persona", "name", name)
        check_version(problems, "image_version", image_version)
        self.release = plan_release(
            problems,
            image_version=image_version,
            released_version=released_version,
            retained_images=retained_images,
            candidate_bundle=candidate_bundle,
        )
        check_template_workspace_id(problems, template_workspace_id)
        if not isinstance(tagging_policy, TaggingPolicy):
            problems.add("tagging_policy", tagging_policy, "a TaggingPolicy")
        if not isinstance(design, ImageDesign):
            problems.add("design", design, "ImageDesign.FULLY_BAKED, THIN or ZERO")
        baked = check_strings(problems, "baked_applications", baked_applications)
        launch = check_strings(problems, "launch_applications", launch_applications)
        for field, apps in (("baked_applications", baked), ("launch_applications", launch)):
            for index, app in enumerate(apps):
                problems.text(
                    f"{field}[{index}]",
                    app,
                    max_len=64,
                    pattern=APPLICATION_PATTERN,
                    pattern_text=APPLICATION_TEXT,
                )
        for app in sorted(set(baked) & set(launch)):
            problems.add("launch_applications", app, "an application not also baked into the image")
        agent = config_management_agent
        if agent is not None:
            problems.text(
                "config_management_agent",
                agent,
                max_len=64,
                pattern=APPLICATION_PATTERN,
                pattern_text=APPLICATION_TEXT,
            )
            agent = agent if isinstance(agent, str) else None
        if design is ImageDesign.FULLY_BAKED and launch:
            problems.add(
                "launch_applications",
                launch,
                "none for a fully baked image: bake them in, or choose THIN",
            )
        if design is ImageDesign.ZERO and baked:
            problems.add(
                "baked_applications",
                baked,
                "none for a zero image: deliver them at launch, or choose THIN",
            )
        if design in (ImageDesign.THIN, ImageDesign.ZERO) and not agent:
            problems.add(
                "config_management_agent",
                config_management_agent,
                f"an agent that delivers the launch applications of a {design.value} image",
            )
        licenses = self._check_licenses(problems, license_references, [*baked, *launch])
        check_compute(problems, compute_type, root_volume_gib, user_volume_gib)
        if preparation is not None and not isinstance(preparation, ImagePreparation):
            problems.add("preparation", preparation, "an ImagePreparation")
            preparation = None
        malformed = preparation.problems() if preparation is not None else []
        for field, value, allowed in malformed:
            # Only the type: a malformed step may still hold a secret.
            problems.add(field, f"<{type(value).__name__}>", allowed)
        if malformed:
            preparation = None
        if preparation is not None and design in (ImageDesign.THIN, ImageDesign.ZERO):
            # The image's launch applications need the agent that delivers them.
            for field, value, allowed in preparation.launch_delivery_problems(design.value):
                problems.add(field, value, allowed)
        self._check_preparation_channel(
            problems, preparation, managed_node_id, template_workspace_id
        )
        checks = check_strings(problems, "validation_commands", validation_commands)
        for index, command in enumerate(checks):
            problems.text(f"validation_commands[{index}]", command, max_len=1000, tokens=False)
        if checks and managed_node_id is None:
            problems.add(
                "validation_commands",
                f"<{len(checks)} command(s)>",
                "checks with a managed node to run them on: give managed_node_id (README: "
                "Preparing the template in the build)",
            )
        check_removal_policy(problems, removal_policy)
        check_build_timeout(problems, build_timeout)
        if tags is not None and not is_tag_mapping(tags):
            problems.add(
                "tags", f"<{type(tags).__name__}>", "a mapping of string keys to string values"
            )
            tags = None
        # The Software tag: what is baked in, and every agent the preparation installs (the
        # named config-management agent when the preparation does not install it by name).
        installed = preparation.installed_software() if preparation is not None else []
        first_word = agent.split()[:1] if agent else []
        named = [agent] if agent and not set(first_word) & set(installed) else []
        software = list(dict.fromkeys([*baked, *named, *installed]))
        self.tags: dict[str, str] = {}
        if isinstance(tagging_policy, TaggingPolicy):
            self.tags = tagging_policy.tags_for(
                problems,
                name=name if isinstance(name, str) else "",
                version=image_version if isinstance(image_version, str) else "",
                software=software,
                tags=tags or {},
            )
        scanned: dict[str, str] = tag_strings("tags", tags or {})
        scanned.update({f"license_references[{app}]": app for app in licenses})
        scanned.update({f"baked_applications[{i}]": a for i, a in enumerate(baked)})
        scanned.update({f"launch_applications[{i}]": a for i, a in enumerate(launch)})
        if agent:
            scanned["config_management_agent"] = agent
        scanned.update({f"validation_commands[{i}]": v for i, v in enumerate(checks)})
        if preparation is not None:
            scanned.update(preparation.user_strings())
        regions = _check_list(problems, "regions", regions, check_region, "Region names")
        share_with_accounts = _check_list(
            problems, "share_with_accounts", share_with_accounts, check_account, "account ids"
        )
        if rollout is not None and not isinstance(rollout, RolloutSchedule):
            problems.add("rollout", rollout, "a RolloutSchedule, or None (no rollout)")
        if regions and not (self.release.serves_build and not self.release.candidate_bundle):
            problems.add(
                "regions",
                regions,
                "no other Regions while the bundle is pinned or released through a candidate "
                "bundle: regional bundles follow the build (README: Regions and accounts)",
            )
        check_no_secrets(problems, scanned)
        problems.raise_if_any()

        self.name = name
        self.design = design
        self.image_version = image_version
        self.baked_applications = tuple(baked)
        self.launch_applications = tuple(launch)
        self.config_management_agent = agent
        self.license_references = licenses
        self.preparation = preparation
        self.managed_node_id = managed_node_id
        description = f"{name} {design.value} image version {image_version}"
        recipe: dict[str, Any] = {
            "persona": name,
            "design": design.value,
            "version": image_version,
            "baked_applications": list(baked),
            "config_management_agent": agent,
        }
        if preparation is not None:
            recipe["preparation"] = preparation.recipe()
        self.image = WorkspaceImage(
            self,
            "Image",
            base_name=f"{name}-{image_version}",
            description=description,
            template_workspace_id=template_workspace_id,
            persona=name,
            recipe=recipe,
            tags=self.tags,
            build_timeout=build_timeout,
            removal_policy=removal_policy,
            prepared_by=self._run_command(preparation, managed_node_id, software, checks),
            version=image_version,
            retained_images=self.release.retained_images,
        )
        shape: dict[str, Any] = {
            "compute_type": compute_type,
            "root_volume_gib": root_volume_gib,
            "user_volume_gib": user_volume_gib,
            "tags": self.tags,
            "removal_policy": removal_policy,
        }
        served: WorkspaceImage | ReleasedImage = (
            self.image
            if self.release.serves_build
            else ReleasedImage(
                self, "Released", persona=name, version=self.release.released_version
            )
        )
        self.bundle = WorkspaceBundle(
            self,
            "Bundle",
            base_name=name,
            description=f"{name} persona bundle ({design.value} image)",
            image=served,
            **shape,
        )
        if not self.release.serves_build:
            # Deleted before the image on a stack delete, as a bundle following it would be.
            self.bundle.resource.node.add_dependency(self.image.resource)
        self.candidate_bundle: WorkspaceBundle | None = None
        if self.release.candidate_bundle:
            self.candidate_bundle = WorkspaceBundle(
                self,
                "CandidateBundle",
                base_name=f"{name}-candidate",
                description=f"{name} persona candidate bundle ({design.value} image)",
                image=self.image,
                **shape,
            )
        self.regional_copies: RegionalCopies | None = (
            RegionalCopies(
                self,
                "Regions",
                image=self.image,
                regions=regions,
                bundle_base_name=name,
                bundle_description=f"{name} persona bundle ({design.value} image)",
                **shape,
            )
            if regions
            else None
        )
        self.image_share: ImageShare | None = (
            ImageShare(self, "Share", image=self.image, account_ids=share_with_accounts)
            if share_with_accounts
            else None
        )
        self.rollout = None if rollout is None else rollout.apply(self, "Rollout", self.bundle)
        # Derived tags: above a Tags.of tag given without a priority (README: Tags).
        copies = self.regional_copies.copies.values() if self.regional_copies else ()
        for resource in [*self._resources(), *copies]:
            manager = resource.cdk_tag_manager
            for key in DERIVED_TAGS:
                pin_tag(manager, key, self.tags[key], DERIVED_TAG_PRIORITY)
            TagCheck.register(self.stack, resource, tagging_policy)
        self._warn(compute_type)
        ChecklistGate.ensure(self.stack)
        # The review module reads personas, so it is imported here, not at the top.
        from ..review import AutoReview  # noqa: PLC0415

        AutoReview.register(self)

    def _resources(self) -> list[WorkspaceImage | WorkspaceBundle]:
        """The image and the bundles (the candidate too, when there is one)."""
        bundles = (
            [self.bundle] if self.candidate_bundle is None else [self.bundle, self.candidate_bundle]
        )
        return [self.image, *bundles]

    def apply_removal_policy(self, policy: RemovalPolicy) -> None:
        """What happens to the persona's replaced or removed image and bundles: DESTROY or
        RETAIN."""
        for resource in self._resources():
            resource.apply_removal_policy(policy)
        if self.regional_copies is not None:
            self.regional_copies.apply_removal_policy(policy)

    def _check_preparation_channel(
        self,
        problems: Problems,
        preparation: ImagePreparation | None,
        managed_node_id: str | None,
        template_workspace_id: str,
    ) -> None:
        """The managed node needs a preparation to run; a team may require one for all."""
        if managed_node_id is not None:
            check_managed_node_id(problems, managed_node_id)
            if preparation is None:
                problems.add(
                    "managed_node_id",
                    managed_node_id,
                    "a managed node with a preparation to run: give preparation=ImagePreparation()",
                )
        elif _truthy(context_of(self.stack, REQUIRE_AUTOMATED_CONTEXT)):
            problems.add(
                "managed_node_id",
                None,
                "a managed node: this app requires every template to be prepared in the build "
                f"({REQUIRE_AUTOMATED_CONTEXT}); register the template WorkSpace (README: "
                "Preparing the template in the build)",
            )
        register_template(
            problems,
            self.stack,
            template_workspace_id,
            prepared_in_build=managed_node_id is not None,
        )

    def _run_command(
        self,
        preparation: ImagePreparation | None,
        managed_node_id: str | None,
        software: Sequence[str],
        validation_commands: Sequence[str] = (),
    ) -> RunCommandPreparation | None:
        if preparation is None or managed_node_id is None:
            return None
        name, version = self.name, self.image_version

        def script(fingerprint: str) -> str:
            return render_script(
                preparation,
                persona=name,
                version=version,
                fingerprint=fingerprint,
                software=software,
            )

        return RunCommandPreparation(
            managed_node_id=managed_node_id,
            script=script,
            validation_commands=tuple(validation_commands),
        )

    @property
    def prepared_in_build(self) -> bool:
        """True when the build runs the preparation on the template (Run Command)."""
        return self.image.prepared_by is not None

    def facts(self) -> PersonaFacts:
        """The persona as plain data, for the checklist and the review."""
        return PersonaFacts(
            name=self.name,
            design=self.design.value,
            image_version=self.image_version,
            image_name=self.image.image_name,
            bundle_name=self.bundle.bundle_name,
            template_workspace_id=self.image.template_workspace_id,
            baked_applications=self.baked_applications,
            launch_applications=self.launch_applications,
            config_management_agent=self.config_management_agent,
            license_references=dict(self.license_references),
            preparation=self.preparation,
            preparation_channel="run-command" if self.prepared_in_build else "by-hand",
            managed_node_id=self.managed_node_id,
            preparation_script=self.image.preparation_script,
            compute_type=self.bundle.compute_type,
            root_volume_gib=self.bundle.root_volume_gib,
            user_volume_gib=self.bundle.user_volume_gib,
            smallest_volumes=smallest_volumes(self.bundle.compute_type),
            tags=self.image.tags,
            release=self.release.describe(),
            candidate_bundle_name=(
                self.candidate_bundle.bundle_name if self.candidate_bundle is not None else None
            ),
        )

    def _check_licenses(
        self, problems: Problems, references: Mapping[str, str] | None, apps: list[str]
    ) -> dict[str, str]:
        if references is None:
            return {}
        if not isinstance(references, Mapping):
            problems.add("license_references", references, "a mapping of application to reference")
            return {}
        for app, reference in references.items():
            if app not in apps:
                problems.add(
                    f"license_references[{app}]", app, "an application the persona declares"
                )
            if not isinstance(reference, str) or not LICENSE_REFERENCE.match(reference):
                problems.add(
                    f"license_references[{app}]",
                    "<redacted>" if isinstance(reference, str) else reference,
                    "an SSM parameter name (/path) or ARN, or a Secrets Manager secret ARN; "
                    "never the licence itself",
                )
        return dict(references)

    def _warn(self, compute_type: str) -> None:
        """Lesser problems: CDK warnings, shown by cdk synth and in the review."""
        notes = Annotations.of(self)
        smallest = smallest_volumes(compute_type)
        volumes = (self.bundle.root_volume_gib, self.bundle.user_volume_gib)
        if volumes != smallest:
            notes.add_warning_v2(
                "workspaces-image-bakery:volumes",
                f"volumes {volumes[0]}/{volumes[1]} GB are above the smallest valid pair "
                f"{smallest[0]}/{smallest[1]} GB for {compute_type}; the whitepaper advises the "
                "smallest (users can grow them later)",
            )
        if (
            self.design is ImageDesign.FULLY_BAKED
            and len(self.baked_applications) > LONG_APPLICATION_LIST
        ):
            notes.add_warning_v2(
                "workspaces-image-bakery:long-application-list",
                f"a fully baked image with {len(self.baked_applications)} applications; consider "
                "a thin image that delivers the less common ones at launch",
            )
        if not self.tags.get(COMPLIANCE):
            notes.add_warning_v2(
                "workspaces-image-bakery:no-compliance-tag",
                "no Compliance tag: say which compliance requirements the image is built for",
            )


GATE_ID = "ImageDesignChecklist"


@jsii.implements(IValidation)
class ChecklistGate:
    """Fails synth when a persona of the stack scores below the team's checklist minimum.

    The minimum is the ``workspaces-image-bakery:checklist-minimum`` context value (1-5);
    without it the checklist only reports.
    """

    _stacks: ClassVar[WeakSet[Stack]] = WeakSet()

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    @classmethod
    def ensure(cls, stack: Stack) -> None:
        """Add the gate to a persona's stack once (a marker construct shows it in the tree)."""
        if stack in cls._stacks:
            return
        cls._stacks.add(stack)
        if stack.node.try_find_child(GATE_ID) is None:
            Construct(stack, GATE_ID)
            stack.node.add_validation(cls(stack))

    def validate(self) -> list[str]:
        raw = self._stack.node.try_get_context(MINIMUM_CONTEXT)
        if raw is None:
            return []
        try:
            minimum = float(raw)
        except (TypeError, ValueError):
            return [f"{MINIMUM_CONTEXT}={raw!r} is not valid; allowed: a number from 1 to 5"]
        personas = [c.facts() for c in self._stack.node.find_all() if isinstance(c, Persona)]
        return Scorecard.of(personas).below(minimum)


def _check_list(
    problems: Problems,
    field_name: str,
    values: Any,
    check: Callable[[Problems, str, Any], bool],
    what: str,
) -> list[str]:
    """A list of strings, each checked; the valid ones (none when the list is not a list)."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        problems.add(field_name, values, f"a list of {what}")
        return []
    return [v for i, v in enumerate(values) if check(problems, f"{field_name}[{i}]", v)]


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")
