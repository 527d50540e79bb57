"""AWS service principals on the stack's own resources, bound to this stack's account and
sources, so that a service acting for another account's (or another) resource is refused
(the confused-deputy problem; IAM User Guide, "The confused deputy problem").

- The build notifications' KMS key (the topic's key):
  - ``cloudwatch.amazonaws.com`` (the alarm's deliveries) with ``aws:SourceAccount`` (this
    account) and ``aws:SourceArn`` (an alarm of this account and Region: the alarm's own
    ARN would make the key depend on the alarm, which depends on the topic, which depends
    on the key);
  - ``events.amazonaws.com`` (the rule's deliveries) without them: the Amazon SNS Developer
    Guide (Key management, "Enable compatibility between event sources from AWS services
    and encrypted topics") says aws:SourceAccount and aws:SourceArn in a KMS key policy are
    not supported for EventBridge-to-encrypted topics, and with them every notification
    is dropped. Both are bound instead to topics of this account and Region through the
    encryption context Amazon SNS sends KMS (``kms:EncryptionContext:aws:sns:topicArn``).
- The topic: ``events.amazonaws.com`` may publish for this stack's rule only
  (``aws:SourceArn``) in this account (``aws:SourceAccount``).
"""

from __future__ import annotations

import jsii
from aws_cdk import Aws, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.interfaces import aws_events as events_refs

EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
SNS_TOPIC_CONTEXT = "kms:EncryptionContext:aws:sns:topicArn"


def arn_here(service: str, resource: str) -> str:
    """An ARN (or ARN pattern) of `service` in this stack's partition, Region and account."""
    return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{resource}"


def grant_notification_key(key: kms.IKey) -> None:
    """Let EventBridge and CloudWatch alarms publish to topics this key encrypts, for this
    account's topics (and, for CloudWatch, this account's alarms) only."""
    topics_here = {SNS_TOPIC_CONTEXT: arn_here("sns", "*")}
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(CLOUDWATCH)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions={
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                "ArnLike": {"aws:SourceArn": arn_here("cloudwatch", "alarm:*")},
                "StringLike": topics_here,
            },
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(EVENTS)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            # No aws:SourceAccount / aws:SourceArn: not supported here (module docstring).
            conditions={"StringLike": topics_here},
        )
    )


@jsii.implements(events.IRuleTarget)
class TopicTarget:
    """``targets.SnsTopic`` whose publish grant is bound to the rule and its account.

    A topic of another stack (or an imported one) is bound as ``targets.SnsTopic`` binds it:
    the rule's ARN in that stack's policy would make each stack depend on the other.
    """

    def __init__(self, topic: sns.ITopic, *, message: events.RuleTargetInput) -> None:
        self.topic = topic
        self.message = message

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        topic = self.topic
        if not isinstance(topic, sns.Topic) or Stack.of(topic) is not Stack.of(rule):
            return targets.SnsTopic(topic, message=self.message).bind(rule, id)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(EVENTS)],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": rule.rule_ref.rule_arn},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        return events.RuleTargetConfig(
            arn=topic.topic_arn, input=self.message, target_resource=topic
        )
