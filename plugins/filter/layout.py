# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A layout's qubes and devices as the ``qubes`` options of corral.qubes.qube and corral.qubes.devices
(``layout_qubes``, ``layout_devices``; module_utils/layout.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import layout


def layout_qubes(qubes_layout, mark_created: bool = True) -> dict:
    """Each qube's options for corral.qubes.qube: its entry without devices and firewall (their own modules')."""
    try:
        return layout.qube_options(qubes_layout, mark_created)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def layout_devices(qubes_layout) -> dict:
    """Each qube's devices and shutdown_if_needed for corral.qubes.devices (qubes that list devices only)."""
    try:
        return layout.device_options(qubes_layout)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:  # pylint: disable=too-few-public-methods
    """corral.qubes layout filters."""

    def filters(self):
        """Filter names."""
        return {"layout_qubes": layout_qubes, "layout_devices": layout_devices}
