# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of corral_test.probe.echo: corral.qubes' in-process base over the echo task."""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.plugin_utils.in_process import InProcessTask
from ansible_collections.corral_test.probe.plugins.module_utils import echo


class ActionModule(InProcessTask):
    """corral_test.probe.echo."""

    TASK = "echo"
    COLLECTION = "corral_test.probe"

    def argument_spec(self) -> dict:
        return echo.ARGUMENT_SPEC

    def execute(self, params: dict, check_mode: bool, diff: bool) -> dict:
        return echo.run(params, check_mode, diff)
