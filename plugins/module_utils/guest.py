# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the roles that install a guest without a Qubes agent (Windows without its tools, a BSD) share.

The checks every entry starts with (the qube's name, the keys, the user's
ISO), and the network settings: such a guest gets no configuration from
Qubes (its Xen network driver has no DHCP), so its install writes the qube's
Qubes address, gateway and DNS into the system statically.  Shared by the
windows and bsd roles.  No Ansible imports.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.corral.qubes.plugins.module_utils import names

NETWORK_KEYS = ("address", "prefix", "gateway", "dns")
PREFIX = 8
"""The netmask Qubes advises for a guest that sets its address itself: /8, so the gateway and DNS are on-link."""
QUBES_DNS = ["10.139.1.1", "10.139.1.2"]
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class EntryError(ValueError):
    """A bad entry of a role; the message names ``qube.key`` and never repeats a value (several are secrets)."""


def check_shape(name, raw, keys, required) -> None:
    """The qube's name, a dict of known ``keys``, the ``required`` ones given; or :class:`EntryError`."""
    error = names.vm_name_error(name) if isinstance(name, str) else "not a string"
    if error:
        raise EntryError(f"{name!r}: not a qube name ({error})")
    if not isinstance(raw, dict):
        raise EntryError(f"{name}: expected a dict of settings")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise EntryError(f"{name}.{unknown[0]}: unknown key; expected one of {', '.join(keys)}")
    for key in required:
        if raw.get(key) in (None, "", {}):
            raise EntryError(f"{name}.{key}: required")


def check_iso(name: str, iso) -> None:
    """The user's ISO as ``qube`` (not dom0), absolute ``path`` and ``sha256``; or :class:`EntryError`."""
    if not isinstance(iso, dict) or set(iso) - {"qube", "path", "sha256"}:
        raise EntryError(f"{name}.iso: expected a dict with qube, path and sha256")
    if not isinstance(iso.get("qube"), str) or names.vm_name_error(iso["qube"]) or iso["qube"] == "dom0":
        raise EntryError(f"{name}.iso.qube: expected the name of the qube that holds the ISO (not dom0)")
    if not isinstance(iso.get("path"), str) or not iso["path"].startswith("/"):
        raise EntryError(f"{name}.iso.path: expected the ISO's absolute path in {iso['qube']}")
    if not isinstance(iso.get("sha256"), str) or not SHA256.match(iso["sha256"].lower()):
        raise EntryError(f"{name}.iso.sha256: required, 64 hexadecimal digits (the ISO's sha256sum)")


def check_network(name: str, net) -> None:
    """An entry's ``network`` overrides; or :class:`EntryError`."""
    error = network_error(net)
    if error:
        raise EntryError(f"{name}.network{error[0]}: {error[1]}")


def check_int(name: str, key: str, value, low: int, what: str) -> None:
    """An integer of at least ``low``; or :class:`EntryError` saying ``what`` it is."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise EntryError(f"{name}.{key}: expected {what} (an integer of at least {low})")


def check_post_install(name: str, post) -> None:
    """An entry's ``post_install``: features and properties (dicts); or :class:`EntryError`."""
    if not isinstance(post, dict) or set(post) - {"features", "properties"} \
            or not all(isinstance(v, dict) for v in post.values()):
        raise EntryError(f"{name}.post_install: expected a dict with features and properties (dicts)")


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
