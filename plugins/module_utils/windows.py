# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The entries of the windows role: defaults and checks, before anything changes.

An error names the qube and the key, and says the form expected; it never
repeats a value, since several are secrets (passwords, the product key).
No Ansible imports.
"""

from __future__ import annotations

import re

from ansible_collections.corral.qubes.plugins.module_utils import guest

DEFAULTS = {
    "arch": "amd64", "class": "StandaloneVM", "memory": 4096, "vcpus": 2, "root_gib": 40, "qrexec_timeout": 7200,
    "locale": "en-US", "timezone": "UTC", "organization": "", "product_key": None, "system_partition_mib": 100,
    "first_logon_commands": [], "network": {}, "post_install": {}, "reinstall": False, "tools": False,
    "timeout": 7200, "setup_power_offs": 3,
}
REQUIRED = ("iso", "edition", "computer_name", "user", "admin_password")
KEYS = tuple(sorted(set(DEFAULTS) | set(REQUIRED) | {"label", "netvm"}))
MIN_ROOT_GIB = {"amd64": 20, "x86": 16}
"""The smallest disk Windows 7 setup takes (Microsoft's system requirements)."""
MIN_MEMORY = {"amd64": 2048, "x86": 1024}
PRODUCT_KEY = re.compile(r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$")
COMPUTER_NAME = re.compile(r"^[A-Za-z0-9-]{1,15}$")
USER_NAME_FORBIDDEN = set('"/\\[]:;|=,+*?<>@')


EntryError = guest.EntryError
"""A bad entry; the message names ``name.key``."""


def entry(raw: dict) -> dict:
    """The entry with the role's defaults (label: orange, black for a TemplateVM)."""
    merged = {**DEFAULTS, **raw}
    merged.setdefault("label", "black" if merged["class"] == "TemplateVM" else "orange")
    return merged


def check(name: str, raw, locales, time_zones) -> None:
    """Every key of one entry, or :class:`EntryError`."""
    guest.check_shape(name, raw, KEYS, REQUIRED)
    w = entry(raw)
    guest.check_iso(name, w["iso"])
    if w["arch"] not in MIN_ROOT_GIB:
        raise EntryError(f"{name}.arch: expected one of {', '.join(MIN_ROOT_GIB)}")
    if w["class"] not in ("StandaloneVM", "TemplateVM"):
        raise EntryError(f"{name}.class: expected StandaloneVM or TemplateVM (an HVM with its own root)")
    if not isinstance(w["edition"], str):
        raise EntryError(f"{name}.edition: expected the image name in install.wim, such as 'Windows 7 PROFESSIONAL'")
    guest.check_int(name, "memory", w["memory"], MIN_MEMORY[w["arch"]], f"MiB for a {w['arch']} Windows 7")
    guest.check_int(name, "vcpus", w["vcpus"], 1, "a number of virtual CPUs")
    guest.check_int(name, "root_gib", w["root_gib"], MIN_ROOT_GIB[w["arch"]],
                    f"GiB for the root volume ({w['arch']} setup's minimum)")
    guest.check_int(name, "qrexec_timeout", w["qrexec_timeout"], 1, "seconds")
    guest.check_int(name, "timeout", w["timeout"], 1, "seconds the install may take")
    guest.check_int(name, "setup_power_offs", w["setup_power_offs"], 1,
                    "the times setup powers the qube off, its final shutdown included")
    guest.check_int(name, "system_partition_mib", w["system_partition_mib"], 100, "MiB for the system partition")
    if w["locale"] not in locales:
        raise EntryError(f"{name}.locale: not a language Windows 7 knows; expected one of {', '.join(locales)} "
                         "(windows_extra_locales adds others)")
    if w["timezone"] not in time_zones:
        raise EntryError(f"{name}.timezone: not a Windows time zone name (such as 'W. Europe Standard Time'; "
                         "windows_extra_time_zones adds others)")
    if not isinstance(w["computer_name"], str) or not COMPUTER_NAME.match(w["computer_name"]) \
            or w["computer_name"].isdigit():
        raise EntryError(f"{name}.computer_name: expected 1 to 15 letters, digits or '-', not only digits")
    user = w["user"]
    if not isinstance(user, dict) or set(user) != {"name", "password"}:
        raise EntryError(f"{name}.user: expected a dict with name and password")
    if not isinstance(user["name"], str) or not user["name"] or len(user["name"]) > 20 \
            or set(user["name"]) & USER_NAME_FORBIDDEN:
        raise EntryError(f"{name}.user.name: expected 1 to 20 characters, none of {''.join(sorted(USER_NAME_FORBIDDEN))}")
    for key, value in (("user.password", user["password"]), ("admin_password", w["admin_password"])):
        if not isinstance(value, str) or not value:
            raise EntryError(f"{name}.{key}: expected a non-empty string")
    key = w["product_key"]
    if key is not None and (not isinstance(key, str) or not PRODUCT_KEY.match(key)):
        raise EntryError(f"{name}.product_key: not of the form XXXXX-XXXXX-XXXXX-XXXXX-XXXXX "
                         "(five groups of five capital letters or digits)")
    commands = w["first_logon_commands"]
    if not isinstance(commands, list) or not all(isinstance(c, str) and c for c in commands):
        raise EntryError(f"{name}.first_logon_commands: expected a list of command lines")
    guest.check_network(name, w["network"])
    guest.check_post_install(name, w["post_install"])
    for key in ("reinstall", "tools"):
        if not isinstance(w[key], bool):
            raise EntryError(f"{name}.{key}: expected true or false")


def network(w: dict, properties: dict) -> dict:
    """The guest's static settings (:func:`guest.static_network`) with the entry's ``network`` overrides."""
    return guest.static_network(w.get("network") or {}, properties)
