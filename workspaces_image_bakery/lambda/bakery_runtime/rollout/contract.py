"""Names shared by the rollout construct, the rollout's Lambda step and the command line.

Keep it free of imports beyond the standard library: the constructs and the CLI load it by
file path from the runtime folder (``runtime_assets``), the step imports it.
"""

from __future__ import annotations

from typing import Final

# The function's configuration: the stack's record table, and the bundles it rolls out
# with each one's settings (JSON: bundle id -> settings).
ENV_ROLLOUT_TABLE: Final = "ROLLOUT_TABLE"
ENV_ROLLOUT_SETTINGS: Final = "ROLLOUT_SETTINGS"
# The records table: the start of its logical id (the rollout runtime's id, then the
# table's), which the command line looks for; its key and its attributes.
TABLE_LOGICAL_ID_START: Final = "WorkSpacesImageBakeryRolloutRecords"
KEY: Final = "bundleId"
VERSION: Final = "version"
RECORD: Final = "record"

# The workflow's steps, and what a step answers.
STEP_ADVANCE: Final = "Advance"
STEP_RECORD_FAILURE: Final = "RecordFailure"
STATUS_WAIT: Final = "WAIT"
STATUS_DONE: Final = "DONE"
STATUS_FAILED: Final = "FAILED"

# The record's states (no item: the rollout has not run yet).
STATE_RUNNING: Final = "RUNNING"
STATE_COMPLETED: Final = "COMPLETED"  # every WorkSpace listed for the image was rebuilt onto it
STATE_PARTIAL: Final = "PARTIAL"  # the run ended with WorkSpaces skipped: the next run goes on
STATE_FAILED: Final = "FAILED"  # stopped at a failure: no further rebuild onto this image
# The bundle moved to another image during the rollout: no further batch was started; the
# next run starts over (canary first) for the new image.
STATE_SUPERSEDED: Final = "SUPERSEDED"
