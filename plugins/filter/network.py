# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that turn a layout's network intent into firewall rules.

* ``whitelists``: tasks (each in one domain, reaching named destinations)
  and the destinations -> each domain's accept rules, the union of its
  tasks' destinations with duplicates and covered rules left out.
* ``firewall_layout``: each qube's network setting (``whitelist``,
  ``allow_all``, ``block_all``, a rule list or a dict with policy/rules/dns),
  the whitelists and optionally the layout (its entries' ``firewall``) ->
  the ``qubes`` option of corral.qubes.firewall.

The logic is in module_utils/network.py, shared with corral.qubes.layout_check.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import network


def whitelists(tasks, destinations) -> dict:
    """Each domain's accept rules: the union of the destinations its tasks reach."""
    try:
        return network.whitelists(tasks, destinations)
    except network.NetworkError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def firewall_layout(settings, lists=None, layout=None) -> dict:
    """The ``qubes`` option of corral.qubes.firewall: every qube as ``{policy, rules}`` (and ``dns``)."""
    try:
        return network.firewall_layout(settings, lists, layout)
    except network.NetworkError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:  # pylint: disable=too-few-public-methods
    """corral.qubes network filters."""

    def filters(self):
        """Filter names."""
        return {"whitelists": whitelists, "firewall_layout": firewall_layout}
