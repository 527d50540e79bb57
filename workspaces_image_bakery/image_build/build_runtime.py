"""The shared deploy-time runtime: one set of handlers and one build workflow per stack.

Whatever the number of personas, a stack holds one custom-resource provider (the CDK
Provider framework around one on_event Lambda), one workflow-step Lambda and one Step
Functions state machine. Each image build is an execution of that state machine; it may
run for hours and reports to CloudFormation through a WaitCondition.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

import jsii
from aws_cdk import (
    ArnFormat,
    Aws,
    CfnOutput,
    Duration,
    IStableListProducer,
    Lazy,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from ..core.nag import (
    VERSIONS_OF_AN_ARN,
    Finding,
    arn_of_the_stack,
    basic_execution_role,
    star_resource,
    suppress,
)
from ..core.runtime_assets import RUNTIME_PACKAGE, contract, inventory, runtime_zip
from ..core.validation import BakeryValidationError, Problem, is_token
from ..evidence.sbom_layer import sbom_layer_zip
from ..evidence.store import EVIDENCE_FINDING, EvidenceStore
from . import build_workflow
from .run_command import (
    RESUME_PARAMETER_REF,
    RESUME_PARAMETER_SPEC,
    SCRIPT_KEY_PATTERN,
    resume_guard_lines,
    script_document,
)

if TYPE_CHECKING:
    from aws_cdk import aws_cloudwatch as cloudwatch  # loaded by notify()

RUNTIME_ID = "WorkSpacesImageBakeryRuntime"
# CloudFormation's template limit is 1 MB (uploaded through S3). What the library adds to
# a stack's template is counted as constructs are created: the runtime once, each image's
# resources, and each script's key, digest and grant as CDK writes them. Measured by
# `make bench` and tests/test_preparation_build.py: the estimates stay above the real size.
TEMPLATE_LIMIT_BYTES = 1_000_000
RUNTIME_TEMPLATE_BYTES = 136_000
IMAGE_TEMPLATE_BYTES = 11_000
# A script: its key and digest in the image's properties, its object in the node role's
# policy, its digest in the script document (created once, counted in the runtime's bytes).
SCRIPT_TEMPLATE_BYTES = 800
# The template node role's own policy: the SSM Agent's messaging for Run Command, its
# registration and association look-ups; no Parameter Store reads.
NODE_AGENT_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssm:ListInstanceAssociations",
    "ssm:DescribeAssociation",
    "ssm:GetDocument",
    "ssm:DescribeDocument",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
]
# The stack's script document, the node role's agent policy and its listing grant, once.
SCRIPT_DOCUMENT_TEMPLATE_BYTES = 8_000
# The ownership tag condition every scoped WorkSpaces permission carries.
OWNER_TAG_CONDITION = f"aws:ResourceTag/{contract.OWNER_TAG_KEY}"
OWNER_REQUEST_TAG = f"aws:RequestTag/{contract.OWNER_TAG_KEY}"
# The state machine's own backstop; each build stops itself at its persona's bound.
WORKFLOW_TIMEOUT_HOURS = 13
LOG_RETENTION = logs.RetentionDays.ONE_YEAR


def _arn(resource: str) -> str:
    """A WorkSpaces ARN of this account and Region: ``type/name``, e.g. ``workspace/*``."""
    return _arn_of("workspaces", resource)


@functools.cache
def _pseudo_parameters() -> tuple[str, str, str]:
    """Aws.PARTITION, Aws.REGION and Aws.ACCOUNT_ID: constant tokens, asked of jsii once."""
    return Aws.PARTITION, Aws.REGION, Aws.ACCOUNT_ID


def _arn_of(service: str, resource: str) -> str:
    """`service`'s ARN of this account and Region: the string the CDK's ``Arn.format``
    joins (``arn:partition:service:region:account:resource``), without a round trip."""
    partition, region, account = _pseudo_parameters()
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def _finding(resource: str) -> str:
    """How cdk-nag names a wildcard finding on a WorkSpaces ARN of this account and Region."""
    return "Resource::arn:<AWS::Partition>:workspaces:<AWS::Region>:<AWS::AccountId>:" + resource


@jsii.implements(IStableListProducer)
class _Sorted:
    """The stack's script digests, sorted, as the script document lists them at synth."""

    def __init__(self, values: list[str]) -> None:
        self.values = values

    def produce(self) -> list[str]:
        return sorted(set(self.values))


def runtime_code() -> lambda_.Code:
    """The functions' code: the runtime's Python sources and nothing else, as one zip
    (:func:`~..core.runtime_assets.runtime_zip`), so its hash changes only when the code
    does."""
    return lambda_.Code.from_asset(str(runtime_zip()))


def runtime_function(
    scope: Construct,
    id_: str,
    *,
    code: lambda_.Code,
    handler: str,
    timeout: Duration,
    role: iam.IRole | None = None,
) -> lambda_.Function:
    """One of the bakery's Lambda functions (Python, ARM, a year of logs); each acts only
    for the stack in its environment (OWNER_STACK_ID)."""
    return lambda_.Function(
        scope,
        id_,
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        code=code,
        handler=handler,
        timeout=timeout,
        memory_size=256,
        role=role,
        environment={contract.ENV_OWNER_STACK_ID: Aws.STACK_ID},
        log_group=logs.LogGroup(
            scope, f"{id_}Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        ),
    )


def logged_workflow(
    scope: Construct, *, comment: str, definition: sfn.IChainable, timeout: Duration
) -> sfn.StateMachine:
    """A capability's own state machine ("Workflow"): X-Ray tracing, every event logged a
    year ("WorkflowLogs") without execution data."""
    return sfn.StateMachine(
        scope,
        "Workflow",
        comment=comment,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=logs.LogGroup(
                scope, "WorkflowLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
            ),
            level=sfn.LogLevel.ALL,
            include_execution_data=False,
        ),
    )


class BuildRuntime(Construct):
    """Handlers, state machine and provider shared by every image and bundle of a stack.

    Use :meth:`of` to get the stack's one instance; it is created on first use.
    """

    _service_token: str | None = None

    @classmethod
    def of(cls, scope: Construct) -> BuildRuntime:
        stack = Stack.of(scope)
        existing = stack.node.try_find_child(RUNTIME_ID)
        if isinstance(existing, BuildRuntime):
            return existing
        return cls(stack, RUNTIME_ID)

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        code = runtime_code()
        self._template_workspaces: list[str] = []
        self._template_statements: tuple[iam.PolicyStatement, ...] | None = None
        self._send_statement: iam.PolicyStatement | None = None
        self._node_role: iam.Role | None = None
        self._script_statement: iam.PolicyStatement | None = None
        self._script_digests: list[str] = []
        self._asset_bucket: str | None = None
        self.script_document: ssm.CfnDocument | None = None
        self._template_bytes = RUNTIME_TEMPLATE_BYTES
        self.marker_document = self._marker_document()
        self.inventory_document = self._inventory_document()
        self.evidence = EvidenceStore(self, "Evidence")

        self.step_function = self._function(
            "WorkflowStep",
            code,
            f"{RUNTIME_PACKAGE}.image_build.steps.handler",
            Duration.minutes(2),
        )
        self.step_function.add_environment(contract.ENV_MARKER_DOCUMENT, self.marker_document.ref)
        self.step_function.add_environment(
            contract.ENV_INVENTORY_DOCUMENT, self.inventory_document.ref
        )
        self.step_function.add_environment(contract.ENV_EVIDENCE_BUCKET, self.evidence.bucket_name)
        self.step_function.add_layers(
            lambda_.LayerVersion(
                self,
                "SbomLayer",
                code=lambda_.Code.from_asset(str(sbom_layer_zip())),
                description="cyclonedx-python-lib: the image's SBOM (CycloneDX JSON)",
            )
        )
        self.state_machine = self._state_machine()
        self.on_event_function = self._function(
            "OnEvent",
            code,
            f"{RUNTIME_PACKAGE}.image_build.custom_resource.on_event",
            Duration.minutes(5),
        )
        self.on_event_function.add_environment(
            contract.ENV_STATE_MACHINE_ARN, self.state_machine.state_machine_arn
        )
        self.on_event_function.add_environment(
            contract.ENV_EVIDENCE_BUCKET, self.evidence.bucket_name
        )
        step_role, event_role = self.step_function.role, self.on_event_function.role
        assert step_role is not None and event_role is not None  # runtime_function makes both
        self.evidence.grant_runtime(step_role)
        self.evidence.grant_prune(event_role)
        self.evidence.only_written_by(step_role, event_role)
        self.watch_function = self._function(
            "BuildWatch", code, f"{RUNTIME_PACKAGE}.image_build.watch.handler", Duration.minutes(1)
        )
        self.watch_function.add_environment(
            contract.ENV_STATE_MACHINE_ARN, self.state_machine.state_machine_arn
        )
        # The watch reads the build's stored request (never the execution's input).
        self.watch_function.add_environment(contract.ENV_EVIDENCE_BUCKET, self.evidence.bucket_name)
        watch_role = self.watch_function.role
        assert watch_role is not None
        self.evidence.grant_work_read(watch_role)
        self.evidence.work_only_read_by(step_role, event_role, watch_role)
        self.build_watch_rule = self._watch_rule()
        self._grant()
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.on_event_function,
            # The framework logs each whole event (properties included) at INFO, and on a
            # timeout the response URL too: keep its log level pinned above that.
            framework_lambda_logging_level=lambda_.ApplicationLogLevel.FATAL,
            log_group=logs.LogGroup(
                self, "ProviderLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
            ),
        )
        self._suppress_nag()
        self.notification_topic: sns.ITopic | None = None
        self.build_failed_alarm: cloudwatch.Alarm | None = None
        CfnOutput(
            Stack.of(self),
            "BuildStateMachineConsole",
            value=(
                f"https://{Aws.REGION}.console.aws.amazon.com/states/home?region={Aws.REGION}"
                f"#/statemachines/view/{self.state_machine.state_machine_arn}"
            ),
            description="The image builds (Step Functions executions) in the console",
        )

    @property
    def service_token(self) -> str:
        """The provider's service token (a constant token), asked of jsii once."""
        if self._service_token is None:
            self._service_token = self.provider.service_token
        return self._service_token

    def notify(self, topic: sns.ITopic | None = None) -> sns.ITopic:
        """Send every build's end to `topic` (or to a new encrypted topic), and alarm on it
        when a build of this stack failed within the last hour.

        The build-end events (source ``workspaces-image-bakery``) reach the topic through an
        EventBridge rule; the alarm watches ``BuildFailed`` with this stack's dimension.
        Called once per stack (a second call returns the first topic).
        """
        if self.notification_topic is not None:
            return self.notification_topic
        # Imported by the first notify(), not with the package.
        from aws_cdk import aws_cloudwatch as cloudwatch  # noqa: PLC0415
        from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions  # noqa: PLC0415
        from aws_cdk import aws_kms as kms  # noqa: PLC0415

        from ..core.service_principals import TopicTarget, grant_notification_key  # noqa: PLC0415

        if topic is None:
            key = kms.Key(
                self,
                "NotificationKey",
                description="workspaces-image-bakery build notifications (SNS)",
                enable_key_rotation=True,
                removal_policy=RemovalPolicy.DESTROY,
            )
            # EventBridge and CloudWatch, for this account's topics and alarms only.
            grant_notification_key(key)
            topic = sns.Topic(
                self,
                "Notifications",
                display_name="WorkSpaces image builds",
                master_key=key,
                enforce_ssl=True,
            )
        self.notification_topic = topic
        field = events.EventField.from_path
        rule = events.Rule(
            self,
            "BuildNotifications",
            description="Every image build's end (succeeded or failed), to the topic",
            event_pattern=events.EventPattern(
                source=[contract.EVENT_SOURCE],
                detail_type=[contract.DETAIL_TYPE_SUCCEEDED, contract.DETAIL_TYPE_FAILED],
                detail={"stackId": [Aws.STACK_ID]},
            ),
        )
        rule.add_target(
            TopicTarget(  # EventBridge may publish for this rule only
                topic,
                message=events.RuleTargetInput.from_text(
                    f"{field('$.detail-type')}: stack {field('$.detail.stack')}, persona "
                    f"{field('$.detail.persona')}, image {field('$.detail.imageName')} "
                    f"(version {field('$.detail.version')}) after "
                    f"{field('$.detail.durationSeconds')} s. {field('$.detail.reason')}"
                ),
            )
        )
        self.build_failed_alarm = cloudwatch.Alarm(
            self,
            "BuildFailedAlarm",
            alarm_description="An image build of this stack failed in the last hour",
            metric=cloudwatch.Metric(
                namespace=contract.METRIC_NAMESPACE,
                metric_name=contract.METRIC_BUILD_FAILED,
                dimensions_map={contract.DIMENSION_STACK: Aws.STACK_NAME},
                statistic="Sum",
                period=Duration.hours(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.build_failed_alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return topic

    def allow_template_workspace(self, workspace_id: str) -> None:
        """Let the runtime start and image this template WorkSpace (and no other). A
        template given as a token (known at deploy time only) is reached through
        ``workspace/*`` only when the WorkSpace carries the tag ``TEMPLATE_TAG_KEY`` = its
        id (register-template writes it)."""
        if workspace_id in self._template_workspaces:
            return
        self._template_workspaces.append(workspace_id)
        if is_token(workspace_id):
            self._allow_tagged_template(workspace_id)
            return
        arn = _arn(f"workspace/{workspace_id}")
        # Each ARN added through the statement (not as a Lazy list): the CDK splits a role's
        # oversized inline policy into managed policies by the statements' sizes as declared.
        if self._template_statements is None:
            self._template_statements = self._template_grants([arn])
        else:
            for statement in self._template_statements:
                statement.add_resources(arn)

    def _template_grants(
        self, arns: list[str], conditions: dict[str, Any] | None = None
    ) -> tuple[iam.PolicyStatement, iam.PolicyStatement]:
        """StartWorkspaces for the image resource's function; start, reboot and image for
        the workflow's steps."""
        start = iam.PolicyStatement(
            actions=["workspaces:StartWorkspaces"], resources=arns, conditions=conditions
        )
        start_and_snapshot = iam.PolicyStatement(
            actions=[
                "workspaces:StartWorkspaces",
                "workspaces:RebootWorkspaces",
                "workspaces:CreateWorkspaceImage",
            ],
            resources=arns,
            conditions=conditions,
        )
        self.on_event_function.add_to_role_policy(start)
        self.step_function.add_to_role_policy(start_and_snapshot)
        return start, start_and_snapshot

    def _allow_tagged_template(self, workspace_id: str) -> None:
        """``workspace/*``, conditioned on the template tag naming this id (one pair of
        statements per token: the tag's value is the token's own deploy-time value)."""
        self._template_grants(
            [_arn("workspace/*")],
            {"StringEquals": {f"aws:ResourceTag/{contract.TEMPLATE_TAG_KEY}": workspace_id}},
        )

    def count_template_bytes(self, path: str, added: int) -> None:
        """Add what a construct writes into the stack's template; fail at synth before the
        template passes CloudFormation's 1 MB limit."""
        self._template_bytes += added
        if self._template_bytes > TEMPLATE_LIMIT_BYTES:
            raise BakeryValidationError(
                [
                    Problem(
                        path,
                        "preparation",
                        f"a stack template of about {self._template_bytes // 1000} KB",
                        f"at most {TEMPLATE_LIMIT_BYTES // 1000} KB (CloudFormation's template "
                        "limit): put some personas in another stack",
                    )
                ]
            )

    def allow_preparation(self, managed_node_id: str) -> None:
        """Let the build send the stack's documents (the script document, the recipe
        marker's and the inventory's) to this template's managed node, and no other
        document or node."""
        _ = self.template_node_role  # the role a template's hybrid activation needs
        node = _arn_of("ssm", f"managed-instance/{managed_node_id}")
        if self._send_statement is None:
            self._send_statement = iam.PolicyStatement(
                actions=["ssm:SendCommand"],
                resources=[
                    _arn_of("ssm", f"document/{self.marker_document.ref}"),
                    _arn_of("ssm", f"document/{self.inventory_document.ref}"),
                    node,
                    *([self._script_document_arn()] if self.script_document else []),
                ],
            )
            self.step_function.add_to_role_policy(self._send_statement)
            # A build stopped by CloudFormation cancels the command it had in flight.
            self.on_event_function.add_to_role_policy(
                iam.PolicyStatement(actions=["ssm:CancelCommand"], resources=["*"])
            )
            self.step_function.add_to_role_policy(
                iam.PolicyStatement(
                    # None supports resource types (Service Authorization Reference); the
                    # scan reads the template's SBOM before its image (the vulnerability gate).
                    actions=[
                        "ssm:GetCommandInvocation",
                        "ssm:DescribeInstanceInformation",
                        "ssm:CancelCommand",
                        # The template's activation, deleted once its node registered.
                        "ssm:DeleteActivation",
                        "inspector-scan:ScanSbom",
                    ],
                    resources=["*"],
                )
            )
        else:
            self._send_statement.add_resources(node)

    def allow_script(self, asset: s3_assets.Asset, key: str, digest: str) -> None:
        """The template's node role may read this script's object (`key`, the asset's S3
        object key; aws:downloadContent fetches it with the node's credentials; one
        statement holds every script), and the stack's script document may run it (its
        digest is one of the document's allowed values). The document is created with the
        first script; every script asset of the stack is in the synthesizer's one bucket."""
        if is_token(key) or not re.fullmatch(SCRIPT_KEY_PATTERN, key):
            raise BakeryValidationError(
                [
                    Problem(
                        self.node.path,
                        "preparation",
                        key,
                        "a script asset's S3 object key as the CDK's DefaultStackSynthesizer "
                        "writes it (<hash>.sh, no bucket_prefix): the stack's script document "
                        "downloads scripts by that key",
                    )
                ]
            )
        if self._asset_bucket is None:
            self._asset_bucket = asset.s3_bucket_name
        partition = _pseudo_parameters()[0]
        arn = f"arn:{partition}:s3:::{self._asset_bucket}/{key}"
        self._script_digests.append(digest)
        if self._script_statement is None:
            self._script_statement = iam.PolicyStatement(actions=["s3:GetObject"], resources=[arn])
            self.template_node_role.add_to_principal_policy(self._script_statement)
            # The agent lists "<key>/" before it downloads (to tell a folder from a file;
            # amazon-ssm-agent's s3resource) and fails when it may not: listing is allowed
            # under script keys only, where the CDK writes no objects.
            self.template_node_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[f"arn:{partition}:s3:::{self._asset_bucket}"],
                    conditions={"StringLike": {"s3:prefix": ["*.sh/"]}},
                )
            )
            self.script_document = script_document(
                self,
                "RunScript",
                bucket=self._asset_bucket,
                digests=Lazy.list(_Sorted(self._script_digests)),
            )
            self.step_function.add_environment(
                contract.ENV_SCRIPT_DOCUMENT, self.script_document.ref
            )
            self._template_bytes += SCRIPT_DOCUMENT_TEMPLATE_BYTES
            if self._send_statement is not None:
                self._send_statement.add_resources(self._script_document_arn())
        else:
            self._script_statement.add_resources(arn)

    def _script_document_arn(self) -> str:
        assert self.script_document is not None
        return _arn_of("ssm", f"document/{self.script_document.ref}")

    @property
    def template_node_role(self) -> iam.Role:
        """The IAM service role a template WorkSpace's hybrid activation gives its SSM Agent
        (created on first use; the registration command names it)."""
        if self._node_role is None:
            stack = Stack.of(self)
            self._node_role = iam.Role(
                self,
                "TemplateNodeRole",
                description="SSM Agent of template WorkSpaces registered by hybrid activation",
                assumed_by=iam.ServicePrincipal(
                    "ssm.amazonaws.com",
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnEquals": {"aws:SourceArn": _arn_of("ssm", "*")},
                    },
                ),
            )
            self._node_role.add_to_principal_policy(
                iam.PolicyStatement(
                    # What the agent needs for Run Command (AmazonSSMManagedInstanceCore less
                    # ssm:GetParameter(s), inventory, compliance, patching and association
                    # writes): root on the template reads no Parameter Store value. On "*"
                    # as in that managed policy: the node's documents and associations are
                    # not known here, and the messaging actions support no resource types.
                    actions=NODE_AGENT_ACTIONS,
                    resources=["*"],
                )
            )
            self.evidence.grant_command_output(self._node_role)
            suppress(
                self._node_role,
                [
                    EVIDENCE_FINDING,
                    star_resource(
                        "The SSM Agent's messaging (ec2messages, ssmmessages), registration and "
                        "document and association look-ups, as AmazonSSMManagedInstanceCore "
                        "grants them on *, without its Parameter Store reads."
                    ),
                ],
            )  # after the grants made its policy
            CfnOutput(
                stack,
                "TemplateNodeRoleName",
                value=self._node_role.role_name,
                description="IAM role for the hybrid activation of template WorkSpaces",
            )
        return self._node_role

    def _marker_document(self) -> ssm.CfnDocument:
        """Prints a template's version file: the build compares its recipe= line."""
        return ssm.CfnDocument(
            self,
            "RecipeMarker",
            document_type="Command",
            update_method="NewVersion",
            content={
                "schemaVersion": "2.2",
                "description": "workspaces-image-bakery: print the image version file",
                "mainSteps": [
                    {
                        "action": "aws:runShellScript",
                        "name": "readVersionFile",
                        "inputs": {
                            # The file, then its digest (what a resumed build checks).
                            "runCommand": [
                                f"cat {contract.VERSION_FILE}",
                                f"sha256sum {contract.VERSION_FILE}",
                            ],
                            "timeoutSeconds": "60",
                        },
                    }
                ],
            },
        )

    def _inventory_document(self) -> ssm.CfnDocument:
        """Lists what a prepared template holds: its OS, packages, unit states and evidence
        files (bakery_runtime/evidence/inventory.py parses what it prints)."""
        return ssm.CfnDocument(
            self,
            "Inventory",
            document_type="Command",
            update_method="NewVersion",
            content={
                "schemaVersion": "2.2",
                "description": "workspaces-image-bakery: list what the template holds",
                "parameters": {contract.RESUME_PARAMETER: RESUME_PARAMETER_SPEC},
                "mainSteps": [
                    {
                        "action": "aws:runShellScript",
                        "name": "listInventory",
                        "inputs": {
                            "runCommand": [
                                *resume_guard_lines(RESUME_PARAMETER_REF),
                                *inventory.INVENTORY_COMMANDS,
                            ],
                            "timeoutSeconds": "300",
                        },
                    }
                ],
            },
        )

    def _function(
        self, id_: str, code: lambda_.Code, handler: str, timeout: Duration
    ) -> lambda_.Function:
        return runtime_function(self, id_, code=code, handler=handler, timeout=timeout)

    def _state_machine(self) -> sfn.StateMachine:
        """The build workflow (build_workflow.py), its role allowed to invoke the step
        function (what the CDK's LambdaInvoke granted). Its comment and timeout are in the
        definition: the CDK applies its ``comment`` and ``timeout`` props to chained
        states only, not to a definition given as text."""
        machine = sfn.StateMachine(
            self,
            "ImageBuild",
            definition_body=sfn.DefinitionBody.from_string(
                build_workflow.definition_text(
                    self.step_function.function_arn,
                    Aws.PARTITION,
                    WORKFLOW_TIMEOUT_HOURS * 3600,
                )
            ),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(
                    self,
                    "ImageBuildLogs",
                    retention=LOG_RETENTION,
                    removal_policy=RemovalPolicy.DESTROY,
                ),
                level=sfn.LogLevel.ALL,
                # The input holds the WaitCondition's pre-signed URL: keep it out of the logs.
                include_execution_data=False,
            ),
        )
        self.step_function.grant_invoke(machine)
        return machine

    def _watch_rule(self) -> events.Rule:
        """Every build that ends without reporting reaches the build watch within minutes."""
        rule = events.Rule(
            self,
            "BuildEnded",
            description="Image builds that ended without reporting to CloudFormation",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[contract.EXECUTION_STATUS_CHANGE],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": list(contract.EXECUTION_ENDED_STATUSES),
                },
            ),
        )
        rule.add_target(
            targets.LambdaFunction(
                self.watch_function, retry_attempts=20, max_event_age=Duration.hours(2)
            )
        )
        return rule

    def _grant(self) -> None:
        """Least privilege, as far as the Service Authorization Reference allows
        (docs/security.md)."""
        owner_is_this_stack = {"StringEquals": {OWNER_TAG_CONDITION: Aws.STACK_ID}}
        tagged_for_this_stack = {"StringEquals": {OWNER_REQUEST_TAG: Aws.STACK_ID}}
        reads = iam.PolicyStatement(
            # These actions support no resource types (Service Authorization Reference).
            actions=[
                "workspaces:DescribeWorkspaces",
                "workspaces:DescribeWorkspaceImages",
                "workspaces:DescribeWorkspaceBundles",
                "workspaces:DescribeTags",
                # Retention reads whether an image is associated or shared before pruning it.
                # Granted on "*", which every action accepts, whatever resource types the
                # Service Authorization Reference lists for them (docs/security.md).
                "workspaces:DescribeImageAssociations",
                "workspaces:DescribeWorkspaceImagePermissions",
            ],
            resources=["*"],
        )
        # CreateTags and DeleteTags support no resource types either, only request keys: the
        # ownership tag may be written with this stack's id only, and never removed.
        tag_writes = iam.PolicyStatement(
            actions=["workspaces:CreateTags"],
            resources=["*"],
            conditions={"StringEqualsIfExists": {OWNER_REQUEST_TAG: Aws.STACK_ID}},
        )
        tag_removals = iam.PolicyStatement(
            actions=["workspaces:DeleteTags"],
            resources=["*"],
            conditions={"ForAllValues:StringNotEquals": {"aws:TagKeys": [contract.OWNER_TAG_KEY]}},
        )
        delete_image = iam.PolicyStatement(
            actions=["workspaces:DeleteWorkspaceImage"],
            resources=[_arn("workspaceimage/*")],
            conditions=owner_is_this_stack,
        )
        new_image = iam.PolicyStatement(
            actions=["workspaces:CreateWorkspaceImage"],
            resources=[_arn("workspaceimage/*")],
            conditions=tagged_for_this_stack,
        )
        new_bundle = iam.PolicyStatement(
            actions=["workspaces:CreateWorkspaceBundle"],
            resources=[_arn("workspacebundle/*")],
            conditions=tagged_for_this_stack,
        )
        own_bundles = iam.PolicyStatement(
            actions=["workspaces:UpdateWorkspaceBundle", "workspaces:DeleteWorkspaceBundle"],
            resources=[_arn("workspacebundle/*")],
            conditions=owner_is_this_stack,
        )
        # The image side of a bundle call: the handler verifies the image before it calls.
        bundle_images = iam.PolicyStatement(
            actions=["workspaces:CreateWorkspaceBundle", "workspaces:UpdateWorkspaceBundle"],
            resources=[_arn("workspaceimage/*")],
        )
        # CreateWorkspaceImage with tags needs CreateTags too (Service Authorization Reference).
        for statement in (reads, tag_writes, delete_image, new_image):
            self.step_function.add_to_role_policy(statement)
        for statement in (
            reads,
            tag_writes,
            tag_removals,
            delete_image,
            new_bundle,
            own_bundles,
            bundle_images,
        ):
            self.on_event_function.add_to_role_policy(statement)
        self.state_machine.grant_start_execution(self.on_event_function)
        # Tells a rollback from an update (a resource deleted out of band is then not an error).
        # And a replaced image from a removed one (retention keeps only the former). And
        # checks each event with CloudFormation (bakery_runtime/core/authenticate.py).
        self.on_event_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackResource",
                    "cloudformation:DescribeStackEvents",
                ],
                resources=[Stack.of(self).stack_id],
            )
        )
        self.on_event_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions"], resources=[self.state_machine.state_machine_arn]
            )
        )
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.on_event_function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:StopExecution"], resources=[executions])
        )
        self.watch_function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[executions])
        )
        # Each build's end: an event on the default bus and metrics in the bakery's namespace.
        publish = (
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[_arn_of("events", "event-bus/default")],
            ),
            iam.PolicyStatement(
                # PutMetricData supports no resource types, only the namespace condition.
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": contract.METRIC_NAMESPACE}},
            ),
        )
        for function in (self.step_function, self.watch_function):
            for statement in publish:
                function.add_to_role_policy(statement)

    def _suppress_nag(self) -> None:
        suppress(
            self,
            [
                basic_execution_role("the functions"),
                EVIDENCE_FINDING,
                star_resource(
                    "Resource * only for what supports no resource types (WorkSpaces "
                    "Describe*, and CreateTags/DeleteTags, limited by request-tag "
                    "conditions instead; Step Functions logging and X-Ray; CloudWatch "
                    "PutMetricData, limited to the bakery's namespace)."
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "New image and bundle ids are unknown until created: actions are "
                    "limited to images and bundles of this account and Region, and by "
                    "the ownership tag where the service supports it.",
                    [_finding("workspaceimage/*"), _finding("workspacebundle/*")],
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "A template WorkSpace id given as a token is only known at deploy time: "
                    "workspace/* only where the WorkSpace carries the template tag naming "
                    "that id (aws:ResourceTag condition).",
                    [_finding("workspace/*")],
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "Executions of the one build state machine are created per build; the "
                    "state machine and the Provider invoke their function's versions.",
                    [
                        VERSIONS_OF_AN_ARN,
                        # format_arn: the stack's env, where it has one (core.nag).
                        arn_of_the_stack(
                            Stack.of(self), "states", r"execution:<[A-Za-z0-9]+\.Name>:\*"
                        ),
                    ],
                ),
            ],
        )
