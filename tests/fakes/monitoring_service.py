"""EventBridge PutEvents and CloudWatch PutMetricData, behind real boto3 clients.

botocore validates every request against the service model (required members, types,
minimum lengths) before the fake sees it, as botocore's Stubber does; the fake checks
enums, patterns and maximum lengths from the same model and keeps what was published.
It answers at ``before-call``, after serialization, so it works whatever wire protocol the
service speaks (CloudWatch's is CBOR). Any operation can be made to fail.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

from .transport import session
from .workspaces_service import REGION, check_request

MAX_PUT_EVENTS_ENTRIES = 10
MAX_METRIC_DATA = 1000


class _NoBody:
    def stream(self, **_: Any) -> Any:
        yield b""


@dataclass
class FakeMonitoring:
    """The default event bus's events and the published metric data."""

    events: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)

    def fail(self, operation: str, code: str) -> None:
        """Every later call of `operation` fails with `code`."""
        self.faults[operation] = code

    def events_client(self, config: Config | None = None) -> Any:
        return self._client("events", config)

    def cloudwatch_client(self, config: Config | None = None) -> Any:
        return self._client("cloudwatch", config)

    def detail(self, detail_type: str) -> list[dict[str, Any]]:
        """The details of the published events of this detail-type, oldest first."""
        return [json.loads(e["Detail"]) for e in self.events if e["DetailType"] == detail_type]

    def datapoints(self, metric: str, dimension: str) -> list[tuple[str, float, str]]:
        """(dimension value, value, unit) of every datum of `metric` with that dimension."""
        return [
            (d["Dimensions"][0]["Value"], d["Value"], d["Unit"])
            for d in self.metrics
            if d["MetricName"] == metric and d["Dimensions"][0]["Name"] == dimension
        ]

    # ----- transport ---------------------------------------------------------------------
    def _client(self, service: Any, config: Config | None) -> Any:
        client: Any = session(REGION).client(
            service, config=config, endpoint_url=f"https://{service}.fake.test"
        )
        events = client.meta.events
        events.register_first(f"before-parameter-build.{service}", self._keep_params)
        events.register_first(f"before-call.{service}", self._answer)
        return client

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fake_params"] = copy.deepcopy(params)

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[Any, Any]:
        operation = model.name
        params: dict[str, Any] = context["fake_params"]
        self.calls.append((operation, params))
        problems: list[str] = []
        check_request(model.input_shape, params, operation, problems)
        code = self.faults.get(operation)
        if code is None and problems:
            code = "ValidationException"
        if code is not None:
            message = "; ".join(problems) or "injected"
            parsed = {
                "Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return _http(400), parsed
        body = getattr(self, f"_op_{operation}")(params)
        return _http(200), {**body, "ResponseMetadata": {"HTTPStatusCode": 200}}

    # ----- operations --------------------------------------------------------------------
    def _op_PutEvents(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = params["Entries"]
        assert len(entries) <= MAX_PUT_EVENTS_ENTRIES
        answers = []
        for entry in entries:
            json.loads(entry["Detail"])  # EventBridge refuses a Detail that is not JSON
            assert entry.get("EventBusName", "default") == "default"
            self.events.append(entry)
            answers.append({"EventId": f"event-{next(self._ids)}"})
        return {"FailedEntryCount": 0, "Entries": answers}

    def _op_PutMetricData(self, params: dict[str, Any]) -> dict[str, Any]:
        assert len(params["MetricData"]) <= MAX_METRIC_DATA
        for datum in params["MetricData"]:
            self.metrics.append({"Namespace": params["Namespace"], **datum})
        return {}


def _http(status: int) -> AWSResponse:
    headers = HTTPHeaders()
    headers["x-amzn-RequestId"] = "fake"
    return AWSResponse("https://fake.test", status, headers, _NoBody())
