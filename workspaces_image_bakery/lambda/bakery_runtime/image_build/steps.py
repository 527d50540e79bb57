"""The image build workflow's steps, one Lambda function for all of them.

The state machine calls `handler` with {"Step": <name>, "Build": {...}, ...}. Each step is
short; waiting happens in the state machine's Wait states, so a build is bound by its
own deadline (up to 12 hours), not by Lambda's 15 minutes or CloudFormation's 1 hour.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ..core import contract as c
from ..core.aws import Clients, error_code, error_message, owner, raise_if_transient
from ..core.errors import BuildFailed, TransientError
from ..core.properties import tag_list
from ..core.workspaces import describe_tags, image_by_id, owned_image, workspace_by_id
from ..evidence import record, store
from ..patching import contract as patch_contract
from ..patching import state as patch_state
from ..release.retention import check_quota
from . import notify, record_steps, request, resume, wait_condition
from . import preparation as preparation_steps
from .request import BuildRequest

if TYPE_CHECKING:
    from mypy_boto3_workspaces import WorkSpacesClient

logger = logging.getLogger(__name__)
logging.getLogger().setLevel(logging.INFO)

# States in which a WorkSpace may later become AVAILABLE by itself: the build waits.
WAIT_STATES = frozenset(
    {
        "PENDING",
        "STARTING",
        "REBOOTING",
        "REBUILDING",
        "RESTORING",
        "MAINTENANCE",
        "ADMIN_MAINTENANCE",
        "SUSPENDED",
        "UPDATING",
        "STOPPING",
    }
)
STEP_TITLES = {
    c.STEP_LOAD_REQUEST: "reading the build request",
    c.STEP_CHECK_QUOTA: "checking the Region's image quota",
    c.STEP_CHECK_TEMPLATE: "checking the template WorkSpace",
    c.STEP_CREATE_IMAGE: "creating the image",
    c.STEP_POLL_IMAGE: "waiting for the image",
    c.STEP_SIGNAL_SUCCESS: "reporting success to CloudFormation",
    c.STEP_SIGNAL_FAILURE: "reporting failure to CloudFormation",
    c.STEP_CLEANUP_IMAGE: "cleaning up an unfinished image",
    c.STEP_PREPARE_TEMPLATE: "preparing the template WorkSpace (Run Command)",
    c.STEP_POLL_COMMAND: "waiting for the template WorkSpace's command",
    c.STEP_REBOOT_TEMPLATE: "rebooting the template WorkSpace",
    c.STEP_VERIFY_MARKER: "checking the recipe marker on the template WorkSpace",
    c.STEP_VALIDATE_TEMPLATE: "validating the prepared template WorkSpace (Run Command)",
    c.STEP_TAKE_INVENTORY: "listing what the template WorkSpace holds (Run Command)",
    c.STEP_SEAL_TEMPLATE: "sealing the template WorkSpace before its image (Run Command)",
    c.STEP_ASSESS_TEMPLATE: "scoring the as-built checklist",
    c.STEP_WRITE_RECORD: "writing the image's as-built record",
    c.STEP_FIND_RESUME_POINT: "looking for a failed build of this recipe to resume",
}
PREPARATION_STEPS = frozenset(
    {
        c.STEP_PREPARE_TEMPLATE,
        c.STEP_POLL_COMMAND,
        c.STEP_REBOOT_TEMPLATE,
        c.STEP_VERIFY_MARKER,
        c.STEP_VALIDATE_TEMPLATE,
        c.STEP_TAKE_INVENTORY,
        c.STEP_SEAL_TEMPLATE,
    }
)
# Executions that end with these errors reported to CloudFormation themselves (the failure
# signal ran, or the stack stopped them): the end-of-execution rule leaves them alone.
REPORTED_ERRORS = frozenset({c.ERROR_BUILD_FAILED, c.ERROR_STACK_OPERATION, "CleanupFailed"})


def wait_seconds(build: BuildRequest, now: float, preferred: int) -> int:
    """`preferred`, cut so that the next look happens by the build's deadline."""
    return max(1, min(preferred, int(build.deadline - now)))


def _check_deadline(build: BuildRequest, now: float, what: str) -> None:
    if now > build.deadline:
        raise BuildFailed(
            f"the build did not finish within its bound of {build.bound_seconds} s while "
            f"{what}; raise the persona's build timeout (at most 12 h) or check the "
            "template WorkSpace"
        )


def inspect_template(client: WorkSpacesClient, workspace_id: str) -> str:
    """READY when the WorkSpace can be imaged, WAIT when it may become so.

    Raises BuildFailed for a WorkSpace that is missing, encrypted or broken. Starts a
    STOPPED (AutoStop) WorkSpace.
    """
    workspace = workspace_by_id(client, workspace_id)
    if workspace is None:
        raise BuildFailed(
            f"template WorkSpace {workspace_id} does not exist in this account and Region"
        )
    encrypted = [
        volume
        for volume, flag in (
            ("root", workspace.get("RootVolumeEncryptionEnabled")),
            ("user", workspace.get("UserVolumeEncryptionEnabled")),
        )
        if flag
    ]
    if encrypted:
        raise BuildFailed(
            f"template WorkSpace {workspace_id} has an encrypted {' and '.join(encrypted)} "
            "volume; encrypted WorkSpaces cannot create images. Use an unencrypted template "
            "WorkSpace (encrypt the WorkSpaces launched from the bundle instead)"
        )
    state = workspace.get("State", "")
    busy = [
        m["Resource"]
        for m in workspace.get("ModificationStates", [])
        if m.get("State") in ("UPDATE_INITIATED", "UPDATE_IN_PROGRESS")
    ]
    if state == "AVAILABLE" and not busy:
        return c.STATUS_READY
    if state == "STOPPED":
        failed = client.start_workspaces(
            StartWorkspaceRequests=[{"WorkspaceId": workspace_id}]
        ).get("FailedRequests", [])
        if failed:
            raise TransientError(
                f"could not start template WorkSpace {workspace_id}: "
                f"{failed[0].get('ErrorCode')} {failed[0].get('ErrorMessage')}"
            )
        logger.info("started template WorkSpace %s", workspace_id)
        return c.STATUS_WAIT
    if state in WAIT_STATES or state == "AVAILABLE":
        logger.info("template WorkSpace %s is %s %s; waiting", workspace_id, state, busy)
        return c.STATUS_WAIT
    raise BuildFailed(
        f"template WorkSpace {workspace_id} is {state}"
        f"{': ' + workspace.get('ErrorMessage', '') if workspace.get('ErrorMessage') else ''}; "
        "it cannot be imaged. Reboot or repair it, or point the persona at another one"
    )


def check_image_quota(build: BuildRequest, clients: Clients) -> dict[str, Any]:
    """The workflow's first step, before anything changes: the Region must have room for the
    image, else the build fails naming this stack's images that nothing uses."""
    check_quota(clients.workspaces, build.image_quota, owner())
    return {"Status": c.STATUS_READY}


def check_template(build: BuildRequest, clients: Clients, now: float) -> dict[str, Any]:
    _check_deadline(build, now, f"waiting for template WorkSpace {build.template_workspace_id}")
    return {"Status": inspect_template(clients.workspaces, build.template_workspace_id)}


def create_image(
    build: BuildRequest, clients: Clients, now: float, execution: str = ""
) -> dict[str, Any]:
    """Create the image, or adopt the one this build already started (a retried step).

    Returns Status BUSY, with no image, when the template WorkSpace is being imaged by
    another build (two personas on one template): the workflow waits for the template and
    tries again, within the build's deadline.
    """
    client = clients.workspaces
    stack = owner()
    existing = owned_image(client, build.image_name, stack)
    if existing is not None and c.CLEANUP_TAG_KEY in describe_tags(client, existing["ImageId"]):
        raise TransientError(
            f"image {existing['ImageId']} ({build.image_name}) is left from a stopped build and "
            "is being cleaned up; this build starts when it is gone (deploy again later if it "
            "takes longer than the workflow's retries)"
        )
    if existing is not None and existing.get("State") == "ERROR":
        # Never adopt a failed image: remove it, then build afresh.
        try:
            client.delete_workspace_image(ImageId=existing["ImageId"])
        except ClientError as error:
            raise BuildFailed(
                f"image {existing['ImageId']} ({build.image_name}) is left in ERROR by an earlier "
                f"attempt and could not be deleted ({error_code(error)}: "
                f"{error_message(error)}); delete it, then deploy again"
            ) from None
        logger.info("deleted image %s left in ERROR by an earlier attempt", existing["ImageId"])
        existing = None
    if existing is not None:
        _check_adoptable(clients, build, existing["ImageId"], execution)
        logger.info("adopting image %s (%s)", existing["ImageId"], build.image_name)
        return {"ImageId": existing["ImageId"], "Status": c.STATUS_CREATED}
    try:
        created = client.create_workspace_image(
            Name=build.image_name,
            Description=build.description,
            WorkspaceId=build.template_workspace_id,
            Tags=tag_list(  # type: ignore[arg-type]
                {
                    **build.tags,
                    c.OWNER_TAG_KEY: stack,
                    c.SOURCE_TAG_KEY: build.template_workspace_id,
                    **({c.EXECUTION_TAG_KEY: execution} if execution else {}),
                }
            ),
        )
    except ClientError as error:
        code = error_code(error)
        if code == "ResourceLimitExceededException":
            raise BuildFailed(
                "the Region's WorkSpaces image quota is reached (ResourceLimitExceededException: "
                f"{error_message(error)}); delete unused images or request a higher "
                "'Images' quota in Service Quotas"
            ) from None
        if code == "InvalidResourceStateException":
            # The template changed state since the check: most often another build images it,
            # or this one did and its answer was lost (botocore retried the call).
            mine = owned_image(client, build.image_name, stack)
            if mine is not None:
                _check_adoptable(clients, build, mine["ImageId"], execution)
                logger.info("adopting image %s (%s)", mine["ImageId"], build.image_name)
                return {"ImageId": mine["ImageId"], "Status": c.STATUS_CREATED}
            logger.info(
                "template WorkSpace %s is busy (%s); waiting", build.template_workspace_id, code
            )
            return {"ImageId": "", "Status": c.STATUS_BUSY}
        if code == "ResourceAlreadyExistsException":
            # A retried call raced another.
            raise TransientError(f"{code}: {error_message(error)}") from None
        raise
    logger.info("creating image %s (%s)", created["ImageId"], build.image_name)
    if execution:
        # What proves, until the record exists, that this stack made the image.
        record.note_made(clients.s3, execution, created["ImageId"], build.image_name, stack)
    return {"ImageId": created["ImageId"], "Status": c.STATUS_CREATED}


def _check_adoptable(clients: Clients, build: BuildRequest, image_id: str, execution: str) -> None:
    """An image of this build's name is adopted only when this execution created it from this
    template (a retried step), or when its runtime-written record says it was built from this
    template with this recipe (a build that finished before its signal was lost). A tag says
    neither: anyone who may tag could have written it."""
    tags = describe_tags(clients.workspaces, image_id)
    if (
        execution
        and tags.get(c.EXECUTION_TAG_KEY) == execution
        and tags.get(c.SOURCE_TAG_KEY) == build.template_workspace_id
    ):
        return
    why = record.why_not_owned(clients.s3, build.persona, image_id, build.image_name, tags, owner())
    if why is None:
        found = record.read_record(clients.s3, build.persona, build.image_name, tags, owner())
        if (
            found.get("recipe") == build.recipe
            and found.get("template_workspace_id") == build.template_workspace_id
        ):
            return
        why = "its record names another recipe or template"
    raise BuildFailed(
        f"image {image_id} is named {build.image_name} like this build's, but this build did "
        f"not create it and {why}: it is not adopted. Delete it if it is not one you need, "
        "then deploy again"
    )


def poll_image(build: BuildRequest, clients: Clients, now: float, image_id: str) -> dict[str, Any]:
    image = image_by_id(clients.workspaces, image_id)
    if image is None:
        raise BuildFailed(f"image {image_id} ({build.image_name}) disappeared while it was built")
    state = image.get("State")
    if state == "AVAILABLE":
        return {"Status": c.STATUS_AVAILABLE}
    if state == "ERROR":
        raise BuildFailed(
            f"image {image_id} ({build.image_name}) ended in ERROR: "
            f"{image.get('ErrorCode', 'no error code')}: {image.get('ErrorMessage', '')}".rstrip()
        )
    _check_deadline(build, now, f"image {image_id} was {state}")
    return {"Status": c.STATUS_WAIT}


def wait_handle(build: BuildRequest, clients: Clients | None, execution: str) -> str:
    """The WaitCondition handle: read from the stored request when signalling, since the
    workflow's state (an execution's history, which readers of executions see) never holds
    it (see run_step's LoadRequest)."""
    if build.wait_handle or clients is None:
        return build.wait_handle
    return request.load(clients.s3, execution).wait_handle


def signal_success(
    build: BuildRequest,
    image_id: str,
    send: wait_condition.Sender,
    clients: Clients | None = None,
    now: float | None = None,
    execution: str = "",
) -> dict[str, Any]:
    stack = owner()
    reason = f"image {build.image_name} is AVAILABLE"
    found = record.pieces(clients.s3, execution) if clients is not None and execution else {}
    resumed = resume.summary(found)
    reason += f" ({resumed})" if resumed else ""
    wait_condition.signal(
        wait_handle(build, clients, execution),
        owner=stack,
        success=True,
        reason=reason,
        data=image_id,
        send=send,
    )
    if clients is not None:
        if build.prepared_in_build and execution:
            resume.keep_point(clients, build, execution, found, reason, image_id=image_id)
        _record_patch_level(build, clients, succeeded=True)
        at = time.time() if now is None else now
        record_build_seconds(clients, image_id, int(at - notify.started_at(build)))
        notify.publish_build_end(
            clients,
            build,
            stack_id=stack,
            succeeded=True,
            now=at,
            image_id=image_id,
            reason=reason,
        )
    return {"ImageId": image_id}


def record_build_seconds(clients: Clients, image_id: str, seconds: int) -> None:
    """Tag the image with its build's duration (for estimates); never fails the build."""
    try:
        clients.workspaces.create_tags(
            ResourceId=image_id,
            Tags=[{"Key": c.BUILD_SECONDS_TAG_KEY, "Value": str(max(0, seconds))}],
        )
    except ClientError as error:
        logger.warning("could not record the build time of %s: %s", image_id, error_code(error))


def failure_reason(error: Mapping[str, Any]) -> str:
    """The message of the step that failed, from Step Functions' {"Error", "Cause"}."""
    name = str(error.get("Error", "Error"))
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause) if isinstance(cause, str) else cause
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        return str(parsed["errorMessage"])
    return f"{name}: {cause}" if cause else name


def signal_failure(
    build: BuildRequest,
    clients: Clients,
    error: Mapping[str, Any],
    send: wait_condition.Sender,
    now: float | None = None,
    execution: str = "",
) -> dict[str, Any]:
    """Tell CloudFormation why, after deleting an image that ended in ERROR and giving a
    sealed template its identity back (a reboot); then publish the build's end (a refused
    signal is published too: the build failed all the same)."""
    reason = f"persona {build.persona}: image build failed: {failure_reason(error)}"
    stack = owner()
    if execution and build.seal_script:
        _restore_after_seal(build, clients, execution)
    if execution and build.prepared_in_build:
        reason += _resume_note(build, clients, execution, reason)
    _record_patch_level(build, clients, succeeded=False)
    image_id = ""
    try:
        image = owned_image(clients.workspaces, build.image_name, stack)
        if image is not None:
            image_id = image["ImageId"]
        if image is not None and image.get("State") == "ERROR":
            clients.workspaces.delete_workspace_image(ImageId=image["ImageId"])
            reason += f" (the failed image {image['ImageId']} was deleted)"
    except (ClientError, BuildFailed) as cleanup_error:
        logger.warning("could not clean up image %s: %s", build.image_name, cleanup_error)

    def publish() -> None:
        notify.publish_build_end(
            clients,
            build,
            stack_id=stack,
            succeeded=False,
            now=time.time() if now is None else now,
            image_id=image_id,
            reason=reason,
        )

    try:
        wait_condition.signal(
            wait_handle(build, clients, execution),
            owner=stack,
            success=False,
            reason=reason,
            send=send,
        )
    except BuildFailed:
        publish()  # a TransientError is retried by the workflow: published once, later
        raise
    publish()
    return {"Reason": reason}


def _record_patch_level(build: BuildRequest, clients: Clients, *, succeeded: bool) -> None:
    """A build synthesized with a patch level (the persona's patch schedule raised it): its
    outcome goes into the persona's patch state, which counts failed scheduled builds. Best
    effort: the build's own outcome stands either way."""
    level = (build.expectations or {}).get(patch_contract.EXPECTATION_KEY)
    if not isinstance(level, str) or not level:
        return
    try:
        patch_state.record_build(
            clients.s3,
            build.persona,
            level,
            succeeded=succeeded,
            image_name=build.image_name,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    except ClientError as error:
        logger.warning("patch state of %s not updated: %s", build.persona, error_code(error))


def _resume_note(build: BuildRequest, clients: Clients, execution: str, reason: str) -> str:
    """Leave the resume point; what the stack event says about it. Best effort: a store
    that cannot be read or written only means the next build starts over."""
    try:
        found = record.pieces(clients.s3, execution)
        resumed = resume.summary(found)
        at = resume.keep_point(clients, build, execution, found, reason)
    except ClientError as error:
        logger.warning("no resume point for %s: %s", build.persona, error_code(error))
        return ""
    note = f"; {resumed}" if resumed else ""
    if at != c.RESUME_AT_START:
        note += (
            f"; the preparation is kept: a deploy of this recipe resumes at the {at} while "
            "the template's version file stays as it is"
        )
    return note


def _restore_after_seal(build: BuildRequest, clients: Clients, execution: str) -> None:
    """A build that failed after its seal: reboot the template, whose restore unit moves the
    SSM registration back, so the next build can reach it. Best effort."""
    try:
        if store.get_json(clients.s3, store.work_key(execution, "seal")) is not None:
            preparation_steps.reboot_template(build, clients)
    except (ClientError, BuildFailed, TransientError) as error:
        logger.warning(
            "could not reboot sealed template %s: %s", build.template_workspace_id, error
        )


def cleanup_image(cleanup: Mapping[str, Any], clients: Clients) -> dict[str, Any]:
    """Delete an image a stopped build left PENDING, once it is no longer PENDING.

    The image id comes from the execution's input: only an image that carries the cleanup
    mark and that the runtime wrote down as this stack's (its record, or its build's note
    that it created it) is deleted; its tags alone prove nothing.
    """
    client = clients.workspaces
    image_id = str(cleanup["image_id"])
    image = image_by_id(client, image_id)
    if image is None:
        return {"Status": c.STATUS_DONE}
    tags = describe_tags(client, image_id)
    if c.CLEANUP_TAG_KEY not in tags:
        logger.warning("image %s is not an image this stack marked for cleanup; kept", image_id)
        return {"Status": c.STATUS_DONE}
    why = record.why_not_made_here(clients.s3, image_id, str(image.get("Name", "")), tags, owner())
    if why is not None:
        logger.warning("image %s is kept: %s", image_id, why)
        return {"Status": c.STATUS_DONE}
    if image.get("State") == "PENDING":
        return {"Status": c.STATUS_WAIT}
    try:
        client.delete_workspace_image(ImageId=image_id)
    except ClientError as error:
        if error_code(error) != "ResourceAssociatedException":
            raise
        logger.warning("image %s is in use and is kept", image_id)
        return {"Status": c.STATUS_DONE}
    logger.info("deleted unfinished image %s (%s)", image_id, cleanup.get("image_name"))
    return {"Status": c.STATUS_DONE}


def run_step(
    event: Mapping[str, Any],
    clients: Clients,
    *,
    now: float | None = None,
    send: wait_condition.Sender = wait_condition.http_put,
) -> dict[str, Any]:
    """Run one named step. Errors come out as BuildFailed (stop) or TransientError (retry)."""
    step = str(event.get("Step"))
    if step == c.STEP_CLEANUP_IMAGE:
        try:
            return cleanup_image(event["Cleanup"], clients)
        except ClientError as error:
            raise_if_transient(error)
            raise BuildFailed(
                f"{STEP_TITLES[step]}: {error_code(error)}: {error_message(error)}"
            ) from None
    # From the state machine's context object ($$.Execution), which no input can set.
    execution = str(event.get("Execution") or "")
    if step == c.STEP_LOAD_REQUEST:
        try:
            # The handle stays in the store: the state (and so the execution's history)
            # never holds it; the signalling steps read it back (wait_handle).
            return dataclasses.replace(
                request.load(clients.s3, execution), wait_handle=""
            ).to_input()
        except ClientError as error:
            raise_if_transient(error)
            raise BuildFailed(f"{STEP_TITLES[step]}: {error_code(error)}") from None
    build = BuildRequest.from_input(event["Build"])
    at = time.time() if now is None else now
    actions: dict[str, Callable[[], dict[str, Any]]] = {
        c.STEP_CHECK_QUOTA: lambda: check_image_quota(build, clients),
        c.STEP_CHECK_TEMPLATE: lambda: check_template(build, clients, at),
        c.STEP_CREATE_IMAGE: lambda: create_image(build, clients, at, execution),
        c.STEP_POLL_IMAGE: lambda: poll_image(build, clients, at, str(event.get("ImageId"))),
        c.STEP_SIGNAL_SUCCESS: lambda: signal_success(
            build, str(event.get("ImageId")), send, clients, at, execution
        ),
        c.STEP_SIGNAL_FAILURE: lambda: signal_failure(
            build, clients, event.get("Error", {}), send, at, execution
        ),
        c.STEP_PREPARE_TEMPLATE: lambda: preparation_steps.prepare_template(
            build, clients, execution
        ),
        c.STEP_POLL_COMMAND: lambda: preparation_steps.poll_command(
            build, clients, event.get("Command") or {}, execution, at
        ),
        c.STEP_TAKE_INVENTORY: lambda: preparation_steps.take_inventory(build, clients, execution),
        c.STEP_SEAL_TEMPLATE: lambda: preparation_steps.seal_template(build, clients, execution),
        c.STEP_ASSESS_TEMPLATE: lambda: record_steps.assess_template(build, clients, execution),
        c.STEP_WRITE_RECORD: lambda: record_steps.write_record(
            build, clients, execution, str(event.get("ImageId")), str(event.get("Started") or "")
        ),
        c.STEP_REBOOT_TEMPLATE: lambda: preparation_steps.reboot_template(build, clients),
        c.STEP_VERIFY_MARKER: lambda: preparation_steps.verify_marker(build, clients, execution),
        c.STEP_VALIDATE_TEMPLATE: lambda: preparation_steps.validate_template(
            build, clients, execution
        ),
        c.STEP_FIND_RESUME_POINT: lambda: resume.find_resume_point(build, clients, execution),
    }
    preparing = step in PREPARATION_STEPS
    if step not in actions:
        raise BuildFailed(f"unknown workflow step {step!r}; expected one of {sorted(actions)}")
    title = STEP_TITLES[step]
    waits = {
        c.STEP_CREATE_IMAGE: c.FIRST_IMAGE_WAIT_SECONDS,
        c.STEP_POLL_IMAGE: c.IMAGE_POLL_SECONDS,
    }
    try:
        if step in waits:
            result = actions[step]()
            # How long the workflow waits before the next look at the image.
            result["WaitSeconds"] = wait_seconds(build, at, waits[step])
            return result
        if preparing and not build.prepared_in_build:
            raise BuildFailed("this build prepares nothing: its template is prepared by hand")
        result = actions[step]()
        if preparing and result.get("Status") == c.STATUS_WAIT:
            _check_deadline(build, at, f"{title} (on managed node {build.managed_node_id})")
        return result
    except BuildFailed as failure:
        raise BuildFailed(f"{title}: {failure}") from None
    except ClientError as error:
        raise_if_transient(error)
        raise BuildFailed(f"{title}: {error_code(error)}: {error_message(error)}") from None


_clients: Clients | None = None


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point of the workflow steps."""
    global _clients  # noqa: PLW0603 - one set of clients per Lambda container
    if _clients is None:
        _clients = Clients()
    logger.info("workflow step %s", event.get("Step"))
    return run_step(event, _clients)
