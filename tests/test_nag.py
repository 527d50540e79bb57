"""The library writes cdk-nag suppressions as cdk-nag's own metadata, without loading cdk-nag:
the same entries, in the same order, on the same resources as
``NagSuppressions.add_resource_suppressions``, and cdk-nag's checks honour them."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions, RegexAppliesTo

from workspaces_image_bakery.core.nag import Finding, suppress

from .harness.fresh_process import last_line

FINDINGS = [
    Finding("AwsSolutions-IAM5", "Every action on this topic is needed here.", ["Resource::*"]),
    Finding("AwsSolutions-SNS3", "Encryption in transit is enforced elsewhere."),
    Finding("AwsSolutions-IAM5", "Versions of a function: <Arn>:*.", [r"/^Resource::.*:\*$/"]),
    # cdk-nag base64-encodes a reason with characters beyond Latin-1.
    Finding("AwsSolutions-SNS2", "Chiffrement géré par la clé → côté service."),
]
LATER = [Finding("AwsSolutions-IAM5", "A second reason for the same rule, added later.")]


def _declare(stack: cdk.Stack) -> cdk.Resource:
    topic = sns.Topic(stack, "Topic")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=["*"]))
    topic.grant_publish(role)
    return role


def _cdk_nag(findings: list[Finding]) -> list[NagPackSuppression]:
    return [
        NagPackSuppression(
            id=f.rule,
            reason=f.reason,
            applies_to=[RegexAppliesTo(regex=a) if a.startswith("/") else a for a in f.applies_to]
            or None,
        )
        for f in findings
    ]


def _metadata(stack: cdk.Stack) -> dict[str, Any]:
    template = cdk.assertions.Template.from_stack(stack).to_json()
    return {
        name: resource.get("Metadata", {}).get("cdk_nag")
        for name, resource in template["Resources"].items()
    }


@pytest.fixture(scope="module")
def both() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    app = cdk.App()
    ours, theirs = cdk.Stack(app, "Ours"), cdk.Stack(app, "Theirs")
    ours_role, their_role = _declare(ours), _declare(theirs)
    suppress(ours, FINDINGS)
    suppress(ours_role, LATER, children=False)
    suppress(ours, FINDINGS)  # twice: each entry once
    NagSuppressions.add_resource_suppressions(theirs, _cdk_nag(FINDINGS), apply_to_children=True)
    NagSuppressions.add_resource_suppressions(their_role, _cdk_nag(LATER))
    NagSuppressions.add_resource_suppressions(theirs, _cdk_nag(FINDINGS), apply_to_children=True)
    # A suppression cdk-nag adds after the library's is merged, not lost.
    mixed_app = cdk.App()
    mixed = cdk.Stack(mixed_app, "Mixed")
    _declare(mixed)
    suppress(mixed, FINDINGS[:1])
    NagSuppressions.add_resource_suppressions(
        mixed, _cdk_nag(FINDINGS[1:2]), apply_to_children=True
    )
    return _metadata(ours), _metadata(theirs), _metadata(mixed)


def test_the_metadata_is_cdk_nags_own_byte_for_byte(both: tuple[dict[str, Any], ...]) -> None:
    ours, theirs, _ = both
    assert ours == theirs
    role = next(name for name in ours if name.startswith("Role") and "Policy" not in name)
    rules = ours[role]["rules_to_suppress"]
    assert [r["id"] for r in rules] == [
        "AwsSolutions-IAM5",
        "AwsSolutions-SNS3",
        "AwsSolutions-IAM5",
        "AwsSolutions-SNS2",
        "AwsSolutions-IAM5",
    ]
    assert rules[3]["is_reason_encoded"] is True
    assert rules[2]["applies_to"] == [{"regex": r"/^Resource::.*:\*$/"}]


def test_a_later_cdk_nag_suppression_keeps_the_librarys(both: tuple[dict[str, Any], ...]) -> None:
    _, _, mixed = both
    topic = next(
        v for name, v in mixed.items() if name.startswith("Topic") and "Policy" not in name
    )
    assert [r["id"] for r in topic["rules_to_suppress"]] == [
        "AwsSolutions-IAM5",
        "AwsSolutions-SNS3",
    ]


def _nag_errors(suppressed: bool) -> list[str]:
    app = cdk.App()
    stack = cdk.Stack(app, "Checked")
    _declare(stack)
    if suppressed:
        suppress(stack, [*FINDINGS, Finding("AwsSolutions-SNS3", "In transit: not relevant.")])
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    app.synth()
    found = cdk.assertions.Annotations.from_stack(stack).find_error(
        "*", cdk.assertions.Match.string_like_regexp("AwsSolutions-(IAM5|SNS2|SNS3)")
    )
    return [str(f.entry.data) for f in found]


def test_cdk_nags_checks_honour_the_librarys_suppressions() -> None:
    assert _nag_errors(suppressed=False)  # the findings are there...
    assert _nag_errors(suppressed=True) == []  # ...and suppressed


def test_a_reason_cdk_nag_would_refuse_is_refused_before_it_is_written() -> None:
    stack = cdk.Stack(cdk.App(), "Short")
    _declare(stack)
    with pytest.raises(ValueError, match="AwsSolutions-IAM5"):
        suppress(stack, [Finding("AwsSolutions-IAM5", "short")])
    with pytest.raises(ValueError, match=r"\[x\]"):
        suppress(stack, [Finding("AwsSolutions-IAM5[x]", "A finding belongs in applies_to.")])


def test_the_package_does_not_load_cdk_nag() -> None:
    code = (
        "import sys, aws_cdk as cdk\n"
        "from tests.harness.stacks import many_personas_stack\n"
        "cdk.App()\n"
        "many_personas_stack(1, in_build=True)\n"
        "print('cdk_nag' in sys.modules)\n"
    )
    assert last_line(code) == "False"


# A stack with a concrete env: Stack.format_arn writes its Region and account (and, with
# enablePartitionLiterals, its partition) where an environment-agnostic one has tokens.
ENVS = {
    "agnostic": ({}, None),
    "concrete": ({}, cdk.Environment(account="123456789012", region="eu-west-1")),
    "concrete, partition literals": (
        {"@aws-cdk/core:enablePartitionLiterals": True},
        cdk.Environment(account="123456789012", region="eu-west-1"),
    ),
    "account only": ({}, cdk.Environment(account="123456789012")),
}


def _bakery_nag_errors(context: dict[str, Any], env: cdk.Environment | None) -> list[str]:
    from workspaces_image_bakery import ImageBakeryStack, ImageDesign

    app = cdk.App(context=context)
    stack = ImageBakeryStack(
        app, "Bakery", env=env, tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    stack.add_persona(
        "Developer",
        name="developer",
        design=ImageDesign.FULLY_BAKED,
        image_version="1.0.0",
        template_workspace_id="ws-dev0template1",
        tags={"Role": "developer", "Confidentiality": "internal", "Compliance": "none"},
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    found = cdk.assertions.Annotations.from_stack(stack).find_error(
        "*", cdk.assertions.Match.string_like_regexp("AwsSolutions-.*")
    )
    # The rule and its finding: "AwsSolutions-IAM5[Resource::arn:...]", without the text.
    return [str(f.entry.data).split("]: ", 1)[0] for f in found]


@pytest.fixture(scope="module", params=list(ENVS))
def bakery_nag_errors(request: pytest.FixtureRequest) -> list[str]:
    return _bakery_nag_errors(*ENVS[request.param])


def test_the_build_executions_suppression_holds_with_or_without_an_env(
    bakery_nag_errors: list[str],
) -> None:
    assert [e for e in bakery_nag_errors if ":states:" in e] == []


def test_the_bakery_has_no_unsuppressed_finding_with_or_without_an_env(
    bakery_nag_errors: list[str],
) -> None:
    assert bakery_nag_errors == []


def test_the_execution_pattern_names_the_stacks_own_account_and_region() -> None:
    from workspaces_image_bakery.core.nag import arn_of_the_stack

    agnostic = cdk.Stack(cdk.App(), "Agnostic")
    assert arn_of_the_stack(agnostic, "states", "execution:x") == (
        "/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:x$/"
    )
    concrete = cdk.Stack(cdk.App(), "Concrete", env=ENVS["concrete"][1])
    assert arn_of_the_stack(concrete, "states", "execution:x") == (
        "/^Resource::arn:<AWS::Partition>:states:(<AWS::Region>|eu-west-1):"
        "(<AWS::AccountId>|123456789012):execution:x$/"
    )
