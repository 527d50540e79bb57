"""The seal: the build's last command on the template WorkSpace before CreateWorkspaceImage.

The preparation script cleans down, but then the build reboots the template and runs the
validation through SSM Run Command, and the template keeps running: by the time the image is
taken its root volume holds the template's identity again (and some of it never left). The
seal, run as root through SSM Run Command after the reboot and the validation, takes off the
root volume what must not be in the image, then checks from the file system that each item
is gone:

- ``ssh-host-keys``: ``/etc/ssh/ssh_host_*key*`` (moved to the stash, below);
- ``machine-id``: ``/etc/machine-id`` emptied (systemd makes a new one at the next boot) and a
  ``/var/lib/dbus/machine-id`` that is a file of its own;
- ``cloud-init-state``: ``/var/lib/cloud/{instance,instances,data,sem}``;
- ``shell-histories``: the histories (``script.HISTORIES``) in ``/root``, in every home
  ``/etc/passwd`` names (system users' too) and in ``/home/*``;
- ``logs``: every file under ``/var/log`` emptied, rotated logs deleted;
- ``journal``: the journal under ``/var/log/journal`` (journald is first told to write to
  ``/run`` until the next boot, ``journalctl --relinquish-var``);
- ``agent-enrolment:<name>``: Puppet's, Chef's and Salt's enrolment (``ENROLMENT``) and
  each declared agent's ``identity_paths``;
- ``ssm-agent-output``: the SSM agent's logs (``/var/log/amazon/ssm``) and its documents'
  state and output (``/var/lib/amazon/ssm/mi-*``);
- ``ssm-registration``: ``/var/lib/amazon/ssm/{registration,Vault,runtimeconfig}``.

The last two cannot go while the seal runs: the agent runs the seal, writes its output under
``mi-*`` and still has to report it; and the template must stay registered to serve the
next build. So the seal defers them. It writes a small script to ``/run`` (a tmpfs, never in
an image) and schedules it with ``systemd-run --on-active=SEAL_DEFER_SECONDS`` as a
transient unit of its own (outside the agent's cgroup, so stopping the agent does not stop
it). That deferred step waits until the agent holds no document in progress (the seal's
result is reported), stops the agent's units (``boot_units.SSM_AGENT_UNITS``), moves the
registration, Vault and runtimeconfig into the stash, deletes the agent's logs and document
output, and empties again the log lines written since the seal (the agent's reply, its
stop). It creates nothing but the stash. The build waits ``SEAL_SETTLED_SECONDS`` after the
seal reported before it calls CreateWorkspaceImage.

Why the stash is on ``/home``: a Linux WorkSpace has two volumes, the root volume (``/``),
"which is saved as the image", and the user volume (``/home``), "which is created for each
new user" (the whitepaper, "File locations for application configuration"; this
project's design notes: imaging captures the root volume, not ``/home``). What the seal
moves to ``/home/.workspaces-image-bakery-template/`` (mode 700, root's) therefore stays on
the template and never reaches the image. The seal checks that ``/home`` is another file
system than ``/`` (``stat -c %d``); where it is not, nothing is stashed and those items are
reported present. At the template's next boot the restore unit (``boot_units``) moves the
registration and host keys back before the SSM agent and sshd start, records the template's
new machine-id and deletes the stash; on a WorkSpace made from the image no stash exists and
it does nothing. Not verified here: that CreateWorkspaceImage leaves the template's own user
volume as it was (the stash would then be lost and the template would need registering
again), and that the service reboots the template after the image (until it does, the
template is offline for Systems Manager: RebootWorkspaces brings it back).

Contract with the build runtime (keep both sides in step):

- one line per item, in ``seal_items(preparation)`` order, on stdout:
  ``SEAL_MARKER + "<item> absent"``, ``SEAL_MARKER + "<item> present <path>"`` (the first
  leftover, as a path on the WorkSpace) or, for ``DEFERRED_ITEMS`` only,
  ``SEAL_MARKER + "<item> deferred"``;
- the last line ``SEALED_OK`` and exit 0 when every item is absent or deferred, otherwise
  ``SEALED_FAILED + "<item> <item> ..."`` and exit 1 (``preflight`` when the seal could not
  start: not root, or a bad ``BAKERY_ROOT``; exit 2);
- ``BAKERY_ROOT`` (default empty) prefixes every path, like the preparation script, so tests
  run it in a throw-away root. There the separate-volume check is skipped and the deferred
  step is scheduled with ``--setenv=BAKERY_ROOT=<root>`` (it never acts on ``/``).

The deferral is scheduled only when every other item is absent: a seal that fails leaves the
registration where it was, so the template still answers the next build. Running it again is
safe: what is gone stays gone, a pending deferred step is replaced.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .boot_units import (
    SSM_AGENT_UNITS,
    SSM_REGISTRATION,
    SSM_STATE_DIR,
    TEMPLATE_STASH_DIR,
    UNIT_EXISTS_FUNCTION,
)
from .script import HISTORIES, ROTATED_LOG

if TYPE_CHECKING:
    from .model import ImagePreparation

SEAL_MARKER: Final = "==> bakery seal: "
SEALED_MARKER: Final = "==> bakery sealed: "
SEALED_OK: Final = f"{SEALED_MARKER}ok"
SEALED_FAILED: Final = f"{SEALED_MARKER}failed "
ABSENT: Final = "absent"
PRESENT: Final = "present"
DEFERRED: Final = "deferred"
PREFLIGHT: Final = "preflight"
AGENT_ENROLMENT: Final = "agent-enrolment:"

# Enrolment material of the configuration-management tools the whitepaper names, wherever
# their packages keep it, whether or not the preparation declares the agent.
ENROLMENT: Final[dict[str, tuple[str, ...]]] = {
    # puppetlabs packages / Debian and Ubuntu packages (ssldir /var/lib/puppet/ssl).
    "puppet": ("/etc/puppetlabs/puppet/ssl", "/var/lib/puppet/ssl"),
    "chef": ("/etc/chef/client.pem",),
    "salt": ("/etc/salt/pki/minion", "/etc/salt/minion_id"),
}
DEFERRED_ITEMS: Final = ("ssm-agent-output", "ssm-registration")
SEAL_ITEMS: Final = (
    "ssh-host-keys",
    "machine-id",
    "cloud-init-state",
    "shell-histories",
    "logs",
    "journal",
    *(f"{AGENT_ENROLMENT}{name}" for name in ENROLMENT),
    *DEFERRED_ITEMS,
)
"""The items every seal reports; ``seal_items`` adds one per declared agent with
``identity_paths``."""

CLOUD_INIT_STATE: Final = tuple(
    f"/var/lib/cloud/{name}" for name in ("instance", "instances", "data", "sem")
)
SSM_LOG_DIR: Final = "/var/log/amazon/ssm"
SEAL_DEFERRED_SCRIPT: Final = "/run/workspaces-image-bakery/seal-deferred"
SEAL_DEFERRED_UNIT: Final = "workspaces-image-bakery-seal-deferred"
SEAL_DEFER_SECONDS: Final = 20
"""How long after the seal the deferred step starts (the agent reports meanwhile)."""
SEAL_AGENT_WAIT_SECONDS: Final = 120
"""How long the deferred step waits at most for the agent to finish its documents."""
SEAL_SETTLED_SECONDS: Final = SEAL_DEFER_SECONDS + SEAL_AGENT_WAIT_SECONDS + 100
"""How long the build waits after the seal reported before CreateWorkspaceImage: the delay,
the wait for the agent, and systemd's default 90 s to stop a unit, with a margin."""

_LINE: Final = re.compile(r"(?P<item>\S+) (?P<state>absent|present|deferred)(?: (?P<path>.+))?")


def seal_items(preparation: ImagePreparation) -> tuple[str, ...]:
    """The items the seal of `preparation` reports, in order."""
    return tuple(dict.fromkeys([*SEAL_ITEMS[:-2], *_declared(preparation), *DEFERRED_ITEMS]))


def _declared(preparation: ImagePreparation) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for agent in preparation.agents:
        if agent.identity_paths:
            item = f"{AGENT_ENROLMENT}{agent.name}"
            found[item] = tuple(dict.fromkeys([*found.get(item, ()), *agent.identity_paths]))
    return found


def _enrolment(preparation: ImagePreparation) -> dict[str, tuple[str, ...]]:
    paths = {f"{AGENT_ENROLMENT}{name}": list(p) for name, p in ENROLMENT.items()}
    for item, declared in _declared(preparation).items():
        paths[item] = list(dict.fromkeys([*paths.get(item, []), *declared]))
    return {item: tuple(p) for item, p in paths.items()}


PRELUDE: Final = r"""set -Euo pipefail
shopt -s nullglob
umask 077
cd /

R="${BAKERY_ROOT:-}"
R="${R%/}"
seal_start=$(date +%s.%N)
stash="$R$STASH"
ssm="$R$SSM"
failed=()

say() { printf '%s%s\n' "$SEAL" "$*"; }

# report ITEM [LEFTOVER]: the item is absent, or present (its first leftover, as a path on the
# WorkSpace).
report() {
  if [[ -n ${2:-} ]]; then
    say "$1 present ${2#"$R"}"
    failed+=("$1")
  else
    say "$1 absent"
  fi
}

# existing PATH...: the first PATH that exists.
existing() {
  local path
  for path in "$@"; do
    if [[ -e $path || -L $path ]]; then
      printf '%s\n' "$path"
      return 0
    fi
  done
}

# in_logs FIND-ARGS...: the files under /var/log that match, outside the journal and the SSM
# agent's logs (their own items).
in_logs() {
  if [[ ! -d $R/var/log ]]; then return 0; fi
  find "$R/var/log" \( -path "$R/var/log/journal" -o -path "$R$SSM_LOGS" \) -prune \
    -o -type f "$@"
}

# The stash must be on another file system than the root volume, which the image holds.
stash_volume() {
  if [[ -n $R ]]; then return 0; fi
  if [[ ! -d /home ]]; then
    echo "seal: /home is missing: nothing can be stashed" >&2
    return 1
  fi
  if [[ $(stat -c %d /) == "$(stat -c %d /home)" ]]; then
    echo "seal: /home is on the root volume: a stash there would be in the image" >&2
    return 1
  fi
  if [[ -L $stash ]] || { [[ -e $stash ]] && [[ ! -d $stash ]]; }; then
    echo "seal: $stash is not a folder" >&2
    return 1
  fi
}

make_stash() {
  mkdir -p "$stash/$1" && chmod 700 "$stash" "$stash/$1"
}
"""


def render_seal_script(preparation: ImagePreparation) -> str:
    """The seal of `preparation`'s template as a bash script (module docstring: the contract)."""
    q = shlex.quote
    enrolment = _enrolment(preparation)
    items = seal_items(preparation)
    histories = " ".join(q(h) for h in HISTORIES)
    registration = " ".join(SSM_REGISTRATION)
    cloud = " ".join(f'"$R{path}"' for path in CLOUD_INIT_STATE)
    out = [
        "#!/usr/bin/env bash",
        "# The seal of the template WorkSpace (workspaces-image-bakery): the build's last command",
        "# before CreateWorkspaceImage, run as root through SSM Run Command. It takes the",
        "# template's identity, histories and logs off the root volume and reports each item:",
        f"# {SEAL_MARKER}<item> absent|present <path>|deferred, then {SEALED_OK} (exit 0) or",
        f"# {SEALED_FAILED}<items> (exit 1). Safe to run again. BAKERY_ROOT prefixes every path.",
        f"# Items: {' '.join(items)}",
        f"SEAL={q(SEAL_MARKER)}",
        f"SEALED={q(SEALED_MARKER)}",
        f"STASH={q(TEMPLATE_STASH_DIR)}",
        f"SSM={q(SSM_STATE_DIR)}",
        f"SSM_LOGS={q(SSM_LOG_DIR)}",
        f"DEFERRED_SCRIPT={q(SEAL_DEFERRED_SCRIPT)}",
        PRELUDE.rstrip("\n"),
        "",
        "if [[ -n $R ]]; then",
        "  if [[ $R != /* || ! -d $R ]]; then",
        '    echo "seal: BAKERY_ROOT must be an absolute path to a folder" >&2',
        f"    printf '%sfailed %s\\n' \"$SEALED\" {PREFLIGHT}",
        "    exit 2",
        "  fi",
        "elif [[ $EUID -ne 0 ]]; then",
        '  echo "seal: run this as root (the build runs it through SSM Run Command)" >&2',
        f"  printf '%sfailed %s\\n' \"$SEALED\" {PREFLIGHT}",
        "  exit 2",
        "fi",
        "stash_ok=1",
        "stash_volume || stash_ok=0",
        "",
        "# ssh-host-keys: to the stash (the restore unit gives them back to the template).",
        'keys=("$R"/etc/ssh/ssh_host_*key*)',
        "if (( stash_ok && ${#keys[@]} > 0 )) && make_stash ssh; then",
        '  mv -f -- "${keys[@]}" "$stash/ssh/"',
        "fi",
        'report ssh-host-keys "$(existing "$R"/etc/ssh/ssh_host_*key*)"',
        "",
        "# machine-id: emptied, so systemd makes a new one at the next boot (on the template the",
        "# restore unit records it); only with a stash, which brings the restore.",
        'dbus_id="$R/var/lib/dbus/machine-id"',
        "if (( stash_ok )); then",
        '  if [[ -s $R/etc/machine-id ]]; then truncate -s 0 -- "$R/etc/machine-id"; fi',
        '  if [[ -f $dbus_id && ! -L $dbus_id ]]; then rm -f -- "$dbus_id"; fi',
        "fi",
        'leftover=""',
        'if [[ -s $R/etc/machine-id ]]; then leftover="$R/etc/machine-id"',
        "elif [[ -f $dbus_id && ! -L $dbus_id ]]; then leftover=$dbus_id",
        "fi",
        'report machine-id "$leftover"',
        "",
        "# cloud-init-state: the instance's state (cloud-init runs as a new instance next).",
        f"cloud=({cloud})",
        'rm -rf -- "${cloud[@]}"',
        'report cloud-init-state "$(existing "${cloud[@]}")"',
        "",
        "# shell-histories: root's, every /etc/passwd home's (system users' too), /home/*'s.",
        'homes=("$R/root" "$R"/home/*/)',
        "if [[ -f $R/etc/passwd ]]; then",
        "  while IFS=: read -r _ _ _ _ _ home _; do",
        '    if [[ $home == /* && -d $R$home ]]; then homes+=("$R$home"); fi',
        '  done < "$R/etc/passwd"',
        "fi",
        f"histories=({histories})",
        "history_files=()",
        'for home in "${homes[@]}"; do',
        '  home="${home%/}"',
        '  for name in "${histories[@]}"; do history_files+=("$home/$name"); done',
        "done",
        'leftover=$(existing "${history_files[@]}")',
        'if [[ -n $leftover ]]; then rm -rf -- "${history_files[@]}"; fi',
        'report shell-histories "$(existing "${history_files[@]}")"',
        "",
        "# logs: rotated logs deleted, every other log emptied. A line written after the seal",
        "# started (a daemon still runs) is the deferred step's; what is older is a leftover.",
        f"in_logs -regextype posix-extended -regex {q(ROTATED_LOG)} -exec rm -f -- {{}} +",
        "in_logs -size +0 -exec truncate -s 0 -- {} +",
        'report logs "$(in_logs \\( -size +0 -o -regextype posix-extended -regex '
        + q(ROTATED_LOG)
        + ' \\) ! -newermt "@$seal_start" -print -quit)"',
        "",
        "# journal: journald writes to /run until the next boot, then the files go.",
        'journal="$R/var/log/journal"',
        "if [[ -d $journal ]]; then",
        "  if [[ -z $R ]]; then",
        "    journalctl --relinquish-var > /dev/null 2>&1 ||",
        "      journalctl --rotate > /dev/null 2>&1 || true",
        "  fi",
        '  rm -rf -- "${journal:?}"/*',
        "fi",
        'leftover=""',
        "if [[ -d $journal ]]; then",
        '  leftover=$(find "$journal" -mindepth 1 ! -newermt "@$seal_start" -print -quit)',
        "fi",
        'report journal "$leftover"',
        "",
    ]
    for item, paths in enrolment.items():
        words = " ".join(f'"$R"{q(p)}' for p in paths)
        out += [
            f"# {item}: the agent enrols as the new WorkSpace at its first boot.",
            f"enrolment=({words})",
            'rm -rf -- "${enrolment[@]}"',
            f'report {q(item)} "$(existing "${{enrolment[@]}}")"',
            "",
        ]
    out += [
        "# ssm-agent-output and ssm-registration: deferred, after the agent has reported this",
        "# command (see the deferred script), and only when everything else is gone.",
        "registration=()",
        f"for name in {registration}; do",
        '  if [[ -e $ssm/$name ]]; then registration+=("$ssm/$name"); fi',
        "done",
        'output=$(existing "$ssm"/mi-* "$ssm"/i-*)',
        "if [[ -z $output && -d $R$SSM_LOGS ]]; then",
        '  output=$(find "$R$SSM_LOGS" -type f -size +0 -print -quit)',
        "fi",
        "deferred=0",
        "if [[ -n $output || ${#registration[@]} -gt 0 ]] && (( stash_ok && ${#failed[@]} == 0 ))",
        "then",
        '  if mkdir -p "$R${DEFERRED_SCRIPT%/*}" && write_deferred > "$R$DEFERRED_SCRIPT" &&',
        '     chmod 700 "$R$DEFERRED_SCRIPT" && schedule_deferred; then',
        "    deferred=1",
        "  else",
        '    echo "seal: the deferred step could not be scheduled" >&2',
        "  fi",
        "fi",
        "for item in ssm-agent-output ssm-registration; do",
        "  if [[ $item == ssm-agent-output ]]; then leftover=$output",
        '  else leftover="${registration[0]:-}"; fi',
        "  if [[ -n $leftover ]] && (( deferred )); then",
        '    say "$item deferred"',
        "  else",
        '    report "$item" "$leftover"',
        "  fi",
        "done",
        "",
        "if (( ${#failed[@]} == 0 )); then",
        "  printf '%sok\\n' \"$SEALED\"",
        "  exit 0",
        "fi",
        'printf \'%sfailed %s\\n\' "$SEALED" "${failed[*]}"',
        "exit 1",
    ]
    functions = [
        "",
        "# The deferred step's script, written to /run (a tmpfs: never in an image).",
        "write_deferred() {",
        "  cat <<'BAKERY_DEFERRED'",
        deferred_script().rstrip("\n"),
        "BAKERY_DEFERRED",
        "}",
        "",
        "# A transient timer and service of their own, outside the SSM agent's cgroup; one",
        "# still pending from an earlier seal is replaced.",
        "schedule_deferred() {",
        f"  local unit={SEAL_DEFERRED_UNIT} setenv=()",
        "  if [[ -n $R ]]; then",
        '    setenv=(--setenv="BAKERY_ROOT=$R")',
        "  else",
        '    systemctl stop "$unit.timer" "$unit.service" > /dev/null 2>&1 || true',
        '    systemctl reset-failed "$unit.timer" "$unit.service" > /dev/null 2>&1 || true',
        "  fi",
        '  systemd-run --quiet --unit="$unit" --collect \\',
        "    --description='Seal the template WorkSpace: stash its SSM registration "
        "(workspaces-image-bakery)' \\",
        f'    --on-active={SEAL_DEFER_SECONDS} --timer-property=AccuracySec=1s "${{setenv[@]}}" \\',
        '    /bin/bash "$R$DEFERRED_SCRIPT"',
        "}",
        "",
    ]
    # The functions go before the items that call them.
    at = out.index("stash_ok=1")
    return "\n".join([*out[:at], *functions, *out[at:]]) + "\n"


def deferred_script() -> str:
    """The seal's deferred step (it honours ``BAKERY_ROOT`` like the seal)."""
    units = " ".join(SSM_AGENT_UNITS)
    registration = " ".join(SSM_REGISTRATION)
    return f"""#!/usr/bin/env bash
# The seal's deferred step (workspaces-image-bakery), run by a transient systemd timer
# {SEAL_DEFER_SECONDS} s after the seal reported. It waits until the SSM agent holds no
# document in progress (the seal's result is sent), stops the agent, moves its registration,
# Vault and runtimeconfig to the stash on /home (the template's user volume, which the image
# does not hold; the restore unit puts them back at the template's next boot), deletes the
# agent's logs and document output, and empties the log lines written since the seal. It
# creates nothing but the stash.
set -uo pipefail
shopt -s nullglob
R="${{BAKERY_ROOT:-}}"
R="${{R%/}}"
stash="$R{TEMPLATE_STASH_DIR}"
ssm="$R{SSM_STATE_DIR}"
{UNIT_EXISTS_FUNCTION.strip(chr(10))}

for (( waited = 0; waited < {SEAL_AGENT_WAIT_SECONDS}; waited++ )); do
  busy=("$ssm"/*/document/state/current/* "$ssm"/*/document/state/pending/*)
  if (( ${{#busy[@]}} == 0 )); then break; fi
  sleep 1
done
for unit in {units}; do
  if unit_exists "$unit"; then systemctl stop "$unit"; fi
done
moved=0
for name in {registration}; do
  if [[ ! -e $ssm/$name && ! -L $ssm/$name ]]; then continue; fi
  if (( ! moved )); then
    if ! mkdir -p "$stash/ssm" || ! chmod 700 "$stash" "$stash/ssm"; then exit 1; fi
    moved=1
  fi
  rm -rf "${{stash:?}}/ssm/$name"
  mv "$ssm/$name" "$stash/ssm/$name"
done
rm -rf "$ssm"/mi-* "$ssm"/i-* "$R{SSM_LOG_DIR}"/*
if [[ -d $R/var/log ]]; then
  find "$R/var/log" -path "$R/var/log/journal" -prune -o -type f -size +0 \\
    -exec truncate -s 0 -- {{}} +
fi
rm -rf "$R"/var/log/journal/*
"""


@dataclass(frozen=True)
class SealOutcome:
    """What a seal's output says: ``sealed`` (its last line is ``SEALED_OK``), each item's
    state and path, and the items its last line names as failed."""

    sealed: bool
    items: dict[str, tuple[str, str]]
    failed: tuple[str, ...]


def read_seal_output(stdout: str) -> SealOutcome:
    """Parse a seal's stdout (the contract in the module docstring). Output without a final
    ``sealed`` line is not sealed."""
    items: dict[str, tuple[str, str]] = {}
    last = ""
    for line in stdout.splitlines():
        if line.startswith(SEAL_MARKER):
            match = _LINE.fullmatch(line[len(SEAL_MARKER) :])
            if match:
                items[match["item"]] = (match["state"], match["path"] or "")
        elif line.startswith(SEALED_MARKER):
            last = line
    failed = tuple(last[len(SEALED_FAILED) :].split()) if last.startswith(SEALED_FAILED) else ()
    sealed = last == SEALED_OK and all(
        state == ABSENT or (state == DEFERRED and item in DEFERRED_ITEMS)
        for item, (state, _) in items.items()
    )
    return SealOutcome(sealed, items, failed)


__all__ = [
    "ABSENT",
    "AGENT_ENROLMENT",
    "DEFERRED",
    "DEFERRED_ITEMS",
    "ENROLMENT",
    "PRESENT",
    "SEALED_FAILED",
    "SEALED_MARKER",
    "SEALED_OK",
    "SEAL_DEFERRED_SCRIPT",
    "SEAL_DEFER_SECONDS",
    "SEAL_ITEMS",
    "SEAL_MARKER",
    "SEAL_SETTLED_SECONDS",
    "SealOutcome",
    "deferred_script",
    "read_seal_output",
    "render_seal_script",
    "seal_items",
]
