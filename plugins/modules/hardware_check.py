#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The hardware_check module: does a layout fit the machine."""

from __future__ import annotations

DOCUMENTATION = r"""
module: hardware_check
short_description: Check a Qubes OS machine against its hardware profile and a layout against the machine
version_added: 0.1.0
description:
  - Reads the host's facts the way dom0 offers them - memory, CPUs and virtualization capabilities from
    C(xl info), the PCI devices from dom0's device API (C(admin.vm.device.pci.Available)), the pool's size
    from C(admin.pool.Info) - and compares them with a hardware O(profile).
  - Then checks the O(layout) against them - the memory of the qubes that start at boot plus dom0's share
    fits the RAM; the volume sizes fit the pool (over-commit of a thin pool is a warning); HVM qubes need
    VT-x (C(hvm) in C(virt_caps)); PCI passthrough needs VT-d (C(hvm_directio)); every PCI device the layout
    assigns exists, and no device goes to two qubes that both start at boot.
  - Returns a readable report, a table with one line per check, and fails when a check fails. It changes
    nothing, so a play can run it before any change.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
options:
  profile:
    description:
      - The machine's hardware profile (see the role P(corral.qubes.hardware#role) for the T420s).
    type: dict
    required: true
    suboptions:
      name:
        description: A name for the report.
        type: str
      memory_mib:
        description: Installed memory in MiB (Xen reports a little less; 5% is allowed).
        type: int
      cores:
        description: CPU cores.
        type: int
      threads:
        description: CPU threads.
        type: int
      vtx:
        description: Whether the machine has VT-x (then C(hvm) must be in C(virt_caps)).
        type: bool
      vtd:
        description: Whether the machine has VT-d (then C(hvm_directio) must be in C(virt_caps)).
        type: bool
      disk_bytes:
        description: Disk size in bytes; a pool larger than it is a warning.
        type: int
      pci:
        description: PCI ports (as dom0 names them, C(00_19.0)) to a description of the device expected there.
        type: dict
  layout:
    description:
      - The layout's qubes, qube name to the options of M(corral.qubes.qube) and C(devices) (as the role
        P(corral.qubes.qubes#role) takes them in C(qubes_layout)). Missing values are read from qubes that
        exist, else qubesd's defaults (memory 400 MiB, a private volume of 2 GiB).
    type: dict
    default: {}
  xl_command:
    description:
      - The C(xl) command, split like a shell would; C(info) is appended. In dom0 C(xl info) needs root, for
        example V(sudo -n xl).
    type: str
    default: xl
  pool:
    description: The pool the layout's volumes go to; defaults to the global C(default_pool).
    type: str
  dom0_memory_mib:
    description: dom0's share of the memory (its C(dom0_mem) maximum).
    type: int
    default: 4096
seealso:
  - module: corral.qubes.devices
"""

EXAMPLES = r"""
- name: Does the layout fit the T420s?
  corral.qubes.hardware_check:
    profile: {name: t420s, memory_mib: 16384, cores: 2, threads: 4, vtx: true, vtd: true,
              disk_bytes: 256060514304, pci: {"00_19.0": Intel 82579LM ethernet}}
    layout: "{{ qubes_layout }}"
    xl_command: sudo -n xl
  register: fit

- name: The report
  ansible.builtin.debug:
    var: fit.report_lines
"""

RETURN = r"""
checks:
  description: One entry per check.
  returned: success
  type: list
  elements: dict
  sample: [{"check": "VT-d (hvm_directio)", "expected": "hvm_directio in virt_caps", "found": "pv hvm hvm_directio",
            "result": "ok", "note": ""}]
report:
  description: The checks as a table, one line per check.
  returned: success
  type: str
report_lines:
  description: The report's lines.
  returned: success
  type: list
  elements: str
facts:
  description: What was read - memory and CPUs from C(xl info), C(virt_caps), the host's PCI devices, the pool.
  returned: success
  type: dict
  sample: {"total_memory_mib": 16254, "cores": 2, "threads": 4, "virt_caps": ["pv", "hvm", "hvm_directio"]}
api_calls:
  description: Number of Admin API calls the run made.
  returned: always
  type: int
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["hardware_check"], supports_check_mode=True)
    tasks.exit_module(module, "hardware_check")


if __name__ == "__main__":
    main()
