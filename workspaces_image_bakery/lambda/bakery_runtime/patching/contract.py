"""Names shared by the patch schedule's construct, its Lambda step and the command line.

Keep it free of imports beyond the standard library: the constructs and the CLI load it by
file path from the runtime folder (``runtime_assets``), the step imports it.
"""

from __future__ import annotations

from typing import Final

# The function's configuration: each persona's check (JSON: persona -> settings), the
# stack's pending-updates document, and the start of its schedules' names. Lambda allows
# 4 KB for all of them together: a persona's settings are kept short (about 45 bytes).
ENV_PATCH_SETTINGS: Final = "PATCH_SETTINGS"
ENV_PENDING_DOCUMENT: Final = "PENDING_UPDATES_DOCUMENT"
ENV_SCHEDULE_PREFIX: Final = "PATCH_SCHEDULE_PREFIX"
# The settings of one persona: its template's managed node, and the failed builds in a row
# after which its schedule disables itself.
NODE: Final = "node"
FAILURES_BEFORE_DISABLE: Final = "failures"


def schedule_name(prefix: str, persona: str) -> str:
    """A persona's schedule name: the stack's prefix, the persona, "-patch"."""
    return f"{prefix}{persona}-patch"


# The context value a synth reads the personas' patch levels from (JSON: persona -> level),
# which `workspaces-image-bakery patch-levels` prints from the evidence store.
PATCH_LEVELS_CONTEXT: Final = "workspaces-image-bakery:patch-levels"
# A level: when the updates were found (UTC, to the minute) and the digest of their list,
# so levels sort by time.
LEVEL_PATTERN: Final = r"^[0-9]{8}T[0-9]{4}Z-[0-9a-f]{8}$"
# Where the runtime keeps each persona's patch state in the evidence store (written only by
# the runtime's roles: the bucket policy denies everyone else).
STATE_PREFIX: Final = "patch/"
# The key in the build's expectations that carries the level a build was synthesized with.
EXPECTATION_KEY: Final = "patch_level"

# The workflow's steps and what they answer.
STEP_CHECK: Final = "CheckForUpdates"
STEP_POLL: Final = "PollCheck"
STATUS_SENT: Final = "SENT"
STATUS_WAIT: Final = "WAIT"
STATUS_CURRENT: Final = "CURRENT"  # no security update pending
STATUS_RAISED: Final = "RAISED"  # updates pending: the persona's patch level was raised
STATUS_UNCHANGED: Final = "UNCHANGED"  # updates pending, already at that level
STATUS_DISABLED: Final = "DISABLED"  # too many failed scheduled builds: schedule disabled
STATUS_UNREACHABLE: Final = "UNREACHABLE"  # the template's node did not take the command

# What the pending-updates document prints (one line per pending package, then a count).
PENDING_LINE: Final = "==> bakery pending: "
COUNT_LINE: Final = "==> bakery pending count: "

# EventBridge detail-types (source: the library's EVENT_SOURCE).
EVENT_LEVEL_RAISED: Final = "Image Patch Level Raised"
EVENT_SCHEDULE_DISABLED: Final = "Image Patch Schedule Disabled"
