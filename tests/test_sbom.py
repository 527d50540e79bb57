"""The image's SBOM: the package inventory as CycloneDX 1.6, the package diff between two
images in dpkg's and rpm's own version order, and the layer that brings the SBOM's library
to the Lambda function.

The real tools are the references: this machine's dpkg-query lists a real inventory,
``dpkg --compare-versions`` and rpm's ``rpm.vercmp`` judge the generated versions, and
cyclonedx-python-lib's own validator checks the documents against the 1.6 schema.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bakery_runtime.evidence.sbom import (
    PACKAGE_QUERY,
    Package,
    build_sbom,
    parse_inventory,
    read_sbom,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from workspaces_image_bakery.evidence import sbom_layer
from workspaces_image_bakery.evidence.package_diff import (
    PackageDiff,
    PackageRef,
    VersionChange,
    compare_deb,
    compare_rpm,
    diff_sboms,
    package_diff,
    packages_of_sbom,
    rpmvercmp,
    sbom_family,
)

from .harness import cyclonedx_schema

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "workspaces_image_bakery" / "lambda"

WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
UBUNTU = ("ubuntu", "22.04", "deb")  # os-release ID and VERSION_ID, package family
ROCKY = ("rocky", "9.4", "rpm")

# What `rpm -qa` prints on a Rocky Linux 9 template: an epoch, two kernels side by side,
# a package of two architectures and a signing key (no architecture).
RPM_INVENTORY = """\
bash\t0:5.1.8-9.el9\tx86_64
openssl-libs\t1:3.0.7-27.el9\tx86_64
kernel\t0:5.14.0-427.13.1.el9_4\tx86_64
kernel\t0:5.14.0-427.16.1.el9_4\tx86_64
glibc\t0:2.34-100.el9_4.2\tx86_64
glibc\t0:2.34-100.el9_4.2\ti686
tzdata\t0:2024a-1.el9\tnoarch
gpg-pubkey\t0:350d275d-6279464b\t(none)
bash\t0:5.1.8-9.el9\tx86_64
"""


def _sbom(packages: list[Package], os_: tuple[str, str, str], *, timestamp: datetime = WHEN) -> str:
    os_id, os_version, family = os_
    return build_sbom(
        packages,
        image_name="ubuntu-dev-2025-03",
        persona="developer",
        os_id=os_id,
        os_version=os_version,
        family=family,
        timestamp=timestamp,
    )


def _validate(document: str) -> None:
    assert cyclonedx_schema.errors(document) == []


@pytest.fixture(scope="module")
def dpkg_inventory() -> str:
    if shutil.which("dpkg-query") is None:
        pytest.skip("dpkg-query is not on this machine")
    return subprocess.run(
        ["bash", "-c", PACKAGE_QUERY["deb"]], capture_output=True, text=True, check=True
    ).stdout


# ---- the SBOM ----


@cyclonedx_schema.VALIDATES
def test_deb_sbom_of_this_machine_validates_and_round_trips(dpkg_inventory: str) -> None:
    packages = parse_inventory(dpkg_inventory, "deb")
    assert len(packages) > 50
    assert packages == sorted(set(packages))
    dpkg = next(p for p in packages if p.name == "dpkg")
    document = _sbom(packages, UBUNTU)
    _validate(document)
    assert read_sbom(document) == packages
    assert packages_of_sbom(document) == [
        PackageRef(*(p.name, p.version, p.arch)) for p in packages
    ]
    assert sbom_family(document) == "deb"
    parsed = json.loads(document)
    assert parsed["specVersion"] == "1.6"
    assert parsed["metadata"]["timestamp"] == "2025-03-04T05:06:07+00:00"
    image = parsed["metadata"]["component"]
    assert image["name"] == "ubuntu-dev-2025-03"
    assert {"name": "workspaces-image-bakery:persona", "value": "developer"} in image["properties"]
    purls = {c["purl"] for c in parsed["components"]}
    version = dpkg.version.replace("+", "%2B")
    assert f"pkg:deb/ubuntu/dpkg@{version}?arch={dpkg.arch}&distro=ubuntu-22.04" in purls
    # Every package is a dependency of the image, by its purl.
    (root,) = [d for d in parsed["dependencies"] if d["ref"] == image["bom-ref"]]
    assert set(root["dependsOn"]) == purls


def test_the_sbom_is_deterministic_and_its_serial_follows_its_inputs() -> None:
    packages = parse_inventory(
        "installed\tbash\t5.1-6ubuntu1.1\tamd64\ninstalled\tlibc6\t2.35-0ubuntu3.8\tamd64\n", "deb"
    )
    first = _sbom(packages, UBUNTU)
    assert _sbom(list(reversed(packages)), UBUNTU) == first
    serial = json.loads(first)["serialNumber"]
    assert serial.startswith("urn:uuid:")
    later = _sbom(packages, UBUNTU, timestamp=datetime(2025, 3, 5, tzinfo=UTC))
    fewer = _sbom(packages[:1], UBUNTU)
    assert len({serial, json.loads(later)["serialNumber"], json.loads(fewer)["serialNumber"]}) == 3
    with pytest.raises(ValueError, match="time zone"):
        _sbom(packages, UBUNTU, timestamp=datetime(2025, 3, 5))


@cyclonedx_schema.VALIDATES
def test_dpkg_lines_of_packages_not_on_disk_are_left_out() -> None:
    # dpkg-query lists removed packages whose configuration files remain (config-files).
    inventory = (
        "installed\tfirefox\t1:1snap1-0ubuntu2\tamd64\n"
        "config-files\tlinux-image-5.15.0-91-generic\t5.15.0-91.101\tamd64\n"
        "half-configured\tcups\t2.4.1op1-1ubuntu4.10\tamd64\n"
        "installed\tlibc6\t2.35-0ubuntu3.8\ti386\n"
        "installed\tlibc6\t2.35-0ubuntu3.8\tamd64\n"
    )
    assert [(p.name, p.arch) for p in parse_inventory(inventory, "deb")] == [
        ("cups", "amd64"),
        ("firefox", "amd64"),
        ("libc6", "amd64"),
        ("libc6", "i386"),
    ]
    document = _sbom(parse_inventory(inventory, "deb"), UBUNTU)
    _validate(document)
    # A Debian epoch stays in the purl's version (the deb purl type).
    assert "pkg:deb/ubuntu/firefox@1:1snap1-0ubuntu2?arch=amd64&distro=ubuntu-22.04" in document


@cyclonedx_schema.VALIDATES
def test_rpm_sbom_validates_and_round_trips() -> None:
    packages = parse_inventory(RPM_INVENTORY, "rpm")
    assert len(packages) == 8  # the repeated bash line counts once
    assert Package("openssl-libs", "1:3.0.7-27.el9", "x86_64") in packages
    assert Package("bash", "5.1.8-9.el9", "x86_64") in packages  # an epoch of 0 is left out
    assert Package("gpg-pubkey", "350d275d-6279464b", "") in packages
    document = _sbom(packages, ROCKY)
    _validate(document)
    assert read_sbom(document) == packages
    purls = {c["purl"] for c in json.loads(document)["components"]}
    assert "pkg:rpm/rocky/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rocky-9.4&epoch=1" in purls
    assert "pkg:rpm/rocky/bash@5.1.8-9.el9?arch=x86_64&distro=rocky-9.4" in purls
    assert "pkg:rpm/rocky/gpg-pubkey@350d275d-6279464b?distro=rocky-9.4" in purls
    rhel = build_sbom(
        packages,
        image_name="i",
        persona="p",
        os_id="rhel",
        os_version="9.4",
        family="rpm",
        timestamp=WHEN,
    )
    assert "pkg:rpm/redhat/bash@5.1.8-9.el9?arch=x86_64&distro=rhel-9.4" in rhel


def test_the_rpm_query_format_on_a_real_rpm_database(tmp_path: Path) -> None:
    """rpm prints the fields PACKAGE_QUERY asks for: two packages built with rpmbuild,
    one with an epoch, recorded in a database of their own."""
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        pytest.skip("rpm and rpmbuild are not on this machine (apt-get install rpm)")
    for name, epoch in (("demo-epoch", "Epoch: 3\n"), ("demo-plain", "")):
        spec = tmp_path / f"{name}.spec"
        spec.write_text(
            f"Name: {name}\n{epoch}Version: 1.4.2\nRelease: 3.el9\nSummary: t\n"
            "License: MIT\nBuildArch: noarch\n%description\nt\n%files\n"
        )
        subprocess.run(
            ["rpmbuild", "--define", f"_topdir {tmp_path / 'top'}", "-bb", str(spec)],
            capture_output=True,
            check=True,
        )
    database = tmp_path / "db"
    database.mkdir()
    rpms = sorted(str(p) for p in (tmp_path / "top").rglob("*.rpm"))
    subprocess.run(
        ["rpm", "--dbpath", str(database), "--justdb", "--nodeps", "--ignorearch", "-i", *rpms],
        capture_output=True,
        check=True,
    )
    query = PACKAGE_QUERY["rpm"].replace("rpm -qa", f"rpm --dbpath {database} -qa", 1)
    listed = subprocess.run(["bash", "-c", query], capture_output=True, text=True, check=True)
    assert parse_inventory(listed.stdout, "rpm") == [
        Package("demo-epoch", "3:1.4.2-3.el9", "noarch"),
        Package("demo-plain", "1.4.2-3.el9", "noarch"),
    ]


@pytest.mark.parametrize(
    ("family", "inventory", "line"),
    [
        # The three-field format (no status) is not what the deb query prints.
        ("deb", "installed\tbash\t5.1-6\tamd64\nbash\t5.1-6\tamd64\n", 2),
        ("deb", "installed\tbash\t5.1-6\tamd64\n\nkaput\tcoreutils\t8.32-4\tamd64\n", 3),
        ("deb", "installed\tBash\t5.1-6\tamd64\n", 1),
        ("deb", "installed\tbash\t5.1 6\tamd64\n", 1),
        ("deb", "installed\tbash\t5.1-6\t\n", 1),
        ("deb", "installed\tbash\t5.1-\tamd64\n", 1),
        ("deb", "installed\tbash\t1.0:2\tamd64\n", 1),
        ("rpm", "bash\t0:5.1.8-9.el9\tx86_64\nbash\t0:5.1.8\tx86_64\n", 2),
        ("rpm", "bash\t0:5.1.8-9.el9\n", 1),
        ("rpm", "bash\t0:5.1.8-9.el9\tx86_64\textra\n", 1),
        ("rpm", "bash\tx:5.1.8-9.el9\tx86_64\n", 1),
        ("rpm", "bash 0:5.1.8-9.el9 x86_64\n", 1),
    ],
)
def test_malformed_inventory_lines_are_refused_with_their_number(
    family: str, inventory: str, line: int
) -> None:
    with pytest.raises(ValueError, match=rf"^{family} inventory line {line}: "):
        parse_inventory(inventory, family)


def test_an_empty_inventory_or_an_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="no installed package"):
        parse_inventory("\n", "deb")
    with pytest.raises(ValueError, match="no installed package"):
        parse_inventory("config-files\tbash\t5.1-6\tamd64\n", "deb")
    with pytest.raises(ValueError, match="expected one of deb, rpm"):
        parse_inventory("bash\t1\tx\n", "apk")


# ---- version order: dpkg ----

_DEB_CHARS = "0123456789ab.+~"
deb_versions = st.builds(
    lambda epoch, upstream, revision: f"{epoch}{upstream}{revision}",
    st.sampled_from(["", "", "0:", "1:", "2:"]),
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from("0123456789"),
        st.text(alphabet=_DEB_CHARS, max_size=5),
    ),
    st.one_of(
        st.just(""),
        st.builds(
            lambda inner, revision: f"{inner}-{revision}",
            st.text(alphabet=_DEB_CHARS + "-", max_size=2),
            st.text(alphabet=_DEB_CHARS, min_size=1, max_size=4),
        ),
    ),
)
# dpkg's own tests (t-version.c) and the cases package managers trip on.
DEB_KNOWN = [
    ("1.0", "1.0"),
    ("1.9", "1.10"),
    ("1.0~rc1", "1.0"),
    ("1.0~~", "1.0~"),
    ("1:0.1", "2.0"),
    ("0:1.0", "1.0"),
    ("1.0-1", "1.0"),
    ("1.0-0", "1.0"),
    ("1.0a", "1.0+"),
    ("1.0+dfsg", "1.0.1"),
    ("2.35-0ubuntu3.8", "2.35-0ubuntu3.10"),
    ("1.002", "1.2"),
    ("1.0-1~bpo1", "1.0-1"),
]


# Each example is one batch of pairs judged by one run of the real tool. Shrinking a batch
# would run the tool hundreds of times: a failure lists the pairs that disagree instead.
BATCHES = settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _disagreements(
    pairs: list[tuple[str, str]], ours: list[int], theirs: list[int]
) -> list[tuple[str, str, int, int]]:
    return [(a, b, o, t) for (a, b), o, t in zip(pairs, ours, theirs, strict=True) if o != t]


def _dpkg_order(pairs: list[tuple[str, str]]) -> list[int]:
    """dpkg --compare-versions on each pair, in one shell loop: -1, 0 or 1."""
    loop = (
        'while read -r a b; do dpkg --compare-versions "$a" lt "$b"; r=$?; '
        'if [ $r = 0 ]; then echo -1; elif [ $r != 1 ]; then echo "error $a $b"; '
        'elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done'
    )
    done = subprocess.run(
        ["sh", "-c", loop],
        input="".join(f"{a} {b}\n" for a, b in pairs),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == len(pairs), done.stderr
    assert not [line for line in lines if line.startswith("error")], done.stderr
    return [int(line) for line in lines]


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


@BATCHES
@given(st.lists(st.tuples(deb_versions, deb_versions), min_size=150, max_size=150))
def test_deb_order_agrees_with_dpkg(pairs: list[tuple[str, str]]) -> None:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not on this machine")
    pairs = pairs + DEB_KNOWN + [(b, a) for a, b in DEB_KNOWN] + [(a, a) for a, _ in pairs[:20]]
    ours = [_sign(compare_deb(a, b)) for a, b in pairs]
    assert _disagreements(pairs, ours, _dpkg_order(pairs)) == []


# ---- version order: rpm ----

_RPM_CHARS = "0123456789ab.~^_+"
rpm_versions = st.builds(
    lambda epoch, version, release: f"{epoch}{version}{release}",
    st.sampled_from(["", "", "0:", "1:", "2:"]),
    st.text(alphabet=_RPM_CHARS, min_size=1, max_size=6),
    st.one_of(
        st.just(""),
        st.text(alphabet=_RPM_CHARS, min_size=1, max_size=4).map(lambda r: f"-{r}"),
    ),
)


def _rpm_has_vercmp() -> bool:
    if shutil.which("rpm") is None:
        return False
    probe = subprocess.run(
        ["rpm", "--eval", '%{lua: io.write(rpm.vercmp("1.0", "1.0a"))}'],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() == "-1"


def _rpm_order(pairs: list[tuple[str, str]], folder: Path) -> list[int]:
    """rpm's own rpm.vercmp (rpmverCmp of two [E:]V[-R]) on each pair, one rpm process."""
    script = folder / "vercmp.lua"
    script.write_text(
        "".join(f'io.write(rpm.vercmp([==[{a}]==], [==[{b}]==]), "\\n")\n' for a, b in pairs)
    )
    done = subprocess.run(
        ["rpm", "--eval", f"%{{lua: dofile('{script}')}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.split()
    assert len(lines) == len(pairs), done.stderr
    return [int(line) for line in lines]


@BATCHES
@given(st.lists(st.tuples(rpm_versions, rpm_versions), min_size=150, max_size=150))
def test_rpm_order_agrees_with_rpm(pairs: list[tuple[str, str]]) -> None:
    if not _rpm_has_vercmp():
        pytest.skip("no rpm with rpm.vercmp in its Lua here (apt-get install rpm)")
    pairs = pairs + [(a, a) for a, _ in pairs[:20]] + [(a, b) for a, b, _ in RPMVERCMP_AT]
    with tempfile.TemporaryDirectory() as folder:
        theirs = _rpm_order(pairs, Path(folder))
    assert _disagreements(pairs, [compare_rpm(a, b) for a, b in pairs], theirs) == []


# rpm's own cases (tests/rpmvercmp.at in rpm's repository), with the "oddities" it
# documents as current behaviour.
RPMVERCMP_AT = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1), ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0), ("2.0.1a", "2.0.1", 1), ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0), ("5.5p1", "5.5p2", -1), ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0), ("5.5p1", "5.5p10", -1), ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1), ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0), ("xyz10", "xyz10.1", -1), ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0), ("xyz.4", "8", -1), ("8", "xyz.4", 1), ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1), ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1), ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1), ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1), ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0), ("1.0a", "1.0aa", -1), ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0), ("10.0001", "10.1", 0), ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1), ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1), ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0), ("20101121", "20101122", -1), ("20101122", "20101121", 1),
    ("2_0", "2_0", 0), ("2.0", "2_0", 0), ("2_0", "2.0", 0),
    ("a", "a", 0), ("a+", "a+", 0), ("a+", "a_", 0), ("a_", "a+", 0), ("+a", "+a", 0),
    ("+a", "_a", 0), ("_a", "+a", 0), ("+_", "+_", 0), ("_+", "+_", 0), ("_+", "_+", 0),
    ("+", "_", 0), ("_", "+", 0),
    ("1.0~rc1", "1.0~rc1", 0), ("1.0~rc1", "1.0", -1), ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0), ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    ("1.0^", "1.0^", 0), ("1.0^", "1.0", 1), ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0), ("1.0^git1", "1.0", 1), ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1), ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1), ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0), ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1), ("1.0^20160101^git1", "1.0^20160102", -1),
    ("1.0~rc1^git1", "1.0~rc1^git1", 0), ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0), ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
    ("1b.fc17", "1b.fc17", 0), ("1b.fc17", "1.fc17", -1), ("1.fc17", "1b.fc17", 1),
    ("1g.fc17", "1g.fc17", 0), ("1g.fc17", "1.fc17", 1), ("1.fc17", "1g.fc17", -1),
]  # fmt: skip


@pytest.mark.parametrize(("a", "b", "expected"), RPMVERCMP_AT)
def test_rpmvercmp_matches_rpms_published_cases(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert compare_rpm(a, b) == expected


def test_rpm_epoch_and_release_order() -> None:
    assert compare_rpm("1:1.0-1", "2.0-1") == 1
    assert compare_rpm("0:1.0-1", "1.0-1") == 0
    assert compare_rpm("1.0-1.el9", "1.0-1.el9_4") == -1
    assert compare_rpm("1.0-1", "1.0") == 1  # a release sorts after none (rpmverCmp)
    with pytest.raises(ValueError, match="Debian version"):
        compare_deb("x:1.0", "1.0")


# ---- the package diff ----


def test_package_diff_between_two_deb_sboms() -> None:
    old = [
        Package("bash", "5.1-6ubuntu1", "amd64"),
        Package("curl", "7.81.0-1ubuntu1.15", "amd64"),
        Package("firefox", "2:120.0", "amd64"),  # epoch 2 beats any epoch-1 version
        Package("libc6", "2.35-0ubuntu3.8", "amd64"),
        Package("libc6", "2.35-0ubuntu3.8", "i386"),
        Package("openssl", "3.0.2-0ubuntu1.9", "amd64"),
        Package("telnet", "0.17-44build1", "amd64"),
        Package("zoom", "5.17.9", "amd64"),
    ]
    new = [
        Package("bash", "5.1-6ubuntu1", "amd64"),
        Package("curl", "7.81.0-1ubuntu1.16~rc1", "amd64"),  # ~ before the end: still newer
        Package("firefox", "1:130.0", "amd64"),
        Package("libc6", "2.35-0ubuntu3.10", "amd64"),  # 3.10 after 3.8, unlike strings
        Package("libc6", "2.35-0ubuntu3.8", "i386"),
        Package("openssl", "3.0.2-0ubuntu1.9~", "amd64"),  # ~: before 1.9 itself
        Package("vim", "2:8.2.3995-1ubuntu2.15", "amd64"),
        Package("zoom", "5.17.10", "amd64"),
    ]
    old_sbom, new_sbom = _sbom(old, UBUNTU), _sbom(new, UBUNTU)
    expected = PackageDiff(
        added=(PackageRef("vim", "2:8.2.3995-1ubuntu2.15", "amd64"),),
        removed=(PackageRef("telnet", "0.17-44build1", "amd64"),),
        upgraded=(
            VersionChange("curl", "amd64", "7.81.0-1ubuntu1.15", "7.81.0-1ubuntu1.16~rc1"),
            VersionChange("libc6", "amd64", "2.35-0ubuntu3.8", "2.35-0ubuntu3.10"),
            VersionChange("zoom", "amd64", "5.17.9", "5.17.10"),
        ),
        downgraded=(
            VersionChange("firefox", "amd64", "2:120.0", "1:130.0"),
            VersionChange("openssl", "amd64", "3.0.2-0ubuntu1.9", "3.0.2-0ubuntu1.9~"),
        ),
    )
    assert diff_sboms(old_sbom, new_sbom) == expected
    # The runtime's packages, plain tuples and the SBOMs' packages give the same diff.
    assert package_diff(old, new, family="deb") == expected
    as_tuples = [(p.name, p.version, p.arch) for p in new]
    assert package_diff(packages_of_sbom(old_sbom), as_tuples, family="deb") == expected
    assert diff_sboms(new_sbom, new_sbom).unchanged


def test_package_diff_between_two_rpm_sboms() -> None:
    old = parse_inventory(RPM_INVENTORY, "rpm")
    # 2024a to 2024b, and 9.el9 to 10.el9: numeric, not string, order.
    changed = (
        RPM_INVENTORY.replace("kernel\t0:5.14.0-427.13.1.el9_4\tx86_64\n", "")
        .replace("0:2024a-1.el9", "0:2024b-1.el9")
        .replace("bash\t0:5.1.8-9.el9", "bash\t0:5.1.8-10.el9")
    )
    new = parse_inventory(
        changed
        + "kernel\t0:5.14.0-427.18.1.el9_4\tx86_64\n"
        + "openssl-libs\t1:3.0.7-27.el9\ti686\n",
        "rpm",
    )
    diff = diff_sboms(_sbom(old, ROCKY), _sbom(new, ROCKY))
    assert diff == PackageDiff(
        # Two kernels installed side by side: one replaced, not "upgraded".
        added=(
            PackageRef("kernel", "5.14.0-427.18.1.el9_4", "x86_64"),
            PackageRef("openssl-libs", "1:3.0.7-27.el9", "i686"),
        ),
        removed=(PackageRef("kernel", "5.14.0-427.13.1.el9_4", "x86_64"),),
        upgraded=(
            VersionChange("bash", "x86_64", "5.1.8-9.el9", "5.1.8-10.el9"),
            VersionChange("tzdata", "noarch", "2024a-1.el9", "2024b-1.el9"),
        ),
        downgraded=(),
    )
    with pytest.raises(ValueError, match="cannot compare a deb SBOM with a rpm one"):
        diff_sboms(_sbom([Package("bash", "5.1-6", "amd64")], UBUNTU), _sbom(old, ROCKY))


# ---- the layer ----


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_the_layer_alone_builds_the_sbom_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """Only the standard library, the staged layer and the runtime folder on sys.path
    (no site-packages: -I -S), and the SBOM is the one built here, byte for byte. The
    SBOM module needs no boto3, so the child has none: stricter than Lambda."""
    layer = sbom_layer.sbom_layer_folder(tmp_path / "cache")
    inventory = (
        "installed\tbash\t5.1-6ubuntu1.1\tamd64\ninstalled\tvim\t2:8.2.3995-1ubuntu2.15\tamd64\n"
    )
    child = f"""
import sys
assert sys.flags.isolated and sys.flags.no_site
assert not [p for p in sys.path if "site-packages" in p or "dist-packages" in p], sys.path
sys.path[:0] = [{str(layer / "python")!r}, {str(LAMBDA_DIR)!r}]
from datetime import datetime, timezone
import importlib.metadata
from bakery_runtime.evidence import sbom
import cyclonedx, packageurl
for module in (cyclonedx, packageurl):
    assert module.__file__.startswith({str(layer)!r}), module.__file__
assert importlib.metadata.version("cyclonedx-python-lib") == cyclonedx.__version__
packages = sbom.parse_inventory(sys.stdin.read(), "deb")
sys.stdout.write(sbom.build_sbom(packages, image_name="ubuntu-dev-2025-03", persona="developer",
    os_id="ubuntu", os_version="22.04", family="deb",
    timestamp=datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)))
"""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", child],
        input=inventory,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == _sbom(parse_inventory(inventory, "deb"), UBUNTU)


def test_the_layer_is_cached_by_distribution_versions_and_holds_only_sources(
    tmp_path: Path,
) -> None:
    first = sbom_layer.sbom_layer_folder(tmp_path / "a")
    assert sbom_layer.sbom_layer_folder(tmp_path / "a") == first
    second = sbom_layer.sbom_layer_folder(tmp_path / "b")
    assert first.name == second.name
    assert _tree_digest(first) == _tree_digest(second)  # the CDK asset hash is stable
    names = dict(sbom_layer.layer_distributions())
    assert set(names) >= {
        "cyclonedx-python-lib",
        "packageurl-python",
        "py-serializable",
        "license-expression",
        "boolean-py",
        "defusedxml",
        "sortedcontainers",
        "typing-extensions",  # Lambda's Python 3.12 needs it, whatever Python synthesizes
    }
    assert "jsonschema" not in names  # the validation extra is for the tests only
    files = [p.relative_to(first) for p in first.rglob("*") if p.is_file()]
    assert all(p.parts[0] == "python" for p in files)
    assert not [p for p in files if "__pycache__" in p.parts or p.suffix in {".pyc", ".so"}]
    assert not [p for p in files if p.name in {"RECORD", "INSTALLER", "direct_url.json"}]
    assert (first / "python" / "cyclonedx" / "__init__.py").is_file()
    assert list(tmp_path.glob("*/.staging-*")) == []
    # Whatever imported from the folder (and left bytecode there) does not change it.
    cached = first / "python" / "cyclonedx" / "__pycache__"
    cached.mkdir()
    (cached / "__init__.cpython-312.pyc").write_bytes(b"stale")
    assert sbom_layer.sbom_layer_folder(tmp_path / "a") == first
    assert _tree_digest(first) == _tree_digest(second)


def test_the_layers_closure_is_read_again_only_when_a_version_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names and versions of the staged closure are kept beside the layer: a synth
    whose installed versions all match reads no requirements (no `packaging`), and a
    changed, missing or unreadable record makes the closure be found again."""
    cache = tmp_path / "cache"
    folder = sbom_layer.sbom_layer_folder(cache)
    (record,) = cache.glob("sbom-layer-*.closure.json")
    assert json.loads(record.read_text()) == dict(sbom_layer.layer_distributions())
    found_again: list[object] = []
    closure = sbom_layer._closure

    def counted(roots: object) -> object:
        found_again.append(roots)
        return closure(roots)  # type: ignore[arg-type]

    monkeypatch.setattr(sbom_layer, "_closure", counted)
    assert sbom_layer.sbom_layer_folder(cache) == folder
    assert found_again == []
    kept = json.loads(record.read_text())
    changed: object
    for changed in (
        {**kept, "defusedxml": "0.0.1"},  # another version installed since
        {**kept, "no-such-distribution": "1.0"},  # one uninstalled since
        [],
        "not json",
    ):
        record.write_text(changed if isinstance(changed, str) else json.dumps(changed))
        assert sbom_layer.sbom_layer_folder(cache) == folder
        assert len(found_again) == 1
        assert json.loads(record.read_text()) == kept  # written again, as installed
        found_again.clear()
    assert list(cache.glob(".staging-*")) == []


def test_the_layer_zip_holds_the_folder_and_is_the_same_bytes_everywhere(tmp_path: Path) -> None:
    """The stack's layer is the folder packed once into a zip beside it: every file of the
    folder (no bytecode) under python/, and the same bytes from another cache, so the CDK
    asset's hash does not depend on the machine or on when the folder was staged."""
    import zipfile

    first = sbom_layer.sbom_layer_zip(tmp_path / "a")
    folder = sbom_layer.sbom_layer_folder(tmp_path / "a")
    assert first == folder.with_name(f"{folder.name}.zip")
    cached = folder / "python" / "cyclonedx" / "__pycache__"
    cached.mkdir()
    (cached / "__init__.cpython-312.pyc").write_bytes(b"stale")
    second = sbom_layer.sbom_layer_zip(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert sbom_layer.sbom_layer_zip(tmp_path / "a") == first  # made once
    with zipfile.ZipFile(first) as archive:
        packed = {info.filename: archive.read(info) for info in archive.infolist()}
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        # Stored (deflated bytes differ between zlib builds), made on "Unix" everywhere.
        assert {(info.compress_type, info.create_system) for info in archive.infolist()} == {
            (zipfile.ZIP_STORED, 3)
        }
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert packed == files
    assert all(name.startswith("python/") for name in packed)
    assert list(tmp_path.glob("*/.staging-*")) == []


def test_the_layer_refuses_missing_or_compiled_distributions(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="needs the distribution no-such-distribution"):
        sbom_layer.sbom_layer_folder(tmp_path, distributions=["no-such-distribution"])
    # rpds-py (a dependency of the schema validator) is compiled.
    with pytest.raises(RuntimeError, match=r"rpds-py .* holds a compiled file"):
        sbom_layer.sbom_layer_folder(tmp_path, distributions=["rpds-py"])
    assert list(tmp_path.iterdir()) == []


def test_layer_markers_are_read_for_lambdas_pythons() -> None:
    needed = sbom_layer._needed_on_lambda
    assert needed(Requirement('typing_extensions>=4.6; python_version < "3.13"'), {""})
    assert not needed(Requirement('tomli; python_version < "3.11"'), {""})
    assert not needed(Requirement('jsonschema; extra == "json-validation"'), {""})
    assert needed(Requirement('jsonschema; extra == "json-validation"'), {"", "json-validation"})
    assert not needed(Requirement('pywin32; sys_platform == "win32"'), {""})
