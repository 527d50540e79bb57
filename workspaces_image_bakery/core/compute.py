"""WorkSpaces compute types and the root/user volume sizes each one accepts.

Sources: botocore's WorkSpaces model (the Compute enum) and the WorkSpaces Administration
Guide (volume sizes): general types start at 80/10, 80/50, 80/100 or 175-2000/100-2000;
GeneralPurpose types need 175/100 or more; graphics types 100/100 or more; every volume
grows to at most 2000 GB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .validation import Problems, check_int, is_token

GENERAL: Final = ("VALUE", "STANDARD", "PERFORMANCE", "POWER", "POWERPRO")
GENERAL_PURPOSE: Final = ("GENERALPURPOSE_4XLARGE", "GENERALPURPOSE_8XLARGE")
GRAPHICS: Final = (
    "GRAPHICS_G4DN",
    "GRAPHICSPRO_G4DN",
    "GRAPHICS_G6_XLARGE",
    "GRAPHICS_G6_2XLARGE",
    "GRAPHICS_G6_4XLARGE",
    "GRAPHICS_G6_8XLARGE",
    "GRAPHICS_G6_16XLARGE",
    "GRAPHICS_GR6_4XLARGE",
    "GRAPHICS_GR6_8XLARGE",
    "GRAPHICS_G6F_LARGE",
    "GRAPHICS_G6F_XLARGE",
    "GRAPHICS_G6F_2XLARGE",
    "GRAPHICS_G6F_4XLARGE",
    "GRAPHICS_GR6F_4XLARGE",
    "GRAPHICS_G7_2XLARGE",
    "GRAPHICS_G7_4XLARGE",
    "GRAPHICS_G7_8XLARGE",
    "GRAPHICS_G7_12XLARGE",
)
COMPUTE_TYPES: Final = GENERAL + GENERAL_PURPOSE + GRAPHICS
# Retired bundles, still in the API's enum: name the successor instead.
RETIRED: Final = {"GRAPHICS": "GRAPHICS_G4DN", "GRAPHICSPRO": "GRAPHICSPRO_G4DN"}

MAX_VOLUME_GIB: Final = 2000
_SMALL_GENERAL_PAIRS: Final = ((80, 10), (80, 50), (80, 100))


@dataclass(frozen=True, kw_only=True)
class Compute:
    """A persona's bundle hardware: ``Persona(..., compute=Compute(...))``. Checked at synth
    by the persona (errors name ``compute.<field>``); a change of any field replaces the
    persona's bundles (new id and name suffix) and keeps the image.

    :param compute_type: a current WorkSpaces compute type (botocore's Compute enum:
        VALUE, STANDARD, PERFORMANCE, POWER, POWERPRO, GENERALPURPOSE_4XLARGE/8XLARGE and the
        GRAPHICS_* families); GRAPHICS and GRAPHICSPRO are retired and refused, naming their
        successor. Default ``"STANDARD"``.
    :param root_volume_gib: the root volume in GB. Default None: the smallest valid size for
        the type (80 general, 175 GeneralPurpose, 100 graphics).
    :param user_volume_gib: the user volume in GB. Default None: the smallest valid size (10
        general, 100 GeneralPurpose, 100 graphics). The pair must be one WorkSpaces accepts:
        root 80 with user 10, 50 or 100, or root 175-2000 with user 100-2000 (general); at
        least 175/100 (GeneralPurpose); at least 100/100 (graphics); each at most 2000 GB.
        Either may be a deploy-time token, which synth cannot check.
    """

    compute_type: str = "STANDARD"
    root_volume_gib: int | None = None
    user_volume_gib: int | None = None


def smallest_volumes(compute_type: str) -> tuple[int, int]:
    """The cheapest valid (root, user) pair: the whitepaper's cost advice."""
    if compute_type in GENERAL_PURPOSE:
        return (175, 100)
    if compute_type in GRAPHICS:
        return (100, 100)
    return (80, 10)


def volume_rule(compute_type: str) -> str:
    """What a person reads when a pair is refused."""
    if compute_type in GENERAL_PURPOSE:
        return f"root 175-{MAX_VOLUME_GIB} with user 100-{MAX_VOLUME_GIB}"
    if compute_type in GRAPHICS:
        return f"root 100-{MAX_VOLUME_GIB} with user 100-{MAX_VOLUME_GIB}"
    return (
        f"root 80 with user 10, 50 or 100; or root 175-{MAX_VOLUME_GIB} "
        f"with user 100-{MAX_VOLUME_GIB}"
    )


def volumes_valid(compute_type: str, root_gib: int, user_gib: int) -> bool:
    if compute_type in GENERAL_PURPOSE:
        low_root, low_user = 175, 100
    elif compute_type in GRAPHICS:
        low_root, low_user = 100, 100
    else:
        if (root_gib, user_gib) in _SMALL_GENERAL_PAIRS:
            return True
        low_root, low_user = 175, 100
    return low_root <= root_gib <= MAX_VOLUME_GIB and low_user <= user_gib <= MAX_VOLUME_GIB


def check_compute(
    problems: Problems, compute_type: Any, root_gib: Any, user_gib: Any
) -> tuple[Any, Any]:
    """Check a compute type and its volumes; return the volumes, defaults filled in."""
    if not isinstance(compute_type, str):
        problems.add("compute_type", compute_type, f"one of {', '.join(COMPUTE_TYPES)}")
    elif compute_type in RETIRED:
        problems.add(
            "compute_type",
            compute_type,
            f"a current type; {compute_type} is retired, use {RETIRED[compute_type]}",
        )
    elif compute_type not in COMPUTE_TYPES:
        problems.add("compute_type", compute_type, f"one of {', '.join(COMPUTE_TYPES)}")
    default_root, default_user = smallest_volumes(str(compute_type))
    root = default_root if root_gib is None else root_gib
    user = default_user if user_gib is None else user_gib
    sizes_ok = check_int(problems, "root_volume_gib", root, 1, MAX_VOLUME_GIB)
    sizes_ok &= check_int(problems, "user_volume_gib", user, 1, MAX_VOLUME_GIB)
    if sizes_ok and compute_type in COMPUTE_TYPES and not (is_token(root) or is_token(user)):
        problems.check(
            volumes_valid(compute_type, root, user),
            "root_volume_gib/user_volume_gib",
            f"{root}/{user}",
            f"for {compute_type}: {volume_rule(compute_type)} (at most {MAX_VOLUME_GIB} GB)",
        )
    return root, user
