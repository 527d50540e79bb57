"""The pull-request review: a Markdown page written next to the templates on every synth.

It shows, per persona, the design option, image, what is baked and delivered at launch,
the bundle and the tags; whether this deploy builds a new image (the expensive part)
compared with a baseline template; the image design checklist; and a Mermaid diagram of
template WorkSpace -> image -> bundle. Nothing in it depends on the time or the machine,
so the same configuration always gives the same page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Stack
from constructs import IConstruct

from .checklist import PersonaFacts, Scorecard
from .constructs.persona import Persona
from .preparation import render_script
from .runtime_assets import contract

BASELINE_CONTEXT = "workspaces-image-bakery:baseline"
REVIEW_FILE = "review.md"
SCRIPTS_DIR = "preparation"


def personas_of(scope: IConstruct) -> list[Persona]:
    return [c for c in scope.node.find_all() if isinstance(c, Persona)]


def load_baseline(path: str | Path | None) -> dict[str, str] | None:
    """Persona -> image name in a baseline template file or cloud assembly folder.

    ``None`` or ``"none"`` means no baseline; so does a path with no template.
    """
    if path is None or str(path) == "none":
        return None
    location = Path(path)
    files = sorted(location.glob("*.template.json")) if location.is_dir() else [location]
    files = [f for f in files if f.is_file()]
    if not files:
        return None
    images: dict[str, str] = {}
    for file in files:
        for resource in json.loads(file.read_text()).get("Resources", {}).values():
            if resource.get("Type") == contract.IMAGE_RESOURCE_TYPE:
                props = resource.get("Properties", {})
                images[str(props.get(contract.PERSONA))] = str(props.get(contract.IMAGE_NAME))
    return images


def build_status(persona: PersonaFacts, baseline: Mapping[str, str] | None) -> str:
    if baseline is None:
        return "unknown: no baseline template to compare with"
    previous = baseline.get(persona.name)
    if previous is None:
        return "**yes**: new persona"
    if previous != persona.image_name:
        return f"**yes**: recipe changed (was `{previous}`)"
    return "no: recipe unchanged"


def _cell(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def _persona_section(p: PersonaFacts, status: str, warnings: Sequence[str]) -> list[str]:
    agent = f" (by {p.config_management_agent})" if p.config_management_agent else ""
    rows = [
        ("Design option", p.design),
        ("Image", f"`{p.image_name}` (version {p.image_version})"),
        ("Builds a new image on deploy", status),
        ("Template WorkSpace", f"`{p.template_workspace_id}`"),
        ("Baked into the image", _cell(p.baked_applications)),
        (
            "Delivered at launch",
            _cell(p.launch_applications) + (agent if p.launch_applications else ""),
        ),
        ("Config management agent", p.config_management_agent or "none"),
        (
            "Bundle",
            f"`{p.bundle_name}`: {p.compute_type}, root {p.root_volume_gib} GB, "
            f"user {p.user_volume_gib} GB",
        ),
        ("Licences", _cell([f"{a} -> `{r}`" for a, r in sorted(p.license_references.items())])),
        (
            "Preparation",
            f"script `{SCRIPTS_DIR}/{p.name}.sh`" if p.preparation else "by hand (not declared)",
        ),
        ("Tags", _cell([f"{k}={v}" for k, v in sorted(p.tags.items())])),
    ]
    lines = [f"### {p.name}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in rows]
    for warning in warnings:
        lines.append(f"| Warning | {warning} |")
    return [*lines, ""]


def _checklist_section(card: Scorecard) -> list[str]:
    names = list(card.per_persona)
    lines = [
        "## Image design checklist (whitepaper Appendix A)",
        "",
        "Scores 1 (not aligned) to 5 (highly aligned); n/a = not assessable from code.",
        "",
        "| # | Principle | Task | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    first = card.per_persona[names[0]]
    for index, item in enumerate(first):
        scores = [card.per_persona[n][index].score for n in names]
        cells = " | ".join("n/a" if s is None else str(s) for s in scores)
        lines.append(f"| {item.number} | {item.principle} | {item.task} | {cells} |")
    lines.append("| | | **Score** | " + " | ".join(f"**{card.scores[n]}**" for n in names) + " |")
    lines.append("")
    for name in names:
        lines += [f"<details><summary>Reasons: {name}</summary>", ""]
        lines += [
            f"{a.number}. {'n/a' if a.score is None else a.score}: {a.reason}"
            for a in card.per_persona[name]
        ]
        lines += ["", "</details>", ""]
    return lines


def _diagram(personas: Sequence[PersonaFacts]) -> list[str]:
    lines = ["## Template WorkSpace -> image -> bundle", "", "```mermaid", "flowchart LR"]
    for index, p in enumerate(personas):
        lines += [
            f'  t{index}["template WorkSpace {p.template_workspace_id}"]'
            f' --> i{index}["image {p.image_name}"]'
            f' --> b{index}["bundle {p.bundle_name} ({p.compute_type})"]',
        ]
    return [*lines, "```", ""]


def render(
    title: str,
    personas: Sequence[PersonaFacts],
    baseline: Mapping[str, str] | None,
    warnings: Mapping[str, Sequence[str]] | None = None,
) -> str:
    card = Scorecard.of(personas)
    statuses = {p.name: build_status(p, baseline) for p in personas}
    builds = [p.name for p in personas if statuses[p.name].startswith("**yes**")]
    lines = [f"# WorkSpaces images and bundles: {title}", "", card.summary(), ""]
    if baseline is None:
        lines.append("New images on deploy: unknown (no baseline template given).")
    elif builds:
        lines.append(
            f"New images on deploy: **{len(builds)}** ({', '.join(builds)}); "
            "each build takes 45 minutes or more."
        )
    else:
        lines.append("New images on deploy: none.")
    lines += ["", "## Personas", ""]
    for p in personas:
        lines += _persona_section(p, statuses[p.name], (warnings or {}).get(p.name, ()))
    lines += _checklist_section(card) if personas else []
    lines += _diagram(personas)
    return "\n".join(lines)


def _warnings_of(persona: Persona) -> list[str]:
    found = []
    for construct in persona.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:warning":
                found.append(str(entry.data).split(" [ack:")[0])
    return found


def write_review(
    stacks: Sequence[Stack], outdir: str | Path, baseline: Mapping[str, str] | None
) -> tuple[Path, str]:
    """Write review.md and the preparation scripts into `outdir`; return the path and summary."""
    out = Path(outdir)
    personas = [p for stack in stacks for p in personas_of(stack)]
    facts = [p.facts() for p in personas]
    warnings = {p.name: _warnings_of(p) for p in personas}
    title = ", ".join(s.stack_name for s in stacks)
    path = out / REVIEW_FILE
    path.write_text(render(title, facts, baseline, warnings))
    scripts = out / SCRIPTS_DIR
    for persona in personas:
        if persona.preparation is not None:
            scripts.mkdir(exist_ok=True)
            script = scripts / f"{persona.name}.sh"
            script.write_text(
                render_script(
                    persona.preparation,
                    persona=persona.name,
                    version=persona.image_version,
                    fingerprint=persona.image.fingerprint,
                )
            )
            script.chmod(0o755)
    return path, Scorecard.of(facts).summary()
