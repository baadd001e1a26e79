# SPDX-License-Identifier: GPL-3.0-or-later
"""Test harness: a real rehearsal dom0 process on a real Unix socket."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import wire
from rehearsal import netns, network, observe

ROOT = pathlib.Path(__file__).resolve().parents[2]
QREXEC_CLIENT = ROOT / "rehearsal" / "bin" / "qrexec-client"
XL = ROOT / "rehearsal" / "bin" / "xl"
QREXEC_CLIENT_VM = ROOT / "rehearsal" / "bin" / "qrexec-client-vm"


def raw_exchange(path: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes, half-close, read until EOF (or a reset): exactly what a client sees."""
    return client_mod.SocketTransport(path, timeout).exchange_bytes(data)


def events_until(sock: socket.socket, until: str, seconds: float = 5.0) -> list:
    """The events read from an admin.Events stream up to and including the first ``until`` (or ``seconds``)."""
    buffer, events, deadline = b"", [], time.monotonic() + seconds
    while time.monotonic() < deadline and not any(e[1] == until for e in events):
        buffer += sock.recv(65536)
        parsed, buffer = wire.parse_events(buffer)
        events += parsed
    return events


def subscribe(path: str, dest: str = "dom0") -> socket.socket:
    """An admin.Events stream (left open; the caller closes it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    sock.sendall(f"admin.Events+ dom0 name {dest}\x00".encode())
    sock.shutdown(socket.SHUT_WR)
    return sock


class RehearsalDom0:
    """A ``python -m rehearsal serve`` process with its own state, socket and call log."""

    def __init__(self, directory: pathlib.Path, release: str = "4.3", extra_args=()):
        self.directory = directory
        self.state_dir = str(directory / "state")
        self.socket = str(directory / "qubesd.sock")
        self.qrexec_socket = str(directory / "qubesd.qrexec.sock")  # named after the qubesd socket
        self.policy_dir = directory / "state" / "policy.d"
        self.runtime_policy_dir = directory / "state" / "runtime-policy.d"  # R4.3's /run/qubes/policy.d
        self.call_log = str(directory / "calls.jsonl")
        self.qrexec_log = str(directory / "qrexec.jsonl")
        self.daemon_dir = str(directory / "qubes")
        self.release = release
        self.extra_args = list(extra_args)
        self.proc = None

    @staticmethod
    def _with_roots(args) -> list:
        """Qube roots only where a test asks for them (``--roots``): a qube start without one costs a tenth."""
        args = list(args)
        return args if "--roots" in args else [*args, "--roots", "off"]

    def start(self, extra_args=None) -> RehearsalDom0:
        """Start the server and wait until it answers."""
        args = [sys.executable, "-m", "rehearsal", "serve", "--state", self.state_dir, "--socket", self.socket,
                "--call-log", self.call_log, "--release", self.release, "--debug",
                *self._with_roots(self.extra_args if extra_args is None else extra_args)]
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rehearsal dom0 exited: {self.proc.stdout.read().decode()}")
            if os.path.exists(self.socket) and os.path.exists(self.qrexec_socket):
                try:
                    raw_exchange(self.socket, b"admin.vmclass.List+ dom0 name dom0\x00", timeout=2)
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                        probe.connect(self.qrexec_socket)  # a killed server's stale socket refuses
                    return self
                except (OSError, wire.QubesDaemonCommunicationError):
                    pass  # not listening yet (or a stale socket of a killed server)
            time.sleep(0.02)
        raise RuntimeError("rehearsal dom0 did not come up")

    def stop(self) -> str:
        """Stop with SIGTERM (as a service manager would); return its output."""
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            out, _err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _err = self.proc.communicate()
        self.proc = None
        # what a killed (or failed) stop left: this dom0's network namespaces (its state directory is not reused,
        # so its next start, which would remove them, never comes)
        for name in network.Layout(self.state_dir).owned():
            netns.delete(name)
        return out.decode(errors="replace")

    def restart(self) -> RehearsalDom0:
        """Stop and start again on the same state."""
        self.stop()
        return self.start()

    @property
    def alive(self) -> bool:
        """The process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> client_mod.AdminClient:
        """A fresh client on this dom0's socket."""
        return client_mod.AdminClient(client_mod.SocketTransport(self.socket, timeout=30))

    def qube_env(self, qube: str = "dom0") -> dict:
        """Environment for the qrexec stand-ins: calls made from ``qube`` (dom0: the dom0 side)."""
        env = dict(os.environ, REHEARSAL_QREXEC_SOCKET=self.qrexec_socket, QREXEC_CLIENT=str(QREXEC_CLIENT),
                   QREXEC_CLIENT_VM=str(QREXEC_CLIENT_VM), REHEARSAL_QREXEC_DAEMON_DIR=self.daemon_dir)
        env["REHEARSAL_QUBE"] = qube
        return env

    def raw(self, data: bytes) -> bytes:
        """One raw exchange."""
        return raw_exchange(self.socket, data)

    def calls(self) -> list[dict]:
        """The call log so far."""
        return observe.read_call_log(self.call_log)

    def qrexec_calls(self) -> list[dict]:
        """The qrexec call log so far."""
        return observe.read_call_log(self.qrexec_log)

    def mark(self) -> int:
        """A position in the call log, for :meth:`calls_since`."""
        return len(self.calls())

    def calls_since(self, mark: int) -> list[dict]:
        """Calls logged after ``mark``."""
        return self.calls()[mark:]

    def writes_since(self, mark: int) -> list[dict]:
        """Successful state-changing calls after ``mark``."""
        return [c for c in self.calls_since(mark) if c.get("mutating") and c.get("result") == "ok"]
