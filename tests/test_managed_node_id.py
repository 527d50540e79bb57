"""The template's managed node id, as a new user gets it wrong: an EC2 instance id, a
WorkSpace id, a cut-off id. Each is told what a WorkSpace's managed node id is (``mi-`` and
17 hex characters, from its hybrid activation), whatever its length."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from workspaces_image_bakery import BakeryValidationError, WorkspaceImage
from workspaces_image_bakery.core.validation import Problems
from workspaces_image_bakery.image_build.run_command import (
    RunCommandPreparation,
    check_managed_node_id,
)


def _allowed(value: object) -> list[str]:
    problems = Problems("S/P")
    check_managed_node_id(problems, value)
    return [p.allowed for p in problems.found]


@pytest.mark.parametrize("value", ["i-0123456789abcdef0", "i-0123abcd", "i-0123456789abcdef01"])
def test_an_ec2_instance_id_is_told_it_needs_mi_and_why(value: str) -> None:
    (allowed,) = _allowed(value)
    assert "mi- followed by 17 hex characters" in allowed
    assert "hybrid activation" in allowed
    assert "an i- id is an EC2 instance's" in allowed and "hybrid nodes" in allowed
    assert "characters (got" not in allowed


@pytest.mark.parametrize("value", ["mi-0123", "mi-0123456789abcdef012345", "", "ws-abcdefgh1"])
def test_any_other_wrong_id_is_told_what_a_managed_node_id_is(value: str) -> None:
    (allowed,) = _allowed(value)
    assert "mi- followed by 17 hex characters" in allowed and "characters (got" not in allowed
    assert "EC2" not in allowed
    assert ("a ws- id is the WorkSpace's own" in allowed) == value.startswith("ws-")


def test_a_managed_node_id_a_token_or_a_wrong_type() -> None:
    assert _allowed("mi-0123456789abcdef0") == []
    assert _allowed(cdk.Fn.ref("Node")) == []  # a deploy-time value: CloudFormation's
    assert _allowed(12) == ["a string of 20-20 characters"]


def test_an_image_prepared_on_an_ec2_instance_id_fails_with_the_message() -> None:
    with pytest.raises(BakeryValidationError) as error:
        WorkspaceImage(
            cdk.Stack(cdk.App(), "S"),
            "Image",
            base_name="direct",
            description="direct",
            template_workspace_id="ws-abcdefgh1",
            persona="direct",
            recipe={},
            tags={},
            prepared_by=RunCommandPreparation(
                managed_node_id="i-0123456789abcdef0", script=lambda marker: f"echo {marker}"
            ),
        )
    assert error.value.fields == ["managed_node_id"]
    assert "S/Image: managed_node_id='i-0123456789abcdef0'" in str(error.value)
    assert "an i- id is an EC2 instance's" in str(error.value)
