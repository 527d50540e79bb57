"""A persona's props, checked once and turned into a plain spec (no construct is made here).

:func:`check_persona` collects every problem of every prop (design rules, applications,
licences, preparation, tags, secrets, and each field of the option groups ``compute``,
``build``, ``release`` and ``distribution``, named ``release.retained_images`` and so on) and
raises them together; the :class:`PersonaSpec` it returns is what the persona builds from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, TypeVar

from aws_cdk import RemovalPolicy, Stack

from ..core.compute import Compute, check_compute
from ..core.naming import check_template_workspace_id
from ..core.tag_rules import is_tag_mapping, tag_strings
from ..core.tagging_policy import TaggingPolicy
from ..core.validation import (
    Problems,
    check_no_secrets,
    check_removal_policy,
    check_strings,
    context_of,
    register_name,
    register_template,
)
from ..distribution.config import Distribution
from ..distribution.distribution import check_account, check_region
from ..gates.vulnerability_gate import check_vulnerability_gate
from ..image_build.config import TemplateBuild
from ..image_build.image import check_build_timeout, default_build_timeout
from ..image_build.run_command import check_managed_node_id
from ..patching.patch_schedule import PatchSchedule, check_patch_schedule, patch_level
from ..preparation import ImagePreparation, preparation_problems
from ..release.config import Release
from ..release.release import ReleasePlan, check_version, plan_release
from ..rollout.rollout import RolloutSchedule

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
MAX_VALIDATION_COMMAND = 1000


class ImageDesign(Enum):
    """The whitepaper's image design options."""

    FULLY_BAKED = "fully-baked"
    """Every application is in the image; nothing is delivered at launch."""
    THIN = "thin"
    """Some applications (and the config-management agent) are baked; the rest arrive at launch."""
    ZERO = "zero"
    """Only the OS and a config-management agent; every application arrives at launch."""


@dataclass(frozen=True)
class PersonaSpec:
    """A persona's props after every check: plain values the persona builds from."""

    name: str
    design: ImageDesign
    image_version: str
    template_workspace_id: str
    tagging_policy: TaggingPolicy
    baked_applications: tuple[str, ...]
    launch_applications: tuple[str, ...]
    config_management_agent: str | None
    license_references: dict[str, str]
    preparation: ImagePreparation | None
    # The persona's full tag set (the policy's defaults, derived tags and its own).
    tags: dict[str, str]
    compute: Compute
    # Checked: the managed node (or None), the commands as a tuple, the timeout resolved.
    build: TemplateBuild
    release: ReleasePlan
    removal_policy: RemovalPolicy
    # Checked: the Regions and account ids as tuples.
    distribution: Distribution
    rollout: RolloutSchedule | None
    # What the Software tag lists: baked applications and every agent installed.
    software: tuple[str, ...]
    # The vulnerability gate as the build reads it ({"severity", "accepted"}), or None.
    vulnerability_gate: dict[str, Any] | None = None
    # The patch cadence, and the patch level this synth was given for the persona (the
    # workspaces-image-bakery:patch-levels context value), part of the recipe.
    patch_schedule: PatchSchedule | None = None
    patch_level: str | None = None

    @property
    def image_description(self) -> str:
        return f"{self.name} {self.design.value} image version {self.image_version}"

    @property
    def bundle_description(self) -> str:
        return f"{self.name} persona bundle ({self.design.value} image)"

    @property
    def candidate_bundle_base_name(self) -> str:
        return f"{self.name}-candidate"

    @property
    def candidate_bundle_description(self) -> str:
        return f"{self.name} persona candidate bundle ({self.design.value} image)"

    def derived_strings(self) -> dict[str, str]:
        """The names, descriptions and full tag set the persona gives its image and bundles,
        for the secret scan: scanned with the props, they are found clean once (the scan
        keeps clean lines), and the image and bundles, which scan their own props, need no
        scan of their own."""
        return {
            "design": self.design.value,
            "image name (name, image_version)": f"{self.name}-{self.image_version}",
            "candidate bundle name (name)": self.candidate_bundle_base_name,
            "image description (name, design, image_version)": self.image_description,
            "bundle description (name, design)": self.bundle_description,
            "candidate bundle description (name, design)": self.candidate_bundle_description,
            **tag_strings("tags", self.tags),
        }

    def recipe(self) -> dict[str, Any]:
        """What the image holds; a change builds a new image."""
        recipe: dict[str, Any] = {
            "persona": self.name,
            "design": self.design.value,
            "version": self.image_version,
            "baked_applications": list(self.baked_applications),
            "config_management_agent": self.config_management_agent,
        }
        if self.preparation is not None:
            recipe["preparation"] = self.preparation.recipe()
        if self.patch_level is not None:
            recipe["patch_level"] = self.patch_level
        return recipe


def check_persona(
    problems: Problems,
    stack: Stack,
    *,
    name: Any,
    design: Any,
    image_version: Any,
    template_workspace_id: Any,
    tagging_policy: Any,
    baked_applications: Any,
    launch_applications: Any,
    config_management_agent: Any,
    license_references: Any,
    preparation: Any,
    tags: Any,
    compute: Any,
    build: Any,
    release: Any,
    distribution: Any,
    rollout: Any,
    vulnerability_gate: Any = None,
    patch_schedule: Any = None,
) -> PersonaSpec:
    """Every prop checked (all problems reported together); the spec when none is wrong."""
    problems.text(
        "name",
        name,
        max_len=32,
        pattern=PERSONA_NAME_PATTERN,
        pattern_text="lowercase letters, digits and -, starting with a letter or digit",
        tokens=False,
    )
    register_name(problems, stack, "persona", "name", name)
    check_version(problems, "image_version", image_version)
    check_template_workspace_id(problems, template_workspace_id)
    if not isinstance(tagging_policy, TaggingPolicy):
        problems.add("tagging_policy", tagging_policy, "a TaggingPolicy")
    baked, launch, agent = _check_applications(
        problems, design, baked_applications, launch_applications, config_management_agent
    )
    licenses = _check_licenses(problems, license_references, [*baked, *launch])
    preparation = _check_preparation(problems, preparation, design)
    if tags is not None and not is_tag_mapping(tags):
        problems.add(
            "tags", f"<{type(tags).__name__}>", "a mapping of string keys to string values"
        )
        tags = None
    if rollout is not None and not isinstance(rollout, RolloutSchedule):
        problems.add("rollout", rollout, "a RolloutSchedule, or None (no rollout)")
    hardware = _check_compute(problems, compute)
    template_build = _check_build(problems, stack, build, preparation, template_workspace_id)
    plan, removal_policy = _check_release(problems, release, image_version)
    places = _check_distribution(problems, distribution, plan)
    software = _software(baked, agent, preparation)
    if preparation is not None and isinstance(preparation.application_packages, Mapping):
        for label in preparation.application_packages:
            problems.check(
                label in baked,
                f"preparation.application_packages[{label}]",
                label,
                f"one of the baked applications ({', '.join(baked) or 'none declared'})",
            )
    gate = check_vulnerability_gate(problems, vulnerability_gate)
    cadence = check_patch_schedule(
        problems,
        patch_schedule,
        template_build.managed_node_id,
        patches_os=preparation is None or bool(preparation.patch_os),
    )
    level = (
        patch_level(problems, stack, name)
        if cadence is not None and isinstance(name, str)
        else None
    )
    full_tags: dict[str, str] = {}
    if isinstance(tagging_policy, TaggingPolicy):
        full_tags = tagging_policy.tags_for(
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
    scanned.update(
        {
            f"build.validation_commands[{i}]": v
            for i, v in enumerate(template_build.validation_commands)
        }
    )
    if preparation is not None:
        scanned.update(preparation.user_strings())
    for index, accepted in enumerate((gate or {}).get("accepted", ())):
        scanned[f"vulnerability_gate.accepted[{index}].reason"] = accepted["reason"]
    spec = PersonaSpec(
        name=name,
        design=design,
        image_version=image_version,
        template_workspace_id=template_workspace_id,
        tagging_policy=tagging_policy,
        baked_applications=tuple(baked),
        launch_applications=tuple(launch),
        config_management_agent=agent,
        license_references=licenses,
        preparation=preparation,
        tags=full_tags,
        compute=hardware,
        build=template_build,
        release=plan,
        removal_policy=removal_policy,
        distribution=places,
        rollout=rollout,
        software=tuple(software),
        vulnerability_gate=gate,
        patch_schedule=cadence,
        patch_level=level,
    )
    if all(isinstance(v, str) for v in (name, image_version, template_workspace_id)) and (
        isinstance(design, ImageDesign)
    ):
        scanned.update({"name": name, "template_workspace_id": template_workspace_id})
        scanned.update(spec.derived_strings())
    check_no_secrets(problems, scanned)
    problems.raise_if_any()
    return spec


# --- the option groups: each field checked, its problems named ``<group>.<field>`` ---------

Group = TypeVar("Group", Compute, TemplateBuild, Release, Distribution)
Checked = TypeVar("Checked")


def _group(problems: Problems, field_name: str, value: Any, kind: type[Group]) -> Group:
    """The option group given, or its defaults for None (and, reported, for anything else)."""
    if value is None:
        return kind()
    if isinstance(value, kind):
        return value
    kind_name = kind.__name__
    hint = f"; {kind_name}(**values) makes one of a mapping" if isinstance(value, Mapping) else ""
    problems.add(
        field_name,
        # The build group's commands may hold a secret: show only the type.
        f"<{type(value).__name__}>" if kind is TemplateBuild else value,
        f"a {kind_name} (from workspaces_image_bakery import {kind_name}), or None for its "
        f"defaults{hint}",
    )
    return kind()


def _in_group(
    problems: Problems,
    group: str,
    check: Callable[[Problems], Checked],
    renames: Mapping[str, str] | None = None,
) -> Checked:
    """`check`'s problems, reported as the group's: ``retained_images`` becomes
    ``release.retained_images``, a pair ``a/b`` becomes ``compute.a/compute.b``, and
    `renames` maps a checker's own field name to the group's (``build_timeout`` ->
    ``timeout``)."""
    inner = Problems(problems.path, scope=problems.scope)
    result = check(inner)

    def named(field_name: str) -> str:
        parts = []
        for part in field_name.split("/"):
            base, bracket, rest = part.partition("[")
            parts.append(f"{group}.{(renames or {}).get(base, base)}{bracket}{rest}")
        return "/".join(parts)

    problems.found.extend(replace(p, field=named(p.field)) for p in inner.found)
    problems.secret_fields.update(named(f) for f in inner.secret_fields)
    problems.secret_texts.update(inner.secret_texts)
    return result


def _check_compute(problems: Problems, compute: Any) -> Compute:
    """The bundle's compute type and volumes (``compute.*``)."""
    given = _group(problems, "compute", compute, Compute)
    _in_group(
        problems,
        "compute",
        lambda inner: check_compute(
            inner, given.compute_type, given.root_volume_gib, given.user_volume_gib
        ),
    )
    return given


def _check_build(
    problems: Problems,
    stack: Stack,
    build: Any,
    preparation: ImagePreparation | None,
    template_workspace_id: Any,
) -> TemplateBuild:
    """The managed node, the checks before the image and the timeout (``build.*``); the
    validation commands as a tuple and the timeout resolved (6 hours by default)."""
    given = _group(problems, "build", build, TemplateBuild)
    timeout = default_build_timeout() if given.timeout is None else given.timeout
    node = given.managed_node_id

    def check(inner: Problems) -> list[str]:
        if node is not None:
            check_managed_node_id(inner, node)
        commands = _check_validation(inner, given.validation_commands, node)
        check_build_timeout(inner, timeout)
        return commands

    commands = _in_group(problems, "build", check, {"build_timeout": "timeout"})
    _check_preparation_channel(problems, stack, preparation, node, template_workspace_id)
    return replace(given, validation_commands=tuple(commands), timeout=timeout)


def _check_release(
    problems: Problems, release: Any, image_version: Any
) -> tuple[ReleasePlan, RemovalPolicy]:
    """What the bundles serve, how many images are kept, the removal policy
    (``release.*``)."""
    given = _group(problems, "release", release, Release)

    def check(inner: Problems) -> ReleasePlan:
        plan = plan_release(
            inner,
            image_version=image_version,
            released_version=given.released_version,
            retained_images=given.retained_images,
            candidate_bundle=given.candidate_bundle,
        )
        check_removal_policy(inner, given.removal_policy)
        return plan

    return _in_group(problems, "release", check), given.removal_policy


def _check_distribution(
    problems: Problems, distribution: Any, release: ReleasePlan
) -> Distribution:
    """Other Regions and accounts (``distribution.*``), as tuples of the valid entries."""
    given = _group(problems, "distribution", distribution, Distribution)

    def check(inner: Problems) -> Distribution:
        regions = _check_list(inner, "regions", given.regions, check_region, "Region names")
        accounts = _check_list(inner, "accounts", given.accounts, check_account, "account ids")
        return Distribution(regions=tuple(regions), accounts=tuple(accounts))

    checked = _in_group(problems, "distribution", check)
    if checked.regions and not (release.serves_build and not release.candidate_bundle):
        problems.add(
            "distribution.regions",
            list(checked.regions),
            "no other Regions while the bundle is pinned (release.released_version) or "
            "released through a candidate bundle (release.candidate_bundle): regional "
            "bundles follow the build (docs/distribution.md)",
        )
    return checked


def _check_applications(
    problems: Problems, design: Any, baked_applications: Any, launch_applications: Any, agent: Any
) -> tuple[list[str], list[str], str | None]:
    """The design's rules: what is baked, what arrives at launch, and the agent for it."""
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
    given = agent
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
            given,
            f"an agent that delivers the launch applications of a {design.value} image",
        )
    return baked, launch, agent


def _check_licenses(problems: Problems, references: Any, apps: list[str]) -> dict[str, str]:
    """Application -> an SSM parameter or Secrets Manager reference; never the licence."""
    if references is None:
        return {}
    if not isinstance(references, Mapping):
        problems.add("license_references", references, "a mapping of application to reference")
        return {}
    for app, reference in references.items():
        if app not in apps:
            problems.add(f"license_references[{app}]", app, "an application the persona declares")
        if not isinstance(reference, str) or not LICENSE_REFERENCE.match(reference):
            problems.add(
                f"license_references[{app}]",
                "<redacted>" if isinstance(reference, str) else reference,
                "an SSM parameter name (/path) or ARN, or a Secrets Manager secret ARN; "
                "never the licence itself",
            )
    return dict(references)


def _check_preparation(
    problems: Problems, preparation: Any, design: Any
) -> ImagePreparation | None:
    """A well-formed ImagePreparation that delivers a thin or zero image's launch apps."""
    if preparation is None:
        return None
    if not isinstance(preparation, ImagePreparation):
        problems.add("preparation", preparation, "an ImagePreparation")
        return None
    malformed = preparation_problems(preparation)
    for field, value, allowed in malformed:
        # Only the type: a malformed step may still hold a secret.
        problems.add(field, f"<{type(value).__name__}>", allowed)
    if malformed:
        return None
    if design in (ImageDesign.THIN, ImageDesign.ZERO):
        # The image's launch applications need the agent that delivers them.
        for field, value, allowed in preparation.launch_delivery_problems(design.value):
            problems.add(field, value, allowed)
    return preparation


def _check_preparation_channel(
    problems: Problems,
    stack: Stack,
    preparation: ImagePreparation | None,
    managed_node_id: Any,
    template_workspace_id: Any,
) -> None:
    """The managed node needs a preparation to run; a team may require one for all."""
    if managed_node_id is not None:
        if preparation is None:
            problems.add(
                "build.managed_node_id",
                managed_node_id,
                "a managed node with a preparation to run: give preparation=ImagePreparation()",
            )
    elif _truthy(context_of(stack, REQUIRE_AUTOMATED_CONTEXT)):
        problems.add(
            "build.managed_node_id",
            None,
            "a managed node: this app requires every template to be prepared in the build "
            f"({REQUIRE_AUTOMATED_CONTEXT}); register the template WorkSpace "
            "(docs/preparation.md)",
        )
    register_template(
        problems, stack, template_workspace_id, prepared_in_build=managed_node_id is not None
    )


def _check_validation(problems: Problems, commands: Any, managed_node_id: Any) -> list[str]:
    """Shell commands, each 1-1000 characters, run on the managed node before the image."""
    checks = check_strings(problems, "validation_commands", commands)
    for index, command in enumerate(checks):
        problems.text(
            f"validation_commands[{index}]", command, max_len=MAX_VALIDATION_COMMAND, tokens=False
        )
    if checks and managed_node_id is None:
        problems.add(
            "validation_commands",
            f"<{len(checks)} command(s)>",
            "checks with a managed node to run them on: give build.managed_node_id "
            "(docs/preparation.md)",
        )
    return checks


def _software(
    baked: Sequence[str], agent: str | None, preparation: ImagePreparation | None
) -> list[str]:
    """The Software tag: what is baked in, and every agent the preparation installs (the
    named config-management agent when the preparation does not install it by name)."""
    installed = preparation.installed_software() if preparation is not None else []
    first_word = agent.split()[:1] if agent else []
    named = [agent] if agent and not set(first_word) & set(installed) else []
    return list(dict.fromkeys([*baked, *named, *installed]))


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
