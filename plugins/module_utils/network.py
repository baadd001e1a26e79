# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A layout's network intent into firewall rules (the filters' logic and the layout check's).

* :func:`whitelists`: tasks (each in one domain, reaching named destinations)
  and the destinations -> each domain's accept rules, the union of its
  tasks' destinations with duplicates and covered rules left out.
* :func:`firewall_layout`: each qube's network setting (``whitelist``,
  ``allow_all``, ``block_all``, a rule list or a dict) plus the whitelists ->
  the ``qubes`` option of corral.qubes.firewall, always ``{policy, rules}``
  (and ``dns`` when given), exactly what the module takes.

A destination uses the firewall module's names: ``dsthost``, ``proto``,
``dstports``; ``host`` and ``ports`` are accepted as aliases.  Errors are
:class:`NetworkError` with the path of the value at fault.  No Ansible imports.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.corral.qubes.plugins.module_utils import firewall

DESTINATION_KEYS = ("dsthost", "proto", "dstports")
DESTINATION_ALIASES = {"host": "dsthost", "ports": "dstports"}
"""Older names of a destination's keys (the firewall module's names are the main ones)."""
NETWORK_WORDS = ("whitelist", "allow_all", "block_all")
SETTING_KEYS = ("policy", "rules", "dns")
SETTING_POLICIES = firewall.POLICIES + ("block_all",)


class NetworkError(ValueError):
    """Bad network data; ``path`` names the value (``destinations.my_bank[0].dsthost``)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _ports(where: str, value) -> list[tuple[int, int]]:
    """A destination's ports (a port, "N-M", or a list of them) as merged (first, last) ranges; ``where`` is
    the path of the value (``destinations.x[0].dstports``)."""
    ranges = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise NetworkError(where, f"{item!r} is not a port or a range N-M")
        try:
            ranges.append(firewall.parse_ports(str(item)))
        except firewall.RuleError as exc:
            raise NetworkError(where, str(exc).removeprefix("dstports: ")) from exc
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
        raise NetworkError(where, f"expected an address, a network or a hostname, not {value!r}")
    try:
        kind, text = firewall.parse_host(value)
    except firewall.RuleError as exc:
        raise NetworkError(where, str(exc).removeprefix("dsthost: ")) from exc
    return text if kind == "dsthost" else ipaddress.ip_network(text, strict=False)


def destination_entry(where: str, entry) -> tuple[dict, dict]:
    """One entry of a destination with the main key names (aliases renamed), and main name -> the key as
    written (for error paths); NetworkError if malformed."""
    if not isinstance(entry, dict):
        raise NetworkError(where, f"expected a dict with {', '.join(DESTINATION_KEYS)}, not {entry!r}")
    out, written = {}, {}
    for key, value in entry.items():
        main = DESTINATION_ALIASES.get(key, key)
        if main not in DESTINATION_KEYS:
            raise NetworkError(f"{where}.{key}", f"unknown key; a destination has {', '.join(DESTINATION_KEYS)} "
                                                 f"(aliases: {', '.join(DESTINATION_ALIASES)})")
        if main in out:
            raise NetworkError(f"{where}.{key}", f"given both as {main} and as its alias "
                                                 f"{next(a for a, m in DESTINATION_ALIASES.items() if m == main)}: "
                                                 "keep one")
        out[main] = value
        written[main] = key
    return out, written


def destination_rules(name: str, entries) -> list[dict]:
    """The rules of one named destination (a dict or a list of dicts)."""
    rules = []
    for number, raw in enumerate(entries if isinstance(entries, list) else [entries]):
        where = f"destinations.{name}[{number}]"
        entry, written = destination_entry(where, raw)
        proto = entry.get("proto")
        if proto not in (None, "tcp", "udp", "icmp"):
            raise NetworkError(f"{where}.proto", f"expected tcp, udp or icmp, not {proto!r}")
        ports_at = f"{where}.{written.get('dstports')}"
        if "dstports" in entry and proto not in ("tcp", "udp"):
            raise NetworkError(ports_at, "ports need proto tcp or udp")
        host = _host(f"{where}.{written.get('dsthost')}", entry["dsthost"]) if "dsthost" in entry else None
        for ports in _ports(ports_at, entry["dstports"]) if "dstports" in entry else [None]:
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
        raise NetworkError("tasks", f"expected a list of {{name, domain, reach}}, not {tasks!r}")
    if not isinstance(destinations, dict):
        raise NetworkError("destinations", "expected a mapping of destination names to their hosts")
    known = {name: destination_rules(name, entries) for name, entries in destinations.items()}
    gathered: dict[str, list[dict]] = {}
    for number, task in enumerate(tasks):
        where = f"tasks[{number}]"
        if not isinstance(task, dict) or not isinstance(task.get("domain"), str):
            raise NetworkError(f"{where}.domain", "every task names its domain, as in {name: x, domain: work}")
        reach = task.get("reach") or []
        if not isinstance(reach, list):
            raise NetworkError(f"{where}.reach", f"expected a list of destination names, not {reach!r}")
        rules = gathered.setdefault(task["domain"], [])
        for name in reach:
            if name not in known:
                raise NetworkError(f"{where}.reach", f"no destination named {name!r} (task "
                                                     f"{task.get('name', number)!r}); destinations: {', '.join(known)}")
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


def setting(where: str, value, own_rules=None) -> dict:
    """One qube's firewall setting as the firewall module takes it: ``{policy, rules}`` (and ``dns``).

    ``value`` is ``whitelist`` (``own_rules``, then DNS), ``allow_all``,
    ``block_all`` (no rule: everything dropped), a list of rules (exactly
    those, as corral.qubes.qube_info returns them) or a dict with
    ``policy`` (whitelist, allow_all, exact or block_all), ``rules`` and
    ``dns``; a whitelist dict without rules takes ``own_rules``.
    """
    if value == "whitelist":
        return {"policy": "whitelist", "rules": list(own_rules or [])}
    if value == "allow_all":
        return {"policy": "allow_all", "rules": []}
    if value == "block_all":
        return {"policy": "exact", "rules": []}
    if isinstance(value, list):
        return {"policy": "exact", "rules": list(value)}
    if not isinstance(value, dict):
        raise NetworkError(where, f"expected {', '.join(NETWORK_WORDS)}, a rule list or a dict with "
                                  f"{', '.join(SETTING_KEYS)}, not {value!r}")
    unknown = sorted(str(key) for key in value if key not in SETTING_KEYS)
    if unknown:
        raise NetworkError(f"{where}.{unknown[0]}", f"unknown key; a firewall setting has {', '.join(SETTING_KEYS)}")
    policy = value.get("policy", "exact" if "rules" in value else None)
    if policy not in SETTING_POLICIES:
        raise NetworkError(f"{where}.policy", f"expected one of {', '.join(SETTING_POLICIES)}, not {policy!r}")
    rules = value.get("rules")
    if rules is not None and not isinstance(rules, list):
        raise NetworkError(f"{where}.rules", f"expected a list of rule dicts, not {rules!r}")
    if policy == "block_all":
        if rules:
            raise NetworkError(f"{where}.rules", "block_all drops everything and takes no rules")
        policy, rules = "exact", []
    if policy == "whitelist" and rules is None:
        rules = own_rules
    out = {"policy": policy, "rules": list(rules or [])}
    if value.get("dns") is not None:
        out["dns"] = value["dns"]
    return out


def firewall_layout(network, lists=None, layout=None) -> dict:
    """The ``qubes`` option of corral.qubes.firewall.

    ``network`` maps qubes to their setting (see :func:`setting`), ``lists``
    is :func:`whitelists`' output, ``layout`` the layout's qubes: the
    ``firewall`` of a layout entry is used for a qube ``network`` does not
    list (the network intent takes precedence; the layout check refuses the
    two when they disagree).
    """
    if not isinstance(network, dict):
        raise NetworkError("network", "expected a mapping of qube names to their network setting")
    lists = lists or {}
    specs = {str(qube): setting(f"network.{qube}", value, lists.get(qube)) for qube, value in network.items()}
    for qube, entry in (layout or {}).items():
        if isinstance(entry, dict) and entry.get("firewall") is not None and str(qube) not in specs \
                and entry.get("state") != "absent":
            specs[str(qube)] = setting(f"layout.{qube}.firewall", entry["firewall"], lists.get(qube))
    return specs
