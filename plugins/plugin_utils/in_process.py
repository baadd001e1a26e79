# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a collection task inside Ansible's own process when the target is this machine.

In dom0 (or a management qube) the collection's modules run with the local
connection, so starting a module process per task or loop item only costs
time. When the connection is local, without become and without a task
environment, the action plugin validates the arguments with the module's
own argument spec and runs the same task (:mod:`tasks`) in-process;
otherwise it runs the module as usual.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase

from ansible_collections.corral.qubes.plugins.module_utils import tasks

LOCAL_CONNECTIONS = frozenset({"local", "ansible.builtin.local"})


class InProcessTask(ActionBase):
    """Base of the action plugins of corral.qubes modules."""

    TASK = ""
    _supports_check_mode = True
    _supports_async = False

    def runs_in_process(self) -> bool:
        """Local connection, no privilege change, no extra environment: the module would run right here."""
        return (self._connection.transport in LOCAL_CONNECTIONS and not self._play_context.become
                and not any(self._task.environment or ()))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self.runs_in_process():
            result.update(self._execute_module(module_name=f"corral.qubes.{self.TASK}", task_vars=task_vars))
            return result
        validated = ArgumentSpecValidator(tasks.ARGUMENT_SPECS[self.TASK]).validate(self._task.args)
        if validated.error_messages:
            messages = [f"Unsupported parameters for (corral.qubes.{self.TASK}) module: {error}"
                        if isinstance(error, UnsupportedError) else str(error) for error in validated.errors]
            result.update(failed=True, changed=False, msg="; ".join(messages))
            return result
        result.update(tasks.run(self.TASK, validated.validated_parameters,
                                check_mode=bool(self._task.check_mode), diff=bool(self._task.diff)))
        return result
