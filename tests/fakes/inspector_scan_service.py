"""Amazon Inspector's ``ScanSbom`` (the ``inspector-scan`` API), behind a real boto3 client.

botocore validates the request against the service model before the fake sees it; the fake
checks what the API reference says besides: the SBOM is CycloneDX 1.5 with at most 5,000
components (ValidationException otherwise). It answers, as ``outputFormat`` CYCLONE_DX_1_5
does, with the SBOM's components and a ``vulnerabilities`` list built from the advisories a
test sets per package name: an id, a rating with its severity, the affected component's
``bom-ref``, and the fixed version as a property (where Inspector puts it was not observed).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

from .transport import session
from .workspaces_service import REGION, check_request

MAX_COMPONENTS = 5000
FIXED_VERSION = "amazon:inspector:sbom_scanner:fixed_version"


class _NoBody:
    def stream(self, **_: Any) -> Any:
        yield b""


@dataclass(frozen=True)
class Advisory:
    id: str
    severity: str  # CRITICAL, HIGH, MEDIUM, LOW
    fixed: str = ""


@dataclass
class FakeInspectorScan:
    # Package name -> what Inspector would find in any version of it.
    advisories: dict[str, list[Advisory]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[str, str] = field(default_factory=dict)

    def fail(self, operation: str, code: str) -> None:
        self.faults[operation] = code

    def client(self, config: Config | None = None) -> Any:
        client: Any = session(REGION).client(
            "inspector-scan", config=config, endpoint_url="https://inspector-scan.fake.test"
        )
        events = client.meta.events
        events.register_first("before-parameter-build.inspector-scan", self._keep_params)
        events.register_first("before-call.inspector-scan", self._answer)
        return client

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fake_params"] = copy.deepcopy(params)

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[Any, Any]:
        params: dict[str, Any] = context["fake_params"]
        self.calls.append((model.name, params))
        problems: list[str] = []
        check_request(model.input_shape, params, model.name, problems)
        sbom = params.get("sbom")
        if not isinstance(sbom, dict) or sbom.get("specVersion") != "1.5":
            problems.append("sbom: a CycloneDX 1.5 document is required")
        elif len(sbom.get("components", [])) > MAX_COMPONENTS:
            problems.append(f"sbom: at most {MAX_COMPONENTS} components")
        code = self.faults.get(model.name) or ("ValidationException" if problems else None)
        if code is not None:
            parsed = {
                "Error": {"Code": code, "Message": "; ".join(problems) or "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return _http(400), parsed
        assert isinstance(sbom, dict)
        return _http(200), {"sbom": self._report(sbom), "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _report(self, sbom: dict[str, Any]) -> dict[str, Any]:
        components = sbom.get("components", [])
        vulnerabilities = [
            {
                "bom-ref": f"vuln-{index}",
                "id": advisory.id,
                "ratings": [{"severity": advisory.severity.lower(), "method": "CVSSv31"}],
                "affects": [{"ref": component["bom-ref"]}],
                "properties": [{"name": FIXED_VERSION, "value": advisory.fixed}]
                if advisory.fixed
                else [],
            }
            for index, (component, advisory) in enumerate(
                (c, a) for c in components for a in self.advisories.get(c.get("name", ""), [])
            )
        ]
        return {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "components": components,
            "vulnerabilities": vulnerabilities,
        }


def _http(status: int) -> AWSResponse:
    headers = HTTPHeaders()
    headers["x-amzn-RequestId"] = "fake"
    return AWSResponse("https://fake.test", status, headers, _NoBody())
