"""Each persona's patch state, kept by the runtime in the evidence store
(``patch/<persona>.json``; the bucket policy lets only the runtime's roles write it).

The state says what the scheduled check found and what the builds made of it:

- ``level``: the patch level the check raised last (when it found security updates
  pending), ``found``: when, ``pending``: how many and which packages;
- ``checked``: the last check and what it answered;
- ``built_level``: the level of the last build that succeeded with one, ``failures``: how
  many builds of the raised level failed in a row since, ``disabled``: when the check
  disabled its schedule after too many.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..evidence import store
from . import contract as pc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def state_key(persona: str) -> str:
    return f"{pc.STATE_PREFIX}{persona}.json"


def load(s3: S3Client, persona: str) -> dict[str, Any]:
    """The persona's state ({} before its first check)."""
    found = store.get_json(s3, state_key(persona))
    return dict(found) if isinstance(found, dict) else {}


def save(s3: S3Client, persona: str, state: dict[str, Any]) -> None:
    store.put_json(s3, state_key(persona), state)


def record_build(
    s3: S3Client, persona: str, level: str, *, succeeded: bool, image_name: str, at: str
) -> dict[str, Any]:
    """After a build synthesized with patch level `level`: a success is the persona's built
    level (and ends a run of failures); a failure of the level the check raised is one more
    failed scheduled build."""
    state = load(s3, persona)
    if succeeded:
        if level >= str(state.get("built_level", "")):
            state.update(built_level=level, built_image=image_name, built=at)
        state["failures"] = 0
        state.pop("disabled", None)
    elif level == state.get("level"):
        state["failures"] = int(state.get("failures", 0)) + 1
        state["last_failure"] = {"image": image_name, "at": at}
    else:
        return state
    save(s3, persona, state)
    return state
