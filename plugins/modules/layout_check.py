#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The layout_check module: a whole layout checked before the first change."""

from __future__ import annotations

DOCUMENTATION = r"""
module: layout_check
short_description: Check a whole layout against the system before changing anything
version_added: 0.1.0
description:
  - "Checks every variable of a layout at once, as the role C(corral.qubes.qubes) runs first: unknown or misspelt
    keys and wrong types, with their path (C(qubes_layout.secure.lable)); each part with the checks of the module
    that applies it (M(corral.qubes.qube)'s names, properties, tags, volumes; M(corral.qubes.devices)'s
    devices; M(corral.qubes.firewall)'s rules; M(corral.qubes.policy)'s rules; the network filters'
    destinations and tasks)."
  - Every qube named anywhere must be in the layout (not with C(state=absent)) or on the system, with close names
    suggested. Names appear in an entry's C(template), C(netvm), C(clone_from), its vm properties
    (C(default_dispvm), C(management_dispvm), C(audiovm), C(guivm)) and device backends (C(sys-usb:2-1)); in the
    keys of O(network) and each O(tasks) C(domain); in O(flows) (sources and targets); in O(prefs) (vm
    preferences such as C(default_netvm), C(default_dispvm)); in each O(templates) group's C(updatevm); and in
    O(policies) rules' C(source), C(target), C(redirect) and C(default_target) when they are qube names (not
    C(@) tokens; C(@dispvm:NAME) names NAME).
  - The task fails listing every problem, and makes no call but reads. Otherwise it returns the qubes and templates
    the run creates (C(created), which the role passes to the modules as C(created_in_run), so check mode assumes
    only those exist later) and the drift.
  - "Drift: qubes on the system that the layout does not declare (neither an entry of O(layout) nor a template of
    O(templates)), which of them this collection created (the feature C(corral-created), which
    M(corral.qubes.qube) sets on the qubes it creates with O(corral.qubes.qube#module:mark_created), as the role
    does), and tags the layout does not declare on qubes whose tags it leaves open (no C(tags), or
    C(tags_mode=add)), and policy files this collection wrote that the layout does not name. Drift is reported
    as a warning and in C(drift); nothing is removed. With O(prune), C(prunable) lists the qubes created by this
    collection that the layout no longer declares, for the role to remove."
  - "The keys of an entry of O(layout): C(class), C(template), C(label), C(netvm), C(properties), C(features),
    C(services), C(tags), C(tags_mode), C(volumes), C(pool), C(clone_from), C(shutdown_if_needed), C(state) (the
    options of M(corral.qubes.qube)), C(devices) (a list for M(corral.qubes.devices)) and C(firewall) (a rule list
    as M(corral.qubes.qube_info) returns it, a word V(whitelist), V(allow_all), V(block_all), or a dict with
    C(policy), C(rules), C(dns)): exactly the keys M(corral.qubes.qube_info) returns, and C(devices)."
  - A qube's firewall given both in O(layout) and in O(network) must give the same rules (compared in qubesd's
    canonical form); the network intent is applied, and a difference is an error naming both.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode and otherwise.
  diff_mode:
    support: none
    description: Reads only.
options:
  layout:
    description: Qube name to its entry (C(qubes_layout)).
    type: dict
    default: {}
  templates:
    description: Groups of templates (C(qubes_templates)), dicts with C(names), C(state), C(enablerepo), C(pool),
      C(releasever), C(updatevm).
    type: list
    elements: raw
    default: []
  prefs:
    description: Global preferences (C(qubes_prefs)).
    type: dict
    default: {}
  destinations:
    description: Named destinations (C(qubes_destinations)), see P(corral.qubes.whitelists#filter).
    type: dict
    default: {}
  tasks:
    description: Tasks (C(qubes_tasks)), dicts with C(name), C(domain), C(reach).
    type: list
    elements: raw
    default: []
  network:
    description: Qube name to its firewall setting (C(qubes_network)), see P(corral.qubes.firewall_layout#filter).
    type: dict
    default: {}
  flows:
    description: Service to its flow matrix (C(qubes_flows)), see P(corral.qubes.flow_policy#filter).
    type: dict
    default: {}
  policies:
    description: Policy file name to its rules (C(qubes_policies)), as M(corral.qubes.policy) takes them.
    type: dict
    default: {}
  inside:
    description:
      - Template name to what it is and what goes inside it (C(fedora_templates) of the role P(corral.qubes.fedora#role)),
        dicts with C(clone_from), C(label), C(packages), C(packages_absent), C(files) and C(restart_qubes). The
        templates are declared (installed or cloned by the run); C(clone_from) names a qube.
    type: dict
    default: {}
  flows_policy:
    description: The policy file the flows are written to (C(qubes_flows_policy)), declared when O(flows) is given.
    type: str
    default: 30-corral-flows
  policies_elsewhere:
    description:
      - Policy files written by other roles or plays (such as the management qube's C(20-corral-admin-mgmt)), not
        reported as drift.
    type: list
    elements: str
    default: []
  prune:
    description: Whether C(prunable) lists the qubes this collection created that the layout no longer declares.
    type: bool
    default: false
  whonix:
    description:
      - The settings of the role P(corral.qubes.whonix#role) (its variables without the C(whonix_) prefix, such as
        C(version), C(gateway), C(workstation), C(updates_all_templates)). Given, they are checked against the
        release of the dom0 (Whonix 17 on R4.2, 18 on R4.3), expanded into the Whonix templates, the gateway, the
        Whonix disposable template, the workstation and the updates policy file, and added to O(layout),
        O(templates) and O(policies) before the whole check; the result's C(whonix) holds the variables with Whonix
        added. The collection's C(site.yml) gives them to its whole check (V(all)), so Whonix and the rest of the
        layout are checked in one task.
      - C(enabled=false) (the role's C(whonix_enabled)) adds nothing; the result's C(whonix) then holds O(layout),
        O(templates) and O(policies) as given, so that a play can take them from there either way.
      - Given, the task fails (having only read) when C(qubes_layout), C(qubes_templates) or C(qubes_policies) is
        given as an extra variable (C(-e)) whose value is not the one with Whonix; the role sets the result as facts
        of those names, which an extra variable would hide from the next roles.
      - Whatever this option says, every layout is held to the Whonix rules - a Whonix template of another release
        (C(whonix-gateway-17) on R4.3) and a Whonix workstation (a qube based on a C(whonix-workstation-NN) template,
        or a template with the feature C(whonix-ws)) whose netvm is not a Whonix gateway are problems.
    type: dict
  hardware:
    description:
      - The machine against its profile too, with the options of M(corral.qubes.hardware_check) (the role
        P(corral.qubes.hardware#role) gives them as its C(hardware_settings); the collection's C(site.yml) passes
        them, so its preflight is one task). Run after the layout passes its checks, for the layout checked, with
        Whonix added when O(whonix) is given; a failed check fails the task, naming each failed check, and the
        result's C(hardware) holds the table (C(report_lines)), the facts and every check.
    type: dict
    suboptions:
      profile:
        description: The machine's hardware profile, as O(corral.qubes.hardware_check#module:profile).
        type: dict
        required: true
      layout:
        description:
          - The qubes to fit on the machine; not given, or given as O(layout) itself, the layout checked (with
            Whonix added when O(whonix) is given).
        type: dict
      xl_command:
        description: The C(xl) command (C(info) is appended), as O(corral.qubes.hardware_check#module:xl_command).
        type: str
        default: xl
      pool:
        description: As O(corral.qubes.hardware_check#module:pool).
        type: str
      dom0_memory_mib:
        description: As O(corral.qubes.hardware_check#module:dom0_memory_mib).
        type: int
        default: 4096
  scope:
    description:
      - V(all) checks the whole layout and reports drift. V(whonix) (what the role P(corral.qubes.whonix#role) runs)
        checks only what Whonix adds - the settings of O(whonix) and the Whonix rules - and returns the variables
        with Whonix added; the rest of the layout, its names and its drift are left to the whole check that follows.
    type: str
    default: all
    choices: [all, whonix]
seealso:
  - module: corral.qubes.qube_info
"""

EXAMPLES = r"""
- name: The whole layout, before any change
  corral.qubes.layout_check:
    layout: "{{ qubes_layout }}"
    templates: "{{ qubes_templates }}"
    prefs: "{{ qubes_prefs }}"
    destinations: "{{ qubes_destinations }}"
    tasks: "{{ qubes_tasks }}"
    network: "{{ qubes_network }}"
    flows: "{{ qubes_flows }}"
    policies: "{{ qubes_policies }}"
  register: checked
"""

RETURN = r"""
release:
  description: The Qubes release of the dom0, as the Admin API shows it.
  returned: success
  type: str
  sample: "4.3"
whonix:
  description:
    - With O(whonix), the layout's variables with Whonix added (C(qubes_layout), C(qubes_templates),
      C(qubes_policies)), and C(version), C(gateway) and C(dispvm_template); with C(enabled=false) in O(whonix), the
      three variables as given.
  returned: success, with O(whonix)
  type: dict
hardware:
  description:
    - With O(hardware), what M(corral.qubes.hardware_check) returns - C(facts), C(checks), C(report) and
      C(report_lines) - also when a check fails.
  returned: with O(hardware)
  type: dict
created:
  description: Qubes and templates of the layout that are not on the system yet (this run creates them).
  returned: success
  type: list
  elements: str
  sample: [sys-vpn-work, secure]
drift:
  description: What the system has that the layout does not declare.
  returned: success
  type: dict
  contains:
    qubes:
      description: Qubes neither in the layout nor among its templates (dom0 left out).
      type: list
      elements: str
    created:
      description: Those of them that this collection created (feature C(corral-created)).
      type: list
      elements: str
    tags:
      description: Qube name to the tags the layout does not declare (qubes whose tags it leaves open).
      type: dict
    policy_files:
      description:
        - Policy files that start with the header corral.qubes.policy writes but that neither O(policies),
          O(flows_policy) nor O(policies_elsewhere) names (read from C(/etc/qubes/policy.d) in dom0, or
          C($CORRAL_POLICY_DIR); through the policy admin API from a management qube).
      type: list
      elements: str
  sample: {qubes: [old-work, default-dvm], created: [old-work], tags: {sys-net: [legacy]}, policy_files: [40-old]}
prunable:
  description: With O(prune), the qubes created by this collection that the layout does not declare.
  returned: success
  type: list
  elements: str
  sample: [old-work]
problems:
  description: Every problem, with its path.
  returned: failure
  type: list
  elements: dict
  sample: [{path: qubes_layout.secure.lable, msg: "unknown key (did you mean label?); known: class, ..."}]
api_calls:
  description: Number of Admin API calls the run made.
  returned: always
  type: int
  sample: 17
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["layout_check"], supports_check_mode=True)
    tasks.exit_module(module, "layout_check")


if __name__ == "__main__":
    main()
