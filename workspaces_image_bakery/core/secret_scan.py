"""No secrets in the image or its metadata: every user-supplied string goes through
detect-secrets (its default plugins and filters) and through a few rules for passwords on
command lines that detect-secrets' defaults miss. A hit is a synth error that names the
field and the kind of secret, never the secret itself."""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.metadata
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .cache_folder import default_cache_dir, write_atomically

BASIC_AUTH: Final = "Basic Auth Credentials"  # detect-secrets' own name: hits merge
COMMAND_LINE_PASSWORD: Final = "Password on a command line"  # noqa: S105 (a kind)
AWS_SECRET_KEY: Final = "AWS secret access key"  # noqa: S105 (a kind)
HEADER_SECRET: Final = "Secret in an HTTP header"  # noqa: S105 (a kind)
DOCKER_AUTH: Final = "Docker registry auth"
PRIVATE_KEY_PART: Final = "Private key (its last line)"

# Command-line rules. Each names the secret in the group "secret"; see _is_reference for
# the values that are references to a secret rather than the secret.
_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    # scheme://user:password@host (https, ftp, git+ssh, ...). A port (example.com:8080)
    # has no "@" after it, and "/" ends the password, so paths and ports never match.
    (
        BASIC_AUTH,
        re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]+:(?P<secret>[^\s/@'\"]+)@"),
    ),
    # curl/wget style user:password after -u or --user (-uadmin:pw, --user=admin:pw,
    # --proxy-user). Only after the flag: tags (role:dev) and images (repo:tag) are not
    # credentials. uid:gid and user:group (docker run -u 1000:1000, --user app:app) are
    # dropped in _user_and_group.
    (
        BASIC_AUTH,
        re.compile(
            r"(?:^|\s)(?:-u\s*|--(?:proxy-)?user(?:\s+|=))['\"]?"
            r"(?P<user>[^\s:'\"]+):(?P<secret>[^\s'\"]+)"
        ),
    ),
    # --password x, --password=x, --db-password x, -pass x (openssl -pass pass:x). The word
    # must end right after the name: --password-file /path and --password-stdin never match.
    (
        COMMAND_LINE_PASSWORD,
        re.compile(
            r"(?:^|\s)--?(?:[A-Za-z0-9]+[-_])*(?:password|passwd|pass)(?:\s+|=)['\"]?"
            r"(?:pass:)?(?P<secret>[^\s'\"]+)",
            re.IGNORECASE,
        ),
    ),
    # PASSWORD=x, db_passwd = x, export MYSQL_PWD=x (bare PWD is the working directory).
    (
        COMMAND_LINE_PASSWORD,
        re.compile(
            r"(?:^|[\s;&|])"
            r"(?:(?:[A-Za-z0-9]+_)*(?:password|passwd|passphrase)|(?:[A-Za-z0-9]+_)+pwd)"
            r"[ \t]*=[ \t]*['\"]?(?P<secret>[^\s'\"]+)",
            re.IGNORECASE,
        ),
    ),
    # sshpass -p secret (sshpass -e and -f read it from the environment or a file).
    (
        COMMAND_LINE_PASSWORD,
        re.compile(r"\bsshpass\b(?:\s+-[^p\s]\S*)*\s+-p\s*['\"]?(?P<secret>[^\s'\"]+)"),
    ),
    # aws configure set aws_secret_access_key <key>, and the key after the name with a
    # space, "=" or ":" (detect-secrets' keyword detector needs "=" or ":").
    (
        AWS_SECRET_KEY,
        re.compile(
            r"(?i)\b(?:aws_secret_access_key|aws_session_token|secret_access_key)"
            r"(?:\s+|\s*[=:]\s*)['\"]?(?P<secret>[A-Za-z0-9/+=]{16,})"
        ),
    ),
    # A bare 40-character AWS secret access key: base64 letters of both cases and a digit,
    # "/" or "+" (a hex digest has one case only, so a SHA-1 never matches).
    (
        AWS_SECRET_KEY,
        re.compile(
            r"(?<![A-Za-z0-9/+])(?P<secret>(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])"
            r"(?=[A-Za-z0-9/+]*[0-9/+])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
    ),
    # curl -H 'Authorization: Bearer x', -H 'X-Api-Key: x', --header "X-Secret: x".
    (
        HEADER_SECRET,
        re.compile(
            r"(?i)(?:-H|--header)\s*['\"]?(?:authorization|proxy-authorization|"
            r"[A-Za-z0-9-]*(?:secret|token|api-?key|auth)[A-Za-z0-9-]*)\s*:\s*"
            r"(?:(?:bearer|basic|token)\s+)?(?P<secret>[^\s'\"]+)"
        ),
    ),
    # A docker config's "auth" (base64 of user:password) or "identitytoken", written inline.
    (
        DOCKER_AUTH,
        re.compile(r'(?i)"(?:auth|identitytoken)"\s*:\s*"(?P<secret>[A-Za-z0-9+/_.-]{8,}={0,2})"'),
    ),
    # The end of a private key written line by line (detect-secrets flags its BEGIN line
    # only): the key's lines come before it.
    (
        PRIVATE_KEY_PART,
        re.compile(r"-----(?P<secret>END (?:[A-Z0-9]+ )*PRIVATE KEY)-----"),
    ),
    # mysql -psecret: only the attached form (with a space mysql prompts for the password
    # and the next word is the database).
    (
        COMMAND_LINE_PASSWORD,
        re.compile(
            r"\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b[^;&|\n]*?\s-p"
            r"(?P<secret>[^\s'\"]+)"
        ),
    ),
)
# $VAR, ${VAR}, $(cmd), <placeholder>, {{ template }}, the next flag, or openssl's
# env:/file:/fd:/stdin: each names where the secret comes from, not the secret.
_REFERENCE: Final = re.compile(r"^(?:[$<-]|\{\{|(?:env|file|fd):|stdin$)", re.IGNORECASE)
# Commands whose -u/--user takes user:group, not user:password.
_USER_GROUP_COMMANDS: Final = frozenset({"docker", "podman", "nerdctl", "chown", "chroot"})


# Lines of earlier scans in which detect-secrets found nothing (each scan's lines are one
# file): a persona's image and bundle repeat its tags and names, personas share keys and
# defaults, and the next synth of the same app reads the same lines. The command-line
# rules still read every line.
# Only lines that cannot take part in a YAML structure with their neighbours (no leading
# space, no ":" or "#", no indicator first) are remembered, and only from files with no
# allowlist pragma: skipping them changes no other line's context that detect-secrets reads.
# They are kept by digest (never as text), in this process and in the cache folder
# (see _clean_lines_file), for the same detect-secrets version and the same rules only.
_CLEAN_LINES: set[str] = set()
_NEW_CLEAN_LINES: set[str] = set()  # found clean here, not yet in the cache file
MAX_CLEAN_LINES: Final = 100_000
_INERT_LINE: Final = re.compile(r"^[^\s\-?:,\[\]{}#&*!|>'\"%@`][^:#]*$")
_LOADED: list[Path | None] = []  # the cache file read in this process (None: no cache)
_DIGEST: Final = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class SecretHit:
    """What one field holds: the kinds of secret, and the flagged parts (never shown)."""

    kinds: tuple[str, ...]
    secrets: tuple[str, ...]


@functools.lru_cache(maxsize=4096)
def command_line_secrets(line: str) -> tuple[tuple[str, str], ...]:
    """(kind, secret) for every password the command-line rules find in `line` (a pure
    function of the line, kept for the lines a persona's image and bundle repeat)."""
    found: list[tuple[str, str]] = []
    for kind, rule in _RULES:
        for match in rule.finditer(line):
            secret = match.group("secret")
            if _is_reference(secret) or _user_and_group(line, match):
                continue
            found.append((kind, secret))
    return tuple(found)


def scan(values: Mapping[str, str]) -> dict[str, SecretHit]:
    """Field -> what the scan found in its value (fields without secrets are absent)."""
    lines = [
        (field, line)
        for field, value in values.items()
        if isinstance(value, str)
        for line in value.splitlines()
        if line.strip()
    ]
    if not lines:
        return {}
    kinds: dict[str, list[str]] = {}
    secrets: dict[str, list[str]] = {}

    def note(field: str, kind: str, secret: str | None) -> None:
        if kind not in kinds.setdefault(field, []):
            kinds[field].append(kind)
        if secret and secret not in secrets.setdefault(field, []):
            secrets[field].append(secret)

    # detect-secrets reads only the lines it has not found clean before in this process.
    fresh = _fresh_lines(lines)
    if fresh:
        # Imported on the first fresh line, not with the package: only a synth needs it.
        from detect_secrets.core.secrets_collection import SecretsCollection  # noqa: PLC0415
        from detect_secrets.settings import default_settings  # noqa: PLC0415

        # YAML lines: detect-secrets then also applies its keyword detector ("password: ...").
        path = _scan_folder() / "inputs.yaml"
        text = "".join(f"{line}\n" for line, _ in fresh)
        path.write_text(text, encoding="utf-8", errors="replace")
        with default_settings():
            collection = SecretsCollection()
            collection.scan_file(str(path))
        found = False
        for _, potential in collection:
            found = True
            for field in fresh[potential.line_number - 1][1]:
                note(field, potential.type, potential.secret_value)
        if not found and len(_CLEAN_LINES) < MAX_CLEAN_LINES and "pragma" not in text:
            clean = {_digest(line) for line, _ in fresh if _INERT_LINE.match(line)}
            _NEW_CLEAN_LINES.update(clean - _CLEAN_LINES)
            _CLEAN_LINES.update(clean)
    for field, line in lines:
        for kind, secret in command_line_secrets(line):
            note(field, kind, secret)
    return {field: SecretHit(tuple(kinds[field]), tuple(secrets.get(field, ()))) for field in kinds}


def _fresh_lines(lines: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """The lines detect-secrets has to read, in order, each with the fields it is in. A line
    found clean before is left out, and an inert line (see _INERT_LINE) is written once
    however many fields hold it (a persona's name is also its Name tag); any other line
    keeps its place, so YAML reads the same structure."""
    _load_clean_lines()
    fresh: list[tuple[str, list[str]]] = []
    inert: dict[str, list[str]] = {}
    for field, line in lines:
        if _digest(line) in _CLEAN_LINES:
            continue
        if line in inert:
            inert[line].append(field)
            continue
        fresh.append((line, [field]))
        if _INERT_LINE.match(line):
            inert[line] = fresh[-1][1]
    return fresh


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _clean_lines_file() -> Path:
    """The cache file of clean lines for this detect-secrets version and these rules (this
    module's source): a new version of either starts an empty file."""
    try:
        version = importlib.metadata.version("detect-secrets")
    except importlib.metadata.PackageNotFoundError:
        version = "none"
    rules = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(f"{version}\n{rules}".encode()).hexdigest()[:16]
    return default_cache_dir() / f"clean-lines-{key}.txt"


def _load_clean_lines() -> None:
    """Read the cache file once a process (a missing or unreadable one is empty), and keep
    what this process finds clean there when it exits."""
    if _LOADED:
        return
    try:
        path: Path | None = _clean_lines_file()
    except (OSError, RuntimeError):
        path = None  # no source file to key it by, or no home folder: this process only
    _LOADED.append(path)
    if path is None:
        return
    atexit.register(save_clean_lines)
    try:
        known = path.read_text(encoding="ascii").split()
    except (OSError, ValueError):
        return
    _CLEAN_LINES.update(d for d in known[:MAX_CLEAN_LINES] if _DIGEST.match(d))


def save_clean_lines() -> None:
    """Add the digests of the lines this process found clean to the cache file (written
    beside it and moved into place; a cache folder that cannot be written is left alone).
    Run at exit; the file keeps at most MAX_CLEAN_LINES digests."""
    path = _LOADED[0] if _LOADED else None
    if path is None or not _NEW_CLEAN_LINES:
        return
    try:
        kept = {d for d in path.read_text(encoding="ascii").split() if _DIGEST.match(d)}
    except (OSError, ValueError):
        kept = set()
    digests = kept | _NEW_CLEAN_LINES
    if len(digests) > MAX_CLEAN_LINES:
        digests = set(sorted(_NEW_CLEAN_LINES)[:MAX_CLEAN_LINES])
    try:
        write_atomically(path, "".join(f"{digest}\n" for digest in sorted(digests)).encode())
    except OSError:
        return
    _NEW_CLEAN_LINES.clear()


_SCAN_FOLDER: list[Path] = []


def _scan_folder() -> Path:
    """The process's one private temporary folder for the scanned file (detect-secrets
    scans files), removed at exit: no folder made and removed per scan."""
    if not _SCAN_FOLDER:
        folder = tempfile.TemporaryDirectory()
        atexit.register(folder.cleanup)
        _SCAN_FOLDER.append(Path(folder.name))
    return _SCAN_FOLDER[0]


def find_secrets(values: Mapping[str, str]) -> dict[str, list[str]]:
    """Field -> the kinds of secret found in its value."""
    return {field: list(hit.kinds) for field, hit in scan(values).items()}


def _is_reference(secret: str) -> bool:
    return bool(_REFERENCE.match(secret))


def _user_and_group(line: str, match: re.Match[str]) -> bool:
    """user:group after -u/--user of a container or ownership command, or uid:gid: no
    password (docker run -u 1000:1000, podman run --user app:staff)."""
    user = match.groupdict().get("user")
    if user is None:
        return False
    secret = match.group("secret")
    if secret == user or (user.isdigit() and secret.isdigit()):
        return True
    command = re.split(r"[;&|\n]", line[: match.start()])[-1].split()
    return bool(_USER_GROUP_COMMANDS.intersection(command))
