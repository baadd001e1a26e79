#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The prefs module: global qubes-prefs."""

from __future__ import annotations

DOCUMENTATION = r"""
module: prefs
short_description: Set or reset global Qubes OS preferences (qubes-prefs)
version_added: 0.1.0
description:
  - Sets global properties of a Qubes OS system, the ones C(qubes-prefs) shows, such as C(default_netvm),
    C(default_template), C(default_dispvm), C(management_dispvm), C(updatevm), C(clockvm),
    C(default_kernel), C(default_pool), C(default_qrexec_timeout), C(check_updates_vm).
  - Every value is checked before anything changes; a qube named as a value must exist, C(default_template)
    must be a TemplateVM, C(default_netvm) must provide network, C(default_dispvm) and C(management_dispvm)
    must have C(template_for_dispvms), pools must exist.
  - Values are compared with what qubesd reports, including whether a value is the default, so a second run
    reports no change.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
  - corral.qubes.admin_api.check_mode
options:
  properties:
    description:
      - Global properties by name. A qube reference may be an empty string for none.
      - The value V(*default*) resets a property to its default (like C(qubes-prefs --default)).
      - Properties not listed are left alone.
    type: dict
    required: true
seealso:
  - module: corral.qubes.qube
"""

EXAMPLES = r"""
- name: Global preferences of the reference layout
  corral.qubes.prefs:
    properties:
      default_template: fedora-42-xfce
      default_netvm: sys-firewall
      updatevm: sys-firewall
      clockvm: sys-net
      default_dispvm: default-dvm
      management_dispvm: default-mgmt-dvm

- name: Back to the default qrexec timeout
  corral.qubes.prefs:
    properties:
      default_qrexec_timeout: "*default*"
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, what would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["set qubes-prefs default_netvm = 'sys-firewall'"]
prefs:
  description: Every global property after the run, as qubesd reports it (in check mode, the current values
    with the planned ones over them; a planned reset shows the current value).
  returned: success
  type: dict
  sample: {"default_netvm": "sys-firewall", "clockvm": "sys-net"}
api_calls:
  description: Number of Admin API calls the run made.
  returned: always
  type: int
  sample: 3
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
  sample: properties.default_netvm
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["prefs"], supports_check_mode=True)
    tasks.exit_module(module, "prefs")


if __name__ == "__main__":
    main()
