# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Callback plugin: load the Jinja filters and tests and the template lexer once, in the controller, and freeze
what the controller has built, before the first task."""

from __future__ import annotations

DOCUMENTATION = r"""
name: preload
type: aggregate
short_description: Load the Jinja plugins and lexer once, before the first task, instead of once per task
version_added: 0.1.0
description:
  - Ansible runs each task in a worker process forked from the controller. ansible-core loads the Jinja filter
    and test plugins on their first use in a process, and the collection loader compiles a collection's Python
    files from source on every import, so a task that templates a filter loads them again in its own worker.
  - At the start of each playbook this callback loads them in the controller itself (ansible.builtin's filters
    and tests, every filter of corral.qubes, and the lookups its roles use, C(env), C(file) and C(template)), so
    that every worker inherits them already loaded, and builds the Jinja lexer once (a worker's first template
    would build it again).
  - When a play starts, it moves every object the controller holds (the inventory, the plays, the loaded
    plugins) to Python's permanent generation (C(gc.freeze)), so that no garbage collection, in the controller
    or in a worker, walks them again, and a worker does not copy the memory pages they live in.
  - It changes nothing else and prints nothing (with C(-vvv), what it did); a run of site.yml that changes
    nothing takes about a seventh less time (docs/performance.md).
  - A failure to load a plugin is left to the task that uses it, which reports it as it would without this
    callback (the reason is shown with C(-vvv)).
requirements:
  - Enabled in ansible.cfg (C(callbacks_enabled = corral.qubes.preload) in C([defaults])), as this project's own
    ansible.cfg does.
author:
  - corral.qubes contributors (!UNKNOWN)
"""

import gc
import importlib
import pkgutil

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, lookup_loader, test_loader
from ansible.template import Templar
from ansible.utils.display import Display

try:  # ansible-core 2.19 and later: only a string marked as trusted is a template
    from ansible.template import trust_as_template
except ImportError:  # ansible-core 2.18: every string is
    def trust_as_template(text: str) -> str:
        """The text itself (2.18 templates any string)."""
        return text

display = Display()

COLLECTION = "corral.qubes"
FILTER_PACKAGE = "ansible_collections.corral.qubes.plugins.filter"
LOOKUPS = ("env", "file", "template")
"""The lookups this collection's roles use (the hardware role's default xl command, the Fedora role's src files, the
Windows and FreeBSD answer files); the collection's tests find every lookup its roles name among them."""


def collection_filters() -> list[str]:
    """The names of this collection's filters, from the FilterModule of each of its filter files."""
    package = importlib.import_module(FILTER_PACKAGE)
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{FILTER_PACKAGE}.{info.name}")
        names.extend(module.FilterModule().filters())
    return sorted(names)


def preload() -> int:
    """Load ansible.builtin's filters and tests, this collection's filters and the lookups its roles use; how many
    were asked for."""
    # The first lookup of a name outside collections loads every filter (or test) file of ansible-core.
    filter_loader.get("ansible.builtin.dict2items")
    test_loader.get("ansible.builtin.match")
    names = collection_filters()
    for name in names:
        filter_loader.get(f"{COLLECTION}.{name}")
    for name in LOOKUPS:
        lookup_loader.get(f"ansible.builtin.{name}")
    return 2 + len(names) + len(LOOKUPS)


def build_lexer() -> None:
    """Template one expression, which builds the lexer every later template of the process (and of its workers)
    uses: ansible-core keeps it by the environment's settings, which a task's templar shares."""
    Templar(loader=DataLoader()).template(trust_as_template("{{ 0 }}"))


def freeze() -> int:
    """Freeze every object the garbage collector tracks (``gc.freeze``); how many are frozen. What is garbage
    already stays, as it is: collecting it first would cost more than the memory it holds."""
    gc.freeze()
    return gc.get_freeze_count()


class CallbackModule(CallbackBase):
    """Preloads at the start of each playbook, freezes at the start of each play."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "corral.qubes.preload"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        try:
            display.vvv(f"corral.qubes.preload: {preload()} Jinja plugins loaded before the first task")
        except Exception as exc:  # pylint: disable=broad-exception-caught  # a task that uses it reports it
            display.vvv(f"corral.qubes.preload: not preloaded ({type(exc).__name__}: {exc})")
        try:
            build_lexer()
        except Exception as exc:  # pylint: disable=broad-exception-caught  # the first template builds it
            display.vvv(f"corral.qubes.preload: the lexer is not built ({type(exc).__name__}: {exc})")

    def v2_playbook_on_play_start(self, play):
        # After the play is loaded (its roles and tasks), before its first task's worker is forked.
        display.vvv(f"corral.qubes.preload: {freeze()} objects frozen before the play's first task")
