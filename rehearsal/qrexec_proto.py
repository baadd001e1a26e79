# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal's qrexec socket: framing and the two client programs.

Standard library only: the stand-ins in ``rehearsal/bin`` run it as a
script with ``python3`` (``$REHEARSAL_PYTHON`` to choose another).  One call per connection::

    request:  <source> SP <target> SP <service>[+<arg>] *(SP <key>=<value>) NUL
              <stdin bytes, streamed, any length> EOF (the client half-closes)
    reply:    frames, each <kind: 1 byte> <length: 4 bytes, big-endian> <data>:
              "O" stdout bytes, "E" stderr bytes (in the order the service wrote them),
              and last "X" with the exit status in ASCII decimal; then EOF.

Request options (from dom0 only): ``user=NAME`` (``DEFAULT``: the qube's
``default_user``; the default), ``command=HEX`` (with service ``@command``:
run the hex-encoded command with ``sh -c`` instead of a service),
``remote=NAME`` (the SOURCE a dom0 call names, as the service's
``$QREXEC_REMOTE_DOMAIN``; the policy does not apply to it).

* ``qrexec-client-vm TARGET SERVICE[+ARG]`` runs "inside" the qube named by
  ``$REHEARSAL_QUBE``: stdin is streamed to the service, its stdout and
  stderr come back, and the exit status is the service's, or 126 with
  ``Request refused`` on stderr when the policy refuses the call.
* ``qrexec-client -d TARGET [-T] [-w SECONDS] "USER:QUBESRPC SERVICE[+ARG] SOURCE"``
  (or ``"USER:COMMAND"``) is the dom0 side: no policy applies, a halted
  target is not started (exit status 1).

Both find the socket in ``$REHEARSAL_QREXEC_SOCKET``.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading

ENV_SOCKET = "REHEARSAL_QREXEC_SOCKET"
ENV_QUBE = "REHEARSAL_QUBE"
ENV_DAEMON_DIR = "REHEARSAL_QREXEC_DAEMON_DIR"
"""The directory of ``qrexec.<qube>`` files, one per qube whose root runs."""
REFUSED = 126
"""qrexec's exit status for a call the policy refuses."""
NOT_FOUND = 127
"""The exit status for a service the target does not offer."""
CLIENT_ERROR = 1
"""qrexec-client's exit status when the target does not exist or does not run."""
MAX_HEADER = 4096
MAX_REQUEST = 65536 + 4096
"""What the services the rehearsal answers itself (admin.*, policy.*, clipboard) take as stdin."""
STDOUT, STDERR, EXIT = b"O", b"E", b"X"
FRAME = struct.Struct(">cI")
CHUNK = 65536
COMMAND_SERVICE = "@command"


def encode_request(source: str, target: str, service: str, options: dict | None = None) -> bytes:
    """The header a client sends; stdin follows."""
    words = [source, target, service] + [f"{key}={value}" for key, value in (options or {}).items()]
    return " ".join(words).encode("ascii") + b"\0"


def parse_header(header: bytes) -> tuple[str, str, str, dict]:
    """(source, target, service+arg, options) of a request header (without its NUL)."""
    fields = header.decode("ascii").split(" ")
    if len(fields) < 3 or not all(fields):
        raise ValueError("expected SOURCE TARGET SERVICE[+ARG] [KEY=VALUE...]")
    options = {}
    for word in fields[3:]:
        key, sep, value = word.partition("=")
        if not sep or key not in ("user", "command", "remote"):
            raise ValueError(f"unknown request option {word!r}")
        options[key] = value
    return fields[0], fields[1], fields[2], options


def frame(kind: bytes, data: bytes) -> bytes:
    """One reply frame."""
    return FRAME.pack(kind, len(data)) + data


def exit_frame(status: int) -> bytes:
    """The last frame: the exit status."""
    return frame(EXIT, str(status).encode("ascii"))


def _read_exact(reader, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = reader.read(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _feed(sock: socket.socket, stdin) -> None:
    try:
        if stdin is not None:
            while True:
                chunk = stdin.read1(CHUNK) if hasattr(stdin, "read1") else stdin.read(CHUNK)
                if not chunk:
                    break
                sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the service ended without reading all of it, as with a pipe


def run_call(path: str, source: str, target: str, service: str, stdin, out, err,
             options: dict | None = None, timeout: float | None = None) -> int:
    """Make one call, streaming ``stdin`` (a binary file or None) to it and its output to ``out``/``err``.

    The exit status; REFUSED when the connection closes without one.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.settimeout(None)
        sock.sendall(encode_request(source, target, service, options))
        feeder = threading.Thread(target=_feed, args=(sock, stdin), daemon=True)
        feeder.start()
        reader = sock.makefile("rb")
        while True:
            try:
                kind, length = FRAME.unpack(_read_exact(reader, FRAME.size))
                data = _read_exact(reader, length)
            except EOFError:
                err.write(b"qrexec: connection closed without an exit status\n")
                err.flush()
                return REFUSED
            if kind == EXIT:
                return int(data)
            stream = out if kind == STDOUT else err
            stream.write(data)
            stream.flush()
    finally:
        sock.close()


class _Collect:
    def __init__(self):
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        """Keep it."""
        self.data += data

    def flush(self) -> None:
        """Nothing to flush."""


class _Bytes:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, size: int) -> bytes:
        """The next piece."""
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk


def call(path: str, source: str, target: str, service: str, payload: bytes, out,
         options: dict | None = None) -> tuple[int, bytes]:
    """One call with ``payload`` as stdin; stdout copied to ``out`` as it arrives; (status, stderr)."""
    err = _Collect()
    status = run_call(path, source, target, service, _Bytes(payload), out, err, options)
    return status, bytes(err.data)


def _socket_path() -> str:
    path = os.environ.get(ENV_SOCKET)
    if not path:
        raise SystemExit(f"qrexec stand-in: set ${ENV_SOCKET} to the rehearsal's qrexec socket")
    return path


def _run(source: str, target: str, service: str, options: dict | None = None, timeout: float | None = None) -> int:
    stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer
    try:
        status = run_call(_socket_path(), source, target, service, stdin, sys.stdout.buffer, sys.stderr.buffer,
                          options, timeout)
    except OSError as exc:
        sys.stderr.write(f"qrexec stand-in: cannot reach {_socket_path()}: {exc}\n")
        return REFUSED
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
    """``qrexec-client -d TARGET [-T] [-w SECONDS] "USER:QUBESRPC SERVICE[+ARG] SOURCE"`` or ``"USER:COMMAND"``."""
    usage = ('usage: qrexec-client -d TARGET [-T] [-w SECONDS] "USER:QUBESRPC SERVICE[+ARG] SOURCE"\n'
             '       qrexec-client -d TARGET [-T] [-w SECONDS] "USER:COMMAND"\n')
    target, timeout, rest = None, None, []
    words = list(argv)
    while words:
        word = words.pop(0)
        if word == "-d" and words:
            target = words.pop(0)
        elif word == "-w" and words:
            try:
                timeout = float(words.pop(0))
            except ValueError:
                sys.stderr.write(usage)
                return 2
        elif word == "-T":
            continue  # stderr's control characters: the stand-in passes bytes through unchanged
        else:
            rest.append(word)
    if target is None or len(rest) != 1:
        sys.stderr.write(usage)
        return 2
    user, sep, command = rest[0].partition(":")
    if not sep or not user or not command:
        sys.stderr.write(usage)
        return 2
    options = {} if user == "DEFAULT" else {"user": user}
    words = command.split()
    if words and words[0] == "QUBESRPC":
        if len(words) != 3:
            sys.stderr.write(usage)
            return 2
        if words[2] != "dom0":
            options["remote"] = words[2]
        return _run("dom0", target, words[1], options, timeout)
    options["command"] = command.encode("utf-8").hex()
    return _run("dom0", target, COMMAND_SERVICE, options, timeout)


def main(argv: list[str]) -> int:
    """``qrexec_proto.py vm|dom0 ARGS...``: what the executables in ``rehearsal/bin`` run."""
    programs = {"vm": main_vm, "dom0": main_dom0}
    if not argv or argv[0] not in programs:
        sys.stderr.write("usage: qrexec_proto.py vm|dom0 ARGS...\n")
        return 2
    return programs[argv[0]](argv[1:])


if __name__ == "__main__":
    _status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # the thread that feeds stdin may still wait for input the service never read
    os._exit(_status)
