# SPDX-License-Identifier: GPL-3.0-or-later
"""Qubes firewall rules rendered as nftables, the way a netvm's firewall agent lays them out.

The one place where rules become nft syntax.  A netvm's table (R4.3 layout)::

    table ip qubes-firewall {
        chain forward {            # hook forward, policy drop
            ct state established,related accept
            iifname != "vif*" accept
            jump qubes-forward
        }
        chain qubes-forward {      # one jump per client address
            ip saddr 10.137.0.12 jump qbs-10-137-0-12
        }
        chain qbs-10-137-0-12 {    # the client's rules, then the implicit final drop
            ...
            reject with icmp type admin-prohibited
        }
    }

``accept`` stays ``accept``; ``drop`` becomes a reject with ICMP
administratively-prohibited, so a client sees a refusal rather than a
timeout.  A rule with ports and no protocol becomes a tcp and a udp rule;
``specialtarget=dns`` matches port 53 on the netvm's DNS addresses (and is
skipped when it names another port); hostnames are resolved when the table
is rendered, and a name that does not resolve blocks everything from that
client (fail closed).  Expired rules are left out, and so are IPv6 rules:
this is the ``ip`` (IPv4) family table.

A rendered table is one ``nft -f -`` transaction that replaces the previous
table whole, so a change is atomic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ansible_collections.corral.qubes.plugins.module_utils import firewall

TABLE = "qubes-firewall"
NAT_TABLE = "qubes"
REJECT = "reject with icmp type admin-prohibited"
DNS_PORT = 53

Resolver = Callable[[str], list]
"""``resolve(hostname) -> [IPv4 address, ...]`` (empty: the name does not resolve)."""


class ResolveError(LookupError):
    """A rule names a host that does not resolve."""


def chain_name(address: str) -> str:
    """The per-client chain: ``qbs-10-137-0-12`` for 10.137.0.12."""
    return "qbs-" + address.replace(".", "-").replace(":", "-")


def _address_set(addresses: Iterable[str]) -> str:
    addresses = sorted(set(addresses))
    return addresses[0] if len(addresses) == 1 else "{ " + ", ".join(addresses) + " }"


def _destination(rule: firewall.Rule, resolve: Resolver) -> list[str]:
    """The ``ip daddr`` match of a rule's dsthost (none for any host)."""
    if rule.dst_type is None:
        return []
    if rule.dst_type == "dst4":
        return [f"ip daddr {rule.dsthost}"]
    addresses = resolve(rule.dsthost)
    if not addresses:
        raise ResolveError(f"{rule.dsthost} does not resolve")
    return [f"ip daddr {_address_set(addresses)}"]


def _protocols(rule: firewall.Rule) -> list[str]:
    """One match per protocol the rule stands for (a dns or ports rule without proto: tcp and udp)."""
    ports = (DNS_PORT, DNS_PORT) if rule.specialtarget == "dns" else rule.dstports
    protos = [rule.proto] if rule.proto else (["tcp", "udp"] if ports else [])
    if not protos:
        return [""]
    matches = []
    for proto in protos:
        if proto == "icmp":
            icmp_type = f" icmp type {rule.icmptype}" if rule.icmptype is not None else ""
            matches.append(f"ip protocol icmp{icmp_type}")
        elif ports and proto in ("tcp", "udp"):
            matches.append(f"{proto} dport {firewall.short_ports(ports)}")
        else:
            matches.append(f"ip protocol {proto}")
    return matches


def rule_statements(rule: firewall.Rule, resolve: Resolver, dns_servers: Iterable[str]) -> list[str]:
    """The nft rules for one Qubes rule: none (IPv6, or dns on another port), one, or two."""
    if rule.dst_type == "dst6":
        return []
    if rule.specialtarget == "dns" and rule.dstports not in (None, (DNS_PORT, DNS_PORT)):
        return []
    matches = _destination(rule, resolve)
    if rule.specialtarget == "dns":
        matches.append(f"ip daddr {_address_set(dns_servers)}")
    verdict = "accept" if rule.action == "accept" else REJECT
    return [" ".join(part for part in (*matches, proto, verdict) if part) for proto in _protocols(rule)]


def client_chain(rules: Iterable[firewall.Rule], resolve: Resolver, dns_servers: Iterable[str],
                 now: float) -> list[str]:
    """A client's chain body: its live rules, then the final reject; only a reject if a name fails."""
    dns_servers = tuple(dns_servers)
    statements = []
    try:
        for rule in rules:
            if not rule.is_expired(now):
                statements.extend(rule_statements(rule, resolve, dns_servers))
    except ResolveError:
        return [REJECT]
    return statements + [REJECT]


def render_table(clients: dict[str, list], resolve: Resolver, dns_servers: Iterable[str], now: float) -> str:
    """The transaction that replaces a netvm's ``qubes-firewall`` table: ``{client address: rules}``."""
    lines = [
        f"table ip {TABLE}",
        f"delete table ip {TABLE}",
        f"table ip {TABLE} {{",
        "\tchain forward {",
        "\t\ttype filter hook forward priority 0; policy drop;",
        "\t\tct state established,related accept",
        '\t\tiifname != "vif*" accept',
        "\t\tjump qubes-forward",
        "\t}",
        "\tchain qubes-forward {",
    ]
    lines += [f"\t\tip saddr {address} jump {chain_name(address)}" for address in sorted(clients)]
    lines.append("\t}")
    for address in sorted(clients):
        lines.append(f"\tchain {chain_name(address)} {{")
        lines += ["\t\t" + statement for statement in client_chain(clients[address], resolve, dns_servers, now)]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_nat(uplink: str) -> str:
    """The transaction that makes a netvm masquerade what it forwards out of ``uplink``."""
    return "\n".join((
        f"table ip {NAT_TABLE}",
        f"delete table ip {NAT_TABLE}",
        f"table ip {NAT_TABLE} {{",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        f'\t\toifname "{uplink}" masquerade',
        "\t}",
        "}",
    )) + "\n"
