"""Names shared by the CDK constructs and the Lambda handlers.

The constructs write these custom-resource properties and the handlers read them,
so both sides import this one module. Keep it free of imports beyond the standard library.
"""

from __future__ import annotations

from typing import Final

IMAGE_RESOURCE_TYPE: Final = "Custom::WorkSpacesImage"
BUNDLE_RESOURCE_TYPE: Final = "Custom::WorkSpacesBundle"
# The checked id of a built image (WorkspaceImage.image_id): IMAGE_BUILD_RESULT and
# EXPECTED_IMAGE_NAME in, ATTR_IMAGE_ID out.
IMAGE_ID_RESOURCE_TYPE: Final = "Custom::WorkSpacesImageId"

# Custom::WorkSpacesImage properties.
IMAGE_NAME: Final = "ImageName"
IMAGE_DESCRIPTION: Final = "ImageDescription"
TEMPLATE_WORKSPACE_ID: Final = "TemplateWorkspaceId"
PERSONA: Final = "Persona"
RECIPE: Final = "Recipe"
TAGS: Final = "Tags"
BUILD_TIMEOUT_SECONDS: Final = "BuildTimeoutSeconds"
WAIT_HANDLE: Final = "WaitHandle"
# Preparation in the build (absent: the template is prepared by hand): the persona's
# preparation script and the template's managed node (a hybrid activation, mi-...). A script
# property is {"Key": <its asset's S3 object key>, "Sha256": <its digest>}; the stack's one
# script document (ENV_SCRIPT_DOCUMENT) downloads, checks and runs it.
PREPARATION_SCRIPT: Final = "PreparationScript"
MANAGED_NODE_ID: Final = "ManagedNodeId"
SCRIPT_KEY: Final = "Key"
SCRIPT_SHA256: Final = "Sha256"
# Validation before the image (absent: none): the persona's script of checks, run on the
# prepared, rebooted template; a failing check fails the build.
VALIDATION_SCRIPT: Final = "ValidationScript"
# The seal (with the preparation channel): the persona's script that takes the template's
# identity off its root volume, the last command before the image.
SEAL_SCRIPT: Final = "SealScript"
# Release: the image version (library tag below), how many of the persona's images are
# kept, and the Region's image quota the build checks before it starts.
IMAGE_VERSION: Final = "ImageVersion"
RETAINED_IMAGES: Final = "RetainedImages"
IMAGE_QUOTA: Final = "ImageQuota"
# What the persona declares that the build checks on the prepared template (its design,
# baked applications, agents and their units, the validation and the checklist minimum),
# as JSON text; the as-built checklist scores what it finds against it.
EXPECTATIONS: Final = "Expectations"

# Custom::WorkSpacesBundle properties.
BUNDLE_NAME: Final = "BundleName"
BUNDLE_DESCRIPTION: Final = "BundleDescription"
COMPUTE_TYPE: Final = "ComputeType"
ROOT_VOLUME_GIB: Final = "RootVolumeGib"
USER_VOLUME_GIB: Final = "UserVolumeGib"
IMAGE_BUILD_RESULT: Final = "ImageBuildResult"
# The name the bound image must have (the image resource's name); absent for a bundle bound
# to an image id given directly.
EXPECTED_IMAGE_NAME: Final = "ExpectedImageName"
# A bundle that serves a released (pinned) version instead of following the build: the
# handler finds the persona's retained image of that version (with PERSONA).
RELEASED_VERSION: Final = "ReleasedVersion"

# Both resources: a value that changes only when the user asks for it (a context value),
# so that a deploy re-applies the declared tags without rebuilding anything.
RESYNC: Final = "Resync"

# Attributes (Fn::GetAtt) returned by the handlers.
ATTR_IMAGE_NAME: Final = "ImageName"
ATTR_EXECUTION_ARN: Final = "BuildExecutionArn"
ATTR_BUNDLE_ID: Final = "BundleId"
ATTR_IMAGE_ID: Final = "ImageId"

# The image build signals its WaitCondition with this unique id; Data is the image id.
WAIT_SIGNAL_UNIQUE_ID: Final = "image"

# Tag that marks what a stack created, so a retried event adopts only its own resources.
OWNER_TAG_KEY: Final = "workspaces-image-bakery:stack"
# Marks an image a stopped build left PENDING: a cleanup execution will delete it, so no
# later build may adopt it.
CLEANUP_TAG_KEY: Final = "workspaces-image-bakery:cleanup"
# Marks an image or bundle that CloudFormation deleted while it was still in use: it is kept
# (the delete reports success so the stack operation can finish) and the value says why.
KEPT_TAG_KEY: Final = "workspaces-image-bakery:kept"
# How long the image's build took, in seconds: `watch` estimates a running build's
# remaining time from the persona's earlier images.
BUILD_SECONDS_TAG_KEY: Final = "workspaces-image-bakery:build-seconds"
# What an image is, written when it is created: its persona, version and full recipe
# fingerprint. Retention and pinned releases find a persona's images by these (and the
# ownership tag), never by name.
PERSONA_TAG_KEY: Final = "workspaces-image-bakery:persona"
IMAGE_VERSION_TAG_KEY: Final = "workspaces-image-bakery:version"
RECIPE_TAG_KEY: Final = "workspaces-image-bakery:recipe"
# Marks a replaced image kept for a way back (value: the time it was replaced, ISO 8601).
RETAINED_TAG_KEY: Final = "workspaces-image-bakery:retained"
# The SHA-256 of the image's as-built record ("sha256:<hex>"), written by the runtime once
# the record is stored: the record and the image each check the other.
RECORD_TAG_KEY: Final = "workspaces-image-bakery:record"
# Written when the image is created: the build execution that created it and the WorkSpace
# it was taken from. A retried step adopts only its own execution's image.
EXECUTION_TAG_KEY: Final = "workspaces-image-bakery:execution"
SOURCE_TAG_KEY: Final = "workspaces-image-bakery:source"
# The tags that describe an image's content: a bundle serving a released (earlier) image
# carries the image's own values, not those of the version being built.
IMAGE_CONTENT_TAG_KEYS: Final = ("Version", "Software")
# The library's own tags: a tag update in place never removes them.
LIBRARY_TAG_KEYS: Final = (
    CLEANUP_TAG_KEY,
    KEPT_TAG_KEY,
    BUILD_SECONDS_TAG_KEY,
    PERSONA_TAG_KEY,
    IMAGE_VERSION_TAG_KEY,
    RECIPE_TAG_KEY,
    RETAINED_TAG_KEY,
    RECORD_TAG_KEY,
    EXECUTION_TAG_KEY,
    SOURCE_TAG_KEY,
)
# How many images of a persona are kept by default (the one in use counts), and the
# Region's image quota assumed when the app does not say (context value).
DEFAULT_RETAINED_IMAGES: Final = 3
MAX_RETAINED_IMAGES: Final = 20
DEFAULT_IMAGE_QUOTA: Final = 40

# Environment variables of the Lambda functions.
ENV_STATE_MACHINE_ARN: Final = "BUILD_STATE_MACHINE_ARN"
# The id of the stack that owns the runtime: the only owner the handlers act for. It comes
# from the function's configuration, never from an event or a workflow's input.
ENV_OWNER_STACK_ID: Final = "OWNER_STACK_ID"
# The stack's one SSM document that prints a template's version file (the recipe marker).
ENV_MARKER_DOCUMENT: Final = "MARKER_DOCUMENT"
# The stack's evidence store (an S3 bucket) and its one SSM document that lists what a
# prepared template holds (packages, unit states, evidence files).
ENV_EVIDENCE_BUCKET: Final = "EVIDENCE_BUCKET"
ENV_INVENTORY_DOCUMENT: Final = "INVENTORY_DOCUMENT"
# What register-template tags a template WorkSpace (and its activation) with: its own id.
# A template given as a token is reached only through this tag (the IAM condition).
TEMPLATE_TAG_KEY: Final = "workspaces-image-bakery:template"
# The stack's script document (preparation, validation and seal scripts of every persona).
ENV_SCRIPT_DOCUMENT: Final = "SCRIPT_DOCUMENT"
# Where things live in the evidence store. Only the build's step role may write records,
# SBOMs and a build's work; the template's node role may write command output only.
RECORDS_PREFIX: Final = "records/"
SBOMS_PREFIX: Final = "sboms/"
WORK_PREFIX: Final = "work/"
OUTPUT_PREFIX: Final = "output/"
# The context value that gates every build on its as-built checklist scores.
CHECKLIST_MINIMUM_CONTEXT: Final = "workspaces-image-bakery:checklist-minimum"

# What the preparation leaves on the template's system disk, written last; its recipe=
# line is the marker the build checks before it takes the image.
VERSION_FILE: Final = "/etc/workspaces-image-bakery/version"
MARKER_LINE_PREFIX: Final = "recipe="
# A resumed build's commands check the version file against the SHA-256 the failed build
# read (their expectMarker parameter): a template touched since exits with this code, and
# the build starts over (image_build/resume.py).
RESUME_MISMATCH_EXIT: Final = 96
RESUME_PARAMETER: Final = "expectMarker"
RESUME_MARKER_PATTERN: Final = "^([0-9a-f]{64})?$"
# The step name the guard prints after FAILED_MARKER when it stops a command.
RESUME_GUARD_STEP: Final = "resume-guard (the version file changed since the failed build)"
# Where a failed build leaves its resume point, one per persona (execution names start
# with "build-", so no build's work is named so).
RESUME_PREFIX: Final = WORK_PREFIX + "resume/"
# Lines the preparation script prints (see preparation.py): the build names the failing step.
STEP_MARKER: Final = "==> bakery step: "
FAILED_MARKER: Final = "==> bakery failed: "
# Lines the seal prints (preparation/seal.py): "<item> absent|deferred|present <path>", then
# "ok" or "failed <items>".
SEAL_MARKER: Final = "==> bakery seal: "
SEALED_MARKER: Final = "==> bakery sealed: "
# After the seal reported, before CreateWorkspaceImage: its deferred step stops the SSM agent
# and moves the registration off the root volume (seal.SEAL_SETTLED_SECONDS).
SEAL_SETTLED_SECONDS: Final = 240

# Step names the state machine passes to the workflow Lambda.
STEP_CHECK_QUOTA: Final = "check_quota"
STEP_CHECK_TEMPLATE: Final = "check_template"
STEP_CREATE_IMAGE: Final = "create_image"
STEP_POLL_IMAGE: Final = "poll_image"
STEP_SIGNAL_SUCCESS: Final = "signal_success"
STEP_SIGNAL_FAILURE: Final = "signal_failure"
STEP_CLEANUP_IMAGE: Final = "cleanup_image"
STEP_PREPARE_TEMPLATE: Final = "prepare_template"
STEP_POLL_COMMAND: Final = "poll_command"
STEP_REBOOT_TEMPLATE: Final = "reboot_template"
STEP_VERIFY_MARKER: Final = "verify_marker"
STEP_VALIDATE_TEMPLATE: Final = "validate_template"
STEP_TAKE_INVENTORY: Final = "take_inventory"
STEP_SEAL_TEMPLATE: Final = "seal_template"
STEP_ASSESS_TEMPLATE: Final = "assess_template"
STEP_WRITE_RECORD: Final = "write_record"
# After the template check, in a build that prepares: resume where a failed build of the
# same recipe on the same, untouched template stopped (image_build/resume.py).
STEP_FIND_RESUME_POINT: Final = "find_resume_point"
# The first state of a build: the request the image resource's function wrote into the
# evidence store under the execution's name (never the execution's input).
STEP_LOAD_REQUEST: Final = "load_request"
# Not a state of the workflow: the EventBridge rule on the workflow's executions that ended
# without reporting (stopped, timed out, failed outside a catch) invokes the step function
# with an event of this detail-type.
EXECUTION_STATUS_CHANGE: Final = "Step Functions Execution Status Change"
EXECUTION_ENDED_STATUSES: Final = ("FAILED", "TIMED_OUT", "ABORTED")

# Values the workflow Lambda returns in "Status" for the state machine's Choice states.
STATUS_READY: Final = "READY"
STATUS_WAIT: Final = "WAIT"
STATUS_AVAILABLE: Final = "AVAILABLE"
STATUS_DONE: Final = "DONE"
# The template WorkSpace is being imaged by another build: wait for it, then try again.
STATUS_BUSY: Final = "BUSY"
STATUS_CREATED: Final = "CREATED"
# A Run Command invocation was sent (its CommandId is in the result).
STATUS_SENT: Final = "SENT"
# A resumed build's first command found the template changed since the failed build: the
# build starts over with the preparation.
STATUS_RESTART: Final = "RESTART"
# Where a build resumes: "validation", "inventory", or "start" (no resume).
RESUME_AT_VALIDATION: Final = "validation"
RESUME_AT_INVENTORY: Final = "inventory"
RESUME_AT_START: Final = "start"

# Error names (Python exception class names) the state machine matches in Retry/Catch.
ERROR_BUILD_FAILED: Final = "BuildFailed"
ERROR_TRANSIENT: Final = "TransientError"
# The error of the workflow's final Fail state, reached only after the failure signal was
# sent: an execution that ends with any other error did not report, and the build watch
# reports for it.
ERROR_BUILD_REPORTED: Final = "BuildFailedAndReported"
# The error a stop of a build by the image resource (stack delete or rollback) carries.
ERROR_STACK_OPERATION: Final = "StackOperation"

# Seconds between polls.
TEMPLATE_POLL_SECONDS: Final = 60
COMMAND_POLL_SECONDS: Final = 60
# After RebootWorkspaces, before the first look: the WorkSpace may still read AVAILABLE.
REBOOT_SETTLE_SECONDS: Final = 120
# Image creation commonly takes 45 minutes or more: one long first wait, then short polls,
# so the bundle follows an image within about a minute of AVAILABLE for a build of 30
# minutes or more, for 1 + (minutes - 30) polls. Both are cut to the build's deadline.
FIRST_IMAGE_WAIT_SECONDS: Final = 1800
IMAGE_POLL_SECONDS: Final = 60
# A cleanup execution (input {"Cleanup": {...}}) waits for an image a stopped build left
# PENDING, then deletes it.
CLEANUP_POLL_SECONDS: Final = 300

# Each build's end is an EventBridge event on the default bus and CloudWatch metrics.
EVENT_SOURCE: Final = "workspaces-image-bakery"
DETAIL_TYPE_SUCCEEDED: Final = "Image Build Succeeded"
DETAIL_TYPE_FAILED: Final = "Image Build Failed"
METRIC_NAMESPACE: Final = "WorkSpacesImageBakery"
METRIC_BUILD_DURATION: Final = "BuildDuration"
METRIC_BUILD_FAILED: Final = "BuildFailed"
# BuildDuration and BuildFailed per persona; BuildFailed also per stack (the stack's alarm).
DIMENSION_PERSONA: Final = "Persona"
DIMENSION_STACK: Final = "Stack"
VERSION_TAG_KEY: Final = "Version"
