"""``workspaces-image-bakery report PERSONA``: what the build did for a persona's newest
image, from its as-built record (checked against the image), and the package changes from
the persona's previous image, from both images' SBOMs."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from ..core.runtime_assets import contract
from ..evidence.records import Evidence, RecordRefusedError, package_changes, read_evidence


def _created(image: dict[str, Any]) -> str:
    value = image.get("Created")
    return value.isoformat() if isinstance(value, dt.datetime) else str(value or "")


def evidence_bucket(resources: list[dict[str, Any]]) -> str | None:
    """The stack's evidence store, from its resources."""
    for resource in resources:
        if resource.get("ResourceType") == "AWS::S3::Bucket" and "Evidence" in str(
            resource.get("LogicalResourceId", "")
        ):
            return str(resource.get("PhysicalResourceId") or "") or None
    return None


def persona_report(
    s3: Any,
    bucket: str | None,
    images: list[tuple[dict[str, Any], dict[str, str]]],
    persona: str,
    owner: str,
    served: str | None = None,
) -> dict[str, Any]:
    """The newest image of `persona` (of stack `owner`), or the image `served` (the one its
    bundle serves) when given, with its record, and the package diff from the image before
    it. `images` are the account's (image, tags) pairs."""
    mine = sorted(
        (
            (image, tags)
            for image, tags in images
            if tags.get(contract.OWNER_TAG_KEY) == owner
            and tags.get(contract.PERSONA_TAG_KEY) == persona
            and image.get("State") == "AVAILABLE"
        ),
        key=lambda pair: _created(pair[0]),
        reverse=True,
    )
    if served is not None:
        at = next((i for i, (image, _) in enumerate(mine) if image.get("ImageId") == served), 0)
        mine = mine[at:]
    report: dict[str, Any] = {"persona": persona, "stack": owner, "images": len(mine)}
    if not mine:
        report["problem"] = f"persona {persona} has no AVAILABLE image in stack {owner}"
        return report
    if bucket is None:
        report["problem"] = "the stack has no evidence store (deployed before 0.4)"
        return report
    read: list[Evidence | None] = []
    refused: list[str] = []
    for image, tags in mine[:2]:
        try:
            read.append(read_evidence(s3, bucket, image, tags, owner))
        except RecordRefusedError as error:
            refused.append(str(error))
            read.append(None)
    newest = read[0]
    report["image"] = {"id": mine[0][0].get("ImageId"), "name": mine[0][0].get("Name")}
    report["refused"] = refused
    if newest is None:
        return report
    record = newest.record
    assessment = record.get("assessment") or {}
    report["record"] = {
        "execution": record.get("execution"),
        "started": record.get("started"),
        "ended": record.get("ended"),
        "template_workspace_id": record.get("template_workspace_id"),
        "managed_node_id": record.get("managed_node_id"),
        "steps": (record.get("preparation") or {}).get("steps", []),
        "output": (record.get("preparation") or {}).get("output"),
        "seal": (record.get("seal") or {}).get("items"),
        "checklist": assessment.get("items", []),
        "score": assessment.get("score"),
        "sbom": None if not record.get("sbom") else f"s3://{bucket}/{record['sbom']['key']}",
    }
    previous = read[1] if len(read) > 1 else None
    changes = package_changes(previous, newest)
    report["previous_image"] = None if len(mine) < 2 else mine[1][0].get("Name")
    report["package_diff"] = None if changes is None else asdict(changes)
    report["vulnerabilities"] = vulnerability_report(
        record.get("vulnerabilities"),
        None if previous is None else previous.record.get("vulnerabilities"),
    )
    return report


def vulnerability_report(
    scan: dict[str, Any] | None, before: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The record's scan (a count per severity, the gate, what it accepted) and the findings
    new or gone since the image before it; None when the build scanned nothing."""
    if not scan:
        return None
    if not scan.get("scanned"):
        return {"scanned": False, "error": scan.get("error")}

    def ids(found: dict[str, Any] | None) -> set[str]:
        return {f"{f['id']} {f['package']}" for f in (found or {}).get("findings", [])}

    now, then = ids(scan), ids(before if before and before.get("scanned") else None)
    return {
        "scanned": True,
        "summary": scan.get("summary", {}),
        "gate": (scan.get("gate") or {}).get("severity"),
        "accepted": scan.get("accepted", []),
        "new": sorted(now - then) if before else None,
        "gone": sorted(then - now) if before else None,
    }
