"""The pull-request review: a Markdown page written next to the templates on every synth.

It opens with what a reviewer must know first: a warning naming the personas whose template
WorkSpace is prepared by hand, the checklist score, which images this deploy builds (the
expensive part, compared with a baseline), a compact summary table and a Mermaid diagram
of persona -> template WorkSpace -> image -> bundle. The details follow in folds: the
checklist table, then per persona the recipe changes, what will be run on the template
(the script, or its diff against the baseline), warnings and the checklist reasons.

Every value that comes from the user is escaped for where it lands (Markdown table, HTML,
Mermaid label); a deploy-time token shows as "(deploy-time value)". Nothing in the page
depends on the time or the machine, so the same configuration always gives the same page.

The page is posted as a pull-request comment, which has a size limit: `fit` drops the
later folded sections first and says what it left out; the whole review is then written
to ``review-full.md`` beside it.
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast
from weakref import WeakKeyDictionary, WeakSet

import jsii
from aws_cdk import Stack, Stage
from constructs import IConstruct, IValidation, Node

from ..core.runtime_assets import contract
from ..core.validation import is_token
from ..evidence.checklist import PersonaFacts, Scorecard
from ..preparation import ImagePreparation, render_script
from .as_built import AS_BUILT_MARKER, declared_entry, read_declared, write_declared

if TYPE_CHECKING:
    from ..image_build.image import WorkspaceImage

BASELINE_CONTEXT = "workspaces-image-bakery:baseline"
# "false" (or no, off, 0): no review is written on synth; write_review() still writes one.
REVIEW_CONTEXT = "workspaces-image-bakery:review"
REVIEW_FILE = "review.md"
FULL_REVIEW_FILE = "review-full.md"
SCRIPTS_DIR = "preparation"
RECIPE_SUFFIX = ".recipe.json"
# The workflow posts at most 65,000 characters: a marker line, this review, then up to
# 30,000 characters of `cdk diff` in a fold. The review keeps to what is left.
COMMENT_LIMIT = 65_000
DIFF_ALLOWANCE = 31_000
REVIEW_LIMIT = COMMENT_LIMIT - DIFF_ALLOWANCE
FULL_REVIEW_WHERE = (
    f"`{FULL_REVIEW_FILE}` in this run's `cloud-assembly` artifact "
    f"(`cdk.out/{FULL_REVIEW_FILE}` after a local synth)"
)
DEPLOY_TIME = "(deploy-time value)"
RUN_COMMAND = "run-command"


class Persona(Protocol):
    """What the review reads of a persona (``persona.Persona`` registers itself)."""

    @property
    def name(self) -> str: ...
    @property
    def stack(self) -> Stack: ...
    @property
    def node(self) -> Node: ...
    @property
    def preparation(self) -> ImagePreparation | None: ...
    @property
    def image_version(self) -> str: ...
    @property
    def image(self) -> WorkspaceImage: ...
    def facts(self) -> PersonaFacts: ...


# Every persona registered for review, so that a scope's personas are found without
# importing the persona module (it imports this one).
_REGISTERED: WeakSet[Any] = WeakSet()

# Above this many personas the checklist table has one row per persona.
WIDE_CHECKLIST = 6
# Above this many personas, the opening lines name them only where it matters.
SHORT_LIST = 12
NO_BREAK_HYPHEN = "\u2011"

_SECTION = re.compile(r"^<!-- review-section: (?P<kind>[a-z]+)(?: (?P<label>.*))? -->$")
_PART = re.compile(r"^<!-- review-part: (?P<kind>[a-z]+) (?P<label>.*) -->$")
_PART_END = "<!-- review-part-end -->"
_CUT_NOTE = "<!-- review-cut-note -->"
_TOKEN = re.compile(r"[$#]\{Token\[[^\]]*\]\}")
_DEPLOY_TIME_MARK = "\ue000"  # private use: stands for a token until the value is escaped
_INVISIBLE = ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp")
# Characters that mean something to GitHub Markdown or HTML inside a line.
_MARKDOWN_SPECIAL = frozenset('&<>"|\\`*_[]~$')
# What a quoted Mermaid label may hold as it is; everything else becomes #<code>;.
_MERMAID_PLAIN = re.compile(r"[A-Za-z0-9 .,_/:=+@()-]")


# --- Escaping -------------------------------------------------------------------------


def _plain(value: object) -> str:
    """`value` as one line of text: line breaks and invisible characters are spaces, and
    each deploy-time token is a mark that the escapers turn into "(deploy-time value)"."""
    text = "".join(" " if unicodedata.category(char) in _INVISIBLE else char for char in str(value))
    if is_token(text):
        marked = _TOKEN.sub(_DEPLOY_TIME_MARK, text)
        text = marked if marked != text else _DEPLOY_TIME_MARK
    return text


def escape_markdown(value: object) -> str:
    """A user value as inline Markdown/HTML text: safe in a table cell, a list item or an
    HTML element; no pipe, tag, backtick, emphasis or line break survives raw."""
    escaped = "".join(
        f"&#{ord(char)};" if char in _MARKDOWN_SPECIAL else char for char in _plain(value)
    )
    return escaped.replace(_DEPLOY_TIME_MARK, DEPLOY_TIME)


def code(value: object, *, no_break: bool = False) -> str:
    """A user value as ``<code>`` (no mention, link or emoji inside it on GitHub).

    `no_break` keeps it on one line in a narrow table cell: hyphens become non-breaking
    hyphens (GitHub drops ``style`` attributes, so ``white-space: nowrap`` is not an option).
    A deploy-time value is shown as such, not as code."""
    text = escape_markdown(value)
    if _DEPLOY_TIME_MARK in _plain(value):
        return text
    if no_break:
        text = text.replace("-", NO_BREAK_HYPHEN)
    return f"<code>{text}</code>"


def mermaid_label(value: object, *, no_break: bool = False) -> str:
    """A user value inside a quoted Mermaid label: anything but letters, digits and a few
    punctuation marks becomes a Mermaid entity code (``#quot;``, ``#60;``). `no_break`
    keeps a name on one line: Mermaid wraps labels at hyphens, so they become
    non-breaking hyphens (``#8209;``)."""
    parts = []
    for char in _plain(value):
        if char == _DEPLOY_TIME_MARK:
            parts.append(DEPLOY_TIME)
        elif char == '"':
            parts.append("#quot;")
        elif char == "-" and no_break:
            parts.append(f"#{ord(NO_BREAK_HYPHEN)};")
        elif _MERMAID_PLAIN.fullmatch(char):
            parts.append(char)
        else:
            parts.append(f"#{ord(char)};")
    return "".join(parts)


def fence(text: str, language: str) -> list[str]:
    """`text` as one fenced code block whose fence is longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return [f"{marks}{language}", *text.rstrip("\n").splitlines(), marks]


def _nb(value: object) -> str:
    """A name as plain text that does not break at its hyphens."""
    return escape_markdown(value).replace("-", NO_BREAK_HYPHEN)


def _codes(values: Iterable[object]) -> str:
    shown = [code(v) for v in values]
    return ", ".join(shown) if shown else "none"


def _units(text: str) -> int:
    """Length as the workflow's JavaScript counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


# --- Baseline -------------------------------------------------------------------------


class Baseline(dict[str, str]):
    """Persona -> image name in the baseline templates, with the baseline's preparation
    scripts and recipes (persona -> text / JSON) where its cloud assembly has them."""

    def __init__(
        self,
        images: Mapping[str, str],
        scripts: Mapping[str, str] | None = None,
        recipes: Mapping[str, Mapping[str, Any]] | None = None,
        declared: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(images)
        self.scripts: dict[str, str] = dict(scripts or {})
        self.recipes: dict[str, Mapping[str, Any]] = dict(recipes or {})
        # Persona -> declared checklist score of the baseline (its declared-checklist.json).
        self.declared: dict[str, float] = dict(declared or {})


def personas_of(scope: IConstruct) -> list[Persona]:
    return [cast("Persona", c) for c in scope.node.find_all() if c in _REGISTERED]


def load_baseline(path: str | Path | None) -> Baseline | None:
    """Persona -> image name in a baseline template file or cloud assembly folder, with the
    scripts and recipes in its ``preparation`` folder (read now: a synth may overwrite them).

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
    folder = (location if location.is_dir() else location.parent) / SCRIPTS_DIR
    scripts: dict[str, str] = {}
    recipes: dict[str, Mapping[str, Any]] = {}
    for name in images:
        script = folder / f"{name}.sh"
        if script.is_file():
            scripts[name] = script.read_text()
        recipe = folder / f"{name}{RECIPE_SUFFIX}"
        if recipe.is_file():
            data = json.loads(recipe.read_text())
            if isinstance(data, dict):
                recipes[name] = data
    declared: dict[str, float] = {}
    try:
        for name, entry in read_declared(folder.parent).items():
            if isinstance(entry.get("score"), int | float):
                declared[name] = float(entry["score"])
    except ValueError:
        pass  # a baseline from before 0.5 has no declared file
    return Baseline(images, scripts, recipes, declared)


# --- What changes ---------------------------------------------------------------------


class Build(Enum):
    NEW_PERSONA = "new persona"
    CHANGED = "recipe changed"
    UNCHANGED = "recipe unchanged"
    UNKNOWN = "no baseline template to compare with"


@dataclass(frozen=True)
class BuildStatus:
    """Whether this deploy builds a new image for a persona."""

    build: Build
    previous: str | None = None

    @property
    def builds(self) -> bool:
        return self.build in (Build.NEW_PERSONA, Build.CHANGED)

    @property
    def short(self) -> str:
        if self.builds:
            return f"**yes**: {self.build.value}"
        return "no" if self.build is Build.UNCHANGED else "unknown"

    @property
    def detail(self) -> str:
        if self.build is Build.CHANGED:
            return f"**yes**: recipe changed (was {code(self.previous)})"
        if self.builds:
            return f"**yes**: {self.build.value}"
        if self.build is Build.UNCHANGED:
            return f"no: {self.build.value}"
        return f"unknown: {self.build.value}"


def build_status(persona: PersonaFacts, baseline: Mapping[str, str] | None) -> BuildStatus:
    if baseline is None:
        return BuildStatus(Build.UNKNOWN)
    previous = baseline.get(persona.name)
    if previous is None:
        return BuildStatus(Build.NEW_PERSONA)
    if previous != persona.image_name:
        return BuildStatus(Build.CHANGED, previous)
    return BuildStatus(Build.UNCHANGED, previous)


def _flat(recipe: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def recipe_changes(
    current: Mapping[str, Any], previous: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for every recipe field that differs (one level deep)."""
    now, before = _flat(current), _flat(previous)
    missing = object()
    return [
        (key, before.get(key), now.get(key))
        for key in sorted(set(now) | set(before))
        if before.get(key, missing) != now.get(key, missing)
    ]


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _recipe_text(
    name: str,
    status: BuildStatus,
    recipe: Mapping[str, Any] | None,
    baseline: Mapping[str, str] | None,
) -> str:
    if baseline is None:
        return "first review: no baseline to compare with"
    if status.build is Build.NEW_PERSONA:
        return "new persona: everything is new"
    previous = baseline.recipes.get(name) if isinstance(baseline, Baseline) else None
    if recipe is None or previous is None:
        if status.build is Build.UNCHANGED:
            return "none (same image name as the baseline)"
        return "not recorded in the baseline; the image name changed (see the script below)"
    changes = recipe_changes(recipe, previous)
    if not changes:
        return "none"
    shown = []
    for key, before, after in changes:
        if _scalar(before) and _scalar(after):
            shown.append(f"{code(key)} ({code(_json(before))} → {code(_json(after))})")
        else:
            shown.append(code(key))
    return ", ".join(shown)


# --- Per persona ----------------------------------------------------------------------


def _channel(p: PersonaFacts) -> str:
    return str(getattr(p, "preparation_channel", "by-hand"))


def _prepared_text(p: PersonaFacts) -> str:
    if _channel(p) == RUN_COMMAND:
        return "in the build (Run Command)"
    return "by hand" if p.preparation is not None else "by hand, no script"


def _enum_text(value: object) -> str:
    return str(value.value if isinstance(value, Enum) else value)


def agent_names(p: PersonaFacts) -> list[str]:
    """Every agent and tool the persona declares."""
    prep = p.preparation
    names: list[str] = []
    if prep is not None:
        names += prep.installed_software()
    names += [p.config_management_agent] if p.config_management_agent else []
    return sorted(set(names))


def _in_script(name: str, script: str) -> bool:
    words = name.lower().split(maxsplit=1)
    return bool(words) and words[0] in script.lower()


def declared_not_done(p: PersonaFacts, script_path: str, script: str | None) -> list[str]:
    """Warnings for what the configuration declares but the build does not carry out: a
    preparation the build does not run, and what the script (`script`) leaves out."""
    prep = p.preparation
    if prep is None:
        return [
            "no preparation declared: the template WorkSpace is prepared by hand and nothing "
            "records how"
        ]
    found = []
    if _channel(p) != RUN_COMMAND:
        found.append(
            f"preparation: declared, not run by the build: run {code(script_path)} on the "
            "template WorkSpace before deploying, or the image is taken from the template "
            "as it is"
        )
    text = script or ""
    if prep.remove_user_sudo and "sudo" not in text:
        found.append(
            "remove_user_sudo: declared, not in the script: a startup script or "
            "configuration management must remove the users' sudo rights"
        )
    missing = [name for name in agent_names(p) if not _in_script(name, text)]
    if missing:
        found.append(
            f"agents and tools {_codes(missing)}: declared, not in the script, so it does not "
            "install them"
        )
    return found


def _protocol_text(prep: object) -> str:
    declared = getattr(prep, "streaming_protocol", None)
    if declared is not None:
        return code(_enum_text(declared))
    effective = getattr(prep, "protocol", None)
    if effective is not None:
        return f"{code(_enum_text(effective))} (the operating system's default)"
    return "not declared"


def _script_block(
    p: PersonaFacts, script: str | None, baseline: Mapping[str, str] | None, path: str
) -> list[str]:
    if script is None:
        return ["Nothing is run on the template WorkSpace: no preparation is declared.", ""]
    runner = "the build runs" if _channel(p) == RUN_COMMAND else "run by hand"
    previous = baseline.scripts.get(p.name) if isinstance(baseline, Baseline) else None
    if previous is not None and previous != script:
        diff = list(
            difflib.unified_diff(
                previous.splitlines(),
                script.splitlines(),
                f"baseline/{path}",
                path,
                lineterm="",
            )
        )
        added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
        summary = (
            f"Changes to {code(path)} since the baseline ({runner}): "
            f"{added} added, {removed} removed"
        )
        body = fence("\n".join(diff), "diff")
    elif previous is not None:
        return [
            f"The script {code(path)} is unchanged since the baseline ({runner}).",
            "",
        ]
    else:
        state = "not in the baseline" if baseline is not None else "first review"
        summary = (
            f"What will be run on the template: {code(path)} "
            f"({runner}; {len(script.splitlines())} lines; {state})"
        )
        body = fence(script, "bash")
    return [
        f"<!-- review-part: script {escape_markdown(path)} -->",
        f"<details><summary>{summary}</summary>",
        "",
        *body,
        "",
        "</details>",
        _PART_END,
        "",
    ]


def _reasons(card: Scorecard, name: str) -> list[str]:
    score = card.scores[name]
    lines = [f"<details><summary>Checklist reasons ({score}/5)</summary>", ""]
    lines += [
        f"{a.number}. {'n/a' if a.score is None else a.score}: {escape_markdown(a.reason)}"
        for a in card.per_persona[name]
    ]
    return [*lines, "", "</details>", ""]


def _persona_section(
    p: PersonaFacts,
    status: BuildStatus,
    warnings: Sequence[str],
    *,
    card: Scorecard,
    script: str | None,
    recipe: Mapping[str, Any] | None,
    baseline: Mapping[str, str] | None,
) -> list[str]:
    path = f"{SCRIPTS_DIR}/{p.name}.sh"
    prep = p.preparation
    agent = f" (by {code(p.config_management_agent)})" if p.config_management_agent else ""
    rows = [
        ("Design option", escape_markdown(p.design)),
        ("Image", f"{code(p.image_name)} (version {code(p.image_version)})"),
        ("Builds a new image on deploy", status.detail),
        ("Recipe changes", _recipe_text(p.name, status, recipe, baseline)),
        ("Template WorkSpace", code(p.template_workspace_id)),
        ("Template prepared", _prepared_text(p)),
        (
            "Operating system",
            code(prep.operating_system.value) if prep else "not declared",
        ),
        ("Streaming protocol", _protocol_text(prep) if prep else "not declared"),
        ("Baked into the image", _codes(p.baked_applications)),
        (
            "Delivered at launch",
            _codes(p.launch_applications) + (agent if p.launch_applications else ""),
        ),
        (
            "Config management agent",
            code(p.config_management_agent) if p.config_management_agent else "none",
        ),
        (
            "Bundle",
            f"{code(p.bundle_name)}: {escape_markdown(p.compute_type)}, root "
            f"{p.root_volume_gib} GB, user {p.user_volume_gib} GB",
        ),
        (
            "Release",
            escape_markdown(p.release or "not declared")
            + (
                f"; candidate bundle {code(p.candidate_bundle_name)}"
                if p.candidate_bundle_name
                else ""
            ),
        ),
        ("Vulnerability gate", _gate_text(p)),
        ("Patch cadence", _patch_text(p)),
        ("Licences", _codes(f"{a} -> {r}" for a, r in sorted(p.license_references.items()))),
        ("Tags", _codes(f"{k}={v}" for k, v in sorted(p.tags.items()))),
    ]
    summary = (
        f"<b>{escape_markdown(p.name)}</b>: {escape_markdown(p.design)} image, "
        f"prepared {_prepared_text(p)}{', <b>builds a new image</b>' if status.builds else ''}"
    )
    lines = [
        f"<!-- review-section: persona {escape_markdown(p.name)} -->",
        f"<details><summary>{summary}</summary>",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
    ]
    problems = [*declared_not_done(p, path, script), *(escape_markdown(w) for w in warnings)]
    lines += [f"- **Warning**: {w}" for w in problems]
    lines += [""] if problems else []
    lines += _script_block(p, script, baseline, path)
    lines += _reasons(card, p.name)
    return [*lines, "</details>", ""]


def _gate_text(p: PersonaFacts, today: datetime.date | None = None) -> str:
    """The declared gate (the build applies it before the image; findings are in each
    image's record and `report`), with each acceptance and whether its day has passed."""
    gate = p.vulnerability_gate
    scanned = p.preparation_channel == "run-command"
    if gate is None:
        return (
            "none: findings recorded, never gating"
            if scanned
            else "none (prepared by hand: no inventory, nothing scanned)"
        )
    day = today or datetime.datetime.now(datetime.UTC).date()
    accepted = [
        f"{code(a['id'])} until {a['until']}"
        + (" (<b>expired</b>)" if datetime.date.fromisoformat(a["until"]) < day else "")
        + f": {escape_markdown(a['reason'])}"
        for a in gate.get("accepted", [])
    ]
    text = f"stops the build at {code(gate['severity'])} or above"
    if not scanned:
        text += " (declared; prepared by hand: nothing is scanned)"
    return text + (f"; accepted: {'; '.join(accepted)}" if accepted else "")


def _patch_text(p: PersonaFacts) -> str:
    """The declared schedule and the patch level this synth was given (the runtime raises
    it; `workspaces-image-bakery status` shows when updates were last found)."""
    cadence = p.patch_schedule
    if cadence is None:
        return "none: rebuilt when the recipe or the rebuild token changes"
    level = (
        f"patch level {code(p.patch_level)} (from the synth's patch levels)"
        if p.patch_level
        else "no patch level given to this synth"
    )
    return (
        f"checked for pending security updates {code(cadence['schedule'])} "
        f"({escape_markdown(str(cadence['time_zone']))}); {level}; the schedule disables "
        f"itself after {cadence['failures_before_disable']} failed builds in a row"
    )


# --- The whole page -------------------------------------------------------------------


def _summary_table(
    personas: Sequence[PersonaFacts], statuses: Mapping[str, BuildStatus]
) -> list[str]:
    lines = [
        "| Persona | New image | Image | Bundle | Template prepared |",
        "|---|---|---|---|---|",
    ]
    for p in personas:
        lines.append(
            f"| {_nb(p.name)} | {statuses[p.name].short} | {code(p.image_name, no_break=True)} "
            f"| {code(p.bundle_name, no_break=True)} | {_prepared_text(p)} |"
        )
    return [*lines, ""]


def _diagram(personas: Sequence[PersonaFacts], statuses: Mapping[str, BuildStatus]) -> list[str]:
    lines = [
        "## Persona -> template WorkSpace -> image -> bundle",
        "",
        "**NEW IMAGE** (thick orange border): this deploy builds it; dashed border: no "
        "baseline to tell.",
        "",
        "```mermaid",
        "flowchart LR",
        "  classDef persona fill:#e7f5ff,stroke:#1c7ed6,color:#000",
        "  classDef build fill:#fff4e6,stroke:#e8590c,stroke-width:4px,color:#000",
        "  classDef unknown stroke-dasharray:5 4",
    ]
    for index, p in enumerate(personas):
        status = statuses[p.name]
        if status.builds:
            image, style = "NEW IMAGE", "build"
        elif status.build is Build.UNCHANGED:
            image, style = "image, unchanged", ""
        else:
            image, style = "image", "unknown"
        template = mermaid_label(p.template_workspace_id, no_break=True)
        compute = mermaid_label(p.compute_type, no_break=True)
        lines += [
            f'  p{index}(["{mermaid_label(p.name, no_break=True)}"]):::persona'
            f' --> t{index}["template#160;WorkSpace<br/>{template}"]'
            f' --> i{index}["{image}<br/>{mermaid_label(p.image_name, no_break=True)}"]'
            f' --> b{index}["bundle#160;{compute}<br/>'
            f'{mermaid_label(p.bundle_name, no_break=True)}"]',
        ]
        if style:
            lines.append(f"  class i{index} {style}")
    return [*lines, "```", ""]


def _checklist_section(card: Scorecard) -> list[str]:
    names = list(card.per_persona)
    first = card.per_persona[names[0]]
    lines = [
        "<!-- review-section: checklist -->",
        "<details><summary>Image design checklist (whitepaper Appendix A), declared: "
        f"{card.overall}/5 overall</summary>",
        "",
        "Scores 1 (not aligned) to 5 (highly aligned); n/a = not assessable from code. "
        "**Declared**: scored at synth from what the recipe asks for, a plan. What each built "
        "image holds is scored by the build itself (the as-built checklist in its record: "
        "`workspaces-image-bakery report PERSONA`), and `checklist-minimum` gates that.",
        "",
    ]
    if len(names) <= WIDE_CHECKLIST:
        lines += [
            "| # | Principle | Task | " + " | ".join(_nb(n) for n in names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for index, item in enumerate(first):
            scores = [card.per_persona[n][index].score for n in names]
            cells = " | ".join("n/a" if s is None else str(s) for s in scores)
            lines.append(
                f"| {item.number} | {escape_markdown(item.principle)} | "
                f"{escape_markdown(item.task)} | {cells} |"
            )
        lines.append(
            "| | | **Score** | " + " | ".join(f"**{card.scores[n]}**" for n in names) + " |"
        )
    else:
        lines += [
            *[
                f"{a.number}. {escape_markdown(a.principle)}: {escape_markdown(a.task)}"
                for a in first
            ],
            "",
            "| Persona | Score | " + " | ".join(str(a.number) for a in first) + " |",
            "|---|---|" + "---|" * len(first),
        ]
        for n in names:
            cells = " | ".join(
                "n/a" if a.score is None else str(a.score) for a in card.per_persona[n]
            )
            lines.append(f"| {_nb(n)} | **{card.scores[n]}** | {cells} |")
    return [*lines, "", "</details>", ""]


def _names(names: Sequence[str]) -> str:
    return ", ".join(_nb(n) for n in names)


def _checklist_line(card: Scorecard) -> str:
    if len(card.scores) <= SHORT_LIST:
        return escape_markdown(card.summary())
    lowest = sorted(card.scores.items(), key=lambda item: item[1])[:3]
    shown = ", ".join(f"{_nb(name)} {score}" for name, score in lowest)
    return (
        f"Image design checklist (declared): {card.overall}/5 overall over "
        f"{len(card.scores)} personas "
        f"(lowest: {shown})"
    )


def _declared_changes(card: Scorecard, baseline: Mapping[str, str] | None) -> list[str]:
    """One line naming the personas whose declared score differs from the baseline's."""
    before: Mapping[str, float] = getattr(baseline, "declared", {}) or {}
    changed = [
        f"{_nb(name)} {before[name]} -> {score}"
        for name, score in card.scores.items()
        if name in before and before[name] != score
    ]
    if not before or not changed:
        return []
    return [f"Declared checklist changes: {', '.join(changed)}.", ""]


def _by_hand_warning(
    personas: Sequence[PersonaFacts], by_hand: Sequence[PersonaFacts]
) -> list[str]:
    """The warning for personas the build does not prepare: each name once, folded when the
    list is long (the changes above stay first)."""
    unscripted = [p.name for p in by_hand if p.preparation is None]
    if len(unscripted) == len(by_hand):
        scripts = (
            "; none of them has a preparation script"
            if len(by_hand) > 1
            else ("; it has no preparation script")
        )
    else:
        scripts = f"; no script at all for {_names(unscripted)}" if unscripted else ""
    head = f"**Prepared by hand, not by the build** ({len(by_hand)} of {len(personas)})"
    tail = f"The image is taken from the template WorkSpace as it is left{scripts}."
    if len(by_hand) == len(personas) > SHORT_LIST:
        return ["> [!WARNING]", f"> {head}: all {len(personas)} personas. {tail}", ""]
    names = ", ".join(_nb(p.name) for p in by_hand)
    if len(by_hand) > SHORT_LIST:
        return [
            "> [!WARNING]",
            f"> {head}. {tail}",
            "",
            f"<details><summary>The {len(by_hand)} personas prepared by hand</summary>",
            "",
            names,
            "",
            "</details>",
            "",
        ]
    return ["> [!WARNING]", f"> {head}: {names}. {tail}", ""]


def render(
    title: str,
    personas: Sequence[PersonaFacts],
    baseline: Mapping[str, str] | None,
    warnings: Mapping[str, Sequence[str]] | None = None,
    *,
    scripts: Mapping[str, str] | None = None,
    recipes: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The whole review. `scripts` and `recipes` (persona -> rendered preparation script,
    resolved recipe) come from the constructs; a persona's own ``preparation_script`` wins."""
    card = Scorecard.of(personas)
    statuses = {p.name: build_status(p, baseline) for p in personas}
    builds = [p.name for p in personas if statuses[p.name].builds]
    lines = [f"# WorkSpaces images and bundles: {escape_markdown(title)}", ""]
    # What this pull request changes comes first: new images, then checklist changes, then
    # (in the workflow's comment) the as-built section in place of its marker.
    if baseline is None:
        lines.append("New images on deploy: unknown (no baseline template given).")
    elif builds:
        lines.append(
            f"New images on deploy: **{len(builds)}** ({_names(builds)}); "
            "each build takes 45 minutes or more."
        )
    else:
        lines.append("New images on deploy: none.")
    lines += ["", *_declared_changes(card, baseline), AS_BUILT_MARKER, ""]
    by_hand = [p for p in personas if _channel(p) != RUN_COMMAND]
    if by_hand:
        lines += _by_hand_warning(personas, by_hand)
    lines += [_CUT_NOTE, "", _checklist_line(card) if personas else "No personas.", ""]
    if personas:
        lines += _summary_table(personas, statuses)
        lines += _diagram(personas, statuses)
        lines += ["<!-- review-section: heading -->", "## Details", ""]
        lines += _checklist_section(card)
    # Personas whose image is rebuilt first: they are what a shortened review keeps.
    for p in sorted(personas, key=lambda p: not statuses[p.name].builds):
        script = getattr(p, "preparation_script", None) or (scripts or {}).get(p.name)
        lines += _persona_section(
            p,
            statuses[p.name],
            (warnings or {}).get(p.name, ()),
            card=card,
            script=script,
            recipe=(recipes or {}).get(p.name),
            baseline=baseline,
        )
    return "\n".join(lines)


# --- Fitting into a comment -----------------------------------------------------------


def _listed(labels: Sequence[str]) -> str:
    names = [label.replace("-", NO_BREAK_HYPHEN) for label in labels]
    return ", ".join(names) if len(names) <= 4 else f"{names[0]} … {names[-1]}"


def _left_out(dropped: Sequence[tuple[str, str]]) -> str:
    scripts = [label for kind, label in dropped if kind == "script"]
    personas = [label for kind, label in dropped if kind == "persona"]
    parts = []
    if scripts:
        parts.append(f"{len(scripts)} preparation script(s) ({_listed(scripts)})")
    if personas:
        parts.append(f"the details of {len(personas)} persona(s) ({_listed(personas)})")
    if any(kind == "checklist" for kind, _ in dropped):
        parts.append("the image design checklist table")
    return " and ".join(parts) if parts else "the end of the review"


@dataclass
class _Section:
    kind: str
    label: str
    lines: list[str]
    stubbed: list[tuple[str, str]] = field(default_factory=list)


def _stub_last_part(section: _Section) -> tuple[str, str] | None:
    """Replace the section's last foldable part (a script) by one line; its (kind, label)."""
    for start in range(len(section.lines) - 1, -1, -1):
        match = _PART.match(section.lines[start])
        if match:
            end = section.lines.index(_PART_END, start)
            stub = (
                f"_The script <code>{match['label']}</code> is left out here to fit a comment "
                "(see the note at the top)._"
            )
            section.lines[start : end + 1] = [stub]
            return match["kind"], match["label"]
    return None


def fit(markdown: str, limit: int = COMMENT_LIMIT, *, full_review: str = FULL_REVIEW_WHERE) -> str:
    """`markdown` in at most `limit` characters (UTF-16 units, as the workflow counts).

    The review is cut only at its markers, from the end: first the preparation scripts
    inside the persona folds are replaced by a line each (the last persona's first), then
    whole folded sections are dropped (the last persona's details first, the checklist
    table last), so the warning, the summary table and the diagram stay. A note under the
    title says what was left out and where the full review is. If the head alone is still
    too long, it is cut at a line (a code block left open is closed)."""
    if _units(markdown) <= limit:
        return markdown
    head: list[str] = []
    sections: list[_Section] = []
    for line in markdown.split("\n"):
        match = _SECTION.match(line)
        if match:
            sections.append(_Section(match["kind"], match["label"] or "", [line]))
        elif sections:
            sections[-1].lines.append(line)
        else:
            head.append(line)
    dropped: list[tuple[str, str]] = []

    def note(detail: str = "") -> str:
        return (
            "> [!NOTE]\n> **Shortened to fit a pull-request comment**: left out "
            f"{_left_out(dropped)}{detail}. The full review is {full_review}."
        )

    def assemble(text_note: str) -> str:
        body = [*head, *(line for section in sections for line in section.lines)]
        while body and body[-1] == "":
            body.pop()
        if any(kind != "script" for kind, _ in dropped):
            body += ["", "_(Shortened here: see the note at the top.)_"]
        body.append("")
        text = "\n".join(body)
        if _CUT_NOTE in text:
            return text.replace(_CUT_NOTE, text_note, 1)
        first, _, rest = text.partition("\n")
        return f"{first}\n\n{text_note}\n{rest}"

    def fits() -> bool:
        return _units(assemble(note())) <= limit

    for section in reversed(sections):
        while (part := _stub_last_part(section)) is not None:
            dropped.insert(0, part)
            section.stubbed.append(part)
            if fits():
                return assemble(note())
    while sections:
        section = sections.pop()
        dropped[:] = [entry for entry in dropped if entry not in section.stubbed]
        dropped.insert(0, (section.kind, section.label))
        while sections and sections[-1].kind == "heading":  # no heading without its sections
            heading = sections.pop()
            dropped.insert(0, (heading.kind, heading.label))
        if fits():
            return assemble(note())
    # Even the summary and the diagram are too long: cut the head at a line.
    detail = "; the summary below is cut short"
    budget = limit - _units(note(detail)) - 200
    cut: list[str] = []
    used = 0
    for line in head:
        if used + _units(line) + 1 > budget:
            break
        cut.append(line)
        used += _units(line) + 1
    if sum(1 for line in cut if line.startswith("```")) % 2:
        cut.append("```")
    head[:] = cut
    return assemble(note(detail))


# --- Writing it -----------------------------------------------------------------------


def _warnings_of(persona: Persona) -> list[str]:
    """The warnings on the persona itself, where the library adds them (Persona._warn).
    Its children are not read: each holds CDK's own metadata (a logical id per resource),
    and reading it back costs four jsii round trips per entry (docs/performance.md)."""
    return [
        str(entry.data).split(" [ack:")[0]
        for entry in persona.node.metadata
        if entry.type == "aws:cdk:warning"
    ]


def _script_of(persona: Persona, facts: PersonaFacts) -> str | None:
    """The script the build runs, else the one to run by hand (rendered the same way)."""
    script = getattr(facts, "preparation_script", None)
    if isinstance(script, str):
        return script
    if persona.preparation is None:
        return None
    return render_script(
        persona.preparation,
        persona=persona.name,
        version=persona.image_version,
        fingerprint=persona.image.fingerprint,
        design=facts.design,
        launch_applications=facts.launch_applications,
    )


def write_review(
    stacks: Sequence[Stack],
    outdir: str | Path,
    baseline: Mapping[str, str] | None,
    *,
    limit: int = REVIEW_LIMIT,
) -> tuple[Path, str]:
    """Write review.md (fitted to `limit`), the preparation scripts and recipes into
    `outdir`, and review-full.md when review.md had to be shortened; return the path of
    review.md and the checklist summary. A synth writes the review by itself (see
    :class:`AutoReview`): when it already wrote this one (same personas, folder and
    baseline), nothing is written again."""
    personas = [p for stack in stacks for p in personas_of(stack)]
    title = ", ".join(s.stack_name for s in stacks)
    written = AutoReview.written_for(personas, outdir, baseline, limit)
    if written is not None:
        return written
    return _write(personas, title, outdir, baseline, limit)


def _write(
    personas: Sequence[Persona],
    title: str,
    outdir: str | Path,
    baseline: Mapping[str, str] | None,
    limit: int,
) -> tuple[Path, str]:
    out = Path(outdir)
    facts = [p.facts() for p in personas]
    warnings = {p.name: _warnings_of(p) for p in personas}
    scripts = {p.name: s for p, f in zip(personas, facts, strict=True) if (s := _script_of(p, f))}
    recipes: dict[str, Mapping[str, Any]] = {
        p.name: p.image.stack.resolve(dict(p.image.recipe)) for p in personas
    }
    text = render(title, facts, baseline, warnings, scripts=scripts, recipes=recipes)
    fitted = fit(text, limit)
    path = out / REVIEW_FILE
    path.write_text(fitted)
    full = out / FULL_REVIEW_FILE
    if fitted != text:
        full.write_text(text)
    elif full.exists():
        full.unlink()
    folder = out / SCRIPTS_DIR
    if personas:
        folder.mkdir(exist_ok=True)
        card = Scorecard.of(facts)
        write_declared(
            folder,
            {
                f.name: declared_entry(
                    p.stack.stack_name,
                    f.image_name,
                    card.scores[f.name],
                    {a.number: a.score for a in card.per_persona[f.name]},
                )
                for p, f in zip(personas, facts, strict=True)
            },
        )
    for persona in personas:
        recipe = json.dumps(recipes[persona.name], indent=2, sort_keys=True)
        (folder / f"{persona.name}{RECIPE_SUFFIX}").write_text(recipe + "\n")
        if persona.name in scripts:
            script = folder / f"{persona.name}.sh"
            script.write_text(scripts[persona.name])
            script.chmod(0o755)
    return path, Scorecard.of(facts).summary()


def _same_baseline(a: Mapping[str, str] | None, b: Mapping[str, str] | None) -> bool:
    if a is None or b is None:
        return a is b
    parts = ("scripts", "recipes")
    return dict(a) == dict(b) and all(getattr(a, p, {}) == getattr(b, p, {}) for p in parts)


def review_enabled(scope: IConstruct) -> bool:
    """False when the context value ``workspaces-image-bakery:review`` says no."""
    value = scope.node.try_get_context(REVIEW_CONTEXT)
    return str(value).strip().lower() not in ("false", "no", "off", "0")


@jsii.implements(IValidation)
class AutoReview:
    """Writes the review, the preparation scripts and the recipes of a stage's personas
    into its cloud assembly whenever the stage synthesizes (``cdk synth``, ``app.synth()``,
    a test's ``Template.from_stack``): no code needed in the app. The first persona of a
    stage (an app is one) adds it as a validation of the stage, which the CDK runs after
    the aspects and before it writes the templates, so the baseline is the previous synth's
    templates (or the ``workspaces-image-bakery:baseline`` context value). The context
    value ``workspaces-image-bakery:review=false`` turns it off. Prints one line: the
    checklist summary and where the review is."""

    _of: ClassVar[WeakKeyDictionary[Stage, AutoReview]] = WeakKeyDictionary()
    _by_stack: ClassVar[WeakKeyDictionary[Stack, AutoReview | None]] = WeakKeyDictionary()

    def __init__(self, stage: Stage) -> None:
        self._stage = stage
        self._personas: list[Persona] = []
        # Resolved folder -> (persona ids, baseline, limit, result) of what was written.
        self._written: dict[Path, tuple[list[int], Baseline | None, int, tuple[Path, str]]] = {}

    @classmethod
    def register(cls, persona: Persona) -> None:
        """Review `persona` with the rest of its stage on every synth."""
        _REGISTERED.add(persona)
        if persona.stack in cls._by_stack:
            review = cls._by_stack[persona.stack]
        else:
            stage = Stage.of(persona.stack)
            review = None if stage is None else cls._of.get(stage)
            if stage is not None and review is None:
                review = cls._of[stage] = cls(stage)
                stage.node.add_validation(review)
            cls._by_stack[persona.stack] = review
        if review is not None:
            review._personas.append(persona)

    @classmethod
    def written_for(
        cls,
        personas: Sequence[Persona],
        outdir: str | Path,
        baseline: Mapping[str, str] | None,
        limit: int,
    ) -> tuple[Path, str] | None:
        """What a synth already wrote for these personas into `outdir`, else None."""
        folder = Path(outdir).resolve()
        ids = [id(p) for p in personas]
        for review in list(cls._of.values()):
            done = review._written.get(folder)
            if done and done[0] == ids and done[2] == limit and _same_baseline(done[1], baseline):
                return done[3]
        return None

    def validate(self) -> list[str]:
        if not self._personas or not review_enabled(self._stage):
            return []
        outdir = Path(self._stage.outdir)
        baseline = load_baseline(self._stage.node.try_get_context(BASELINE_CONTEXT) or outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        stacks = list(dict.fromkeys(p.stack for p in self._personas))
        title = ", ".join(s.stack_name for s in stacks)
        result = _write(self._personas, title, outdir, baseline, REVIEW_LIMIT)
        ids = [id(p) for p in self._personas]
        self._written[outdir.resolve()] = (ids, baseline, REVIEW_LIMIT, result)
        print(f"{result[1]}; review: {result[0]}", file=sys.stderr)
        return []
