# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that turn a layout's network intent into firewall rules.

* ``whitelists``: tasks (each in one domain, reaching named destinations)
  and the destinations -> each domain's accept rules, the union of its
  tasks' destinations with duplicates and covered rules left out.
* ``firewall_layout``: each qube's network setting (``whitelist``,
  ``allow_all``, ``block_all``, a rule list or a full spec) plus the
  whitelists -> the ``qubes`` option of corral.qubes.firewall.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import firewall

DESTINATION_KEYS = ("host", "proto", "ports")
NETWORK_WORDS = ("whitelist", "allow_all", "block_all")


def _ports(where: str, value) -> list[tuple[int, int]]:
    """A destination's ports (a port, "N-M", or a list of them) as merged (first, last) ranges."""
    ranges = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise AnsibleFilterError(f"{where}.ports: {item!r} is not a port or a range N-M")
        try:
            ranges.append(firewall.parse_ports(str(item)))
        except firewall.RuleError as exc:
            raise AnsibleFilterError(f"{where}.ports: {str(exc).removeprefix('dstports: ')}") from exc
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(last, merged[-1][1]))
        else:
            merged.append((first, last))
    return merged


def _host(where: str, value):
    """A destination host: an ip_network for addresses and CIDRs, else the (valid, lowercase) hostname."""
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError(f"{where}.host: expected an address, a network or a hostname, not {value!r}")
    try:
        kind, text = firewall.parse_host(value)
    except firewall.RuleError as exc:
        raise AnsibleFilterError(f"{where}.host: {str(exc).removeprefix('dsthost: ')}") from exc
    return text if kind == "dsthost" else ipaddress.ip_network(text, strict=False)


def _destination_rules(name: str, entries) -> list[dict]:
    """The rules of one named destination (a dict or a list of dicts)."""
    rules = []
    for number, entry in enumerate(entries if isinstance(entries, list) else [entries]):
        where = f"destinations.{name}[{number}]"
        if not isinstance(entry, dict):
            raise AnsibleFilterError(f"{where}: expected a dict with {', '.join(DESTINATION_KEYS)}, not {entry!r}")
        unknown = sorted(set(entry) - set(DESTINATION_KEYS))
        if unknown:
            raise AnsibleFilterError(f"{where}.{unknown[0]}: unknown key; a destination has "
                                     f"{', '.join(DESTINATION_KEYS)}")
        proto = entry.get("proto")
        if proto not in (None, "tcp", "udp", "icmp"):
            raise AnsibleFilterError(f"{where}.proto: expected tcp, udp or icmp, not {proto!r}")
        if "ports" in entry and proto not in ("tcp", "udp"):
            raise AnsibleFilterError(f"{where}.ports: ports need proto tcp or udp")
        host = _host(where, entry["host"]) if "host" in entry else None
        for ports in _ports(where, entry["ports"]) if "ports" in entry else [None]:
            rules.append({"host": host, "proto": proto, "ports": ports})
    return rules


def _covers(wide: dict, narrow: dict) -> bool:
    """Whether every connection ``narrow`` accepts is accepted by ``wide`` too."""
    if wide["proto"] not in (None, narrow["proto"]):
        return False
    if wide["ports"] is not None and (narrow["ports"] is None or not (
            wide["ports"][0] <= narrow["ports"][0] and narrow["ports"][1] <= wide["ports"][1])):
        return False
    if wide["host"] is None or wide["host"] == narrow["host"]:
        return True
    return (isinstance(wide["host"], (ipaddress.IPv4Network, ipaddress.IPv6Network))
            and isinstance(narrow["host"], type(wide["host"])) and narrow["host"].subnet_of(wide["host"]))


def _as_rule(rule: dict) -> dict:
    out = {"action": "accept"}
    if rule["host"] is not None:
        out["dsthost"] = str(rule["host"])
    if rule["proto"] is not None:
        out["proto"] = rule["proto"]
    if rule["ports"] is not None:
        out["dstports"] = firewall.short_ports(rule["ports"])
    return out


def whitelists(tasks, destinations) -> dict:
    """Each domain's accept rules: the union of the destinations its tasks reach.

    Order follows the tasks; a rule another rule of the domain already
    covers (same or wider network, ports, protocol) is left out.
    """
    if not isinstance(tasks, list):
        raise AnsibleFilterError(f"tasks: expected a list of {{name, domain, reach}}, not {tasks!r}")
    if not isinstance(destinations, dict):
        raise AnsibleFilterError("destinations: expected a mapping of destination names to their hosts")
    known = {name: _destination_rules(name, entries) for name, entries in destinations.items()}
    gathered: dict[str, list[dict]] = {}
    for number, task in enumerate(tasks):
        where = f"tasks[{number}]"
        if not isinstance(task, dict) or not isinstance(task.get("domain"), str):
            raise AnsibleFilterError(f"{where}.domain: every task names its domain, as in {{name: x, domain: work}}")
        reach = task.get("reach") or []
        if not isinstance(reach, list):
            raise AnsibleFilterError(f"{where}.reach: expected a list of destination names, not {reach!r}")
        rules = gathered.setdefault(task["domain"], [])
        for name in reach:
            if name not in known:
                raise AnsibleFilterError(f"{where}.reach: no destination named {name!r} "
                                         f"(task {task.get('name', number)!r}); destinations: {', '.join(known)}")
            rules.extend(known[name])
    result = {}
    for domain, rules in gathered.items():
        kept: list[dict] = []
        for index, rule in enumerate(rules):
            later_or_kept = kept + [other for other in rules[index + 1:] if other != rule]
            if not any(_covers(other, rule) for other in later_or_kept):
                kept.append(rule)
        result[domain] = [_as_rule(rule) for rule in kept]
    return result


def firewall_layout(network, lists=None) -> dict:
    """The ``qubes`` option of corral.qubes.firewall from each qube's network setting.

    A setting is ``whitelist`` (the qube's rules from ``lists``, then DNS),
    ``allow_all``, ``block_all``, a list of rules (exactly those), or a dict
    with policy/rules/dns (a whitelist without rules takes them from ``lists``).
    """
    if not isinstance(network, dict):
        raise AnsibleFilterError("network: expected a mapping of qube names to their network setting")
    lists = lists or {}
    specs = {}
    for qube, setting in network.items():
        if setting == "whitelist":
            specs[qube] = {"policy": "whitelist", "rules": list(lists.get(qube, []))}
        elif setting == "allow_all":
            specs[qube] = {"policy": "allow_all"}
        elif setting == "block_all":
            specs[qube] = {"policy": "exact", "rules": []}
        elif isinstance(setting, list):
            specs[qube] = {"policy": "exact", "rules": setting}
        elif isinstance(setting, dict):
            spec = dict(setting)
            if spec.get("policy") == "whitelist" and "rules" not in spec:
                spec["rules"] = list(lists.get(qube, []))
            specs[qube] = spec
        else:
            raise AnsibleFilterError(f"network.{qube}: expected {', '.join(NETWORK_WORDS)}, a rule list or "
                                     f"a dict with policy/rules/dns, not {setting!r}")
    return specs


class FilterModule:  # pylint: disable=too-few-public-methods
    """corral.qubes network filters."""

    def filters(self):
        """Filter names."""
        return {"whitelists": whitelists, "firewall_layout": firewall_layout}
