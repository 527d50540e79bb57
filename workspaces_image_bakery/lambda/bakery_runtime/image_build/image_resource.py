"""Custom::WorkSpacesImage: starts a build on create or recipe change, keeps tags in step.

The resource itself answers within seconds; the image is built by the build workflow,
which signals the persona's WaitCondition. The physical id is the image name, which
carries the recipe fingerprint, so a recipe change replaces the resource and CloudFormation
deletes the previous image only after the whole update succeeded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import Clients, error_code, owner, replaced_in_stack, rolling_back, stack_status
from ..core.errors import BuildFailed, InvalidPropertiesError
from ..core.events import ResourceEvent
from ..core.properties import ImageProperties
from ..core.workspaces import describe_tags, mark_kept, owned_image, sync_tags
from ..evidence import record
from ..patching import contract as patch_contract
from ..patching import state as patch_state
from ..release.retention import PersonaImage, mark_retained, prune
from . import preparation, request
from .request import BuildRequest
from .steps import inspect_template

logger = logging.getLogger(__name__)


def _digest(*parts: str, size: int) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:size]


def execution_prefix(event: ResourceEvent, image_name: str) -> str:
    """Names of the builds of one image resource start with this (Step Functions: 80 chars)."""
    return "build-" + _digest(event.stack_id, event.logical_id, image_name, size=32)


def execution_name(event: ResourceEvent, image_name: str) -> str:
    """Deterministic per CloudFormation request: a re-sent event reuses the same execution."""
    return f"{execution_prefix(event, image_name)}-{_digest(event.request_id, size=24)}"


def state_machine_arn() -> str:
    return os.environ[c.ENV_STATE_MACHINE_ARN]


def start_build(event: ResourceEvent, props: ImageProperties, clients: Clients) -> str:
    """Start (or find again) the build workflow; fail at once if the template is unusable."""
    try:
        inspect_template(clients.workspaces, props.template_workspace_id)
    except BuildFailed as failure:
        raise BuildFailed(f"{event.where} (persona {props.persona}): {failure}") from None
    build = BuildRequest.for_image(props)
    name = execution_name(event, props.image_name)
    # The request goes where only the runtime writes; the input names the persona only
    # (for `status`), and no longer carries the WaitCondition's pre-signed URL.
    request.save(clients.s3, name, build)
    payload = json.dumps({"Persona": props.persona}, sort_keys=True)
    try:
        arn = clients.stepfunctions.start_execution(
            stateMachineArn=state_machine_arn(), name=name, input=payload
        )["executionArn"]
    except ClientError as error:
        if error_code(error) != "ExecutionAlreadyExists":
            raise
        # The same request was delivered twice with a different deadline: keep the first build.
        arn = state_machine_arn().replace(":stateMachine:", ":execution:") + f":{name}"
    logger.info("image %s: build %s started", props.image_name, name)
    return arn


def stop_builds(event: ResourceEvent, image_name: str, clients: Clients) -> list[str]:
    """Stop every running build of this image resource (a rollback or delete mid-build)."""
    prefix = execution_prefix(event, image_name)
    stopped: list[str] = []
    paginator = clients.stepfunctions.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn(), statusFilter="RUNNING"):
        for execution in page["executions"]:
            if execution["name"].startswith(prefix):
                clients.stepfunctions.stop_execution(
                    executionArn=execution["executionArn"],
                    error=c.ERROR_STACK_OPERATION,
                    cause=f"CloudFormation is deleting {event.where} ({image_name})",
                )
                # Its Run Command too: a quick redeploy must not prepare the template beside it.
                preparation.cancel_command(clients, execution["name"])
                stopped.append(execution["executionArn"])
    if stopped:
        logger.info("image %s: stopped %d running build(s)", image_name, len(stopped))
    return stopped


def cleanup_name(image_id: str) -> str:
    return f"cleanup-{image_id}"


def start_cleanup(image_id: str, image_name: str, clients: Clients) -> None:
    """Hand a PENDING image to a cleanup execution that deletes it once it settles."""
    clients.workspaces.create_tags(
        ResourceId=image_id, Tags=[{"Key": c.CLEANUP_TAG_KEY, "Value": "requested"}]
    )
    payload = json.dumps({"Cleanup": {"image_id": image_id, "image_name": image_name}})
    try:
        clients.stepfunctions.start_execution(
            stateMachineArn=state_machine_arn(), name=cleanup_name(image_id), input=payload
        )
    except ClientError as error:
        if error_code(error) != "ExecutionAlreadyExists":
            raise
    logger.info("image %s (%s) is PENDING; a cleanup execution deletes it", image_id, image_name)


def delete_image(event: ResourceEvent, image_name: str, clients: Clients) -> None:
    """Delete the image this stack created; anything already gone or foreign is left alone."""
    try:
        image = owned_image(clients.workspaces, image_name, owner())
    except BuildFailed as foreign:
        logger.warning("not deleting: %s", foreign)
        return
    if image is None:
        logger.info("image %s is already gone", image_name)
        return
    tags = describe_tags(clients.workspaces, image["ImageId"])
    why = record.why_not_made_here(clients.s3, image["ImageId"], image_name, tags, owner())
    if why is not None:
        logger.warning("not deleting image %s (%s): %s", image["ImageId"], image_name, why)
        return
    if image.get("State") == "PENDING":
        start_cleanup(image["ImageId"], image_name, clients)
        return
    try:
        clients.workspaces.delete_workspace_image(ImageId=image["ImageId"])
    except ClientError as error:
        code = error_code(error)
        if code == "InvalidResourceStateException":
            start_cleanup(image["ImageId"], image_name, clients)
            return
        if code == "ResourceAssociatedException":
            # In use by a bundle the stack does not manage, or shared: keep it rather than fail
            # the stack operation, and say so where an operator looks.
            mark_kept(
                clients.workspaces,
                image["ImageId"],
                "in use by a bundle or shared when its stack deleted it: delete by hand once free",
            )
            return
        raise
    logger.info("deleted image %s (%s)", image["ImageId"], image_name)


def handle(event: ResourceEvent, clients: Clients) -> dict[str, Any]:
    if event.request_type == "Delete":
        image_name = event.physical_id or ""
        if image_name:
            stop_builds(event, image_name, clients)
            retire_image(event, image_name, clients)
        return {"PhysicalResourceId": image_name}

    props = ImageProperties.parse(event.properties, event.where)
    data = {c.ATTR_IMAGE_NAME: props.image_name}
    stack = owner()
    replaced = event.request_type == "Update" and event.physical_id != props.image_name
    if replaced and rolling_back(clients, stack):
        return roll_back_to(event, props, clients)
    if event.request_type == "Create" or event.physical_id != props.image_name:
        # New resource, or a new recipe: a new image (CloudFormation deletes the old one later).
        check_pin_alone(event, props.image_name)
        check_patch_level(event, props, clients)
        data[c.ATTR_EXECUTION_ARN] = start_build(event, props, clients)
        return {"PhysicalResourceId": props.image_name, "Data": data}

    # Same recipe: only tags (or the build bound, or the retained count) changed.
    image = owned_image(clients.workspaces, props.image_name, stack)
    if image is None and rolling_back(clients, stack):
        logger.warning("image %s is gone; nothing to roll back", props.image_name)
        return {"PhysicalResourceId": props.image_name, "Data": data}
    if image is None:
        raise BuildFailed(
            f"{event.where}: image {props.image_name} no longer exists (deleted outside "
            "CloudFormation). Change the persona's image version or deploy with the rebuild "
            "context value to build it again"
        )
    tags = describe_tags(clients.workspaces, image["ImageId"])
    why = record.why_not_made_here(clients.s3, image["ImageId"], props.image_name, tags, stack)
    if why is not None and rolling_back(clients, stack):
        logger.warning("not re-tagging image %s on rollback: %s", image["ImageId"], why)
        return {"PhysicalResourceId": props.image_name, "Data": data}
    if why is not None:
        raise BuildFailed(
            f"{event.where}: image {image['ImageId']} ({props.image_name}) carries this stack's "
            f"tag, but {why}: its tags are left alone. Deploy with the rebuild context value "
            "to build the persona's image again"
        )
    sync_tags(clients.workspaces, image["ImageId"], props.all_tags(), stack, tags)
    if event.request_type == "Update" and _retained_count_of(event.old_properties) != (
        props.retained_images
    ):
        # A lower count frees images now, not only when the next image replaces this one.
        _prune_quietly(clients, props.persona, props.retained_images, stack, props.image_name)
    return {"PhysicalResourceId": props.image_name, "Data": data}


def check_patch_level(event: ResourceEvent, props: ImageProperties, clients: Clients) -> None:
    """A persona with a patch schedule builds at the patch level its synth was given, never
    below the level its image was last built at (the runtime's patch state): a synth without
    the levels would otherwise build, or adopt, an image of an older recipe."""
    expectations = props.expectations or {}
    if patch_contract.EXPECTATION_KEY not in expectations:
        return  # no patch schedule
    given = str(expectations.get(patch_contract.EXPECTATION_KEY) or "")
    built = str(patch_state.load(clients.s3, props.persona).get("built_level") or "")
    if built and given < built:
        raise BuildFailed(
            f"{event.where}: persona {props.persona} was last built at patch level {built}, "
            f"and this deploy's synth gave {given or 'none'}: synthesize with "
            f'-c {patch_contract.PATCH_LEVELS_CONTEXT}="$(workspaces-image-bakery patch-levels '
            '--stack <stack>)" (docs/patching.md). Nothing was built'
        )


def check_pin_alone(event: ResourceEvent, image_name: str) -> None:
    """A pin is the emergency brake: a deploy that moves the persona's bundle to a pinned
    version never waits for a build, nor fails with one. The persona's pinned bundle waits
    for this resource's answer (not for the build), so refusing here, before any build
    starts, fails the deploy before users move: never 1.5 -> 1.4 -> 1.5 when the 1.6 build
    fails and the stack rolls back. Deploy the pin alone, then the new recipe."""
    if event.request_type != "Update":
        return
    pinned = event.properties.get(c.RELEASED_VERSION)
    # What the bundle served before: its pin, or the version then built.
    before = event.old_properties.get(c.RELEASED_VERSION) or event.old_properties.get(
        c.IMAGE_VERSION
    )
    if pinned and pinned != before:
        raise BuildFailed(
            f"{event.where}: this deploy pins the persona's bundle to version {pinned} "
            f"(it served {before or 'the version built'}) and also builds {image_name}. A pin "
            "never waits for a build: nothing was built and no bundle moved. Deploy the pin "
            "alone (keep the image version and recipe), then the new recipe"
        )


def _retained_count_of(raw: Any) -> int:
    try:
        return ImageProperties.parse(raw or {}).retained_images
    except InvalidPropertiesError:
        return 1


def _prune_quietly(
    clients: Clients, persona: str | None, keep: int, stack: str, current: str | None = None
) -> None:
    """Prune, never failing the stack operation: what could not be pruned is logged and
    stays (a later prune, or a person, removes it)."""

    def not_owned(image: PersonaImage) -> str | None:
        return record.why_not_owned(
            clients.s3,
            image.tags.get(c.PERSONA_TAG_KEY, ""),
            image.image_id,
            image.name,
            image.tags,
            stack,
        )

    def forget(image: PersonaImage) -> None:
        record.delete(clients.s3, image.tags.get(c.PERSONA_TAG_KEY, ""), image.name)

    try:
        prune(clients.workspaces, persona, keep, stack, current, not_owned, forget)
    except (ClientError, BuildFailed) as error:
        logger.warning("pruning the images of %s failed and is left for later: %s", persona, error)


def retire_image(event: ResourceEvent, image_name: str, clients: Clients) -> None:
    """CloudFormation deletes an image resource: keep the image for a way back, or delete it.

    - After a successful update that *replaced* the image, a persona that retains images
      keeps it, tagged retained, and prunes its images beyond the retained count.
    - A persona removed from the template: its image and its retained images that nothing
      uses are deleted.
    - A rollback deletes the image of the failed update (it never served), but never an
      image tagged retained: that one predates the update (a build adopted it by name).
    - A stack delete deletes the image and this persona's images that nothing uses; a
      persona whose images CloudFormation retains (RETAIN) gets no Delete, and keeps them.
    - A persona retaining one image deletes each replaced image.
    """
    try:
        props: ImageProperties | None = ImageProperties.parse(event.properties, event.where)
    except InvalidPropertiesError:
        props = None
    keep = props.retained_images if props is not None else 1
    stack = owner()
    status, replaced = "", None
    try:
        status = stack_status(clients, stack) if props is not None else ""
        if props is not None and status == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS":
            replaced = replaced_in_stack(clients, stack, event.logical_id, image_name)
    except ClientError as error:
        # Without the stack's state the image is deleted as before retention existed.
        logger.warning("could not read the stack's state (%s); deleting the image", error)
        status = ""
    if props is not None and status == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS":
        if replaced is not None and keep > 1:
            retain_image(image_name, props.persona, keep, clients, current=replaced)
            return
        if replaced is None:
            delete_image(event, image_name, clients)
            _prune_quietly(clients, props.persona, 0, stack)
            return
    if props is not None and "ROLLBACK" in status and _tagged_retained(image_name, clients):
        logger.info("image %s is a retained earlier image: the rollback keeps it", image_name)
        return
    delete_image(event, image_name, clients)
    if props is not None and status == "DELETE_IN_PROGRESS":
        _prune_quietly(clients, props.persona, 0, stack)


def retain_image(
    image_name: str, persona: str, keep: int, clients: Clients, current: str | None = None
) -> None:
    """Keep a replaced image (tagged retained) and prune the persona's images beyond `keep`,
    never the one now declared (`current`)."""
    stack = owner()
    try:
        image = owned_image(clients.workspaces, image_name, stack)
    except BuildFailed as foreign:
        logger.warning("not retaining: %s", foreign)
        return
    if image is None:
        logger.info("image %s is already gone", image_name)
    elif image.get("State") == "AVAILABLE":
        try:
            mark_retained(clients.workspaces, image["ImageId"])
            logger.info("image %s (%s) is retained", image["ImageId"], image_name)
        except ClientError as error:
            # Kept all the same (a delete must not fail here); pruning still counts it.
            logger.warning("could not tag image %s as retained: %s", image["ImageId"], error)
    _prune_quietly(clients, persona, keep, stack, current)


def _tagged_retained(image_name: str, clients: Clients) -> bool:
    try:
        image = owned_image(clients.workspaces, image_name, owner())
    except BuildFailed:
        return False
    return image is not None and c.RETAINED_TAG_KEY in describe_tags(
        clients.workspaces, image["ImageId"]
    )


def roll_back_to(event: ResourceEvent, props: ImageProperties, clients: Clients) -> dict[str, Any]:
    """A rollback sends the replaced resource its old properties: answer with the old image.

    Never a build, never a look at the template WorkSpace: the old image either still
    exists (it is kept until the update completes) or the rollback cannot restore it.
    """
    image = owned_image(clients.workspaces, props.image_name, owner())
    if image is None or image.get("State") != "AVAILABLE":
        state = "gone" if image is None else f"{image.get('State')}"
        raise BuildFailed(
            f"{event.where}: rolling back to image {props.image_name}, which is {state}; no "
            "image is built during a rollback. Finish the rollback with `aws cloudformation "
            f"continue-update-rollback --stack-name <stack> --resources-to-skip "
            f"{event.logical_id}` and deploy again (docs/security.md: Failure modes)"
        )
    logger.info("rollback: image %s (%s) is kept", image["ImageId"], props.image_name)
    return {
        "PhysicalResourceId": props.image_name,
        "Data": {c.ATTR_IMAGE_NAME: props.image_name},
    }
