"""The review written next to the templates: golden, stable, right about rebuilds, read in
the right order, escaped, and short enough for a pull-request comment."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Match

from workspaces_image_bakery import (
    Compute,
    ImageDesign,
    ImagePreparation,
    PersonaFacts,
    Scorecard,
    load_baseline,
    write_review,
)
from workspaces_image_bakery.review.as_built import (
    AS_BUILT_MARKER,
    read_declared,
    render_as_built,
)
from workspaces_image_bakery.review.review import (
    DEPLOY_TIME,
    FULL_REVIEW_FILE,
    NO_BREAK_HYPHEN,
    REVIEW_LIMIT,
    Baseline,
    agent_names,
    code,
    declared_not_done,
    escape_markdown,
    fence,
    fit,
    mermaid_label,
    personas_of,
    render,
)

from .harness.stacks import many_personas_stack
from .harness.synth import synth_reference

GOLDEN = Path(__file__).parent / "golden" / "review.md"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
NB = NO_BREAK_HYPHEN

HOSTILE = (
    "a|b",
    "<img src=x onerror=alert(1)>",
    "`rm -rf`",
    "line\nbreak",
    "end]]",
    'say "hi"',
    "<script>alert(1)</script>",
    "**bold** _em_ [link](http://x) ~~s~~ $x$",
)
RAW = ("|", "<img", "<script", "`", "\n", "]]", '"', "**", "_em_", "[link]", "~~", "$x$")


@pytest.fixture(scope="module")
def reference() -> cdk.Stack:
    """The reference app as it is: every template prepared in the build."""
    stack, _ = synth_reference()
    return stack


@pytest.fixture(scope="module")
def by_hand() -> cdk.Stack:
    """The reference app without managed nodes: every template prepared by hand."""
    stack, _ = synth_reference(context={"templateManagedNodes": {}})
    return stack


def review_of(stack: cdk.Stack, folder: Path, baseline: dict[str, str] | None) -> str:
    path, _ = write_review([stack], folder, baseline)
    return path.read_text()


def full_review_of(stack: cdk.Stack, folder: Path, baseline: dict[str, str] | None) -> str:
    """The whole review: review-full.md when review.md had to be shortened."""
    path, _ = write_review([stack], folder, baseline)
    full = folder / FULL_REVIEW_FILE
    return full.read_text() if full.exists() else path.read_text()


def mermaid_of(text: str) -> str:
    match = re.search(r"^```mermaid\n(.*?)^```$", text, re.S | re.M)
    assert match, "no Mermaid block"
    return match.group(1)


def baseline_folder(stack: cdk.Stack, folder: Path) -> Path:
    """A cloud assembly as the base branch leaves it: template, scripts and recipes."""
    folder.mkdir()
    template = cdk.assertions.Template.from_stack(stack).to_json()
    (folder / f"{stack.stack_name}.template.json").write_text(json.dumps(template))
    write_review([stack], folder, None)
    return folder


def set_baseline_image(folder: Path, persona: str, image_name: str) -> None:
    file = next(folder.glob("*.template.json"))
    template = json.loads(file.read_text())
    for resource in template["Resources"].values():
        if (
            resource["Type"] == "Custom::WorkSpacesImage"
            and resource["Properties"]["Persona"] == persona
        ):
            resource["Properties"]["ImageName"] = image_name
    file.write_text(json.dumps(template))


# --- Golden and stability -------------------------------------------------------------


def test_review_matches_the_golden_file(reference: cdk.Stack, tmp_path: Path) -> None:
    text = review_of(reference, tmp_path, None)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_review_is_stable_across_synths(reference: cdk.Stack, tmp_path: Path) -> None:
    again, _ = synth_reference()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert review_of(reference, tmp_path / "a", None) == review_of(again, tmp_path / "b", None)


# --- What a reviewer sees first -------------------------------------------------------


def test_summary_and_diagram_come_first_and_details_are_folded(
    by_hand: cdk.Stack, tmp_path: Path
) -> None:
    text = review_of(by_hand, tmp_path, None)
    warning = text.index("> [!WARNING]")
    table = text.index("| Persona | New image | Image | Bundle | Template prepared |")
    diagram = text.index("```mermaid")
    details = text.index("<details>")
    assert warning < table < diagram < details
    assert text.count("<details>") == text.count("</details>")
    for persona in ("developer", "office", "contractor"):
        assert f"<details><summary><b>{persona}</b>:" in text
    assert "<details><summary>Image design checklist (whitepaper Appendix A), declared:" in text
    # Names in the summary table stay on one line (GitHub drops style attributes).
    assert re.search(rf"\| <code>developer{NB}1\.0\.0{NB}[0-9a-f]{{8}}</code> \|", text)
    assert re.search(rf"\| <code>developer{NB}[0-9a-f]{{6}}</code> \|", text)
    # The details keep plain hyphens, so a name can be copied from there.
    assert re.search(r"\| Image \| <code>developer-1\.0\.0-[0-9a-f]{8}</code>", text)


def test_diagram_names_the_persona_of_every_row(reference: cdk.Stack, tmp_path: Path) -> None:
    diagram = mermaid_of(review_of(reference, tmp_path, None))
    assert diagram.startswith("flowchart LR\n")
    rows = [line for line in diagram.splitlines() if " --> " in line]
    assert len(rows) == 3
    for row, persona in zip(rows, ("developer", "office", "contractor"), strict=True):
        assert row.lstrip().startswith(f'p{rows.index(row)}(["{persona}"]):::persona')
        # Every label is quoted; names use non-breaking hyphens (#8209;).
        assert re.search(rf'i\d\["image<br/>{persona}#8209;1\.0\.0#8209;[0-9a-f]{{8}}"\]', row)
    assert diagram.count("class i") == 3 and "unknown" in diagram  # no baseline: dashed


def test_review_tells_which_personas_build_a_new_image(
    reference: cdk.Stack, tmp_path: Path
) -> None:
    base = baseline_folder(reference, tmp_path / "base")
    set_baseline_image(base, "office", "office-0.9.0-00000000")
    baseline = load_baseline(base)
    assert baseline is not None
    text = review_of(reference, tmp_path, baseline)
    assert "New images on deploy: **1** (office)" in text
    assert "**yes**: recipe changed (was <code>office-0.9.0-00000000</code>)" in text
    assert text.count("no: recipe unchanged") == 2
    assert re.search(r"\| office \| \*\*yes\*\*: recipe changed \| <code>office", text)
    diagram = mermaid_of(text)
    assert re.search(r'i1\["NEW IMAGE<br/>office#8209;', diagram)
    assert "  class i1 build" in diagram
    assert 'i0["image, unchanged<br/>' in diagram
    # The persona whose image is rebuilt comes first in the details.
    assert text.index("<summary><b>office</b>") < text.index("<summary><b>developer</b>")
    del baseline["contractor"]
    assert "**yes**: new persona" in review_of(reference, tmp_path, baseline)


def test_prepared_by_hand_is_said_in_the_first_lines(by_hand: cdk.Stack, tmp_path: Path) -> None:
    """What the pull request changes (new images, then the as-built section's marker) leads;
    the warning follows at once."""
    text = review_of(by_hand, tmp_path, None)
    head = text.splitlines()[:8]
    assert head[2].startswith("New images on deploy:") and head[4] == AS_BUILT_MARKER
    assert head[6] == "> [!WARNING]"
    assert head[7].startswith(
        "> **Prepared by hand, not by the build** (3 of 3): developer, office, contractor."
    )
    assert text.count("preparation: declared, not run by the build") == 3
    assert text.count("| by hand |") == 3 + 3  # summary column and details row


@dataclasses.dataclass(frozen=True)
class Automated(PersonaFacts):
    """PersonaFacts with the preparation channel, whether or not checklist.py has it yet."""

    preparation_channel: str = "run-command"
    preparation_script: str | None = None


def prepared_in_build(facts: PersonaFacts, script: str) -> PersonaFacts:
    values = {f.name: getattr(facts, f.name) for f in dataclasses.fields(facts)}
    values.update(preparation_channel="run-command", preparation_script=script)
    return Automated(**values)


def facts_of(stack: cdk.Stack) -> dict[str, PersonaFacts]:
    return {p.name: p.facts() for p in personas_of(stack)}


def test_the_reference_app_prepares_every_template_in_the_build(
    reference: cdk.Stack, tmp_path: Path
) -> None:
    text = review_of(reference, tmp_path, None)
    assert "Prepared by hand" not in text
    assert text.count("| in the build (Run Command) |") >= 3
    assert "declared, not run by the build" not in text


def test_a_persona_prepared_in_the_build_is_not_warned_about(by_hand: cdk.Stack) -> None:
    facts = list(facts_of(by_hand).values())
    assert len(facts) == 3
    automated = prepared_in_build(facts[0], "echo prepared\n")
    text = render("T", [automated, *facts[1:]], None)
    assert "> **Prepared by hand, not by the build** (2 of 3): office, contractor." in text
    assert "| developer | unknown |" in text
    assert "| in the build (Run Command) |" in text
    assert text.count("declared, not run by the build") == 2
    assert "(the build runs; 1 lines; first review)" in text and "echo prepared" in text


def test_declared_but_not_carried_out(by_hand: cdk.Stack, tmp_path: Path) -> None:
    write_review([by_hand], tmp_path, None)
    office = facts_of(by_hand)["office"]
    script = (tmp_path / "preparation" / "office.sh").read_text()
    warnings = declared_not_done(office, "preparation/office.sh", script)
    assert warnings[0].startswith("preparation: declared, not run by the build: run <code>")
    # What the script leaves out is named; what it carries out is not.
    agents = [n for n in agent_names(office) if n.split()[0].lower() not in script.lower()]
    assert any("declared, not in the script" in w for w in warnings) == bool(
        agents or ("sudo" not in script)
    )
    empty = " ".join(declared_not_done(office, "x", ""))
    assert "remove_user_sudo: declared, not in the script" in empty
    assert all(code(name) in empty for name in agent_names(office))
    automated = prepared_in_build(office, script)
    assert not any("not run by the build" in w for w in declared_not_done(automated, "x", script))
    bare = dataclasses.replace(office, preparation=None)
    assert declared_not_done(bare, "x", None)[0].startswith("no preparation declared")


def test_operating_system_and_protocol_are_shown(reference: cdk.Stack) -> None:
    office = facts_of(reference)["office"]
    assert office.preparation is not None
    # A preparation with a declared protocol (made at run time: older models lack the field).
    with_protocol = dataclasses.make_dataclass(
        "WithProtocol",
        [("streaming_protocol", str, dataclasses.field(default="WSP"))],
        bases=(type(office.preparation),),
        frozen=True,
    )
    text = render("T", [dataclasses.replace(office, preparation=with_protocol())], None)
    assert "| Streaming protocol | <code>WSP</code> |" in text
    assert "| Operating system | <code>ubuntu-22.04</code> |" in text


def test_script_diff_and_recipe_changes_against_the_baseline(
    by_hand: cdk.Stack, tmp_path: Path
) -> None:
    reference = by_hand
    base = baseline_folder(reference, tmp_path / "base")
    set_baseline_image(base, "developer", "developer-0.9.0-00000000")
    script = base / "preparation" / "developer.sh"
    lines = script.read_text().splitlines(keepends=True)
    removed = lines.pop(len(lines) // 2)
    script.write_text("".join(lines))
    recipe_file = base / "preparation" / "developer.recipe.json"
    recipe = json.loads(recipe_file.read_text())
    recipe["version"] = "0.9.0"
    recipe["preparation"]["validation_steps"] = ["git --version"]
    recipe_file.write_text(json.dumps(recipe))
    baseline = load_baseline(base)
    text = review_of(reference, tmp_path, baseline)
    assert "Changes to <code>preparation/developer.sh</code> since the baseline" in text
    assert "```diff\n--- baseline/preparation/developer.sh\n+++ preparation/developer.sh" in text
    assert f"\n+{removed}" in text
    changes = next(line for line in text.splitlines() if line.startswith("| Recipe changes | <"))
    assert "<code>description</code>" not in changes  # only what differs is listed
    assert "<code>preparation.validation&#95;steps</code>" in changes
    assert "<code>version</code> (<code>0.9.0</code> → <code>1.0.0</code>)" in changes
    assert text.count("| Recipe changes | none |") == 2
    assert text.count("is unchanged since the baseline (run by hand).") == 2


def test_first_review_says_so(reference: cdk.Stack, tmp_path: Path) -> None:
    text = full_review_of(reference, tmp_path, None)
    assert text.count("| Recipe changes | first review: no baseline to compare with |") == 3
    assert "What will be run on the template: <code>preparation/developer.sh</code>" in text
    assert "```bash\n#!/usr/bin/env bash\n" in text


def test_review_shows_personas_checklist_and_warnings(reference: cdk.Stack, tmp_path: Path) -> None:
    text = review_of(reference, tmp_path, None)
    for design in ("thin", "fully-baked", "zero"):
        assert f"| Design option | {design} |" in text
    assert (
        "| Delivered at launch | <code>docker-ce</code>, <code>jetbrains-toolbox</code> "
        "(by <code>puppet-agent 8</code>) |"
    ) in text
    assert re.search(
        r"<code>developer-[0-9a-f]{6}</code>: PERFORMANCE, root 80 GB, user 10 GB", text
    )
    assert text.count("| n/a | n/a | n/a |") == 2  # items 11 and 21 need evidence from outside
    assert "no Compliance tag" in text  # CDK warnings are shown


# --- Escaping -------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE)
def test_escapers_leave_nothing_raw(value: str) -> None:
    for escaped in (escape_markdown(value), code(value), code(value, no_break=True)):
        for raw in RAW:
            assert raw not in escaped, (value, escaped)
    label = mermaid_label(value)
    assert not re.search(r"[^A-Za-z0-9 .,_/:=+@()#;-]", label), label
    assert "]]" not in label and '"' not in label and "<" not in label


def test_mermaid_and_markdown_entities() -> None:
    assert mermaid_label('"quoted"') == "#quot;quoted#quot;"
    assert mermaid_label("a]]b") == "a#93;#93;b"
    assert mermaid_label("x-y", no_break=True) == "x#8209;y"
    assert escape_markdown("a|b") == "a&#124;b"
    assert escape_markdown("<img>") == "&#60;img&#62;"
    assert code("a-b", no_break=True) == f"<code>a{NB}b</code>"


def test_a_fence_is_longer_than_any_backtick_run() -> None:
    lines = fence("echo '```'\necho '````'", "bash")
    assert lines[0] == "`````bash" and lines[-1] == "`````"


def test_deploy_time_values_show_as_such() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    token = cdk.CfnParameter(stack, "P").value_as_string
    assert escape_markdown(token) == DEPLOY_TIME
    assert code(token) == DEPLOY_TIME
    assert mermaid_label(token) == DEPLOY_TIME
    assert escape_markdown(f"ws-{token}") == f"ws-{DEPLOY_TIME}"


def hostile_facts() -> PersonaFacts:
    return PersonaFacts(
        name="evil",
        design="thin",
        image_version="1|0",
        image_name="<img src=x onerror=alert(1)>",
        bundle_name="`rm -rf`",
        template_workspace_id="end]]",
        baked_applications=('say "hi"', "line\nbreak"),
        launch_applications=("<script>alert(1)</script>",),
        config_management_agent="**bold** _em_ [link](http://x) ~~s~~ $x$",
        license_references={"a|b": "end]]"},
        compute_type='PERF"]] --> x',
        tags={"Role": "a|b", "Evil": "<img src=x onerror=alert(1)>", "Tick": "`x`"},
    )


def test_hostile_values_through_render_stay_escaped() -> None:
    text = render("Stack|<img>", [hostile_facts()], None, {"evil": ["warn <b>|`x`"]})
    for value in HOSTILE:
        assert value not in text
    for raw in ("<img", "<script", "]]", "onerror=alert(1)>", "_em_", "~~s~~", "$x$"):
        assert raw not in text
    assert "`rm" not in text and "`x`" not in text
    # Every table row has as many cell separators as its header.
    for table in re.findall(r"(?:^\|.*\|$\n?)+", text, re.M):
        rows = table.strip().splitlines()
        assert len({row.count("|") for row in rows}) == 1, rows
    # Mermaid: every label is one quoted string with no quote inside.
    diagram = mermaid_of(text)
    for label in re.findall(r'\["([^"]*)"\]', diagram):
        assert "<img" not in label and "]" not in label
    assert diagram.count('"') % 2 == 0


def test_hostile_values_through_a_persona(tmp_path: Path) -> None:
    """Tag validation refuses most markup; what it lets through is still escaped."""

    def hostile(stack: Any) -> None:
        stack.add_persona(
            "Odd",
            name="odd",
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id=cdk.CfnParameter(stack, "OddTemplate").value_as_string,
            baked_applications=["firefox"],
            preparation=ImagePreparation(
                install_steps=["echo '```'", "echo '</details> <img src=x onerror=alert(1)>'"]
            ),
            tags={
                "Role": "@octocat _em_ :smile:",
                "System": cdk.CfnParameter(stack, "OddSystem").value_as_string,
                "Confidentiality": "internal",
                "Note": "one\u2028two",
            },
        )

    stack, _ = synth_reference(customize=hostile)
    text = full_review_of(stack, tmp_path, None)
    assert "${Token[" not in text and "Token[" not in text
    assert f"<code>System=</code>{DEPLOY_TIME}" not in text
    assert f"System={DEPLOY_TIME}" in text
    assert f'template#160;WorkSpace<br/>{DEPLOY_TIME}"]' in mermaid_of(text)
    assert "| Template WorkSpace | (deploy-time value) |" in text
    assert "\u2028" not in text and "<code>Note=one two</code>" in text
    assert "<code>Role=&#64;octocat" not in text  # @ stays literal, inside <code>
    assert "<code>Role=@octocat &#95;em&#95; :smile:</code>" in text
    # The script holds ``` and </details>: a longer fence keeps it one code block.
    block = re.search(r"^````bash\n(.*?)^````$", text, re.S | re.M)
    assert block and "```" in block.group(1) and "</details> <img src=x" in block.group(1)
    outside = text.replace(block.group(0), "")
    assert outside.count("<details>") == outside.count("</details>")


# --- Size -----------------------------------------------------------------------------


def many_personas(count: int, *, prepared: bool = True) -> cdk.Stack:
    """`count` fully baked personas, with a preparation each (big details sections) when
    `prepared`."""
    return many_personas_stack(count, prepared=prepared)


def balanced(text: str) -> bool:
    fences = [line for line in text.splitlines() if line.startswith("```")]
    return text.count("<details>") == text.count("</details>") and len(fences) % 2 == 0


def test_fifty_personas_fit_a_comment_with_summary_and_diagram(tmp_path: Path) -> None:
    stack = many_personas(50)
    text = review_of(stack, tmp_path, None)
    full = (tmp_path / FULL_REVIEW_FILE).read_text()
    assert len(full) > 65_000  # too long for a comment without fitting
    assert len(text.encode("utf-16-le")) // 2 <= REVIEW_LIMIT
    note = next(line for line in text.splitlines() if "Shortened to fit" in line)
    assert note.startswith("> **Shortened to fit a pull-request comment**: left out ")
    assert "preparation script(s)" in note and "and the details of" in note
    assert f"`{FULL_REVIEW_FILE}` in this run's `cloud-assembly` artifact" in text
    assert text.rstrip().endswith("_(Shortened here: see the note at the top.)_")
    assert "(50 of 50): all 50 personas." in text
    for index in range(50):
        assert f"| persona{NB}{index} | unknown |" in text
    diagram = mermaid_of(text)
    assert len([line for line in diagram.splitlines() if " --> " in line]) == 50
    assert "<details><summary>Image design checklist" in text  # kept: it comes first
    assert balanced(text) and balanced(full)
    assert full.count("<summary><b>persona-") == 50
    # The workflow's own 65,000 limit: fit keeps more details, never half a section.
    wide = fit(full)
    assert len(wide) <= 65_000 and wide.count("<summary><b>persona-") > text.count(
        "<summary><b>persona-"
    )
    assert balanced(wide) and mermaid_of(wide) == diagram


def test_fit_leaves_a_short_review_alone_and_cuts_the_head_last(tmp_path: Path) -> None:
    stack = many_personas(4, prepared=False)
    text = review_of(stack, tmp_path, None)
    assert not (tmp_path / FULL_REVIEW_FILE).exists()
    assert fit(text) == text
    tiny = fit(text, 1_500)
    assert len(tiny) <= 1_500 and balanced(tiny)
    assert "the summary below is cut short" in tiny
    assert tiny.startswith("# WorkSpaces images and bundles: Scale")


# --- Scripts and warnings -------------------------------------------------------------


def test_preparation_scripts_pass_shellcheck(reference: cdk.Stack, tmp_path: Path) -> None:
    write_review([reference], tmp_path, None)
    scripts = sorted((tmp_path / "preparation").glob("*.sh"))
    assert [s.name for s in scripts] == ["contractor.sh", "developer.sh", "office.sh"]
    result = subprocess.run(
        [str(SHELLCHECK), *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    developer = (tmp_path / "preparation" / "developer.sh").read_text()
    assert "recipe=" in developer and "git --version" in developer
    recipes = sorted((tmp_path / "preparation").glob("*.recipe.json"))
    assert [r.name for r in recipes] == [
        "contractor.recipe.json",
        "developer.recipe.json",
        "office.recipe.json",
    ]
    assert json.loads(recipes[1].read_text())["persona"] == "developer"


def test_checklist_minimum_fails_synth_below_it() -> None:
    with pytest.raises(RuntimeError) as error:
        synth_reference(context={"workspaces-image-bakery:checklist-minimum": "4.9"})
    assert "below the minimum 4.9" in str(error.value)
    synth_reference(context={"workspaces-image-bakery:checklist-minimum": "3"})


def test_lesser_problems_are_cdk_warnings() -> None:
    def oversized(stack: cdk.Stack) -> None:
        stack.add_persona(  # type: ignore[attr-defined]
            "Big",
            name="big",
            design=ImageDesign.FULLY_BAKED,
            image_version="1.0.0",
            template_workspace_id="ws-big0template1",
            baked_applications=[f"app{i}" for i in range(12)],
            compute=Compute(root_volume_gib=175, user_volume_gib=100),
            tags={"Role": "r", "Confidentiality": "internal"},
        )

    stack, _ = synth_reference(customize=oversized)
    warnings = Annotations.from_stack(stack).find_warning(
        "/WorkSpacesImageBakery/Big", Match.any_value()
    )
    text = " ".join(str(w.entry.data) for w in warnings)
    assert "above the smallest valid pair 80/10" in text
    assert "a fully baked image with 12 applications" in text
    assert "no Compliance tag" in text


# --- As built -------------------------------------------------------------------------


def test_the_synth_writes_the_declared_checklist_the_as_built_section_reads(
    reference: cdk.Stack, tmp_path: Path
) -> None:
    """Each persona's stack, image name, declared score and its 22 items go into the
    assembly, where the diff job's `as-built` command reads them beside the records."""
    review_of(reference, tmp_path, None)
    declared = read_declared(tmp_path)
    assert sorted(declared) == ["contractor", "developer", "office"]
    office = declared["office"]
    assert office["stack"] == reference.stack_name and office["image_name"].startswith("office-")
    scores = Scorecard.of(list(facts_of(reference).values())).scores
    assert len(office["items"]) == 22 and office["score"] == scores["office"]
    section = render_as_built(declared, {})
    assert section.count("| not shown: no record |") == 3


def test_the_as_built_section_says_why_it_is_missing() -> None:
    section = render_as_built({"office": {"score": 4.0}}, {}, problem="no credentials")
    assert "**Not read**: no credentials" in section and "| office |" not in section


def test_declared_checklist_changes_lead_the_review(by_hand: cdk.Stack) -> None:
    """Against a baseline whose declared scores differ, the changed personas are named
    right after the new images and before the as-built marker; unchanged ones are not."""
    facts = list(facts_of(by_hand).values())
    images = {f.name: f.image_name for f in facts}
    now = Scorecard.of(facts).scores
    declared = {"office": 1.0, "developer": now["developer"]}
    lines = render("T", facts, Baseline(images, declared=declared)).splitlines()
    (changes,) = [n for n, line in enumerate(lines) if line.startswith("Declared checklist")]
    assert lines[changes] == f"Declared checklist changes: office 1.0 -> {now['office']}."
    assert lines[2] == "New images on deploy: none." and changes < lines.index(AS_BUILT_MARKER)


def test_thirty_of_fifty_prepared_by_hand_are_named_once_and_folded(by_hand: cdk.Stack) -> None:
    """At 50 personas with 30 prepared by hand, the opening names each of them once, in a
    fold, after what the pull request changes."""
    base = next(iter(facts_of(by_hand).values()))
    facts = [
        dataclasses.replace(
            base, name=f"team{index:02d}", image_name=f"team{index:02d}-1.0.0-a", preparation=None
        )
        for index in range(50)
    ]
    facts[30:] = [prepared_in_build(f, "echo prepared\n") for f in facts[30:]]
    text = render("T", facts, None)
    head = text[: text.index("<!-- review-cut-note -->")]
    assert "<details><summary>The 30 personas prepared by hand</summary>" in head
    assert all(head.count(f"team{index:02d}") == 1 for index in range(30))
    assert "none of them has a preparation script" in head
    assert head.index("New images on deploy") < head.index("Prepared by hand")
