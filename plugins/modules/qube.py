#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The qube module: one qube, converged."""

from __future__ import annotations

DOCUMENTATION = r"""
module: qube
short_description: Create, converge, power and remove Qubes OS qubes
version_added: 0.1.0
description:
  - Makes one qube match its description (class, template, label, network qube, any property, features,
    services, tags, volume sizes and power state).
  - The whole change is planned and validated first (labels, templates, network qubes and loops, property
    names and types, volume sizes) and only then applied, so bad input changes nothing.
  - Changes are applied in a safe order (creation, properties that need a halted qube, other properties,
    features and tags, volumes, then the power state).
  - Current values are compared in the form qubesd reports them (default versus explicit values, features
    as strings, sizes in bytes), so a second run reports no change.
  - With O(qubes), one task converges many qubes through the same engine, reading dom0 once for all of them
    (one C(admin.vm.List); each qube's properties, managed features and tags read once). Every qube is planned
    before the first change, the qubes this task creates counting as coming, so bad input anywhere changes
    nothing and each error names the qube and the field. The qubes are converged in the order of what they
    refer to (templates, network qubes, clone sources and disposable templates first, otherwise the given
    order); removals come last, a qube before the ones it uses, each planned when its turn comes.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
  - corral.qubes.admin_api.created_in_run
  - corral.qubes.admin_api.check_mode
options:
  name:
    description:
      - Name of the qube (letters, digits, C(_), C(-) and, from R4.3, C(.); at most 31 characters).
      - Required unless O(qubes) is given; not with O(qubes).
    type: str
  qubes:
    description:
      - Many qubes in one task, qube name -> its options (the options of this module other than O(name),
        O(qubes), O(qubesd_socket) and O(created_in_run), with the same meaning and defaults). The options of
        the task itself for one qube are then ignored.
      - The filter P(corral.qubes.layout_qubes#filter) turns a layout (C(qubes_layout)) into this mapping.
    type: dict
  state:
    description:
      - V(present) makes sure the qube exists and leaves its power state alone.
      - V(running), V(halted) and V(paused) also set the power state (a paused qube is unpaused by
        V(running); a halted qube is started then paused by V(paused)).
      - V(killed) ends a running or paused qube at once (C(admin.vm.Kill)), without a clean shutdown.
      - V(absent) removes the qube, killing it first if it runs. Removal is refused before anything is
        changed while another qube or a global preference refers to it.
    type: str
    choices: [present, absent, running, halted, paused, killed]
    default: present
  class:
    description:
      - Class of a new qube. Defaults to V(AppVM) when the qube is created.
      - The class of an existing qube cannot be changed; a different value is refused.
    type: str
    choices: [AppVM, TemplateVM, StandaloneVM, DispVM]
    aliases: [klass]
  template:
    description:
      - For an V(AppVM), the TemplateVM it is based on; for a V(DispVM), a qube with C(template_for_dispvms).
        Left out at creation, qubesd uses the global C(default_template) (C(default_dispvm) for a DispVM).
        Changing it needs the qube halted (see O(shutdown_if_needed)).
      - For a new V(StandaloneVM) or V(TemplateVM), the qube whose root volume, properties, features, tags and
        firewall are copied into the new qube, as C(qvm-create --class StandaloneVM --template) does it. It is
        ignored once the qube exists.
    type: str
  label:
    description: Colour label (V(red), V(orange), V(yellow), V(green), V(gray), V(blue), V(purple),
      V(black) or one created on this dom0). Required to create a qube, unless O(clone_from) is used.
    type: str
  netvm:
    description:
      - Qube that provides network to this one. It must have C(provides_network) and must not lead back to
        this qube.
      - An empty string means no network. V(*default*) follows the global C(default_netvm).
        Left out, the netvm is not managed.
    type: str
  properties:
    description:
      - Any other qvm-prefs property by name, for example C(memory), C(maxmem), C(vcpus), C(virt_mode),
        C(kernel), C(provides_network), C(template_for_dispvms), C(autostart), C(default_dispvm).
      - Values are checked against the property's type before anything changes. Booleans accept
        C(true)/C(false), integers accept numbers or digit strings, qube references accept a name or an
        empty string for none.
      - The value V(*default*) resets a property to its default (like C(qvm-prefs --default)). A value equal
        to the default but given explicitly is stored explicitly, as qubesd does.
    type: dict
    default: {}
  features:
    description:
      - Features to set, by name. Values are stored as qubesd stores them, true as C("1"), false as C(""),
        numbers as their text.
      - A null value removes the feature. Features not listed are left alone.
    type: dict
    default: {}
  services:
    description:
      - Qubes services (features C(service.NAME)), as C(qvm-service) manages them. V(true) enables (C("1")),
        V(false) disables (C("")), null removes the setting so the template's default applies.
    type: dict
    default: {}
  tags:
    description:
      - Tags of the qube. With O(tags_mode=exact), tags not listed are removed; tags qubesd sets itself
        (C(created-by-*), C(disp-created-by-*), C(guivm-*), C(audiovm-*)) are never removed and cannot be
        listed. Left out, tags are not managed.
    type: list
    elements: str
  tags_mode:
    description: V(exact) makes the tags exactly O(tags); V(add) only adds missing ones.
    type: str
    choices: [exact, add]
    default: exact
  volumes:
    description:
      - Sizes of the V(private), V(root) (TemplateVM and StandaloneVM) and V(volatile) volumes, as bytes or
        with a unit such as C(20GiB), C(512MiB), C(60g) (binary) or C(10GB) (decimal).
      - Volumes only grow; a smaller size than the current one is refused before anything changes.
    type: dict
    default: {}
  pool:
    description:
      - Storage pool for a new qube's volumes, as one pool name or a mapping of volume name (V(root),
        V(private), V(volatile), V(kernel)) to pool name. A pool is chosen at creation; for an existing qube
        a different pool is refused.
    type: raw
  clone_from:
    description:
      - Create the qube as a copy of this qube (class, template, label unless O(label) is given, explicit
        properties, features, tags, firewall and persistent volumes), as C(qvm-clone) does. Ignored once the
        qube exists. If the copy fails half-way the error names the step.
    type: str
  shutdown_if_needed:
    description:
      - A change qubesd only accepts on a halted qube (the template of an AppVM or DispVM) shuts the qube down
        first and starts it again afterwards if it was running.
      - Without it such a change on a running qube fails before anything is changed.
    type: bool
    default: false
  mark_created:
    description:
      - When the task creates the qube, also set its feature C(corral-created) (V(1)), which marks it as created by
        this collection. The role C(corral.qubes.qubes) sets it, so that its C(qubes_prune) may later remove a qube
        the layout no longer declares, and never one it did not create. An existing qube is never marked.
      - M(corral.qubes.qube_info) leaves the feature out of the layout data it returns.
    type: bool
    default: false
seealso:
  - module: corral.qubes.qube_info
  - module: corral.qubes.prefs
"""

EXAMPLES = r"""
- name: A work qube on the Fedora template, behind the VPN qube, with a bigger private volume
  corral.qubes.qube:
    name: work
    template: fedora-42-xfce
    label: blue
    netvm: sys-vpn-work
    properties:
      memory: 800
      maxmem: 4000
    services:
      cups: false
    tags: [managed, work]
    volumes:
      private: 20GiB
    state: running

- name: An offline vault (no network at all)
  corral.qubes.qube:
    name: vault
    label: black
    netvm: ""

- name: A Windows 7 HVM, empty root to install from an ISO
  corral.qubes.qube:
    name: win7
    class: StandaloneVM
    label: blue
    properties:
      virt_mode: hvm
      kernel: ""
      memory: 4096
      maxmem: 0
    volumes:
      root: 60GiB

- name: A standalone qube made from the Fedora template, as qvm-create --template does it
  corral.qubes.qube:
    name: dev-standalone
    class: StandaloneVM
    template: fedora-42-xfce
    label: purple

- name: Move an AppVM to another template even while it runs (it is restarted)
  corral.qubes.qube:
    name: personal
    template: debian-13-xfce
    shutdown_if_needed: true

- name: Put a property back to its default
  corral.qubes.qube:
    name: personal
    properties:
      memory: "*default*"

- name: A qube is gone
  corral.qubes.qube:
    name: old-test
    state: absent

- name: Many qubes in one task (the network qube is converged before the qube behind it)
  corral.qubes.qube:
    qubes:
      mail:
        template: fedora-42-xfce
        label: blue
        netvm: sys-vpn
        tags: [domain]
      sys-vpn:
        template: fedora-42-xfce
        label: green
        properties: {provides_network: true}
      vault:
        label: black
        netvm: ""
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, what would be done), one step per item, in order.
  returned: always
  type: list
  elements: str
  sample: ["create AppVM work from template fedora-42-xfce", "set work memory = '800'", "start work"]
qube:
  description: The qube after the run (in check mode, as it would be), its name, class, power state, label,
    template and netvm. The fields that changed are in the diff; M(corral.qubes.qube_info) reads everything.
  returned: unless the qube is absent after the run
  type: dict
  sample: {"name": "work", "class": "AppVM", "state": "running", "label": "blue", "template": "fedora-42-xfce",
           "netvm": "sys-vpn-work"}
qubes:
  description: With O(qubes), each qube's own result, in the order they were converged; C(changed), C(actions),
    C(qube) (as above) and C(warnings). The task's C(actions) are these, each prefixed by the qube's name, and its
    diff has one part per changed qube.
  returned: with O(qubes)
  type: dict
  sample: {"vault": {"changed": true, "actions": ["create AppVM vault"], "qube": {"name": "vault", "class": "AppVM",
           "state": "halted", "label": "black", "template": "fedora-42-xfce", "netvm": ""}}}
problems:
  description: With O(qubes), every entry that cannot be planned, each as C(path) (C(qubes.NAME.FIELD)) and
    C(msg); nothing was changed.
  returned: failure
  type: list
  elements: dict
api_calls:
  description: Number of Admin API calls the run made (reads and writes).
  returned: always
  type: int
  sample: 14
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
  sample: properties.memory
actions_done:
  description: Steps that had been applied when a step failed (only on failure).
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["qube"], supports_check_mode=True)
    tasks.exit_module(module, "qube")


if __name__ == "__main__":
    main()
