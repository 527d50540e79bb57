"""Resume from the failed step: a build that failed after its preparation leaves a resume
point; the next build of the same recipe on the same template starts where it stopped.

A build whose preparation, reboot and marker check succeeded keeps them: when it fails
later (validation, inventory, seal, the checklist or vulnerability gate, the image), its
failure signal writes ``work/resume/<persona>.json`` (where only the runtime writes) with
the recipe, the template, the managed node, the failed execution and the SHA-256 of the
version file the marker check read. The next build of that persona reads it right after
its template check:

- same recipe, template and node: the build copies the failed build's preparation and
  marker evidence into its own work (its record says where it resumed from) and goes to
  the validation (when that failed) or to the inventory (anything later: the failed build
  gave the template its identity back, so the seal runs again, and the inventory is taken
  again so that the record lists what the image holds). No command runs before that one;
- that first command carries the version file's digest (``expectMarker``): a template
  whose version file changed since (prepared again, by hand or by another recipe) exits
  with ``RESUME_MISMATCH_EXIT`` before anything else, and the build starts over with the
  preparation;
- anything else (another recipe, template or node, no point): the build starts over.

A build that succeeds leaves its point at the inventory: the same recipe is built again only
when its image is gone (a failure after the build, such as the bundle's, rolled it back),
and then the template still holds that preparation. Nothing here is read from the
execution's input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..core import contract as c
from ..core.aws import Clients
from ..evidence import store
from .request import BuildRequest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# The pieces of the failed build's work that the resumed build keeps (what it does not run
# again), and the piece that says the build resumed.
KEPT_PIECES = ("preparation", "marker")
RESUME_PIECE = "resume"
_DIGEST_LINE = re.compile(rf"^([0-9a-f]{{64}})  {re.escape(c.VERSION_FILE)}$", re.MULTILINE)


def point_key(persona: str) -> str:
    return f"{c.RESUME_PREFIX}{persona}.json"


def version_digest(marker_output: str) -> str | None:
    """The version file's SHA-256, from the marker document's sha256sum line."""
    found = _DIGEST_LINE.search(marker_output)
    return found.group(1) if found else None


def resume_at(build: BuildRequest, found: Mapping[str, Any]) -> str:
    """Where a failed build of this recipe would resume, from what it kept: the validation
    when it failed there, else the inventory; "start" when the preparation is not proven
    (no successful marker check with the version file's digest)."""
    marker = found.get("marker")
    if not isinstance(marker, Mapping) or marker.get("status") != "Success":
        return c.RESUME_AT_START
    if not marker.get("version_sha256"):
        return c.RESUME_AT_START
    validation = found.get("validation")
    if build.validation_script and (
        not isinstance(validation, Mapping) or validation.get("status") != "Success"
    ):
        return c.RESUME_AT_VALIDATION
    return c.RESUME_AT_INVENTORY


def keep_point(
    clients: Clients,
    build: BuildRequest,
    execution: str,
    found: Mapping[str, Any],
    reason: str,
    image_id: str = "",
) -> str:
    """After a build: leave (or clear) the persona's resume point; where the next build of
    this recipe resumes ("start" when it cannot). After a success (`image_id` set) the point
    stays at the inventory: the same recipe is built again only when its image is gone (a
    later failure, for example the bundle's, rolled the image back), and the template still
    holds that preparation."""
    at = resume_at(build, found) if build.prepared_in_build and execution else c.RESUME_AT_START
    if at == c.RESUME_AT_START:
        clear_point(clients.s3, build.persona, execution)
        return at
    store.put_json(
        clients.s3,
        point_key(build.persona),
        {
            "at": at,
            # This execution's work holds the preparation evidence (a resumed build copied
            # it there from the build that ran the preparation).
            "execution": execution,
            "recipe": build.recipe,
            "template_workspace_id": build.template_workspace_id,
            "managed_node_id": build.managed_node_id,
            "version_sha256": str(found["marker"]["version_sha256"]),
            "ended": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": reason[:1000],
            "image_id": image_id,
        },
    )
    return at


def clear_point(s3: S3Client, persona: str, execution: str) -> None:
    """No resume point for this persona (overwritten: the runtime's roles write, never
    delete, under work/)."""
    if execution:
        store.put_json(s3, point_key(persona), {"at": c.RESUME_AT_START, "cleared_by": execution})


def why_not(point: Mapping[str, Any], build: BuildRequest) -> str | None:
    """Why this build cannot resume from `point`, or None when it can."""
    if point.get("at") not in (c.RESUME_AT_VALIDATION, c.RESUME_AT_INVENTORY):
        return "no failed build to resume"
    for field, want in (
        ("recipe", build.recipe),
        ("template_workspace_id", build.template_workspace_id),
        ("managed_node_id", build.managed_node_id),
    ):
        if point.get(field) != want:
            return f"the failed build had another {field.replace('_', ' ')}"
    if not re.fullmatch(r"[0-9a-f]{64}", str(point.get("version_sha256", ""))):
        return "the failed build did not read the version file's digest"
    return None


def find_resume_point(build: BuildRequest, clients: Clients, execution: str) -> dict[str, Any]:
    """Where this build starts: {"At": "validation" | "inventory" | "start"}."""
    if not build.prepared_in_build:
        return {"At": c.RESUME_AT_START}
    point = store.get_json(clients.s3, point_key(build.persona))
    if not isinstance(point, Mapping):
        return {"At": c.RESUME_AT_START}
    why = why_not(point, build)
    kept = {
        piece: store.get_json(clients.s3, store.work_key(str(point.get("execution")), piece))
        for piece in KEPT_PIECES
    }
    if why is None and any(value is None for value in kept.values()):
        why = "the failed build's preparation evidence is gone"
    if why is not None:
        logger.info("%s starts over: %s", build.image_name, why)
        return {"At": c.RESUME_AT_START}
    for piece, value in kept.items():
        store.put_json(clients.s3, store.work_key(execution, piece), value)
    at = str(point["at"])
    store.put_json(
        clients.s3,
        store.work_key(execution, RESUME_PIECE),
        {
            "at": at,
            "from_execution": point["execution"],
            "ended": point.get("ended", ""),
            "failure": point.get("reason", ""),
            # Set when that build succeeded and its image was then rolled back or removed.
            "image_id": point.get("image_id", ""),
            "version_sha256": point["version_sha256"],
            "restarted": False,
        },
    )
    logger.info(
        "%s resumes at the %s: build %s failed after its preparation (%s)",
        build.image_name,
        at,
        point.get("execution"),
        point.get("reason", ""),
    )
    return {"At": at}


def expected_marker(clients: Clients, execution: str) -> str:
    """The version file digest this execution's commands must find ("" when it did not
    resume, or started over)."""
    if not execution:
        return ""
    piece = store.get_json(clients.s3, store.work_key(execution, RESUME_PIECE))
    if not isinstance(piece, Mapping) or piece.get("restarted"):
        return ""
    return str(piece.get("version_sha256", ""))


def start_over(clients: Clients, execution: str, command_id: str) -> None:
    """The resumed build's first command found the template changed: note it (the record
    says so) and let the preparation run."""
    piece = store.get_json(clients.s3, store.work_key(execution, RESUME_PIECE))
    if isinstance(piece, Mapping):
        store.put_json(
            clients.s3,
            store.work_key(execution, RESUME_PIECE),
            {**piece, "restarted": True, "restarted_by_command": command_id},
        )


def summary(found: Mapping[str, Any]) -> str:
    """What a stack event or notification says about a resumed build ("" when none)."""
    piece = found.get(RESUME_PIECE)
    if not isinstance(piece, Mapping):
        return ""
    if piece.get("restarted"):
        return (
            f"the template changed since build {piece.get('from_execution')} failed, so "
            "this build prepared it again"
        )
    after = (
        f"build {piece.get('from_execution')}'s image {piece['image_id']} was rolled back "
        "or removed"
        if piece.get("image_id")
        else f"build {piece.get('from_execution')} failed"
    )
    return f"resumed at the {piece.get('at')} after {after}; its preparation was not run again"
