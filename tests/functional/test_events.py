# SPDX-License-Identifier: GPL-3.0-or-later
"""admin.Events: a stream that starts with connection-established."""

from __future__ import annotations

from harness import events_until, subscribe


def test_event_stream(dom0):
    sock = subscribe(dom0.socket)
    try:
        assert events_until(sock, "connection-established")[0] == ("", "connection-established", {})
        client = dom0.client()
        client.property_set("sys-net", "memory", 512)
        client.create("AppVM", "work", "blue")
        client.start("sys-net")
        events = events_until(sock, "domain-start")
    finally:
        sock.close()
    assert ("sys-net", "property-set:memory", {"name": "memory", "newvalue": "512", "oldvalue": "400"}) in events
    assert ("", "domain-add", {"vm": "work"}) in events
    assert ("work", "domain-tag-add:created-by-dom0", {"tag": "created-by-dom0"}) in events
    assert any(e[:2] == ("sys-net", "domain-start") for e in events)


def test_event_stream_for_one_qube(dom0):
    sock = subscribe(dom0.socket, "sys-firewall")
    try:
        events_until(sock, "connection-established")
        client = dom0.client()
        client.property_set("sys-net", "memory", 512)
        client.property_set("sys-firewall", "memory", 513)
        events = events_until(sock, "property-set:memory")
    finally:
        sock.close()
    assert {e[0] for e in events} == {"sys-firewall"}


def test_closed_subscribers_do_not_disturb_live_ones(dom0):
    live = subscribe(dom0.socket)
    try:
        events_until(live, "connection-established")
        for _i in range(5):
            subscribe(dom0.socket).close()
        dom0.client().property_set("sys-net", "memory", 600)
        events = events_until(live, "property-set:memory")
    finally:
        live.close()
    assert ("sys-net", "property-set:memory", {"name": "memory", "newvalue": "600", "oldvalue": "400"}) in events
    assert dom0.alive
