"""The README's example is real code: it synthesizes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
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
