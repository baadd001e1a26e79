#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The os_install module: an operating system installed in an HVM from install media, exactly once."""

from __future__ import annotations

DOCUMENTATION = r"""
module: os_install
short_description: Install an operating system in a Qubes OS HVM from install media, exactly once
version_added: 0.2.0
description:
  - Boots an HVM qube (a StandaloneVM or TemplateVM with C(virt_mode) hvm and an empty C(kernel)) once from its
    install media, as C(qvm-start --cdrom) does, waits until the guest powers itself off (an unattended install's
    last step), and records the install in a qube feature with a salted digest of the answer file, so the qube is
    never installed again.
  - The media are block devices exposed by qubes (an ISO image set up with C(losetup) in the qube that holds it),
    named QUBE:PORT. On R4.3 each becomes a C(required) block assignment with C(devtype=cdrom) and
    C(read-only=True), removed right after the start; on R4.2 a persistent attach whose persistence is turned off
    after the start. They serve the first boot only.
  - With O(state=status) the module only reads; a qube whose record matches the answer file costs a feature read.
    A record of another answer file is reported with a warning and left alone unless O(reinstall=true).
  - Everything is checked before the first change - the release (O(tools) is refused on R4.3), the qube's class
    and virt mode, its power state, that every medium is exposed, the root volume's size.
author:
  - corral.qubes contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reads the record, the qube and the media and reports whether it would install; changes nothing.
  diff_mode:
    support: none
    description: The install is reported in RV(actions); there is no before and after to show.
  platform:
    support: full
    platforms: [qubes]
    description: Runs in dom0, or in a management qube allowed by the qrexec admin policy.
options:
  qubesd_socket:
    description:
      - Path of qubesd's Admin API socket. When not set, E(QUBESD_SOCKET), or C(/var/run/qubesd.sock) in dom0; inside
        a management qube the Admin API is called through qrexec.
    type: path
  name:
    description: The HVM qube.
    type: str
    required: true
  answer_file:
    description:
      - The answer file the media carry (its content). Only a salted digest of it is recorded (PBKDF2-SHA256 with
        the qube's name as salt); it holds passwords and a product key, so it is never logged or returned.
    type: str
    required: true
  state:
    description:
      - V(status) - read what is installed and whether the answer file changed; change nothing.
      - V(installed) - install when the record is missing (or differs and O(reinstall=true)).
    type: str
    choices: [status, installed]
    default: installed
  media:
    description: The install media as QUBE:PORT block devices (for example C(windows-media:loop0)), in boot order.
    type: list
    elements: str
    default: []
  record_feature:
    description: The qube feature that records the install.
    type: str
    default: corral-os-install
  reinstall:
    description: Install again when the recorded digest is of another answer file (the guest wipes its disk).
    type: bool
    default: false
  setup_features:
    description: Features set for the install only and removed after it (Windows 7 needs C(video-model=cirrus)).
    type: dict
    default: {}
  timeout:
    description: Seconds the whole install may take (up to its last power-off) before failing (the qube is left running).
    type: int
    default: 7200
  power_offs:
    description:
      - How many times the installer powers the qube off, its final shutdown included. Qubes ends a domain whose
        guest reboots, so each reboot of the installer is a power-off; after each but the last the qube is started
        again from its disk (the media serve the first boot only), as the Qubes documentation says to do by hand.
      - Windows 7 setup reboots twice (after copying its files and after its first boot from the disk), then its
        last first-logon command shuts it down - V(3). FreeBSD's bsdinstall reboots once, at the end - V(1).
    type: int
    default: 1
  poll:
    description: Seconds between two power state reads while waiting.
    type: float
    default: 10
  min_root_size:
    description: The smallest root volume (bytes) the system installs to; a smaller one fails before any change.
    type: int
    default: 0
  tools:
    description: The guest gets Qubes Windows Tools (R4.2 only, QWT 4.1.69 for Windows 7); refused on R4.3.
    type: bool
    default: false
notes:
  - Make the module's task C(async) with a C(poll) interval to see the wait progress (Ansible prints each poll).
seealso:
  - name: Installing Windows in Qubes OS
    description: The Qubes OS documentation of Windows qubes.
    link: https://doc.qubes-os.org/en/latest/user/templates/windows/windows-qubes-4-1.html
"""

EXAMPLES = r"""
- name: Windows 7 installed once from its ISO and the answer-file ISO
  corral.qubes.os_install:
    name: work
    answer_file: "{{ lookup('template', 'autounattend.xml.j2') }}"
    media: ["untrusted:loop0", "windows-media:loop0"]
    setup_features: {video-model: cirrus}
    power_offs: 3
    min_root_size: "{{ 20 * 1024 ** 3 }}"
    timeout: 7200
  async: 7300
  poll: 30
  no_log: true
"""

RETURN = r"""
release:
  description: The Qubes release of dom0.
  returned: success
  type: str
  sample: "4.3"
exists:
  description: Whether the qube exists.
  returned: success
  type: bool
installed:
  description: Whether a system is installed (recorded) after the task.
  returned: success
  type: bool
answer_changed:
  description: A system is installed from another answer file than this one (and it was not reinstalled).
  returned: success
  type: bool
needs_install:
  description: Whether an install is (still) due; with O(state=status) what O(state=installed) would do.
  returned: success
  type: bool
power:
  description: The qube's power state before the task (C(halted), C(running), C(paused)); null when missing.
  returned: success
  type: str
waited:
  description: Seconds the install took until the guest's last power-off (null when nothing was installed).
  returned: success
  type: float
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
api_calls:
  description: Number of Admin API calls the task made.
  returned: always
  type: int
field:
  description: The parameter an error is about (only on failure).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import os_install, tasks


def main():
    """Run the module."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["os_install"], supports_check_mode=True)
    try:
        result = os_install.run(tasks.connect(module.params), module.params, module.check_mode)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        import traceback  # pylint: disable=import-outside-toplevel
        result = {"failed": True, "changed": False, "exception": traceback.format_exc(),
                  "msg": f"corral.qubes.os_install failed unexpectedly: {type(exc).__name__}: {exc}"}
    tasks.report(module, result)


if __name__ == "__main__":
    main()
