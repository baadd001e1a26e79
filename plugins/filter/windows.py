# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``windows_check``, ``windows_entry`` and ``windows_network``: the windows role's entries."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import windows


def windows_check(entries, locales, time_zones) -> list:
    """The qube names of ``entries`` once every entry is checked (errors name the field, never a value)."""
    if not isinstance(entries, dict):
        raise AnsibleFilterError("windows_check: expected a mapping of qube names to their Windows settings")
    try:
        for name, raw in entries.items():
            windows.check(name, raw, list(locales), list(time_zones))
    except windows.EntryError as exc:
        raise AnsibleFilterError(f"windows_qubes: {exc}") from None
    return list(entries)


def windows_entry(raw) -> dict:
    """An entry with the role's defaults."""
    return windows.entry(dict(raw))


def windows_network(entry, properties) -> dict:
    """The static network settings of the guest: the qube's Qubes IP, gateway and DNS, with the entry's overrides."""
    return windows.network(dict(entry), dict(properties or {}))


class FilterModule:  # pylint: disable=too-few-public-methods
    """The windows role's filters."""

    def filters(self):
        return {"windows_check": windows_check, "windows_entry": windows_entry, "windows_network": windows_network}
