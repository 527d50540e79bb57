"""Install commands for a vendor's Debian package that is not in an apt repository: the
package is downloaded with its detached signature and the vendor's public key, installed
only when the signature is good and made by the key with the fingerprint written here, and
only when the package is the version pinned here. A vendor's "latest" URL then cannot
change what goes into an image without a reviewed change to the pin.

Used by the reference app for the Amazon CloudWatch agent (AWS signs its packages and
publishes the key and its fingerprint; see docs/preparation.md). The commands are plain
bash for an ``Agent``'s ``install`` or an install step; they run as root on the template.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# A key fingerprint as vendors print it: 40 hex digits, in groups of four or not. It stays
# in groups in the script (the secret scan flags a long hex string) and is compared with
# its spaces removed.
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{4}( ?[0-9A-Fa-f]{4}){9}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+~:-]{1,64}$")


def check_fingerprint(fingerprint: str) -> list[str]:
    """The problem with a key fingerprint as written in code (none when it is 40 hex digits,
    in groups of four or not)."""
    if isinstance(fingerprint, str) and _FINGERPRINT.match(fingerprint):
        return []
    return [f"fingerprint={fingerprint!r}: 40 hex digits"]


def fingerprint_lines(fingerprint: str) -> list[str]:
    """Shell lines setting ``$want`` to the fingerprint, upper case without spaces (it
    stays grouped in the script: the secret scan flags a long hex string)."""
    return [f"want=$(echo {shlex.quote(fingerprint)} | tr -d ' ' | tr 'a-f' 'A-F')"]


_URL = re.compile(r"^(https|file)://\S+$")


@dataclass(frozen=True)
class SignedPackage:
    """A vendor's signed ``.deb``.

    :param name: the package's name (for messages and the download's file names).
    :param url: the package (https; file:// in tests).
    :param signature_url: its detached OpenPGP signature.
    :param key_url: the vendor's public key.
    :param fingerprint: the signing key's fingerprint (40 hex digits, spaces allowed).
    :param version: the pinned version: the package's own ``Version`` field must start with
        it, or the install fails naming the version found.
    """

    name: str
    url: str
    signature_url: str
    key_url: str
    fingerprint: str
    version: str

    def __post_init__(self) -> None:
        problems = []
        for field_name in ("url", "signature_url", "key_url"):
            if not _URL.match(getattr(self, field_name)):
                problems.append(f"{field_name}={getattr(self, field_name)!r}: an https URL")
        problems += check_fingerprint(self.fingerprint)
        if not _VERSION.match(self.version):
            problems.append(f"version={self.version!r}: a Debian version")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", self.name):
            problems.append(f"name={self.name!r}: a Debian package name")
        if problems:
            raise ValueError(f"SignedPackage {self.name!r}: " + "; ".join(problems))

    def download_and_verify(self) -> str:
        """Commands that leave the verified package at ``$work/<name>.deb``, or fail."""
        q = shlex.quote
        deb, sig, key = (f'"$work/{self.name}{suffix}"' for suffix in (".deb", ".deb.sig", ".gpg"))
        return "\n".join(
            [
                "work=$(mktemp -d)",  # 0700, a fresh name: safe in /tmp
                f"curl -fsSL -o {deb} {q(self.url)}",
                f"curl -fsSL -o {sig} {q(self.signature_url)}",
                f"curl -fsSL -o {key} {q(self.key_url)}",
                'export GNUPGHOME="$work/gnupg"',
                'mkdir -m 700 "$GNUPGHOME"',
                f"gpg --batch --quiet --import {key}",
                *fingerprint_lines(self.fingerprint),
                # VALIDSIG names the key that made a good signature; any other key, or a bad
                # signature, leaves no such line.
                f"if ! gpg --batch --status-fd 1 --verify {sig} {deb} 2>/dev/null"
                ' | grep -q "^\\[GNUPG:\\] VALIDSIG .* $want\\$"; then',
                f"  echo {q(f'{self.name}: the signature is not good, or not made by the key ')}"
                '"$want" >&2',
                "  exit 1",
                "fi",
                f"found=$(dpkg-deb -f {deb} Version)",
                f'case "$found" in {q(self.version)}*) ;; *)',
                f'  echo {q(f"{self.name}: the package is version ")}"$found"'
                f"{q(f', not the pinned {self.version}: review it, then change the pin')} >&2",
                "  exit 1 ;;",
                "esac",
                "unset GNUPGHOME",
            ]
        )

    def install(self) -> str:
        """Download, verify, install with dpkg, and remove the download."""
        return "\n".join(
            [
                self.download_and_verify(),
                f'dpkg -i -E "$work/{self.name}.deb"',
                'rm -rf "$work"',
            ]
        )
