# SPDX-License-Identifier: GPL-3.0-or-later
"""Replay the recorded R4.3 exchanges against the rehearsal dom0, byte for byte.

The recording was made against a real qubesd (offline mode, no Xen) starting
from dom0, fedora-41-xfce, debian-12-xfce, sys-net, sys-firewall, default-dvm
and work; the fixture builds that state with the recorded UUIDs.  Qubes the
recording creates get fresh UUIDs here, so their recorded UUIDs are mapped to
ours before comparing.  Two exchanges differ on purpose: without Xen the
recording's qubesd could not report dom0's CurrentState (62) nor start a qube
(99); a real dom0 answers both with OK, and so does the rehearsal.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

import pytest

from rehearsal import seed

from harness import RehearsalDom0, raw_exchange, subscribe

DATA = json.loads((pathlib.Path(__file__).parents[1] / "data" / "admin-api-transcript.json").read_text())
EXCHANGES = [(e["n"], e["title"], ast.literal_eval(e["send"]), ast.literal_eval(e["recv"])) for e in DATA["exchanges"]]
OFFLINE_ONLY = {62, 99}
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def recorded_uuids() -> dict[bytes, bytes]:
    """name -> uuid from the recorded admin.vm.List replies."""
    found = {}
    for _n, _title, send, recv in EXCHANGES:
        if send.startswith(b"admin.vm.List+ dom0 name dom0"):
            for line in recv[2:].splitlines():
                name, _sep, rest = line.partition(b" ")
                found[name] = rest.rsplit(b"uuid=", 1)[1]
    return found


def initial_state():
    uuids = {name.decode(): uuid.decode() for name, uuid in recorded_uuids().items()}
    return seed.fresh_state("4.3", ("fedora-41-xfce", "debian-12-xfce"), ("work",), uuids=uuids)


def _first_bytes(sock, size: int) -> bytes:
    """The first ``size`` bytes of a stream (admin.Events never ends by itself)."""
    data = b""
    with sock:
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    return data


def our_uuids(socket_path: str) -> dict[bytes, bytes]:
    reply = raw_exchange(socket_path, b"admin.vm.List+ dom0 name dom0\x00")
    return {line.split(b" ")[0]: line.rsplit(b"uuid=", 1)[1] for line in reply[2:].splitlines()}


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """Run all exchanges once, in order; return {n: (expected, got)}."""
    server = RehearsalDom0(tmp_path_factory.mktemp("transcript"), "4.3", ["--shutdown-delay", "0"])
    initial_state().save(server.state_dir)
    server.start()
    recorded = recorded_uuids()
    results = {}
    try:
        for n, _title, send, recv in EXCHANGES:
            if send.startswith(b"admin.Events"):
                results[n] = (recv, _first_bytes(subscribe(server.socket), len(recv)))
                continue
            got = server.raw(send)
            if n == 99:
                # t-red and its netvm chain really started: halt them, as they stayed in the recording
                for name in (b"t-red", b"sys-firewall", b"sys-net"):
                    assert server.raw(b"admin.vm.Kill+ dom0 name " + name + b"\x00") == b"0\x00"
            mapping = {recorded[name]: uuid for name, uuid in our_uuids(server.socket).items() if name in recorded}
            expected = UUID.sub(lambda m: mapping.get(m.group(0), m.group(0)), recv)
            results[n] = (expected, got)
    finally:
        server.stop()
    return results


@pytest.mark.parametrize("n,title", [(n, t) for n, t, _s, _r in EXCHANGES if n not in OFFLINE_ONLY])
def test_exchange_matches_recording(replay, n, title):
    expected, got = replay[n]
    assert got == expected, f"exchange {n} ({title})"


def test_dom0_current_state_is_reported_like_a_real_dom0(replay):
    _expected, got = replay[62]
    assert re.fullmatch(rb"0\x00mem=\d+ mem_static_max=\d+ cputime=\d+ power_state=Running", got)


def test_start_succeeds_like_a_real_dom0(replay):
    _expected, got = replay[99]
    assert got == b"0\x00"


def test_every_recorded_exchange_was_replayed(replay):
    assert sorted(replay) == [n for n, *_rest in EXCHANGES]
