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
from constructs import IValidation, Node

from .tag_rules import check_tags, tag_strings
from .validation import Problems, check_no_secrets

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

    @property
    def node(self) -> Node: ...


# The priority the CDK gives a TagManager's initial tags.
INITIAL_TAG_PRIORITY: Final = 50


class _TagManager(TagManager):
    """A KEY_VALUE TagManager that can pin an initial tag at a priority in Python.

    ``pin(key, value, priority)`` has the effect of ``set_tag(key, value, priority)`` for
    an initial tag's own value: the tag keeps its value against every ``set_tag`` and
    ``remove_tag`` (``Tags.of``'s aspects call them) of a lower priority, and one of that
    priority or above applies as it would. It costs no round trip: the overrides below
    drop the lower-priority calls before they reach the CDK's manager.
    """

    def __init__(self, resource_type: str, tags: Mapping[str, str]) -> None:
        super().__init__(TagType.KEY_VALUE, resource_type, dict(tags))
        self._initial = dict(tags)
        self._floors: dict[str, float] = {}
        self._changed = False

    @property
    def changed(self) -> bool:
        """Whether a ``set_tag`` or ``remove_tag`` reached the CDK's manager: until one does,
        its tags are the initial tags (every call, the aspects' too, passes through here)."""
        return self._changed

    def pin(self, key: str, value: str, priority: float) -> None:
        if (
            not self._changed
            and self._initial.get(key) == value
            and priority >= INITIAL_TAG_PRIORITY
        ):
            self._floors[key] = max(priority, self._floors.get(key, priority))
        else:
            self.set_tag(key, value, priority)

    def set_tag(
        self,
        key: str,
        value: str,
        priority: float | None = None,
        apply_to_launched_instances: bool | None = None,
    ) -> None:
        if (priority or 0) < self._floors.get(key, 0):
            return
        self._changed = True
        super().set_tag(key, value, priority, apply_to_launched_instances)

    def remove_tag(self, key: str, priority: float) -> None:
        if priority < self._floors.get(key, 0):
            return
        self._changed = True
        super().remove_tag(key, priority)


def tag_manager(resource_type: str, tags: Mapping[str, str]) -> TagManager:
    """A KEY_VALUE tag manager whose initial tags are `tags`."""
    return _TagManager(resource_type, tags)


def pin_tag(manager: TagManager, key: str, value: str, priority: float) -> None:
    """``manager.set_tag(key, value, priority)``, without a round trip for a manager of
    :func:`tag_manager` whose initial tag `key` has `value`."""
    if isinstance(manager, _TagManager):
        manager.pin(key, value, priority)
    else:
        manager.set_tag(key, value, priority)


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

    def _personas(self) -> dict[str, str]:
        """Persona paths to their names: the scope of each image given a persona name (but
        the stack). Read only when a problem is found: round trips."""
        personas: dict[str, str] = {}
        for resource, _ in self._entries:
            name = getattr(resource, "persona", None)
            scope = resource.node.scope if isinstance(name, str) else None
            if scope is not None and not Stack.is_stack(scope):
                personas[scope.node.path] = str(name)
        return personas

    def _where(self, resource: Tagged, personas: dict[str, str]) -> str:
        """The persona `resource` belongs to, by name and path; else its own path."""
        path = resource.path
        owners = [p for p in personas if path.startswith(f"{p}/")]
        if not owners:
            return path
        owner = max(owners, key=len)
        return f"persona {personas[owner]} ({owner})"

    def validate(self) -> list[str]:
        # One line per persona and problem: its image, bundles and copies mostly share the
        # tags a Tags.of gives, so the same problem is not told once for each of them.
        messages: list[str] = []
        personas: dict[str, str] | None = None
        for resource, policy in self._entries:
            manager = resource.cdk_tag_manager
            if isinstance(manager, _TagManager) and not manager.changed:
                continue  # its initial tags, the declared ones: no round trip to read them
            declared = dict(resource.declared_tags)
            final = dict(manager.tag_values())
            if final == declared:
                continue  # checked when the construct was created
            personas = self._personas() if personas is None else personas
            problems = Problems(self._where(resource, personas))
            check_tags(problems, "tags", final)
            if policy is not None:
                policy.check_values(problems, final)
            added = {k: v for k, v in final.items() if declared.get(k) != v}
            check_no_secrets(problems, tag_strings("tags", added))
            messages.extend(str(p) for p in problems.redacted() if str(p) not in messages)
        return messages
