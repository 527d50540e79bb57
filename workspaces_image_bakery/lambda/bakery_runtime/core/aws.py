"""boto3 clients with botocore's standard retries (backoff on throttling and 5xx)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from . import contract as c
from .errors import BuildFailed, TransientError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_inspector_scan import InspectorscanClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_workspaces import WorkSpacesClient

# WorkSpaces does not publish its throttling limits; botocore's standard mode retries
# throttling and server errors with exponential backoff and jitter.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10})

THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def raise_if_transient(error: ClientError) -> None:
    """Throttling that outlived botocore's retries: let the workflow retry later."""
    if error_code(error) in THROTTLING_CODES:
        raise TransientError(f"{error_code(error)}: {error_message(error)}") from error


@dataclass
class Clients:
    """The AWS clients a handler uses; tests pass clients backed by fakes."""

    workspaces: WorkSpacesClient = field(
        default_factory=lambda: boto3.client("workspaces", config=RETRY_CONFIG)
    )
    stepfunctions: SFNClient = field(
        default_factory=lambda: boto3.client("stepfunctions", config=RETRY_CONFIG)
    )
    cloudformation: CloudFormationClient = field(
        default_factory=lambda: boto3.client("cloudformation", config=RETRY_CONFIG)
    )
    ssm: SSMClient = field(default_factory=lambda: boto3.client("ssm", config=RETRY_CONFIG))
    # The evidence store: archived command output, the build's work, records and SBOMs.
    s3: S3Client = field(default_factory=lambda: boto3.client("s3", config=RETRY_CONFIG))
    # Build-end events and metrics (notify.py).
    events: EventBridgeClient = field(
        default_factory=lambda: boto3.client("events", config=RETRY_CONFIG)
    )
    cloudwatch: CloudWatchClient = field(
        default_factory=lambda: boto3.client("cloudwatch", config=RETRY_CONFIG)
    )
    # The vulnerability scan of a template's SBOM before its image (Amazon Inspector).
    inspector_scan: InspectorscanClient = field(
        default_factory=lambda: boto3.client("inspector-scan", config=RETRY_CONFIG)
    )


def owner() -> str:
    """The id of the stack this runtime belongs to, from the function's own configuration.

    Every ownership decision (adopt, tag, delete) uses it; an event or a workflow input
    that names another owner is never believed.
    """
    value = os.environ.get(c.ENV_OWNER_STACK_ID, "")
    if not value.startswith("arn:"):
        raise BuildFailed(
            f"the runtime's {c.ENV_OWNER_STACK_ID} is not set to its stack's id; redeploy the stack"
        )
    return value


def stack_name(stack_id: str) -> str:
    """The name in a stack ARN (arn:partition:cloudformation:region:account:stack/NAME/uuid)."""
    parts = stack_id.split(":", 5)
    resource = parts[5] if len(parts) == 6 else ""
    pieces = resource.split("/")
    return pieces[1] if len(pieces) >= 2 and pieces[0] == "stack" else stack_id


def account_of(stack_id: str) -> str:
    """The account id in a stack ARN (arn:partition:cloudformation:region:account:stack/...)."""
    parts = stack_id.split(":")
    return parts[4] if len(parts) > 5 else ""


def rolling_back(clients: Clients, stack_id: str) -> bool:
    """True while CloudFormation rolls the stack back (the event itself does not say).

    A failed look-up is an error, never "not rolling back": on that path a handler would
    start a build.
    """
    return stack_status(clients, stack_id).endswith("ROLLBACK_IN_PROGRESS")


def replaced_in_stack(
    clients: Clients, stack_id: str, logical_id: str, physical_id: str
) -> str | None:
    """The new physical id when the stack's resource `logical_id` now has another one (the
    one being deleted was replaced); None when it was removed from the template
    (CloudFormation still lists it, being deleted, or no longer does)."""
    try:
        detail = clients.cloudformation.describe_stack_resource(
            StackName=stack_id, LogicalResourceId=logical_id
        )["StackResourceDetail"]
    except ClientError as error:
        if error_code(error) == "ValidationError":
            return None
        raise
    current = str(detail.get("PhysicalResourceId", ""))
    return None if current in ("", physical_id) else current


def stack_status(clients: Clients, stack_id: str) -> str:
    """The stack's status now (e.g. UPDATE_COMPLETE_CLEANUP_IN_PROGRESS); "" if not found."""
    stacks = clients.cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
    return str(stacks[0]["StackStatus"]) if stacks else ""
