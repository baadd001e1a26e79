# SPDX-License-Identifier: GPL-3.0-or-later
"""Network realisation: running qubes get network namespaces, their netvms enforce the firewall.

Each running qube that has a netvm (or provides network) gets a namespace
``<prefix>-vm-<qube>``.  Its ``eth0`` holds its Qubes address (``ip``, /32)
with a default route through its netvm's address; the other end of the
pair, ``vif<xid>.0``, sits in the netvm's namespace with the netvm's
address (/32) and a host route back.  A netvm forwards, masquerades out of
its own ``eth0`` and enforces its clients' firewall rules in
``table ip qubes-firewall`` (see :mod:`rehearsal.nft`).  A netvm with no
netvm of its own (sys-net) has its ``eth0`` in the world namespace
``<prefix>-world`` (see :mod:`rehearsal.world`), which has no uplink: no
packet leaves the namespaces made here.

:class:`Network` follows the rehearsal dom0's events: it reconciles the
namespaces with the running qubes after starts, stops and netvm changes, and
re-applies a netvm's table (then cuts the client's tracked connections) when
a client's rules change or are reloaded.  The prefix is derived from the
state directory, so several rehearsal dom0s run side by side; only
namespaces with their own prefix are ever touched, and those a killed run
left behind are removed at the next start.

:func:`probe` connects from inside a running qube's namespace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import ipaddress
import logging
import os
import shutil
import socket
import time

from rehearsal import installer, netns, nft, properties, world

LOG = logging.getLogger("rehearsal.network")
RUN_DIR = "/run/corral-rehearsal"
WORLD = "@world"
"""The upstream of a netvm without a netvm (no qube name starts with @)."""
WORLD_GATEWAY = "100.64.0.1"
"""The world's end of every uplink (shared address space: never a destination)."""
DNS_SERVERS = world.DNS_ADDRESSES
RECONCILE_EVENTS = ("domain-start", "domain-stopped")
RECONCILE_PROPERTIES = ("netvm", "default_netvm", "provides_network", "ip")

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
"""Linux's socket option that makes ICMP errors hard errors of a connected socket."""
CONNECTED, PROHIBITED, REFUSED, TIMEOUT, UNREACHABLE = "connected", "prohibited", "refused", "timeout", "unreachable"


class Unavailable(RuntimeError):
    """Realisation was asked for (``--network on``) where it cannot be done."""


def _in_initial_user_namespace() -> bool:
    """Whether this process's uids are the machine's (not root mapped inside a user namespace)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as handle:
            return handle.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


def unavailable() -> list[str]:
    """Why realisation cannot be done here (nothing: it can)."""
    reasons = [] if os.geteuid() == 0 else ["it needs root"]
    if not reasons and not _in_initial_user_namespace():
        reasons.append("it needs the machine's root, not root inside a user namespace")
    missing = netns.missing_tools()
    if missing:
        reasons.append(f"missing {', '.join(missing)}")
    return reasons


def enabled(mode: str) -> bool:
    """Whether ``--network MODE`` (auto, on, off) realises; Unavailable for ``on`` where it cannot."""
    if mode == "off":
        return False
    reasons = unavailable()
    if reasons and mode == "on":
        raise Unavailable(f"--network on: {'; '.join(reasons)}")
    return not reasons


class ProbeError(LookupError):
    """A probe that cannot be made: no such namespace, or a name the world does not know."""


class Layout:
    """The names one rehearsal dom0 uses, derived from its state directory."""

    def __init__(self, state_dir: str):
        digest = hashlib.sha256(os.path.realpath(state_dir).encode("utf-8")).hexdigest()[:8]
        self.prefix = f"cq{digest}"
        self.world = f"{self.prefix}-world"
        self.run_dir = os.path.join(RUN_DIR, self.prefix)
        self.hosts = os.path.join(self.run_dir, "hosts")

    def namespace(self, qube: str) -> str:
        """The namespace of a qube."""
        return f"{self.prefix}-vm-{qube}"

    def owned(self) -> list[str]:
        """The namespaces that exist with this prefix."""
        return [name for name in netns.namespaces() if name.startswith(self.prefix + "-")]

    def resolve(self, host: str) -> list[str]:
        """IPv4 addresses of a name in the world's hosts file (an address stands for itself)."""
        try:
            return [str(ipaddress.IPv4Address(host))]
        except ValueError:
            return world.read_hosts(self.hosts).get(host.lower(), [])


@dataclasses.dataclass
class Node:
    """A realised qube: its namespace, address, the start it belongs to, and what its eth0 reaches."""

    namespace: str
    address: str
    xid: int
    provides_network: bool
    upstream: str | None = None
    """The netvm its eth0 leads to, :data:`WORLD`, or None (no link)."""

    def same_start(self, other: Node) -> bool:
        """The same qube run with the same address and role (else it is made anew)."""
        return (self.address, self.xid, self.provides_network) == (other.address, other.xid, other.provides_network)


class Network:
    """Realises a rehearsal dom0's running qubes as namespaces and keeps them in step with its events."""

    def __init__(self, dom0, layout: Layout, destinations: list):
        self.dom0 = dom0
        self.layout = layout
        self.world = world.World(layout.world, destinations, layout.hosts)
        self.nodes: dict[str, Node] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Clear what a previous run left, make the world, realise the running qubes, follow events."""
        self.remove_all()
        try:
            self.world.create()
            await self.world.serve()
        except (netns.CommandError, OSError) as exc:
            LOG.error("network: the world namespace could not be made (qubes will reach nothing): %s", exc)
        self.dom0.listeners.append(self.on_event)
        self.reconcile()

    async def stop(self) -> None:
        """Stop following events and remove every namespace of this rehearsal."""
        if self.on_event in self.dom0.listeners:
            self.dom0.listeners.remove(self.on_event)
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        await self.world.close()
        self.nodes.clear()
        self.remove_all()

    def remove_all(self) -> None:
        """Remove every namespace with this rehearsal's prefix, and its run directory."""
        for name in self.layout.owned():
            self._attempt(f"removing namespace {name}", netns.delete, name)
        shutil.rmtree(self.layout.run_dir, ignore_errors=True)

    @staticmethod
    def _attempt(what: str, func, *args) -> bool:
        """Run one step; a failure is logged and reported as False.

        Whatever goes wrong while realising is caught here: the Admin API
        call that caused it has already changed the dom0 and must still answer.
        """
        try:
            func(*args)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            LOG.error("network: %s failed: %s", what, exc)
            return False
        return True

    # -- events ---------------------------------------------------------------------------------

    def on_event(self, subject: str, event: str, kwargs: dict) -> None:  # pylint: disable=unused-argument
        """A dom0 event: reconcile after power and netvm changes, re-apply after firewall changes."""
        kind, _sep, prop = event.partition(":")
        if event in RECONCILE_EVENTS or (kind in ("property-set", "property-reset") and prop in RECONCILE_PROPERTIES):
            self._attempt(f"realising the network after {event}", self.reconcile)
        elif event == "firewall-changed" and subject:
            self._attempt(f"applying the firewall of {subject}", self.firewall_changed, subject)

    def firewall_changed(self, qube: str) -> None:
        """Apply a client's new rules in its netvm, then cut its tracked connections."""
        node = self.nodes.get(qube)
        netvm = self.nodes.get(node.upstream) if node is not None and node.upstream else None
        if netvm is None:
            return
        self.apply_firewall(node.upstream)
        self._attempt(f"flushing tracked connections of {qube}", netns.flush_conntrack, netvm.namespace, node.address)

    # -- reconciling ----------------------------------------------------------------------------

    def wanted(self) -> dict[str, Node]:
        """The nodes the running qubes call for (with the upstream each should have)."""
        nodes = {}
        for qube in self.dom0.state.domains.values():
            if qube.klass == "AdminVM" or not qube.is_running:
                continue
            netvm = properties.netvm_of(self.dom0, qube)
            provides = bool(self.dom0.value(qube, "provides_network", False))
            address = self.dom0.value(qube, "ip")
            if (netvm is None and not provides) or not address:
                continue
            if netvm is None:
                upstream = WORLD
            else:
                upstream = netvm.name if netvm.is_running and netvm.klass != "AdminVM" else None
            nodes[qube.name] = Node(self.layout.namespace(qube.name), address, qube.xid, provides, upstream)
        return nodes

    def reconcile(self) -> None:
        """Bring the namespaces and links in line with the running qubes; re-apply the changed netvms."""
        wanted = self.wanted()
        changed: set[str] = set()
        for name in [n for n, node in self.nodes.items() if n not in wanted or not node.same_start(wanted[n])]:
            changed |= self._remove_node(name)
        for name, want in wanted.items():
            if name not in self.nodes:
                self._add_node(name, want)
        for name, want in wanted.items():
            node = self.nodes.get(name)
            if node is None or node.upstream == want.upstream:
                continue
            if node.upstream is not None:
                changed.add(node.upstream)
                self._attempt(f"unlinking {name}", netns.unlink, node.namespace)
                node.upstream = None
            if want.upstream is not None and self._link(name, node, want.upstream):
                changed.add(want.upstream)
        for netvm in sorted(changed):
            self.apply_firewall(netvm)

    def _add_node(self, name: str, want: Node) -> None:
        """A namespace for a qube; a netvm's with its firewall and NAT in place before it forwards."""
        node = Node(want.namespace, want.address, want.xid, want.provides_network)
        if netns.exists(node.namespace):
            self._attempt(f"removing the old namespace of {name}", netns.delete, node.namespace)
        if not self._attempt(f"making the namespace of {name}", netns.add, node.namespace, False):
            return
        self.nodes[name] = node
        if node.provides_network:
            closed = nft.render_table({}, self.layout.resolve, DNS_SERVERS, time.time())
            if self._attempt(f"firewall of {name}", netns.nft, node.namespace, closed) and \
                    self._attempt(f"NAT of {name}", netns.nft, node.namespace, nft.render_nat("eth0")):
                self._attempt(f"forwarding in {name}", netns.set_forwarding, node.namespace, True)

    def _remove_node(self, name: str) -> set[str]:
        """Remove a qube's namespace (its clients lose their link); the netvm it left needs re-applying."""
        node = self.nodes.pop(name)
        for other in self.nodes.values():
            if other.upstream == name:
                other.upstream = None
        self._attempt(f"removing the namespace of {name}", netns.delete, node.namespace)
        timer = self._expiry.pop(name, None)
        if timer is not None:
            timer.cancel()
        return {node.upstream} if node.upstream in self.nodes else set()

    def _link(self, name: str, node: Node, upstream: str) -> bool:
        """Link a qube's eth0 to its netvm (or a sys-net's to the world)."""
        if upstream == WORLD:
            outer, outer_if, gateway = self.layout.world, f"up{node.xid}", WORLD_GATEWAY
        elif upstream in self.nodes:
            outer, outer_if, gateway = self.nodes[upstream].namespace, f"vif{node.xid}.0", self.nodes[upstream].address
        else:
            return False
        qube = self.dom0.state.domains.get(name)
        guest = installer.guest_link(self.dom0, qube) if qube is not None else None
        if self._attempt(f"linking {name} to {upstream}", netns.link, node.namespace, node.address, outer,
                         outer_if, gateway, guest):
            node.upstream = upstream
            return True
        if "eth0" in self._veths(node.namespace):
            self._attempt(f"unlinking {name} after a failed link", netns.unlink, node.namespace)
        return False

    def _veths(self, namespace: str) -> list[str]:
        try:
            return netns.veths(namespace)
        except netns.CommandError as exc:
            LOG.error("network: listing the links of %s failed: %s", namespace, exc)
            return []

    # -- firewall -------------------------------------------------------------------------------

    def apply_firewall(self, netvm: str) -> None:
        """Replace a netvm's table with its clients' current rules (fail closed if that fails)."""
        node = self.nodes.get(netvm)
        if netvm == WORLD or node is None or not node.provides_network:
            return
        now = time.time()
        clients = {n.address: self.dom0.qube(name).firewall_rules()
                   for name, n in self.nodes.items() if n.upstream == netvm}

        def apply(clients: dict) -> None:
            netns.nft(node.namespace, nft.render_table(clients, self.layout.resolve, DNS_SERVERS, now))

        if not self._attempt(f"firewall of {netvm}", apply, clients):
            self._attempt(f"closing the firewall of {netvm}", apply, {})
        self._schedule_expiry(netvm, [rule for rules in clients.values() for rule in rules], now)

    def _schedule_expiry(self, netvm: str, rules: list, now: float) -> None:
        """Re-apply a netvm's table when the next of its rules expires."""
        timer = self._expiry.pop(netvm, None)
        if timer is not None:
            timer.cancel()
        pending = [rule.expire for rule in rules if rule.expire is not None and rule.expire > now]
        if not pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._expiry[netvm] = loop.call_later(min(pending) - now + 0.01, self.apply_firewall, netvm)


# -- probes ---------------------------------------------------------------------------------------

def _target(layout: Layout, qube: str, host: str) -> tuple[str, str]:
    """(namespace, address) for a probe from ``qube`` to ``host``."""
    namespace = layout.namespace(qube)
    if not netns.exists(namespace):
        raise ProbeError(f"{qube} has no network namespace here (not running, or no network)")
    addresses = layout.resolve(host)
    if not addresses:
        raise ProbeError(f"{host} is not in the world's hosts file {layout.hosts}")
    return namespace, addresses[0]


def connect(layout: Layout, qube: str, host: str, port: int, timeout: float = 2.0) -> socket.socket:
    """A TCP connection made from inside a qube (OSError, or TimeoutError, if it is not made).

    ICMP errors are reported on the socket (``IP_RECVERR``), so a connection
    that the firewall cuts later fails at the next read instead of hanging.
    """
    namespace, address = _target(layout, qube, host)
    sock = netns.socket_in(namespace, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.settimeout(timeout)
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def outcome(exc: OSError) -> str:
    """What a failed connection means: prohibited (ICMP), refused (RST / port unreachable), unreachable, timeout."""
    if isinstance(exc, TimeoutError) or exc.errno in (errno.ETIMEDOUT, errno.EAGAIN):
        return TIMEOUT
    if exc.errno in (errno.EHOSTUNREACH, errno.EACCES, errno.EPERM):
        return PROHIBITED
    if exc.errno == errno.ECONNREFUSED:
        return REFUSED
    if exc.errno == errno.ENETUNREACH:
        return UNREACHABLE
    raise exc


def _probe_udp(namespace: str, address: str, port: int, timeout: float) -> None:
    """Send a DNS query (any UDP port) and wait for an answer."""
    with netns.socket_in(namespace, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((address, port))
        sock.send(world.dns_query("probe.example"))
        sock.recv(512)


def probe(layout: Layout, qube: str, host: str, port: int, proto: str = "tcp", timeout: float = 2.0) -> str:
    """Try ``host:port`` from inside a qube: connected, prohibited, refused, unreachable or timeout.

    ``host`` is an IPv4 address or a name of the world's hosts file.  A UDP
    probe sends a DNS query and counts an answer as connected.  ProbeError
    if the qube has no namespace or the name is unknown.
    """
    if proto not in ("tcp", "udp"):
        raise ValueError(f"proto must be tcp or udp, not {proto!r}")
    try:
        if proto == "udp":
            namespace, address = _target(layout, qube, host)
            _probe_udp(namespace, address, port, timeout)
        else:
            connect(layout, qube, host, port, timeout).close()
    except OSError as exc:
        return outcome(exc)
    return CONNECTED
