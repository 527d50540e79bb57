"""The review's *as built* section: for each persona, the as-built checklist of the image
users run now (the image the persona's bundle serves, its record checked against the image)
beside the pull request's declared checklist, and the packages changed since the image
before it, from both images' SBOMs.

The pull request's synth writes the declared side (``preparation/declared-checklist.json``
in the cloud assembly); the workflow's diff job, which has the read-only role and runs the
base branch's code, reads the records and renders this section
(``workspaces-image-bakery as-built --assembly DIR``); the comment job puts it where the
review's marker is. Without credentials the section says what could not be read. Standard
library only: the command line renders it without loading the CDK.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The line of review.md the comment job replaces with this section.
AS_BUILT_MARKER = "<!-- workspaces-image-bakery-as-built -->"
# In the cloud assembly's preparation folder: persona -> stack, image name, declared items.
DECLARED_FILE = "declared-checklist.json"
# The section's largest size in characters: what does not fit is named, not shown.
AS_BUILT_LIMIT = 8_000
# Package changes shown per persona (the rest are counted; `report` lists them all).
PACKAGES_SHOWN = 15
HEADING = "## As built: the images users run now"


def declared_entry(
    stack: str, image_name: str, score: float, items: Mapping[int, int | None]
) -> dict[str, Any]:
    """One persona's line of the declared file."""
    return {
        "stack": stack,
        "image_name": image_name,
        "score": score,
        "items": {str(n): s for n, s in sorted(items.items())},
    }


def write_declared(folder: Path, personas: Mapping[str, Mapping[str, Any]]) -> None:
    (folder / DECLARED_FILE).write_text(
        json.dumps({"personas": dict(sorted(personas.items()))}, indent=1) + "\n"
    )


def read_declared(assembly: Path) -> dict[str, dict[str, Any]]:
    """persona -> declared entry, from a cloud assembly folder; ValueError says what is wrong."""
    path = assembly / "preparation" / DECLARED_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"no declared checklist in the assembly ({path}): {error}") from None
    personas = data.get("personas") if isinstance(data, dict) else None
    if not isinstance(personas, dict):
        raise ValueError(f"{path} holds no personas")
    return {str(k): v for k, v in personas.items() if isinstance(v, dict)}


def _cell(value: object) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")
    return text.replace("`", "'")


def _score(value: object) -> str:
    return "-" if value is None else f"{value}/5"


def _package_counts(diff: Mapping[str, Any] | None) -> str:
    if diff is None:
        return "no earlier image with an SBOM"
    counts = [(k, len(diff.get(k, []))) for k in ("added", "removed", "upgraded", "downgraded")]
    return ", ".join(f"{n} {k}" for k, n in counts if n) or "none"


def _changed(report: Mapping[str, Any]) -> bool:
    diff = report.get("package_diff")
    return bool(diff and any(diff.get(k) for k in ("added", "removed", "upgraded", "downgraded")))


def _package_lines(diff: Mapping[str, Any]) -> list[str]:
    lines = [f"- {c[0]} {c[2]} -> {c[3]}" for c in diff.get("upgraded", [])]
    lines += [f"- {c[0]} {c[2]} -> {c[3]} (downgraded)" for c in diff.get("downgraded", [])]
    lines += [f"- added {a[0]} {a[1]}" for a in diff.get("added", [])]
    lines += [f"- removed {r[0]} {r[1]}" for r in diff.get("removed", [])]
    shown = [_cell(line) for line in lines[:PACKAGES_SHOWN]]
    if len(lines) > PACKAGES_SHOWN:
        shown.append(f"- and {len(lines) - PACKAGES_SHOWN} more")
    return shown


def _details(name: str, declared: Mapping[str, Any], report: Mapping[str, Any]) -> list[str]:
    record = report.get("record") or {}
    items = {str(i["number"]): i for i in record.get("checklist", [])}
    numbers = sorted({*items, *declared.get("items", {})}, key=int)
    image = report.get("image") or {}
    lines = [
        f"<details><summary>{_cell(name)}: {_cell(image.get('name', ''))}</summary>",
        "",
        "| item | declared (this pull request) | as built | evidence (as built) |",
        "|---|---|---|---|",
    ]
    for number in numbers:
        built = items.get(number, {})
        lines.append(
            f"| {number} | {_score(declared.get('items', {}).get(number))} | "
            f"{_score(built.get('score'))} | {_cell(built.get('evidence', 'not checked'))} |"
        )
    diff = report.get("package_diff")
    if diff is not None:
        lines += ["", f"Packages since {_cell(report.get('previous_image'))}:", ""]
        lines += _package_lines(diff) or ["- none"]
    return [*lines, "", "</details>", ""]


def render_as_built(
    declared: Mapping[str, Mapping[str, Any]],
    reports: Mapping[str, Mapping[str, Any]],
    *,
    problem: str | None = None,
    limit: int = AS_BUILT_LIMIT,
) -> str:
    """The section: one table row per persona, personas with package changes first, then a
    fold per persona while the section stays within `limit` characters."""
    intro = (
        "Each image's as-built record, checked against the record digest tagged on the "
        "image, read with the review's read-only role by the base branch's code. "
        "*Declared* is this pull request's plan (scored at synth); *as built* is what the "
        "build found on the template of the image each persona's bundle serves."
    )
    lines = [HEADING, "", intro, ""]
    if problem is not None:
        return "\n".join([*lines, f"**Not read**: {_cell(problem)}", ""])
    order = sorted(declared, key=lambda n: (not _changed(reports.get(n, {})), n))
    lines += [
        "| persona | declared (this pull request) | as built (image users run) | packages since "
        "the image before |",
        "|---|---|---|---|",
    ]
    for name in order:
        report = reports.get(name, {})
        record = report.get("record")
        if record is not None:
            built = f"{_score(record.get('score'))} ({_cell(report['image']['name'])})"
        else:
            why = report.get("problem") or "; ".join(report.get("refused", [])) or "no record"
            built = f"not shown: {_cell(why)}"
        packages = _package_counts(report.get("package_diff")) if record is not None else "-"
        lines.append(
            f"| {_cell(name)} | {_score(declared[name].get('score'))} | {built} | {packages} |"
        )
    lines.append("")
    left: list[str] = []
    for name in order:
        report = reports.get(name, {})
        if report.get("record") is None:
            continue
        block = _details(name, declared[name], report)
        if len("\n".join(lines + block)) + 200 > limit:
            left.append(name)
            continue
        lines += block
    if left:
        lines.append(
            f"_Not shown here for lack of room: {', '.join(_cell(n) for n in left)}; "
            "`workspaces-image-bakery report PERSONA` shows each._"
        )
    return "\n".join(lines) + "\n"


def served_image(
    bundles: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]],
    images: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]],
    persona: str,
    owner: str,
    persona_key: str,
    owner_key: str,
) -> str | None:
    """The id of the image `persona`'s bundle (not a candidate) of stack `owner` serves."""
    mine = {
        str(i.get("ImageId"))
        for i, t in images
        if t.get(owner_key) == owner and t.get(persona_key) == persona
    }
    for bundle, tags in bundles:
        if tags.get(owner_key) != owner or "-candidate-" in str(bundle.get("Name", "")):
            continue
        if str(bundle.get("ImageId")) in mine:
            return str(bundle.get("ImageId"))
    return None
