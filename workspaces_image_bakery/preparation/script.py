"""The preparation as one bash script, run as root on the template WorkSpace through SSM
Run Command (the build's channel), before the build reboots the WorkSpace and takes the
image.

Contract with the build runtime (do not change one without the other):

- before each step it prints ``STEP_MARKER + <step>`` on stdout;
- when a command fails, the ERR trap prints ``FAILED_MARKER + "<step> (exit <code>)"`` on
  stderr and the script exits with that code (never 0);
- the version file (``VERSION_FILE``) is written last, then ``DONE_MARKER +
  "recipe=<fingerprint>"`` is printed;
- ``BAKERY_ROOT`` (default empty) prefixes every absolute path the script reads or
  writes, so tests run it in a throw-away root.

It never reboots (the build does, with RebootWorkspaces), is idempotent (a second run
writes nothing), and fails fast (``set -Eeuo pipefail``; a missing configuration file is a
failure, never a skip).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from .agents import Agent, AgentKind
from .boot_units import (
    FIRSTBOOT_SCRIPT,
    FIRSTBOOT_SERVICE,
    IDENTITY_FUNCTIONS,
    LIBEXEC_DIR,
    RESTORE_SCRIPT,
    RESTORE_SERVICE,
    SSM_AGENT_UNITS,
    STATE_DIR,
    SUDO_PATH,
    SUDO_SCRIPT,
    SUDO_SERVICE,
    TEMPLATE_IDENTITY_FILE,
    UNIT_DIR,
    firstboot_script,
    firstboot_unit,
    remove_user_sudo_script,
    remove_user_sudo_units,
    restore_template_script,
    restore_template_unit,
)
from .desktop import KEYFILE, LOCKS, PROFILE
from .operating_systems import OPERATING_SYSTEMS, PROTOCOLS, Desktop, PackageManager

if TYPE_CHECKING:
    from .model import ImagePreparation, Problem

STEP_MARKER: Final = "==> bakery step: "
FAILED_MARKER: Final = "==> bakery failed: "
DONE_MARKER: Final = "==> bakery done: "
VERSION_FILE: Final = f"{STATE_DIR}/version"
# What the last completed preparation installed: one agent per line, "name<TAB>service".
# The next run refuses a template that carries an agent its recipe no longer declares.
AGENTS_FILE: Final = f"{STATE_DIR}/agents"
# An SSM document holds at most 64 KB; the build wraps the script in one.
MAX_SCRIPT_BYTES: Final = 60_000
SOFTWARE_SEPARATOR: Final = ", "

PATCH_COMMANDS: Final[dict[PackageManager, tuple[str, ...]]] = {
    # Two commands, not "update && upgrade": set -e ignores a failure on the left of &&.
    # Error-Mode=any: a repository that cannot be read fails the update (apt >= 2.1).
    PackageManager.APT: (
        "apt-get -o DPkg::Lock::Timeout=600 -o APT::Update::Error-Mode=any update",
        "apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef "
        "-o Dpkg::Options::=--force-confold -y --with-new-pkgs upgrade",
    ),
    PackageManager.DNF: ("dnf -y --refresh upgrade",),
    PackageManager.YUM: ("yum -y update",),  # the whitepaper's command
}
CACHE_DIRS: Final = ("/var/cache/apt", "/var/cache/dnf", "/var/cache/yum")
CREDENTIALS: Final = (
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube/config",
    ".docker/config.json",
    ".git-credentials",
    ".netrc",
    ".ssh/authorized_keys",
    ".ssh/authorized_keys2",
    ".ssh/known_hosts",
    ".ssh/known_hosts.old",
)
HISTORIES: Final = (
    ".bash_history",
    ".zsh_history",
    ".sh_history",
    ".history",
    ".python_history",
    ".lesshst",
    ".viminfo",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
    ".node_repl_history",
    ".wget-hsts",
    ".local/share/recently-used.xbel",
)
# Sockets folders of the running desktop session; tmpfiles.d recreates them at boot.
KEPT_TMP: Final = (".X11-unix", ".ICE-unix", ".font-unix", ".XIM-unix", ".Test-unix")
ROTATED_LOG: Final = r".*\.([0-9]+|gz|xz|bz2|zst|lz4|old)|.*-[0-9]{8}"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

PRELUDE: Final = r"""set -Eeuo pipefail
shopt -s nullglob
shopt -s inherit_errexit 2>/dev/null || true
umask 022
cd /

R="${BAKERY_ROOT:-}"
R="${R%/}"
bakery_step=start

# The build reads these markers; a failure names its step and exits with the command's code.
bakery_failed() {
  local code=$?
  if [[ $BASHPID != "$$" ]]; then exit "$code"; fi
  printf '%s%s (exit %s)\n' "$FAILED" "$bakery_step" "$code" >&2
  exit "$code"
}
trap bakery_failed ERR

step() {
  bakery_step=$1
  printf '%s%s\n' "$STEP" "$1"
}

die() {
  printf 'error: %s\n' "$*" >&2
  return 1
}

# A command of the preparation, in its own bash: a failing command fails its step.
run() {
  bash -e -o pipefail -c "$1"
}

# write_file PATH [MODE]: stdin becomes PATH only if it differs (parents are created).
write_file() {
  local path=$1 mode=${2:-} tmp
  mkdir -p "${path%/*}"
  tmp=$(mktemp "${path%/*}/.bakery.XXXXXX")
  cat > "$tmp"
  if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  elif [[ -f $path ]]; then
    cat "$tmp" > "$path"
    rm -f "$tmp"
  else
    mv -f "$tmp" "$path"
  fi
  if [[ -n $mode ]]; then chmod "$mode" "$path"; fi
}

# set_conf FILE GROUP KEY VALUE: one "KEY = VALUE" in [GROUP] (anywhere in a flat file when
# GROUP is empty), replacing the key's earlier values; the file must exist.
set_conf() {
  local file=$1 group=$2 key=$3 value=$4
  [[ -f $file ]] || die "$file is missing: is this WorkSpace set up for this protocol?"
  awk -v group="$group" -v key="$key" -v value="$value" '
    function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
    {
      line = trim($0)
      if (line ~ /^\[.*\]$/) {
        if (inside && !done) { print key " = " value; done = 1 }
        inside = (substr(line, 2, length(line) - 2) == group)
        if (inside) seen = 1
        print; next
      }
      if ((group == "" || inside) && index(line, "=") > 0 &&
          trim(substr(line, 1, index(line, "=") - 1)) == key) {
        if (!done) { print key " = " value; done = 1 }
        next
      }
      print
    }
    END {
      if (!done) {
        if (group != "" && !seen) print "[" group "]"
        print key " = " value
      }
    }' "$file" | write_file "$file"
}
"""


def render_script(
    preparation: ImagePreparation,
    *,
    persona: str,
    version: str,
    fingerprint: str,
    software: Sequence[str] = (),
    design: str = "",
    launch_applications: Sequence[str] = (),
) -> str:
    """The preparation as a bash script (checked with shellcheck in the tests).

    `software` is what the image's Software tag lists; the preparation's agents are added.
    `design` and `launch_applications` go into the launch facts (:func:`_launch_facts`),
    which the configuration-management agent reads on each WorkSpace at launch.
    """
    q = shlex.quote
    os_facts = OPERATING_SYSTEMS[preparation.operating_system]
    protocol = PROTOCOLS[preparation.protocol]
    out: list[str] = [
        "#!/usr/bin/env bash",
        f"# Prepares the template WorkSpace of persona {_line(persona)}, image version "
        f"{_line(version)}: {os_facts.label}, {protocol.label}.",
        "# Generated by workspaces-image-bakery. The build runs it as root on the template",
        "# WorkSpace through SSM Run Command, reboots the WorkSpace, then takes the image; the",
        "# script itself never reboots. A second run changes nothing.",
        f"# Markers: {STEP_MARKER}<step>, {FAILED_MARKER}<step> (exit <code>) on stderr,",
        f"# {DONE_MARKER}recipe=<fingerprint> after the version file, which is written last.",
        "# BAKERY_ROOT (default empty) prefixes every path it touches.",
        f"STEP={q(STEP_MARKER)}",
        f"FAILED={q(FAILED_MARKER)}",
        f"DONE={q(DONE_MARKER)}",
        PRELUDE.rstrip("\n"),
        IDENTITY_FUNCTIONS.rstrip("\n"),
        "",
    ]
    if os_facts.package_manager is PackageManager.APT:
        out += ["export DEBIAN_FRONTEND=noninteractive", ""]
    out += _preflight(preparation)
    out += _known_template(preparation)
    if preparation.patch_os:
        out += [
            "step patch-os",
            "# Whitepaper step 2: the most recent operating system patches.",
            *PATCH_COMMANDS[os_facts.package_manager],
            "",
        ]
    for index, command in enumerate(preparation.install_steps, 1):
        out += [f"step install-step-{index}", *_run(command), ""]
    out += _agents(preparation)
    out += _launch_facts(persona, version, design, launch_applications, preparation)
    out += _protocol(preparation)
    out += _desktop(preparation)
    out += _sudo(preparation)
    out += _firstboot(preparation)
    for index, command in enumerate(preparation.validation_steps, 1):
        out += [
            f"step validate-{index}",
            "# Whitepaper step 7: test the build.",
            *_run(command),
            "",
        ]
    out += _build_users(preparation)
    out += _record_agents(preparation)
    out += _clean_down()
    listed = list(dict.fromkeys([*software, *preparation.installed_software()]))
    out += _version_file(persona, version, fingerprint, listed)
    return "\n".join(out)


def _line(text: str) -> str:
    """`text` on one line, for comments and the version file."""
    return _CONTROL.sub(" ", text)


def _preflight(preparation: ImagePreparation) -> list[str]:
    facts = OPERATING_SYSTEMS[preparation.operating_system]
    os_id = facts.os_release_id
    version = facts.os_release_version
    return [
        "step preflight",
        "if [[ -n $R ]]; then",
        '  [[ $R == /* && -d $R ]] || die "BAKERY_ROOT must be an absolute path to a folder"',
        "elif [[ $EUID -ne 0 ]]; then",
        '  die "run this as root (the build runs it through SSM Run Command)"',
        "fi",
        'export BAKERY_ROOT="$R"',
        "",
        "step check-operating-system",
        '[[ -f $R/etc/os-release ]] || die "$R/etc/os-release is missing"',
        "os_field() {",
        '  awk -F= -v k="$1" \'$1 == k { v = substr($0, index($0, "=") + 1);'
        ' gsub(/^["\\047]|["\\047]$/, "", v); print v; exit }\' "$R/etc/os-release"',
        "}",
        "os_id=$(os_field ID)",
        "os_version=$(os_field VERSION_ID)",
        f"if [[ $os_id != {os_id} ||",
        f"      ( $os_version != {version} && $os_version != {version}.* ) ]]; then",
        f'  die "this is $os_id $os_version, not {facts.label} ({os_id} {version})"',
        "fi",
        "",
    ]


def _agent_lines(preparation: ImagePreparation) -> list[str]:
    return [f"{_line(a.name)}\t{a.service or ''}" for a in preparation.agents]


def _known_template(preparation: ImagePreparation) -> list[str]:
    """A template prepared before carries what that recipe installed. An agent (and its
    service) the new recipe no longer declares would stay installed and enabled in the next
    image while its version file and Software tag leave it out: the script stops, naming
    it, before it changes anything. Reset the template WorkSpace (rebuild it from its
    bundle), or remove the agent from it and from the agents file."""
    declared = sorted({a.name for a in preparation.agents})
    return [
        "step check-known-template",
        "# Agents an earlier recipe installed on this template and this one does not declare.",
        f'agents_file="$R{AGENTS_FILE}"',
        "if [[ -f $agents_file ]]; then",
        "  declared=" + shlex.quote("\n".join(declared)),
        '  removed=""',
        "  while IFS=$'\\t' read -r name service; do",
        "    [[ -n $name ]] || continue",
        "    case $'\\n'\"$declared\"$'\\n' in",
        "      *$'\\n'\"$name\"$'\\n'*) ;;",
        '      *) removed+="${removed:+, }$name${service:+ ($service)}" ;;',
        "    esac",
        '  done < "$agents_file"',
        "  if [[ -n $removed ]]; then",
        '    die "this template carries agents an earlier recipe installed that this recipe no '
        "longer declares: $removed. They would stay in the image. Reset the template WorkSpace "
        '(rebuild it), or remove them from it and from $agents_file"',
        "  fi",
        "fi",
        "",
    ]


def _record_agents(preparation: ImagePreparation) -> list[str]:
    lines = _agent_lines(preparation)
    return [
        "step record-agents",
        "# What this recipe installed: the next preparation checks the template against it.",
        "cat <<'BAKERY_AGENTS' | write_file \"$R" + AGENTS_FILE + '" 644',
        *lines,
        "BAKERY_AGENTS",
        "",
    ]


def _run(command: str) -> list[str]:
    """`run` with a declared command, quoted whole: its `$` expand in run's own bash, so
    shellcheck is told that single quotes are meant there (SC2016)."""
    directive = ["# shellcheck disable=SC2016"] if "$" in command or "`" in command else []
    return [*directive, f"run {shlex.quote(command)}"]


def _agents(preparation: ImagePreparation) -> list[str]:
    q = shlex.quote
    out: list[str] = []
    for agent in preparation.agents:
        out += [
            f"step install-agent:{agent.name}",
            f"# {agent.kind.value} agent.",
            *_run(agent.install),
            "",
        ]
    for agent in preparation.agents:
        out += [f"step check-agent:{agent.name}", *_run(agent.check), ""]
    for agent in preparation.agents:
        if not agent.service:
            continue
        service = q(agent.service)
        missing = q(f"agent {agent.name}: its service {agent.service} is not installed")
        if _held(agent):
            out += [
                f"step hold-agent:{agent.name}",
                "# Bootstrap at launch: the configuration-management agent must not run (and",
                "# enrol) as the template. Its service is stopped, disabled and masked here; the",
                "# first-boot unit of a WorkSpace made from the image unmasks, enables and starts",
                "# it, so it enrols as that WorkSpace and reads its runtime configuration (the",
                "# launch applications) from its server. A unit defined in /etc/systemd/system",
                "# itself cannot be masked: it is disabled only.",
                f"unit_exists {service} || die {missing}",
                f"if [[ -z $R ]]; then systemctl stop {service}; fi",
                f"sysd disable {service}",
                f'if [[ ! -f "$R{UNIT_DIR}/"{service} || -L "$R{UNIT_DIR}/"{service} ]]; then',
                f"  sysd mask {service}",
                "fi",
                "",
            ]
            continue
        out += [f"step enable-agent:{agent.name}"]
        if agent.kind is AgentKind.CONFIGURATION_MANAGEMENT:
            out += [
                "# The SSM agent as the configuration-management agent: it is also the build's",
                "# channel, so it stays enabled; the first-boot unit of a WorkSpace made from the",
                "# image restarts it after shedding the template's registration.",
            ]
        out += [
            f"unit_exists {service} || die {missing}",
            f"sysd enable {service}",
            "",
        ]
    return out


def _held(agent: Agent) -> bool:
    """A configuration-management agent other than the SSM agent (the build's channel): held
    (masked) on the template, started by the first-boot unit of a WorkSpace."""
    return (
        agent.kind is AgentKind.CONFIGURATION_MANAGEMENT
        and agent.service is not None
        and agent.service not in SSM_AGENT_UNITS
    )


def _protocol(preparation: ImagePreparation) -> list[str]:
    facts = PROTOCOLS[preparation.protocol]
    value = facts.clipboard_values[preparation.clipboard]
    return [
        "step configure-streaming-protocol",
        f"# {facts.label} clipboard policy: {facts.clipboard_key} = {value}",
        f"# ({facts.citation}). It takes effect when the agent starts (the build reboots).",
        f'set_conf "$R{facts.config_file}" {shlex.quote(facts.group)} '
        f"{facts.clipboard_key} {value}",
        "",
    ]


def _desktop(preparation: ImagePreparation) -> list[str]:
    q = shlex.quote
    desktop = preparation.desktop
    kind = OPERATING_SYSTEMS[preparation.operating_system].desktop
    update = 'if [[ -n $R ]]; then dconf update "$R/etc/dconf/db"; else dconf update; fi'
    out = ["step configure-desktop"]
    if desktop is None:
        return [
            *out,
            "# No desktop settings declared: remove those of an earlier preparation.",
            f'if [[ -e "$R{KEYFILE}" || -e "$R{LOCKS}" ]]; then',
            f'  rm -f "$R{KEYFILE}" "$R{LOCKS}"',
            f"  {update}",
            "fi",
            "",
        ]
    name = "GNOME" if kind is Desktop.GNOME else "MATE"
    out += [f"# {name} defaults for every user through the dconf system database 'local'."]
    if desktop.background is not None:
        out += [
            f'[[ -f "$R"{q(desktop.background)} ]] || die '
            + q(f"the background {desktop.background} is missing: install it first"),
        ]
    out += [
        f'profile="$R{PROFILE}"',
        "# user-db:user first, then system-db:local (other lines are kept).",
        "if [[ -f $profile ]]; then",
        '  awk \'{ lines[NR] = $0; t = $0; gsub(/[ \\t\\r]/, "", t)',
        '         if (t == "user-db:user") u = 1; if (t == "system-db:local") s = 1 }',
        '    END { if (!u) { print "user-db:user"; if (!s) { print "system-db:local"; s = 1 } }',
        "          for (i = 1; i <= NR; i++) { print lines[i]",
        '            t = lines[i]; gsub(/[ \\t\\r]/, "", t)',
        '            if (!s && t == "user-db:user") { print "system-db:local"; s = 1 } }',
        '          if (!s) print "system-db:local" }\' "$profile" | write_file "$profile"',
        "else",
        "  printf 'user-db:user\\nsystem-db:local\\n' | write_file \"$profile\" 644",
        "fi",
        "printf '%s\\n' \\",
        *[f"  {q(line)} \\" for line in desktop.keyfile_lines(kind)],
        f'  | write_file "$R{KEYFILE}" 644',
    ]
    locks = desktop.lock_lines(kind)
    if locks:
        out += [
            "printf '%s\\n' \\",
            *[f"  {q(line)} \\" for line in locks],
            f'  | write_file "$R{LOCKS}" 644',
        ]
    else:
        out += ["# Not locked: users may change these defaults.", f'rm -f "$R{LOCKS}"']
    return [*out, update, ""]


def _sudo(preparation: ImagePreparation) -> list[str]:
    units = remove_user_sudo_units()
    if not preparation.remove_user_sudo:
        return [
            "step keep-user-sudo",
            "# remove_user_sudo is off: take out the sudo removal of an earlier preparation.",
            f'if [[ -e "$R{UNIT_DIR}/{SUDO_SERVICE}" ]]; then',
            f"  sysd disable {SUDO_PATH} {SUDO_SERVICE}",
            f'  rm -f "$R{UNIT_DIR}/{SUDO_PATH}" "$R{UNIT_DIR}/{SUDO_SERVICE}" "$R{SUDO_SCRIPT}"',
            "fi",
            "",
        ]
    out = [
        "step remove-user-sudo",
        "# Users lose sudo now and at every boot (a unit: WorkSpaces grants its user sudo when",
        "# it provisions a WorkSpace). The build never needs sudo: it runs as root through",
        "# SSM Run Command, and root's and the SSM agent's grants are kept.",
        *_heredoc(f"$R{SUDO_SCRIPT}", "755", remove_user_sudo_script()),
    ]
    for unit, text in units.items():
        out += _heredoc(f"$R{UNIT_DIR}/{unit}", "644", text)
    return [
        *out,
        f"sysd enable {SUDO_SERVICE} {SUDO_PATH}",
        f'"$R{SUDO_SCRIPT}"',
        "",
    ]


def _firstboot(preparation: ImagePreparation) -> list[str]:
    cm_units = [
        a.service
        for a in preparation.agents
        if a.kind is AgentKind.CONFIGURATION_MANAGEMENT and a.service
    ]
    identity_paths = list(dict.fromkeys(p for a in preparation.agents for p in a.identity_paths))
    return [
        "step install-first-boot",
        "# The image must not be the template: record who the template is; a WorkSpace",
        "# launched from the image that is someone else sheds the template's SSM registration,",
        "# machine-id and agents' enrolment at its first boot (see the first-boot script).",
        f'{{ bakery_identity; printf "ssh-host-keys=%s\\n" "$(ssh_host_keys_digest)"; }} '
        f'| write_file "$R{TEMPLATE_IDENTITY_FILE}" 600',
        *_heredoc(f"$R{FIRSTBOOT_SCRIPT}", "755", firstboot_script(cm_units, identity_paths)),
        *_heredoc(f"$R{UNIT_DIR}/{FIRSTBOOT_SERVICE}", "644", firstboot_unit(cm_units)),
        f"sysd enable {FIRSTBOOT_SERVICE}",
        "",
        "step install-template-restore",
        "# The seal (the build's last command before the image) moves the template's SSM",
        "# registration and SSH host keys to its user volume; at the template's next boot",
        "# this unit puts them back. On a WorkSpace made from the image it finds nothing.",
        *_heredoc(f"$R{RESTORE_SCRIPT}", "755", restore_template_script()),
        *_heredoc(f"$R{UNIT_DIR}/{RESTORE_SERVICE}", "644", restore_template_unit()),
        f"sysd enable {RESTORE_SERVICE}",
        "",
    ]


def _build_users(preparation: ImagePreparation) -> list[str]:
    if not preparation.build_users:
        return []
    out = ["step remove-build-users", "# Whitepaper step 8: no leftover accounts."]
    for user in preparation.build_users:
        out += [
            f"if grep -q '^{user}:' \"$R/etc/passwd\"; then",
            f'  if [[ -n $R ]]; then userdel --root "$R" --force --remove {user}; '
            f"else userdel --force --remove {user}; fi",
            "fi",
            f'rm -f "$R/etc/sudoers.d/{user}"',
        ]
    return [*out, ""]


def _clean_down() -> list[str]:
    q = shlex.quote
    home_files = " ".join(f'"$home"/{q(p)}' for p in (*CREDENTIALS, *HISTORIES))
    kept_tmp = " ".join(f"! -name {q(name)}" for name in KEPT_TMP)
    caches = " ".join(f'"$R{d}"' for d in CACHE_DIRS)
    return [
        "step clean-down",
        "# Whitepaper step 8 and 'no keys or passwords in the image': credentials and",
        "# histories of root and every user, logs, package caches, temporary files.",
        "# SSH host keys stay: image creation wipes them (and the template's sshd keeps",
        "# working); the first-boot unit replaces any a WorkSpace still shares with the template.",
        'uid_min=$(awk \'$1 == "UID_MIN" { print $2 }\' "$R/etc/login.defs" 2>/dev/null || true)',
        "uid_min=${uid_min:-1000}",
        'homes=("$R/root" "$R"/home/*/)',
        "if [[ -f $R/etc/passwd ]]; then",
        "  while IFS=: read -r _ _ uid _ _ home _; do",
        "    if [[ $uid =~ ^[0-9]+$ ]] && (( uid >= uid_min )) &&",
        "       [[ $home == /?* && -d $R$home ]]; then",
        '      homes+=("$R$home")',
        "    fi",
        '  done < "$R/etc/passwd"',
        "fi",
        'for home in "${homes[@]}"; do',
        '  home="${home%/}"',
        f'  rm -rf -- {home_files} "$home"/.ssh/id_*',
        "done",
        "if [[ -d $R/var/log/journal ]]; then",
        "  # Rotation needs a running journald: on a system booted with systemd (not in a chroot).",
        "  if [[ -z $R && -d /run/systemd/system ]]; then journalctl --rotate; fi",
        '  journalctl --directory="$R/var/log/journal" --vacuum-time=1s',
        '  find "$R/var/log/journal" -mindepth 1 -delete',
        "fi",
        "if [[ -d $R/var/log ]]; then",
        "  # Rotated logs go; every other log (wtmp, btmp, lastlog included) is emptied.",
        f'  find "$R/var/log" -type f -regextype posix-extended -regex {q(ROTATED_LOG)} -delete',
        '  find "$R/var/log" -type f -size +0 -exec truncate -s 0 {} +',
        "fi",
        f"for cache in {caches}; do",
        '  if [[ -d $cache ]]; then find "$cache" -type f ! -name lock -delete; fi',
        "done",
        'for tmp in "$R/tmp" "$R/var/tmp"; do',
        "  if [[ -d $tmp ]]; then",
        f"    find \"$tmp\" -mindepth 1 -maxdepth 1 {kept_tmp} ! -name 'systemd-private-*' "
        "-exec rm -rf -- {} +",
        "  fi",
        "done",
        "",
    ]


# Where each configuration-management tool reads facts a machine brings with it, written
# only where the tool's own configuration folder exists (after the agents are installed):
# folder -> (file, how the content is wrapped). Puppet: Facter's external facts (JSON);
# Ansible: local facts (`ansible_local.workspaces_image_bakery`); Chef: an Ohai hint
# (`node['hints']['workspaces_image_bakery']`); Salt: minion configuration grains.
LAUNCH_FACTS_FILE: Final = "/etc/workspaces-image-bakery/launch-facts.json"
LAUNCH_FACT_FILES: Final[tuple[tuple[str, str, str], ...]] = (
    ("/etc/puppetlabs", "/etc/puppetlabs/facter/facts.d/workspaces_image_bakery.json", "json"),
    ("/etc/puppet", "/etc/facter/facts.d/workspaces_image_bakery.json", "json"),
    ("/etc/ansible", "/etc/ansible/facts.d/workspaces_image_bakery.fact", "json"),
    ("/etc/chef", "/etc/chef/ohai/hints/workspaces_image_bakery.json", "json"),
    ("/etc/salt", "/etc/salt/minion.d/workspaces_image_bakery.conf", "grains"),
)


def launch_facts(
    persona: str, version: str, design: str, launch_applications: Sequence[str]
) -> dict[str, object]:
    """What a WorkSpace launched from the image tells its configuration-management agent."""
    return {
        "persona": persona,
        "image_version": version,
        "design": design,
        "launch_applications": list(launch_applications),
    }


def _launch_facts(
    persona: str,
    version: str,
    design: str,
    launch_applications: Sequence[str],
    preparation: ImagePreparation,
) -> list[str]:
    """The launch facts, for the agent that delivers the launch applications: one JSON file
    of the bakery's own, and a copy where each installed tool reads facts."""
    has_agent = any(a.kind is AgentKind.CONFIGURATION_MANAGEMENT for a in preparation.agents)
    if not launch_applications and not has_agent:
        return []
    facts = json.dumps(launch_facts(persona, version, design, launch_applications), sort_keys=True)
    grains = "grains:\n  workspaces_image_bakery: " + facts
    out = [
        "step write-launch-facts",
        "# What the configuration-management agent delivers at launch (the persona's launch",
        "# applications), where each tool reads facts (docs/preparation.md).",
        f"printf '%s\\n' {shlex.quote(facts)} | write_file \"$R{LAUNCH_FACTS_FILE}\" 644",
    ]
    for folder, path, form in LAUNCH_FACT_FILES:
        text = facts if form == "json" else grains
        out += [
            f'if [[ -d "$R{folder}" ]]; then',
            f"  printf '%s\\n' {shlex.quote(text)} | write_file \"$R{path}\" 644",
            "fi",
        ]
    return [*out, ""]


def _version_file(persona: str, version: str, fingerprint: str, software: list[str]) -> list[str]:
    q = shlex.quote
    lines = [
        f"persona={_line(persona)}",
        f"version={_line(version)}",
        f"recipe={_line(fingerprint)}",
        f"software={SOFTWARE_SEPARATOR.join(_line(s) for s in software)}",
    ]
    return [
        "step write-version-file",
        "# Whitepaper step 9, last: the version file, on the system disk. A second run with the",
        "# same recipe keeps it (and its build time) as it is.",
        f'version_file="$R{VERSION_FILE}"',
        "version_lines() {",
        "  cat <<'BAKERY_VERSION'",
        *lines,
        "BAKERY_VERSION",
        "}",
        "if [[ ! -f $version_file ||",
        '      "$(grep -v \'^built=\' "$version_file")" != "$(version_lines)" ]]; then',
        "  { version_lines; printf 'built=%s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"; } "
        '| write_file "$version_file" 644',
        "fi",
        f"printf '%s%s\\n' \"$DONE\" {q('recipe=' + _line(fingerprint))}",
        "",
    ]


def _heredoc(path: str, mode: str, text: str) -> list[str]:
    """Lines that write `text` to `path` (a shell word with $R) through write_file."""
    marker = "BAKERY_FILE"
    if any(line == marker for line in text.splitlines()):  # pragma: no cover - static texts
        raise ValueError(f"{marker} inside a file body")
    return [
        f"cat <<'{marker}' | write_file \"{path}\" {mode}",
        *text.rstrip("\n").split("\n"),
        marker,
    ]


__all__ = [
    "DONE_MARKER",
    "FAILED_MARKER",
    "LIBEXEC_DIR",
    "MAX_SCRIPT_BYTES",
    "STEP_MARKER",
    "VERSION_FILE",
    "render_script",
]


def preparation_problems(preparation: ImagePreparation) -> list[Problem]:
    """(field, value, allowed) for every malformed field, then for a script too large for
    the SSM document that carries it."""
    found = preparation.problems()
    if found:
        return found
    size = len(
        render_script(
            preparation,
            persona="p" * 32,
            version="v" * 20,
            fingerprint="f" * 64,
            software=["s" * 64] * 20,
        ).encode()
    )
    if size <= MAX_SCRIPT_BYTES:
        return []
    return [
        (
            "preparation",
            f"<a {size}-byte script>",
            f"a script under {MAX_SCRIPT_BYTES} bytes (an SSM document holds 64 KB): move "
            "long install steps into a package or script on the shared location",
        )
    ]
