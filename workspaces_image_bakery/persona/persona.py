"""A persona: a group of users with the same application, access and compute needs.

Each persona gets one image (built from its template WorkSpace when its recipe changes)
and one custom bundle bound to it, tagged by the tagging policy; when asked, a candidate
bundle, copies in other Regions, an image share and a rollout. The persona reads as props
-> a checked, plain :class:`PersonaSpec` (persona_spec.py) -> image -> bundles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast
from weakref import WeakSet

import jsii
from aws_cdk import Annotations, RemovalPolicy, Stack
from constructs import Construct, IValidation

from ..core.compute import Compute, smallest_volumes
from ..core.runtime_assets import contract, patching_contract
from ..core.stack_traces import QUIET_ATTRIBUTE, without_stack_traces
from ..core.tagging import DERIVED_TAG_PRIORITY, TagCheck, pin_tag
from ..core.tagging_policy import COMPLIANCE, DERIVED_TAGS, TaggingPolicy
from ..core.validation import Problems, stack_of
from ..distribution.config import Distribution
from ..distribution.distribution import ImageShare, RegionalCopies
from ..evidence.checklist import MINIMUM_CONTEXT, PersonaFacts, Scorecard
from ..gates.vulnerability_gate import VulnerabilityGate
from ..image_build.bundle import WorkspaceBundle
from ..image_build.config import TemplateBuild
from ..image_build.image import WorkspaceImage
from ..image_build.run_command import RunCommandPreparation
from ..patching.patch_schedule import PatchCadence, PatchSchedule
from ..preparation import ImagePreparation, render_script
from ..preparation.seal import render_seal_script
from ..release.config import Release
from ..release.release import ReleasedImage
from ..rollout.rollout import RolloutSchedule, WorkspaceRollout
from .persona_spec import (
    APPLICATION_PATTERN,
    APPLICATION_TEXT,
    LICENSE_REFERENCE,
    PERSONA_NAME_PATTERN,
    REQUIRE_AUTOMATED_CONTEXT,
    ImageDesign,
    PersonaSpec,
    check_persona,
)

if TYPE_CHECKING:
    from aws_cdk import CfnResource

__all__ = [
    "APPLICATION_PATTERN",
    "APPLICATION_TEXT",
    "LICENSE_REFERENCE",
    "PERSONA_NAME_PATTERN",
    "REQUIRE_AUTOMATED_CONTEXT",
    "ChecklistGate",
    "ImageDesign",
    "Persona",
]

# A fully baked image with more applications than this deserves a second look.
LONG_APPLICATION_LIST = 10


class Persona(Construct):
    """One persona's image and custom bundle.

    :param name: lowercase letters, digits and ``-``, 1-32 characters; names the image and
        bundle and the Name tag. Unique in the app. Not a token (names are made at synth).
    :param design: FULLY_BAKED, THIN or ZERO.
    :param image_version: the image version (Version tag), 1-20 of ``0-9A-Za-z._-``. Not a
        token.
    :param template_workspace_id: the prepared, unencrypted WorkSpace to snapshot
        (``ws-`` + 8-63 of ``0-9a-z``); may be a deploy-time token (e.g. a CfnParameter).
    :param tagging_policy: the policy that derives and checks the tags.
    :param baked_applications: installed in the image (Software tag). A change rebuilds the
        image. Default none. Each 1-64 of ``A-Za-z0-9 ._:/=+@-``; none for ZERO.
    :param launch_applications: delivered at launch by the config-management agent; not in
        the image, so a change does not rebuild it. Default none; none for FULLY_BAKED.
    :param config_management_agent: the agent baked in to deliver launch applications
        (e.g. "puppet-agent 8"); required for THIN and ZERO. Default none.
    :param license_references: application -> where its licence lives: an SSM parameter
        name or ARN, or a Secrets Manager secret ARN; never the licence itself. Default none.
    :param preparation: how the template WorkSpace is prepared (part of the recipe; the
        script is written next to the templates). Default none.
    :param tags: the persona's own tags (Role, System, Confidentiality, Compliance, ...),
        over the policy's defaults. Default none. A value may be a deploy-time token.
    :param compute: the bundles' compute type and volumes (:class:`Compute`). Default None:
        STANDARD with the smallest valid volumes (80/10).
    :param build: how the build treats the template (:class:`TemplateBuild`: its managed
        node, validation commands and timeout). Default None: prepared by hand, no
        validation commands, 6 hours.
    :param release: retention, a pinned version, a candidate bundle and the removal policy
        (:class:`Release`). Default None: keep 3 images, serve the version built, no
        candidate, DESTROY.
    :param distribution: other Regions and accounts that get the image
        (:class:`Distribution`). Default None: none.
    :param rollout: rebuild the persona's existing WorkSpaces onto each new image in its own
        maintenance window (docs/rollout.md). A rebuild resets the user volume to its last
        snapshot. Default None: existing WorkSpaces are never rebuilt.
    :param vulnerability_gate: a build that prepares its template scans the template's
        packages with Amazon Inspector before the image; with a gate, a finding at or above
        its severity (and not accepted until a later day) stops the build before
        ``CreateWorkspaceImage`` (docs/evidence.md). Default None: the stack's default
        (``ImageBakeryStack(vulnerability_gate=...)``), else findings are recorded, never
        gating.
    :param patch_schedule: check the template for pending security updates on a schedule
        (:class:`PatchSchedule`); when some are pending, the persona's patch level rises and
        the next pipeline run rebuilds its image through the normal deploy
        (docs/patching.md). Needs ``build.managed_node_id``. Default None: images are
        rebuilt only when the recipe or the rebuild token changes.

    Each option group is checked field by field; errors name ``release.retained_images``
    and so on. Every free-text input (applications, agent, tags, licence keys, preparation,
    validation commands) is scanned for secrets; a flagged value never appears in an error
    message.
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
        tags: Mapping[str, str] | None = None,
        compute: Compute | None = None,
        build: TemplateBuild | None = None,
        release: Release | None = None,
        distribution: Distribution | None = None,
        rollout: RolloutSchedule | None = None,
        vulnerability_gate: VulnerabilityGate | None = None,
        patch_schedule: PatchSchedule | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.stack = stack_of(self, scope)
        # Warnings without the jsii runtime's temporary path above them, in any stack (an
        # ImageBakeryStack has seen to it for everything under it: no round trips here).
        if not getattr(self.stack, QUIET_ATTRIBUTE, False):
            without_stack_traces(self)
        spec = check_persona(
            Problems.of(self),
            self.stack,
            name=name,
            design=design,
            image_version=image_version,
            template_workspace_id=template_workspace_id,
            tagging_policy=tagging_policy,
            baked_applications=baked_applications,
            launch_applications=launch_applications,
            config_management_agent=config_management_agent,
            license_references=license_references,
            preparation=preparation,
            tags=tags,
            compute=compute,
            build=build,
            release=release,
            distribution=distribution,
            rollout=rollout,
            vulnerability_gate=vulnerability_gate,
            patch_schedule=patch_schedule,
        )
        self.spec = spec
        self.name = spec.name
        self.design = spec.design
        self.image_version = spec.image_version
        self.baked_applications = spec.baked_applications
        self.launch_applications = spec.launch_applications
        self.config_management_agent = spec.config_management_agent
        self.license_references = spec.license_references
        self.preparation = spec.preparation
        self.managed_node_id = spec.build.managed_node_id
        self.tags = dict(spec.tags)
        self.release = spec.release
        self.image = self._image(spec)
        self.bundle, self.candidate_bundle = self._bundles(spec)
        self.regional_copies, self.image_share, self.rollout = self._distribution(spec)
        self.patch_cadence = self._patch_cadence(spec)
        self._tag(spec)
        self._warn(spec.compute.compute_type)
        ChecklistGate.ensure(self.stack)
        # The review module reads personas, so it is imported here, not at the top.
        from ..review.review import AutoReview  # noqa: PLC0415

        AutoReview.register(self)

    def _image(self, spec: PersonaSpec) -> WorkspaceImage:
        return WorkspaceImage(
            self,
            "Image",
            base_name=f"{spec.name}-{spec.image_version}",
            description=spec.image_description,
            template_workspace_id=spec.template_workspace_id,
            persona=spec.name,
            recipe=spec.recipe(),
            tags=spec.tags,
            build_timeout=spec.build.timeout,
            removal_policy=spec.removal_policy,
            prepared_by=_run_command(spec),
            version=spec.image_version,
            retained_images=spec.release.retained_images,
            expectations=_expectations(spec),
        )

    def _shape(self, spec: PersonaSpec) -> dict[str, Any]:
        """What every bundle of the persona has in common."""
        return {
            "compute_type": spec.compute.compute_type,
            "root_volume_gib": spec.compute.root_volume_gib,
            "user_volume_gib": spec.compute.user_volume_gib,
            "tags": spec.tags,
            "removal_policy": spec.removal_policy,
        }

    def _bundles(self, spec: PersonaSpec) -> tuple[WorkspaceBundle, WorkspaceBundle | None]:
        """The persona's bundle (on the build, or on the released version) and, when asked,
        the candidate bundle that follows each build."""
        served: WorkspaceImage | ReleasedImage = (
            self.image
            if spec.release.serves_build
            else ReleasedImage(
                self, "Released", persona=spec.name, version=spec.release.released_version
            )
        )
        bundle = WorkspaceBundle(
            self,
            "Bundle",
            base_name=spec.name,
            description=spec.bundle_description,
            image=served,
            **self._shape(spec),
        )
        if not spec.release.serves_build:
            # Deleted before the image on a stack delete, as a bundle following it would be;
            # and moved only after the image resource answered, which refuses a deploy that
            # both moves the pin and builds (a pin never waits for a build: image_resource.py).
            bundle.resource.node.add_dependency(self.image.resource)
            pinned = cast("CfnResource", self.image.resource.node.default_child)
            pinned.add_property_override(contract.RELEASED_VERSION, spec.release.released_version)
        if not spec.release.candidate_bundle:
            return bundle, None
        candidate = WorkspaceBundle(
            self,
            "CandidateBundle",
            base_name=spec.candidate_bundle_base_name,
            description=spec.candidate_bundle_description,
            image=self.image,
            **self._shape(spec),
        )
        return bundle, candidate

    def _distribution(
        self, spec: PersonaSpec
    ) -> tuple[RegionalCopies | None, ImageShare | None, WorkspaceRollout | None]:
        """Copies in other Regions, the image share and the rollout, each when asked for."""
        copies = (
            RegionalCopies(
                self,
                "Regions",
                image=self.image,
                regions=spec.distribution.regions,
                bundle_base_name=spec.name,
                bundle_description=spec.bundle_description,
                **self._shape(spec),
            )
            if spec.distribution.regions
            else None
        )
        share = (
            ImageShare(self, "Share", image=self.image, account_ids=spec.distribution.accounts)
            if spec.distribution.accounts
            else None
        )
        rollout = None if spec.rollout is None else spec.rollout.apply(self, "Rollout", self.bundle)
        return copies, share, rollout

    def _patch_cadence(self, spec: PersonaSpec) -> PatchCadence | None:
        """The persona's patch schedule and its place in the stack's patch check."""
        if spec.patch_schedule is None or spec.build.managed_node_id is None:
            return None
        return PatchCadence(
            self,
            "Patching",
            persona=spec.name,
            managed_node_id=spec.build.managed_node_id,
            schedule=spec.patch_schedule,
        )

    def _tag(self, spec: PersonaSpec) -> None:
        """Derived tags above a ``Tags.of`` tag given without a priority (docs/tagging.md), and
        every tagged resource checked by the policy at synth."""
        copies = self.regional_copies.copies.values() if self.regional_copies else ()
        for resource in [*self._resources(), *copies]:
            manager = resource.cdk_tag_manager
            for key in DERIVED_TAGS:
                pin_tag(manager, key, spec.tags[key], DERIVED_TAG_PRIORITY)
            TagCheck.register(self.stack, resource, spec.tagging_policy)

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
            validation_commands=tuple(self.spec.build.validation_commands),
            vulnerability_gate=self.spec.vulnerability_gate,
            patch_schedule=(
                None
                if self.spec.patch_schedule is None
                else {
                    "schedule": self.spec.patch_schedule.schedule,
                    "time_zone": self.spec.patch_schedule.time_zone,
                    "failures_before_disable": self.spec.patch_schedule.failures_before_disable,
                }
            ),
            patch_level=self.spec.patch_level,
        )

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


def _expectations(spec: PersonaSpec) -> dict[str, Any]:
    """What the build checks on the prepared template for the as-built checklist."""
    agents = spec.preparation.agents if spec.preparation is not None else ()
    return {
        "design": spec.design.value,
        "baked_applications": list(spec.baked_applications),
        "application_packages": dict(
            (spec.preparation.application_packages or {}) if spec.preparation else {}
        ),
        "launch_applications": list(spec.launch_applications),
        "licensed_applications": sorted(spec.license_references),
        "agents": [
            {"name": a.name, "kind": a.kind.value, "service": a.service or ""} for a in agents
        ],
        "vulnerability_gate": spec.vulnerability_gate,
        # With a patch schedule only: the level this synth was given ("" for none). The
        # image resource refuses one below the level last built; the build records its
        # outcome in the persona's patch state (bakery_runtime/patching/state.py).
        **(
            {patching_contract.EXPECTATION_KEY: spec.patch_level or ""}
            if spec.patch_schedule is not None
            else {}
        ),
    }


def _run_command(spec: PersonaSpec) -> RunCommandPreparation | None:
    """How the build prepares (and validates) the template, when it has a managed node."""
    preparation, node = spec.preparation, spec.build.managed_node_id
    if preparation is None or node is None:
        return None

    def script(fingerprint: str) -> str:
        return render_script(
            preparation,
            persona=spec.name,
            version=spec.image_version,
            fingerprint=fingerprint,
            software=spec.software,
            design=spec.design.value,
            launch_applications=spec.launch_applications,
        )

    return RunCommandPreparation(
        managed_node_id=node,
        script=script,
        # The preparation's own checks run again on the rebooted template, before the
        # build's validation commands: what the image holds is what they check.
        validation_commands=(*preparation.validation_steps, *spec.build.validation_commands),
        seal_script=render_seal_script(preparation),
    )
