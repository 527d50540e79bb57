"""How the persona's build runs on its template: ``Persona(..., build=TemplateBuild(...))``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration

__all__ = ["TemplateBuild"]


@dataclass(frozen=True, kw_only=True)
class TemplateBuild:
    """How the deploy-time build treats the persona's template WorkSpace (docs/build.md,
    docs/preparation.md). Checked at synth by the persona (errors name ``build.<field>``).

    :param managed_node_id: the template WorkSpace's Systems Manager hybrid managed node
        (``mi-`` + 17 letters or digits, from its activation). With it, the build runs the
        persona's ``preparation`` on the template through Run Command, reboots it and checks
        its recipe marker before taking the image; it needs a ``preparation``, and a template
        prepared in the build serves one persona only. Default None: the template is prepared
        by hand, and the review and checklist say so (the context value
        ``workspaces-image-bakery:require-automated-preparation=true`` makes that an error).
        Adding or removing it rebuilds the image.
    :param validation_commands: checks that the image is fit for release, each run with
        ``bash -c`` on the template after its preparation, reboot and marker check, right
        before the image is taken; the first that exits non-zero fails the build with its
        output, so no image is taken and no bundle moves. Each 1-1000 characters, not a token,
        scanned for secrets. Needs ``managed_node_id``. Not part of the recipe: a change
        applies to the next build and starts none. Default none.
    :param timeout: how long a build may take, 30 minutes to 12 hours (the longest an
        ``AWS::CloudFormation::WaitCondition`` waits). Default None: 6 hours. A change is an
        in-place update; it applies to the next build.
    """

    managed_node_id: str | None = None
    validation_commands: Sequence[str] = ()
    timeout: Duration | None = None
