# SPDX-License-Identifier: GPL-3.0-or-later
"""qubes.UpdatesProxy in the rehearsal's qubes: an HTTP proxy for the one connection on stdin/stdout.

A template's package manager reaches it through the forwarder on its
127.0.0.1:8082 and a qrexec call; it runs in the update qube, so the
destination is reached through the update qube's own network.  Requests
with an absolute URI (GET, HEAD, POST, ...) are sent on to their origin
with ``Connection: close``, one after the other; CONNECT opens a tunnel.
"""

import os
import socket
import sys
import threading

BUFFER = 65536
stdin = sys.stdin.buffer
stdout = sys.stdout.buffer


def reply(status: str, text: str) -> None:
    body = (text + "\n").encode()
    stdout.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                 "Connection: close\r\n\r\n".encode() + body)
    stdout.flush()


def read_head():
    lines = []
    while True:
        line = stdin.readline(BUFFER)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if lines:
                return lines
            continue
        lines.append(line.rstrip(b"\r\n").decode("latin-1"))


def split_host(authority: str, default_port: int):
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit():
        return authority, default_port
    return host, int(port)


def connect(host: str, port: int):
    return socket.create_connection((host, port), timeout=30)


def pump(source, sink) -> None:
    try:
        while True:
            data = source.recv(BUFFER) if hasattr(source, "recv") else source.read1(BUFFER)
            if not data:
                break
            if hasattr(sink, "sendall"):
                sink.sendall(data)
            else:
                sink.write(data)
                sink.flush()
    except OSError:
        pass
    finally:
        if hasattr(sink, "shutdown"):
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def tunnel(authority: str) -> None:
    host, port = split_host(authority, 443)
    try:
        upstream = connect(host, port)
    except OSError as exc:
        reply("502 Bad Gateway", f"qubes.UpdatesProxy in {os.uname().nodename}: {host}:{port}: {exc}")
        return
    stdout.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    stdout.flush()
    upstream.settimeout(None)
    feeder = threading.Thread(target=pump, args=(stdin, upstream), daemon=True)
    feeder.start()
    pump(upstream, stdout)


def forward(method: str, target: str, version: str, headers: list) -> bool:
    """One request to its origin; False when the connection must end."""
    if not target.startswith("http://"):
        reply("400 Bad Request", "qubes.UpdatesProxy: expected an absolute http:// URI")
        return False
    authority, _sep, path = target[len("http://"):].partition("/")
    host, port = split_host(authority, 80)
    length = 0
    kept = []
    for header in headers:
        name, _sep, value = header.partition(":")
        lname = name.strip().lower()
        if lname in ("proxy-connection", "connection", "keep-alive", "proxy-authorization"):
            continue
        if lname == "content-length":
            length = int(value.strip() or 0)
        kept.append(header)
    try:
        upstream = connect(host, port)
    except OSError as exc:
        reply("502 Bad Gateway", f"qubes.UpdatesProxy in {os.uname().nodename}: {host}:{port}: {exc}")
        return False
    with upstream:
        head = f"{method} /{path} {version}\r\n" + "".join(f"{h}\r\n" for h in kept) + "Connection: close\r\n\r\n"
        upstream.sendall(head.encode("latin-1"))
        while length > 0:
            data = stdin.read(min(length, BUFFER))
            if not data:
                return False
            upstream.sendall(data)
            length -= len(data)
        upstream.settimeout(None)
        pump(upstream, stdout)
    # the origin closed after its response (Connection: close), and so does the client's view of it
    return False


def main() -> int:
    while True:
        head = read_head()
        if head is None:
            return 0
        try:
            method, target, version = head[0].split(" ", 2)
        except ValueError:
            reply("400 Bad Request", "qubes.UpdatesProxy: malformed request line")
            return 0
        if method == "CONNECT":
            tunnel(target)
            return 0
        if not forward(method, target, version, head[1:]):
            return 0


if __name__ == "__main__":
    sys.exit(main())
