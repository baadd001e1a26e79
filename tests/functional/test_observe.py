# SPDX-License-Identifier: GPL-3.0-or-later
"""Call log and fault injection."""

from __future__ import annotations

import time

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import wire


def test_call_log_records_every_call(dom0):
    client = dom0.client()
    mark = dom0.mark()
    client.property_set("sys-net", "memory", 500)
    with pytest.raises(wire.QubesNoSuchPropertyError):
        client.property_get("sys-net", "nope")
    dom0.raw(b"admin.vm.NoSuchMethod+ dom0 name dom0\x00")
    dom0.raw(b"garbage")
    entries = dom0.calls_since(mark)
    assert [e["result"] for e in entries] == ["ok", "exception", "empty", "empty"]
    ok = entries[0]
    assert (ok["method"], ok["arg"], ok["source"], ok["dest"], ok["payload_bytes"], ok["mutating"]) == \
        ("admin.vm.property.Set", "memory", "dom0", "sys-net", 3, True)
    assert ok["duration_ms"] >= 0
    assert entries[1]["exc_class"] == "QubesNoSuchPropertyError" and entries[1]["mutating"] is False
    assert entries[3]["method"] is None and entries[3]["reason"].startswith("framing")


def test_fault_fail_nth_call(dom0_factory):
    dom0 = dom0_factory(extra_args=["--fault", "admin.vm.property.Set:2:fail"], name="faulty")
    client = dom0.client()
    client.property_set("sys-net", "memory", 500)
    with pytest.raises(wire.QubesException, match="Injected fault"):
        client.property_set("sys-net", "memory", 600)
    client.property_set("sys-net", "vcpus", 1)
    assert client.property_get("sys-net", "memory").native == 500  # the failed call changed nothing
    assert dom0.calls()[-3]["fault"] == "fail"


def test_fault_drop_from_nth_on(dom0_factory):
    dom0 = dom0_factory(extra_args=["--fault", "admin.vm.Start:1+:drop"], name="dropping")
    client = dom0.client()
    for _i in range(2):
        with pytest.raises(wire.QubesDaemonAccessError):
            client.start("sys-net")
    assert client.list_vms()["sys-net"].state == "Halted"


def test_latency(dom0_factory):
    dom0 = dom0_factory(extra_args=["--latency", "admin.vm.List:300"], name="slow")
    client = dom0.client()
    started = time.monotonic()
    client.list_vms()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    client.property_get("sys-net", "memory")
    assert time.monotonic() - started < 0.3


def test_bad_fault_options_are_refused(dom0_factory):
    with pytest.raises(RuntimeError, match="expected METHOD:N:fail"):
        dom0_factory(extra_args=["--fault", "admin.vm.Start:x:explode"], name="badfault")
