# SPDX-License-Identifier: GPL-3.0-or-later
"""The fake qrexec programs (fake_qrexec.py) set up for a test, and the qrexec connection made in-process."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading

from ansible import errors

SOURCE = pathlib.Path(__file__).parent / "fake_qrexec.py"
ROOT = pathlib.Path(__file__).resolve().parents[2]


class FakeQrexec:
    """Executables ``qrexec-client`` and ``qrexec-client-vm`` in ``bin``, a daemon directory, a call log."""

    def __init__(self, directory: pathlib.Path, qubes=("work",), running=("work",), allow=(), caller="mgmt"):
        self.directory = directory
        self.bin = directory / "bin"
        self.daemon_dir = directory / "daemon"
        self.log = directory / "qrexec-calls.jsonl"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.daemon_dir.mkdir(exist_ok=True)
        for name, side in (("qrexec-client", "dom0"), ("qrexec-client-vm", "vm")):
            path = self.bin / name
            path.write_text(f'#!/bin/sh\nexec {sys.executable} {SOURCE} {side} "$@"\n')
            path.chmod(0o755)
        self.qubes = list(qubes)
        self.allow = list(allow)
        self.caller = caller
        for qube in running:
            self.start(qube)

    @property
    def qrexec_client(self) -> str:
        return str(self.bin / "qrexec-client")

    @property
    def qrexec_client_vm(self) -> str:
        return str(self.bin / "qrexec-client-vm")

    def start(self, qube: str) -> None:
        """The qube runs: its qrexec daemon socket is there."""
        (self.daemon_dir / f"qrexec.{qube}").touch()

    def env(self) -> dict:
        """What the fake programs read."""
        return {"REHEARSAL_QREXEC_DAEMON_DIR": str(self.daemon_dir), "FAKE_QREXEC_QUBES": ",".join(self.qubes),
                "FAKE_QREXEC_ALLOW": ",".join(self.allow), "REHEARSAL_QUBE": self.caller,
                "FAKE_QREXEC_LOG": str(self.log)}

    def calls(self) -> list[dict]:
        """Every call so far."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


class DaemonWatcher:
    """Keeps a fake's daemon directory in step with a rehearsal dom0, as qubesd starts and stops qrexec daemons.

    It follows ``admin.Events`` (one Admin API call, logged once): ``domain-start`` makes ``qrexec.QUBE``,
    ``domain-shutdown`` removes it. Qubes in ``ignore`` never get one (a qrexec agent that never answers).
    """

    def __init__(self, dom0, fake: FakeQrexec, ignore=()):
        from harness import subscribe  # pylint: disable=import-outside-toplevel

        self.fake = fake
        self.ignore = set(ignore)
        self.sock = subscribe(dom0.socket)
        self.sock.settimeout(None)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "admin.Events did not start"
        for name, entry in dom0.client().list_vms().items():
            if entry.state == "Running" and entry.klass != "AdminVM":
                self._started(name)

    def _started(self, qube: str) -> None:
        if qube not in self.ignore:
            self.fake.start(qube)

    def _follow(self) -> None:
        # imported here: the driver process (below) must let Ansible's loader import the collection first
        from ansible_collections.corral.qubes.plugins.module_utils import wire  # pylint: disable=import-outside-toplevel

        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            events, buffer = wire.parse_events(buffer + chunk)
            for subject, event, _kwargs in events:
                if event == "connection-established":
                    self.ready.set()
                elif event == "domain-start":
                    self._started(subject)
                elif event == "domain-shutdown":
                    (self.fake.daemon_dir / f"qrexec.{subject}").unlink(missing_ok=True)

    def close(self) -> None:
        """Stop following."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


class Connections:
    """Connection objects made as Ansible makes one for a task, in a process of their own.

    Ansible's plugin loader must import the collection itself, which the test process (that imported it
    as a plain package) cannot do; so a driver process (``python qrexec_fake.py``) holds the connections,
    and :meth:`connection` gives a proxy whose calls travel to it as JSON lines.
    """

    def __init__(self, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=dict(os.environ, **(env or {})), cwd=ROOT, text=True)

    def request(self, options: dict, op: str, *args):
        """One operation of the connection with ``options``; its result, or the exception it raised."""
        self.proc.stdin.write(json.dumps({"options": options, "op": op, "args": [_encode(arg) for arg in args]}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise getattr(errors, reply["error"], AssertionError)(reply["message"])
        return _decode(reply["result"])

    def connection(self, **options) -> _Proxy:
        """A connection with these options."""
        return _Proxy(self, options)

    def close(self) -> None:
        """End the driver."""
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class _Proxy:
    def __init__(self, driver: Connections, options: dict):
        self.driver = driver
        self.options = options

    def exec_command(self, cmd: str, in_data: bytes | None = None):
        return tuple(self.driver.request(self.options, "exec_command", cmd, in_data))

    def put_file(self, in_path: str, out_path: str):
        return self.driver.request(self.options, "put_file", in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str):
        return self.driver.request(self.options, "fetch_file", in_path, out_path)

    def peak_memory_kib(self) -> int:
        """The driver process's peak resident memory so far."""
        return self.driver.request(self.options, "peak_memory_kib")


def _encode(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    return value


def _decode(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _serve() -> None:
    """The driver: one request per line, one reply per line."""
    # pylint: disable=import-outside-toplevel
    import resource

    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader, init_plugin_loader

    os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".collections"))
    init_plugin_loader()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "peak_memory_kib":
                result = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            else:
                conn = connection_loader.get("corral.qubes.qrexec", PlayContext(), None)
                conn.set_options(direct=request["options"])
                result = getattr(conn, request["op"])(*[_decode(arg) for arg in request["args"]])
            reply = {"result": _encode(result)}
        except Exception as exc:  # pylint: disable=broad-exception-caught
            reply = {"error": type(exc).__name__, "message": str(exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
