# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Ansible side of every module: connect, plan, check mode, diff, errors."""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import engine, wire

ADMIN_API_ARGS = {"qubesd_socket": {"type": "path"}}


def connect(module) -> client_mod.AdminClient:
    """An Admin API client for the module's connection options."""
    return client_mod.AdminClient(client_mod.default_transport(module.params.get("qubesd_socket")))


def run_plan(module, make_plan, result_of=None) -> None:
    """Plan with ``make_plan(reader)``, apply unless in check mode, and exit.

    ``result_of(plan, reader, applied)`` adds module-specific return values.

    Bad input (:class:`engine.PlanError`) fails before any mutating call,
    naming the field; a failed step reports what had been applied before it.
    """
    client = connect(module)
    reader = engine.Reader(client)
    try:
        plan = make_plan(reader)
    except engine.PlanError as exc:
        module.fail_json(msg=str(exc), field=exc.field, changed=False)
    except wire.QubesException as exc:
        module.fail_json(msg=f"reading the current state failed: {type(exc).__name__}: {exc}", changed=False)
    result = {"changed": plan.changed, "actions": plan.actions}
    if module._diff and plan.changed:  # pylint: disable=protected-access
        result["diff"] = {"before": plan.before, "after": plan.after}
    if plan.changed and not module.check_mode:
        try:
            plan.apply(client)
        except engine.ApplyError as exc:
            module.fail_json(msg=str(exc), changed=bool(exc.done), actions_done=exc.done,
                             actions=plan.actions, api_calls=sum(client.calls.values()))
    for warning in plan.warnings:
        module.warn(warning)
    if result_of is not None:
        result.update(result_of(plan, reader, plan.changed and not module.check_mode))
    result["api_calls"] = sum(client.calls.values())
    module.exit_json(**result)
