# SPDX-License-Identifier: GPL-3.0-or-later
"""Network namespaces: the commands that make and unmake them, and sockets opened inside them.

Everything goes through ``ip``, ``nft``, ``sysctl`` and ``conntrack`` run
either with ``ip -n NS`` or under ``nsenter --net=/run/netns/NS``; a command
that fails raises :class:`CommandError` with its output, for the caller to
log.  :func:`socket_in` opens a socket inside a namespace from this process
(the calling thread enters the namespace, makes the socket and comes back;
the socket stays in the namespace it was made in).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
TOOLS = ("ip", "nft", "nsenter", "sysctl")
"""What realisation cannot do without (``conntrack`` is only needed to cut connections)."""


class CommandError(RuntimeError):
    """A command failed; the message holds the command and what it printed."""


def missing_tools() -> list[str]:
    """The required tools that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def run(argv: list[str], stdin: str | None = None, ok_codes: tuple[int, ...] = (0,)) -> str:
    """Run a command; its stdout, or CommandError with its stderr."""
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"{' '.join(argv)}: {exc}") from exc
    if proc.returncode not in ok_codes:
        detail = (proc.stderr or proc.stdout).strip()
        raise CommandError(f"{' '.join(argv)} exited {proc.returncode}: {detail}")
    return proc.stdout


def inside(namespace: str, argv: list[str]) -> list[str]:
    """``argv`` run inside a namespace."""
    return ["nsenter", f"--net={os.path.join(NETNS_DIR, namespace)}", *argv]


def ip_batch(namespace: str, commands: list[str]) -> None:
    """Several ``ip`` commands in a namespace, in one process."""
    run(["ip", "-n", namespace, "-batch", "-"], stdin="\n".join(commands) + "\n")


def namespaces() -> list[str]:
    """Names of the named network namespaces."""
    return sorted(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else []


def exists(namespace: str) -> bool:
    """Whether a named namespace exists."""
    return os.path.exists(os.path.join(NETNS_DIR, namespace))


def add(namespace: str, forwarding: bool) -> None:
    """A new namespace with loopback up, forwarding on or off, ICMP errors not rate-limited.

    The kernel sends at most about one ICMP error a second to a peer after a
    short burst; a firewall's rejects (and a closed port's answers) would
    then turn into timeouts whenever probes come quickly.
    """
    run(["ip", "netns", "add", namespace])
    ip_batch(namespace, ["link set lo up"])
    run(inside(namespace, ["sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0",
                           f"net.ipv4.ip_forward={int(forwarding)}"]))


def set_forwarding(namespace: str, forwarding: bool) -> None:
    """IPv4 forwarding inside a namespace."""
    run(inside(namespace, ["sysctl", "-q", "-w", f"net.ipv4.ip_forward={int(forwarding)}"]))


def veths(namespace: str) -> list[str]:
    """The veth interfaces in a namespace."""
    out = run(["ip", "-n", namespace, "-j", "link", "show", "type", "veth"])
    return [link["ifname"] for link in json.loads(out or "[]")]


def delete(namespace: str) -> None:
    """Remove a namespace and the veth pairs with an end in it.

    The pairs are deleted first, explicitly: the kernel dismantles a deleted
    namespace in the background, and its veths would otherwise linger for a
    moment on the other side.
    """
    links = veths(namespace)
    if links:
        ip_batch(namespace, [f"link del {name}" for name in links])
    run(["ip", "netns", "del", namespace])


def link(inner: str, inner_ip: str, outer: str, outer_if: str, gateway: str, guest=None) -> None:
    """A point-to-point link as Qubes makes one between a qube and its netvm.

    ``inner`` gets ``eth0`` with ``inner_ip/32`` and a default route through
    ``gateway`` (on-link); ``outer`` gets ``outer_if`` with ``gateway/32``
    and a host route back to ``inner_ip``.  A guest that configures its
    network itself (an OS without a Qubes agent) gives ``guest`` as
    ``(address, prefix, its gateway)`` (an empty address: it set none); the outer side stays as Qubes makes it.
    """
    run(["ip", "link", "add", "eth0", "netns", inner, "type", "veth", "peer", "name", outer_if, "netns", outer])
    ip_batch(outer, [f"addr add {gateway}/32 dev {outer_if}", f"link set {outer_if} up",
                     f"route replace {inner_ip}/32 dev {outer_if}"])
    if guest is None:
        guest = (inner_ip, 32, gateway)
    address, prefix, guest_gateway = guest
    commands = ([f"addr add {address}/{prefix} dev eth0"] if address else []) + ["link set eth0 up"]
    if address and guest_gateway:
        commands.append(f"route replace default via {guest_gateway} dev eth0 onlink")
    ip_batch(inner, commands)


def unlink(inner: str) -> None:
    """Remove the ``eth0`` link of a namespace (and its peer)."""
    ip_batch(inner, ["link del eth0"])


def nft(namespace: str, script: str) -> None:
    """Apply an nft script in a namespace as one transaction."""
    run(inside(namespace, ["nft", "-f", "-"]), stdin=script)


def flush_conntrack(namespace: str, source: str) -> None:
    """Delete the connection-tracking entries of a source address (none to delete is fine)."""
    try:
        run(inside(namespace, ["conntrack", "-D", "-s", source]))
    except CommandError as exc:
        if "0 flow entries" not in str(exc):
            raise


def _enter(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in(namespace: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket that lives in a named namespace (made by this thread, which then comes back)."""
    return socket_at(os.path.join(NETNS_DIR, namespace), family, kind)


def socket_at(path: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket in the network namespace at ``path`` (a named one, or ``/proc/PID/ns/net``)."""
    target = os.open(path, os.O_RDONLY)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _enter(target)
        try:
            return socket.socket(family, kind)
        finally:
            _enter(home)
    finally:
        os.close(target)
        os.close(home)
