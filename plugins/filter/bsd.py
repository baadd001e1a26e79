# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``bsd_entries`` (the bsd role's entries, checked) and ``guest_network`` (a guest's static network settings)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import bsd, guest


def bsd_entries(entries) -> dict:
    """Qube name to its entry with the role's defaults, once every entry is checked (errors never repeat a value)."""
    if not isinstance(entries, dict):
        raise AnsibleFilterError("bsd_entries: expected a mapping of qube names to their FreeBSD settings")
    try:
        for name, raw in entries.items():
            bsd.check(name, raw)
    except bsd.EntryError as exc:
        raise AnsibleFilterError(f"bsd_qubes: {exc}") from None
    return {name: bsd.entry(name, dict(raw)) for name, raw in entries.items()}


def guest_network(overrides, properties) -> dict:
    """The static network settings of a guest without a Qubes agent: its qube's Qubes settings, then ``overrides``."""
    return guest.static_network(dict(overrides or {}), dict(properties or {}))


class FilterModule:  # pylint: disable=too-few-public-methods
    """The bsd role's filters."""

    def filters(self):
        return {"bsd_entries": bsd_entries, "guest_network": guest_network}
