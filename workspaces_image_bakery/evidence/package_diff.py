"""What changed between two images' packages, ordered the way their package manager orders.

Versions are compared with the family's own rules, written out here from dpkg's and rpm's
sources: dpkg's (``epoch:upstream-revision``, ``~`` before anything, even the end) and
rpm's rpmvercmp (``epoch:version-release``, ``~`` before and ``^`` after the end).
``"1.10"`` is newer than ``"1.9"`` for both, which string order gets wrong.

The library reads SBOMs with ``json`` and ``packageurl`` and does not import the Lambda
runtime (its folder, ``lambda``, is a keyword): any object with ``name``, ``version`` and
``arch`` attributes, or a plain ``(name, version, arch)`` tuple, is a package here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from packageurl import PackageURL

FAMILIES: Final = ("deb", "rpm")


class PackageLike(Protocol):
    """Anything with a package's name, version and architecture."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def arch(self) -> str: ...


class PackageRef(NamedTuple):
    """One package: name, version and architecture (``""`` for none)."""

    name: str
    version: str
    arch: str


class VersionChange(NamedTuple):
    """One package (name and architecture) whose version changed."""

    name: str
    arch: str
    old_version: str
    new_version: str


@dataclass(frozen=True)
class PackageDiff:
    """From the old packages to the new; each tuple sorted by name, architecture, version.

    A package (name and architecture) with one version on each side that differ is
    upgraded or downgraded. Where a side has several versions of a package (rpm's
    installonly kernels), the versions that only one side has are added or removed."""

    added: tuple[PackageRef, ...]
    removed: tuple[PackageRef, ...]
    upgraded: tuple[VersionChange, ...]
    downgraded: tuple[VersionChange, ...]

    @property
    def unchanged(self) -> bool:
        """Whether the two sides hold the same packages."""
        return not (self.added or self.removed or self.upgraded or self.downgraded)


def package_diff(
    old: Iterable[PackageLike | tuple[str, str, str]],
    new: Iterable[PackageLike | tuple[str, str, str]],
    *,
    family: str,
) -> PackageDiff:
    """The packages added, removed, upgraded and downgraded from ``old`` to ``new``,
    versions compared by ``family``'s rules ("deb" or "rpm")."""
    compare = version_comparison(family)
    before = _versions(old)
    after = _versions(new)
    added: list[PackageRef] = []
    removed: list[PackageRef] = []
    upgraded: list[VersionChange] = []
    downgraded: list[VersionChange] = []
    for name, arch in sorted(before.keys() | after.keys()):
        olds = before.get((name, arch), set())
        news = after.get((name, arch), set())
        if len(olds) == 1 and len(news) == 1:
            (old_version,), (new_version,) = olds, news
            order = compare(old_version, new_version)
            if order < 0:
                upgraded.append(VersionChange(name, arch, old_version, new_version))
            elif order > 0:
                downgraded.append(VersionChange(name, arch, old_version, new_version))
            continue
        # Versions that compare equal but are spelt differently ("1.0" and "1.00"):
        # the same version, neither added nor removed.
        only_old = {v for v in olds if not any(compare(v, w) == 0 for w in news)}
        only_new = {v for v in news if not any(compare(v, w) == 0 for w in olds)}
        removed.extend(PackageRef(name, v, arch) for v in sorted(only_old))
        added.extend(PackageRef(name, v, arch) for v in sorted(only_new))
    return PackageDiff(tuple(added), tuple(removed), tuple(upgraded), tuple(downgraded))


def _versions(
    packages: Iterable[PackageLike | tuple[str, str, str]],
) -> dict[tuple[str, str], set[str]]:
    versions: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for package in packages:
        ref = _ref(package)
        versions[ref.name, ref.arch].add(ref.version)
    return versions


def _ref(package: PackageLike | tuple[str, str, str]) -> PackageRef:
    if isinstance(package, tuple):
        name, version, arch = package
        return PackageRef(name, version, arch)
    return PackageRef(package.name, package.version, package.arch)


def packages_of_sbom(text: str) -> list[PackageRef]:
    """The packages of an SBOM the build wrote (CycloneDX JSON, deb or rpm purls), sorted."""
    return sorted(_read_sbom(text)[1])


def sbom_family(text: str) -> str:
    """The package family ("deb" or "rpm") of an SBOM the build wrote."""
    return _read_sbom(text)[0]


def diff_sboms(old: str, new: str) -> PackageDiff:
    """package_diff between two SBOMs of the same package family."""
    old_family, old_packages = _read_sbom(old)
    new_family, new_packages = _read_sbom(new)
    if old_family != new_family:
        raise ValueError(f"cannot compare a {old_family} SBOM with a {new_family} one")
    return package_diff(old_packages, new_packages, family=old_family)


def _read_sbom(text: str) -> tuple[str, set[PackageRef]]:
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise ValueError("not a CycloneDX JSON document")
    families: set[str] = set()
    packages: set[PackageRef] = set()
    for component in document.get("components", []):
        purl = PackageURL.from_string(component["purl"])
        if purl.type not in FAMILIES:
            raise ValueError(f"not a deb or rpm package: {component['purl']}")
        families.add(purl.type)
        qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
        packages.add(
            PackageRef(component["name"], component["version"], qualifiers.get("arch", ""))
        )
    if len(families) != 1:
        raise ValueError(f"expected the packages of one family, found {sorted(families) or 'none'}")
    return families.pop(), packages


def version_comparison(family: str) -> _Compare:
    """The version comparison of ``family``: compare_deb or compare_rpm."""
    if family == "deb":
        return compare_deb
    if family == "rpm":
        return compare_rpm
    raise ValueError(f"package family {family!r}: expected one of {', '.join(FAMILIES)}")


class _Compare(Protocol):
    def __call__(self, a: str, b: str, /) -> int: ...


# ---- dpkg: lib/dpkg/version.c (dpkg_version_compare, verrevcmp) ----


def _deb_parse(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision) as dpkg's parseversion splits them; ValueError where
    dpkg refuses the version outright."""
    text = version.strip()
    epoch = 0
    if ":" in text:
        epoch_text, _, text = text.partition(":")
        if not (epoch_text.isascii() and epoch_text.isdigit()) or not text:
            raise ValueError(f"not a Debian version: {version!r}")
        epoch = int(epoch_text)
    upstream, hyphen, revision = text.rpartition("-")
    if not hyphen:
        upstream, revision = text, ""
    if not upstream or (hyphen and not revision):
        raise ValueError(f"not a Debian version: {version!r}")
    return epoch, upstream, revision


def _deb_order(char: str) -> int:
    """dpkg's weight of one character: digits 0 (never weighed), letters their code,
    ``~`` -1, the end 0, anything else its code + 256."""
    if not char:
        return 0
    if char.isascii() and char.isdigit():
        return 0
    if char.isascii() and char.isalpha():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _isdigit(char: str) -> bool:
    return "0" <= char <= "9" if char else False


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating non-digit runs (by _deb_order) and numbers."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not _isdigit(a[i])) or (j < len(b) and not _isdigit(b[j])):
            ac = _deb_order(a[i] if i < len(a) else "")
            bc = _deb_order(b[j] if j < len(b) else "")
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and j < len(b) and _isdigit(a[i]) and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and _isdigit(a[i]):
            return 1
        if j < len(b) and _isdigit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def compare_deb(a: str, b: str) -> int:
    """dpkg's order of two versions: -1 if ``a`` is older, 0 if equal, 1 if newer."""
    a_epoch, a_upstream, a_revision = _deb_parse(a)
    b_epoch, b_upstream, b_revision = _deb_parse(b)
    if a_epoch != b_epoch:
        return -1 if a_epoch < b_epoch else 1
    return _sign(_verrevcmp(a_upstream, b_upstream)) or _sign(_verrevcmp(a_revision, b_revision))


# ---- rpm: rpmio/rpmvercmp.c (rpmvercmp) and lib/rpmver.c (rpmverParse, rpmverCmp) ----


def _alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def rpmvercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp of two version (or release) strings: -1, 0 or 1."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not _alnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < len(b) and not _alnum(b[j]) and b[j] not in "~^":
            j += 1
        ac = a[i] if i < len(a) else ""
        bc = b[j] if j < len(b) else ""
        # A tilde sorts before everything, the end included.
        if ac == "~" or bc == "~":
            if ac != "~":
                return 1
            if bc != "~":
                return -1
            i += 1
            j += 1
            continue
        # A caret sorts after the end, and before anything else.
        if ac == "^" or bc == "^":
            if not ac:
                return -1
            if not bc:
                return 1
            if ac != "^":
                return 1
            if bc != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ac and bc):
            break
        start_a, start_b = i, j
        if _isdigit(ac):
            while i < len(a) and _isdigit(a[i]):
                i += 1
            while j < len(b) and _isdigit(b[j]):
                j += 1
            numeric = True
        else:
            while i < len(a) and a[i].isascii() and a[i].isalpha():
                i += 1
            while j < len(b) and b[j].isascii() and b[j].isalpha():
                j += 1
            numeric = False
        one, two = a[start_a:i], b[start_b:j]
        # Segments of different kinds: the numeric one is newer.
        if not two:
            return 1 if numeric else -1
        if numeric:
            one, two = one.lstrip("0"), two.lstrip("0")
            if len(one) != len(two):
                return 1 if len(one) > len(two) else -1
        if one != two:
            return 1 if one > two else -1
    rest_a, rest_b = i < len(a), j < len(b)
    if not rest_a and not rest_b:
        return 0
    return 1 if rest_a else -1


def _rpm_parse(evr: str) -> tuple[str, str, str | None]:
    """(epoch, version, release) as rpmverParse splits ``[epoch:]version[-release]``."""
    digits = len(evr) - len(evr.lstrip("0123456789"))
    if evr[digits : digits + 1] == ":":
        epoch, rest = evr[:digits] or "0", evr[digits + 1 :]
    else:
        epoch, rest = "0", evr
    version, hyphen, release = rest.rpartition("-")
    if not hyphen:
        return epoch, rest, None
    return epoch, version, release


def compare_rpm(a: str, b: str) -> int:
    """rpm's order of two ``[epoch:]version[-release]``: -1, 0 or 1 (rpmverCmp: a missing
    epoch is 0; a missing release sorts before any release)."""
    a_epoch, a_version, a_release = _rpm_parse(a)
    b_epoch, b_version, b_release = _rpm_parse(b)
    order = rpmvercmp(a_epoch, b_epoch) or rpmvercmp(a_version, b_version)
    if order:
        return order
    if a_release is None or b_release is None:
        return (a_release is not None) - (b_release is not None)
    return rpmvercmp(a_release, b_release)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)
