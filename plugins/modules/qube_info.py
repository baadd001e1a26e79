#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The qube_info module: facts about qubes, shaped as layout data."""

from __future__ import annotations

DOCUMENTATION = r"""
module: qube_info
short_description: Read qubes as layout data (adopt an existing Qubes OS system)
version_added: 0.1.0
description:
  - Reads one, several or all qubes and returns each twice, once as C(layout) data with exactly the options of
    M(corral.qubes.qube) (only explicit, settable properties; tags qubesd sets itself left out; services apart
    from features; sizes with units) so it can be pasted back into an inventory, and once as C(details) with
    the power state, every property with its type and default flag, every tag and every volume.
  - Reads use one C(property.GetAll) per qube rather than a call per property.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Reads only.
options:
  names:
    description: Qubes to read. Left out or empty, every qube except dom0.
    type: list
    elements: str
    default: []
  sections:
    description: What to read besides class, power state, label, template and netvm.
    type: list
    elements: str
    choices: [properties, features, tags, volumes, firewall]
    default: [properties, features, tags, volumes, firewall]
  features_only:
    description:
      - Read only these features (and C(service.NAME) features for services), one call each, instead of every
        feature of each qube. Left out, all are read.
    type: list
    elements: str
  missing:
    description:
      - What a name of O(names) that is no qube does. V(fail) fails the task naming it; V(skip) leaves it out
        of the result and lists it in RV(missing) (for a check-mode run, where an earlier task would have
        created it).
    type: str
    choices: [fail, skip]
    default: fail
seealso:
  - module: corral.qubes.qube
"""

EXAMPLES = r"""
- name: Read the whole system
  corral.qubes.qube_info:
  register: system

- name: Write it down as layout data
  ansible.builtin.copy:
    content: "{{ {'qubes': system.qubes} | to_nice_yaml }}"
    dest: adopted-layout.yml
    mode: "0644"

- name: Power state and tags of two qubes
  corral.qubes.qube_info:
    names: [work, personal]
    sections: [tags]
  register: two

- name: Converge from data read elsewhere
  corral.qubes.qube:
    name: "{{ item.key }}"
    class: "{{ item.value.class }}"
    label: "{{ item.value.label }}"
    template: "{{ item.value.template | default(omit) }}"
    properties: "{{ item.value.properties }}"
  loop: "{{ system.qubes | dict2items }}"
"""

RETURN = r"""
qubes:
  description: Qube name to layout data, with the options of M(corral.qubes.qube).
  returned: success
  type: dict
  sample:
    work:
      class: AppVM
      state: running
      label: blue
      template: fedora-42-xfce
      netvm: sys-vpn-work
      properties: {memory: 800}
      features: {}
      services: {cups: false}
      tags: [work]
      volumes: {private: 20GiB, volatile: 10GiB}
      firewall: [{action: accept, dsthost: 198.51.100.0/24}, {action: drop}]
details:
  description: Qube name to everything read, power state, uuid, properties with C(value), C(type) and
    C(default), all tags, volumes with every field of C(admin.vm.volume.Info).
  returned: success
  type: dict
  sample:
    work:
      power_state: Running
      uuid: 2d6f1e06-3b6c-4d5c-9a8f-1f2e3d4c5b6a
      properties: {memory: {value: 800, type: int, default: false}}
missing:
  description: Names of O(names) that are no qube (only with O(missing=skip); otherwise the task fails).
  returned: success
  type: list
  elements: str
  sample: [fedora-42-secure]
api_calls:
  description: Number of Admin API calls the run made.
  returned: always
  type: int
  sample: 42
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["qube_info"], supports_check_mode=True)
    tasks.exit_module(module, "qube_info")


if __name__ == "__main__":
    main()
