"""Build once, distribute: copies of an image in other Regions, shares with other accounts,
and the receiving account's own copy of a shared image.

- :class:`RegionalCopies` copies a stack's image from the stack's Region to each listed
  Region (``CopyWorkspaceImage`` runs in the destination Region) and binds a custom bundle
  to each copy there. Removing a Region deletes its copy and bundle.
- :class:`ImageShare` shares an image with listed accounts in its Region
  (``UpdateWorkspaceImagePermission``): exactly those accounts, no others.
- :class:`SharedImageCopy` copies an image another account shared into this account (a
  bundle uses images of its own account only); a :class:`WorkspaceBundle` binds to it.

One more function per stack (created on first use) serves all three and answers
CloudFormation itself: it asks every 60 seconds whether a copy is AVAILABLE, handing the
event on to a new invocation of itself before its 15 minutes run out, for at most an hour:
CloudFormation waits for a custom resource at most ``ServiceTimeout`` = 3600 s. It is not
the CDK Provider framework, whose waiter would put CloudFormation's response URL into a Step
Functions execution's input and history, where any reader of executions could answer for a
copy (bakery_runtime/distribution/provider.py). A copy still PENDING after 55 minutes fails
its resource with that reason and goes on copying; the next deploy adopts it when it is a
copy of the same source (by name, ownership tag and the
``workspaces-image-bakery:source-image`` tag each copy gets), and deletes it once settled
when it is not (a rolled-back build's image).

A failing copy fails its own resource and the handler changes nothing else, but
CloudFormation then rolls the whole stack operation back: an image built in the same update
is deleted and its bundle returns to the previous image. Put the copies in a later stack or
pipeline stage (``SharedImageCopy`` + ``RegionalCopies`` there, as examples/pipeline_app.py
does) to keep the home build when a copy fails.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import jsii
from aws_cdk import (
    Aws,
    CustomResource,
    Duration,
    ITaggableV2,
    RemovalPolicy,
    Stack,
    TagManager,
)
from aws_cdk import aws_iam as iam
from constructs import Construct, IValidation

from ..core.compute import check_compute
from ..core.nag import Finding, basic_execution_role, star_resource, suppress
from ..core.naming import DESCRIPTION_PATTERN, IMAGE_ID_PATTERN, IMAGE_ID_TEXT, NAME_PATTERN
from ..core.runtime_assets import RUNTIME_PACKAGE, contract
from ..core.runtime_assets import distribution_contract as dc
from ..core.tag_rules import MAX_USER_TAGS, check_tags, tag_strings
from ..core.tagging import TagCheck, tag_manager
from ..core.validation import (
    Problems,
    check_no_secrets,
    check_removal_policy,
    is_token,
    register_bundle,
    register_images,
    register_name,
)
from ..evidence.store import EVIDENCE_FINDING
from ..image_build.build_runtime import (
    OWNER_REQUEST_TAG,
    OWNER_TAG_CONDITION,
    RUNTIME_ID,
    BuildRuntime,
    runtime_code,
    runtime_function,
)
from ..image_build.bundle import MAX_BASE_NAME_LENGTH, SHAPE_CHARS
from ..image_build.image import IWorkspaceImage, WorkspaceImage, service_timeout
from ..release.release import image_quota

DISTRIBUTION_ID = "WorkSpacesImageBakeryRuntimeDistribution"
# Region names as AWS writes them (eu-west-1, us-gov-west-1, ap-southeast-5).
REGION_PATTERN = r"[a-z]{2}(-[a-z]+)+-\d{1,2}"
REGION_TEXT = "a Region name such as eu-west-1 (a literal, not a token)"
ACCOUNT_PATTERN = r"\d{12}"
ACCOUNT_TEXT = "a 12-digit AWS account id (a literal, not a token)"
MAX_SHARED_ACCOUNTS = 100
# A copy carries the ownership tag and the source tag besides its own tags.
MAX_COPY_TAGS = MAX_USER_TAGS  # the room kept for the library's tags covers the source tag
COPY_TAGS_TEXT = (
    f"at most {MAX_COPY_TAGS} tags, none with the key {dc.SOURCE_TAG_KEY} (a copy also "
    "carries the ownership tag and the source tag)"
)


@functools.cache
def copy_service_timeout() -> Duration:
    """A copy's ServiceTimeout: the copy's whole bound, CloudFormation's longest wait for a
    custom resource (ServiceTimeout's maximum). Made once, on first use."""
    return Duration.seconds(dc.TOTAL_TIMEOUT_SECONDS)


def _workspaces_arn(region: str, resource: str, account: str | None = None) -> str:
    """A WorkSpaces ARN in `region`, of this account unless `account` is given."""
    return f"arn:{Aws.PARTITION}:workspaces:{region}:{account or Aws.ACCOUNT_ID}:{resource}"


class DistributionRuntime(Construct):
    """The handler behind copies, regional bundles and shares: one per stack (:meth:`of`).

    One function, whose role is granted per Region as constructs ask for it (least
    privilege; docs/distribution.md: IAM added by distribution), and which may invoke
    itself only (the hand-over of a copy still pending when its time runs short).
    """

    @classmethod
    def of(cls, scope: Construct) -> DistributionRuntime:
        stack = Stack.of(scope)
        known = _RUNTIMES.get(stack)
        if known is not None:
            return known
        existing = stack.node.try_find_child(DISTRIBUTION_ID)
        runtime = (
            existing if isinstance(existing, DistributionRuntime) else cls(stack, DISTRIBUTION_ID)
        )
        _RUNTIMES[stack] = runtime
        return runtime

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        code = runtime_code()
        self.role = iam.Role(
            self,
            "HandlerRole",
            description="workspaces-image-bakery: copies, regional bundles and image shares",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AWSLambdaBasicExecutionRole"
                )
            ],
        )
        self.function = runtime_function(
            self,
            "Handler",
            code=code,
            handler=f"{RUNTIME_PACKAGE}.distribution.provider.handler",
            timeout=Duration.minutes(15),
            role=self.role,
        )
        self._regions: set[str] = set()
        self._sources: set[tuple[str, str]] = set()
        self._grant_base()
        self._share_granted = False
        # Its own policy, not the role's default one: the function depends on that, and
        # this statement names the function. Each custom resource waits for it.
        self.hand_over = iam.Policy(
            self,
            "HandOver",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
                )
            ],
        )
        self.service_token = self.function.function_arn
        self._suppress_nag()

    def resource(self, scope: Construct, id_: str, **props: Any) -> CustomResource:
        """A custom resource this handler serves (once its hand-over policy exists)."""
        made = CustomResource(scope, id_, service_token=self.service_token, **props)
        made.node.add_dependency(self.hand_over)
        return made

    def _add(self, *statements: iam.PolicyStatement) -> None:
        for statement in statements:
            self.role.add_to_principal_policy(statement)

    def _grant_base(self) -> None:
        """Reads and tag writes, in every Region (these actions support no resource types);
        the stack's own state, to check each event with CloudFormation."""
        self._add(
            # Each event is checked with CloudFormation (bakery_runtime/core/authenticate.py).
            iam.PolicyStatement(
                actions=[
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackResource",
                    "cloudformation:DescribeStackEvents",
                ],
                resources=[Aws.STACK_ID],
            ),
            iam.PolicyStatement(
                actions=[
                    "workspaces:DescribeWorkspaceImages",
                    "workspaces:DescribeWorkspaceBundles",
                    "workspaces:DescribeTags",
                ],
                resources=["*"],
            ),
            # The ownership tag may be written with this stack's id only, and never removed.
            iam.PolicyStatement(
                actions=["workspaces:CreateTags"],
                resources=["*"],
                conditions={"StringEqualsIfExists": {OWNER_REQUEST_TAG: Aws.STACK_ID}},
            ),
            iam.PolicyStatement(
                actions=["workspaces:DeleteTags"],
                resources=["*"],
                conditions={
                    "ForAllValues:StringNotEquals": {"aws:TagKeys": [contract.OWNER_TAG_KEY]}
                },
            ),
        )

    def allow_region(self, region: str) -> None:
        """Copy this stack's images into `region` and keep bundles there (only what this
        stack tags as its own)."""
        if region in self._regions:
            return
        self._regions.add(region)
        owned = {"StringEquals": {OWNER_TAG_CONDITION: Aws.STACK_ID}}
        tagged = {"StringEquals": {OWNER_REQUEST_TAG: Aws.STACK_ID}}
        images = _workspaces_arn(region, "workspaceimage/*")
        bundles = _workspaces_arn(region, "workspacebundle/*")
        self._add(
            # CopyWorkspaceImage is authorized on the image (Service Authorization Reference:
            # workspaceimage, with request-tag keys): the source in the stack's Region and
            # the copy in the destination Region; every copy carries the ownership tag.
            iam.PolicyStatement(
                actions=["workspaces:CopyWorkspaceImage"],
                resources=[images, _workspaces_arn(Aws.REGION, "workspaceimage/*")],
                conditions=tagged,
            ),
            iam.PolicyStatement(
                actions=["workspaces:DeleteWorkspaceImage"], resources=[images], conditions=owned
            ),
            iam.PolicyStatement(
                actions=["workspaces:CreateWorkspaceBundle"], resources=[bundles], conditions=tagged
            ),
            iam.PolicyStatement(
                actions=["workspaces:UpdateWorkspaceBundle", "workspaces:DeleteWorkspaceBundle"],
                resources=[bundles],
                conditions=owned,
            ),
            # The image side of a bundle call: the handler verifies the copy first.
            iam.PolicyStatement(
                actions=["workspaces:CreateWorkspaceBundle", "workspaces:UpdateWorkspaceBundle"],
                resources=[images],
            ),
        )

    def allow_share(self) -> None:
        """Share and unshare this stack's images in the stack's Region; read their as-built
        records in the stack's evidence store (a share needs one: the handler refuses an
        image whose record does not name this stack). Without a build runtime in the stack
        there is no store, and every share is refused at deploy."""
        if self._share_granted:
            return
        self._share_granted = True
        stack = Stack.of(self)
        runtime = stack.node.try_find_child(RUNTIME_ID)
        if isinstance(runtime, BuildRuntime):
            self.function.add_environment(
                contract.ENV_EVIDENCE_BUCKET, runtime.evidence.bucket_name
            )
            runtime.evidence.grant_record_read(self.role)
        self._add(
            iam.PolicyStatement(
                actions=[
                    "workspaces:UpdateWorkspaceImagePermission",
                    "workspaces:DescribeWorkspaceImagePermissions",
                ],
                resources=[_workspaces_arn(Aws.REGION, "workspaceimage/*")],
                conditions={"StringEquals": {OWNER_TAG_CONDITION: Aws.STACK_ID}},
            )
        )

    def allow_shared_source(self, source_region: str, source_account: str) -> None:
        """Copy images that `source_account` shared from `source_region` into this stack's
        Region, and delete the copies this stack made."""
        key = (source_region, source_account)
        if key in self._sources:
            return
        self._sources.add(key)
        here = _workspaces_arn(Aws.REGION, "workspaceimage/*")
        self._add(
            iam.PolicyStatement(
                actions=["workspaces:CopyWorkspaceImage"],
                resources=[
                    _workspaces_arn(source_region, "workspaceimage/*", source_account),
                    here,
                ],
                conditions={"StringEquals": {OWNER_REQUEST_TAG: Aws.STACK_ID}},
            ),
            iam.PolicyStatement(
                actions=["workspaces:DeleteWorkspaceImage"],
                resources=[here],
                conditions={"StringEquals": {OWNER_TAG_CONDITION: Aws.STACK_ID}},
            ),
        )

    def _suppress_nag(self) -> None:
        suppress(
            self,
            [
                basic_execution_role("the functions"),
                EVIDENCE_FINDING,
                star_resource(
                    "Resource * only for what supports no resource types (WorkSpaces "
                    "Describe*, and CreateTags/DeleteTags, limited by request-tag "
                    "conditions instead)."
                ),
                Finding(
                    "AwsSolutions-IAM5",
                    "Copies, bundles and shared sources get their ids only when created or "
                    "shared: actions are limited to images and bundles of the listed "
                    "Regions and accounts, and by the ownership tag where supported.",
                    [
                        r"/^Resource::arn:<AWS::Partition>:workspaces:"
                        r"([a-z0-9-]+|<AWS::Region>):(<AWS::AccountId>|\d{12}|\*):"
                        r"workspace(image|bundle)\/\*$/"
                    ],
                ),
            ],
        )


_RUNTIMES: WeakKeyDictionary[Stack, DistributionRuntime] = WeakKeyDictionary()


def _stack_region(stack: Stack) -> str:
    return stack.region


def check_region(problems: Problems, field_name: str, region: Any) -> bool:
    return problems.text(
        field_name,
        region,
        max_len=31,
        pattern=REGION_PATTERN,
        pattern_text=REGION_TEXT,
        tokens=False,
    )


def check_account(problems: Problems, field_name: str, account: Any) -> bool:
    return problems.text(
        field_name,
        account,
        min_len=12,
        max_len=12,
        pattern=ACCOUNT_PATTERN,
        pattern_text=ACCOUNT_TEXT,
        tokens=False,
    )


def _image_reference(image: IWorkspaceImage) -> str:
    """What a handler is given to find the image: a built image's build result (the
    WaitCondition's data, {"image": "wsi-..."}, which the handler reads as a bundle does),
    else the image id."""
    return image.build_result if isinstance(image, WorkspaceImage) else image.image_id


def _is_image(image: Any) -> bool:
    return isinstance(getattr(image, "image_id", None), str) and hasattr(image, "image_name")


def _copy_tags_fit(tags: Mapping[str, str]) -> bool:
    return len(tags) <= MAX_COPY_TAGS and dc.SOURCE_TAG_KEY not in tags


def check_copy_tags(problems: Problems, tags: Mapping[str, str]) -> None:
    """A copy's own tags leave room for the two the library writes on it."""
    if not _copy_tags_fit(tags):
        problems.add("tags", f"{len(tags)} tags", COPY_TAGS_TEXT)


@jsii.implements(IValidation)
class _CopyTagCheck:
    """At synth, after ``Tags.of``: each copy's final tags leave room for the library's two."""

    def __init__(self) -> None:
        self.copies: list[tuple[str, TagManager]] = []

    @classmethod
    def register(cls, stack: Stack, path: str, manager: TagManager) -> None:
        check = _COPY_TAG_CHECKS.get(stack)
        if check is None:
            check = _COPY_TAG_CHECKS[stack] = cls()
            stack.node.add_validation(check)
        check.copies.append((path, manager))

    def validate(self) -> list[str]:
        messages = []
        for path, manager in self.copies:
            final = dict(manager.tag_values())
            if not _copy_tags_fit(final):
                messages.append(f"{path}: tags={len(final)} tags is not valid; {COPY_TAGS_TEXT}")
        return messages


_COPY_TAG_CHECKS: WeakKeyDictionary[Stack, _CopyTagCheck] = WeakKeyDictionary()


@jsii.implements(ITaggableV2)
class RegionalCopy(Construct):
    """One Region of :class:`RegionalCopies`: the copy there and the bundle bound to it."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        runtime: DistributionRuntime,
        region: str,
        image: IWorkspaceImage,
        bundle_name: str,
        bundle_description: str,
        compute_type: str,
        root_volume_gib: Any,
        user_volume_gib: Any,
        tags: Mapping[str, str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        self.region = region
        self._declared_tags = dict(tags)
        self._tag_manager = tag_manager(dc.COPY_RESOURCE_TYPE, self._declared_tags)
        _CopyTagCheck.register(Stack.of(self), self.node.path, self._tag_manager)
        runtime.allow_region(region)
        name = image.image_name
        self.copy = runtime.resource(
            self,
            "Copy",
            resource_type=dc.COPY_RESOURCE_TYPE,
            removal_policy=removal_policy,
            service_timeout=copy_service_timeout(),
            properties={
                dc.REGION: region,
                dc.SOURCE_IMAGE_ID: _image_reference(image),
                **({dc.SOURCE_IMAGE_NAME: name} if name is not None else {}),
                dc.TAGS: self._tag_manager.rendered_tags,
            },
        )
        self.bundle = runtime.resource(
            self,
            "Bundle",
            resource_type=dc.REGIONAL_BUNDLE_RESOURCE_TYPE,
            removal_policy=removal_policy,
            service_timeout=service_timeout(),
            properties={
                dc.REGION: region,
                contract.BUNDLE_NAME: bundle_name,
                contract.BUNDLE_DESCRIPTION: bundle_description,
                contract.COMPUTE_TYPE: compute_type,
                contract.ROOT_VOLUME_GIB: str(root_volume_gib),
                contract.USER_VOLUME_GIB: str(user_volume_gib),
                # The handler checks the copy's name, ownership and source tags before binding
                # to it. Name and source come from the template, not from the copy's answer.
                contract.IMAGE_BUILD_RESULT: self.image_id,
                contract.EXPECTED_IMAGE_NAME: name
                if name is not None and not is_token(name)
                else self.copy.get_att_string(dc.ATTR_IMAGE_NAME),
                dc.EXPECTED_SOURCE_IMAGE_ID: _image_reference(image),
                contract.TAGS: self._tag_manager.rendered_tags,
            },
        )

    @property
    def image_id(self) -> str:
        """The copy's id (wsi-...) in this Region."""
        return self.copy.get_att_string(dc.ATTR_IMAGE_ID)

    @property
    def image_name(self) -> str | None:
        """The copy's name (the source image's name)."""
        return self.copy.get_att_string(dc.ATTR_IMAGE_NAME)

    @property
    def bundle_id(self) -> str:
        """The bundle's id (wsb-...) in this Region."""
        return self.bundle.get_att_string(contract.ATTR_BUNDLE_ID)

    @property
    def cdk_tag_manager(self) -> TagManager:
        """The copy's and bundle's tags as the CDK manages them (``Tags.of`` reaches them)."""
        return self._tag_manager

    @property
    def declared_tags(self) -> dict[str, str]:
        return dict(self._declared_tags)

    @property
    def path(self) -> str:
        return self.node.path


class RegionalCopies(Construct):
    """Copies of `image` in other Regions of the stack's account, each with a custom bundle.

    The image is built once, in the stack's Region; each listed Region gets a copy
    (``CopyWorkspaceImage``, called in that Region with the stack's Region as source) that
    carries the stack's ownership tag and the source image's id
    (``workspaces-image-bakery:source-image``), and a bundle bound to the copy. A new image
    makes new copies, the bundles move to them, and the old copies are deleted. Removing a
    Region deletes its copy and bundle; nothing the stack did not tag as its own is ever
    deleted. A copy that fails (a full image quota in one Region) fails its own resource and
    the handler changes nothing else, but CloudFormation then rolls back the whole stack
    operation: an image built in the same update is deleted and its bundle returns to the
    previous image. To keep the home build when a copy fails, declare the copies in a later
    stack or pipeline stage (``SharedImageCopy`` or an imported image as ``image``).

    :param image: the image to distribute: a :class:`WorkspaceImage`, a
        :class:`SharedImageCopy`, or an imported image (checked for account and state only).
    :param regions: destination Regions (literal names such as ``eu-west-1``; not the
        stack's own Region, no repeats). ``()`` creates nothing.
    :param bundle_base_name: the bundles' name before the shape digest (1-57 of
        ``a-zA-Z0-9_./()-``); the same name in every Region.
    :param bundle_description: 1-255 of ``a-zA-Z0-9_./() -``.
    :param compute_type: default STANDARD; ``root_volume_gib``/``user_volume_gib`` default
        to the smallest valid sizes (as :class:`WorkspaceBundle`).
    :param tags: tags of the copies and bundles (at most 43: the library keeps room for its
        own, the ownership and source tags among them). Default none. ``Tags.of`` reaches them too.
    :param removal_policy: for removed or replaced copies and bundles. Default DESTROY.

    A copy may take long: the deploy waits for it up to an hour (CloudFormation's limit for
    a custom resource); one still copying then fails with that reason, and the next deploy
    adopts it if the source is still the same image (else deletes it once settled and copies
    again). The 50-bundle quota is counted per Region at synth; the copies are not counted
    against the destination Regions' image quotas at synth (a full quota fails the copy).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        image: IWorkspaceImage,
        regions: Sequence[str],
        bundle_base_name: str,
        bundle_description: str,
        compute_type: str = "STANDARD",
        root_volume_gib: int | None = None,
        user_volume_gib: int | None = None,
        tags: Mapping[str, str] | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        problems = Problems.of(self)
        if not _is_image(image):
            problems.add("image", image, "a WorkspaceImage, a SharedImageCopy or an imported image")
        checked_regions: list[str] = []
        if isinstance(regions, str) or not isinstance(regions, Sequence):
            problems.add("regions", regions, "a list of Region names")
        else:
            home = _stack_region(stack)
            for index, region in enumerate(regions):
                field = f"regions[{index}]"
                if not check_region(problems, field, region):
                    continue
                if region in checked_regions:
                    problems.add(field, region, "each Region once")
                elif not is_token(home) and region == home:
                    problems.add(
                        field, region, "a Region other than the stack's, where the image is"
                    )
                else:
                    checked_regions.append(region)
        problems.text(
            "bundle_base_name",
            bundle_base_name,
            max_len=MAX_BASE_NAME_LENGTH,
            pattern=NAME_PATTERN,
            pattern_text="letters, digits and _ . / ( ) -",
            tokens=False,
        )
        problems.text(
            "bundle_description",
            bundle_description,
            max_len=255,
            pattern=DESCRIPTION_PATTERN,
            pattern_text="letters, digits, spaces and _ . / ( ) -",
            tokens=False,
        )
        root, user = check_compute(problems, compute_type, root_volume_gib, user_volume_gib)
        checked_tags = {} if tags is None else check_tags(problems, "tags", tags)
        check_copy_tags(problems, checked_tags)
        check_removal_policy(problems, removal_policy)
        check_no_secrets(
            problems,
            {
                "bundle_base_name": bundle_base_name,
                "bundle_description": bundle_description,
                **tag_strings("tags", checked_tags),
            },
        )
        shape = f"{bundle_description}|{compute_type}|{root}|{user}"
        digest = hashlib.sha256(shape.encode()).hexdigest()[:SHAPE_CHARS]
        self.bundle_name = f"{bundle_base_name}-{digest}"
        quota = image_quota(stack)
        for region in checked_regions:
            register_bundle(problems, stack, region)
            # The copy and, while a new image replaces it, the next one.
            register_images(problems, stack, 2, quota, region=region, field_name="regions")
            register_name(
                problems, stack, f"bundle in {region}", "bundle_base_name", self.bundle_name
            )
        problems.raise_if_any()

        self.image = image
        self.regions = tuple(checked_regions)
        self.copies: dict[str, RegionalCopy] = {}
        if not checked_regions:
            return
        runtime = DistributionRuntime.of(stack)
        for region in checked_regions:
            copy = RegionalCopy(
                self,
                region,
                runtime=runtime,
                region=region,
                image=image,
                bundle_name=self.bundle_name,
                bundle_description=bundle_description,
                compute_type=compute_type,
                root_volume_gib=root,
                user_volume_gib=user,
                tags=checked_tags,
                removal_policy=removal_policy,
            )
            TagCheck.register(stack, copy)
            self.copies[region] = copy

    def apply_removal_policy(self, policy: RemovalPolicy) -> None:
        """What happens to removed or replaced copies and bundles: DESTROY or RETAIN."""
        problems = Problems.of(self)
        check_removal_policy(problems, policy)
        problems.raise_if_any()
        for copy in self.copies.values():
            copy.copy.apply_removal_policy(policy)
            copy.bundle.apply_removal_policy(policy)


class ImageShare(Construct):
    """Shares `image` with exactly `account_ids` in the image's Region
    (``UpdateWorkspaceImagePermission``: the accounts may copy it).

    A deploy adds the accounts listed and removes any other; a new image is shared in the
    old one's place and the old one is unshared at once; removing the construct unshares
    the image. Only an image carrying the stack's ownership tag is shared (an image this
    stack built or copied): anything else fails the deploy.

    :param image: the image (a :class:`WorkspaceImage` or :class:`SharedImageCopy`).
    :param account_ids: 12-digit account ids, literal, not the stack's own; 1-100.
    """

    def __init__(
        self, scope: Construct, id_: str, *, image: IWorkspaceImage, account_ids: Sequence[str]
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        problems = Problems.of(self)
        if not _is_image(image):
            problems.add("image", image, "a WorkspaceImage or a SharedImageCopy")
        accounts: list[str] = []
        if isinstance(account_ids, str) or not isinstance(account_ids, Sequence):
            problems.add("account_ids", account_ids, "a list of account ids")
        elif not 1 <= len(account_ids) <= MAX_SHARED_ACCOUNTS:
            problems.add(
                "account_ids", f"{len(account_ids)} accounts", f"1-{MAX_SHARED_ACCOUNTS} accounts"
            )
        else:
            own = stack.account
            for index, account in enumerate(account_ids):
                field = f"account_ids[{index}]"
                if not check_account(problems, field, account):
                    continue
                if account in accounts:
                    problems.add(field, account, "each account once")
                elif not is_token(own) and account == own:
                    problems.add(field, account, "another account than the stack's")
                else:
                    accounts.append(account)
        problems.raise_if_any()
        self.account_ids = tuple(sorted(accounts))
        runtime = DistributionRuntime.of(stack)
        runtime.allow_share()
        name = image.image_name
        self.resource = runtime.resource(
            self,
            "Resource",
            resource_type=dc.SHARE_RESOURCE_TYPE,
            service_timeout=service_timeout(),
            properties={
                dc.IMAGE_ID: _image_reference(image),
                dc.ACCOUNT_IDS: list(self.account_ids),
                **({dc.EXPECTED_IMAGE_NAME: name} if name is not None else {}),
            },
        )


@jsii.implements(ITaggableV2)
class SharedImageCopy(Construct):
    """This account's own copy of an image another account shared with it.

    Use it in the receiving account's stack: a bundle uses images of its own account only,
    so ``WorkspaceBundle(..., image=SharedImageCopy(...))`` binds to the copy. The copy is
    made in the stack's Region (``CopyWorkspaceImage`` of the shared image), carries the
    stack's ownership tag and the shared image's id (``workspaces-image-bakery:source-image``:
    a same-named copy of another shared image is never adopted), and is deleted with the
    construct. Give the image by id or, when the building stack is in the same app (a
    pipeline), by name: its name is known at synth (``persona.image.image_name``), so a new
    build is promoted without passing ids around.

    :param source_account_id: the account that owns and shared the image (12 digits); an
        image shared by any other account is refused (AWS: check a shared image's owner).
    :param source_image_id: the shared image's id (``wsi-...``; may be a token), or
    :param source_image_name: its name (literal). Exactly one of the two.
    :param source_region: where the image was shared. Default: the stack's Region.
    :param tags: tags of the copy (at most 43). Default none. ``Tags.of`` reaches them too.
    :param removal_policy: for a removed or replaced copy. Default DESTROY.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        source_account_id: str,
        source_image_id: str | None = None,
        source_image_name: str | None = None,
        source_region: str | None = None,
        tags: Mapping[str, str] | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        problems = Problems.of(self)
        check_account(problems, "source_account_id", source_account_id)
        if (source_image_id is None) == (source_image_name is None):
            problems.add(
                "source_image_id/source_image_name",
                f"{source_image_id}/{source_image_name}",
                "exactly one of the two",
            )
        if source_image_id is not None:
            problems.text(
                "source_image_id",
                source_image_id,
                min_len=13,
                max_len=67,
                pattern=IMAGE_ID_PATTERN,
                pattern_text=IMAGE_ID_TEXT,
            )
        if source_image_name is not None:
            problems.text(
                "source_image_name",
                source_image_name,
                max_len=64,
                pattern=NAME_PATTERN,
                pattern_text="letters, digits and _ . / ( ) -",
                tokens=False,
            )
        region = source_region if source_region is not None else _stack_region(stack)
        if source_region is not None:
            check_region(problems, "source_region", source_region)
        checked_tags = {} if tags is None else check_tags(problems, "tags", tags)
        check_copy_tags(problems, checked_tags)
        check_removal_policy(problems, removal_policy)
        check_no_secrets(
            problems,
            {
                "source_image_id": source_image_id,
                "source_image_name": source_image_name,
                **tag_strings("tags", checked_tags),
            },
        )
        problems.raise_if_any()
        self.source_account_id = source_account_id
        self.source_region = region
        self._declared_tags = dict(checked_tags)
        self._tag_manager = tag_manager(dc.SHARED_COPY_RESOURCE_TYPE, self._declared_tags)
        _CopyTagCheck.register(stack, self.node.path, self._tag_manager)
        runtime = DistributionRuntime.of(stack)
        runtime.allow_shared_source(region, source_account_id)
        self.resource = runtime.resource(
            self,
            "Resource",
            resource_type=dc.SHARED_COPY_RESOURCE_TYPE,
            removal_policy=removal_policy,
            service_timeout=copy_service_timeout(),
            properties={
                dc.SOURCE_ACCOUNT_ID: source_account_id,
                dc.SOURCE_REGION: region,
                **({dc.SOURCE_IMAGE_ID: source_image_id} if source_image_id else {}),
                **({dc.SOURCE_IMAGE_NAME: source_image_name} if source_image_name else {}),
                dc.TAGS: self._tag_manager.rendered_tags,
            },
        )
        TagCheck.register(stack, self)

    @property
    def image_id(self) -> str:
        """The copy's id (wsi-...) in this account and Region."""
        return self.resource.get_att_string(dc.ATTR_IMAGE_ID)

    @property
    def image_name(self) -> str | None:
        """The copy's name (the shared image's name)."""
        return self.resource.get_att_string(dc.ATTR_IMAGE_NAME)

    @property
    def cdk_tag_manager(self) -> TagManager:
        return self._tag_manager

    @property
    def declared_tags(self) -> dict[str, str]:
        return dict(self._declared_tags)

    @property
    def path(self) -> str:
        return self.node.path


__all__ = [
    "DistributionRuntime",
    "ImageShare",
    "RegionalCopies",
    "RegionalCopy",
    "SharedImageCopy",
]
