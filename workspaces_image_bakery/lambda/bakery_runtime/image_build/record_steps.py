"""The build's evidence steps: the as-built checklist before the image (a gate), and the
as-built record and SBOM once the image is AVAILABLE (the record's digest tagged on it).

Both read only what this execution's own steps wrote into the evidence store, keyed by the
execution's name from the state machine's context object, which no execution input sets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import Clients, error_code, error_message, owner, raise_if_transient
from ..core.errors import BuildFailed
from ..evidence import as_built, record, store, vulnerabilities
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
    found = record.pieces(clients.s3, execution)
    evidence = evidence_of(found)
    items = as_built.assess(expected, evidence)
    score = as_built.score(items)
    minimum = expected.checklist_minimum
    store.put_json(
        clients.s3,
        store.work_key(execution, "assessment"),
        {"items": as_built.to_json(items), "score": score, "minimum": minimum},
    )
    missing = (
        [] if evidence.inventory is None else as_built.missing_baked(expected, evidence.inventory)
    )
    if missing:
        # What is declared is what is delivered: the Software tag would list it.
        raise BuildFailed(
            f"declared baked application(s) not installed on the template (its inventory "
            f"lists no package for {', '.join(missing)}): install them in the preparation, "
            "or name their package with ImagePreparation(application_packages={label: "
            "package}). No image was taken"
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
    inventory = found.get("inventory", {}).get("inventory")
    if inventory is not None:
        scan_template(build, clients, execution, inventory, expected.vulnerability_gate)
    return {"Status": c.STATUS_DONE}


def scan_template(
    build: BuildRequest,
    clients: Clients,
    execution: str,
    inventory: dict[str, Any],
    gate: Mapping[str, Any] | None,
) -> None:
    """Scan the template's packages with Amazon Inspector (its SBOM as CycloneDX 1.5), keep
    every finding in the build's work (for the record), and fail before the image when the
    persona's gate stops it. Without a gate, findings (or the scan's error) are recorded,
    never gating."""
    sbom = _sbom(build, inventory, spec_version="1.5")
    work = store.work_key(execution, "vulnerabilities")
    severity = str((gate or {}).get("severity", "HIGH"))
    try:
        answer = clients.inspector_scan.scan_sbom(
            sbom=json.loads(sbom), outputFormat="CYCLONE_DX_1_5"
        )
    except ClientError as error:
        raise_if_transient(error)
        store.put_json(clients.s3, work, {"scanned": False, "error": error_code(error)})
        if gate is not None:
            raise BuildFailed(
                f"the vulnerability scan (Amazon Inspector ScanSbom) failed with "
                f"{error_code(error)}: {error_message(error)}; the persona's vulnerability "
                "gate needs it. No image was taken"
            ) from None
        logger.warning("vulnerability scan of %s failed: %s", build.image_name, error)
        return
    report = answer.get("sbom")
    findings = vulnerabilities.findings_of(report if isinstance(report, dict) else {})
    verdict = (
        vulnerabilities.judge(findings, gate, datetime.now(UTC).date())
        if gate is not None
        else None
    )
    store.put_json(
        clients.s3,
        work,
        {
            "scanned": True,
            "summary": vulnerabilities.summary(findings),
            "findings": [f.to_json() for f in findings],
            "gate": dict(gate) if gate is not None else None,
            "accepted": [f.id for f in verdict.accepted] if verdict else [],
        },
    )
    logger.info("vulnerabilities of %s: %s", build.image_name, vulnerabilities.summary(findings))
    stop = vulnerabilities.failure(verdict, severity) if verdict else None
    if stop is not None:
        raise BuildFailed(stop)


def _sbom(build: BuildRequest, inventory: dict[str, Any], spec_version: str = "1.6") -> str:
    """The template's packages as CycloneDX JSON (cyclonedx-python-lib comes with the step
    function's layer)."""
    from ..evidence import sbom as sboms  # noqa: PLC0415

    listed = Inventory.from_json(inventory)
    return sboms.build_sbom(
        sboms.parse_inventory(listed.packages_text, listed.family),
        image_name=build.image_name,
        persona=build.persona,
        os_id=listed.os_id,
        os_version=listed.os_version,
        family=listed.family,
        timestamp=datetime.now(UTC),
        spec_version=spec_version,
    )


def write_record(
    build: BuildRequest, clients: Clients, execution: str, image_id: str, started: str
) -> dict[str, Any]:
    """Write the image's as-built record (and SBOM), then tag its digest on the image."""
    found = record.pieces(clients.s3, execution)
    inventory = found.get("inventory", {}).get("inventory")
    sbom = None if inventory is None else _sbom(build, inventory)
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
