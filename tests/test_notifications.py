"""What the stack adds for operators, read from the synthesized template: the permission to
publish each build's end, the console link to the builds, and, on request, an SNS topic
that hears every build's end and an alarm on failed builds (cdk-nag stays clean)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Annotations, Match, Template
from bakery_runtime.core import contract
from cdk_nag import AwsSolutionsChecks

from workspaces_image_bakery import ImageBakeryStack, ImageDesign

TAGS = {"Role": "r", "Confidentiality": "internal", "Compliance": "none"}


def _stack(**props: Any) -> tuple[cdk.App, ImageBakeryStack]:
    app = cdk.App()
    stack = ImageBakeryStack(
        app, "Ops", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}, **props
    )
    stack.add_persona(
        "P",
        name="p",
        design=ImageDesign.FULLY_BAKED,
        image_version="1",
        template_workspace_id="ws-dev0template1",
        tags=TAGS,
    )
    return app, stack


def _statements(template: Template) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_builds_may_publish_their_end_to_the_default_bus_and_the_namespace_only() -> None:
    _, stack = _stack()
    statements = _statements(Template.from_stack(stack))
    puts = [s for s in statements if s["Action"] == "events:PutEvents"]
    metrics = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert len(puts) == 2 and len(metrics) == 2  # the workflow step and the build watch
    for statement in puts:
        arn = "".join(
            p if isinstance(p, str) else "<token>" for p in statement["Resource"]["Fn::Join"][1]
        )
        assert arn.endswith(":event-bus/default")
    for statement in metrics:
        assert statement["Condition"] == {
            "StringEquals": {"cloudwatch:namespace": contract.METRIC_NAMESPACE}
        }


def test_the_stack_outputs_the_console_link_of_its_builds() -> None:
    _, stack = _stack()
    outputs = Template.from_stack(stack).to_json()["Outputs"]
    joined = outputs["BuildStateMachineConsole"]["Value"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else f"<{next(iter(p))}>" for p in joined)
    assert text == (
        "https://<Ref>.console.aws.amazon.com/states/home?region=<Ref>#/statemachines/view/<Ref>"
    )
    assert {"Ref": "AWS::Region"} in joined


def test_no_topic_rule_or_alarm_unless_asked() -> None:
    _, stack = _stack()
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::SNS::Topic", 0)
    template.resource_count_is("AWS::CloudWatch::Alarm", 0)
    template.resource_count_is("AWS::Events::Rule", 1)  # the build watch's only
    assert stack.notification_topic is None


def test_a_created_topic_is_encrypted_hears_every_build_end_and_the_alarm() -> None:
    app, stack = _stack(create_notification_topic=True)
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": Match.object_like({"Fn::GetAtt": Match.any_value()})}
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": [contract.EVENT_SOURCE],
                "detail-type": [contract.DETAIL_TYPE_SUCCEEDED, contract.DETAIL_TYPE_FAILED],
                "detail": {"stackId": [{"Ref": "AWS::StackId"}]},
            },
            "Targets": [Match.object_like({"Arn": {"Ref": Match.string_like_regexp("Notif")}})],
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": contract.METRIC_NAMESPACE,
            "MetricName": contract.METRIC_BUILD_FAILED,
            "Dimensions": [{"Name": contract.DIMENSION_STACK, "Value": {"Ref": "AWS::StackName"}}],
            "Statistic": "Sum",
            "Period": 3600,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("Notif")}],
        },
    )
    annotations = Annotations.from_stack(stack)
    assert annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")) == []
    assert annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")) == []


@pytest.mark.parametrize("also_create", [False, True])
def test_a_given_topic_is_used_as_it_is(also_create: bool) -> None:
    app = cdk.App()
    shared = cdk.Stack(app, "Shared")
    topic = sns.Topic(shared, "Ops")
    stack = ImageBakeryStack(
        app,
        "Ops",
        tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"},
        notification_topic=topic,
        create_notification_topic=also_create,
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::SNS::Topic", 0)
    template.resource_count_is("AWS::CloudWatch::Alarm", 1)
    assert stack.notification_topic is topic


def _text(value: Any) -> str:
    """A (possibly Fn::Join'ed) string with tokens shown as <Ref> / <Resource.Attribute>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(_text(p) for p in value["Fn::Join"][1])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    raise AssertionError(value)


def _granted(statements: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [s for s in statements if s.get("Principal") == {"Service": service}]


def test_service_principals_act_only_for_this_account_and_its_sources() -> None:
    """Proves the notification key and topic grant EventBridge and CloudWatch only for this
    stack's account and sources (before: both service principals, unconditioned, on the
    key, and EventBridge unconditioned on the topic, so another account's rule or alarm
    could use them). CloudWatch is bound by aws:SourceAccount and aws:SourceArn (an alarm of
    this account and Region); EventBridge on the topic by aws:SourceArn (this stack's rule)
    and aws:SourceAccount; EventBridge on the key by the topic's encryption context only
    (the SNS Developer Guide: aws:SourceAccount/aws:SourceArn are not supported in a key
    policy for EventBridge-to-encrypted topics, and would drop every notification)."""
    _, stack = _stack(create_notification_topic=True)
    template = Template.from_stack(stack).to_json()
    (key,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    key_statements = key["Properties"]["KeyPolicy"]["Statement"]
    here = "arn:<AWS::Partition>:{}:<AWS::Region>:<AWS::AccountId>:{}"
    topics_here = {"kms:EncryptionContext:aws:sns:topicArn": here.format("sns", "*")}

    (alarms,) = _granted(key_statements, "cloudwatch.amazonaws.com")
    conditions = alarms["Condition"]
    assert conditions["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert _text(conditions["ArnLike"]["aws:SourceArn"]) == here.format("cloudwatch", "alarm:*")
    assert {k: _text(v) for k, v in conditions["StringLike"].items()} == topics_here

    (rules,) = _granted(key_statements, "events.amazonaws.com")
    assert set(rules["Condition"]) == {"StringLike"}
    assert {k: _text(v) for k, v in rules["Condition"]["StringLike"].items()} == topics_here

    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    topic_statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (publish,) = _granted(topic_statements, "events.amazonaws.com")
    (rule_id,) = [
        k
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::Events::Rule" and k.startswith("WorkSpacesImageBakeryRuntimeBuildNot")
    ]
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }
    # No service principal anywhere in the two policies without a condition.
    for statement in key_statements + topic_statements:
        if "Service" in statement.get("Principal", {}):
            assert statement.get("Condition"), statement
