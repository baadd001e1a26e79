# SPDX-License-Identifier: GPL-3.0-or-later
"""Qubes firewall rules rendered as nftables, in the layout of the netvm's firewall agent."""

import subprocess

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import firewall
from rehearsal import nft

DNS = ("10.139.1.1", "10.139.1.2")
HOSTS = {"bank.example.com": ["192.0.2.10"], "cdn.example.com": ["192.0.2.21", "192.0.2.20"]}


def resolve(name):
    return HOSTS.get(name, [])


def statements(line):
    return nft.rule_statements(firewall.parse_rule(line), resolve, DNS)


@pytest.mark.parametrize("line, expected", [
    ("action=accept", ["accept"]),
    ("action=drop", ["reject with icmp type admin-prohibited"]),
    ("action=accept dsthost=198.51.100.0/24", ["ip daddr 198.51.100.0/24 accept"]),
    ("action=accept dsthost=192.0.2.1", ["ip daddr 192.0.2.1/32 accept"]),
    ("action=accept dsthost=bank.example.com proto=tcp dstports=443", ["ip daddr 192.0.2.10 tcp dport 443 accept"]),
    ("action=accept dsthost=cdn.example.com", ["ip daddr { 192.0.2.20, 192.0.2.21 } accept"]),
    ("action=drop proto=udp dstports=1000-2000", ["udp dport 1000-2000 reject with icmp type admin-prohibited"]),
    ("action=accept proto=tcp", ["ip protocol tcp accept"]),
    ("action=accept proto=icmp", ["ip protocol icmp accept"]),
    ("action=accept proto=icmp icmptype=8", ["ip protocol icmp icmp type 8 accept"]),
    ("action=accept specialtarget=dns",
     ["ip daddr { 10.139.1.1, 10.139.1.2 } tcp dport 53 accept", "ip daddr { 10.139.1.1, 10.139.1.2 } udp dport 53 accept"]),
    ("action=accept specialtarget=dns proto=udp", ["ip daddr { 10.139.1.1, 10.139.1.2 } udp dport 53 accept"]),
    ("action=accept specialtarget=dns proto=tcp dstports=53", ["ip daddr { 10.139.1.1, 10.139.1.2 } tcp dport 53 accept"]),
    ("action=accept specialtarget=dns proto=tcp dstports=80", []),
    ("action=accept dsthost=2001:db8::/32", []),
    ("action=accept dst6=2001:db8::1 proto=tcp dstports=443", []),
    ("action=accept dsthost=bank.example.com comment=my bank", ["ip daddr 192.0.2.10 accept"]),
])
def test_one_rule(line, expected):
    assert statements(line) == expected


def test_ports_without_a_protocol_stand_for_tcp_and_udp():
    rule = firewall.Rule(action="accept", dsthost="192.0.2.0/24", dst_type="dst4", dstports=(80, 80))
    assert nft.rule_statements(rule, resolve, DNS) == ["ip daddr 192.0.2.0/24 tcp dport 80 accept",
                                                       "ip daddr 192.0.2.0/24 udp dport 80 accept"]


def test_a_chain_ends_with_the_implicit_drop_and_leaves_out_expired_rules():
    rules = firewall.parse_rules("action=accept expire=1000 dsthost=192.0.2.1\naction=accept expire=3000 dsthost=192.0.2.2\n"
                                 "action=accept proto=tcp dstports=443\n")
    assert nft.client_chain(rules, resolve, DNS, now=2000) == [
        "ip daddr 192.0.2.2/32 accept", "tcp dport 443 accept", "reject with icmp type admin-prohibited"]


def test_a_name_that_does_not_resolve_closes_the_whole_chain():
    rules = firewall.parse_rules("action=accept specialtarget=dns\naction=accept dsthost=nowhere.example.com\naction=accept\n")
    assert nft.client_chain(rules, resolve, DNS, now=0) == ["reject with icmp type admin-prohibited"]


def test_the_table_replaces_itself_with_one_chain_per_client():
    script = nft.render_table({"10.137.0.12": firewall.parse_rules("action=accept specialtarget=dns\n"),
                               "10.137.0.9": list(firewall.DEFAULT_RULES)}, resolve, DNS, now=0)
    lines = [line.strip() for line in script.splitlines()]
    assert lines[:3] == ["table ip qubes-firewall", "delete table ip qubes-firewall", "table ip qubes-firewall {"]
    assert lines[3:9] == ["chain forward {", "type filter hook forward priority 0; policy drop;",
                          "ct state established,related accept", 'iifname != "vif*" accept', "jump qubes-forward", "}"]
    assert lines[9:13] == ["chain qubes-forward {", "ip saddr 10.137.0.12 jump qbs-10-137-0-12",
                           "ip saddr 10.137.0.9 jump qbs-10-137-0-9", "}"]
    assert lines[13:18] == ["chain qbs-10-137-0-12 {", "ip daddr { 10.139.1.1, 10.139.1.2 } tcp dport 53 accept",
                            "ip daddr { 10.139.1.1, 10.139.1.2 } udp dport 53 accept",
                            "reject with icmp type admin-prohibited", "}"]
    assert lines[18:] == ["chain qbs-10-137-0-9 {", "accept", "reject with icmp type admin-prohibited", "}", "}"]


def test_a_table_without_clients_forwards_nothing_new():
    script = nft.render_table({}, resolve, DNS, now=0)
    assert "policy drop" in script and "jump qbs-" not in script and "chain qbs-" not in script


def test_nft_accepts_what_is_rendered():
    rules = firewall.parse_rules("\n".join([
        "action=accept specialtarget=dns", "action=accept dsthost=cdn.example.com proto=tcp dstports=443-444",
        "action=drop proto=icmp icmptype=8", "action=accept dsthost=198.51.100.0/24 proto=udp", "action=drop"]) + "\n")
    script = nft.render_table({"10.137.0.12": rules, "10.137.0.13": []}, resolve, DNS, now=0) + nft.render_nat("eth0")
    done = subprocess.run(["nft", "--check", "-f", "-"], input=script, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
