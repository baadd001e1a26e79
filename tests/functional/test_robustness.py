# SPDX-License-Identifier: GPL-3.0-or-later
"""The server never dies on what a client sends, and answers as qubesd does."""

from __future__ import annotations

import concurrent.futures
import socket
import time

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import wire

LIST = b"admin.vm.List+ dom0 name dom0\x00"


@pytest.mark.parametrize("data", [
    b"",                                                    # nothing at all
    b"\x00",                                                # empty header
    b"admin.vm.List+ dom0 name dom0",                       # no NUL
    b"admin.vm.List+ dom0 name\x00",                        # three fields
    b"admin.vm.List+ dom0 weird dom0\x00",                  # unknown dest type
    b"admin.vm.NoSuchMethod+ dom0 name dom0\x00",           # unknown method
    b"admin.vm.List+someargument dom0 name dom0\x00",       # unexpected argument
    b"admin.vm.List+ dom0 name dom0\x00payload",            # unexpected payload
    b"admin.vm.property.Get+ dom0 name dom0\x00",           # missing argument
    b"admin.vm.Create.AppVM+ dom0 name sys-net\x00name=x label=red",  # global method, qube dest
    b"admin.vm.Create.AppVM+ dom0 name dom0\x00name=x",     # missing label
    b"admin.vm.Create.AppVM+ dom0 name dom0\x00name=x  label=red",  # double space
    b"admin.vm.Create.AppVM+ dom0 name dom0\x00name=x label=red label=red",  # duplicated
    b"admin.vm.Create.AppVM+ dom0 name dom0\x00name=x label=red pool=varlibqubes",  # pool on plain Create
    b"admin.vm.Create.NoClass+ dom0 name dom0\x00name=x label=red",
    b"admin.vm.Create.AppVM+ dom0 name dom0\x00name=x label=\xff",  # not ASCII
    b"admin.vm.Shutdown+now dom0 name sys-net\x00",         # unknown shutdown word
    b"admin.vm.volume.Resize+private dom0 name sys-net\x00007",  # leading zeros
    b"\xff\xfe garbage \x00\x01",
])
def test_bad_requests_get_an_empty_reply_and_service_goes_on(dom0, data):
    assert dom0.raw(data) == b""
    assert dom0.raw(LIST).startswith(b"0\x00dom0 class=AdminVM")
    assert dom0.alive


def test_oversized_request_is_aborted_early(dom0):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(dom0.socket)
    sock.sendall(b"admin.vm.firewall.Set+ dom0 name sys-net\x00")
    received, sent = b"", 0
    try:
        chunk = b"action=accept\n" * 1000
        while sent < 4 * wire.MAX_REQUEST_SIZE:
            sock.sendall(chunk)
            sent += len(chunk)
        sock.shutdown(socket.SHUT_WR)
        received = sock.recv(100)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert received == b""
    assert dom0.raw(b"admin.vm.firewall.Get+ dom0 name sys-net\x00") == b"0\x00action=accept\n"


def test_exactly_65536_bytes_is_accepted(dom0):
    header = b"admin.vm.notes.Set+ dom0 name sys-net\x00"
    request = header + b"n" * (wire.MAX_REQUEST_SIZE - len(header))
    assert len(request) == wire.MAX_REQUEST_SIZE
    assert dom0.raw(request) == b"0\x00"
    assert dom0.raw(request + b"n") == b""


def test_client_that_never_half_closes_does_not_block_others(dom0):
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(dom0.socket)
    idle.sendall(b"admin.vm.List+ dom0 na")
    try:
        started = time.monotonic()
        assert dom0.raw(LIST).startswith(b"0\x00")
        assert time.monotonic() - started < 2
    finally:
        idle.close()


def test_client_disconnecting_early(dom0):
    for _i in range(20):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(dom0.socket)
        sock.sendall(LIST)
        sock.shutdown(socket.SHUT_WR)
        sock.close()
    assert dom0.raw(LIST).startswith(b"0\x00")


def test_many_concurrent_clients(dom0):
    def work(i):
        client = dom0.client()
        client.create("AppVM", f"q{i}", "red")
        client.property_set(f"q{i}", "memory", 500 + i)
        return client.property_get(f"q{i}", "memory").native

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(40)))
    assert results == [500 + i for i in range(40)]
    assert len(dom0.client().list_vms()) == 6 + 40


def test_hostile_payloads_do_not_crash(dom0):
    for method, arg, dest, payload in [
        (b"admin.vm.property.Set", b"memory", b"sys-net", b"9" * 5000),
        (b"admin.vm.property.Set", b"kernelopts", b"sys-net", b"\x00\x01\x02"),
        (b"admin.vm.feature.Set", b"x", b"sys-net", "é".encode()),
        (b"admin.vm.firewall.Set", b"", b"sys-net", b"\n\n\n"),
        (b"admin.vm.notes.Set", b"", b"sys-net", b"\xff\xfe"),
        (b"admin.label.Create", b"new", b"dom0", b"0xZZZZZZ"),
        (b"admin.vm.volume.CloneTo", b"private", b"sys-net", b"not-a-token"),
        (b"admin.vm.tag.Set", b"created-by-nobody", b"sys-net", b""),
    ]:
        reply = dom0.raw(method + b"+" + arg + b" dom0 name " + dest + b"\x00" + payload)
        assert reply == b"" or reply.startswith((b"0\x00", b"2\x00"))
    assert dom0.alive
    assert dom0.raw(LIST).startswith(b"0\x00")
