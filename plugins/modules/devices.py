#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The devices module: the device assignments of qubes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: devices
short_description: Assign PCI, USB, block and microphone devices to Qubes OS qubes
version_added: 0.1.0
description:
  - Sets the device assignments of a qube (what C(qvm-device CLASS list -s) shows as assigned), or of several
    qubes in one task, for the device classes C(pci), C(usb), C(block) and C(mic). An assigned device is
    attached when the qube starts (R4.3 modes C(required), C(auto-attach), C(ask-to-attach)).
  - With O(strict=true) (the default) a qube ends with exactly the listed assignments in the managed
    O(classes); others are removed. With O(strict=false) listed assignments are added or corrected and others
    are kept.
  - Qubes R4.3 is driven with its device API (C(Assigned), C(Assign), C(Unassign), C(Set.assignment),
    assignments in C(key='value') form); Qubes R4.2 with the older one (C(List), C(Attach) with
    C(persistent=True), C(Detach), C(Set.persistent)). The release is read from dom0.
  - Everything is checked before the first change; the task fails naming the field when a device is not
    present on its backend, when another running qube holds it, when a PCI device would go to a qube set to
    PVH, or when a class, mode or option is unknown.
  - PCI devices are passed through at start, so a PCI change on a running qube needs it halted; with
    O(shutdown_if_needed=true) the qube is shut down, changed and started again.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
  - corral.qubes.admin_api.created_in_run
  - corral.qubes.admin_api.check_mode
options:
  name:
    description:
      - The qube whose assignments to set. Give O(name) with O(devices), or O(qubes), not both.
    type: str
  devices:
    description:
      - The qube's assignments. An empty list (with O(strict=true)) removes every assignment of the managed
        O(classes).
    type: list
    elements: dict
    suboptions:
      class:
        description: The device class.
        type: str
        required: true
        choices: [pci, usb, block, mic]
      device:
        description:
          - The device as BACKEND:PORT, for example C(dom0:00_19.0) (a PCI slot in dom0) or C(sys-usb:2-1)
            (a USB port of sys-usb).
        type: str
        required: true
      device_id:
        description:
          - R4.3 only. Pins the assignment to the device with this id in the port (for example
            C(0x8086:0x1502::p020000)); V(*) assigns whatever device is in the port.
          - When not given, the assignment takes the id of the device present now (as C(qvm-device assign)
            does), and an existing assignment of the port is kept whatever its id.
          - A device of a backend qube that is not running can only be assigned with O(devices[].device_id).
        type: str
      mode:
        description:
          - R4.3 assignment mode. PCI devices can only be V(required). Defaults to V(required) for PCI, else
            V(auto-attach). R4.2 has no modes; leave it out there.
        type: str
        choices: [required, auto-attach, ask-to-attach]
      options:
        description:
          - Assignment options. PCI - C(no-strict-reset), C(permissive). Block - C(read-only), C(frontend-dev),
            C(devtype). Booleans are sent as C(True) / C(False).
        type: dict
  qubes:
    description:
      - Several qubes in one task, each mapped to its O(devices) list, or to a mapping with C(devices) (that list)
        and C(shutdown_if_needed) (the qube's own O(shutdown_if_needed), over the task's).
      - The filter P(corral.qubes.layout_devices#filter) makes it from a layout.
    type: dict
  strict:
    description:
      - V(true) - exactly the listed assignments in the managed O(classes), others removed.
      - V(false) - listed assignments added or corrected, others kept.
    type: bool
    default: true
  classes:
    description:
      - The classes O(strict=true) manages. Assignments of other classes are left alone.
    type: list
    elements: str
    choices: [pci, usb, block, mic]
    default: [pci, usb, block, mic]
  shutdown_if_needed:
    description:
      - Allow shutting down a running qube whose PCI devices change (it is started again afterwards). Without
        it such a change fails before anything is changed.
      - A qube that provides network to running qubes is not shut down; the task fails naming them.
    type: bool
    default: false
seealso:
  - module: corral.qubes.qube
  - name: How to use PCI devices
    description: The Qubes OS documentation of PCI passthrough.
    link: https://doc.qubes-os.org/en/latest/user/how-to-guides/how-to-use-pci-devices.html
"""

EXAMPLES = r"""
- name: Both network cards of the T420s in sys-net
  corral.qubes.devices:
    name: sys-net
    devices:
      - {class: pci, device: "dom0:00_19.0", options: {no-strict-reset: true}}
      - {class: pci, device: "dom0:03_00.0", options: {no-strict-reset: true}}
    classes: [pci]
    shutdown_if_needed: true

- name: The USB controllers in sys-usb, a YubiKey auto-attached to the vault
  corral.qubes.devices:
    qubes:
      sys-usb:
        - {class: pci, device: "dom0:00_1a.0", options: {no-strict-reset: true}}
        - {class: pci, device: "dom0:00_1d.0", options: {no-strict-reset: true}}
      vault:
        - {class: usb, device: "sys-usb:2-1", device_id: "0x1050:0x0407::u03**01", mode: ask-to-attach}

- name: Every qube of a layout that lists devices, each with its own shutdown_if_needed
  corral.qubes.devices:
    qubes: "{{ qubes_layout | corral.qubes.layout_devices }}"

- name: Take every PCI device away from a test qube
  corral.qubes.devices:
    name: test
    devices: []
    classes: [pci]
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, what would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["assign pci device dom0:00_1a.0 (0x8086:0x1c2d::p0c0320) to sys-usb as required with no-strict-reset=True"]
devices:
  description: Each qube's assignments of the managed classes after the run (in check mode, as planned).
  returned: success
  type: dict
  sample:
    sys-usb:
      - {class: pci, device: "dom0:00_1a.0", device_id: "0x8086:0x1c2d::p0c0320", mode: required,
         options: {no-strict-reset: "True"}}
api_calls:
  description: Number of Admin API calls the run made.
  returned: always
  type: int
  sample: 3
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
  sample: devices[0].device
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["devices"], supports_check_mode=True)
    tasks.exit_module(module, "devices")


if __name__ == "__main__":
    main()
