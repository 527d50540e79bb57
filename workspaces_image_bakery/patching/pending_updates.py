"""The stack's pending-updates document: which packages on a template have a pending
security update. Run by the patch check through Run Command; changes nothing on the
template but the package index (``apt-get update`` / dnf's metadata cache).

- apt (Ubuntu, Debian): ``apt-get update``, then the packages ``apt-get -s dist-upgrade``
  (a simulation) would install from a suite whose name ends in ``-security`` (Ubuntu's
  ``jammy-security``, Debian's ``bookworm-security``). The simulation's ``Inst`` lines name
  the package, the installed version in brackets and the new one with its suites.
- dnf (Rocky, RHEL): ``dnf updateinfo list --security``: advisories of type security for
  installed packages that have a newer version (``--available`` is dnf's default). This
  reads the repositories' updateinfo metadata: a repository that publishes none shows no
  security update.

Each pending package is one ``==> bakery pending: <package> <new version>`` line, then a
``==> bakery pending count: N`` line.
"""

from __future__ import annotations

from typing import Final

from ..core.runtime_assets import patching_contract

PENDING: Final = patching_contract.PENDING_LINE
COUNT: Final = patching_contract.COUNT_LINE

# One shell script (bash, as Run Command's aws:runShellScript runs it).
PENDING_UPDATES_COMMANDS: Final = (
    "set -u",
    "export DEBIAN_FRONTEND=noninteractive LC_ALL=C",
    "found=$(mktemp)",
    "trap 'rm -f \"$found\"' EXIT",
    "if command -v apt-get >/dev/null 2>&1; then",
    "  apt-get update -qq >/dev/null || { echo 'apt-get update failed' >&2; exit 1; }",
    "  apt-get -s -o Debug::NoLocking=1 dist-upgrade \\",
    '    | awk \'/^Inst / && /-security/ {v=$3; if (v ~ /^\\[/) v=$4; gsub(/[()]/, "", v);'
    ' print $2 " " v}\' > "$found"',
    "elif command -v dnf >/dev/null 2>&1; then",
    "  dnf -q updateinfo list --security 2>/dev/null \\",
    '    | awk \'NF >= 3 && $2 ~ /Sec/ {print $3 " " $1}\' | sort -u > "$found"',
    "elif command -v yum >/dev/null 2>&1; then",
    "  yum -q updateinfo list security 2>/dev/null \\",
    '    | awk \'NF >= 3 && $2 ~ /Sec/ {print $3 " " $1}\' | sort -u > "$found"',
    "else",
    "  echo 'no apt-get, dnf or yum on this template' >&2; exit 1",
    "fi",
    f"sed 's/^/{PENDING}/' \"$found\"",
    f'echo "{COUNT}$(wc -l < "$found" | tr -d " ")"',
)


def pending_updates_document() -> dict[str, object]:
    """The SSM Command document (schema 2.2) the stack creates once."""
    return {
        "schemaVersion": "2.2",
        "description": "workspaces-image-bakery: list pending security updates",
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "listPendingSecurityUpdates",
                "inputs": {"runCommand": list(PENDING_UPDATES_COMMANDS), "timeoutSeconds": "900"},
            }
        ],
    }
