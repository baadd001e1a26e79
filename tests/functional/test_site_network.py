# SPDX-License-Identifier: GPL-3.0-or-later
"""The reference layout built by site.yml, enforced with real packets.

site.yml converges the qubes and writes each domain's whitelist (computed by
the whitelists filter from the layout's tasks); the qubes are started and
every destination of the rehearsal world is probed from inside each domain.
"""

from __future__ import annotations

import pytest

from playbook import qube
from rehearsal import network, rootfs, roots
from test_site import site

REASONS = roots.unavailable() + network.unavailable()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"real packets and qube roots: {'; '.join(REASONS)}")
CONNECTED, PROHIBITED = network.CONNECTED, network.PROHIBITED

DESTINATIONS = {
    # destination -> the domains whose tasks reach it
    ("bank.example.com", 443): {"secure"},
    ("mail.example.org", 443): {"work"},
    ("wiki.example.org", 443): {"work"},
    ("svn.example.org", 443): {"work"},
    ("svn.example.org", 3690): {"work"},
    ("198.51.100.10", 445): {"work"},
    ("198.51.100.10", 3389): {"work"},
    ("198.51.100.20", 22): {"work"},
    ("mail.example.net", 443): {"personal"},
    ("mail.example.net", 993): {"personal"},
    ("mail.example.net", 587): {"personal"},
    ("cloud.example.net", 443): {"personal"},
    ("203.0.113.5", 22): {"personal"},
    ("203.0.113.5", 3389): {"personal"},
    ("blog.example.net", 22): {"personal"},
    ("news.example.com", 443): set(),
    ("social.example.com", 443): set(),
    ("203.0.113.200", 443): set(),
}
DOMAINS = ("secure", "personal", "work", "untrusted")


@pytest.fixture
def built(dom0_factory, tmp_path, player):
    """A realised rehearsal dom0 with the reference layout built by site.yml and the domains running."""
    rootfs.build()
    dom0 = dom0_factory(name="site-net", extra_args=["--network", "on", "--roots", "on"])
    proc = site(dom0, tmp_path)
    assert proc.returncode == 0 and "failed=0" in proc.stdout, proc.stdout + proc.stderr
    player.dom0 = dom0
    started = player.run([qube(name, state="running") for name in DOMAINS])
    assert not started.failed, started.output
    return dom0, network.Layout(dom0.state_dir), player


def test_each_domain_reaches_exactly_its_tasks_destinations(built):
    dom0, layout, _player = built
    seen = {domain: {target: network.probe(layout, domain, *target, timeout=1.0) for target in DESTINATIONS}
            for domain in DOMAINS}
    for domain in ("secure", "personal", "work"):
        wanted = {target: CONNECTED if domain in reachers else PROHIBITED for target, reachers in DESTINATIONS.items()}
        assert seen[domain] == wanted, domain
    assert set(seen["untrusted"].values()) == {CONNECTED}
    # DNS (the whitelist's specialtarget=dns) works from a whitelisted domain.
    assert network.probe(layout, "secure", "10.139.1.1", 53, "udp", timeout=1.0) == CONNECTED
    # work sits behind sys-vpn-work; its rules are still enforced by its own netvm.
    assert dom0.client().property_get("work", "netvm").value == "sys-vpn-work"


def test_changing_the_whitelist_changes_reachability_without_a_restart(built):
    dom0, layout, player = built
    news = ("news.example.com", 443)
    assert network.probe(layout, "secure", *news, timeout=1.0) == PROHIBITED
    before = dom0.client().list_vms()["secure"]
    rules = [{"dsthost": "bank.example.com", "proto": "tcp", "dstports": 443},
             {"dsthost": "news.example.com", "proto": "tcp", "dstports": 443}]
    run = player.run([{"corral.qubes.firewall": {"name": "secure", "policy": "whitelist", "rules": rules}}])
    assert run[0]["changed"]
    assert network.probe(layout, "secure", *news, timeout=1.0) == CONNECTED
    run = player.run([{"corral.qubes.firewall": {"name": "secure", "policy": "whitelist", "rules": rules[:1]}}])
    assert network.probe(layout, "secure", *news, timeout=1.0) == PROHIBITED
    assert network.probe(layout, "secure", "bank.example.com", 443, timeout=1.0) == CONNECTED
    after = dom0.client().list_vms()["secure"]
    assert (before.state, after.state) == ("Running", "Running")
