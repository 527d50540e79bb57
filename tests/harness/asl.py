"""Runs a synthesized Step Functions definition: the states, retries and catches as deployed.

Only what the build workflow uses is supported: Task (lambda:invoke), Choice with
StringEquals or IsPresent, Wait with Seconds, Succeed and Fail. Waits advance a fake clock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_TRANSITIONS = 5000


@dataclass
class Clock:
    now: float

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TaskError(Exception):
    def __init__(self, name: str, cause: str) -> None:
        super().__init__(f"{name}: {cause}")
        self.name, self.cause = name, cause


@dataclass
class Run:
    status: str
    output: dict[str, Any]
    visited: list[str] = field(default_factory=list)
    retries: int = 0
    # What Step Functions keeps in the execution's history: each state's input, each task's
    # parameters and result (JSON text), for tests of what readers of executions can see.
    history: list[str] = field(default_factory=list)


def definition_from_template(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The state machine's DefinitionString with CloudFormation tokens replaced by stand-ins."""
    body = resource["Properties"]["DefinitionString"]
    if isinstance(body, dict) and "Fn::Join" in body:
        parts = [
            p if isinstance(p, str) else "arn:aws:lambda:stand-in" for p in body["Fn::Join"][1]
        ]
        body = "".join(parts)
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def _get(data: Any, path: str, context: Mapping[str, Any] | None = None) -> Any:
    if path == "$":
        return data
    value = data
    if path.startswith("$$."):  # the context object, which no execution input can write
        value, path = context or {}, path[1:]
    for part in path[2:].split("."):
        value = value[part]
    return value


def _set(data: dict[str, Any], path: str | None, value: Any) -> dict[str, Any]:
    if path is None:
        return data
    if path == "$":
        result: dict[str, Any] = value
        return result
    out = copy.deepcopy(data)
    target = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return out


def _resolve(template: Any, data: Any, context: Mapping[str, Any] | None = None) -> Any:
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _get(data, value, context)
            else:
                out[key] = _resolve(value, data, context)
        return out
    if isinstance(template, list):
        return [_resolve(v, data, context) for v in template]
    return template


def _choose(choice: Mapping[str, Any], data: Any) -> bool:
    try:
        value = _get(data, choice["Variable"])
    except (KeyError, TypeError):
        present = False
    else:
        present = True
    if "IsPresent" in choice:
        return present is choice["IsPresent"]
    if "StringEquals" in choice:
        return present and value == choice["StringEquals"]
    raise NotImplementedError(choice)


def _matches(errors: list[str], name: str) -> bool:
    return "States.ALL" in errors or name in errors


def run(
    definition: Mapping[str, Any],
    execution_input: dict[str, Any],
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    clock: Clock,
    pause_at: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Run:
    """Run the definition; `invoke(payload)` is the Lambda function (raises TaskError).

    With `pause_at`, the run stops (status RUNNING) when it first reaches that state.
    """
    if context is None:  # as Step Functions gives every execution one
        context = {
            "Execution": {
                "Id": "arn:aws:states:us-east-1:123456789012:execution:ImageBuild:local",
                "Name": "local",
                "StartTime": "2026-12-02T00:00:00+00:00",
            }
        }
    states = definition["States"]
    name = definition["StartAt"]
    data = execution_input
    result = Run("RUNNING", {})
    for _ in range(MAX_TRANSITIONS):
        if name == pause_at:
            result.output = data
            return result
        state = states[name]
        result.visited.append(name)
        result.history.append(json.dumps(data, default=str))
        kind = state["Type"]
        if kind == "Succeed":
            result.status, result.output = "SUCCEEDED", data
            return result
        if kind == "Fail":
            result.status = "FAILED"
            result.output = {"Error": state.get("Error"), "Cause": state.get("Cause")}
            return result
        if kind == "Wait":
            seconds = state["Seconds"] if "Seconds" in state else _get(data, state["SecondsPath"])
            clock.advance(float(seconds))
            name = state["Next"]
            continue
        if kind == "Choice":
            name = state.get("Default", "")
            for choice in state["Choices"]:
                if _choose(choice, data):
                    name = choice["Next"]
                    break
            continue
        if kind != "Task":
            raise NotImplementedError(kind)
        params = _resolve(state["Parameters"], data, context)
        attempts: dict[int, int] = {}
        while True:
            try:
                result.history.append(json.dumps(params, default=str))
                output: Any = {"Payload": invoke(params["Payload"]), "StatusCode": 200}
                result.history.append(json.dumps(output, default=str))
                break
            except TaskError as error:
                retrier = next(
                    (
                        (i, r)
                        for i, r in enumerate(state.get("Retry", []))
                        if _matches(r["ErrorEquals"], error.name)
                    ),
                    None,
                )
                if retrier is not None and attempts.get(retrier[0], 0) < retrier[1].get(
                    "MaxAttempts", 3
                ):
                    index, rule = retrier
                    attempts[index] = attempts.get(index, 0) + 1
                    result.retries += 1
                    clock.advance(
                        rule.get("IntervalSeconds", 1)
                        * rule.get("BackoffRate", 2) ** (attempts[index] - 1)
                    )
                    continue
                catcher = next(
                    (c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], error.name)),
                    None,
                )
                if catcher is None:
                    result.status = "FAILED"
                    result.output = {"Error": error.name, "Cause": error.cause}
                    return result
                data = _set(
                    data,
                    catcher.get("ResultPath", "$"),
                    {"Error": error.name, "Cause": error.cause},
                )
                output = None
                break
        if output is None:
            assert catcher is not None
            name = catcher["Next"]
            continue
        if "ResultSelector" in state:
            output = _resolve(state["ResultSelector"], output)
        data = _set(data, state.get("ResultPath", "$"), output)
        if state.get("End"):
            result.status, result.output = "SUCCEEDED", data
            return result
        name = state["Next"]
    raise RuntimeError("the workflow did not end")
