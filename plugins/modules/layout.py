#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The layout module: a whole layout converged in one task, each step as its own module would run it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: layout
short_description: Converge a whole Qubes OS layout in one task - templates, qubes, devices, preferences, firewall, policy
version_added: 0.1.0
description:
  - Runs the steps of a layout in one task, in this order - O(templates) (as M(corral.qubes.template), one entry
    at a time), O(qubes) (as M(corral.qubes.qube) with its C(qubes) option, network qubes and templates before the
    qubes that use them), O(devices) (as M(corral.qubes.devices)), O(prefs) (as M(corral.qubes.prefs)),
    O(firewall) (as M(corral.qubes.firewall)), O(policies) (as M(corral.qubes.policy), one file at a time),
    O(audits) (as M(corral.qubes.clipboard_audit)), O(prune) (each qube removed as M(corral.qubes.qube) with
    O(ignore:state=absent) removes it) and O(info) (as M(corral.qubes.qube_info), a read of what the steps leave).
    An empty step is left out.
  - Each step is the same code as its module, with the same checks and messages, so the task changes what those
    tasks would change, one after the other. What this one task saves is Ansible's cost of a task per step and the
    reads a step makes again - the steps share one connection, and until a step changes something the reads of
    one step serve the next (one C(admin.vm.List) for a run that changes nothing).
  - The first step that fails ends the task, before the steps after it. Its message and RV(field) name this task's
    option (V(devices.work.pci), V(templates[1].names)); a step's bad input fails that step before it changes
    anything, and RV(steps) holds what the steps before it did.
  - The role C(corral.qubes.qubes) converges its layout with this module.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
  - corral.qubes.admin_api.check_mode
  - corral.qubes.admin_api.created_in_run
options:
  templates:
    description:
      - Templates to install, upgrade or remove with C(qvm-template), one entry per call of M(corral.qubes.template),
        in order. Each entry takes the options of that module (except O(qubesd_socket), given once here).
    type: list
    elements: dict
    default: []
    suboptions:
      names:
        description: Template names, as C(qvm-template) knows them.
        type: list
        elements: str
        required: true
      state:
        description: As the O(corral.qubes.template#module:state) of M(corral.qubes.template).
        type: str
        choices: [present, latest, reinstalled, absent]
        default: present
      enablerepo:
        description: Repositories to enable in addition to the default ones (C(--enablerepo)).
        type: list
        elements: str
        default: []
      pool:
        description: Storage pool for templates that are installed.
        type: str
      releasever:
        description: Qubes release whose repositories to use (C(--releasever)).
        type: str
      updatevm:
        description: The qube that downloads templates (C(--updatevm)); an empty string means dom0 itself.
        type: str
      repo_files:
        description: Repository configuration files (C(--repo-files)).
        type: list
        elements: path
        default: []
      qvm_template:
        description: The C(qvm-template) program, a name looked up in E(PATH) or a path.
        type: path
        default: qvm-template
      versions:
        description: Read each installed template's version to report it (V(false) - one read per template with
          O(templates[].state=present), reported as V(installed)).
        type: bool
        default: true
  qubes:
    description:
      - Qube names mapped to their options, as the O(corral.qubes.qube#module:qubes) option of M(corral.qubes.qube)
        takes them; every qube is planned before the first change.
    type: dict
    default: {}
  devices:
    description:
      - Qube names mapped to their devices, as the O(corral.qubes.devices#module:qubes) option of
        M(corral.qubes.devices) takes them.
    type: dict
    default: {}
  prefs:
    description: Global properties, as the O(corral.qubes.prefs#module:properties) of M(corral.qubes.prefs).
    type: dict
    default: {}
  firewall:
    description:
      - Qube names mapped to their firewall (C(policy), C(rules), C(dns)), as the
        O(corral.qubes.firewall#module:qubes) option of M(corral.qubes.firewall) takes them.
    type: dict
    default: {}
  policies:
    description:
      - qrexec policy files, one entry per call of M(corral.qubes.policy), in order. Each entry takes the options of
        that module (except O(policy_dir), given once here).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The file's name without C(.policy), for example V(30-corral-flows), or V(include/NAME).
        type: str
        required: true
      rules:
        description: The rules, in order, as the O(corral.qubes.policy#module:rules) of M(corral.qubes.policy).
        type: list
        elements: dict
      content:
        description: The file's text instead of O(policies[].rules).
        type: str
      header:
        description: A comment written above the rules (with O(policies[].rules) only). An empty string writes none.
        type: str
        default: "Managed by corral.qubes (Ansible): edits here are replaced on the next run."
      state:
        description: V(present) writes the file; V(absent) removes it.
        type: str
        choices: [present, absent]
        default: present
  audits:
    description:
      - Flows to audit after the policy files are written, one entry per call of M(corral.qubes.clipboard_audit).
        An effective flow its matrix does not declare fails the task. Reads only.
    type: list
    elements: dict
    default: []
    suboptions:
      matrix:
        description: Domain -> the domains its data may flow into.
        type: dict
        required: true
      domains:
        description: The managed domains; by default every domain the matrix names.
        type: list
        elements: str
      service:
        description: The qrexec service whose flows to check.
        type: str
        default: qubes.ClipboardPaste
  prune:
    description:
      - Qubes to remove last, each as M(corral.qubes.qube) with O(ignore:state=absent) removes it (the role
        C(corral.qubes.qubes) passes the qubes this collection created that its layout no longer declares).
    type: list
    elements: str
    default: []
  info:
    description:
      - Qubes to read last, as M(corral.qubes.qube_info) reads them, after the other steps (so it sees the templates and
        qubes they create); its result is C(steps.info) of RV(steps). Reads only. Left out, nothing is read after
        the steps.
    type: dict
    suboptions:
      names:
        description: As O(corral.qubes.qube_info#module:names) (empty - every qube but dom0).
        type: list
        elements: str
        default: []
      sections:
        description: As O(corral.qubes.qube_info#module:sections).
        type: list
        elements: str
        choices: [properties, features, tags, volumes, firewall]
        default: [properties, features, tags, volumes, firewall]
      features_only:
        description: As O(corral.qubes.qube_info#module:features_only).
        type: list
        elements: str
      missing:
        description: As O(corral.qubes.qube_info#module:missing) (V(skip) in check mode, where an earlier step would
          create the qube).
        type: str
        choices: [fail, skip]
        default: fail
  policy_dir:
    description:
      - Read and write the policy files of O(policies) and O(audits) in this directory instead of through the
        policy admin API (as the O(corral.qubes.policy#module:policy_dir) of M(corral.qubes.policy)).
    type: path
attributes:
  check_mode:
    support: full
    description: Every step in check mode (the whole plan from what qubesd reports); no mutating call, no file
      written.
  diff_mode:
    support: full
    description:
      - The diffs of every step - a qube's headed by its name, a policy file's by its path, any other by its step
        (V(prefs), V(devices), or V(prune) and the qube removed).
notes:
  - Runs C(qvm-template) for a template to install or remove, so the module runs in dom0 when O(templates) is given;
    from a management qube give only the steps that the qrexec admin policy allows.
seealso:
  - module: corral.qubes.layout_check
  - module: corral.qubes.qube
  - module: corral.qubes.template
"""

EXAMPLES = r"""
- name: A small layout in one task
  corral.qubes.layout:
    templates:
      - names: [fedora-42-xfce]
    qubes:
      sys-firewall: {class: AppVM, template: fedora-42-xfce, label: green, properties: {provides_network: true}}
      work: {template: fedora-42-xfce, label: blue, netvm: sys-firewall}
    prefs:
      default_netvm: sys-firewall
    firewall:
      work:
        rules:
          - {dsthost: github.com, proto: tcp, dstports: 443}
    policies:
      - name: 30-corral-flows
        rules: "{{ {'qubes.ClipboardPaste': {'work': ['personal']}} | corral.qubes.flow_policy }}"
    audits:
      - matrix: {work: [personal]}
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, what would be done), in order, each headed by its step.
  returned: always
  type: list
  elements: str
  sample: ["qubes: work: create AppVM work (template fedora-42-xfce, label blue)", "prefs: set qubes-prefs default_netvm = 'sys-firewall'"]
steps:
  description:
    - The result of each step that ran, as its module returns it, with the Admin API calls of that step in
      C(api_calls). O(qubes), O(devices), O(prefs), O(firewall) and O(info) map to one result each; O(templates),
      O(policies), O(audits) and O(prune) to a list, an entry per entry of the option.
  returned: always
  type: dict
  sample: {"qubes": {"changed": false, "actions": [], "qubes": {"work": {"changed": false, "actions": []}}, "api_calls": 3}}
step:
  description: The step that failed (only on failure), as RV(actions) heads it.
  returned: failure
  type: str
  sample: devices
api_calls:
  description: Number of Admin API calls the task made.
  returned: always
  type: int
  sample: 40
field:
  description: The option a validation error is about, named from this task's options (only on failure).
  returned: failure
  type: str
  sample: devices.sys-usb.devices
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["layout"], supports_check_mode=True)
    tasks.exit_module(module, "layout")


if __name__ == "__main__":
    main()
