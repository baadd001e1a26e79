# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Inventory plugin: the qubes of a Qubes OS system as hosts."""

from __future__ import annotations

DOCUMENTATION = r"""
name: qubes
short_description: Qubes of a Qubes OS system as inventory hosts
version_added: 0.1.0
description:
  - Every qube becomes a host, grouped by class, label, tag and template, with its class, power state, label,
    template, netvm and tags as host variables.
  - Reads with one C(admin.vm.List), then one C(property.GetAll) and one C(admin.vm.tag.List) per qube.
  - The inventory file must be named C(*.qubes.yml) or C(*.qubes.yaml); a file that names this plugin under
    another name gets a warning that says so.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin, so Ansible knows the file is for it.
    type: str
    required: true
    choices: [corral.qubes.qubes]
  qubesd_socket:
    description:
      - Path of qubesd's Admin API socket. When not set, E(QUBESD_SOCKET) is used, then C(/var/run/qubesd.sock)
        in dom0, or qrexec from a management qube.
    type: path
    env:
      - name: QUBESD_SOCKET
  include_dom0:
    description: Add dom0 as a host (with the C(local) connection).
    type: bool
    default: true
  include_halted:
    description: Add qubes that are not running.
    type: bool
    default: true
  connection:
    description:
      - Value of C(ansible_connection) for qubes other than dom0 (dom0 always gets C(local)).
      - C(corral.qubes.qrexec) runs tasks inside each qube with this collection's qrexec connection (one qrexec
        call per command, a halted qube started when a task needs it); another plugin such as
        C(community.general.qubes) works too where it is installed.
      - Empty (the default) sets nothing, so Ansible's own default applies; this collection's modules run on dom0
        and need no connection into a qube.
    type: str
    default: ""
"""

EXAMPLES = r"""
# inventories/local.qubes.yml
plugin: corral.qubes.qubes
# plays on qubes run their tasks inside the qubes, over qrexec (dom0 keeps the local connection)
connection: corral.qubes.qrexec
include_halted: false
keyed_groups:
  - key: qubes_netvm
    prefix: behind
compose:
  is_network_qube: qubes_properties.provides_network | default(false)
groups:
  offline: not qubes_netvm
"""

import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.utils.display import Display

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import engine, wire

_UNSAFE_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")
# Tags qubesd adds by itself: one per creator, GUI, audio and relay qube, on nearly every qube.
AUTOMATIC_TAG_PREFIXES = ("created-by-", "guivm-", "audiovm-", "relayvm-")
SUFFIXES = (".qubes.yml", ".qubes.yaml")
display = Display()


def group_name(prefix: str, value: str) -> str:
    """A valid Ansible group name such as ``label_red`` or ``template_fedora_42_xfce``."""
    return f"{prefix}_{_UNSAFE_GROUP_CHARS.sub('_', value)}".lower()


class InventoryModule(BaseInventoryPlugin, Constructable):
    """Qubes as hosts."""

    NAME = "corral.qubes.qubes"

    def verify_file(self, path):
        """Only files named ``*.qubes.yml`` / ``*.qubes.yaml`` (a warning for one that names the plugin otherwise)."""
        if not super().verify_file(path):
            return False
        if path.endswith(SUFFIXES):
            return True
        if path.endswith((".yml", ".yaml")) and self.NAME in _head(path):
            display.warning(f"{path} names the inventory plugin {self.NAME}, which reads only files named "
                            f"*.qubes.yml or *.qubes.yaml: rename it (for example to inventory.qubes.yml)")
        return False

    def parse(self, inventory, loader, path, cache=True):
        """Read the qubes and fill the inventory."""
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        socket_path = self.get_option("qubesd_socket")
        reader = engine.Reader(client_mod.AdminClient(client_mod.default_transport(socket_path)))
        try:
            qubes = self._read(reader)
        except wire.QubesException as exc:
            raise AnsibleParserError(f"reading qubes from qubesd failed: {type(exc).__name__}: {exc}") from exc
        strict = self.get_option("strict")
        for name, hostvars in qubes.items():
            self.inventory.add_host(name)
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
            for group in self._groups_of(hostvars):
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)

    def _read(self, reader) -> dict:
        qubes = {}
        connection = self.get_option("connection")
        for name, entry in reader.vms.items():
            is_dom0 = entry.klass == "AdminVM"
            if is_dom0 and not self.get_option("include_dom0"):
                continue
            power = engine.power_word(entry.state)
            if power == "halted" and not self.get_option("include_halted"):
                continue
            props = reader.props(name)
            hostvars = {
                "qubes_class": entry.klass,
                "qubes_power_state": power,
                "qubes_label": props["label"].value,
                "qubes_template": props["template"].value if "template" in props else None,
                "qubes_netvm": props["netvm"].value or None if "netvm" in props else None,
                "qubes_tags": reader.tags(name),
                "qubes_properties": {prop: value.native for prop, value in props.items()},
            }
            if is_dom0:
                hostvars["ansible_connection"] = "local"
            elif connection:
                hostvars["ansible_connection"] = connection
            qubes[name] = hostvars
        return qubes

    @staticmethod
    def _groups_of(hostvars: dict) -> list[str]:
        groups = [group_name("class", hostvars["qubes_class"]), group_name("label", hostvars["qubes_label"])]
        if hostvars["qubes_template"]:
            groups.append(group_name("template", hostvars["qubes_template"]))
        groups.extend(group_name("tag", tag) for tag in hostvars["qubes_tags"]
                      if not tag.startswith(AUTOMATIC_TAG_PREFIXES))
        return groups


def _head(path: str) -> str:
    """The start of a file (enough to find its ``plugin:`` line), or nothing when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read(4096)
    except OSError:
        return ""
