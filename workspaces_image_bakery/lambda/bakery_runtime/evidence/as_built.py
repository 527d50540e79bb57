"""The as-built checklist: the whitepaper's Appendix A items the build can check on the
prepared, rebooted template, scored from what it found there (a command's result, an
inventory entry, a unit's state, a file), before the image is taken.

Each item names its evidence. An item the build cannot check says so and scores nothing
(``score`` None): it is not counted in the mean, and the review shows it apart. The
declared checklist (the library's ``evidence/checklist.py``) scores the recipe at synth;
this one scores the template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import mean
from typing import Any, Final

from .inventory import EVIDENCE_FILES, LAUNCH_FACTS_FILE, Inventory

# The whitepaper's item numbers (Appendix A, in order) that the build checks.
TITLES: Final[dict[int, str]] = {
    1: "Image configuration is scripted.",
    2: "Only necessary applications are installed into the base image.",
    4: "Application license details are stored externally from the image.",
    6: "Each image delivers to a discrete application set.",
    7: "Configuration management tools are used to provide application abstraction.",
    10: "Images are created to ensure that a preconfigured and validated deployment is available.",
    14: "Configuration management tools are used appropriately for application deployment "
    "and configuration.",
    15: "Security keys or configuration items are not included in the build.",
    16: "Agents are configured to validate and ensure the security posture of the WorkSpace.",
    17: "Application and operating system logs are centrally collated for analysis.",
    19: "Images contain agents and logging to allow application performance and reliability "
    "analysis.",
    20: "Images contain tools to facilitate remote assistance.",
}
AGENT_ITEMS: Final[dict[int, str]] = {
    16: "security",
    17: "log-forwarding",
    19: "monitoring",
    20: "remote-assistance",
}


@dataclass(frozen=True)
class Expectations:
    """What the persona declares (the image resource's Expectations property)."""

    design: str = "fully-baked"
    baked_applications: tuple[str, ...] = ()
    # The package of a baked application whose label does not name it.
    application_packages: Mapping[str, str] = field(default_factory=dict)
    # Applications the configuration-management agent delivers at launch (not in the image).
    launch_applications: tuple[str, ...] = ()
    # Applications whose licence is referenced outside the image (license_references).
    licensed_applications: tuple[str, ...] = ()
    # (name, kind, service or "") of each declared agent.
    agents: tuple[tuple[str, str, str], ...] = ()
    validation_commands: int = 0
    checklist_minimum: float | None = None
    # The persona's vulnerability gate ({"severity", "accepted"}), or None: findings are
    # recorded, never gating.
    vulnerability_gate: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Expectations:
        if not data:
            return cls()
        minimum = data.get("checklist_minimum")
        return cls(
            design=str(data.get("design", "fully-baked")),
            baked_applications=tuple(str(a) for a in data.get("baked_applications", ())),
            application_packages={
                str(k): str(v) for k, v in dict(data.get("application_packages") or {}).items()
            },
            launch_applications=tuple(str(a) for a in data.get("launch_applications", ())),
            licensed_applications=tuple(str(a) for a in data.get("licensed_applications", ())),
            agents=tuple(
                (str(a.get("name", "")), str(a.get("kind", "")), str(a.get("service") or ""))
                for a in data.get("agents", ())
                if isinstance(a, Mapping)
            ),
            validation_commands=int(data.get("validation_commands", 0)),
            checklist_minimum=None if minimum in (None, "") else float(minimum),
            vulnerability_gate=dict(data["vulnerability_gate"])
            if isinstance(data.get("vulnerability_gate"), Mapping)
            else None,
        )


@dataclass(frozen=True)
class Item:
    number: int
    task: str
    score: int | None
    evidence: str


@dataclass(frozen=True)
class Evidence:
    """What the build found, each piece None when that step did not run."""

    preparation_steps: tuple[str, ...] | None = None
    validation_passed: int | None = None
    inventory: Inventory | None = None
    # item -> "absent" | "deferred" | "present <path>"
    seal: Mapping[str, str] | None = None


def assess(expected: Expectations, found: Evidence) -> list[Item]:
    """Every checkable item, scored from `found` against `expected`."""
    return [
        _item(1, *_scripted(found)),
        _item(2, *_necessary_apps(expected, found)),
        _item(4, *_licences_outside(expected, found)),
        _item(6, *_discrete_set(expected, found)),
        _item(7, *_abstraction(expected, found)),
        _item(10, *_validated(expected, found)),
        _item(14, *_config_management(expected, found)),
        _item(15, *_sealed(found)),
        *(_item(n, *_agents(expected, found, kind)) for n, kind in AGENT_ITEMS.items()),
    ]


def score(items: Sequence[Item]) -> float | None:
    """Mean of the checked items, one decimal; None when nothing could be checked."""
    checked = [i.score for i in items if i.score is not None]
    return round(mean(checked), 1) if checked else None


def below(items: Sequence[Item], minimum: float) -> list[Item]:
    """The checked items that score below `minimum`."""
    return [i for i in items if i.score is not None and i.score < minimum]


def to_json(items: Sequence[Item]) -> list[dict[str, Any]]:
    return [asdict(i) for i in items]


def _item(number: int, value: int | None, evidence: str) -> Item:
    return Item(number, TITLES[number], value, evidence)


def _package_names(inventory: Inventory) -> set[str]:
    names = set()
    for line in inventory.packages_text.splitlines():
        fields = line.split("\t")
        if inventory.family == "deb" and len(fields) == 4:
            if fields[0] == "installed":
                names.add(fields[1].lower())
        elif len(fields) >= 1 and fields[0]:
            names.add(fields[0].lower())
    return names


def package_for(
    application: str, names: set[str], packages: Mapping[str, str] | None = None
) -> str | None:
    """The installed package an application label names, or None: the package declared for
    it (``application_packages``), else the label as written, with its spaces as hyphens or
    removed, or by its first word ("firefox esr" -> firefox-esr, "python 3.12" ->
    python3.12, "libreoffice 7.6" -> libreoffice)."""
    declared = (packages or {}).get(application)
    if declared is not None:
        return declared if declared in names else None
    label = application.lower().strip()
    first = label.split()[0] if label.split() else label
    for candidate in (label, label.replace(" ", "-"), label.replace(" ", ""), first):
        if candidate in names:
            return candidate
    return None


def missing_baked(expected: Expectations, inventory: Inventory) -> list[str]:
    """The declared baked applications whose package the inventory does not list."""
    names = _package_names(inventory)
    return [
        a
        for a in expected.baked_applications
        if package_for(a, names, expected.application_packages) is None
    ]


def _scripted(found: Evidence) -> tuple[int | None, str]:
    if found.preparation_steps is None:
        return None, "not checked: the template is prepared by hand, so the build ran no script"
    return 5, (
        f"the preparation script ran through Run Command and completed its "
        f"{len(found.preparation_steps)} steps (archived output)"
    )


def _necessary_apps(expected: Expectations, found: Evidence) -> tuple[int | None, str]:
    if found.inventory is None:
        return None, "not checked: no inventory of the template"
    names = _package_names(found.inventory)
    missing = missing_baked(expected, found.inventory)
    if missing:
        return 1, (f"declared baked applications not installed (inventory): {', '.join(missing)}")
    present = len(expected.baked_applications)
    return 4, (
        f"{present} declared baked application(s) found installed among {len(names)} "
        "packages (inventory); packages beyond the operating system's base set are not "
        "classified, so this item never scores 5"
    )


def _licences_outside(expected: Expectations, found: Evidence) -> tuple[int | None, str]:
    if found.inventory is None:
        return None, "not checked: no inventory of the template"
    files = found.inventory.licence_files
    if files:
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        return 1, f"licence file(s) on the root volume, so in the image (inventory): {shown}"
    where = (
        f"; {len(expected.licensed_applications)} licence(s) referenced outside the image "
        f"({', '.join(expected.licensed_applications)})"
        if expected.licensed_applications
        else ""
    )
    return 5, (
        "no licence file (*.lic, license.dat, *.license) under /etc, /opt, /usr/local, "
        f"/srv, /var/lib or /root on the template (inventory){where}"
    )


def _discrete_set(expected: Expectations, found: Evidence) -> tuple[int | None, str]:
    if found.inventory is None:
        return None, "not checked: no inventory of the template"
    names = _package_names(found.inventory)
    missing = missing_baked(expected, found.inventory)
    baked_in = [
        f"{a} ({package})"
        for a in expected.launch_applications
        if (package := package_for(a, names)) is not None
    ]
    if baked_in:
        return 2, (
            "applications meant to arrive at launch are already in the image (inventory): "
            + ", ".join(baked_in)
        )
    if missing:
        return (
            2,
            f"declared baked applications not found installed (inventory): {', '.join(missing)}",
        )
    return 5, (
        f"the image holds its {len(expected.baked_applications)} baked application(s) and "
        f"none of its {len(expected.launch_applications)} launch application(s) (inventory)"
    )


def _abstraction(expected: Expectations, found: Evidence) -> tuple[int | None, str]:
    if found.inventory is None:
        return None, "not checked: no inventory of the template"
    agents = [a for a in expected.agents if a[1] == "configuration-management"]
    if not agents:
        if expected.launch_applications:
            return 1, (
                f"{len(expected.launch_applications)} launch application(s) but no "
                "configuration-management agent to deliver them"
            )
        return 3, "no configuration-management agent: every application is baked into the image"
    name, _, service = agents[0]
    state = found.inventory.unit_state(service) if service else "absent"
    if state == "absent":
        return (
            1,
            f"{name}: its unit {service or '(none declared)'} is not on the template (inventory)",
        )
    if not expected.launch_applications:
        return (
            3,
            f"{name}: installed ({service} {state}), but no application is delivered at launch",
        )
    if not found.inventory.files.get(LAUNCH_FACTS_FILE):
        return 3, (
            f"{name}: installed ({service} {state}), but the launch facts that name its "
            f"{len(expected.launch_applications)} launch application(s) are not on the "
            f"template ({LAUNCH_FACTS_FILE})"
        )
    return 5, (
        f"{name}: installed ({service} {state}, inventory) with the launch facts naming its "
        f"{len(expected.launch_applications)} launch application(s) ({LAUNCH_FACTS_FILE})"
    )


def _validated(expected: Expectations, found: Evidence) -> tuple[int | None, str]:
    if found.preparation_steps is None:
        return None, "not checked: the template is prepared by hand"
    if found.validation_passed:
        return 5, (
            f"{found.validation_passed} validation command(s) passed on the prepared, "
            "rebooted template, right before the image"
        )
    return 3, "the recipe marker was verified after the reboot; no validation commands ran"


def _config_management(expected: Expectations, found: Evidence) -> tuple[int | None, str]:
    agents = [a for a in expected.agents if a[1] == "configuration-management"]
    if found.inventory is None:
        return None, "not checked: no inventory of the template"
    if not agents:
        if expected.design == "fully-baked":
            return 3, (
                "no configuration-management agent: every application is baked, so each "
                "change needs a new image"
            )
        return 1, f"a {expected.design} image without a configuration-management agent"
    name, _, service = agents[0]
    state = found.inventory.unit_state(service) if service else "absent"
    if state == "masked":
        return 5, (
            f"{name}: its unit {service} is masked on the template (inventory), so it enrols "
            "only on WorkSpaces launched from the image"
        )
    return 2, (
        f"{name}: its unit {service or '(none declared)'} is {state} on the template "
        "(inventory): it may enrol and apply its catalogue to the template"
    )


def _sealed(found: Evidence) -> tuple[int | None, str]:
    if found.seal is None:
        return None, "not checked: the template was not sealed by the build"
    present = sorted(k for k, v in found.seal.items() if v.startswith("present"))
    deferred = sorted(k for k, v in found.seal.items() if v == "deferred")
    if present:
        return 1, f"template identity still present after the seal: {', '.join(present)}"
    text = f"{len(found.seal)} identity items checked absent on the template before the image"
    if deferred:
        text += f" ({', '.join(deferred)}: removed after the seal command reported; not observed)"
        return 4, text
    return 5, text


def _agents(expected: Expectations, found: Evidence, kind: str) -> tuple[int | None, str]:
    agents = [a for a in expected.agents if a[1] == kind]
    if found.inventory is None:
        return None, "not checked: no inventory of the template"
    if not agents:
        return 1, f"no {kind} agent declared"
    notes: list[str] = []
    scores: list[int] = []
    for name, _, service in agents:
        if not service:
            scores.append(2)
            notes.append(f"{name}: no service declared, so nothing shows it runs")
            continue
        state = found.inventory.unit_state(service)
        if state not in ("enabled", "enabled-runtime", "static", "alias"):
            scores.append(1)
            notes.append(f"{name}: its unit {service} is {state} (inventory)")
            continue
        if kind != "log-forwarding":
            scores.append(5)
            notes.append(f"{name}: {service} {state} (inventory)")
            continue
        paths = EVIDENCE_FILES.get(service)
        if paths is None:
            scores.append(3)
            notes.append(f"{name}: {service} {state}; its configuration is not a known file")
        elif any(found.inventory.files.get(p) for p in paths):
            scores.append(5)
            notes.append(f"{name}: {service} {state} and its configuration present")
        else:
            scores.append(2)
            notes.append(f"{name}: {service} {state} but no configuration ({paths[0]})")
    return min(scores), "; ".join(notes)
