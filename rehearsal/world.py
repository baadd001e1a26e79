# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal's world: the destinations qubes reach, in a namespace of their own.

A world description is a YAML list of destinations::

    - name: bank.example.com      # optional: a hosts-file name for the address
      address: 192.0.2.10         # IPv4, inside a documentation range
      ports: [443]                # TCP ports that accept connections
      http: repo                  # optional: serve this directory over HTTP on those ports
    - name: repo.example.org
      address: 192.0.2.80
      ports: [80]
      repository: [firefox]       # optional: the distribution repository, of stand-in packages

Addresses must lie in the documentation ranges (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24), which exist nowhere but here.  The world
also holds the Qubes virtual DNS addresses (10.139.1.1 and 10.139.1.2) with
a DNS server on UDP and TCP port 53 that answers A queries from the hosts
file.  Each TCP listener greets a client with the address it sees the
connection come from (one line), then echoes what it receives; a destination
with ``http`` serves the files of that directory (relative to the world
file) instead, to GET and HEAD, one request per connection, and logs each
request (client address, method, path, status) to ``http-access.log`` next to
the hosts file.  A destination with ``repository`` serves a flat Debian
repository of stand-in packages with those names (built once with dpkg-deb
into the cache, see :func:`rehearsal.debrepo.stand_in_repository`), and is
the distribution repository templates' apt is configured with.

The hosts file (``address name`` lines) is written from the description when
the world starts; rules and probes resolve names through it, and it may be
edited while the rehearsal runs (a firewall Reload re-resolves).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import functools
import re
import socket
import struct
import urllib.parse

import yaml

from ansible_collections.corral.qubes.plugins.module_utils import firewall

from rehearsal import debrepo, netns, rootfs
from rehearsal.properties import DNS_SERVERS

DEFAULT_WORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "world.yml")
DOCUMENTATION_NETS = tuple(ipaddress.ip_network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
DNS_ADDRESSES = tuple(DNS_SERVERS.split())
DNS_PORT = 53
HTTP_LOG = "http-access.log"
HTTP_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class WorldError(ValueError):
    """A world description that cannot be used."""


STAND_IN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
"""A Debian package name (policy 5.6.1)."""


@dataclasses.dataclass(frozen=True)
class Destination:
    """One address of the world, its optional name and its open TCP ports."""

    address: str
    ports: tuple[int, ...]
    name: str | None = None
    http: str | None = None
    """A directory served over HTTP on the ports (None: greet and echo)."""
    distribution: bool = False
    """The distribution repository: templates' package managers are configured with it (``repository:``)."""


def _destination(index: int, entry, base: str = ".") -> Destination:
    where = f"destination {index + 1}"
    if (not isinstance(entry, dict) or not set(entry) <= {"name", "address", "ports", "http", "repository"}
            or "address" not in entry):
        raise WorldError(f"{where}: expected a mapping with address, ports and an optional name, http or repository")
    try:
        address = ipaddress.IPv4Address(str(entry["address"]))
    except ValueError as exc:
        raise WorldError(f"{where}: {exc}") from None
    if not any(address in net for net in DOCUMENTATION_NETS):
        raise WorldError(f"{where}: {address} is outside the documentation ranges")
    ports = entry.get("ports", [])
    if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise WorldError(f"{where}: ports must be a list of TCP port numbers")
    name = entry.get("name")
    if name is not None:
        try:
            dst_type, name = firewall.parse_host(str(name))
        except firewall.RuleError as exc:
            raise WorldError(f"{where}: {exc}") from None
        if dst_type != "dsthost":
            raise WorldError(f"{where}: name {name!r} is an address, not a hostname")
    http = entry.get("http")
    if http is not None:
        http = os.path.join(base, str(http))
        if not os.path.isdir(http):
            raise WorldError(f"{where}: http: {http} is not a directory")
    packages = entry.get("repository")
    if packages is not None:
        if http is not None or name is None or not ports:
            raise WorldError(f"{where}: a repository needs a name and ports, and no http directory")
        if not isinstance(packages, list) or not all(isinstance(p, str) and STAND_IN_NAME.match(p) for p in packages):
            raise WorldError(f"{where}: repository: expected a list of Debian package names (lowercase)")
        http = debrepo.stand_in_repository(rootfs.cache_root(), packages)
    return Destination(str(address), tuple(ports), name, http, packages is not None)


def load(path: str) -> list[Destination]:
    """The destinations of a world file (WorldError if it is not one)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise WorldError(f"{path}: {exc}") from None
    if not isinstance(data, list):
        raise WorldError(f"{path}: expected a list of destinations")
    base = os.path.dirname(os.path.abspath(path))
    return [_destination(index, entry, base) for index, entry in enumerate(data)]


def write_hosts(path: str, destinations: list[Destination]) -> None:
    """The hosts file of the named destinations."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = [f"{d.address} {d.name}\n" for d in destinations if d.name]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# names of the rehearsal world (edit, then admin.vm.firewall.Reload)\n")
        fh.writelines(lines)


def read_hosts(path: str) -> dict[str, list[str]]:
    """``{name: [address, ...]}`` from a hosts file (IPv4 lines only; nothing if it is missing)."""
    table: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return table
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.IPv4Address(fields[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            table.setdefault(name.lower(), []).append(address)
    return table


# -- DNS ------------------------------------------------------------------------------------------

def dns_query(name: str, ident: int = 0x5151) -> bytes:
    """A DNS query for the A records of ``name``."""
    labels = b"".join(bytes([len(part)]) + part.encode("ascii") for part in name.split(".") if part)
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def _question(query: bytes) -> tuple[str, int, int]:
    """(name, end offset of the question, qtype) of a query; ValueError if malformed."""
    labels, offset = [], 12
    while True:
        length = query[offset]
        offset += 1
        if length == 0:
            break
        if length > 63:
            raise ValueError("compressed or invalid name in a question")
        labels.append(query[offset:offset + length].decode("ascii").lower())
        offset += length
    qtype = struct.unpack("!H", query[offset:offset + 2])[0]
    return ".".join(labels), offset + 4, qtype


def dns_answer(query: bytes, hosts: dict[str, list[str]]) -> bytes | None:
    """The reply to a query: A records from ``hosts``, NXDOMAIN for an unknown name; None if malformed."""
    try:
        ident = struct.unpack("!H", query[:2])[0]
        name, end, qtype = _question(query)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
        return None
    addresses = hosts.get(name)
    records = [a for a in addresses or [] if qtype == 1]
    flags = 0x8180 if addresses else 0x8183
    answer = struct.pack("!HHHHHH", ident, flags, 1, len(records), 0, 0) + query[12:end]
    for address in records:
        answer += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return answer


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, hosts_path: str):
        self.hosts_path = hosts_path
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        reply = dns_answer(data, read_hosts(self.hosts_path))
        if reply is not None:
            self.transport.sendto(reply, addr)


# -- the namespace ----------------------------------------------------------------------------------

class World:
    """The world namespace: destination and DNS addresses, their listeners, no way out."""

    def __init__(self, namespace: str, destinations: list[Destination], hosts_path: str):
        self.namespace = namespace
        self.destinations = destinations
        self.hosts_path = hosts_path
        self._servers: list = []
        self._transports: list = []
        self._writers: set = set()

    def addresses(self) -> list[str]:
        """Every address the world holds."""
        return sorted({d.address for d in self.destinations} | set(DNS_ADDRESSES), key=ipaddress.IPv4Address)

    def listeners(self) -> list[tuple[str, int]]:
        """Every (address, TCP port) that accepts connections."""
        pairs = {(d.address, port) for d in self.destinations for port in d.ports}
        pairs |= {(address, DNS_PORT) for address in DNS_ADDRESSES}
        return sorted(pairs, key=lambda pair: (ipaddress.IPv4Address(pair[0]), pair[1]))

    def create(self) -> None:
        """The namespace with its addresses on loopback and the hosts file (no uplink, no forwarding)."""
        write_hosts(self.hosts_path, self.destinations)
        netns.add(self.namespace, forwarding=False)
        netns.ip_batch(self.namespace, [f"addr add {address}/32 dev lo" for address in self.addresses()])

    def _bound(self, kind: int, address: str, port: int) -> socket.socket:
        sock = netns.socket_in(self.namespace, socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.setblocking(False)
        return sock

    async def _greet_and_echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(f"{writer.get_extra_info('peername')[0]}\n".encode("ascii"))
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _http(self, root: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP request for a file under ``root`` (GET or HEAD), answered and closed."""
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")[0]
        method, path, status = "-", "-", 400
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            words = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(words) == 3:
                method, path = words[0], words[1]
            status, name = self._resolve(root, method, path)
            if status != 200:
                body = f"{status}\n".encode()
                writer.write(f"HTTP/1.1 {status} {HTTP_REASONS[status]}\r\nContent-Length: {len(body)}\r\n"
                             "Connection: close\r\n\r\n".encode() + body)
            else:
                size = os.path.getsize(name)
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: application/octet-stream"
                             "\r\nConnection: close\r\n\r\n".encode())
                if method == "GET":
                    with open(name, "rb") as handle:
                        while chunk := handle.read(65536):
                            writer.write(chunk)
                            await writer.drain()
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._log_http(peer, method, path, status)
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    def _resolve(root: str, method: str, path: str) -> tuple[int, str]:
        if method not in ("GET", "HEAD"):
            return 405, ""
        relative = urllib.parse.unquote(urllib.parse.urlsplit(path).path).lstrip("/")
        name = os.path.realpath(os.path.join(root, relative))
        if not (name + os.sep).startswith(os.path.realpath(root) + os.sep) or not os.path.isfile(name):
            return 404, ""
        return 200, name

    def _log_http(self, peer: str, method: str, path: str, status: int) -> None:
        with open(os.path.join(os.path.dirname(self.hosts_path), HTTP_LOG), "a", encoding="utf-8") as handle:
            handle.write(f"{peer} {method} {path} {status}\n")

    async def serve(self) -> None:
        """Start the TCP listeners and the DNS servers."""
        loop = asyncio.get_running_loop()
        http = {(d.address, port): d.http for d in self.destinations if d.http for port in d.ports}
        for address, port in self.listeners():
            sock = self._bound(socket.SOCK_STREAM, address, port)
            sock.listen(128)
            root = http.get((address, port))
            handler = functools.partial(self._http, root) if root else self._greet_and_echo
            self._servers.append(await asyncio.start_server(handler, sock=sock))
        for address in DNS_ADDRESSES:
            sock = self._bound(socket.SOCK_DGRAM, address, DNS_PORT)
            transport, _protocol = await loop.create_datagram_endpoint(lambda: _DnsProtocol(self.hosts_path), sock=sock)
            self._transports.append(transport)

    async def close(self) -> None:
        """Stop listening."""
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0)  # let the connection handlers see their end
        self._servers, self._transports = [], []
