# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The property names and wire types of each qube class.

For a qube that exists, ``property.GetAll`` is the authority on which
properties it has; this table answers the same question for a qube that is
about to be created, so a plan can be validated before its first call.  It
also says which properties qubesd refuses to set (computed or write-once).
(qubes-prefs always exist, so their names and types come from ``GetAll``.)
A test keeps it equal to what the rehearsal dom0 serves.
"""

from __future__ import annotations

CLASSES = ("AppVM", "TemplateVM", "StandaloneVM", "DispVM")
"""Classes a layout may declare (AdminVM is dom0 only; RemoteVM is not managed)."""

_COMMON = {
    "audiovm": "vm", "autostart": "bool", "backup_timestamp": "int", "bootmode": "str", "debug": "bool",
    "default_dispvm": "vm", "default_user": "str", "devices_denied": "str", "dns": "str", "gateway": "str",
    "gateway6": "str", "guivm": "vm", "icon": "str", "include_in_backups": "bool", "installed_by_rpm": "bool",
    "ip": "str", "ip6": "str", "kernel": "str", "kernelopts": "str", "keyboard_layout": "str", "klass": "str",
    "label": "label", "mac": "str", "management_dispvm": "vm", "maxmem": "int", "memory": "int", "name": "str",
    "netvm": "vm", "provides_network": "bool", "qid": "int", "qrexec_timeout": "int", "shutdown_timeout": "int",
    "start_time": "str", "stubdom_mem": "int", "stubdom_uuid": "str", "stubdom_xid": "int", "updateable": "bool",
    "uuid": "str", "vcpus": "int", "virt_mode": "str", "visible_gateway": "str", "visible_gateway6": "str",
    "visible_ip": "str", "visible_ip6": "str", "visible_netmask": "str", "xid": "int",
}

_EXTRA = {
    "AppVM": {"template": "vm", "template_for_dispvms": "bool"},
    "TemplateVM": {"appvm_default_bootmode": "str"},
    "StandaloneVM": {"template_for_dispvms": "bool"},
    "DispVM": {"template": "vm", "auto_cleanup": "bool", "dispid": "int", "is_preload": "str"},
}

R43_ONLY = frozenset({"bootmode", "appvm_default_bootmode", "devices_denied", "stubdom_uuid", "is_preload"})

READ_ONLY = frozenset({
    "klass", "name", "qid", "uuid", "dispid", "icon", "xid", "stubdom_xid", "stubdom_uuid", "start_time",
    "updateable", "dns", "gateway", "gateway6", "visible_ip", "visible_ip6", "visible_gateway",
    "visible_gateway6", "visible_netmask", "is_preload",
})
"""Properties qubesd computes or fixes at creation: never set by a layout."""

POSITIVE_INTS = frozenset({
    "memory", "vcpus", "qrexec_timeout", "shutdown_timeout", "stubdom_mem",
    "default_qrexec_timeout", "default_shutdown_timeout", "stats_interval",
})
"""Integer properties that qubesd requires to be > 0 (``maxmem`` may also be 0)."""

HALTED_ONLY = frozenset({"template"})
"""Properties qubesd refuses to change while the qube is not halted."""

APPLIED_AT_START = frozenset({
    "virt_mode", "kernel", "kernelopts", "vcpus", "memory", "maxmem", "debug", "mac", "stubdom_mem", "bootmode",
})
"""Properties qubesd accepts on a running qube but that only take effect when it next starts."""

DEFAULT_VOLUME_SIZES = {"root": 10 * 1024 ** 3, "private": 2 * 1024 ** 3, "volatile": 10 * 1024 ** 3}
"""Sizes of new volumes in bytes (an AppVM's root follows its template)."""

OWN_ROOT = frozenset({"TemplateVM", "StandaloneVM"})
"""Classes whose root volume is their own (persistent, cloned on copy)."""


def class_properties(klass: str, release: str = "4.3") -> dict[str, str]:
    """Property name -> wire type for a qube class."""
    table = dict(_COMMON)
    table.update(_EXTRA[klass])
    if release == "4.2":
        table = {name: kind for name, kind in table.items() if name not in R43_ONLY}
    return table


def writable(name: str) -> bool:
    """Whether a layout may set this property."""
    return name not in READ_ONLY
