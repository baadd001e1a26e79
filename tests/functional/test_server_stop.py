# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal dom0 stops on SIGTERM with connections still open, on every Python the suite runs on.

A test of the rehearsal itself, kept out of the rehearsal-only list (tests/conftest.py) on purpose: since Python
3.12 asyncio's ``wait_closed`` waits for every connection, so it is the R4.3 leg (Python 3.13) that would hang on an
event stream whose subscriber has gone, and every test that follows admin.Events would wait for the harness to kill
its dom0."""

from __future__ import annotations

import os
import socket
import subprocess

from harness import RehearsalDom0, events_until, subscribe


def test_sigterm_ends_event_streams_gone_or_open_and_unfinished_requests(tmp_path):
    dom0 = RehearsalDom0(tmp_path).start()
    gone, kept = subscribe(dom0.socket), subscribe(dom0.socket)
    unfinished = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        for sock in (gone, kept):
            assert events_until(sock, "connection-established")[-1][1] == "connection-established"
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
        # a stop that ran to its end (not a process killed with its sockets): its socket file is removed once every connection has closed
        assert not os.path.exists(dom0.socket)
    finally:
        kept.close()
        unfinished.close()
        dom0.stop()
