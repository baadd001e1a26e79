# SPDX-License-Identifier: GPL-3.0-or-later
"""The whitelists and firewall_layout filters."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.filter.network import firewall_layout, whitelists

LAYOUT = pathlib.Path(__file__).resolve().parents[2] / "inventories/t420s/group_vars/qubes_admin/network.yml"


def test_reference_layout_whitelists():
    data = yaml.safe_load(LAYOUT.read_text())
    lists = whitelists(data["qubes_tasks"], data["qubes_destinations"])
    assert lists["secure"] == [{"action": "accept", "dsthost": "bank.example.com", "proto": "tcp", "dstports": "443"}]
    assert lists["work"] == [
        {"action": "accept", "dsthost": "mail.example.org", "proto": "tcp", "dstports": "443"},
        {"action": "accept", "dsthost": "wiki.example.org", "proto": "tcp", "dstports": "443"},
        {"action": "accept", "dsthost": "198.51.100.0/24"},
        {"action": "accept", "dsthost": "svn.example.org", "proto": "tcp", "dstports": "443"},
        {"action": "accept", "dsthost": "svn.example.org", "proto": "tcp", "dstports": "3690"}]
    assert [rule["dstports"] for rule in lists["personal"] if rule["dsthost"] == "mail.example.net"] == [
        "443", "587", "993"]
    assert lists["untrusted"] == [] and lists["vault"] == []
    specs = firewall_layout(data["qubes_network"], lists)
    assert specs["untrusted"] == {"policy": "allow_all", "rules": []}
    assert specs["work"] == {"policy": "whitelist", "rules": lists["work"]}


def test_union_merges_ports_and_drops_covered_rules():
    destinations = {
        "net": {"host": "198.51.100.0/24"},
        "one": [{"host": "198.51.100.7", "proto": "tcp", "ports": [443]}],
        "web": [{"host": "web.example.com", "proto": "tcp", "ports": [80, 81, "82-90", 443]}],
        "web_again": [{"host": "web.example.com", "proto": "tcp", "ports": 85}],
        "v6": [{"host": "2001:db8::/32"}, {"host": "2001:db8:1::5", "proto": "udp", "ports": [53]}],
        "any_ssh": [{"proto": "tcp", "ports": 22}],
        "ssh_here": [{"host": "203.0.113.9", "proto": "tcp", "ports": 22}],
    }
    tasks = [{"domain": "d", "reach": ["one", "web", "net", "web_again", "v6", "ssh_here", "any_ssh"]},
             {"domain": "d", "reach": ["one"]}]
    assert whitelists(tasks, destinations) == {"d": [
        {"action": "accept", "dsthost": "web.example.com", "proto": "tcp", "dstports": "80-90"},
        {"action": "accept", "dsthost": "web.example.com", "proto": "tcp", "dstports": "443"},
        {"action": "accept", "dsthost": "198.51.100.0/24"},
        {"action": "accept", "dsthost": "2001:db8::/32"},
        {"action": "accept", "proto": "tcp", "dstports": "22"}]}


@pytest.mark.parametrize("tasks, destinations, words", [
    ([{"domain": "d", "reach": ["nowhere"]}], {}, "tasks[0].reach: no destination named 'nowhere'"),
    ([{"name": "x"}], {}, "tasks[0].domain"),
    ([{"domain": "d", "reach": "web"}], {}, "tasks[0].reach: expected a list"),
    ({"domain": "d"}, {}, "tasks: expected a list"),
    ([], [], "destinations: expected a mapping"),
    ([], {"w": {"host": "a", "port": 1}}, "destinations.w[0].port: unknown key"),
    ([], {"w": {"host": "a", "ports": [1]}}, "destinations.w[0].ports: ports need proto"),
    ([], {"w": {"host": "a", "proto": "tcp", "ports": [70000]}}, "destinations.w[0].ports"),
    ([], {"w": {"host": "a", "proto": "tcp", "ports": ["x"]}}, "not a port"),
    ([], {"w": {"host": "a", "proto": "gre"}}, "destinations.w[0].proto"),
    ([], {"w": {"host": ""}}, "destinations.w[0].host"),
    ([], {"w": {"host": "Bank.example.com"}}, "destinations.w[0].host: invalid hostname"),
    ([], {"w": {"host": "10.0.0.0/33"}}, "destinations.w[0].host: an IPv4 prefix length must be at most 32"),
    ([], {"w": {"host": "a", "proto": "tcp", "ports": ["90-80"]}}, "ends before it starts"),
    ([], {"w": ["a.example.com"]}, "destinations.w[0]: expected a dict"),
])
def test_whitelists_bad_input(tasks, destinations, words):
    with pytest.raises(AnsibleFilterError, match=None) as caught:
        whitelists(tasks, destinations)
    assert words in str(caught.value)


def test_firewall_layout_forms():
    lists = {"a": [{"action": "accept", "dsthost": "a.example.com"}]}
    assert firewall_layout({"a": "whitelist", "b": "whitelist", "c": "block_all", "d": [{"action": "drop"}],
                            "e": {"policy": "whitelist", "dns": False}, "f": {"policy": "exact", "rules": []}},
                           lists) == {
        "a": {"policy": "whitelist", "rules": lists["a"]}, "b": {"policy": "whitelist", "rules": []},
        "c": {"policy": "exact", "rules": []}, "d": {"policy": "exact", "rules": [{"action": "drop"}]},
        "e": {"policy": "whitelist", "dns": False, "rules": []}, "f": {"policy": "exact", "rules": []}}
    with pytest.raises(AnsibleFilterError, match="network.x: expected whitelist"):
        firewall_layout({"x": "open"})
    with pytest.raises(AnsibleFilterError, match="network: expected a mapping"):
        firewall_layout(["x"])


def test_destinations_take_the_firewall_module_names_and_the_old_ones_as_aliases():
    main = {"w": [{"dsthost": "web.example.com", "proto": "tcp", "dstports": [443]}]}
    old = {"w": [{"host": "web.example.com", "proto": "tcp", "ports": [443]}]}
    tasks = [{"domain": "d", "reach": ["w"]}]
    expected = {"d": [{"action": "accept", "dsthost": "web.example.com", "proto": "tcp", "dstports": "443"}]}
    assert whitelists(tasks, main) == whitelists(tasks, old) == expected
    with pytest.raises(AnsibleFilterError, match=r"destinations.w\[0\].host: given both as dsthost and as its alias"):
        whitelists(tasks, {"w": {"dsthost": "a.example.com", "host": "b.example.com"}})
    # an error names the key as it was written
    with pytest.raises(AnsibleFilterError, match=r"destinations.w\[0\].dstports: ports need proto"):
        whitelists(tasks, {"w": {"dsthost": "a", "dstports": [1]}})


def test_firewall_layout_output_is_always_what_the_module_takes():
    rule = {"action": "accept", "dsthost": "a.example.com"}
    out = firewall_layout({"a": "allow_all", "b": {"policy": "allow_all"}, "c": {"policy": "block_all"},
                           "d": {"rules": [rule]}, "e": {"policy": "whitelist"}}, {"e": [rule]})
    assert out == {"a": {"policy": "allow_all", "rules": []}, "b": {"policy": "allow_all", "rules": []},
                   "c": {"policy": "exact", "rules": []}, "d": {"policy": "exact", "rules": [rule]},
                   "e": {"policy": "whitelist", "rules": [rule]}}
    for spec in out.values():
        assert set(spec) <= {"policy", "rules", "dns"} and spec["policy"] in ("whitelist", "allow_all", "exact")
    with pytest.raises(AnsibleFilterError, match="network.a.polcy: unknown key"):
        firewall_layout({"a": {"polcy": "whitelist"}})
    with pytest.raises(AnsibleFilterError, match="network.a.policy: expected one of"):
        firewall_layout({"a": {"policy": "open"}})
    # a layout entry's firewall (qube_info's form) for a qube the network settings do not list
    layout = {"x": {"firewall": [rule]}, "a": {"firewall": [rule]}, "gone": {"state": "absent", "firewall": []}}
    assert firewall_layout({"a": "allow_all"}, {}, layout) == {
        "a": {"policy": "allow_all", "rules": []}, "x": {"policy": "exact", "rules": [rule]}}
