# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Callback plugin: the tasks of one run share their Admin API reads until something changes."""

from __future__ import annotations

DOCUMENTATION = r"""
name: run_reads
type: aggregate
short_description: The tasks of one playbook run share their Admin API reads until something changes
version_added: 0.1.0
description:
  - Each task of this collection reads from qubesd what it needs, so the tasks of a run read the same properties,
    features, tags, firewall rules and device assignments again and again. With this callback enabled, a run gets
    a private directory (mode 0700, removed at the end of the run) where a task's reads are kept, and a later task
    of the same run gets such a reply without asking qubesd.
  - The qube list itself is read from qubesd once in each task that reads; when it differs from the list the kept
    reads were made under (a qube created, removed, started or stopped meanwhile) they are forgotten. In dom0, when
    the first task of this collection starts, the callback also subscribes to qubesd's events (one C(admin.Events)
    stream, open until the run ends) and, before each task starts, forgets the kept reads if any event came (any
    change by anyone, such as a qube started, created or removed, a property, feature or tag set, a device
    assigned). While it watches, a qube list recorded in the run is kept like the other reads, so a task reads it
    from qubesd only after something happened.
  - They are also forgotten before any call that may change something, and after any task that reports a change
    or fails, whatever module it ran (a C(command) running C(qvm-prefs), a task inside a qube). A task gets each kept
    reply once; reading the same thing again in one task (waiting for a change) asks qubesd.
  - What it cannot see is a change made while a task runs, until the next task starts (a task's reads are as fresh
    as its start), or a change qubesd sends no event for; without the events stream (not in dom0, or qubesd refuses it), a setting changed during the run
    by someone else or by a task that reports no change (C(changed_when=false) on a command that changes a qube).
    Leave the callback out of C(callbacks_enabled) to have every task read everything itself.
requirements:
  - Enabled in ansible.cfg (C(callbacks_enabled = corral.qubes.run_reads) in C([defaults])), as this project's own
    ansible.cfg does.
author:
  - corral.qubes contributors (!UNKNOWN)
"""

import atexit
import os
import shutil
import tempfile

from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

from ansible_collections.corral.qubes.plugins.module_utils import client, run_reads

display = Display()


class CallbackModule(CallbackBase):
    """Gives each playbook run a directory for its shared reads, and empties it when a task changes something."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "corral.qubes.run_reads"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.directory: str | None = None
        self.watch: run_reads.EventsWatch | None = None
        self._watch_tried = False

    def v2_playbook_on_start(self, playbook):
        if self.directory is None:
            # the tasks' workers are forked from this process: they inherit the variable
            self.directory = tempfile.mkdtemp(prefix="corral-qubes-reads-")
            atexit.register(shutil.rmtree, self.directory, True)  # an interrupted run has no on_stats
            os.environ[run_reads.ENV] = self.directory
            display.vvv(f"corral.qubes.run_reads: the run's shared Admin API reads in {self.directory}")

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self.directory is None:
            return
        if not self._watch_tried and str(getattr(task, "resolved_action", None) or task.action).startswith(
                "corral.qubes."):
            self._watch_tried = True
            self._start_watch()
        if self.watch is not None:
            self.watch.poll()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _start_watch(self) -> None:
        """Watch the events of the qubesd the tasks talk to by default (in dom0; a qube's tasks use qrexec)."""
        if client.in_qube():
            return
        path = client.SocketTransport().path
        if not os.path.exists(path):
            return
        watch = run_reads.EventsWatch(self.directory, path)
        if watch.start():
            self.watch = watch
            atexit.register(watch.stop)
            display.vvv(f"corral.qubes.run_reads: watching the events of {path}")

    def _forget(self) -> None:
        """Drop the run's shared reads (a task changed something, or failed)."""
        if self.directory is not None:
            run_reads.drop_all(self.directory)

    def v2_runner_on_ok(self, result):
        if result._result.get("changed"):  # pylint: disable=protected-access
            self._forget()

    def v2_runner_item_on_ok(self, result):
        self.v2_runner_on_ok(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._forget()

    def v2_runner_item_on_failed(self, result):
        self._forget()

    def v2_runner_on_unreachable(self, result):
        self._forget()

    def v2_playbook_on_stats(self, stats):
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            os.environ.pop(run_reads.ENV, None)
            self.directory = None
