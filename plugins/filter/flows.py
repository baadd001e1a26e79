# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that write qrexec policy as data.

* ``flow_policy``: flow matrices (clipboard, file copy, ...) into rules.
* ``admin_policy``: the least admin policy of a management qube.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import flows, names, policy


def flow_policy(matrices, domains=None, action="allow", dom0="deny") -> list:
    """Policy rules for each service's matrix (service -> {domain: [domains its data may go to]})."""
    if not isinstance(matrices, dict):
        raise AnsibleFilterError("flow_policy: expected a mapping of qrexec services to matrices, "
                                 "like {qubes.ClipboardPaste: {work: [personal]}}")
    rules = []
    for service, matrix in matrices.items():
        try:
            rules += flows.matrix_rules(matrix, service, domains, action, dom0)
        except (ValueError, policy.PolicyError) as exc:
            raise AnsibleFilterError(f"flow_policy: {service}: {exc}") from exc
    return rules


def admin_policy(manager, qubes, calls, global_calls=()) -> list:
    """Rules granting ``manager`` the Admin API ``calls`` on ``qubes`` and ``global_calls`` on dom0."""
    if not isinstance(manager, str) or not all(isinstance(x, str) for x in list(qubes) + list(calls)):
        raise AnsibleFilterError("admin_policy: expected a qube name, a list of qube names and a list of calls")
    for name in [manager] + list(qubes):
        error = names.vm_name_error(name)
        if error:
            raise AnsibleFilterError(f"admin_policy: {name!r} is not a qube name ({error}); "
                                     "grants name each qube, never a token such as @anyvm")

    def grant(method, target):
        return {"service": method, "argument": "*", "source": manager, "target": target, "action": "allow",
                "redirect": "dom0"}

    rules = [grant("admin.vm.List", "@adminvm")] + [grant("admin.vm.List", name) for name in qubes]
    rules += [grant(method, "@adminvm") for method in global_calls]
    rules += [grant(method, name) for method in calls if method != "admin.vm.List" for name in qubes]
    for index, rule in enumerate(rules):
        try:
            policy.rule_from_dict(rule, index)
        except policy.PolicyError as exc:
            raise AnsibleFilterError(f"admin_policy: {exc}") from exc
    return rules


class FilterModule:  # pylint: disable=too-few-public-methods
    """corral.qubes flow filters."""

    def filters(self):
        """Filter names."""
        return {"flow_policy": flow_policy, "admin_policy": admin_policy}
