# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal dom0 stops on SIGTERM with connections still open, on every Python the suite runs on.

A test of the rehearsal itself, kept out of the rehearsal-only list (tests/conftest.py) on purpose: since Python
3.12 asyncio's ``wait_closed`` waits for every connection, so it is the R4.3 leg (Python 3.13) that would hang on an
event stream whose subscriber has gone, and every test that follows admin.Events would wait for the harness to kill
its dom0."""

from __future__ import annotations

import socket
import subprocess
import time

from harness import RehearsalDom0, subscribe

from ansible_collections.corral.qubes.plugins.module_utils import wire


def _established(sock: socket.socket) -> None:
    buffer, deadline = b"", time.monotonic() + 5
    while time.monotonic() < deadline:
        buffer += sock.recv(65536)
        events, buffer = wire.parse_events(buffer)
        if any(event == "connection-established" for _subject, event, _kwargs in events):
            return
    raise AssertionError("admin.Events did not start")


def test_sigterm_ends_event_streams_gone_or_open_and_unfinished_requests(tmp_path):
    dom0 = RehearsalDom0(tmp_path).start()
    gone, kept = subscribe(dom0.socket), subscribe(dom0.socket)
    unfinished = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        for sock in (gone, kept):
            _established(sock)
        gone.shutdown(socket.SHUT_RDWR)
        gone.close()  # after its request's EOF the server reads nothing more from it, so it does not see this
        unfinished.connect(dom0.socket)
        unfinished.sendall(b"admin.vm.List+ dom0 name dom0\x00")  # and no EOF: the request never ends
        proc = dom0.proc
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("the rehearsal dom0 did not stop on SIGTERM (the harness would kill it)") from exc
        assert proc.returncode == 0, dom0.stop()
        # the open subscriber's stream and the unfinished request end with the server
        for sock in (kept, unfinished):
            sock.settimeout(5)
            try:
                assert sock.recv(65536) == b""
            except ConnectionResetError:
                pass
    finally:
        kept.close()
        unfinished.close()
        dom0.stop()
