# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of corral.qubes.layout: the task in-process on a local connection, else the module."""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.plugin_utils.in_process import InProcessTask


class ActionModule(InProcessTask):
    """corral.qubes.layout."""

    TASK = "layout"
