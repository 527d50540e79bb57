"""The README's example is real code: it synthesizes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_synthesizes() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "class Desktops" in b)
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    app = cdk.App()
    stack = namespace["Desktops"](app, "Desktops")
    template = Template.from_stack(stack)
    template.resource_count_is("Custom::WorkSpacesImage", 1)
    template.resource_count_is("Custom::WorkSpacesBundle", 1)


def test_readme_shows_both_commands_first() -> None:
    text = README.read_text()
    quick_start = text.index("## Quick start")
    assert text.index("make synth") > quick_start
    assert text.index("make test") > quick_start


EXAMPLES = {
    # marker -> resource types (and counts) the example's stacks must hold
    "release": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 2},
    "rollback": {"Custom::WorkSpacesImage": 1, "Custom::WorkSpacesBundle": 1},
    "regions": {"Custom::WorkSpacesImageCopy": 2, "Custom::WorkSpacesImageShare": 1},
    "rollout": {"AWS::Scheduler::Schedule": 1},
}


@pytest.mark.parametrize("marker", sorted(EXAMPLES))
def test_each_section_example_synthesizes(marker: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (example,) = [b for b in blocks if b.startswith(f"# example: {marker}\n")]
    namespace: dict[str, Any] = {}
    exec(compile(example, f"README.md ({marker})", "exec"), namespace)
    assembly = namespace["app"].synth()
    counts: dict[str, int] = {}
    for stack in assembly.stacks:
        for resource in stack.template["Resources"].values():
            counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    for kind, count in EXAMPLES[marker].items():
        assert counts.get(kind, 0) == count, (marker, kind, counts.get(kind))
