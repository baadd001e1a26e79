# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of corral.qubes.layout_check: the task in-process on a local connection, else the module.

Given ``whonix``, its result becomes the variables qubes_layout, qubes_templates and qubes_policies (the role
corral.qubes.whonix sets them as facts, from its own check or from the whole-layout check of the collection's
site.yml). An extra variable of one of these names is above any fact: when its value is not what the role would set
(a layout without Whonix), the next roles would not see Whonix, so the task fails, in the controller (only it knows
the extra variables), before anything changes.
"""

from __future__ import annotations

from ansible.utils.vars import load_extra_vars

from ansible_collections.corral.qubes.plugins.plugin_utils.in_process import InProcessTask, plain

WHONIX_OUTPUTS = {"qubes_layout": "layout", "qubes_templates": "templates", "qubes_policies": "policies"}
"""The variables the Whonix scope's result is set as, and the option each comes from."""


def hidden_outputs(extra_vars: dict, args: dict, whonix: dict) -> list[str]:
    """The variables of :data:`WHONIX_OUTPUTS` given as extra variables whose value (what the task got as its
    option) is not the one with Whonix: each would hide the fact of that name."""
    return [name for name, option in WHONIX_OUTPUTS.items()
            if name in extra_vars and plain(args.get(option)) != whonix.get(name)]


class ActionModule(InProcessTask):
    """corral.qubes.layout_check."""

    TASK = "layout_check"

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        if args.get("whonix") and not result.get("failed") and isinstance(result.get("whonix"), dict):
            hidden = hidden_outputs(load_extra_vars(self._loader), args, result["whonix"])
            if hidden:
                result.update(failed=True, field=hidden[0], msg=(
                    f"{' and '.join(hidden)} {'is' if len(hidden) == 1 else 'are'} given as an extra variable (-e), "
                    "which Ansible puts above what corral.qubes.whonix sets, so the Whonix qubes, templates and "
                    "updates policy would be left out of what the next roles see; give these variables in the "
                    "inventory (group_vars), include Whonix in them yourself, or set whonix_enabled to false"))
        return result
