"""Adding a persona adds 4 resources; 50 personas (the bundle quota) fit one stack."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .harness.stacks import many_personas

CLOUDFORMATION_RESOURCE_LIMIT = 500
PER_PERSONA = (
    "Custom::WorkSpacesImage",
    "Custom::WorkSpacesBundle",
    "AWS::CloudFormation::WaitCondition",
    "AWS::CloudFormation::WaitConditionHandle",
)


def _types(template: dict[str, Any]) -> Counter[str]:
    return Counter(r["Type"] for r in template["Resources"].values())


def test_fifty_personas_share_one_runtime() -> None:
    one, two, fifty = (_types(many_personas(n)) for n in (1, 2, 50))
    assert sum(two.values()) - sum(one.values()) == 4
    for kind in PER_PERSONA:
        assert (one[kind], fifty[kind]) == (1, 50), kind
    # The runtime is shared; only its IAM policy grows (one template WorkSpace ARN per
    # persona), and CDK moves an oversized inline policy into one managed policy.
    shared = {k: v for k, v in fifty.items() if k not in PER_PERSONA}
    assert shared == {
        **{k: v for k, v in one.items() if k not in PER_PERSONA},
        **{"AWS::IAM::ManagedPolicy": 1},
    }
    assert sum(fifty.values()) < CLOUDFORMATION_RESOURCE_LIMIT / 2
