"""``workspaces-image-bakery patch-levels``: the personas' patch levels, as the runtime's
patch check raised them, for the next synth (``-c workspaces-image-bakery:patch-levels=...``),
and the patch state ``status`` shows.

The levels are read from the stack's evidence store (``patch/<persona>.json``), which only
the runtime's roles may write; a level that does not look like one is left out, named on
standard error.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..core.runtime_assets import patching_contract as pc

LEVEL = re.compile(pc.LEVEL_PATTERN)
_PERSONA_KEY = re.compile(rf"^{re.escape(pc.STATE_PREFIX)}([a-z0-9][a-z0-9-]{{0,31}})\.json$")


def read_states(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """Each persona's patch state in the stack's evidence store."""
    states: dict[str, dict[str, Any]] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=pc.STATE_PREFIX)
    for page in pages:
        for item in page.get("Contents", []):
            found = _PERSONA_KEY.match(str(item["Key"]))
            if found is None:
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            state = json.loads(body)
            if isinstance(state, dict):
                states[found.group(1)] = state
    return states


def levels(states: dict[str, dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """persona -> raised level, and what was left out (why)."""
    chosen: dict[str, str] = {}
    refused: list[str] = []
    for persona, state in sorted(states.items()):
        level = state.get("level")
        if level is None:
            continue
        if isinstance(level, str) and LEVEL.match(level):
            chosen[persona] = level
        else:
            refused.append(f"{persona}: {str(level)[:40]!r} is not a patch level")
    return chosen, refused


def summary(persona: str, state: dict[str, Any]) -> dict[str, Any]:
    """What ``status`` shows of a persona's patch state."""
    found = state.get("checked")
    checked: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "persona": persona,
        "level": state.get("level"),
        "builtLevel": state.get("built_level"),
        "updatesFound": state.get("found"),
        "pending": state.get("pending"),
        "lastCheck": checked.get("at"),
        "lastResult": checked.get("result"),
        "failures": int(state.get("failures", 0) or 0),
        "disabled": state.get("disabled"),
    }
