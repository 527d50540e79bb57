"""A WorkSpaces image snapshotted from a template WorkSpace during ``cdk deploy``.

Per image the stack holds three resources: the Custom::WorkSpacesImage that starts the
build, and a WaitConditionHandle + WaitCondition that CloudFormation waits on until the
build workflow signals. The handle and the condition carry the recipe fingerprint in their
logical ids, so a new recipe gets a new wait (WaitConditions cannot be updated) and an
unchanged recipe leaves the template, and the image, untouched.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol
from weakref import WeakKeyDictionary

import jsii
from aws_cdk import (
    CustomResource,
    Duration,
    ITaggableV2,
    RemovalPolicy,
    Stack,
    TagManager,
    Token,
)
from aws_cdk import aws_cloudformation as cfn
from constructs import Construct

from ..core.naming import (
    IMAGE_ID_PATTERN,
    IMAGE_ID_TEXT,
    MAX_NAME_LENGTH,
    check_name_and_description,
    check_template_workspace_id,
)
from ..core.runtime_assets import contract
from ..core.tag_rules import check_tags, tag_strings
from ..core.tagging import TagCheck, tag_manager
from ..core.validation import (
    Problems,
    check_duration,
    check_json,
    check_no_secrets,
    check_removal_policy,
    context_of,
    plain_json,
    register_images,
    register_name,
    seconds_of,
    stack_of,
    without_none,
)
from ..release.release import check_retained_images, check_version, image_quota
from .build_runtime import IMAGE_TEMPLATE_BYTES, SCRIPT_TEMPLATE_BYTES, BuildRuntime
from .run_command import (
    RunCommandPreparation,
    check_managed_node_id,
    script_asset,
    validation_script,
)

REBUILD_CONTEXT = "workspaces-image-bakery:rebuild"
RESYNC_CONTEXT = "workspaces-image-bakery:resync"
DEFAULT_BUILD_TIMEOUT_HOURS = 6
MIN_BUILD_TIMEOUT_SECONDS = 1800
MAX_BUILD_TIMEOUT_SECONDS = 43_200  # the longest a WaitCondition can wait
FINGERPRINT_CHARS = 8
MAX_BASE_NAME_LENGTH = MAX_NAME_LENGTH - FINGERPRINT_CHARS - 1
# How long CloudFormation waits for the provider's answer to one event.
SERVICE_TIMEOUT_MINUTES = 10


# Durations are made on first use, once per process (each is a round trip to the jsii
# kernel): importing the library makes no call to the kernel.
@functools.cache
def default_build_timeout() -> Duration:
    """The build timeout when none is given: 6 hours."""
    return Duration.hours(DEFAULT_BUILD_TIMEOUT_HOURS)


@functools.cache
def service_timeout() -> Duration:
    """The ServiceTimeout of the Lambda-backed resources: 10 minutes."""
    return Duration.minutes(SERVICE_TIMEOUT_MINUTES)


class IWorkspaceImage(Protocol):
    """A WorkSpaces image: one this app builds (:class:`WorkspaceImage`) or one imported
    with :meth:`WorkspaceImage.from_image_id`."""

    @property
    def image_id(self) -> str:
        """The image id (wsi-...); a deploy-time token for an image this app builds."""
        ...

    @property
    def image_name(self) -> str | None:
        """The image's name; None for an imported image."""
        ...


def check_build_timeout(problems: Problems, build_timeout: Any) -> bool:
    """A Duration of 30 minutes to 12 hours (the longest a WaitCondition waits)."""
    return check_duration(
        problems,
        "build_timeout",
        build_timeout,
        MIN_BUILD_TIMEOUT_SECONDS,
        MAX_BUILD_TIMEOUT_SECONDS,
        "30 minutes to 12 hours",
    )


def fingerprint(scope: Construct | Stack, recipe: Mapping[str, Any]) -> str:
    """A short, stable digest of everything that changes what the image holds (as the
    stack resolves it: tokens resolved, None values dropped)."""
    recipe = dict(recipe)
    if plain_json(recipe):
        resolved = without_none(recipe)  # what the kernel returns, without the round trip
    else:
        stack = scope if isinstance(scope, Stack) else Stack.of(scope)
        resolved = stack.resolve(recipe)
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def resync_property(stack: Construct) -> dict[str, str]:
    """The resync context value, when set: a deploy that re-applies declared tags only."""
    value = context_of(stack, RESYNC_CONTEXT)
    return {} if value is None else {contract.RESYNC: str(value)}


_RUNTIMES: WeakKeyDictionary[Stack, BuildRuntime] = WeakKeyDictionary()


def runtime_of(stack: Stack) -> BuildRuntime:
    """The stack's build runtime (:meth:`BuildRuntime.of`), looked up once per stack."""
    runtime = _RUNTIMES.get(stack)
    if runtime is None:
        runtime = _RUNTIMES[stack] = BuildRuntime.of(stack)
    return runtime


class ImportedImage(Construct):
    """An image built elsewhere, by id (see :meth:`WorkspaceImage.from_image_id`)."""

    def __init__(self, scope: Construct, id_: str, image_id: str) -> None:
        super().__init__(scope, id_)
        problems = Problems.of(self)
        problems.text(
            "image_id",
            image_id,
            min_len=13,
            max_len=67,
            pattern=IMAGE_ID_PATTERN,
            pattern_text=IMAGE_ID_TEXT,
        )
        check_no_secrets(problems, {"image_id": image_id})
        problems.raise_if_any()
        self._image_id = image_id

    @property
    def image_id(self) -> str:
        """The image id given."""
        return self._image_id

    @property
    def image_name(self) -> str | None:
        """Not known for an imported image: None."""
        return None


@jsii.implements(ITaggableV2)
class WorkspaceImage(Construct):
    """An image built from ``template_workspace_id`` whenever its recipe changes.

    :param base_name: image name before the recipe fingerprint is appended; 1-55 characters
        of ``a-zA-Z0-9_./()-`` (the API allows 64 and the suffix takes 9). Not a token.
    :param description: 1-256 characters of ``a-zA-Z0-9_./() -``. Not a token: it is
        part of the recipe and the bundle's shape digest.
    :param template_workspace_id: the prepared WorkSpace to snapshot (``ws-`` + 8-63
        lowercase letters or digits). It must not be encrypted. May be a deploy-time token.
    :param persona: persona name (1-64 characters), used in messages and stack events, and
        tagged on the image: retention and released versions find the persona's images by
        it, so it is unique in the app. Not a token.
    :param recipe: what the image holds (version, baked software, ...), as JSON data. A
        change to any value builds a new image; the template WorkSpace id and description
        are included.
    :param tags: tags of the image (``{}`` for none; values may be deploy-time tokens); a
        change is applied in place without a rebuild. ``Tags.of(scope).add(...)`` reaches
        the image too and wins over these for the same key (the CDK's priorities).

    Every string (names, recipe values and keys at any depth, tag keys and values) is
    scanned for secrets.
    :param build_timeout: how long a build may take. Default 6 hours; 30 minutes to 12 hours
        (the longest a CloudFormation WaitCondition waits).
    :param rebuild_token: any string; changing it forces a new image. Default: the
        ``workspaces-image-bakery:rebuild`` context value, if set.
    :param removal_policy: what happens to a replaced or removed image. Default DESTROY
        (the image quota is small); RETAIN keeps every image.
    :param prepared_by: how the build prepares the template before imaging it: a
        :class:`RunCommandPreparation` (its script runs on the template's managed node,
        the template is rebooted and its recipe marker checked). Default None: the
        template is prepared by hand and imaged as it is. Part of the recipe.
    :param version: the image version, tagged on the image
        (``workspaces-image-bakery:version``) with the persona and the recipe, so that a
        bundle can serve it again later (:class:`ReleasedImage`). 1-20 of ``0-9A-Za-z._-``.
        Default None: not tagged with a version.
    :param retained_images: how many of the persona's images are kept (the one in use
        counts), 1-20. Default 3. A replaced image is kept, tagged
        ``workspaces-image-bakery:retained``; older ones are deleted once no bundle uses
        them and they are shared with no account. 1 deletes each replaced image. Each
        persona can hold this many images plus the one being built against the Region's
        image quota (the ``workspaces-image-bakery:image-quota`` context value, default
        40), checked at synth time for the stack and before each build for the Region.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        base_name: str,
        description: str,
        template_workspace_id: str,
        persona: str,
        recipe: Mapping[str, Any],
        tags: Mapping[str, str],
        build_timeout: Duration | None = None,
        rebuild_token: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        prepared_by: RunCommandPreparation | None = None,
        version: str | None = None,
        retained_images: int = contract.DEFAULT_RETAINED_IMAGES,
        expectations: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.stack = stack_of(self, scope)
        problems = Problems.of(self)
        build_timeout = default_build_timeout() if build_timeout is None else build_timeout
        if version is not None:
            check_version(problems, "version", version)
        self.retained_images = check_retained_images(problems, retained_images)
        quota = image_quota(self.stack)
        register_images(problems, self.stack, self.retained_images + 1, quota)
        check_name_and_description(
            problems, self.stack, "image", base_name, MAX_BASE_NAME_LENGTH, description, 256
        )
        if prepared_by is not None:
            if isinstance(prepared_by, RunCommandPreparation):
                check_managed_node_id(problems, prepared_by.managed_node_id)
            else:
                problems.add("prepared_by", prepared_by, "a RunCommandPreparation, or None")
        check_template_workspace_id(problems, template_workspace_id)
        # Retention finds a persona's images by this name: one image resource per persona.
        problems.text("persona", persona, max_len=64, tokens=False)
        register_name(problems, self.stack, "image persona", "persona", persona)
        recipe_strings = check_json(problems, "recipe", recipe)
        expected_strings: dict[str, str] = {}
        if expectations is not None and not isinstance(expectations, Mapping):
            problems.add(
                "expectations",
                f"<{type(expectations).__name__}>",
                "a mapping (design, baked_applications, agents), or None",
            )
        elif expectations is not None:
            expected_strings = check_json(problems, "expectations", expectations)
        check_tags(problems, "tags", tags)
        if rebuild_token is not None and not isinstance(rebuild_token, str):
            problems.add("rebuild_token", rebuild_token, "a string, or None")
        check_build_timeout(problems, build_timeout)
        check_removal_policy(problems, removal_policy)
        check_no_secrets(
            problems,
            {
                "base_name": base_name,
                "description": description,
                "template_workspace_id": template_workspace_id,
                "persona": persona,
                "rebuild_token": rebuild_token,
                **recipe_strings,
                **expected_strings,
                **(tag_strings("tags", tags) if isinstance(tags, Mapping) else {}),
            },
        )
        problems.raise_if_any()
        seconds = seconds_of(build_timeout)

        token = rebuild_token
        if token is None:
            context = context_of(self.stack, REBUILD_CONTEXT)
            token = None if context is None else str(context)
        self.recipe: dict[str, Any] = {
            **recipe,
            "template_workspace_id": template_workspace_id,
            "description": description,
            "rebuild": token,
            # Whether the build prepares the template: a change builds a new image.
            "prepared_in_build": prepared_by is not None,
        }
        self.fingerprint = fingerprint(self.stack, self.recipe)
        short = self.fingerprint[:FINGERPRINT_CHARS]
        self.image_name = f"{base_name}-{short}"
        self.persona = persona
        self.version = version
        self._image_id: str | None = None
        self.template_workspace_id = template_workspace_id

        runtime = runtime_of(self.stack)
        runtime.allow_template_workspace(template_workspace_id)
        self.prepared_by = prepared_by
        self.preparation_script: str | None = None
        preparation: dict[str, Any] = {}
        if prepared_by is not None:
            self.preparation_script = prepared_by.script(self.fingerprint)
            preparation = {
                contract.PREPARATION_SCRIPT: script_asset(
                    self,
                    "PreparationScript",
                    script=self.preparation_script,
                    allow_read=runtime.allow_script,
                ),
                contract.MANAGED_NODE_ID: prepared_by.managed_node_id,
            }
            runtime.allow_preparation(prepared_by.managed_node_id)
            if prepared_by.validation_commands:
                preparation[contract.VALIDATION_SCRIPT] = script_asset(
                    self,
                    "ValidationScript",
                    script=validation_script(prepared_by.validation_commands),
                    allow_read=runtime.allow_script,
                )
            if prepared_by.seal_script:
                preparation[contract.SEAL_SCRIPT] = script_asset(
                    self,
                    "SealScript",
                    script=prepared_by.seal_script,
                    allow_read=runtime.allow_script,
                )
            scripts = len(preparation) - 1  # besides the managed node id
            runtime.count_template_bytes(problems.path, SCRIPT_TEMPLATE_BYTES * scripts)
        self._declared_tags = dict(tags)
        self._tag_manager = tag_manager(contract.IMAGE_RESOURCE_TYPE, tags)
        TagCheck.register(self.stack, self)
        runtime.count_template_bytes(problems.path, IMAGE_TEMPLATE_BYTES)
        handle = cfn.CfnWaitConditionHandle(self, f"BuildHandle{short}")
        handle_ref = handle.ref
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=runtime.service_token,
            resource_type=contract.IMAGE_RESOURCE_TYPE,
            removal_policy=removal_policy,
            service_timeout=service_timeout(),
            properties={
                contract.IMAGE_NAME: self.image_name,
                contract.IMAGE_DESCRIPTION: description,
                contract.TEMPLATE_WORKSPACE_ID: template_workspace_id,
                contract.PERSONA: persona,
                contract.RECIPE: self.fingerprint,
                contract.TAGS: self._tag_manager.rendered_tags,
                contract.BUILD_TIMEOUT_SECONDS: str(int(seconds)),
                contract.WAIT_HANDLE: handle_ref,
                contract.RETAINED_IMAGES: str(self.retained_images),
                contract.IMAGE_QUOTA: str(quota),
                **({contract.IMAGE_VERSION: version} if version is not None else {}),
                **preparation,
                contract.EXPECTATIONS: self._expectations(expectations, prepared_by),
                **resync_property(self.stack),
            },
        )
        # A WaitCondition cannot be updated, so its timeout never changes: it is the longest
        # CloudFormation allows, a backstop. The persona's bound is the workflow's deadline,
        # which fails the build with a reason before then; changing it updates in place.
        self.wait = cfn.CfnWaitCondition(
            self,
            f"BuildWait{short}",
            handle=handle_ref,
            timeout=str(MAX_BUILD_TIMEOUT_SECONDS),
            count=1,
        )
        self.wait.node.add_dependency(self.resource)
        self.build_timeout = build_timeout

    def _expectations(
        self, declared: Mapping[str, Any] | None, prepared_by: RunCommandPreparation | None
    ) -> str:
        """The Expectations property: what the as-built checklist checks (JSON text)."""
        raw = context_of(self.stack, contract.CHECKLIST_MINIMUM_CONTEXT)
        try:
            minimum = None if raw in (None, "") else float(raw)
        except (TypeError, ValueError):
            minimum = None  # the persona's checklist gate reports the bad value at synth
        data = {
            **dict(declared or {}),
            "validation_commands": len(prepared_by.validation_commands) if prepared_by else 0,
            "checklist_minimum": minimum,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_image_id(cls, scope: Construct, id_: str, image_id: str) -> IWorkspaceImage:
        """An image built elsewhere (``wsi-`` + 9-63 lowercase letters or digits; may be a
        deploy-time token), e.g. for a :class:`WorkspaceBundle`."""
        return ImportedImage(scope, id_, image_id)

    @property
    def build_result(self) -> str:
        """The WaitCondition's data, {"image": "wsi-..."}: pass it to a bundle."""
        return Token.as_string(self.wait.attr_data)

    @property
    def image_id(self) -> str:
        """The id (wsi-...) of the image this deploy built or kept, as an attribute of a
        ``Custom::WorkSpacesImageId`` resource (added on first use) that reads the build's
        signal and checks the image, as a bundle does, before it answers."""
        if self._image_id is None:
            resource = CustomResource(
                self,
                "ImageId",
                service_token=runtime_of(self.stack).service_token,
                resource_type=contract.IMAGE_ID_RESOURCE_TYPE,
                service_timeout=service_timeout(),
                properties={
                    contract.IMAGE_BUILD_RESULT: self.build_result,
                    contract.EXPECTED_IMAGE_NAME: self.image_name,
                },
            )
            self._image_id = resource.get_att_string(contract.ATTR_IMAGE_ID)
        return self._image_id

    @property
    def cdk_tag_manager(self) -> TagManager:
        """The image's tags as the CDK manages them (``Tags.of`` reaches them)."""
        return self._tag_manager

    @property
    def declared_tags(self) -> dict[str, str]:
        """The tags given to the construct."""
        return dict(self._declared_tags)

    @property
    def tags(self) -> dict[str, str]:
        """The image's tags now: the given ones and, after synth, those of ``Tags.of``."""
        return dict(self._tag_manager.tag_values())

    @property
    def path(self) -> str:
        """The construct path."""
        return self.node.path

    def apply_removal_policy(self, policy: RemovalPolicy) -> None:
        """What happens to a replaced or removed image: DESTROY or RETAIN."""
        problems = Problems.of(self)
        check_removal_policy(problems, policy)
        problems.raise_if_any()
        self.resource.apply_removal_policy(policy)
