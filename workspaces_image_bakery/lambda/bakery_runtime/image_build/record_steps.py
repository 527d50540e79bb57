"""The build's evidence steps: the as-built checklist before the image (a gate), and the
as-built record and SBOM once the image is AVAILABLE (the record's digest tagged on it).

Both read only what this execution's own steps wrote into the evidence store, keyed by the
execution's name from the state machine's context object, which no execution input sets.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ..core import contract as c
from ..core.aws import Clients, owner
from ..core.errors import BuildFailed
from ..evidence import as_built, record, store
from ..evidence.inventory import Inventory
from .request import BuildRequest

logger = logging.getLogger(__name__)


def evidence_of(found: dict[str, Any]) -> as_built.Evidence:
    """The pieces this execution wrote, as the checklist's evidence."""
    preparation = found.get("preparation")
    validation = found.get("validation")
    inventory = found.get("inventory")
    seal = found.get("seal")
    return as_built.Evidence(
        preparation_steps=None if preparation is None else tuple(preparation.get("steps", ())),
        validation_passed=None
        if validation is None
        else len(validation.get("steps", ()))
        if validation.get("status") == "Success"
        else 0,
        inventory=None
        if inventory is None or "inventory" not in inventory
        else Inventory.from_json(inventory["inventory"]),
        seal=None if seal is None else dict(seal.get("items", {})),
    )


def assess_template(build: BuildRequest, clients: Clients, execution: str) -> dict[str, Any]:
    """Score the as-built checklist from what this build found on the template, keep it in
    the build's work, and fail before the image when it is below the checklist minimum."""
    expected = as_built.Expectations.from_json(build.expectations)
    items = as_built.assess(expected, evidence_of(record.pieces(clients.s3, execution)))
    score = as_built.score(items)
    minimum = expected.checklist_minimum
    store.put_json(
        clients.s3,
        store.work_key(execution, "assessment"),
        {"items": as_built.to_json(items), "score": score, "minimum": minimum},
    )
    if minimum is not None:
        low = as_built.below(items, minimum)
        if low or score is None or score < minimum:
            named = "; ".join(f"item {i.number} scored {i.score}: {i.evidence}" for i in low)
            if score is None:
                raise BuildFailed(
                    f"the as-built checklist has no checked item (a template prepared by hand "
                    f"gives the build no evidence), so it cannot reach the minimum {minimum} "
                    f"({c.CHECKLIST_MINIMUM_CONTEXT}). No image was taken"
                )
            raise BuildFailed(
                f"the as-built checklist scores {score}/5, below the minimum {minimum} "
                f"({c.CHECKLIST_MINIMUM_CONTEXT}): {named}. No image was taken"
            )
    logger.info("as-built checklist of %s: %s/5", build.image_name, score)
    return {"Status": c.STATUS_DONE}


def write_record(
    build: BuildRequest, clients: Clients, execution: str, image_id: str, started: str
) -> dict[str, Any]:
    """Write the image's as-built record (and SBOM), then tag its digest on the image."""
    found = record.pieces(clients.s3, execution)
    inventory = found.get("inventory", {}).get("inventory")
    sbom = None
    if inventory is not None:
        # cyclonedx-python-lib comes with the step function's layer.
        from ..evidence import sbom as sboms  # noqa: PLC0415

        listed = Inventory.from_json(inventory)
        sbom = sboms.build_sbom(
            sboms.parse_inventory(listed.packages_text, listed.family),
            image_name=build.image_name,
            persona=build.persona,
            os_id=listed.os_id,
            os_version=listed.os_version,
            family=listed.family,
            timestamp=datetime.now(UTC),
        )
    data = record.assemble(
        build=build.to_input(),
        image_id=image_id,
        execution=execution,
        started=started,
        found=found,
        sbom=sbom,
        owner=owner(),
    )
    written = record.write(clients.s3, data, sbom)
    clients.workspaces.create_tags(
        ResourceId=image_id, Tags=[{"Key": c.RECORD_TAG_KEY, "Value": written}]
    )
    logger.info("as-built record of %s: %s", build.image_name, written)
    return {"Status": c.STATUS_DONE, "Digest": written}
