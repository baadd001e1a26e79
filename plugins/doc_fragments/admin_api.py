# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How modules reach the Qubes Admin API."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """Options shared by every module that talks to qubesd."""

    DOCUMENTATION = r"""
options:
  qubesd_socket:
    description:
      - Path of qubesd's Admin API socket.
      - When not set, the module uses E(QUBESD_SOCKET), or C(/var/run/qubesd.sock) in dom0; inside a
        management qube (no dom0 files, C(qrexec-client-vm) present) it calls the Admin API through qrexec,
        where the qrexec admin policy decides what it may do.
    type: path
attributes:
  action:
    support: full
    description: On a local connection without C(become), C(async) or a task C(environment), the action plugin
      runs the task inside Ansible's process (same validation, same result, C(no_log) values masked alike);
      otherwise the module runs as usual. A connection into a qube (where there is no qubesd) is refused unless
      the host sets C(corral_qubes_admin_host=true) (a management qube).
  platform:
    support: full
    platforms: [qubes]
    description: Runs in dom0, or in a management qube allowed by the qrexec admin policy.
notes:
  - Talks to the Qubes Admin API itself (no C(qubesadmin) Python package needed), so it runs in dom0 or in a
    management qube with the C(local) connection.
"""

    CHECK_MODE = r"""
attributes:
  check_mode:
    support: full
    description: Computes the whole plan from what qubesd reports and makes no mutating call.
  diff_mode:
    support: full
    description: Shows the fields that change, before and after, in the canonical form qubesd reports.
"""

    CREATED_IN_RUN = r"""
options:
  created_in_run:
    description:
      - Qubes that an earlier task of the same run creates. In check mode a qube the task names that does not
        exist yet is a warning ("check mode assumes an earlier task of this run creates it") only when it is in
        this list; any other missing qube is the same error as in a real run.
      - Left out, check mode assumes that any missing qube may be created by an earlier task. The role
        C(corral.qubes.qubes) passes what M(corral.qubes.layout_check) found the layout creates.
    type: list
    elements: str
"""
