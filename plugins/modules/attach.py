#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The attach module: a block device attached to a running qube now (until it stops), or detached."""

from __future__ import annotations

DOCUMENTATION = r"""
module: attach
short_description: Attach a block device to a running Qubes OS qube now, or detach it
version_added: 0.2.0
description:
  - Attaches a block device that a qube exposes (a disk, a USB stick's partition, a file set up with C(losetup))
    to a running qube now, as C(qvm-block attach [--ro] [-o frontend-dev=xvdi] FRONTEND BACKEND:PORT) does, or
    detaches it (O(state=detached)). The attachment lasts until the frontend stops; nothing is assigned. To attach
    a device at every start, assign it with M(corral.qubes.devices).
  - Only the C(block) class is attached (the only class the collection attaches today); PCI devices are passed
    through at start (M(corral.qubes.devices)), and USB and microphone attachments are not handled.
  - Qubes R4.3 is driven with its device API (C(Attached), C(Attach) with the assignment's C(key='value')
    serialization in mode C(manual) and the device id C(Available) shows for the port, C(Detach)); Qubes R4.2 with
    the older one (C(List) lines with C(persistent=no), C(Attach) with C(k=v) options and no C(persistent=True),
    C(Detach)). The release is read from dom0.
  - Everything is checked before the first change, and the task fails naming the field - O(device) not
    C(BACKEND:PORT), the backend missing, not running or not exposing the port (the message lists what it
    exposes), the device attached to another running qube (qubesd would refuse it), the frontend O(name) missing
    or not running, an unknown option.
  - A device already attached to the frontend with the same options is left alone (changed false). Attached with
    other options, the task fails naming O(options) and the options it has - detach it first with
    O(state=detached) and attach it again; the module does not pull a disk that may be in use from a running qube
    on its own. A device that is attached because it is assigned (M(corral.qubes.devices)) counts as attached, but
    O(state=detached) refuses it (unassign it instead).
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
  - corral.qubes.admin_api.check_mode
options:
  name:
    description: The frontend, the running qube that gets the device.
    type: str
    required: true
  device:
    description:
      - The device as BACKEND:PORT, for example C(sys-usb:sda1) (a partition of a USB stick in sys-usb) or
        C(untrusted:loop0) (a file set up with C(losetup -f --show FILE) in the qube C(untrusted)).
    type: str
    required: true
  class:
    description: The device class. Only block devices are attached.
    type: str
    choices: [block]
    default: block
  options:
    description:
      - The attachment's options, used with O(state=attached) - C(read-only) (a boolean), C(frontend-dev) (the
        disk's name in the frontend, C(xvdi) or later; C(xvda) to C(xvdd) are the qube's own volumes), C(devtype)
        (C(disk) or C(cdrom)). Booleans are sent as C(True) / C(False).
      - They are compared with the attachment's to decide whether anything changes.
    type: dict
    default: {}
  state:
    description:
      - V(attached) - the device is attached to O(name) with O(options).
      - V(detached) - the device is not attached to O(name) (a halted frontend has nothing attached).
    type: str
    choices: [attached, detached]
    default: attached
notes:
  - The attachment does not survive a restart of the frontend or of the backend.
seealso:
  - module: corral.qubes.devices
  - name: How to use block storage devices
    description: The Qubes OS documentation of qvm-block.
    link: https://doc.qubes-os.org/en/latest/user/how-to-guides/how-to-use-block-storage-devices.html
"""

EXAMPLES = r"""
- name: A disk image (set up with losetup in the storage qube) attached read-only to the backup qube as xvdi
  corral.qubes.attach:
    name: backup
    device: storage:loop0
    options: {read-only: true, frontend-dev: xvdi}

- name: A USB stick's first partition attached to the work qube as a disk
  corral.qubes.attach:
    name: work
    device: sys-usb:sda1

- name: And detached again
  corral.qubes.attach:
    name: work
    device: sys-usb:sda1
    state: detached
"""

RETURN = r"""
release:
  description: The Qubes release of dom0.
  returned: success
  type: str
  sample: "4.3"
attached_before:
  description:
    - The devices of the class attached to O(name) before the task, as C(BACKEND:PORT (option=value, ...)); a
      device attached because it is assigned says C(assigned) (and on R4.3 the assignment's mode).
  returned: success
  type: list
  elements: str
  sample: ["sys-usb:sda (assigned required, read-only=True)"]
attached_after:
  description: The devices of the class attached to O(name) after the task (in check mode, as planned).
  returned: success
  type: list
  elements: str
  sample: ["sys-usb:sda (assigned required, read-only=True)", "storage:loop0 (frontend-dev=xvdi, read-only=True)"]
actions:
  description: What was done (or, in check mode, what would be done).
  returned: success
  type: list
  elements: str
  sample: ["attach block device storage:loop0 (0000:0000::?******) to backup with frontend-dev=xvdi, read-only=True"]
api_calls:
  description: Number of Admin API calls the task made.
  returned: always
  type: int
  sample: 4
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
  sample: device
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["attach"], supports_check_mode=True)
    tasks.exit_module(module, "attach")


if __name__ == "__main__":
    main()
