# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``layout_qubes``: a layout's qubes as the ``qubes`` option of corral.qubes.qube (module_utils/layout.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import layout


def layout_qubes(qubes_layout, mark_created: bool = True) -> dict:
    """Each qube's options for corral.qubes.qube: its entry without devices and firewall (their own modules')."""
    try:
        return layout.qube_options(qubes_layout, mark_created)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:  # pylint: disable=too-few-public-methods
    """corral.qubes layout filters."""

    def filters(self):
        """Filter names."""
        return {"layout_qubes": layout_qubes}
