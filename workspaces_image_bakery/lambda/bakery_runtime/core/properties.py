"""Typed views of the string-typed properties CloudFormation sends to the handlers.

CloudFormation turns every scalar into a string. Each property is parsed once, here,
and a malformed value (a hand-edited template) is an error that names the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import contract as c
from .errors import InvalidPropertiesError

_IMAGE_ID = re.compile(r"^wsi-[0-9a-z]{9,63}$")
_WORKSPACE_ID = re.compile(r"^ws-[0-9a-z]{8,63}$")
# botocore's SSM InstanceId pattern, hybrid (managed) nodes only.
MANAGED_NODE_ID = re.compile(r"^mi-\w{17}$")
# The preparation document property of 0.4.0 templates (before the stack's one script
# document): read back only on the rollback of an upgrade.
LEGACY_PREPARATION_DOCUMENT = "PreparationDocument"
# A script's asset: its S3 object key (a CDK file asset's hash) and its SHA-256.
_SCRIPT_KEY = re.compile(r"^[0-9a-f]{64}\.sh$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,19}$")
MAX_BUILD_TIMEOUT_SECONDS = 43_200


def _text(props: Mapping[str, Any], key: str, resource: str) -> str:
    value = props.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidPropertiesError(
            f"{resource}: property {key} must be a non-empty string, got {value!r}"
        )
    return value


def _int(props: Mapping[str, Any], key: str, resource: str, low: int, high: int) -> int:
    raw = props.get(key)
    try:
        value = int(str(raw))
    except ValueError:
        raise InvalidPropertiesError(
            f"{resource}: property {key} must be a whole number, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise InvalidPropertiesError(
            f"{resource}: property {key} must be {low}-{high}, got {value}"
        )
    return value


def parse_tags(props: Mapping[str, Any], resource: str) -> dict[str, str]:
    """Tags arrive as a list of {"Key": ..., "Value": ...}; return them as a dict."""
    raw = props.get(c.TAGS, [])
    if not isinstance(raw, list):
        raise InvalidPropertiesError(f"{resource}: property {c.TAGS} must be a list, got {raw!r}")
    tags: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("Key"), str):
            raise InvalidPropertiesError(
                f"{resource}: each of {c.TAGS} needs a string Key and Value, got {item!r}"
            )
        tags[item["Key"]] = str(item.get("Value", ""))
    return tags


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """The API's tag shape, sorted by key so that requests are deterministic."""
    return [{"Key": k, "Value": tags[k]} for k in sorted(tags)]


@dataclass(frozen=True)
class ImageProperties:
    """What a Custom::WorkSpacesImage asks for."""

    image_name: str
    description: str
    template_workspace_id: str
    persona: str
    recipe: str
    tags: dict[str, str]
    build_timeout_seconds: int
    wait_handle: str
    # Both set when the build prepares the template through Run Command; both None when
    # the template is prepared by hand. A script is {"Key": ..., "Sha256": ...}.
    preparation_script: dict[str, str] | None = None
    managed_node_id: str | None = None
    # The persona's image version (tagged on the image); None from an older template.
    version: str | None = None
    # How many of the persona's images are kept; 1 (an older template): none besides this.
    retained_images: int = 1
    image_quota: int = c.DEFAULT_IMAGE_QUOTA
    validation_script: dict[str, str] | None = None
    expectations: dict[str, Any] | None = None
    seal_script: dict[str, str] | None = None

    def library_tags(self) -> dict[str, str]:
        """The tags that say what the image is: persona, recipe and version."""
        tags = {c.PERSONA_TAG_KEY: self.persona, c.RECIPE_TAG_KEY: self.recipe}
        if self.version is not None:
            tags[c.IMAGE_VERSION_TAG_KEY] = self.version
        return tags

    def all_tags(self) -> dict[str, str]:
        """The declared tags and the library's tags (the ownership tag is added by callers)."""
        return {**self.tags, **self.library_tags()}

    @classmethod
    def parse(
        cls, props: Mapping[str, Any], resource: str = c.IMAGE_RESOURCE_TYPE
    ) -> ImageProperties:
        workspace_id = _text(props, c.TEMPLATE_WORKSPACE_ID, resource)
        if not _WORKSPACE_ID.match(workspace_id):
            raise InvalidPropertiesError(
                f"{resource}: property {c.TEMPLATE_WORKSPACE_ID} must look like ws-xxxxxxxxx, "
                f"got {workspace_id!r}"
            )
        return cls(
            image_name=_text(props, c.IMAGE_NAME, resource),
            description=_text(props, c.IMAGE_DESCRIPTION, resource),
            template_workspace_id=workspace_id,
            persona=_text(props, c.PERSONA, resource),
            recipe=_text(props, c.RECIPE, resource),
            tags=parse_tags(props, resource),
            build_timeout_seconds=_int(
                props, c.BUILD_TIMEOUT_SECONDS, resource, 600, MAX_BUILD_TIMEOUT_SECONDS
            ),
            wait_handle=_text(props, c.WAIT_HANDLE, resource),
            **_preparation(props, resource),
            version=_version(props, c.IMAGE_VERSION, resource),
            validation_script=_script(props, c.VALIDATION_SCRIPT, resource),
            expectations=_expectations(props, resource),
            seal_script=_script(props, c.SEAL_SCRIPT, resource),
            retained_images=_int(props, c.RETAINED_IMAGES, resource, 1, c.MAX_RETAINED_IMAGES)
            if c.RETAINED_IMAGES in props
            else 1,
            image_quota=_int(props, c.IMAGE_QUOTA, resource, 1, 100_000)
            if c.IMAGE_QUOTA in props
            else c.DEFAULT_IMAGE_QUOTA,
        )


def _expectations(props: Mapping[str, Any], resource: str) -> dict[str, Any] | None:
    """What the persona declares for the as-built checklist (JSON text), or None."""
    if c.EXPECTATIONS not in props:
        return None
    try:
        value = json.loads(_text(props, c.EXPECTATIONS, resource))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidPropertiesError(f"{resource}: property {c.EXPECTATIONS} must be a JSON object")
    return value


def _script(props: Mapping[str, Any], key: str, resource: str) -> dict[str, str] | None:
    """A script that runs on the template (validation, seal): its asset's object key and
    SHA-256; only with the preparation channel (it runs there)."""
    if key not in props:
        return None
    if c.PREPARATION_SCRIPT not in props or c.MANAGED_NODE_ID not in props:
        raise InvalidPropertiesError(
            f"{resource}: property {key} needs {c.PREPARATION_SCRIPT} and {c.MANAGED_NODE_ID}"
        )
    return _script_value(props, key, resource)


def _script_value(props: Mapping[str, Any], key: str, resource: str) -> dict[str, str]:
    value = props.get(key)
    if (
        not isinstance(value, Mapping)
        or not _SCRIPT_KEY.match(str(value.get(c.SCRIPT_KEY, "")))
        or not _SHA256.match(str(value.get(c.SCRIPT_SHA256, "")))
    ):
        raise InvalidPropertiesError(
            f"{resource}: property {key} must be {{{c.SCRIPT_KEY!r}: <64 hex>.sh, "
            f"{c.SCRIPT_SHA256!r}: <64 hex>}}, got {value!r}"
        )
    return {c.SCRIPT_KEY: str(value[c.SCRIPT_KEY]), c.SCRIPT_SHA256: str(value[c.SCRIPT_SHA256])}


def _version(props: Mapping[str, Any], key: str, resource: str) -> str | None:
    """An image version (1-20 of 0-9A-Za-z._-), or None when the property is absent."""
    if key not in props:
        return None
    value = _text(props, key, resource)
    if not _VERSION.match(value):
        raise InvalidPropertiesError(
            f"{resource}: property {key} must be 1-20 of 0-9A-Za-z._-, got {value!r}"
        )
    return value


def _preparation(props: Mapping[str, Any], resource: str) -> dict[str, Any]:
    """The preparation channel's two properties: both or neither."""
    given = [k for k in (c.PREPARATION_SCRIPT, c.MANAGED_NODE_ID) if k in props]
    if not given:
        return {}
    if c.PREPARATION_SCRIPT not in props and LEGACY_PREPARATION_DOCUMENT in props:
        # A 0.4.0 template's properties, which CloudFormation sends back on the rollback of
        # an upgrade: they name a document that no longer exists, and a rollback builds
        # nothing, so they describe a template prepared by hand here.
        return {}
    script = _script_value(props, c.PREPARATION_SCRIPT, resource)
    node = _text(props, c.MANAGED_NODE_ID, resource)
    if not MANAGED_NODE_ID.match(node):
        raise InvalidPropertiesError(
            f"{resource}: property {c.MANAGED_NODE_ID} must look like mi- and 17 characters, "
            f"got {node!r}"
        )
    return {"preparation_script": script, "managed_node_id": node}


@dataclass(frozen=True)
class BundleProperties:
    """What a Custom::WorkSpacesBundle asks for."""

    bundle_name: str
    description: str
    compute_type: str
    root_volume_gib: int
    user_volume_gib: int
    image_id: str
    tags: dict[str, str]
    # The name the image resource gave the image, when the bundle follows one.
    expected_image_name: str | None = None
    # True when the image id came from a build's signal (not an id written in the template).
    image_from_build: bool = False
    # A released (pinned) version of `persona`: the handler finds the image (image_id is
    # empty until then).
    released_version: str | None = None
    persona: str | None = None

    @classmethod
    def parse(
        cls, props: Mapping[str, Any], resource: str = c.BUNDLE_RESOURCE_TYPE
    ) -> BundleProperties:
        released = _version(props, c.RELEASED_VERSION, resource)
        if released is not None:
            return cls(
                bundle_name=_text(props, c.BUNDLE_NAME, resource),
                description=_text(props, c.BUNDLE_DESCRIPTION, resource),
                compute_type=_text(props, c.COMPUTE_TYPE, resource),
                root_volume_gib=_int(props, c.ROOT_VOLUME_GIB, resource, 10, 2000),
                user_volume_gib=_int(props, c.USER_VOLUME_GIB, resource, 10, 2000),
                image_id="",
                tags=parse_tags(props, resource),
                image_from_build=True,
                released_version=released,
                persona=_text(props, c.PERSONA, resource),
            )
        result = props.get(c.IMAGE_BUILD_RESULT)
        expected = props.get(c.EXPECTED_IMAGE_NAME)
        if expected is not None and (not isinstance(expected, str) or not expected):
            raise InvalidPropertiesError(
                f"{resource}: property {c.EXPECTED_IMAGE_NAME} must be a non-empty string, "
                f"got {expected!r}"
            )
        return cls(
            bundle_name=_text(props, c.BUNDLE_NAME, resource),
            description=_text(props, c.BUNDLE_DESCRIPTION, resource),
            compute_type=_text(props, c.COMPUTE_TYPE, resource),
            root_volume_gib=_int(props, c.ROOT_VOLUME_GIB, resource, 10, 2000),
            user_volume_gib=_int(props, c.USER_VOLUME_GIB, resource, 10, 2000),
            image_id=image_id_from_build_result(result, resource),
            tags=parse_tags(props, resource),
            expected_image_name=expected,
            image_from_build=not (isinstance(result, str) and _IMAGE_ID.match(result)),
        )

    def replacement_key(self) -> tuple[str, str, str, int, int]:
        """The properties UpdateWorkspaceBundle cannot change: a change replaces the bundle."""
        return (
            self.bundle_name,
            self.description,
            self.compute_type,
            self.root_volume_gib,
            self.user_volume_gib,
        )


def image_id_from_build_result(raw: object, resource: str = c.BUNDLE_RESOURCE_TYPE) -> str:
    """Read the image id from a WaitCondition's Data: {"image": "wsi-..."}, as JSON text or
    as the object itself (CloudFormation's resource specification types the attribute as
    JSON; which of the two a custom resource receives was not observed).

    A plain image id is accepted too, for bundles bound to an image built elsewhere.
    """
    if isinstance(raw, str) and _IMAGE_ID.match(raw):
        return raw
    data: object = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
    value = data.get(c.WAIT_SIGNAL_UNIQUE_ID) if isinstance(data, dict) else None
    if not isinstance(value, str) or not _IMAGE_ID.match(value):
        raise InvalidPropertiesError(
            f"{resource}: property {c.IMAGE_BUILD_RESULT} must be an image id (wsi-...) or the "
            f'image build\'s result {{"{c.WAIT_SIGNAL_UNIQUE_ID}": "wsi-..."}}, got {raw!r}'
        )
    return value
