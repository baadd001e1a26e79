# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The network settings of a guest without a Qubes agent (Windows without its tools, a BSD).

Such a guest gets no configuration from Qubes (its Xen network driver has no
DHCP), so its install writes the qube's Qubes address, gateway and DNS into
the system statically.  Shared by the windows and bsd roles.  No Ansible
imports.
"""

from __future__ import annotations

import ipaddress

NETWORK_KEYS = ("address", "prefix", "gateway", "dns")
PREFIX = 8
"""The netmask Qubes advises for a guest that sets its address itself: /8, so the gateway and DNS are on-link."""
QUBES_DNS = ["10.139.1.1", "10.139.1.2"]


def network_error(net) -> tuple[str, str] | None:
    """What is wrong with the overrides of an entry's ``network`` key: (``""`` or ``".key"``, the form expected)."""
    if not isinstance(net, dict) or set(net) - set(NETWORK_KEYS):
        return "", f"expected a dict with any of {', '.join(NETWORK_KEYS)}"
    for key in ("address", "gateway"):
        if key in net:
            try:
                ipaddress.IPv4Address(str(net[key]))
            except ValueError:
                return f".{key}", "expected an IPv4 address"
    if "prefix" in net and (isinstance(net["prefix"], bool) or not isinstance(net["prefix"], int)
                            or not 1 <= net["prefix"] <= 32):
        return ".prefix", "expected a prefix length from 1 to 32"
    if "dns" in net:
        try:
            [ipaddress.IPv4Address(str(server)) for server in net["dns"]]
        except (TypeError, ValueError):
            return ".dns", "expected a list of IPv4 addresses"
    return None


def static_network(overrides: dict, properties: dict) -> dict:
    """The guest's static settings: the qube's Qubes IP, gateway and DNS (``/8``, as Qubes advises), then overrides.

    ``properties`` are the qube's as corral.qubes.qube_info details them (``{name: {value: ...}}``); empty for a
    qube not made yet (check mode). A qube without network (no ``ip``) gets an empty address: the install then
    leaves its network settings out.
    """
    def value(prop):
        return (properties.get(prop) or {}).get("value") or ""
    dns = value("dns").split() if isinstance(value("dns"), str) else list(value("dns"))
    net = {"address": value("ip"), "prefix": PREFIX, "gateway": value("visible_gateway"), "dns": dns or list(QUBES_DNS)}
    net.update(overrides or {})
    return net
