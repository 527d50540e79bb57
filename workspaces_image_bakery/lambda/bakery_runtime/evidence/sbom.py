"""The image's software bill of materials: its installed packages as CycloneDX 1.6 JSON.

At the end of a build the template's package manager lists what is installed
(``PACKAGE_QUERY``, run on the template); ``parse_inventory`` reads that list and
``build_sbom`` writes it as a CycloneDX 1.6 document with cyclonedx-python-lib, which the
function's layer brings (the Lambda runtime has boto3 and nothing else). The document is
deterministic: the same packages, image and time give the same bytes (its serial number
is derived from them), so the digest of the record that names it is stable.

Each package is a component whose purl follows the purl types for deb and rpm:
``pkg:deb/ubuntu/bash@5.1-6ubuntu1?arch=amd64&distro=ubuntu-22.04`` (a Debian epoch stays
in the version) and ``pkg:rpm/rocky/bash@5.1.8-9.el9?arch=x86_64&distro=rocky-9.4``, with
an rpm epoch in the ``epoch`` qualifier. The component's version is the version the
package manager compares: ``[epoch:]upstream[-revision]`` for deb and
``[epoch:]version-release`` for rpm, the epoch written when it is not 0.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import cyclonedx
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot5, JsonV1Dot6
from packageurl import PackageURL

from .inventory import PACKAGE_QUERY

FAMILIES: Final = ("deb", "rpm")
__all__ = ["FAMILIES", "PACKAGE_QUERY", "Package", "build_sbom", "parse_inventory", "read_sbom"]

# PACKAGE_QUERY (the inventory document runs it) is defined with the document.

# dpkg's package states (dpkg-query(1)); in the first two nothing but at most some
# configuration files is on disk, so the package is not part of the image.
_DPKG_ABSENT: Final = frozenset({"not-installed", "config-files"})
_DPKG_STATES: Final = _DPKG_ABSENT | {
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
    "installed",
}
_DEB_NAME: Final = re.compile(r"[a-z0-9][a-z0-9+.-]*")
# [epoch:]upstream[-revision]: a colon in the upstream version only after an epoch, and
# no empty revision (dpkg refuses both).
_DEB_VERSION: Final = re.compile(
    r"(?:[0-9]+:[0-9A-Za-z][0-9A-Za-z.+~:-]*|[0-9A-Za-z][0-9A-Za-z.+~-]*)(?<!-)"
)
_RPM_NAME: Final = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*")
# epoch:version-release; neither version nor release holds a hyphen or a colon.
_RPM_EVR: Final = re.compile(r"(?:([0-9]+):)?([^\s:-]+)-([^\s:-]+)")
_ARCH: Final = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")
_RPM_NO_ARCH: Final = "(none)"
# os-release(5): ID and VERSION_ID.
_OS_ID: Final = re.compile(r"[a-z0-9._-]+")
_OS_VERSION: Final = re.compile(r"[A-Za-z0-9._~-]+")
# purl namespaces (the vendor) where it is not the os-release ID.
_RPM_VENDOR: Final = {"rhel": "redhat"}
_PROPERTY_PREFIX: Final = "workspaces-image-bakery"
# Serial numbers are uuid5 names in this namespace (itself uuid5 of the library's name).
_SERIAL_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:workspaces-image-bakery:sbom")


@dataclass(frozen=True, order=True)
class Package:
    """One installed package: its name, its version as the package manager compares it
    (``[epoch:]...``, the epoch left out when 0) and its architecture (``""`` for none)."""

    name: str
    version: str
    arch: str


def parse_inventory(text: str, family: str) -> list[Package]:
    """The packages that ``PACKAGE_QUERY[family]`` printed, de-duplicated and sorted.

    Raises ValueError naming the first malformed line (numbered from 1), and when no
    package at all is listed (the query cannot have run)."""
    _check_family(family)
    packages: set[Package] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        parsed = _deb_line(line) if family == "deb" else _rpm_line(line)
        if isinstance(parsed, str):
            raise ValueError(f"{family} inventory line {number}: {parsed}: {line!r}")
        if parsed is not None:
            packages.add(parsed)
    if not packages:
        raise ValueError(f"the {family} inventory lists no installed package")
    return sorted(packages)


def _deb_line(line: str) -> Package | str | None:
    """The package of one dpkg-query line, None when it is not installed, or what is wrong."""
    fields = line.split("\t")
    if len(fields) != 4:
        return f"expected 4 tab-separated fields (status, name, version, arch), got {len(fields)}"
    status, name, version, arch = fields
    if status not in _DPKG_STATES:
        return f"unknown package status {status!r}"
    if status in _DPKG_ABSENT:
        return None
    problem = _deb_problem(name, version, arch)
    return problem or Package(name, version, arch)


def _rpm_line(line: str) -> Package | str:
    """The package of one rpm line, or what is wrong with it."""
    fields = line.split("\t")
    if (n := len(fields)) != 3:
        return f"expected 3 tab-separated fields (name, epoch:version-release, arch), got {n}"
    name, evr, arch = fields
    arch = "" if arch == _RPM_NO_ARCH else arch
    problem = _rpm_problem(name, evr, arch)
    return problem or Package(name, _rpm_version(evr), arch)


def _deb_problem(name: str, version: str, arch: str) -> str:
    if not _DEB_NAME.fullmatch(name):
        return f"not a Debian package name: {name!r}"
    if not _DEB_VERSION.fullmatch(version):
        return f"not a Debian version: {version!r}"
    if not _ARCH.fullmatch(arch):
        return f"not an architecture: {arch!r}"
    return ""


def _rpm_problem(name: str, evr: str, arch: str) -> str:
    if not _RPM_NAME.fullmatch(name):
        return f"not an rpm package name: {name!r}"
    if not _RPM_EVR.fullmatch(evr):
        return f"not an rpm epoch:version-release: {evr!r}"
    if arch and not _ARCH.fullmatch(arch):
        return f"not an architecture: {arch!r}"
    return ""


def _rpm_split(evr: str) -> tuple[str, str]:
    """An rpm ``[epoch:]version-release`` as (epoch, ``version-release``), epoch "0" if none."""
    match = _RPM_EVR.fullmatch(evr)
    if match is None:
        raise ValueError(f"not an rpm epoch:version-release: {evr!r}")
    epoch, version, release = match.groups()
    return str(int(epoch or "0")), f"{version}-{release}"


def _rpm_version(evr: str) -> str:
    """The version as rpm writes it: the epoch only when it is not 0."""
    epoch, version_release = _rpm_split(evr)
    return version_release if epoch == "0" else f"{epoch}:{version_release}"


def build_sbom(
    packages: Iterable[Package],
    *,
    image_name: str,
    persona: str,
    os_id: str,
    os_version: str,
    family: str,
    timestamp: datetime,
    spec_version: str = "1.6",
) -> str:
    """The CycloneDX 1.6 JSON document of an image's packages (see the module's docstring);
    with `spec_version` "1.5", the same as CycloneDX 1.5 (what Inspector's ScanSbom reads).

    ``os_id`` and ``os_version`` are the template's os-release ID and VERSION_ID
    (``ubuntu``/``22.04``, ``rocky``/``9.4``, ``rhel``/``8.10``); ``timestamp`` (with its
    time zone) is when the inventory was taken. The same arguments give the same text."""
    _check_family(family)
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        raise ValueError("the SBOM's timestamp needs a time zone")
    if not _OS_ID.fullmatch(os_id):
        raise ValueError(f"not an os-release ID: {os_id!r}")
    if not _OS_VERSION.fullmatch(os_version):
        raise ValueError(f"not an os-release VERSION_ID: {os_version!r}")
    if not image_name or not persona:
        raise ValueError("the SBOM names its image and persona: neither may be empty")
    canonical = sorted({_checked(package, family) for package in packages})
    vendor = os_id if family == "deb" else _RPM_VENDOR.get(os_id, os_id)
    distro = f"{os_id}-{os_version}"
    components = [_component(package, family, vendor, distro) for package in canonical]
    image = Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=image_name,
        bom_ref=f"image:{image_name}",
        description=f"Amazon WorkSpaces image of persona {persona} ({os_id} {os_version})",
        properties=[
            Property(name=f"{_PROPERTY_PREFIX}:persona", value=persona),
            Property(name=f"{_PROPERTY_PREFIX}:os", value=distro),
            Property(name=f"{_PROPERTY_PREFIX}:package-family", value=family),
        ],
    )
    tool = Component(
        type=ComponentType.LIBRARY,
        group="CycloneDX",
        name="cyclonedx-python-lib",
        version=cyclonedx.__version__,
        bom_ref=f"tool:cyclonedx-python-lib@{cyclonedx.__version__}",
    )
    identity = json.dumps(
        [image_name, persona, os_id, os_version, family, timestamp.isoformat()]
        + [[package.name, package.version, package.arch] for package in canonical]
    )
    bom = Bom(
        serial_number=uuid.uuid5(_SERIAL_NAMESPACE, identity),
        metadata=BomMetaData(
            component=image, timestamp=timestamp, tools=ToolRepository(components=[tool])
        ),
        components=components,
    )
    bom.register_dependency(image, components)
    for component in components:
        bom.register_dependency(component)
    writer = {"1.5": JsonV1Dot5, "1.6": JsonV1Dot6}[spec_version]
    return writer(bom).output_as_string(indent=2) + "\n"


def _checked(package: Package, family: str) -> Package:
    """``package`` as parse_inventory gives it (an rpm epoch of 0 left out), or ValueError."""
    if family == "deb":
        problem = _deb_problem(package.name, package.version, package.arch)
        if problem:
            raise ValueError(f"{package}: {problem}")
        return package
    problem = _rpm_problem(package.name, package.version, package.arch)
    if problem:
        raise ValueError(f"{package}: {problem}")
    return Package(package.name, _rpm_version(package.version), package.arch)


def _component(package: Package, family: str, vendor: str, distro: str) -> Component:
    qualifiers: dict[str, str] = {}
    if package.arch:
        qualifiers["arch"] = package.arch
    version = package.version
    if family == "rpm":
        epoch, version = _rpm_split(package.version)
        if epoch != "0":
            qualifiers["epoch"] = epoch
    qualifiers["distro"] = distro
    purl = PackageURL(
        type=family, namespace=vendor, name=package.name, version=version, qualifiers=qualifiers
    )
    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        purl=purl,
        bom_ref=purl.to_string(),
    )


def read_sbom(text: str) -> list[Package]:
    """The packages of an SBOM that build_sbom wrote, sorted; ValueError if it is not one."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise ValueError("not a CycloneDX JSON document")
    packages: set[Package] = set()
    for component in document.get("components", []):
        purl = PackageURL.from_string(component["purl"])
        if purl.type not in FAMILIES:
            raise ValueError(f"not a deb or rpm package: {component['purl']}")
        qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
        packages.add(Package(component["name"], component["version"], qualifiers.get("arch", "")))
    return sorted(packages)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"package family {family!r}: expected one of {', '.join(FAMILIES)}")
