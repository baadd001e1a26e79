# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A connection named like one into a qube, that runs commands on this machine (tests only)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: qrexec
short_description: Local commands under a qube connection's name (tests only)
description:
  - Runs everything on the controller, but is named C(qrexec), so corral.qubes' modules take it for a connection
    into a qube.
extends_documentation_fragment:
  - connection_pipelining
author: corral.qubes developers
"""

from ansible.plugins.connection.local import Connection as LocalConnection


class Connection(LocalConnection):
    """The local connection, under another name."""

    transport = "corral_test.probe.qrexec"
