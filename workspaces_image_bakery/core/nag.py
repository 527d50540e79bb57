"""cdk-nag suppressions, each with its reason, written the same way by every construct.

A suppression is the ``cdk_nag`` metadata entry of a CloudFormation resource
(``rules_to_suppress``), the format cdk-nag's ``NagSuppressions.addResourceSuppressions``
writes and its rule packs read. The library writes that entry itself, exactly as cdk-nag
would (same keys, order, de-duplication and encoding), so that an app does not load
cdk-nag's jsii assembly (about 0.2 s) only to attach metadata; an app that runs cdk-nag's
checks reads these suppressions like its own (tests/test_reference_app.py runs
AwsSolutions on every template, and tests/test_nag.py compares the metadata with cdk-nag's).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from aws_cdk import CfnResource, Stack
from constructs import IConstruct

from .validation import is_token

METADATA_KEY = "cdk_nag"
# cdk-nag refuses a suppression whose reason is shorter (NagSuppressionHelper).
MIN_REASON = 10
# cdk-nag base64-encodes a reason with a character beyond Latin-1.
LATIN_1 = 255
# cdk-nag refuses a rule id that names a finding ("AwsSolutions-IAM5[Resource::*]").
FINDING_IN_ID = re.compile(r"\[.*\]")

BASIC_EXECUTION_ROLE = (
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
)
# A function's or a state machine's "<Arn>:*" (its versions, or its executions).
VERSIONS_OF_AN_ARN = r"/^Resource::<[A-Za-z0-9]+\.Arn>:\*$/"
# A partition, Region or account id as a stack's env gives it, written as is in a regex.
_LITERAL_PART = re.compile(r"[a-z0-9-]+")


class Finding(NamedTuple):
    """A suppressed cdk-nag rule: why, and which findings (an entry written ``/.../`` is a
    regular expression; none: every finding of the rule)."""

    rule: str
    reason: str
    applies_to: Sequence[str] = ()


def basic_execution_role(who: str) -> Finding:
    """AwsSolutions-IAM4 for the managed policy that only lets functions write logs."""
    return Finding(
        "AwsSolutions-IAM4",
        f"AWSLambdaBasicExecutionRole only lets {who} write logs.",
        [BASIC_EXECUTION_ROLE],
    )


def star_resource(reason: str) -> Finding:
    """AwsSolutions-IAM5 for ``Resource::*``: `reason` names the actions that need it."""
    return Finding("AwsSolutions-IAM5", reason, ["Resource::*"])


def arn_of_the_stack(stack: Stack, service: str, resource: str) -> str:
    """An ``applies_to`` regex for the wildcard findings on `service`'s ARNs of `stack`'s
    account and Region whose resource part matches `resource` (a regex).

    cdk-nag names an ARN's partition, Region and account as the template has them: the
    pseudo parameter (``<AWS::Region>``) for a stack without an env, or the env's value
    (``eu-west-1``) where ``Stack.format_arn`` wrote it for a stack with one (the partition
    too, with ``@aws-cdk/core:enablePartitionLiterals``). Both are matched.
    """
    parts = [
        _pseudo_or_value(pseudo, value)
        for pseudo, value in (
            ("<AWS::Partition>", stack.partition),
            ("<AWS::Region>", stack.region),
            ("<AWS::AccountId>", stack.account),
        )
    ]
    return f"/^Resource::arn:{parts[0]}:{service}:{parts[1]}:{parts[2]}:{resource}$/"


def _pseudo_or_value(pseudo: str, value: str) -> str:
    if is_token(value) or not _LITERAL_PART.fullmatch(value):
        return pseudo
    return f"({pseudo}|{value})"


def suppress(scope: IConstruct, findings: Sequence[Finding], *, children: bool = True) -> None:
    """Suppress `findings` on `scope`'s resource, or on every resource under `scope`."""
    rules = [_rule(f) for f in findings]
    if children:
        resources = [c for c in scope.node.find_all() if isinstance(c, CfnResource)]
    else:
        target = scope if isinstance(scope, CfnResource) else scope.node.default_child
        resources = [target] if isinstance(target, CfnResource) else []
    for resource in resources:
        resource.add_metadata(METADATA_KEY, _merged(resource.get_metadata(METADATA_KEY), rules))


def _rule(finding: Finding) -> dict[str, Any]:
    """A finding as cdk-nag writes it in the template (NagSuppressionHelper.toCfnFormat):
    reason, id, applies_to (an entry written ``/.../`` as a regex), and a reason with
    characters beyond Latin-1 base64-encoded and flagged."""
    if len(finding.reason) < MIN_REASON or FINDING_IN_ID.search(finding.rule):
        raise ValueError(f"cdk-nag refuses the suppression of {finding.rule}: {finding.reason!r}")
    rule: dict[str, Any] = {"id": finding.rule}
    if finding.applies_to:
        rule["applies_to"] = [
            {"regex": entry} if entry.startswith("/") else entry for entry in finding.applies_to
        ]
    if any(ord(c) > LATIN_1 for c in finding.reason):
        rule["is_reason_encoded"] = True
        return {"reason": base64.b64encode(finding.reason.encode()).decode(), **rule}
    return {"reason": finding.reason, **rule}


def _merged(existing: Any, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """cdk-nag's addRulesToMetadata: the rules already there, then the new ones, each once."""
    before = existing.get("rules_to_suppress", []) if isinstance(existing, dict) else []
    serialised = dict.fromkeys(json.dumps(r, separators=(",", ":")) for r in [*before, *rules])
    return {"rules_to_suppress": [json.loads(r) for r in serialised]}
