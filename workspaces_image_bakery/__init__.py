"""workspaces-image-bakery: Amazon WorkSpaces Linux images and bundles as AWS CDK constructs.

The package loads a module when one of its names is first used (PEP 562): the command-line
tool and the Lambda runtime's contracts never load the CDK, and ``import
workspaces_image_bakery`` alone costs next to nothing. ``from workspaces_image_bakery import
Persona`` loads the constructs (and the CDK modules they use) as a plain import would.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each public name, and the module that defines it.
_EXPORTS: dict[str, str] = {
    "Agent": ".preparation",
    "AgentKind": ".preparation",
    "BASELINE_CONTEXT": ".review",
    "BakeryValidationError": ".validation",
    "BuildRuntime": ".constructs",
    "Clipboard": ".preparation",
    "DEFAULT_ALLOWED": ".constructs",
    "DEFAULT_REQUIRED": ".constructs",
    "DesktopSettings": ".preparation",
    "DistributionRuntime": ".constructs",
    "IMAGE_QUOTA_CONTEXT": ".constructs",
    "IWorkspaceBundle": ".constructs",
    "IWorkspaceImage": ".constructs",
    "ImageBakeryStack": ".stacks",
    "ImageDesign": ".constructs",
    "ImagePreparation": ".preparation",
    "ImageShare": ".constructs",
    "OperatingSystem": ".preparation",
    "Persona": ".constructs",
    "PersonaFacts": ".checklist",
    "Problem": ".validation",
    "REBUILD_CONTEXT": ".constructs",
    "REVIEW_CONTEXT": ".review",
    "RegionalCopies": ".constructs",
    "RegionalCopy": ".constructs",
    "ReleasedImage": ".constructs",
    "RolloutSchedule": ".constructs",
    "RunCommandPreparation": ".constructs.run_command",
    "Scorecard": ".checklist",
    "SharedImageCopy": ".constructs",
    "StreamingProtocol": ".preparation",
    "TaggingPolicy": ".constructs",
    "WorkspaceBundle": ".constructs",
    "WorkspaceImage": ".constructs",
    "WorkspaceRollout": ".constructs",
    "load_baseline": ".review",
    "write_review": ".review",
}

if TYPE_CHECKING:
    from .checklist import PersonaFacts, Scorecard
    from .constructs import (
        DEFAULT_ALLOWED,
        DEFAULT_REQUIRED,
        IMAGE_QUOTA_CONTEXT,
        REBUILD_CONTEXT,
        BuildRuntime,
        DistributionRuntime,
        ImageDesign,
        ImageShare,
        IWorkspaceBundle,
        IWorkspaceImage,
        Persona,
        RegionalCopies,
        RegionalCopy,
        ReleasedImage,
        RolloutSchedule,
        SharedImageCopy,
        TaggingPolicy,
        WorkspaceBundle,
        WorkspaceImage,
        WorkspaceRollout,
    )
    from .constructs.run_command import RunCommandPreparation
    from .preparation import (
        Agent,
        AgentKind,
        Clipboard,
        DesktopSettings,
        ImagePreparation,
        OperatingSystem,
        StreamingProtocol,
    )
    from .review import BASELINE_CONTEXT, REVIEW_CONTEXT, load_baseline, write_review
    from .stacks import ImageBakeryStack
    from .validation import BakeryValidationError, Problem


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "BASELINE_CONTEXT",
    "DEFAULT_ALLOWED",
    "DEFAULT_REQUIRED",
    "IMAGE_QUOTA_CONTEXT",
    "REBUILD_CONTEXT",
    "REVIEW_CONTEXT",
    "Agent",
    "AgentKind",
    "BakeryValidationError",
    "BuildRuntime",
    "Clipboard",
    "DesktopSettings",
    "DistributionRuntime",
    "IWorkspaceBundle",
    "IWorkspaceImage",
    "ImageBakeryStack",
    "ImageDesign",
    "ImagePreparation",
    "ImageShare",
    "OperatingSystem",
    "Persona",
    "PersonaFacts",
    "Problem",
    "RegionalCopies",
    "RegionalCopy",
    "ReleasedImage",
    "RolloutSchedule",
    "RunCommandPreparation",
    "Scorecard",
    "SharedImageCopy",
    "StreamingProtocol",
    "TaggingPolicy",
    "WorkspaceBundle",
    "WorkspaceImage",
    "WorkspaceRollout",
    "load_baseline",
    "write_review",
]
