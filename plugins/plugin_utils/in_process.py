# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a collection task inside Ansible's own process when the target is this machine.

In dom0 (or a management qube) the collection's modules run with the local
connection, so starting a module process per task or loop item only costs
time. When the connection is local, without become, without a task
environment and without ``async``, the action plugin runs the same task
(:mod:`tasks`) in-process and reports exactly what the module would:

* the arguments are validated with the module's own argument spec, the first
  error reported in the module's words, alias warnings and deprecations kept;
* an unexpected exception becomes a failure with its message, and its
  traceback where Ansible shows a module's traceback;
* ``invocation`` holds the validated arguments, and every ``no_log`` value is
  masked everywhere in the result, as :class:`AnsibleModule` masks them.

Otherwise the module runs as usual (``async`` through ``wrap_async``), and its
temporary path is removed afterwards. The collection's modules talk to qubesd,
so a task whose connection leads into a qube (where there is no qubesd) is
refused unless that host is declared to reach the Admin API (a management
qube, with the host variable ``corral_qubes_admin_host: true``).
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.corral.qubes.plugins.module_utils import tasks

try:  # ansible-core 2.19 and later: a module includes a traceback only when the controller asks for one
    from ansible.module_utils._internal import _traceback
except ImportError:  # ansible-core 2.18: a module always includes it; Ansible shows it at -vvv
    _traceback = None

LOCAL_CONNECTIONS = frozenset({"local", "ansible.builtin.local"})
# Connection plugins that run commands inside a qube (this collection's, community.general's, the official one's).
QUBE_CONNECTIONS = frozenset({"qrexec", "qubes"})
ADMIN_HOST_VAR = "corral_qubes_admin_host"
display = Display()


def qube_connection(transport: str) -> bool:
    """Whether a connection plugin's name is one that leads into a qube."""
    return transport.rsplit(".", 1)[-1] in QUBE_CONNECTIONS


def traceback_wanted() -> bool:
    """Whether a module's failure would carry its traceback to this controller."""
    if _traceback is None:
        return True
    return _traceback.is_traceback_enabled(_traceback.TracebackEvent.ERROR)


class InProcessTask(ActionBase):
    """Base of the action plugins of corral.qubes modules."""

    TASK = ""
    COLLECTION = "corral.qubes"
    _supports_check_mode = True
    _supports_async = True

    @property
    def module_name(self) -> str:
        """The module's fully qualified name, as its messages name it."""
        return f"{self.COLLECTION}.{self.TASK}"

    def argument_spec(self) -> dict:
        """The module's argument spec."""
        return tasks.ARGUMENT_SPECS[self.TASK]

    def execute(self, params: dict, check_mode: bool, diff: bool) -> dict:
        """The task on validated parameters, as the module runs it."""
        return tasks.run_guarded(self.TASK, params, check_mode=check_mode, diff=diff)

    def runs_in_process(self) -> bool:
        """Local connection, no privilege change, no extra environment, no async: the module would run right here."""
        return (self._connection.transport in LOCAL_CONNECTIONS and not self._play_context.become
                and not any(self._task.environment or ()) and not self._task.async_val)

    def why_module_process(self) -> str:
        """Why this task does not run in-process (for -vvv)."""
        if self._connection.transport not in LOCAL_CONNECTIONS:
            return f"connection {self._connection.transport}"
        if self._play_context.become:
            return "become"
        if self._task.async_val:
            return "async"
        return "a task or play environment"

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self.runs_in_process():
            result.update(self.run_in_process(plain(self._task.args)))
            return result
        transport = self._connection.transport
        if qube_connection(transport) and not (task_vars or {}).get(ADMIN_HOST_VAR):
            result.update(failed=True, changed=False, msg=(
                f"{self.module_name} talks to qubesd, which runs in dom0, but this task's connection "
                f"({transport}) leads into the qube {self._play_context.remote_addr}, where there is no qubesd: "
                f"run the task on dom0 (delegate_to: a dom0 host with the local connection, or hosts: dom0), "
                f"or, if this qube is a management qube allowed to use the Admin API, set {ADMIN_HOST_VAR}: true "
                f"on its host"))
            return result
        display.vvv(f"{self.module_name}: runs as a module process ({self.why_module_process()})")
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        result.update(self._execute_module(module_name=self.module_name, task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)  # pylint: disable=protected-access
        return result

    def run_in_process(self, args: dict) -> dict:
        """The module's result for ``args``, computed in this process."""
        validated = ArgumentSpecValidator(self.argument_spec()).validate(args)
        no_log_values = validated._no_log_values  # pylint: disable=protected-access
        # What AnsibleModule reports as its parameters: the task's arguments with the validated values over them.
        params = dict(args, **validated.validated_parameters)
        warnings = [f"Both option {warning['option']} and its alias {warning['alias']} are set."
                    for warning in validated._warnings]  # pylint: disable=protected-access
        deprecations = [dict(entry) for entry in validated._deprecations]  # pylint: disable=protected-access
        if validated.error_messages:
            first = validated.errors[0]
            msg = validated.errors.msg
            if isinstance(first, UnsupportedError):
                msg = f"Unsupported parameters for ({self.module_name}) module: {msg}"
            result = {"failed": True, "msg": msg}
        else:
            result = self.execute(validated.validated_parameters, bool(self._task.check_mode), bool(self._task.diff))
            if "exception" in result and not traceback_wanted():
                del result["exception"]
        result["invocation"] = {"module_args": params}
        warnings += result.pop("warnings", [])
        deprecations += result.pop("deprecations", [])
        if warnings:
            result["warnings"] = warnings
        if deprecations:
            result["deprecations"] = deprecations
        return mask(result, no_log_values)


def plain(value):
    """Arguments as a module receives them (through JSON): Ansible's own str, dict and list types made plain.

    ansible-core 2.18 hands an action plugin YAML strings as ``AnsibleUnicode``, which a validator message
    would name where the module names ``str``.
    """
    if isinstance(value, str):
        return "" + value
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def mask(result: dict, no_log_values) -> dict:
    """The result with every no_log value masked, top-level booleans and None kept (AnsibleModule's rule)."""
    preserved = {key: value for key, value in result.items() if value is None or isinstance(value, bool)}
    masked = remove_values(result, no_log_values)
    masked.update(preserved)
    return masked
