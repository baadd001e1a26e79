# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal's qrexec socket: framing and the two client programs.

Standard library only: the stand-ins in ``rehearsal/bin`` run it as a
script with ``python3`` (``$REHEARSAL_PYTHON`` to choose another).  One call per connection::

    request:  <source> SP <target> SP <service>[+<arg>] NUL <payload> EOF (client half-closes)
    reply:    <exit status> SP <stderr length> LF <stderr bytes> <stdout bytes> EOF

The stdout part streams (``admin.Events`` through qrexec keeps it open).

* ``qrexec-client-vm TARGET SERVICE[+ARG]`` runs "inside" the qube named by
  ``$REHEARSAL_QUBE``: stdin is the payload, the service's stdout and stderr
  come back, and the exit status is the service's, or 126 with
  ``Request refused`` on stderr when the policy refuses the call.
* ``qrexec-client -d TARGET "DEFAULT:QUBESRPC SERVICE[+ARG] SOURCE"`` is the
  dom0 side (SOURCE ``dom0``: no policy applies).

Both find the socket in ``$REHEARSAL_QREXEC_SOCKET``.
"""

from __future__ import annotations

import os
import socket
import sys

ENV_SOCKET = "REHEARSAL_QREXEC_SOCKET"
ENV_QUBE = "REHEARSAL_QUBE"
REFUSED = 126
"""qrexec's exit status for a call the policy refuses."""
NOT_FOUND = 127
"""The exit status for a service the target does not offer."""
MAX_REQUEST = 65536 + 4096


def encode_request(source: str, target: str, service: str, payload: bytes = b"") -> bytes:
    """The bytes a client sends before half-closing."""
    return f"{source} {target} {service}".encode("ascii") + b"\0" + payload


def parse_request(data: bytes) -> tuple[str, str, str, bytes]:
    """(source, target, service+arg, payload); ValueError for a malformed request."""
    header, sep, payload = data.partition(b"\0")
    if not sep:
        raise ValueError("no NUL after the header")
    fields = header.decode("ascii").split(" ")
    if len(fields) != 3 or not all(fields):
        raise ValueError("expected SOURCE TARGET SERVICE[+ARG]")
    return fields[0], fields[1], fields[2], payload


def reply_header(status: int, stderr: bytes = b"") -> bytes:
    """The start of a reply: status, stderr length, newline, stderr."""
    return f"{status} {len(stderr)}\n".encode("ascii") + stderr


def call(path: str, source: str, target: str, service: str, payload: bytes, out) -> tuple[int, bytes]:
    """Make one call; copy its stdout to the binary stream ``out`` as it arrives; (status, stderr)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(encode_request(source, target, service, payload))
        sock.shutdown(socket.SHUT_WR)
        reader = sock.makefile("rb")
        header = reader.readline()
        try:
            status, length = (int(word) for word in header.split())
        except ValueError:
            return REFUSED, b"qrexec: connection closed without a reply\n"
        stderr = reader.read(length)
        while True:
            chunk = reader.read1(65536)
            if not chunk:
                break
            out.write(chunk)
            out.flush()
        return status, stderr
    finally:
        sock.close()


def _socket_path() -> str:
    path = os.environ.get(ENV_SOCKET)
    if not path:
        raise SystemExit(f"qrexec stand-in: set ${ENV_SOCKET} to the rehearsal's qrexec socket")
    return path


def _run(source: str, target: str, service: str) -> int:
    payload = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    try:
        status, stderr = call(_socket_path(), source, target, service, payload, sys.stdout.buffer)
    except OSError as exc:
        sys.stderr.write(f"qrexec stand-in: cannot reach {_socket_path()}: {exc}\n")
        return REFUSED
    sys.stderr.buffer.write(stderr)
    if status == REFUSED and not stderr:
        sys.stderr.write("Request refused\n")
    return status


def main_vm(argv: list[str]) -> int:
    """``qrexec-client-vm TARGET SERVICE[+ARG]`` from the qube ``$REHEARSAL_QUBE``."""
    if len(argv) != 2:
        sys.stderr.write("usage: qrexec-client-vm TARGET SERVICE[+ARG]\n")
        return 2
    qube = os.environ.get(ENV_QUBE)
    if not qube:
        sys.stderr.write(f"qrexec-client-vm: set ${ENV_QUBE} to the name of the calling qube\n")
        return 2
    return _run(qube, argv[0], argv[1])


def main_dom0(argv: list[str]) -> int:
    """``qrexec-client -d TARGET "DEFAULT:QUBESRPC SERVICE[+ARG] SOURCE"``."""
    usage = 'usage: qrexec-client -d TARGET "DEFAULT:QUBESRPC SERVICE[+ARG] SOURCE"\n'
    if len(argv) != 3 or argv[0] != "-d":
        sys.stderr.write(usage)
        return 2
    user, sep, command = argv[2].partition(":")
    words = command.split()
    if not sep or not user or len(words) != 3 or words[0] != "QUBESRPC":
        sys.stderr.write(usage)
        return 2
    return _run(words[2], argv[1], words[1])


def main(argv: list[str]) -> int:
    """``qrexec_proto.py vm|dom0 ARGS...``: what the executables in ``rehearsal/bin`` run."""
    programs = {"vm": main_vm, "dom0": main_dom0}
    if not argv or argv[0] not in programs:
        sys.stderr.write("usage: qrexec_proto.py vm|dom0 ARGS...\n")
        return 2
    return programs[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
