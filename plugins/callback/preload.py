# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Callback plugin: load the Jinja filters and tests once, in the controller, before the first task."""

from __future__ import annotations

DOCUMENTATION = r"""
name: preload
type: aggregate
short_description: Load the Jinja filters and tests once, before the first task, instead of once per task
version_added: 0.1.0
description:
  - Ansible runs each task in a worker process forked from the controller. ansible-core loads the Jinja filter
    and test plugins on their first use in a process, and the collection loader compiles a collection's Python
    files from source on every import, so a task that templates a filter loads them again in its own worker.
  - At the start of each playbook this callback loads them in the controller itself (ansible.builtin's filters
    and tests, and every filter of corral.qubes), so that every worker inherits them already loaded. It changes
    nothing else and prints nothing; a run of site.yml that changes nothing takes about a
    tenth less time (docs/performance.md).
  - A failure to load a plugin is left to the task that uses it, which reports it as it would without this
    callback (the reason is shown with C(-vvv)).
requirements:
  - Enabled in ansible.cfg (C(callbacks_enabled = corral.qubes.preload) in C([defaults])), as this project's own
    ansible.cfg does.
author:
  - corral.qubes contributors (!UNKNOWN)
"""

import importlib
import pkgutil

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader
from ansible.utils.display import Display

display = Display()

COLLECTION = "corral.qubes"
FILTER_PACKAGE = "ansible_collections.corral.qubes.plugins.filter"


def collection_filters() -> list[str]:
    """The names of this collection's filters, from the FilterModule of each of its filter files."""
    package = importlib.import_module(FILTER_PACKAGE)
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{FILTER_PACKAGE}.{info.name}")
        names.extend(module.FilterModule().filters())
    return sorted(names)


def preload() -> int:
    """Load ansible.builtin's filters and tests and this collection's filters; how many were asked for."""
    # The first lookup of a name outside collections loads every filter (or test) file of ansible-core.
    filter_loader.get("ansible.builtin.dict2items")
    test_loader.get("ansible.builtin.match")
    names = collection_filters()
    for name in names:
        filter_loader.get(f"{COLLECTION}.{name}")
    return 2 + len(names)


class CallbackModule(CallbackBase):
    """Preloads at the start of each playbook."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "corral.qubes.preload"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        try:
            display.vvv(f"corral.qubes.preload: {preload()} Jinja plugins loaded before the first task")
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a task that uses it reports it
            display.vvv(f"corral.qubes.preload: not preloaded ({type(exc).__name__}: {exc})")
