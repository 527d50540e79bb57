"""Images and bundles take part in the CDK's tagging: ``Tags.of(scope).add(...)`` reaches them.

Each image and bundle holds a :class:`aws_cdk.TagManager` (``TagType.KEY_VALUE``) whose
rendered tags are its ``Tags`` property. The tags it is given (a persona's: the policy's
defaults and the persona's own) are its initial tags, priority 50, like the ``tags`` of any
CDK resource: a ``Tags.of`` tag (priority 100 unless given) with the same key wins. The
derived Name, Version and Software tags are set at :data:`DERIVED_TAG_PRIORITY`, above any
``Tags.of`` tag given without a priority. At synth, after the aspects ran, one validation
per stack checks the tags each image and bundle ended up with by the same rules (the tag
rules, and the persona's tagging policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Final, Protocol
from weakref import WeakKeyDictionary

import jsii
from aws_cdk import Stack, TagManager, TagType
from constructs import IValidation

from ..tag_rules import check_tags, tag_strings
from ..validation import Problems, check_no_secrets

if TYPE_CHECKING:
    from .tagging_policy import TaggingPolicy

# Above the default priority of Tags.of (100) and of resources' own tags (50).
DERIVED_TAG_PRIORITY: Final = 1000


class Tagged(Protocol):
    """An image or bundle: a construct path, a tag manager and the tags it was given."""

    @property
    def cdk_tag_manager(self) -> TagManager: ...

    @property
    def declared_tags(self) -> Mapping[str, str]: ...

    @property
    def path(self) -> str: ...


def tag_manager(resource_type: str, tags: Mapping[str, str]) -> TagManager:
    """A KEY_VALUE tag manager whose initial tags are `tags`."""
    return TagManager(TagType.KEY_VALUE, resource_type, dict(tags))


@jsii.implements(IValidation)
class TagCheck:
    """Checks the tags of one stack's images and bundles after the aspects (``Tags.of``)."""

    _of: ClassVar[WeakKeyDictionary[Stack, TagCheck]] = WeakKeyDictionary()

    def __init__(self) -> None:
        self._entries: list[tuple[Tagged, TaggingPolicy | None]] = []

    @classmethod
    def register(cls, stack: Stack, resource: Tagged, policy: TaggingPolicy | None = None) -> None:
        """Check `resource`'s final tags at synth (against `policy` too, when given)."""
        check = cls._of.get(stack)
        if check is None:
            check = cls._of[stack] = cls()
            stack.node.add_validation(check)
        check._entries = [(r, p) for r, p in check._entries if r is not resource]
        check._entries.append((resource, policy))

    def validate(self) -> list[str]:
        messages: list[str] = []
        for resource, policy in self._entries:
            declared = dict(resource.declared_tags)
            final = dict(resource.cdk_tag_manager.tag_values())
            if final == declared:
                continue  # checked when the construct was created
            problems = Problems(resource.path)
            check_tags(problems, "tags", final)
            if policy is not None:
                policy.check_values(problems, final)
            added = {k: v for k, v in final.items() if declared.get(k) != v}
            check_no_secrets(problems, tag_strings("tags", added))
            messages.extend(
                f"{p.field}={p.value!r} is not valid; allowed: {p.allowed}"
                for p in problems.redacted()
            )
        return messages
