"""The vulnerability gate: the template's SBOM scanned by Amazon Inspector (``ScanSbom``)
before the image is taken, its findings kept for the record, and the build failed when one
reaches the persona's gate severity and is not accepted (an accepted finding past its
expiry fails with its reason).

``ScanSbom`` takes a CycloneDX 1.5 SBOM of at most 5,000 components and, with
``outputFormat`` ``CYCLONE_DX_1_5``, answers with CycloneDX 1.5 whose ``vulnerabilities``
carry an id, ratings (with a severity) and the ``bom-ref`` of each affected component
(Inspector API reference, ScanSbom). Where Inspector puts the fixed version was not
observed: a property whose name holds ``fixed_version`` is read, else none is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Final

SEVERITIES: Final = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
MAX_COMPONENTS: Final = 5000  # ScanSbom's limit per request
# How many of the worst findings a failure names (the record keeps them all).
SHOWN: Final = 5


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str  # one of SEVERITIES, or UNKNOWN
    package: str
    installed: str
    fixed: str  # "" when the scan gives none

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    def text(self) -> str:
        fixed = f", fixed in {self.fixed}" if self.fixed else ", no fixed version given"
        return f"{self.id} ({self.severity}) in {self.package} {self.installed}{fixed}"


def _rank(severity: str) -> int:
    """0 for CRITICAL ... 3 for LOW; 4 for anything else."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def findings_of(report: Mapping[str, Any]) -> list[Finding]:
    """Each (vulnerability, affected component) of a CycloneDX 1.5 report, worst first."""
    components = {
        str(c.get("bom-ref", "")): c for c in report.get("components", []) if isinstance(c, dict)
    }
    found: list[Finding] = []
    for vulnerability in report.get("vulnerabilities", []):
        if not isinstance(vulnerability, dict):
            continue
        ratings = [r for r in vulnerability.get("ratings", []) if isinstance(r, dict)]
        severity = min(
            (str(r.get("severity", "")).upper() for r in ratings), key=_rank, default="UNKNOWN"
        )
        fixed = next(
            (
                str(p.get("value", ""))
                for p in vulnerability.get("properties", [])
                if isinstance(p, dict) and "fixed_version" in str(p.get("name", ""))
            ),
            "",
        )
        for affected in vulnerability.get("affects", []):
            component = components.get(str(affected.get("ref", "")), {})
            found.append(
                Finding(
                    id=str(vulnerability.get("id", "")),
                    severity=severity if severity in SEVERITIES else "UNKNOWN",
                    package=str(component.get("name", affected.get("ref", ""))),
                    installed=str(component.get("version", "")),
                    fixed=fixed,
                )
            )
    return sorted(found, key=lambda f: (_rank(f.severity), f.id, f.package))


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """How many findings of each severity (every severity listed, unknown last)."""
    counts = {s: 0 for s in (*SEVERITIES, "UNKNOWN")}
    for finding in findings:
        counts[finding.severity] += 1
    return counts


@dataclass(frozen=True)
class Verdict:
    blocking: tuple[Finding, ...]  # at or above the gate, not accepted
    expired: tuple[tuple[Finding, str, str], ...]  # (finding, until, reason)
    accepted: tuple[Finding, ...]  # at or above the gate, accepted until a later day


def judge(findings: Sequence[Finding], gate: Mapping[str, Any], today: date) -> Verdict:
    """Which findings stop the build under `gate` ({"severity", "accepted": [{"id", "until",
    "reason"}]}) on `today`."""
    threshold = _rank(str(gate.get("severity", "HIGH")))
    accepted = {
        str(a["id"]): (str(a["until"]), str(a.get("reason", "")))
        for a in gate.get("accepted", [])
        if isinstance(a, Mapping) and "id" in a and "until" in a
    }
    blocking: list[Finding] = []
    expired: list[tuple[Finding, str, str]] = []
    passed: list[Finding] = []
    for finding in findings:
        if _rank(finding.severity) > threshold:
            continue
        if finding.id not in accepted:
            blocking.append(finding)
            continue
        until, reason = accepted[finding.id]
        if date.fromisoformat(until) < today:
            expired.append((finding, until, reason))
        else:
            passed.append(finding)
    return Verdict(tuple(blocking), tuple(expired), tuple(passed))


def failure(verdict: Verdict, severity: str) -> str | None:
    """The build's failure text, naming the worst findings, or None when the gate passes."""
    if not verdict.blocking and not verdict.expired:
        return None
    parts = []
    if verdict.blocking:
        shown = "; ".join(f.text() for f in verdict.blocking[:SHOWN])
        more = len(verdict.blocking) - SHOWN
        parts.append(
            f"{len(verdict.blocking)} finding(s) at or above {severity}: {shown}"
            + (f"; and {more} more in the build's work" if more > 0 else "")
        )
    for finding, until, reason in verdict.expired[:SHOWN]:
        parts.append(f"the acceptance of {finding.id} expired on {until} ({reason})")
    return "the vulnerability gate stops the build: " + "; ".join(parts) + ". No image was taken"
