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
    "BASELINE_CONTEXT": ".review.review",
    "BakeryValidationError": ".core.validation",
    "BuildRuntime": ".image_build.build_runtime",
    "Clipboard": ".preparation",
    "Compute": ".core.compute",
    "DEFAULT_ALLOWED": ".core.tagging_policy",
    "DEFAULT_REQUIRED": ".core.tagging_policy",
    "DesktopSettings": ".preparation",
    "Distribution": ".distribution.config",
    "DistributionRuntime": ".distribution.distribution",
    "IMAGE_QUOTA_CONTEXT": ".release.release",
    "IWorkspaceBundle": ".image_build.bundle",
    "IWorkspaceImage": ".image_build.image",
    "ImageBakeryStack": ".stacks",
    "ImageDesign": ".persona.persona",
    "ImagePreparation": ".preparation",
    "ImageShare": ".distribution.distribution",
    "OperatingSystem": ".preparation",
    "Persona": ".persona.persona",
    "PersonaFacts": ".evidence.checklist",
    "Problem": ".core.validation",
    "REBUILD_CONTEXT": ".image_build.image",
    "REVIEW_CONTEXT": ".review.review",
    "RegionalCopies": ".distribution.distribution",
    "RegionalCopy": ".distribution.distribution",
    "Release": ".release.config",
    "ReleasedImage": ".release.release",
    "RolloutSchedule": ".rollout.rollout",
    "RunCommandPreparation": ".image_build.run_command",
    "Scorecard": ".evidence.checklist",
    "SharedImageCopy": ".distribution.distribution",
    "StreamingProtocol": ".preparation",
    "TaggingPolicy": ".core.tagging_policy",
    "TemplateBuild": ".image_build.config",
    "WorkspaceBundle": ".image_build.bundle",
    "WorkspaceImage": ".image_build.image",
    "WorkspaceRollout": ".rollout.rollout",
    "AcceptedFinding": ".gates.vulnerability_gate",
    "VulnerabilityGate": ".gates.vulnerability_gate",
    "PatchSchedule": ".patching.patch_schedule",
    "load_baseline": ".review.review",
    "write_review": ".review.review",
}

if TYPE_CHECKING:
    from .core.compute import Compute
    from .core.tagging_policy import DEFAULT_ALLOWED, DEFAULT_REQUIRED, TaggingPolicy
    from .core.validation import BakeryValidationError, Problem
    from .distribution.config import Distribution
    from .distribution.distribution import (
        DistributionRuntime,
        ImageShare,
        RegionalCopies,
        RegionalCopy,
        SharedImageCopy,
    )
    from .evidence.checklist import PersonaFacts, Scorecard
    from .gates.vulnerability_gate import AcceptedFinding, VulnerabilityGate
    from .image_build.build_runtime import BuildRuntime
    from .image_build.bundle import IWorkspaceBundle, WorkspaceBundle
    from .image_build.config import TemplateBuild
    from .image_build.image import REBUILD_CONTEXT, IWorkspaceImage, WorkspaceImage
    from .image_build.run_command import RunCommandPreparation
    from .patching.patch_schedule import PatchSchedule
    from .persona.persona import ImageDesign, Persona
    from .preparation import (
        Agent,
        AgentKind,
        Clipboard,
        DesktopSettings,
        ImagePreparation,
        OperatingSystem,
        StreamingProtocol,
    )
    from .release.config import Release
    from .release.release import IMAGE_QUOTA_CONTEXT, ReleasedImage
    from .review.review import BASELINE_CONTEXT, REVIEW_CONTEXT, load_baseline, write_review
    from .rollout.rollout import RolloutSchedule, WorkspaceRollout
    from .stacks import ImageBakeryStack


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
    "AcceptedFinding",
    "Agent",
    "AgentKind",
    "BakeryValidationError",
    "BuildRuntime",
    "Clipboard",
    "Compute",
    "DesktopSettings",
    "Distribution",
    "DistributionRuntime",
    "IWorkspaceBundle",
    "IWorkspaceImage",
    "ImageBakeryStack",
    "ImageDesign",
    "ImagePreparation",
    "ImageShare",
    "OperatingSystem",
    "PatchSchedule",
    "Persona",
    "PersonaFacts",
    "Problem",
    "RegionalCopies",
    "RegionalCopy",
    "Release",
    "ReleasedImage",
    "RolloutSchedule",
    "RunCommandPreparation",
    "Scorecard",
    "SharedImageCopy",
    "StreamingProtocol",
    "TaggingPolicy",
    "TemplateBuild",
    "VulnerabilityGate",
    "WorkspaceBundle",
    "WorkspaceImage",
    "WorkspaceRollout",
    "load_baseline",
    "write_review",
]
