"""OpenPGP keys made in the tests, with the real gpg (a vendor's key and another one)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def gpg(home: Path, *args: str) -> str:
    """gpg in batch mode with `home` as its GNUPGHOME; its standard output."""
    env = {**os.environ, "GNUPGHOME": str(home)}
    return subprocess.run(
        ["gpg", "--batch", "--quiet", *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def make_key(home: Path) -> str:
    """A new signing key (ed25519, no passphrase) in a new `home`; its fingerprint."""
    home.mkdir(mode=0o700)
    gpg(home, "--passphrase", "", "--quick-gen-key", "Vendor <v@example.com>", "ed25519", "sign")
    line = next(
        x for x in gpg(home, "--with-colons", "--list-keys").splitlines() if x.startswith("fpr:")
    )
    return line.split(":")[9]
