"""Install commands that add a vendor's apt repository, trusted only with the key whose
fingerprint is written in code: the key is downloaded, checked against the fingerprint,
and only that key is written to the repository's own keyring (``signed-by``), so apt
accepts the repository's packages only when that key signed its index. A key server or
URL that serves another key fails the script, naming the repository.

Used by the reference app for the packages Ubuntu's archive does not carry (VS Code from
Microsoft, Python 3.12 from the deadsnakes PPA, Firefox ESR from the Mozilla team PPA); the
commands are plain bash for an install step, run as root on the template.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from .signed_package import check_fingerprint, fingerprint_lines

_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
_URL = re.compile(r"^(https|file)://\S+$")
_WORD = re.compile(r"^[A-Za-z0-9./_-]{1,64}$")
KEYRINGS = "/etc/apt/keyrings"
SOURCES = "/etc/apt/sources.list.d"


@dataclass(frozen=True)
class AptRepository:
    """A vendor's apt repository.

    :param name: names its keyring (``/etc/apt/keyrings/<name>.gpg``) and its source
        (``/etc/apt/sources.list.d/<name>.list``).
    :param url: the repository (https; file:// in tests).
    :param suite: its suite (``stable``, ``jammy``), or a path ending in ``/`` for a flat
        repository (then no components).
    :param components: its components (``main``).
    :param key_url: the vendor's public key (armored or binary).
    :param fingerprint: the signing key's fingerprint (40 hex digits, spaces allowed).
    :param architectures: what apt fetches from it. Default amd64.
    """

    name: str
    url: str
    suite: str
    components: Sequence[str]
    key_url: str
    fingerprint: str
    architectures: Sequence[str] = ("amd64",)

    def __post_init__(self) -> None:
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"name={self.name!r}: lowercase letters, digits, . and -")
        for field_name in ("url", "key_url"):
            if not _URL.match(getattr(self, field_name)):
                problems.append(f"{field_name}={getattr(self, field_name)!r}: an https URL")
        problems += check_fingerprint(self.fingerprint)
        words = [self.suite, *self.components, *self.architectures]
        if not all(isinstance(w, str) and _WORD.match(w) for w in words):
            problems.append(f"suite, components, architectures={words!r}: plain words")
        flat = self.suite.endswith("/")
        if flat == bool(self.components):
            problems.append(
                f"components={list(self.components)!r}: none for a flat repository (a suite "
                "ending in /), at least one otherwise"
            )
        if problems:
            raise ValueError(f"AptRepository {self.name!r}: " + "; ".join(problems))

    @property
    def keyring(self) -> str:
        return f"{KEYRINGS}/{self.name}.gpg"

    @property
    def source_line(self) -> str:
        options = f"arch={','.join(self.architectures)} signed-by={self.keyring}"
        return " ".join(["deb", f"[{options}]", self.url, self.suite, *self.components])

    def add(self) -> str:
        """Commands that add the repository (its key checked first), then ``apt-get
        update``; any failure stops the script."""
        q = shlex.quote
        return "\n".join(
            [
                "work=$(mktemp -d)",
                f'curl -fsSL -o "$work/key" {q(self.key_url)}',
                'export GNUPGHOME="$work/gnupg"',
                'mkdir -m 700 "$GNUPGHOME"',
                'gpg --batch --quiet --import "$work/key"',
                *fingerprint_lines(self.fingerprint),
                'if ! gpg --batch --with-colons --list-keys "$want" 2>/dev/null'
                ' | grep -q "^fpr:.*:$want:\\$"; then',
                f'  echo {q(f"{self.name}: the key at {self.key_url} is not ")}"$want" >&2',
                "  exit 1",
                "fi",
                f"install -d -m 0755 {KEYRINGS}",
                # Only the pinned key (and its subkeys) goes into the repository's keyring.
                f'gpg --batch --export "$want" > {q(self.keyring)}',
                f"chmod 0644 {q(self.keyring)}",
                "unset GNUPGHOME",
                'rm -rf "$work"',
                f"echo {q(self.source_line)} > {q(f'{SOURCES}/{self.name}.list')}",
                "apt-get update",
            ]
        )
