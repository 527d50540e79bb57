"""cdk-nag suppressions, each with its reason, written the same way by every construct.

cdk-nag is imported when a suppression is added, not with the package: its jsii assembly
is large, and an app that never declares a construct with findings does not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from constructs import IConstruct

BASIC_EXECUTION_ROLE = (
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
)
# A function's or a state machine's "<Arn>:*" (its versions, or its executions).
VERSIONS_OF_AN_ARN = r"/^Resource::<[A-Za-z0-9]+\.Arn>:\*$/"


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


def suppress(scope: IConstruct, findings: Sequence[Finding], *, children: bool = True) -> None:
    """Suppress `findings` on `scope` (and its children)."""
    from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo  # noqa: PLC0415

    def target(entry: str) -> str | RegexAppliesTo:
        return RegexAppliesTo(regex=entry) if entry.startswith("/") else entry

    NagSuppressions.add_resource_suppressions(
        scope,
        [
            NagPackSuppression(
                id=f.rule,
                reason=f.reason,
                applies_to=[target(a) for a in f.applies_to] if f.applies_to else None,
            )
            for f in findings
        ],
        apply_to_children=children,
    )
