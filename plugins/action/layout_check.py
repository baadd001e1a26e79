# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of corral.qubes.layout_check: the task in-process on a local connection, else the module.

With ``scope: whonix`` its result becomes the variables qubes_layout, qubes_templates and qubes_policies (the role
corral.qubes.whonix sets them as facts); an extra variable of one of these names is above any fact, so Whonix
would be left out of what the next roles see. The task refuses that first, in the controller (only it knows the
extra variables), before anything is read.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars

from ansible_collections.corral.qubes.plugins.plugin_utils.in_process import InProcessTask

WHONIX_OUTPUTS = ("qubes_layout", "qubes_templates", "qubes_policies")
"""The variables the Whonix scope's result is set as."""


def hidden_outputs(extra_vars: dict) -> list[str]:
    """Which of :data:`WHONIX_OUTPUTS` the extra variables give (each hides the fact of that name)."""
    return [name for name in WHONIX_OUTPUTS if name in extra_vars]


class ActionModule(InProcessTask):
    """corral.qubes.layout_check."""

    TASK = "layout_check"

    def run(self, tmp=None, task_vars=None):
        if self._task.args.get("scope") == "whonix" and self._task.args.get("whonix") is not None:
            given = hidden_outputs(load_extra_vars(self._loader))
            if given:
                result = ActionBase.run(self, tmp, task_vars)
                result.update(failed=True, changed=False, field=given[0], msg=(
                    f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} given as an extra variable (-e), "
                    "which Ansible puts above what corral.qubes.whonix sets, so the Whonix qubes, templates and "
                    "updates policy would be left out of what the next roles see; give these variables in the "
                    "inventory (group_vars), include Whonix in them yourself, or set whonix_enabled to false"))
                return result
        return super().run(tmp, task_vars)
