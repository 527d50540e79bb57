"""Desktop settings for every user, through a dconf system database with locks.

The script writes a keyfile under ``/etc/dconf/db/local.d/``, its locks under
``/etc/dconf/db/local.d/locks/``, makes sure ``/etc/dconf/profile/user`` reads
``user-db:user`` then ``system-db:local``, and runs ``dconf update`` (GNOME System
Administration Guide, "Lock down specific settings", help.gnome.org/admin/system-admin-guide/
stable/dconf-lockdown.html; the whitepaper: MATE settings are stored with dconf).

Keys per desktop:

- GNOME (Ubuntu 22.04, Rocky Linux 8, RHEL 8): background ``/org/gnome/desktop/background/
  picture-uri`` (and ``picture-uri-dark``, read by GNOME 42 on Ubuntu 22.04) as a
  ``file://`` URI; favourites ``/org/gnome/shell/favorite-apps`` (GNOME guide,
  "Set the default background" and "Customize default favorite applications").
- MATE (Amazon Linux 2): background ``/org/mate/desktop/background/picture-filename`` (the
  ``org.mate.background`` schema of mate-desktop). MATE's panel menu has no favourites key
  that AWS or MATE documents, so ``favourites`` is refused there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from .agents import is_safe_path
from .operating_systems import Desktop

KEYFILE: Final = "/etc/dconf/db/local.d/50-workspaces-image-bakery"
LOCKS: Final = "/etc/dconf/db/local.d/locks/50-workspaces-image-bakery"
PROFILE: Final = "/etc/dconf/profile/user"
DESKTOP_FILE_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.desktop"
DCONF_KEY_PATTERN: Final = (
    r"[a-z0-9][a-z0-9.-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*/[A-Za-z0-9][A-Za-z0-9_-]*"
)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class DesktopSettings:
    """Desktop defaults for every user of the image, locked unless ``locked=False``.

    :param background: absolute path of the wallpaper on the system disk (not under
        ``/home``, which imaging wipes); the script fails if the file is missing. Default
        none (the desktop's own).
    :param favourites: ``.desktop`` file names for GNOME's dash (``favorite-apps``). Default
        none. Refused on MATE.
    :param settings: more dconf keys: path ``org/gnome/desktop/session/idle-delay`` ->
        GVariant text ``uint32 900`` (strings quoted: ``'value'``). Default none.
    :param locked: users cannot change these keys (dconf locks). Default True.
    """

    background: str | None = None
    favourites: Sequence[str] = ()
    settings: Mapping[str, str] = field(default_factory=dict)
    locked: bool = True

    def problems(self, desktop: Desktop | None) -> list[tuple[str, object, str]]:
        where = "preparation.desktop"
        found: list[tuple[str, object, str]] = []
        background = self.background
        if background is not None and (
            not is_safe_path(background) or background == "/home" or background.startswith("/home/")
        ):
            found.append(
                (
                    f"{where}.background",
                    background,
                    "an absolute path on the system disk (not under /home) of letters, digits "
                    "and . _ + @ / -",
                )
            )
        favourites = self.favourites
        if isinstance(favourites, str) or not isinstance(favourites, list | tuple):
            found.append((f"{where}.favourites", favourites, "a list of .desktop file names"))
        else:
            for index, name in enumerate(favourites):
                if not isinstance(name, str) or not re.fullmatch(DESKTOP_FILE_PATTERN, name):
                    found.append(
                        (
                            f"{where}.favourites[{index}]",
                            name,
                            "a .desktop file name, e.g. firefox.desktop",
                        )
                    )
            if favourites and desktop is Desktop.MATE:
                found.append(
                    (
                        f"{where}.favourites",
                        list(favourites),
                        "none on MATE (Amazon Linux 2): its menu has no documented favourites "
                        "key; set the panel's keys through settings instead",
                    )
                )
        settings = self.settings
        if not isinstance(settings, Mapping):
            found.append((f"{where}.settings", settings, "a mapping of dconf key to GVariant text"))
        else:
            taken = set(self._fixed_keys(desktop))
            for key, value in settings.items():
                if not isinstance(key, str) or not re.fullmatch(DCONF_KEY_PATTERN, key):
                    found.append(
                        (
                            f"{where}.settings",
                            key,
                            "dconf key paths such as org/gnome/desktop/session/idle-delay",
                        )
                    )
                elif f"/{key}" in taken:
                    found.append(
                        (
                            f"{where}.settings[{key}]",
                            key,
                            "a key not set by background or favourites",
                        )
                    )
                if (
                    not isinstance(value, str)
                    or not value.strip()
                    or _CONTROL.search(value)
                    or len(value) > 4096
                ):
                    found.append(
                        (
                            f"{where}.settings[{key}]",
                            value,
                            "GVariant text on one line, 1-4096 characters (e.g. 'uint32 900')",
                        )
                    )
        if not isinstance(self.locked, bool):
            found.append((f"{where}.locked", self.locked, "True or False"))
        return found

    def keyfile(self, desktop: Desktop) -> dict[str, dict[str, str]]:
        """dconf group -> key -> GVariant text, for `desktop`."""
        groups: dict[str, dict[str, str]] = {}

        def put(path: str, value: str) -> None:
            group, _, key = path.rpartition("/")
            groups.setdefault(group, {})[key] = value

        if self.background is not None:
            if desktop is Desktop.GNOME:
                uri = f"'file://{self.background}'"
                put("org/gnome/desktop/background/picture-uri", uri)
                put("org/gnome/desktop/background/picture-uri-dark", uri)
            else:
                put("org/mate/desktop/background/picture-filename", f"'{self.background}'")
        if self.favourites and desktop is Desktop.GNOME:
            apps = ", ".join(f"'{name}'" for name in self.favourites)
            put("org/gnome/shell/favorite-apps", f"[{apps}]")
        for key, value in self.settings.items():
            put(key, value)
        return {g: dict(sorted(keys.items())) for g, keys in sorted(groups.items())}

    def keyfile_lines(self, desktop: Desktop) -> list[str]:
        lines = ["# Written by workspaces-image-bakery: the image's desktop defaults."]
        for group, keys in self.keyfile(desktop).items():
            lines += ["", f"[{group}]", *(f"{key}={value}" for key, value in keys.items())]
        return lines

    def lock_lines(self, desktop: Desktop) -> list[str]:
        """The locked keys, one absolute dconf path a line; none when ``locked=False``."""
        if not self.locked:
            return []
        return [f"/{group}/{key}" for group, keys in self.keyfile(desktop).items() for key in keys]

    def recipe(self) -> dict[str, object]:
        return {
            "background": self.background,
            "favourites": list(self.favourites),
            "settings": dict(sorted(self.settings.items())),
            "locked": self.locked,
        }

    def user_strings(self) -> dict[str, str]:
        where = "preparation.desktop"
        found: dict[str, str] = {}
        if self.background:
            found[f"{where}.background"] = self.background
        for index, name in enumerate(self.favourites):
            found[f"{where}.favourites[{index}]"] = name
        for key, value in self.settings.items():
            found[f"{where}.settings[{key}]"] = f"{key}={value}"
        return found

    def _fixed_keys(self, desktop: Desktop | None) -> list[str]:
        if desktop is None:
            return []
        fixed = DesktopSettings(
            background="/x" if self.background is not None else None,
            favourites=("x.desktop",) if self.favourites and desktop is Desktop.GNOME else (),
        )
        return fixed.lock_lines(desktop)
