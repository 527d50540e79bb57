"""The one-time registration of a template WorkSpace: a single-use activation whose request
botocore validates (Stubber checks the parameters against the SSM model)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber

from workspaces_image_bakery.operations import register_template, registration

NOW = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)


def test_a_single_use_activation_for_one_template(capsys: pytest.CaptureFixture[str]) -> None:
    client = boto3.client("ssm", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_response(
            "create_activation",
            {
                "ActivationId": "e488f2f6-e686-4afb-8a04-ef6dfEXAMPLE",
                "ActivationCode": "CODE0123456789abcdefXYZ",
            },
            {
                "Description": "workspaces-image-bakery template ws-abcdefgh1",
                "DefaultInstanceName": "ws-abcdefgh1",
                "IamRole": "Bakery-TemplateNodeRole-1",
                "RegistrationLimit": 1,
                "ExpirationDate": NOW + dt.timedelta(hours=24),
                "Tags": [{"Key": "workspaces-image-bakery:template", "Value": "ws-abcdefgh1"}],
            },
        )
        activation = registration.create_activation(
            "ws-abcdefgh1", "Bakery-TemplateNodeRole-1", client=client, region="eu-west-1", now=NOW
        )
        stub.assert_no_pending_responses()
    text = activation.instructions()
    assert (
        "amazon-ssm-agent -register -code 'CODE0123456789abcdefXYZ' "
        "-id 'e488f2f6-e686-4afb-8a04-ef6dfEXAMPLE' -region 'eu-west-1'"
    ) in text
    assert "Key=ActivationIds,Values=e488f2f6-e686-4afb-8a04-ef6dfEXAMPLE" in text


def test_a_bad_workspace_id_is_refused_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    client = boto3.client("ssm", region_name="eu-west-1")
    with Stubber(client):
        code = register_template.main(["--workspace", "workspace-1", "--role", "r"], client=client)
    assert code == 2
    assert "expected ws-" in capsys.readouterr().err
