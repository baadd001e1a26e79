#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role_arguments module: its work is done by the action plugin of the same name (it needs the task's variables)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: role_arguments
short_description: Check the variables of several corral.qubes roles against their argument specs in one task
version_added: 0.1.0
description:
  - Validates the variables of each named role entry point as Ansible validates them when the role runs - the
    role's C(meta/argument_specs.yml), each option's variable taken from the task's variables and templated, the
    same validator as C(ansible.builtin.validate_argument_spec) - and fails listing every error of every role,
    each headed by its role and entry point.
  - A playbook that imports several roles can import them with C(rolespec_validate=false) and run this task before
    them, so that a bad variable of any role fails before anything is read or changed (a role validated when it
    starts is validated after the roles before it have run), for the cost of one task instead of one per role. The
    collection's C(site.yml) does so.
  - The roles' defaults are seen when the roles are imported (C(ansible.builtin.import_role)) into the same play,
    as Ansible makes the defaults of imported roles visible to the whole play.
  - Reads only files of this collection; it reads nothing of dom0 and changes nothing.
author:
  - corral.qubes contributors (!UNKNOWN)
options:
  roles:
    description:
      - The role entry points to check, in order - a role name of this collection (V(corral.qubes.fedora), entry
        point C(main)) or a mapping with C(name) and C(entry_point).
    type: list
    elements: raw
    required: true
attributes:
  action:
    support: full
    description: All the work is in the action plugin, on the controller.
  check_mode:
    support: full
    description: It only reads, in check mode as otherwise.
  diff_mode:
    support: none
    description: Nothing changes.
  platform:
    support: full
    platforms: posix
    description: The controller only.
notes:
  - Only roles of this collection that have an argument spec can be named.
seealso:
  - name: Role argument validation
    description: How Ansible validates a role's variables against its argument spec when the role runs.
    link: https://docs.ansible.com/ansible/latest/playbook_guide/playbooks_reuse_roles.html#role-argument-validation
  - module: corral.qubes.layout_check
"""

EXAMPLES = r"""
- name: Every role's variables, checked before anything is read or changed
  corral.qubes.role_arguments:
    roles:
      - corral.qubes.whonix
      - corral.qubes.fedora
      - {name: corral.qubes.qubes, entry_point: converge}

- name: Then each role without its own validation task
  ansible.builtin.import_role:
    name: corral.qubes.fedora
    rolespec_validate: false
"""

RETURN = r"""
roles:
  description: The role entry points checked, as C(ROLE (ENTRY POINT)).
  returned: when O(roles) is understood
  type: list
  elements: str
  sample: ["corral.qubes.fedora (main)", "corral.qubes.qubes (converge)"]
argument_errors:
  description: The errors of each role entry point that has some (only on failure).
  returned: failure
  type: dict
  sample: {"corral.qubes.whonix (main)": ["argument 'whonix_gateway_memory' is of type str and we were unable to convert to int"]}
field:
  description: The option of this task that is not understood (V(roles), or one it does not take; only on such a
    failure).
  returned: failure
  type: str
  sample: roles
"""
