"""The whitepaper's Appendix A image design checklist, scored from the configuration.

Each of the 22 tasks is a small rule that looks at one persona (and, where the task is
about the whole estate, at all of them) and returns a score from 1 (not aligned) to 5
(highly aligned) with a one-line reason. A task the code cannot judge is "not assessable"
and says what evidence would count; it is never given a made-up score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import mean

from .preparation import Clipboard, ImagePreparation

MINIMUM_CONTEXT = "workspaces-image-bakery:checklist-minimum"


@dataclass(frozen=True)
class PersonaFacts:
    """What the checklist and the review know about a persona (plain data, no CDK)."""

    name: str
    design: str  # "fully-baked", "thin" or "zero"
    image_version: str
    image_name: str
    bundle_name: str
    template_workspace_id: str
    baked_applications: tuple[str, ...] = ()
    launch_applications: tuple[str, ...] = ()
    config_management_agent: str | None = None
    license_references: Mapping[str, str] = field(default_factory=dict)
    preparation: ImagePreparation | None = None
    compute_type: str = "STANDARD"
    root_volume_gib: int = 80
    user_volume_gib: int = 10
    smallest_volumes: tuple[int, int] = (80, 10)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    number: int
    principle: str
    task: str
    score: int | None
    reason: str

    @property
    def assessable(self) -> bool:
        return self.score is not None


Rule = Callable[[PersonaFacts, Sequence[PersonaFacts]], tuple[int | None, str]]


def _scripted(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.preparation is None:
        return 2, "no preparation declared: the template WorkSpace is prepared by hand"
    if not p.preparation.install_steps:
        return 4, "preparation script rendered; installs are not scripted (no install_steps)"
    return 5, "preparation is declared and rendered as a script, installs included"


def _necessary_apps(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    count = len(p.baked_applications)
    if p.design == "fully-baked" and count > 10:
        return 3, f"{count} applications baked into a fully baked image; some may be niche"
    if p.design == "zero":
        return 5, "zero image: only the OS and the agent are in the image"
    return 5, f"{count} application(s) baked in; the rest are delivered at launch"


def _lowest_storage(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    pair, smallest = (p.root_volume_gib, p.user_volume_gib), p.smallest_volumes
    if pair == smallest:
        return 5, f"bundle uses the smallest volumes for {p.compute_type} ({pair[0]}/{pair[1]} GB)"
    return 3, (
        f"bundle volumes {pair[0]}/{pair[1]} GB exceed the smallest {smallest[0]}/{smallest[1]} GB"
    )


def _licenses_external(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.license_references:
        return 5, f"{len(p.license_references)} licence(s) referenced from SSM / Secrets Manager"
    return None, (
        "not assessable: declare license_references for licensed applications (evidence: "
        "each licensed application has an SSM or Secrets Manager reference)"
    )


def _images_per_persona(_: PersonaFacts, all_: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    recipes = {(a.design, a.baked_applications, a.config_management_agent) for a in all_}
    if len(recipes) < len(all_):
        return 3, "two personas bake the same applications: one image could serve both"
    return 5, f"{len(all_)} persona(s), one image each, no two alike"


def _discrete_set(p: PersonaFacts, all_: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    mine = set(p.baked_applications)
    if not mine:
        return 5, "no applications baked in: the image carries no application set of its own"
    for other in all_:
        if other.name != p.name and mine and mine == set(other.baked_applications):
            return 2, f"bakes the same application set as persona {other.name}"
    return 5, "bakes an application set no other persona has"


def _config_management(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.config_management_agent and p.launch_applications:
        return (
            5,
            f"{p.config_management_agent} delivers {len(p.launch_applications)} application(s)",
        )
    if p.config_management_agent:
        return 4, f"{p.config_management_agent} is baked in but delivers no applications"
    return 2, "no configuration management agent: every change needs a new image"


def _bootstrapping(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.config_management_agent:
        return 5, f"{p.config_management_agent} reads runtime information at launch"
    return 2, "no agent or bootstrap to reference runtime information at launch"


def _profile_identifiers(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    has = [k for k in ("Role", "System") if p.tags.get(k)]
    if len(has) == 2:
        return 5, "one deployment mechanism; Role and System tags identify use case and profile"
    if has:
        return 4, f"one deployment mechanism; only the {has[0]} tag identifies the profile"
    return 3, "one deployment mechanism, but no Role or System tag identifies the profile"


def _preconfigured(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.preparation is not None and p.preparation.validation_steps:
        return 5, "a prebuilt image with scripted validation steps backs the bundle"
    return 4, "a prebuilt image backs the bundle; no validation_steps test the build"


def _reusable_library(_: PersonaFacts, __: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    return None, (
        "not assessable: evidence would be a package repository or script library that the "
        "install_steps assemble"
    )


def _no_manual_changes(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.preparation is None:
        return 1, "the template WorkSpace is changed by hand (no preparation declared)"
    if p.config_management_agent:
        return 5, "scripted preparation and configuration management; no manual steps"
    return 4, "scripted preparation; later changes need a new image"


def _minimal_steps(_: PersonaFacts, __: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    return 5, "one cdk deploy builds, tags and binds the image to the bundle"


def _tools_appropriate(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.design == "fully-baked":
        return 3, "all applications are baked in; updates need a new image and a rebuild"
    if p.config_management_agent:
        return 5, f"launch applications are delivered by {p.config_management_agent}"
    return 2, "no agent delivers the launch applications"


def _no_secrets(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    if p.preparation is None:
        return 4, "no secrets in the declared inputs (detect-secrets); no scripted clean-down"
    return 5, "no secrets in the declared inputs (detect-secrets); the script cleans down"


def _security_agents(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    agents = p.preparation.security_agents if p.preparation else ()
    if agents:
        return 5, f"security posture checked by {', '.join(agents)}"
    return 1, "no security agents declared (preparation.security_agents)"


def _central_logs(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    agent = p.preparation.log_forwarding_agent if p.preparation else None
    if agent:
        return 5, f"logs forwarded by {agent}"
    return 1, "no log forwarding agent declared (preparation.log_forwarding_agent)"


def _pcoip(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    prep = p.preparation
    if prep is None:
        return 1, "PCoIP is left at its defaults (no preparation declared)"
    clipboard = prep.clipboard is not Clipboard.BOTH_DIRECTIONS
    if prep.pcoip_aes256_only and clipboard:
        return 5, f"PCoIP AES-256 only; clipboard {prep.clipboard.name.lower().replace('_', ' ')}"
    if prep.pcoip_aes256_only or clipboard:
        return 3, "PCoIP only partly hardened (AES-256 only or a clipboard restriction)"
    return 1, "PCoIP allows every cipher and the clipboard both ways"


def _performance_agents(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    agents = p.preparation.monitoring_agents if p.preparation else ()
    if agents and p.preparation and p.preparation.log_forwarding_agent:
        return 5, f"monitoring by {', '.join(agents)} with central logs"
    if agents:
        return 4, f"monitoring by {', '.join(agents)}; logs stay on the WorkSpace"
    return 1, "no monitoring agents declared (preparation.monitoring_agents)"


def _remote_assistance(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    tools = p.preparation.remote_assistance_tools if p.preparation else ()
    if tools:
        return 5, f"remote assistance through {', '.join(tools)}"
    return 1, "no remote assistance tools declared (preparation.remote_assistance_tools)"


def _documented_workflow(_: PersonaFacts, __: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    return None, (
        "not assessable: evidence would be the team's runbook for creating and updating "
        "images and bundles (this repository's README covers the tool, not the team's process)"
    )


def _tagging(p: PersonaFacts, _: Sequence[PersonaFacts]) -> tuple[int | None, str]:
    missing = [k for k in ("Role", "System", "Compliance") if not p.tags.get(k)]
    if not missing:
        return 5, "tagging policy applied: technical, business and security tags all present"
    return 4, f"tagging policy applied; optional tags missing: {', '.join(missing)}"


ITEMS: tuple[tuple[str, str, Rule], ...] = (
    ("Automation", "Image configuration is scripted.", _scripted),
    ("Cost optimization", "Only necessary applications are installed into the base image.", _necessary_apps),
    ("Cost optimization", "Custom bundles are created with the lowest disk storage capacity.", _lowest_storage),
    ("Cost optimization", "Application license details are stored externally from the image.", _licenses_external),
    ("Efficient", "The number of images aligns with your identified user personas.", _images_per_persona),
    ("Efficient", "Each image delivers to a discrete application set.", _discrete_set),
    ("Efficient", "Configuration management tools are used to provide application abstraction.", _config_management),
    ("Efficient", "Images are instrumented with a standard bootstrapping capability to allow the instance to reference runtime information at launch.", _bootstrapping),
    ("Flexibility", "Images have a consistent deployment mechanism that can handle multiple scenarios aligned with use case and profile identifiers.", _profile_identifiers),
    ("Productivity", "Images are created to ensure that a preconfigured and validated deployment is available.", _preconfigured),
    ("Productivity", "You have created a library of reusable, modular application packages or scripts that you can programmatically assemble to create different types of WorkSpace images.", _reusable_library),
    ("Scalability", "Image configuration does not rely on manual changes.", _no_manual_changes),
    ("Scalability", "The image deployment process creates and updates with minimal process steps.", _minimal_steps),
    ("Scalability", "Configuration management tools are used appropriately for application deployment and configuration.", _tools_appropriate),
    ("Security", "Security keys or configuration items are not included in the build.", _no_secrets),
    ("Security", "Agents are configured to validate and ensure the security posture of the WorkSpace.", _security_agents),
    ("Security", "Application and operating system logs are centrally collated for analysis.", _central_logs),
    ("Security", "PCoIP configuration is optimized to align with security requirements for secure data encryption and clipboard controls.", _pcoip),
    ("Supportability", "Images contain agents and logging to allow application performance and reliability analysis.", _performance_agents),
    ("Supportability", "Images contain tools to facilitate remote assistance.", _remote_assistance),
    ("Supportability", "You have a documented workflow process for creating and updating images and bundles.", _documented_workflow),
    ("Supportability", "You use a consistent strategy for tagging images to allow for easy organization and identification of the images and their contents.", _tagging),
)  # fmt: skip


def assess(persona: PersonaFacts, everyone: Sequence[PersonaFacts]) -> list[Assessment]:
    """Every checklist item for one persona."""
    results = []
    for number, (principle, task, rule) in enumerate(ITEMS, start=1):
        score, reason = rule(persona, everyone)
        results.append(Assessment(number, principle, task, score, reason))
    return results


def persona_score(assessments: Sequence[Assessment]) -> float:
    """Mean of the assessable items, one decimal."""
    scores = [a.score for a in assessments if a.score is not None]
    return round(mean(scores), 1) if scores else 0.0


@dataclass(frozen=True)
class Scorecard:
    per_persona: dict[str, list[Assessment]]

    @classmethod
    def of(cls, personas: Sequence[PersonaFacts]) -> Scorecard:
        return cls({p.name: assess(p, personas) for p in personas})

    @property
    def scores(self) -> dict[str, float]:
        return {name: persona_score(items) for name, items in self.per_persona.items()}

    @property
    def overall(self) -> float:
        return round(mean(self.scores.values()), 1) if self.scores else 0.0

    def summary(self) -> str:
        parts = ", ".join(f"{n} {s}" for n, s in self.scores.items())
        unassessable = {
            a.number for items in self.per_persona.values() for a in items if not a.assessable
        }
        return (
            f"Image design checklist: {self.overall}/5 overall ({parts}); "
            f"{len(unassessable)} of {len(ITEMS)} items not assessable from code"
        )

    def below(self, minimum: float) -> list[str]:
        """Problems when a persona or the overall score is below `minimum`."""
        found = [
            f"persona {name} scores {score}/5 on the image design checklist, below the "
            f"minimum {minimum} ({MINIMUM_CONTEXT})"
            for name, score in self.scores.items()
            if score < minimum
        ]
        if self.overall < minimum:
            found.append(f"the overall checklist score {self.overall}/5 is below {minimum}")
        return found
