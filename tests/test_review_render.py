"""The review's Mermaid diagram through a real renderer: mermaid-cli on Debian's Chromium.

Slow, and it needs a browser: these tests carry the ``render`` marker, which the default
test run deselects (pyproject.toml); ``make review-render`` installs what they need and
runs them. They never skip: run without Chromium or the tool folder, they fail and say why.
The SVG and PNG files are left in $REVIEW_RENDER_OUT (``make review-render``:
build/review-render/) to be looked at.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workspaces_image_bakery import write_review

from .harness.synth import ROOT, synth_reference
from .test_review import hostile_facts, many_personas, mermaid_of

pytestmark = pytest.mark.render

CHROMIUM = Path("/usr/bin/chromium")
TOOL = ROOT / "tools" / "review-render"
MMDC = TOOL / "node_modules" / "@mermaid-js" / "mermaid-cli" / "src" / "cli.js"
PUPPETEER_CONFIG = TOOL / "puppeteer.json"
# mermaid-cli needs a newer Node.js than Debian's: the one in the virtual environment.
NODE = Path(sys.executable).parent / "node"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("REVIEW_RENDER_OUT") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def mmdc(diagram: str, target: Path) -> str:
    """Render `diagram` to `target` (.svg or .png); the SVG text, or "" for a PNG."""
    missing = [str(p) for p in (CHROMIUM, MMDC, NODE) if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `make review-render`, which installs them")
    source = target.with_suffix(".mmd")
    source.write_text(diagram)
    result = subprocess.run(
        [
            str(NODE),
            str(MMDC),
            "--puppeteerConfigFile",
            str(PUPPETEER_CONFIG),
            "--input",
            str(source),
            "--output",
            str(target),
            "--backgroundColor",
            "white",
            "--scale",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.is_file() and target.stat().st_size > 1000
    if target.suffix != ".svg":
        return ""
    svg = target.read_text()
    assert "Syntax error" not in svg and "Parse error" not in svg
    return svg


def test_reference_diagram_renders(out: Path) -> None:
    stack, _ = synth_reference()
    review_dir = out / "reference"
    review_dir.mkdir(exist_ok=True)
    path, _ = write_review([stack], review_dir, None)
    diagram = mermaid_of(path.read_text())
    svg = mmdc(diagram, out / "reference.svg")
    mmdc(diagram, out / "reference.png")
    for persona in ("developer", "office", "contractor"):
        assert f">{persona}<" in svg
    # Names are one unbroken text run (non-breaking hyphens).
    assert re.search(r"developer\u20111\.0\.0\u2011[0-9a-f]{8}", svg)


def test_fifty_persona_diagram_renders(out: Path, tmp_path: Path) -> None:
    path, _ = write_review([many_personas(50)], tmp_path, None)
    svg = mmdc(mermaid_of(path.read_text()), out / "fifty.svg")
    assert svg.count(">persona\u2011") >= 50


def test_hostile_labels_render_as_text(out: Path) -> None:
    from workspaces_image_bakery.review.review import render

    diagram = mermaid_of(render("T", [hostile_facts()], None))
    svg = mmdc(diagram, out / "hostile.svg")
    assert "<img" not in svg and "<script" not in svg
    assert "&lt;img src=x onerror=alert(1)&gt;" in svg
