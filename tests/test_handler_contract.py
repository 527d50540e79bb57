"""Handler contract: typed properties, clear errors for malformed ones, no secrets in logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from bakery_runtime.core.errors import InvalidPropertiesError
from bakery_runtime.core.properties import BundleProperties, ImageProperties

from .harness.stacks import two_personas
from .harness.world import world

IMAGE = {
    "ImageName": "developer-1.0.0-0123abcd",
    "ImageDescription": "developer thin image version 1.0.0",
    "TemplateWorkspaceId": "ws-dev0template1",
    "Persona": "developer",
    "Recipe": "0123abcd",
    "Tags": [{"Key": "Name", "Value": "developer"}],
    "BuildTimeoutSeconds": "21600",
    "WaitHandle": "https://signal.example/handle",
}
BUNDLE = {
    "BundleName": "developer-abc123",
    "BundleDescription": "developer persona bundle",
    "ComputeType": "STANDARD",
    "RootVolumeGib": "80",
    "UserVolumeGib": "10",
    "ImageBuildResult": '{"image": "wsi-0123456789"}',
    "Tags": [],
}


def test_string_properties_become_typed_values() -> None:
    image = ImageProperties.parse(IMAGE)
    assert image.build_timeout_seconds == 21600
    assert image.tags == {"Name": "developer"}
    bundle = BundleProperties.parse(BUNDLE)
    assert (bundle.root_volume_gib, bundle.user_volume_gib) == (80, 10)
    assert bundle.image_id == "wsi-0123456789"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("RootVolumeGib", "eighty", "RootVolumeGib must be a whole number"),
        ("UserVolumeGib", "5000", "UserVolumeGib must be 10-2000"),
        ("ImageBuildResult", "{}", "ImageBuildResult must be an image id"),
        ("BundleName", "", "BundleName must be a non-empty string"),
        ("Tags", "Name=x", "Tags must be a list"),
    ],
)
def test_malformed_bundle_properties_name_the_field(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidPropertiesError, match=message):
        BundleProperties.parse({**BUNDLE, field: value})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("BuildTimeoutSeconds", "six hours", "BuildTimeoutSeconds must be a whole number"),
        ("BuildTimeoutSeconds", "50000", "BuildTimeoutSeconds must be 600-43200"),
        ("TemplateWorkspaceId", "workspace-1", "TemplateWorkspaceId must look like ws-"),
    ],
)
def test_malformed_image_properties_name_the_field(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidPropertiesError, match=message):
        ImageProperties.parse({**IMAGE, field: value})


def test_a_hand_edited_template_creates_nothing() -> None:
    template = two_personas()
    with world(template) as w:
        bad = {**BUNDLE, "RootVolumeGib": "lots"}
        with pytest.raises(InvalidPropertiesError, match="Custom::WorkSpacesBundle Bad"):
            w.cloudformation.send_event("Create", "Bad", "Custom::WorkSpacesBundle", bad)
        with pytest.raises(InvalidPropertiesError):
            w.cloudformation.send_event(
                "Create", "Bad", "Custom::WorkSpacesImage", {**IMAGE, "BuildTimeoutSeconds": "x"}
            )
        assert w.fake.calls == []


def test_pre_signed_urls_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    template = two_personas()
    caplog.set_level(logging.INFO)  # the level the handlers set in Lambda
    with world(template) as w:
        w.cloudformation.deploy(template)
        w.cloudformation.delete_stack()
        handles = [u for u in w.cloudformation.signals.received]
    assert handles
    logged = caplog.text
    for url in [*handles, "cloudformation-custom-resource-response"]:
        assert url not in logged


def test_handler_entry_points_exist() -> None:
    from bakery_runtime.image_build import custom_resource
    from bakery_runtime.image_build import steps as build_steps
    from bakery_runtime.image_build import watch as build_watch

    assert callable(custom_resource.on_event)
    assert callable(build_steps.handler)
    assert callable(build_watch.handler)
    runtime = Path(build_steps.__file__).parent
    assert not list(runtime.glob("test*")), "tests must not ship in the Lambda asset"
