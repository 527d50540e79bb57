"""The Lambda layer that brings cyclonedx-python-lib to the function that writes the SBOM.

The Lambda Python runtime has boto3 and nothing else, while ``bakery_runtime.evidence.sbom``
writes its CycloneDX document with cyclonedx-python-lib. The library and its runtime
dependencies are all pure Python, so the layer is made of the very distributions installed
beside this package: no pip, no network, no build step. ``sbom_layer_folder()`` copies
their files (found through ``importlib.metadata``) into ``<folder>/python/`` (where Lambda
looks for a Python layer's packages) and returns the folder; ``sbom_layer_zip()`` packs
that folder into one zip file beside it, which is what the stack's layer uses::

    lambda_.LayerVersion(
        scope, "SbomLayer", code=lambda_.Code.from_asset(str(sbom_layer_zip()))
    )

(The CDK stages a zip file as it is: one file to hash and copy into the cloud assembly in
each synth instead of some 190, about 0.1 s of every synth.)

The folder and its zip are a cache keyed by the distributions' names and versions: later
synths reuse them, and their content (and so the CDK asset's hash) depends on nothing else
(the zip's entries are sorted, stored uncompressed, dated 1980-01-01 and mode 644). It holds the
distributions' modules and data, their METADATA and licence files, and no ``__pycache__``,
RECORD, INSTALLER or script.

Environment markers are read for the Lambda runtimes the layer may serve (CPython 3.12 to
3.14 on Linux, ARM or x86), not for the Python that synthesizes: a dependency that one of
them needs (typing_extensions before 3.13) is staged even where synth does not need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final

from ..core.asset_zip import write_zip
from ..core.cache_folder import default_cache_dir, write_atomically

if TYPE_CHECKING:
    from packaging.requirements import Requirement

LAYER_DISTRIBUTIONS: Final = ("cyclonedx-python-lib",)
LAMBDA_PYTHON_VERSIONS: Final = ("3.12", "3.13", "3.14")
LAMBDA_MACHINES: Final = ("aarch64", "x86_64")
# Files a pure-Python layer cannot hold: compiled for one interpreter and platform.
COMPILED_SUFFIXES: Final = frozenset({".so", ".pyd", ".dylib", ".dll"})
# The staging rules' version, part of the cache key: a change to them makes a new folder.
_LAYOUT: Final = "1"
_METADATA_KEPT: Final = ("METADATA", "LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


def sbom_layer_folder(
    cache_dir: Path | None = None, *, distributions: Sequence[str] = LAYER_DISTRIBUTIONS
) -> Path:
    """The layer folder (its packages under ``python/``) of ``distributions`` and the
    distributions they require, staged once per set of names and versions.

    Raises RuntimeError naming the distribution when one is not installed, does not
    satisfy what requires it, does not list its files, or holds compiled files."""
    parent = cache_dir or default_cache_dir()
    closure, found = _known_closure(distributions, parent)
    key = hashlib.sha256(
        "\n".join([_LAYOUT, *(f"{name}=={dist.version}" for name, dist in closure)]).encode()
    ).hexdigest()[:20]
    folder = parent / f"sbom-layer-{key}"
    if (folder / "python").is_dir():
        # Python writes bytecode beside what it imports: whatever imported from the
        # folder left caches the asset must not hold.
        for cache in sorted(folder.rglob("__pycache__"), reverse=True):
            shutil.rmtree(cache, ignore_errors=True)
        if found:
            _record_closure(distributions, parent, closure)
        return folder
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        for name, dist in closure:
            _stage(name, dist, staging / "python")
        try:
            staging.rename(folder)
        except OSError:
            # Another process staged the same folder first: the same content, use it.
            if not (folder / "python").is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _record_closure(distributions, parent, closure)
    return folder


def sbom_layer_zip(
    cache_dir: Path | None = None, *, distributions: Sequence[str] = LAYER_DISTRIBUTIONS
) -> Path:
    """The layer folder of :func:`sbom_layer_folder` as one zip file beside it (``python/``
    at its root, as Lambda unpacks a layer), made once per folder: the same bytes on every
    machine for the same distributions, so the asset's hash is stable."""
    folder = sbom_layer_folder(cache_dir, distributions=distributions)
    packed = folder.with_name(f"{folder.name}.zip")
    if packed.is_file():
        return packed
    return write_zip(
        (
            (path.relative_to(folder).as_posix(), path.read_bytes())
            for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.relative_to(folder).parts
        ),
        packed,
    )


def layer_distributions(
    distributions: Sequence[str] = LAYER_DISTRIBUTIONS,
) -> list[tuple[str, str]]:
    """The (name, version) of each distribution the layer holds, sorted by name."""
    return [(name, dist.version) for name, dist in _closure(distributions)]


def _closure_record(roots: Sequence[str], cache_dir: Path) -> Path:
    """Where the names and versions of the last closure of ``roots`` are kept."""
    digest = hashlib.sha256("\n".join([_LAYOUT, *roots]).encode()).hexdigest()[:12]
    return cache_dir / f"sbom-layer-{digest}.closure.json"


def _known_closure(
    roots: Sequence[str], cache_dir: Path
) -> tuple[list[tuple[str, importlib.metadata.Distribution]], bool]:
    """:func:`_closure` of ``roots``, and whether it was found again (not known).

    The names and versions of the last closure staged are kept in ``cache_dir``; when every
    one of them is still installed at that version, the closure is the same (what a
    distribution requires is fixed by its version) and its requirements are not read
    again: reading them needs ``packaging``, about 0.07 s to import, in every synth."""
    try:
        known = json.loads(_closure_record(roots, cache_dir).read_text(encoding="utf-8"))
        installed = [(name, importlib.metadata.distribution(name)) for name in sorted(known)]
        if installed and all(dist.version == known[name] for name, dist in installed):
            return installed, False
    except (OSError, ValueError, TypeError, importlib.metadata.PackageNotFoundError):
        pass  # no record, an unreadable one, or a distribution gone: find it again
    return _closure(roots), True


def _record_closure(
    roots: Sequence[str],
    cache_dir: Path,
    closure: list[tuple[str, importlib.metadata.Distribution]],
) -> None:
    """Keep the closure's names and versions for :func:`_known_closure` (written beside and
    moved into place; a cache that cannot be written only costs the next synth the lookup)."""
    versions = {name: dist.version for name, dist in closure}
    with contextlib.suppress(OSError):
        write_atomically(
            _closure_record(roots, cache_dir), json.dumps(versions, sort_keys=True).encode()
        )


def _closure(roots: Iterable[str]) -> list[tuple[str, importlib.metadata.Distribution]]:
    """The installed distributions of ``roots`` and everything they require on Lambda."""
    # Imported here: only a changed set of distributions needs their requirements read.
    from packaging.requirements import Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    found: dict[str, importlib.metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    pending: list[tuple[str, frozenset[str], str]] = [
        (canonicalize_name(root), frozenset(), "the SBOM layer") for root in roots
    ]
    while pending:
        name, extras, wanted_by = pending.pop()
        if name not in found:
            found[name] = _installed(name, wanted_by)
        new_extras = set(extras) - extras_seen.get(name, set())
        if name in extras_seen and not new_extras:
            continue
        extras_seen.setdefault(name, set()).update(extras)
        dist = found[name]
        for text in dist.requires or []:
            requirement = Requirement(text)
            if not _needed_on_lambda(requirement, {"", *extras}):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in found:
                found[dependency] = _installed(dependency, f"{name} {dist.version}")
            version = found[dependency].version
            if not requirement.specifier.contains(version, prereleases=True):
                raise RuntimeError(
                    f"{dependency} {version} is installed, but {name} {dist.version} "
                    f"requires {requirement}: install a version that satisfies it"
                )
            pending.append((dependency, frozenset(requirement.extras), name))
    return sorted(found.items())


def _installed(name: str, wanted_by: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"the SBOM layer needs the distribution {name} (for {wanted_by}), which is not "
            f"installed: pip install {name}"
        ) from None


def _needed_on_lambda(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(
        requirement.marker.evaluate(_lambda_environment(python, machine, extra))
        for python in LAMBDA_PYTHON_VERSIONS
        for machine in LAMBDA_MACHINES
        for extra in extras
    )


def _lambda_environment(python: str, machine: str, extra: str) -> dict[str, str]:
    """PEP 508's marker variables on a Lambda Python runtime."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{python}.0",
        "python_version": python,
        "sys_platform": "linux",
        "extra": extra,
    }


def _stage(name: str, dist: importlib.metadata.Distribution, target: Path) -> None:
    """Copy ``dist``'s importable files, METADATA and licences under ``target``."""
    files = dist.files
    if files is None:
        raise RuntimeError(
            f"the distribution {name} {dist.version} does not list its files (no RECORD): "
            "reinstall it with pip"
        )
    for file in sorted(files, key=str):
        relative = PurePosixPath(str(file))
        if not _kept(relative):
            continue
        if relative.suffix in COMPILED_SUFFIXES or ".so." in relative.name:
            raise RuntimeError(
                f"the distribution {name} {dist.version} holds a compiled file ({relative}): "
                "a Lambda layer made from this machine's files needs pure Python"
            )
        source = Path(str(dist.locate_file(file)))
        if not source.is_file():
            raise RuntimeError(
                f"the distribution {name} {dist.version} lists {relative}, which is missing: "
                "reinstall it"
            )
        destination = target.joinpath(*relative.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)


def _kept(relative: PurePosixPath) -> bool:
    """Whether a file of a distribution belongs in the layer."""
    parts = relative.parts
    if not parts or parts[0] == ".." or relative.is_absolute():
        return False  # scripts and data installed outside site-packages
    if "__pycache__" in parts or relative.suffix in {".pyc", ".pyo"}:
        return False
    if parts[0].endswith((".dist-info", ".egg-info")):
        return (len(parts) > 2 and parts[1] == "licenses") or (
            len(parts) == 2 and relative.name.upper().startswith(_METADATA_KEPT)
        )
    return True
