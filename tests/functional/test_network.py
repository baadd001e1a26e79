# SPDX-License-Identifier: GPL-3.0-or-later
"""Network realisation: real namespaces, real packets, the reference whitelists enforced by the netvms."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import ROOT
from rehearsal import netns, network

CONNECTED, PROHIBITED, REFUSED = network.CONNECTED, network.PROHIBITED, network.REFUSED
DNS = "action=accept specialtarget=dns"

WHITELISTS = {
    "secure": [DNS, "action=accept dsthost=bank.example.com proto=tcp dstports=443"],
    "personal": [DNS] + [f"action=accept dsthost=mail.example.net proto=tcp dstports={port}" for port in (443, 993, 587)] + [
        "action=accept dsthost=cloud.example.net proto=tcp dstports=443",
    ] + [f"action=accept dsthost=203.0.113.0/28 proto=tcp dstports={port}" for port in (22, 443, 3389)] + [
        f"action=accept dsthost=blog.example.net proto=tcp dstports={port}" for port in (22, 443)],
    "work": [DNS, "action=accept dsthost=198.51.100.0/24"] + [
        f"action=accept dsthost={host}.example.org proto=tcp dstports=443" for host in ("mail", "wiki", "svn")] + [
        "action=accept dsthost=svn.example.org proto=tcp dstports=3690"],
}
"""The reference layout's whitelists (untrusted keeps the default: accept everything)."""

EVERYWHERE = [("bank.example.com", 443), ("198.51.100.10", 445), ("198.51.100.20", 22), ("mail.example.org", 443),
              ("wiki.example.org", 443), ("svn.example.org", 3690), ("mail.example.net", 993), ("cloud.example.net", 443),
              ("203.0.113.5", 22), ("blog.example.net", 22), ("news.example.com", 443), ("social.example.com", 443),
              ("203.0.113.200", 443)]


@dataclasses.dataclass
class Lab:
    """A realised rehearsal dom0 with the reference qubes."""

    dom0: object
    client: object
    layout: network.Layout

    def reach(self, qube: str, host: str, port: int, proto: str = "tcp") -> str:
        """Probe from inside a qube."""
        return network.probe(self.layout, qube, host, port, proto, timeout=1.0)

    def reaches(self, qube: str, targets) -> dict:
        """Probe each (host, port) from a qube."""
        return {target: self.reach(qube, *target) for target in targets}

    def ruleset(self, qube: str) -> str:
        """The nftables ruleset in a qube's namespace."""
        return netns.run(netns.inside(self.layout.namespace(qube), ["nft", "list", "ruleset"]))

    def address(self, qube: str) -> str:
        """A qube's Qubes address."""
        return self.client.property_get(qube, "ip").value


def make_lab(dom0) -> Lab:
    """The reference layout's network qubes and domains, whitelisted, all started."""
    client = dom0.client()
    client.create("AppVM", "sys-vpn-work", "blue")
    client.property_set("sys-vpn-work", "provides_network", True)
    for name, label in (("secure", "green"), ("personal", "yellow"), ("work", "blue"), ("untrusted", "red")):
        client.create("AppVM", name, label)
    client.property_set("work", "netvm", "sys-vpn-work")
    for name, rules in WHITELISTS.items():
        client.firewall_set(name, rules)
    for name in ("secure", "personal", "work", "untrusted"):
        client.start(name)
    return Lab(dom0, client, network.Layout(dom0.state_dir))


@pytest.fixture
def lab(dom0_factory):
    """The reference layout on a rehearsal dom0 that realises its network."""
    return make_lab(dom0_factory(extra_args=["--network", "on", "--shutdown-delay", "0"]))


def test_secure_reaches_the_bank_and_nothing_else(lab):
    assert lab.reach("secure", "bank.example.com", 443) == CONNECTED
    assert lab.reach("secure", "bank.example.com", 80) == PROHIBITED  # unfiltered, a closed port is refused
    assert lab.reach("untrusted", "bank.example.com", 80) == REFUSED
    others = [target for target in EVERYWHERE if target != ("bank.example.com", 443)]
    assert set(lab.reaches("secure", others).values()) == {PROHIBITED}
    assert lab.reach("secure", "10.139.1.1", 53, "udp") == CONNECTED
    assert lab.reach("secure", "10.139.1.2", 53) == CONNECTED


def test_untrusted_reaches_everything(lab):
    assert set(lab.reaches("untrusted", EVERYWHERE).values()) == {CONNECTED}


def test_personal_reaches_its_own_destinations(lab):
    mine = [("mail.example.net", 443), ("mail.example.net", 993), ("mail.example.net", 587),
            ("cloud.example.net", 443), ("203.0.113.5", 22), ("203.0.113.5", 3389), ("blog.example.net", 22)]
    assert set(lab.reaches("personal", mine).values()) == {CONNECTED}
    not_mine = [("203.0.113.200", 443), ("bank.example.com", 443), ("198.51.100.10", 443), ("mail.example.org", 443)]
    assert set(lab.reaches("personal", not_mine).values()) == {PROHIBITED}


def test_work_reaches_only_company_networks_through_two_netvms(lab):
    company = [("198.51.100.10", 443), ("198.51.100.10", 445), ("198.51.100.10", 3389), ("198.51.100.20", 22),
               ("mail.example.org", 443), ("wiki.example.org", 443), ("svn.example.org", 443), ("svn.example.org", 3690)]
    assert set(lab.reaches("work", company).values()) == {CONNECTED}
    elsewhere = [("bank.example.com", 443), ("news.example.com", 443), ("203.0.113.5", 22), ("mail.example.net", 443)]
    assert set(lab.reaches("work", elsewhere).values()) == {PROHIBITED}
    assert lab.reach("work", "198.51.100.10", 80) == REFUSED  # the whole company net is open, closed ports too


def test_the_first_hop_enforces_and_the_second_sees_it_masqueraded(lab):
    work, vpn, sys_net = lab.address("work"), lab.address("sys-vpn-work"), lab.address("sys-net")
    assert f"ip saddr {work} jump qbs-" in lab.ruleset("sys-vpn-work")
    assert f"ip saddr {work} " not in lab.ruleset("sys-firewall")
    assert f"ip saddr {vpn} jump qbs-" in lab.ruleset("sys-firewall")
    with network.connect(lab.layout, "work", "wiki.example.org", 443) as sock:
        assert sock.recv(64).decode().strip() == sys_net  # the world sees sys-net's address
        tracked = netns.run(netns.inside(lab.layout.namespace("sys-firewall"), ["conntrack", "-L", "-p", "tcp"]))
        assert f"src={vpn} " in tracked and f"src={work} " not in tracked
    # sys-vpn-work's own rules apply to all it forwards, at sys-firewall
    lab.client.firewall_set("sys-vpn-work", ["action=accept dsthost=198.51.100.0/24"])
    assert lab.reach("work", "198.51.100.10", 443) == CONNECTED
    assert lab.reach("work", "wiki.example.org", 443) == PROHIBITED


def test_dns_is_reachable_only_with_the_dns_rule(lab):
    lab.client.firewall_set("secure", WHITELISTS["secure"][1:])
    assert lab.reach("secure", "10.139.1.1", 53, "udp") == PROHIBITED
    assert lab.reach("secure", "10.139.1.2", 53) == PROHIBITED
    assert lab.reach("secure", "bank.example.com", 443) == CONNECTED
    lab.client.firewall_set("secure", ["action=accept specialtarget=dns proto=udp"] + WHITELISTS["secure"][1:])
    assert lab.reach("secure", "10.139.1.1", 53, "udp") == CONNECTED
    assert lab.reach("secure", "10.139.1.1", 53) == PROHIBITED


def test_a_rule_change_applies_live_and_cuts_blocked_connections(lab):
    started = lab.client.property_get("untrusted", "start_time").value
    with network.connect(lab.layout, "untrusted", "news.example.com", 443) as sock:
        sock.settimeout(2)
        sock.recv(64)
        sock.sendall(b"before\n")
        assert sock.recv(64) == b"before\n"
        lab.client.firewall_set("untrusted", ["action=accept dsthost=bank.example.com proto=tcp dstports=443"])
        assert lab.reach("untrusted", "news.example.com", 443) == PROHIBITED
        assert lab.reach("untrusted", "bank.example.com", 443) == CONNECTED
        with pytest.raises(OSError) as cut:
            sock.sendall(b"after\n")
            sock.recv(64)
        assert network.outcome(cut.value) == PROHIBITED
    lab.client.firewall_set("untrusted", ["action=accept"])
    assert lab.reach("untrusted", "news.example.com", 443) == CONNECTED
    assert lab.client.property_get("untrusted", "start_time").value == started


def test_hostnames_are_resolved_again_on_reload(lab):
    with open(lab.layout.hosts, "a", encoding="utf-8") as fh:
        fh.write("192.0.2.40 bank.example.com\n")  # a second address for the bank
    assert lab.reach("secure", "192.0.2.40", 443) == PROHIBITED
    lab.client.firewall_reload("secure")
    assert lab.reach("secure", "192.0.2.40", 443) == CONNECTED
    assert lab.reach("secure", "192.0.2.10", 443) == CONNECTED
    with open(lab.layout.hosts, "w", encoding="utf-8") as fh:
        fh.write("192.0.2.41 bank.example.com\n")  # the bank moved
    lab.client.firewall_reload("secure")
    assert lab.reach("secure", "192.0.2.41", 443) == CONNECTED
    assert lab.reach("secure", "192.0.2.10", 443) == PROHIBITED
    assert lab.reach("secure", "192.0.2.40", 443) == PROHIBITED


def test_an_unresolvable_hostname_fails_closed(lab):
    lab.client.firewall_set("untrusted", [DNS, "action=accept dsthost=nowhere.example.com", "action=accept"])
    assert set(lab.reaches("untrusted", EVERYWHERE).values()) == {PROHIBITED}
    assert lab.reach("untrusted", "10.139.1.1", 53, "udp") == PROHIBITED
    lab.client.firewall_set("untrusted", [DNS, "action=accept dsthost=news.example.com", "action=drop"])
    assert lab.reach("untrusted", "news.example.com", 443) == CONNECTED
    assert lab.reach("untrusted", "social.example.com", 443) == PROHIBITED


def test_an_expiring_rule_stops_applying(lab):
    lab.client.firewall_set("secure", [f"action=accept expire={int(time.time()) + 2} dsthost=news.example.com"])
    assert lab.reach("secure", "news.example.com", 443) == CONNECTED
    deadline = time.monotonic() + 5
    while lab.reach("secure", "news.example.com", 443) == CONNECTED and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab.reach("secure", "news.example.com", 443) == PROHIBITED


def test_a_netvm_change_on_a_running_qube_replumbs_it(lab):
    lab.client.firewall_set("sys-vpn-work", ["action=accept dsthost=198.51.100.0/24"])
    assert lab.reach("untrusted", "news.example.com", 443) == CONNECTED
    lab.client.property_set("untrusted", "netvm", "sys-vpn-work")
    assert lab.reach("untrusted", "news.example.com", 443) == PROHIBITED
    assert lab.reach("untrusted", "198.51.100.10", 443) == CONNECTED
    assert f"ip saddr {lab.address('untrusted')} " not in lab.ruleset("sys-firewall")
    lab.client.property_reset("untrusted", "netvm")
    assert lab.reach("untrusted", "news.example.com", 443) == CONNECTED


def test_stopping_qubes_removes_their_namespaces_and_cuts_clients(lab):
    lab.client.shutdown("secure", wait=True)
    assert not netns.exists(lab.layout.namespace("secure"))
    with pytest.raises(network.ProbeError):
        lab.reach("secure", "bank.example.com", 443)
    lab.client.kill("sys-vpn-work")
    assert not netns.exists(lab.layout.namespace("sys-vpn-work"))
    assert lab.reach("work", "198.51.100.10", 443) == network.UNREACHABLE
    lab.client.start("sys-vpn-work")
    assert lab.reach("work", "198.51.100.10", 443) == CONNECTED
    assert lab.reach("work", "bank.example.com", 443) == PROHIBITED


def test_the_server_leaves_no_namespaces_and_clears_a_killed_run(lab, dom0_factory):
    other = dom0_factory(extra_args=["--network", "on"], name="other")
    other.client().start("sys-firewall")
    other_layout = network.Layout(other.state_dir)
    before = set(lab.layout.owned())
    assert {lab.layout.world, lab.layout.namespace("work"), lab.layout.namespace("sys-net")} <= before
    world_before = os.stat(os.path.join(netns.NETNS_DIR, lab.layout.world)).st_ino
    lab.dom0.proc.send_signal(signal.SIGKILL)
    lab.dom0.proc.wait()
    lab.dom0.proc = None
    assert set(lab.layout.owned()) == before  # a killed server cleans nothing
    lab.dom0.start()
    assert set(lab.layout.owned()) == before  # the running qubes, realised again
    assert os.stat(os.path.join(netns.NETNS_DIR, lab.layout.world)).st_ino != world_before  # in new namespaces
    assert lab.reach("secure", "bank.example.com", 443) == CONNECTED
    assert lab.reach("secure", "news.example.com", 443) == PROHIBITED
    lab.dom0.stop()
    assert not lab.layout.owned()
    assert not os.path.exists(lab.layout.run_dir)
    assert network.probe(other_layout, "sys-firewall", "bank.example.com", 443, timeout=1.0) == CONNECTED


def test_the_probe_command(lab):
    def probe(*args):
        return subprocess.run([sys.executable, "-m", "rehearsal", "probe", "--state", lab.dom0.state_dir, *args],
                              cwd=ROOT, capture_output=True, text=True, check=False)

    done = probe("secure", "bank.example.com", "443")
    assert (done.returncode, done.stdout) == (0, "connected\n")
    done = probe("secure", "news.example.com", "443")
    assert (done.returncode, done.stdout) == (1, "prohibited\n")
    done = probe("--proto", "udp", "secure", "10.139.1.1", "53")
    assert (done.returncode, done.stdout) == (0, "connected\n")
    done = probe("vault", "bank.example.com", "443")
    assert done.returncode == 2 and "no network namespace" in done.stderr


def test_network_off_realises_nothing(dom0_factory):
    dom0 = dom0_factory(extra_args=["--network", "off"])
    dom0.client().start("sys-firewall")
    assert not network.Layout(dom0.state_dir).owned()
