"""A stack that assembles a tagging policy, personas, their images and their bundles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from ..core.stack_traces import without_stack_traces
from ..core.tagging_policy import DEFAULT_REQUIRED, TaggingPolicy
from ..core.validation import BakeryValidationError, Problem
from ..gates.vulnerability_gate import VulnerabilityGate
from ..image_build.build_runtime import BuildRuntime
from ..persona.persona import Persona

# The policy's props, as this stack names them in its own errors.
POLICY_PROPS = {
    "defaults": "tag_defaults",
    "required": "required_tags",
    "allowed_values": "allowed_tag_values",
}


class ImageBakeryStack(Stack):
    """Personas of one team, one Region: an image and a custom bundle each.

    :param tag_defaults: organisation-wide tag values (Project, CostCenter, Stage, ...).
        Default None: none.
    :param required_tags: keys every persona must carry; ``()`` for none. Default: Role,
        Project, CostCenter, Stage, Confidentiality.
    :param allowed_tag_values: key -> allowed values, merged key by key over the policy's
        defaults (``DEFAULT_ALLOWED``). Default None: the defaults.
    :param notification_topic: an SNS topic that hears every build's end (EventBridge rule
        on the build events) and the stack's BuildFailed alarm. Default None.
    :param create_notification_topic: create such a topic (KMS-encrypted, TLS only) when
        no `notification_topic` is given. Default False: no rule, no alarm.
    :param vulnerability_gate: the gate of every persona added with ``add_persona`` that
        sets none of its own (see :class:`Persona`). Default None: findings are recorded,
        never gating.
    Other keyword arguments go to ``aws_cdk.Stack``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        tag_defaults: Mapping[str, str] | None = None,
        required_tags: Sequence[str] = DEFAULT_REQUIRED,
        allowed_tag_values: Mapping[str, Sequence[str] | None] | None = None,
        notification_topic: sns.ITopic | None = None,
        create_notification_topic: bool = False,
        vulnerability_gate: VulnerabilityGate | None = None,
        **stack_props: Any,
    ) -> None:
        super().__init__(scope, id_, **stack_props)
        # Warnings without the jsii runtime's temporary path above them (core.stack_traces).
        without_stack_traces(self)
        try:
            self.tagging_policy = TaggingPolicy(
                self,
                "TaggingPolicy",
                defaults=tag_defaults,
                required=required_tags,
                allowed_values=allowed_tag_values,
            )
        except BakeryValidationError as error:
            raise error.renamed(POLICY_PROPS) from None
        self.personas: list[Persona] = []
        self.notification_topic: sns.ITopic | None = None
        self.vulnerability_gate = vulnerability_gate
        problems = []
        if vulnerability_gate is not None and not isinstance(vulnerability_gate, VulnerabilityGate):
            problems.append(
                Problem(
                    self.node.path,
                    "vulnerability_gate",
                    f"<{type(vulnerability_gate).__name__}>",
                    "a VulnerabilityGate or None",
                )
            )
        if notification_topic is not None and not hasattr(notification_topic, "topic_arn"):
            problems.append(
                Problem(self.node.path, "notification_topic", notification_topic, "an sns.ITopic")
            )
        if not isinstance(create_notification_topic, bool):
            problems.append(
                Problem(
                    self.node.path,
                    "create_notification_topic",
                    create_notification_topic,
                    "True or False",
                )
            )
        if problems:
            raise BakeryValidationError(problems)
        if notification_topic is not None or create_notification_topic:
            self.notification_topic = BuildRuntime.of(self).notify(notification_topic)

    def add_persona(self, id_: str, **persona_props: Any) -> Persona:
        """Add a persona (see :class:`Persona` for the props); the policy is the stack's."""
        if persona_props.get("vulnerability_gate") is None:
            persona_props["vulnerability_gate"] = self.vulnerability_gate
        persona = Persona(self, id_, tagging_policy=self.tagging_policy, **persona_props)
        self.personas.append(persona)
        return persona
