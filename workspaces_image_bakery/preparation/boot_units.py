"""The systemd units and helper scripts the preparation leaves in the image: the sudo
removal (at every boot), the first-boot unit that sheds the template's identity on a
WorkSpace made from the image, and the restore unit that gives the template back what the
seal (``seal.py``) took off its root volume before the image.

The helpers honour ``BAKERY_ROOT`` like the main script, so the tests run them in a
throw-away root; systemd runs them without it (root ``/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

STATE_DIR: Final = "/etc/workspaces-image-bakery"
TEMPLATE_IDENTITY_FILE: Final = f"{STATE_DIR}/template-identity"
LIBEXEC_DIR: Final = "/usr/local/libexec/workspaces-image-bakery"
UNIT_DIR: Final = "/etc/systemd/system"
SUDO_SCRIPT: Final = f"{LIBEXEC_DIR}/remove-user-sudo"
SUDO_SERVICE: Final = "workspaces-image-bakery-remove-user-sudo.service"
SUDO_PATH: Final = "workspaces-image-bakery-remove-user-sudo.path"
FIRSTBOOT_SCRIPT: Final = f"{LIBEXEC_DIR}/firstboot"
FIRSTBOOT_SERVICE: Final = "workspaces-image-bakery-firstboot.service"
RESTORE_SCRIPT: Final = f"{LIBEXEC_DIR}/restore-template"
RESTORE_SERVICE: Final = "workspaces-image-bakery-restore-template.service"
# On the template's user volume (/home), which an image does not hold: what the seal took off
# the root volume for the template's own use (seal.py says why /home).
TEMPLATE_STASH_DIR: Final = "/home/.workspaces-image-bakery-template"
# The SSM agent runs as amazon-ssm-agent.service (deb/rpm) or, on Ubuntu, as a snap.
SSM_AGENT_UNITS: Final = (
    "amazon-ssm-agent.service",
    "snap.amazon-ssm-agent.amazon-ssm-agent.service",
)
SSM_STATE_DIR: Final = "/var/lib/amazon/ssm"
# The agent's hybrid registration: the managed node id and Region, its private key in the
# Vault, and (agent 3.2 and later) the identity it cached in runtimeconfig.
SSM_REGISTRATION: Final = ("registration", "Vault", "runtimeconfig")
# Accounts whose sudo rights stay: root, and the user the SSM agent runs Session Manager as.
KEPT_SUDO_USERS: Final = ("root", "ssm-user")
KEPT_SUDOERS_FILES: Final = ("ssm-agent-users",)

# Shared by the main script (it records the template) and the first-boot script (it
# compares): the template's hostname, /etc/machine-id and the EC2 instance's DMI UUID.
# At the first boot of a WorkSpace the machine-id and hostname may still be the template's
# (they are on the image); the instance UUID never is.
BAKERY_IDENTITY_FUNCTION: Final = r"""
bakery_identity() {
  local machine_id="" product_uuid=""
  if [[ -r $R/etc/machine-id ]]; then
    machine_id=$(tr -d '[:space:]' < "$R/etc/machine-id")
  fi
  if [[ -r $R/sys/class/dmi/id/product_uuid ]]; then
    product_uuid=$(tr -d '[:space:]' < "$R/sys/class/dmi/id/product_uuid")
  fi
  printf 'hostname=%s\nmachine-id=%s\nproduct-uuid=%s\n' "$(hostname)" "$machine_id" "$product_uuid"
}
"""

UNIT_EXISTS_FUNCTION: Final = r"""
unit_exists() {
  local dir
  for dir in /etc/systemd/system /run/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
    if [[ -e $R$dir/$1 || -L $R$dir/$1 ]]; then return 0; fi
  done
  return 1
}
"""

IDENTITY_FUNCTIONS: Final = (
    BAKERY_IDENTITY_FUNCTION
    + r"""
ssh_host_keys_digest() {
  local keys=("$R"/etc/ssh/ssh_host_*_key.pub)
  if (( ${#keys[@]} > 0 )); then
    cat -- "${keys[@]}" | sha256sum | cut -d ' ' -f 1
  fi
}

# systemctl, on BAKERY_ROOT's unit files when it is set (enable and disable only).
sysd() {
  if [[ -n $R ]]; then systemctl --root="$R" "$@"; else systemctl "$@"; fi
}
"""
    + UNIT_EXISTS_FUNCTION
)

# The first-boot script's test: is this the template the build recorded?
IS_TEMPLATE_FUNCTIONS: Final = r"""
# identity_field KEY: KEY's value in the identity lines on stdin.
identity_field() {
  awk -F= -v k="$1" '$1 == k { print substr($0, index($0, "=") + 1); exit }'
}

# is_template FILE: whether this machine is the template FILE recorded. The hostname must be
# the same; then the EC2 instance's DMI UUID decides when both sides know it (the seal empties
# the template's machine-id before its image, so the template itself comes back with a new
# one), otherwise the machine-id.
is_template() {
  local now recorded uuid recorded_uuid
  now=$(bakery_identity)
  recorded=$(cat -- "$1")
  [[ $(identity_field hostname <<< "$now") == "$(identity_field hostname <<< "$recorded")" ]] ||
    return 1
  uuid=$(identity_field product-uuid <<< "$now")
  recorded_uuid=$(identity_field product-uuid <<< "$recorded")
  if [[ -n $uuid && -n $recorded_uuid ]]; then
    [[ $uuid == "$recorded_uuid" ]]
    return
  fi
  [[ $(identity_field machine-id <<< "$now") == "$(identity_field machine-id <<< "$recorded")" ]]
}
"""


def remove_user_sudo_script() -> str:
    kept_users = " ".join(KEPT_SUDO_USERS)
    kept_files = " ".join(KEPT_SUDOERS_FILES)
    return f"""#!/usr/bin/env bash
# Removes users' sudo rights (workspaces-image-bakery; the whitepaper: "create a startup
# script to remove the user from sudo permissions"). systemd runs it as root at every boot
# and whenever /etc/sudoers.d or /etc/group change (WorkSpaces grants its user sudo through
# a sudoers file when it provisions the WorkSpace). It never touches root, the SSM agent
# (ssm-user and /etc/sudoers.d/ssm-agent-users, the build's channel), system accounts (UID
# below UID_MIN) or group rules (%group, e.g. an administrators' directory group). A
# changed sudoers file replaces the old one only after visudo accepts it, and the policy as
# a whole is checked afterwards: if visudo refuses it, every file is put back.
set -Eeuo pipefail
shopt -s nullglob
R="${{BAKERY_ROOT:-}}"
R="${{R%/}}"
kept_users="{kept_users}"
kept_files="{kept_files}"
uid_min=$(awk '$1 == "UID_MIN" {{ print $2 }}' "$R/etc/login.defs" 2>/dev/null || true)
uid_min=${{uid_min:-1000}}

kept() {{
  local user=$1 name uid
  for name in $kept_users; do
    if [[ $user == "$name" ]]; then return 0; fi
  done
  uid=$(awk -F: -v u="$user" '$1 == u {{ print $3; exit }}' "$R/etc/passwd")
  [[ $uid =~ ^[0-9]+$ ]] && (( uid < uid_min ))
}}

for group in sudo wheel admin; do
  while IFS= read -r user; do
    if [[ -n $user ]] && ! kept "$user"; then
      if [[ -n $R ]]; then
        gpasswd --root "$R" --delete "$user" "$group"
      else
        gpasswd --delete "$user" "$group"
      fi
      echo "removed $user from the $group group"
    fi
  done < <(awk -F: -v g="$group" \
    '$1 == g {{ n = split($4, m, ","); for (i = 1; i <= n; i++) print m[i] }}' "$R/etc/group")
done

# Comment out every rule of a user (name, #uid or user alias), with its continuation lines.
comment_user_rules() {{
  awk -v kept="$kept_users" '
    BEGIN {{ n = split(kept, k, " "); for (i = 1; i <= n; i++) keep[k[i]] = 1 }}
    cont {{ print "# workspaces-image-bakery: " $0; cont = ($0 ~ /\\\\$/); next }}
    {{
      t = $0; sub(/^[ \\t]+/, "", t); split(t, w, /[ \\t]+/); first = w[1]
      if (t == "" || t ~ /^#([^0-9]|$)/ || t ~ /^@/ || first ~ /^[%+]/ || (first in keep) ||
          first ~ /^(Defaults|User_Alias|Runas_Alias|Host_Alias|Cmnd_Alias|Cmd_Alias)/) {{
        print; next
      }}
      print "# workspaces-image-bakery: " $0; cont = ($0 ~ /\\\\$/)
    }}' "$1"
}}

dir="$R/etc/sudoers.d"
changed=()
for file in "$dir"/*; do
  name=${{file##*/}}
  # sudo reads no file whose name has a dot or ends in ~; the SSM agent's grant stays.
  if [[ ! -f $file || $name == *.* || $name == *~ || " $kept_files " == *" $name "* ]]; then
    continue
  fi
  new="$dir/.bakery-new-$name"
  comment_user_rules "$file" > "$new"
  chmod 0440 "$new"
  if cmp -s "$file" "$new"; then rm -f "$new"; continue; fi
  if ! visudo -c -q -f "$new"; then
    rm -f "$new"
    echo "visudo refused the new $file; nothing changed" >&2
    exit 1
  fi
  cp -p "$file" "$dir/.bakery-old-$name"
  changed+=("$name")
  if grep -Eqv '^[[:space:]]*(#([^0-9]|$)|$)' "$new"; then
    cat "$new" > "$file"
    echo "removed the user rules of $file"
  else
    rm -f "$file"
    echo "removed $file (it only granted users)"
  fi
  rm -f "$new"
done
if (( ${{#changed[@]}} > 0 )); then
  if [[ -f $R/etc/sudoers ]] && ! visudo -c -q -f "$R/etc/sudoers"; then
    for name in "${{changed[@]}}"; do mv -f "$dir/.bakery-old-$name" "$dir/$name"; done
    echo "visudo refused the sudo policy; every file was put back" >&2
    exit 1
  fi
  for name in "${{changed[@]}}"; do rm -f "$dir/.bakery-old-$name"; done
fi
"""


def remove_user_sudo_units() -> dict[str, str]:
    return {
        SUDO_SERVICE: f"""[Unit]
Description=Remove users' sudo rights (workspaces-image-bakery)
After=local-fs.target sssd.service

[Service]
Type=oneshot
ExecStart={SUDO_SCRIPT}

[Install]
WantedBy=multi-user.target
""",
        SUDO_PATH: f"""[Unit]
Description=Remove users' sudo rights again when sudoers or groups change (workspaces-image-bakery)

[Path]
PathChanged=/etc/sudoers.d
PathChanged=/etc/group
Unit={SUDO_SERVICE}

[Install]
WantedBy=multi-user.target
""",
    }


def firstboot_script(cm_units: Sequence[str], identity_paths: Sequence[str]) -> str:
    """The first-boot script; `cm_units` are the configuration-management agents' services
    (held on the template, enabled and started here, after the shedding), `identity_paths`
    the agents' enrolment state to remove."""
    ssm = " ".join(SSM_AGENT_UNITS)
    cm_ssm = [u for u in SSM_AGENT_UNITS if u in cm_units]
    held = [u for u in cm_units if u not in SSM_AGENT_UNITS]
    registration = " ".join(f'"$R{SSM_STATE_DIR}/{name}"' for name in SSM_REGISTRATION)
    lines = [
        "#!/usr/bin/env bash",
        "# First boot of a WorkSpace launched from the image (workspaces-image-bakery). The",
        "# image was taken from a template WorkSpace that the build reached as an SSM hybrid",
        "# managed node: a WorkSpace launched from it must not be that node, share its",
        "# machine-id or SSH host keys, or reuse its agents' enrolment. systemd runs this",
        "# before the SSM and configuration-management agents start. On the template itself",
        "# (the identity the build recorded) it does nothing: the build keeps its channel.",
        "set -Eeuo pipefail",
        "shopt -s nullglob",
        'R="${BAKERY_ROOT:-}"',
        'R="${R%/}"',
        f'identity_file="$R{TEMPLATE_IDENTITY_FILE}"',
        IDENTITY_FUNCTIONS.strip("\n"),
        IS_TEMPLATE_FUNCTIONS.rstrip("\n"),
        "",
        'log() { printf "workspaces-image-bakery-firstboot: %s\\n" "$*"; }',
        "",
        "if [[ ! -f $identity_file ]]; then exit 0; fi",
        'if is_template "$identity_file"; then',
        '  log "this is the template WorkSpace: nothing to do"',
        "  exit 0",
        "fi",
        'log "not the template WorkSpace: shedding its identity"',
        "",
        "# The template's SSM hybrid registration (managed node mi-..., its keys in the Vault).",
        "# An image the seal prepared holds none; one made without the seal may.",
        f"for unit in {ssm}; do",
        '  if ! unit_exists "$unit"; then continue; fi',
        '  systemctl stop "$unit"',
    ]
    if cm_ssm:
        lines += [
            f'  if [[ " {" ".join(cm_ssm)} " != *" $unit "* ]]; then sysd disable "$unit"; fi'
        ]
    else:
        lines += ['  sysd disable "$unit"']
    lines += [
        "done",
        f"rm -rf {registration} \\",
        f'  "$R"{SSM_STATE_DIR}/mi-*',
    ]
    if identity_paths:
        lines += ["# The agents' enrolment on the template (declared identity_paths)."]
        lines += [f'rm -rf "$R{path}"' for path in identity_paths]
    lines += [
        "# systemd generates a new machine-id at the next boot when the file is empty; a",
        "# machine-id that is not the template's (systemd made it: the seal emptied the",
        "# image's) is kept.",
        'template_machine_id=$(identity_field machine-id < "$identity_file")',
        "if [[ -f $R/etc/machine-id && -n $template_machine_id &&",
        '      "$(tr -d \'[:space:]\' < "$R/etc/machine-id")" == "$template_machine_id" ]]; then',
        '  : > "$R/etc/machine-id"',
        "fi",
        "if [[ -f $R/var/lib/dbus/machine-id && ! -L $R/var/lib/dbus/machine-id ]]; then",
        '  rm -f "$R/var/lib/dbus/machine-id"',
        "fi",
        "# Image creation wipes SSH host keys, and so does the seal; should this WorkSpace",
        "# still have the template's, they go. Missing host keys are made.",
        'template_keys=$(identity_field ssh-host-keys < "$identity_file")',
        'if [[ -n $template_keys && $template_keys == "$(ssh_host_keys_digest)" ]]; then',
        '  rm -f "$R"/etc/ssh/ssh_host_*key*',
        "fi",
        'host_keys=("$R"/etc/ssh/ssh_host_*_key)',
        "if [[ -d $R/etc/ssh ]] && (( ${#host_keys[@]} == 0 )); then",
        '  if [[ -n $R ]]; then ssh-keygen -A -f "$R"; else ssh-keygen -A; fi',
        "fi",
    ]
    if held:
        units = " ".join(held)
        lines += [
            "# The configuration-management agents, held (masked and disabled) on the template:",
            "# enabled from now on, and started once this unit is done, so they enrol as this",
            "# WorkSpace and fetch its launch applications.",
            f"sysd unmask {units}",
            f"sysd enable {units}",
        ]
    started = [*cm_ssm, *held]
    if started:
        lines += [f"systemctl --no-block start {' '.join(started)}"]
    lines += [
        f"sysd disable {FIRSTBOOT_SERVICE}",
        f'rm -f "$R{UNIT_DIR}/{FIRSTBOOT_SERVICE}" "$identity_file" "$R{FIRSTBOOT_SCRIPT}"',
        'log "done: the configuration-management agents start next and enrol as this WorkSpace"',
        "",
    ]
    return "\n".join(lines)


def firstboot_unit(cm_units: Sequence[str]) -> str:
    before = " ".join(dict.fromkeys([*SSM_AGENT_UNITS, *cm_units]))
    return f"""[Unit]
Description=Shed the template's identity on WorkSpaces made from its image (workspaces-image-bakery)
After=local-fs.target {RESTORE_SERVICE}
Before={before}
ConditionPathExists={TEMPLATE_IDENTITY_FILE}

[Service]
Type=oneshot
ExecStart={FIRSTBOOT_SCRIPT}

[Install]
WantedBy=multi-user.target
"""


def restore_template_script() -> str:
    """The restore script: on the template, after the seal, it puts the SSM registration and
    the SSH host keys back from the stash on /home, records the template's new machine-id
    and deletes the stash. Where no stash exists (every WorkSpace made from the image: an
    image holds no /home) it does nothing."""
    names = " ".join(SSM_REGISTRATION)
    return f"""#!/usr/bin/env bash
# Restores the template WorkSpace after its image was taken (workspaces-image-bakery). Before
# the image, the seal moved the template's SSM registration (and Vault) and its SSH host keys
# from the root volume, which the image holds, to {TEMPLATE_STASH_DIR} on the user
# volume, which it does not. systemd runs this at boot, before the SSM agent, sshd and the
# first-boot unit: the template gets its registration and keys back, so the next build
# reaches it again, and its new machine-id (the seal emptied it) is recorded so the
# first-boot unit still knows it is the template. No stash (any WorkSpace made from the
# image): nothing to do.
set -Eeuo pipefail
shopt -s nullglob
R="${{BAKERY_ROOT:-}}"
R="${{R%/}}"
stash="$R{TEMPLATE_STASH_DIR}"
ssm="$R{SSM_STATE_DIR}"
identity_file="$R{TEMPLATE_IDENTITY_FILE}"
{BAKERY_IDENTITY_FUNCTION.strip(chr(10))}

log() {{ printf "workspaces-image-bakery-restore-template: %s\\n" "$*"; }}

if [[ ! -d $stash ]]; then exit 0; fi
log "the template WorkSpace after its image: putting back what the seal stashed"
restored=()
if [[ -d $stash/ssm ]]; then
  mkdir -p "$ssm"
  for name in {names}; do
    if [[ ! -e $stash/ssm/$name ]]; then continue; fi
    if [[ -e $ssm/$name ]]; then
      # Registered again since the seal: that registration wins.
      log "$ssm/$name exists: the stashed copy is dropped"
      rm -rf "${{stash:?}}/ssm/$name"
    else
      mv "$stash/ssm/$name" "$ssm/$name"
      restored+=("$ssm/$name")
    fi
  done
fi
keys=("$stash"/ssh/ssh_host_*)
present=("$R"/etc/ssh/ssh_host_*_key)
if (( ${{#keys[@]}} > 0 && ${{#present[@]}} == 0 )); then
  mkdir -p "$R/etc/ssh"
  mv "${{keys[@]}}" "$R/etc/ssh/"
  restored+=("$R/etc/ssh")
fi
if [[ -z $R ]] && (( ${{#restored[@]}} > 0 )) && command -v restorecon > /dev/null; then
  # SELinux (RHEL, Rocky): the files carry /home's labels after the move.
  restorecon -R "${{restored[@]}}"
fi
if [[ -f $identity_file ]]; then
  keys_line=$(grep '^ssh-host-keys=' "$identity_file" || true)
  new="$identity_file.new"
  {{ bakery_identity; if [[ -n $keys_line ]]; then printf '%s\\n' "$keys_line"; fi; }} > "$new"
  chmod 600 "$new"
  mv -f "$new" "$identity_file"
fi
rm -rf "${{stash:?}}"
log "done: the SSM agent starts with the template's registration"
"""


def restore_template_unit() -> str:
    before = " ".join([*SSM_AGENT_UNITS, "ssh.service", "sshd.service", FIRSTBOOT_SERVICE])
    return f"""[Unit]
Description=Give the template WorkSpace back what the seal stashed (workspaces-image-bakery)
After=local-fs.target
RequiresMountsFor=/home {SSM_STATE_DIR}
Before={before}
ConditionPathIsDirectory={TEMPLATE_STASH_DIR}

[Service]
Type=oneshot
ExecStart={RESTORE_SCRIPT}

[Install]
WantedBy=multi-user.target
"""
