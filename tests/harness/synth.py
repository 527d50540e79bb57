"""Synthesize the reference app (or a variant of it) in-process, as `cdk synth` does."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

ROOT = Path(__file__).resolve().parents[2]


def cdk_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


def synth_reference(
    context: Mapping[str, Any] | None = None,
    customize: Callable[[Any], None] | None = None,
) -> tuple[cdk.Stack, Template]:
    """The reference app's stack and template; `customize` may change the stack first."""
    import app as reference

    application = cdk.App(context={**cdk_context(), **(context or {})})
    stack = reference.build(application)
    if customize is not None:
        customize(stack)
    return stack, Template.from_stack(stack)


def resources_of(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in template.find_resources(resource_type).items()}
