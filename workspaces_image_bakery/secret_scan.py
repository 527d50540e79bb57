"""No secrets in the image or its metadata: every user-supplied string goes through
detect-secrets (its default plugins and filters); a hit is a synth error that names the
field and the kind of secret, never the secret itself."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings


def find_secrets(values: Mapping[str, str]) -> dict[str, list[str]]:
    """Field -> the kinds of secret detect-secrets found in its value."""
    lines = [
        (field, line)
        for field, value in values.items()
        if isinstance(value, str)
        for line in value.splitlines()
        if line.strip()
    ]
    if not lines:
        return {}
    found: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        # YAML lines: detect-secrets then also applies its keyword detector ("password: ...").
        path = Path(folder) / "inputs.yaml"
        text = "".join(f"{line}\n" for _, line in lines)
        path.write_text(text, encoding="utf-8", errors="replace")
        with default_settings():
            collection = SecretsCollection()
            collection.scan_file(str(path))
        for _, secret in collection:
            field = lines[secret.line_number - 1][0]
            kinds = found.setdefault(field, [])
            if secret.type not in kinds:
                kinds.append(secret.type)
    return found
