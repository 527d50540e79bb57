"""cfn-lint on a synthesized template, in the test process: the same rules, Region
(us-east-1) and findings as the `cfn-lint` command, whose start-up (sympy and the resource
specifications, some 4 s) each test process then pays once instead of once per template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def errors(template: Path | dict[str, Any]) -> list[str]:
    """cfn-lint's errors on `template` (a file or a template's JSON), each as
    "rule path: message"; warnings and informational findings are left out, as the tests
    that ran the command left them out."""
    from cfnlint.api import lint

    text = template.read_text() if isinstance(template, Path) else json.dumps(template)
    return [
        f"{match.rule.id} {'/'.join(map(str, match.path))}: {match.message}"
        for match in lint(text)
        if match.rule.severity == "error"
    ]
