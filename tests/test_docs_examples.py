"""Every Python example of the README and of docs/ is a complete app that synthesizes.

Each ```python block runs as it is written (imports, ``app = App()``, ..., ``app.synth()``),
in a folder of its own as the working directory, with the repository on PYTHONPATH. All
of them run in ONE fresh Python process (one jsii kernel: a few seconds each instead of a
kernel start each), each in its own ``App`` and output folder: the process hands every
``App`` the example's folder as ``outdir`` and the context
``workspaces-image-bakery:review=false``, except for the README's own app, whose review the
README promises in ``cdk.out/review.md``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"^# example: (.+)$", re.MULTILINE)
MAX_README_LINES = 400
REVIEWED = "own app"  # the README's app: its review is written where the README says

# Resource counts (over every template of the example's cloud assembly) for the examples
# that carry a `# example: <name>` marker.
EXPECTED: dict[str, dict[str, int]] = {
    "own app": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 1},
    "release": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 2},
    "rollback": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 1},
    "regions": {"Custom::WorkSpacesImageCopy": 2, "Custom::WorkSpacesImageShare": 1},
    "rollout": {"AWS::Scheduler::Schedule": 1},
    "patching": {"AWS::Scheduler::Schedule": 1, "Custom::WorkSpacesImage": 1},
    "vulnerability gate": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 1},
    "promotion": {
        "Custom::WorkSpacesImage": 1,
        "Custom::WorkSpacesImageShare": 1,
        "Custom::WorkSpacesSharedImageCopy": 2,
        "Custom::WorkSpacesImageCopy": 2,
    },
    "grouped props": {
        "Custom::WorkSpacesImage": 1,
        "Custom::WorkSpacesBundle": 1,
        "Custom::WorkSpacesImageCopy": 1,
        "Custom::WorkSpacesImageShare": 1,
    },
    "notifications": {"Custom::WorkSpacesImage": 1, "AWS::SNS::Topic": 1},
    "preparation": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 1},
    "tags": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 1},
}

# Runs in the fresh process: argv[1] is a JSON list of {"label", "code", "folder"}.
DRIVER = r"""
import json, os, sys, traceback
from pathlib import Path

import aws_cdk

examples = json.loads(Path(sys.argv[1]).read_text())
current = {}
_App = aws_cdk.App


class App(_App):
    # Every App of an example writes to the example's own folder, with its context.
    def __init__(self, *args, **kwargs):
        context = {**current["context"], **(kwargs.pop("context", None) or {})}
        kwargs["outdir"] = str(current["outdir"])
        super().__init__(*args, context=context, **kwargs)
        current["apps"] += 1


aws_cdk.App = App
results = []
for example in examples:
    folder = Path(example["folder"])
    folder.mkdir(parents=True)
    os.chdir(folder)
    outdir = folder / "cdk.out"
    review = example["review"]
    context = {} if review else {"workspaces-image-bakery:review": "false"}
    current.update(outdir=outdir, context=context, apps=0)
    result = {"label": example["label"], "error": None}
    try:
        exec(compile(example["code"], example["label"], "exec"), {"__name__": "__main__"})
    except BaseException:
        result["error"] = traceback.format_exc()[-3000:]
    counts = {}
    for template in outdir.rglob("*.template.json"):
        for resource in json.loads(template.read_text()).get("Resources", {}).values():
            counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    result.update(
        apps=current["apps"],
        manifest=(outdir / "manifest.json").is_file(),
        counts=counts,
        review=(outdir / "review.md").is_file(),
    )
    results.append(result)
print(json.dumps(results))
"""


def python_blocks() -> list[tuple[str, str]]:
    """(label, code) of every ```python block, labelled by page, number and marker."""
    found = []
    for page in PAGES:
        for number, code in enumerate(BLOCK.findall(page.read_text()), start=1):
            marker = MARKER.match(code)
            name = f" ({marker.group(1)})" if marker else ""
            found.append((f"{page.relative_to(ROOT)}#{number}{name}", code))
    return found


def marker_of(label: str) -> str | None:
    found = re.search(r"\((.+)\)$", label)
    return found.group(1) if found else None


BLOCKS = python_blocks()


@pytest.mark.parametrize(("label", "code"), BLOCKS, ids=[label for label, _ in BLOCKS])
def test_each_example_is_a_complete_app(label: str, code: str) -> None:
    """Imports, its own App, the synth at the end: nothing left to the reader."""
    compile(code, label, "exec")
    assert re.search(r"^from aws_cdk import .*\bApp\b|^import aws_cdk", code, re.MULTILINE), label
    assert re.search(r"^app = (cdk\.)?App\(\)$", code, re.MULTILINE), label
    assert code.rstrip().splitlines()[-1].startswith("app.synth()"), label
    assert "..." not in code.replace('"...', "").replace('..."', ""), label


def test_every_example_synthesizes_in_one_fresh_process(tmp_path: Path) -> None:
    examples = [
        {
            "label": label,
            "code": code,
            "folder": str(tmp_path / f"example-{index:02d}"),
            "review": marker_of(label) == REVIEWED,
        }
        for index, (label, code) in enumerate(BLOCKS)
    ]
    listing = tmp_path / "examples.json"
    listing.write_text(json.dumps(examples))
    run = subprocess.run(
        [sys.executable, "-c", DRIVER, str(listing)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(run.stdout.strip().splitlines()[-1])
    assert [r["label"] for r in results] == [label for label, _ in BLOCKS]
    failures = [f"{r['label']}:\n{r['error']}" for r in results if r["error"]]
    assert not failures, "\n\n".join(failures)
    for result in results:
        label = result["label"]
        assert result["apps"] == 1, label
        assert result["manifest"], f"{label}: no cloud assembly written"
        marker = marker_of(label)
        for kind, count in EXPECTED.get(marker or "", {}).items():
            assert result["counts"].get(kind, 0) == count, (label, kind, result["counts"])
        # The review is written by every synth unless the context turns it off.
        assert result["review"] == (marker == REVIEWED), label


def test_every_marked_example_has_its_counts() -> None:
    markers = [marker_of(label) for label, _ in BLOCKS]
    assert sorted(m for m in markers if m) == sorted(EXPECTED)


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    own_app = text.index("## Your own app in five minutes")
    assert text.index("make synth") < own_app
    assert text.index("make test") < own_app


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_every_relative_link_points_at_a_page_and_heading_that_exist() -> None:
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.is_file(), (page.name, target)
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
                assert anchor in {_slug(h) for h in headings}, (page.name, target)


def test_the_docs_speak_the_grouped_props() -> None:
    """No page shows a persona prop that 0.4.0 moved into a group as a keyword."""
    moved = (
        "compute_type",
        "root_volume_gib",
        "user_volume_gib",
        "managed_node_id",
        "validation_commands",
        "build_timeout",
        "retained_images",
        "released_version",
        "candidate_bundle",
        "removal_policy",
        "share_with_accounts",
    )
    for label, code in BLOCKS:
        for call in re.findall(r"(?:add_persona|Persona)\((.*?)\n\)", code, re.DOTALL):
            for prop in moved:
                assert not re.search(rf"^\s{{4}}{prop}=", call, re.MULTILINE), (label, prop)


def test_the_changelog_maps_every_keyword_of_the_0_3_persona() -> None:
    """0.4.0 regrouped the persona's props: its entry names each 0.3 keyword."""
    changelog = (ROOT / "CHANGELOG.md").read_text()
    entry = changelog[changelog.index("## 0.4.0") : changelog.index("## 0.3.1")]
    keywords_0_3 = [
        "name",
        "design",
        "image_version",
        "template_workspace_id",
        "tagging_policy",
        "baked_applications",
        "launch_applications",
        "config_management_agent",
        "license_references",
        "preparation",
        "managed_node_id",
        "compute_type",
        "root_volume_gib",
        "user_volume_gib",
        "tags",
        "build_timeout",
        "removal_policy",
        "retained_images",
        "released_version",
        "candidate_bundle",
        "validation_commands",
        "regions",
        "share_with_accounts",
        "rollout",
    ]
    table = [line for line in entry.splitlines() if line.startswith("| `")]
    for keyword in keywords_0_3:
        assert any(f"`{keyword}" in line.split("|")[1] for line in table), keyword
