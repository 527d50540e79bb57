"""One-time registration of a template WorkSpace as a Systems Manager managed node.

WorkSpaces are not EC2 instances: Systems Manager reaches them as hybrid managed nodes,
registered with an activation (a code and an id) that the SSM Agent on the WorkSpace uses
once. The stack creates the activation's IAM service role (output ``TemplateNodeRoleName``);
this command creates a single-use activation for one template WorkSpace and prints what to
run on it. Afterwards, give the node's ``mi-...`` id to the persona as
``build=TemplateBuild(managed_node_id=...)``.

    workspaces-image-bakery [--region eu-west-1] register-template --workspace ws-abc123456 \\
        --role <TemplateNodeRoleName output>
    python -m workspaces_image_bakery.operations.register_template --workspace ws-abc123456 \\
        --role <TemplateNodeRoleName output> [--region eu-west-1]   (the same)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.runtime_assets import contract

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_workspaces import WorkSpacesClient

ACTIVATION_HOURS = 24
# The tag the activation and the template WorkSpace carry: the WorkSpace's id.
TEMPLATE_TAG = contract.TEMPLATE_TAG_KEY
_WORKSPACE_ID = re.compile(r"^ws-[0-9a-z]{8,63}$")


@dataclass(frozen=True)
class Activation:
    activation_id: str
    code: str
    region: str
    workspace_id: str

    def instructions(self) -> str:
        """What to run on the template WorkSpace, as root (the code is shown once)."""
        return "\n".join(
            [
                "# The activation code below is a credential: until it is used once or",
                "# expires (24 h), it registers any machine as a node with the template's role.",
                "# Keep it out of tickets and chat; the first build deletes the activation.",
                f"# On template WorkSpace {self.workspace_id}, as root (the SSM Agent is",
                "# preinstalled on Amazon Linux 2; elsewhere install it first, see",
                "# https://docs.aws.amazon.com/systems-manager/latest/userguide/"
                "manually-install-ssm-agent-linux.html):",
                "systemctl stop amazon-ssm-agent || snap stop amazon-ssm-agent || true",
                f"amazon-ssm-agent -register -code '{self.code}' -id '{self.activation_id}' "
                f"-region '{self.region}'",
                "systemctl start amazon-ssm-agent || snap start amazon-ssm-agent",
                "",
                "# Then find the node's id and give it to the persona as"
                " build=TemplateBuild(managed_node_id=...):",
                "aws ssm describe-instance-information --filters "
                f"Key=ActivationIds,Values={self.activation_id} "
                "--query 'InstanceInformationList[].InstanceId' --output text",
            ]
        )


def create_activation(
    workspace_id: str,
    role_name: str,
    *,
    client: SSMClient,
    region: str,
    now: dt.datetime | None = None,
) -> Activation:
    """A single-use activation for one template WorkSpace, valid for 24 hours."""
    if not _WORKSPACE_ID.match(workspace_id):
        raise ValueError(f"--workspace {workspace_id!r}: expected ws- and 8-63 letters or digits")
    start = now or dt.datetime.now(dt.UTC)
    created = client.create_activation(
        Description=f"workspaces-image-bakery template {workspace_id}",
        DefaultInstanceName=workspace_id,
        IamRole=role_name,
        RegistrationLimit=1,
        ExpirationDate=start + dt.timedelta(hours=ACTIVATION_HOURS),
        Tags=[{"Key": TEMPLATE_TAG, "Value": workspace_id}],
    )
    return Activation(created["ActivationId"], created["ActivationCode"], region, workspace_id)


def tag_template(workspace_id: str, *, client: WorkSpacesClient) -> None:
    """Tag the template WorkSpace with its own id: a persona whose template id is a token
    (known at deploy time only) may start, reboot and image only a WorkSpace so tagged."""
    client.create_tags(ResourceId=workspace_id, Tags=[{"Key": TEMPLATE_TAG, "Value": workspace_id}])
