# SPDX-License-Identifier: GPL-3.0-or-later
"""Qube roots: a running qube really runs, in namespaces of its own, on its own root filesystem.

Storage of a qube, under ``<state>/qubes/<name>/``:

* ``private/``: its private volume, mounted at ``/rw``; ``private/home`` is
  mounted at ``/home`` (as Qubes binds ``/rw/home``).  It persists.
* TemplateVM, StandaloneVM: ``root/upper`` (and ``root/work``), the
  persistent layer of an overlay over the cached Debian base
  (:mod:`rehearsal.rootfs`).
* AppVM, DispVM: ``volatile/``, made at start and thrown away at shutdown:
  a copy of the template's layer taken at start (``volatile/template``,
  so the AppVM sees its template's root as it was when the AppVM started,
  and only a restart shows the template's later changes), the AppVM's
  own writable layer over it, and (DispVM) a copy of its disposable
  template's private volume.

Starting a qube (:meth:`Roots.qube_started`, called by
:meth:`rehearsal.dom0.Dom0.start` before the qube counts as started)
spawns its init: new mount, PID, UTS and IPC namespaces, the qube's network
namespace (the one :mod:`rehearsal.network` made for a networked qube, else
a namespace of its own with only loopback), the overlay, ``/proc``, a small
``/dev``, tmpfs ``/tmp`` and ``/run``, hostname = the qube's name, and a
chroot into the root, where a Python init reaps orphans.  Stopping kills
the init, which ends every process of the qube (they are in its PID
namespace); the mounts live only in the qube's mount namespace, so they go
with it.  Inits a killed rehearsal left behind are found by their command
line (it names the state directory) and killed at the next start.

:meth:`Roots.exec_argv` is how qrexec enters a qube: ``nsenter`` into all
of the init's namespaces and its root, as the user the call asks for.
For each qube with a running root, ``<daemon dir>/qrexec.<name>`` holds the
init's process id (as Qubes keeps ``/var/run/qubes/qrexec.<name>`` for a
qube whose qrexec agent is connected).

Block devices: a qube's loop devices are files its ``losetup`` stand-in
records (:meth:`Roots.block_devices`).  An attached block device appears in
the frontend qube as ``/dev/xvdX`` (option ``frontend-dev``, else the first
free of ``xvdi`` … ``xvdz``), a bind mount of the backend's file — no real
block device — read-only when option ``read-only`` says so
(:meth:`Roots.device_attached`, by :mod:`rehearsal.crossmount`: the kernel
binds no path of another mount namespace, so a copy of the backend's mount
is moved into the frontend's).  It goes on detach and when the backend stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from ansible_collections.corral.qubes.plugins.module_utils import wire

from rehearsal import netns, properties, qrexec_proto, rootfs

LOG = logging.getLogger("rehearsal.roots")
MARKER = "corral-qube-init"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("unshare", "nsenter", "mount", "chroot", "cp")
AGENT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent")
CROSSMOUNT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crossmount.py")
FRONTEND_DEVICES = tuple(f"xvd{letter}" for letter in "ijklmnopqrstuvwxyz")
"""Where an attached block device appears in its frontend when no ``frontend-dev`` is asked for (Qubes' order)."""
UPDATES_PROXY = ("127.0.0.1", 8082)
"""Where a template's package manager finds the updates proxy (Qubes' forwarder address)."""
UPDATES_SERVICE = "qubes.UpdatesProxy"

INIT = ('import os, signal, time; signal.signal(signal.SIGTERM, lambda *_: os._exit(0)); '
        'null = os.open("/dev/null", os.O_RDWR); os.write(1, b"ready\\n"); os.dup2(null, 0); os.dup2(null, 1); '
        'exec("while True:\\n try: os.wait()\\n except ChildProcessError: time.sleep(0.2)")')
"""PID 1 of a qube: reaps what its processes leave behind; ends on SIGTERM (the kernel then ends the rest)."""

SETUP = r"""
set -e
name=$1 mnt=$2 lower=$3 upper=$4 work=$5 private=$6 ownnet=$7 template=$8 dns=$9 repository=${10} binds=${11}
if [ "$ownnet" = 1 ]; then ip link set lo up; fi
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$mnt"
mkdir -p "$mnt/rw" "$mnt/home" "$mnt/proc" "$mnt/dev" "$mnt/tmp" "$mnt/run" "$mnt/sys" "$private/home"
mount --bind "$private" "$mnt/rw"
mount --bind "$private/home" "$mnt/home"
printf '%s\n' "$binds" | while IFS='|' read -r mode source dest; do
    [ -n "$source" ] || continue
    mkdir -p "$mnt$dest"
    mount --bind "$source" "$mnt$dest"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$mnt$dest"; fi
done
mount -t proc -o nosuid,nodev,noexec proc "$mnt/proc"
mount -t tmpfs -o mode=755,nosuid dev "$mnt/dev"
for d in null zero full random urandom tty; do : > "$mnt/dev/$d"; mount --bind "/dev/$d" "$mnt/dev/$d"; done
ln -s /proc/self/fd "$mnt/dev/fd"
ln -s /proc/self/fd/0 "$mnt/dev/stdin"
ln -s /proc/self/fd/1 "$mnt/dev/stdout"
ln -s /proc/self/fd/2 "$mnt/dev/stderr"
mkdir -p "$mnt/dev/pts" "$mnt/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$mnt/dev/pts" && ln -s pts/ptmx "$mnt/dev/ptmx" || true
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$mnt/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$mnt/tmp"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$mnt/run"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$mnt/sys" 2>/dev/null || true
hostname "$name"
echo "$name" > "$mnt/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$name" > "$mnt/etc/hosts"
: > "$mnt/etc/resolv.conf.new"
for server in $dns; do echo "nameserver $server" >> "$mnt/etc/resolv.conf.new"; done
mv -f "$mnt/etc/resolv.conf.new" "$mnt/etc/resolv.conf"
if [ "$template" = 1 ]; then
    printf 'Acquire::http::Proxy "http://127.0.0.1:8082/";\n' > "$mnt/etc/apt/apt.conf.d/01qubes-proxy"
    if [ -n "$repository" ]; then
        printf '# the rehearsal world'"'"'s distribution repository (stand-in packages)\ndeb [trusted=yes] %s ./\n' \
            "$repository" > "$mnt/etc/apt/sources.list"
    fi
else
    rm -f "$mnt/etc/apt/apt.conf.d/01qubes-proxy"
fi
exec chroot "$mnt" /usr/bin/python3 -c "$INIT" __MARKER__ "$mnt"
""".replace("__MARKER__", MARKER)


class Unavailable(RuntimeError):
    """Roots were asked for (``--roots on``) where they cannot be made."""


def unavailable() -> list[str]:
    """Why qube roots cannot run here (nothing: they can)."""
    from rehearsal import network  # pylint: disable=import-outside-toplevel
    reasons = [] if os.geteuid() == 0 else ["they need root"]
    if not reasons and not network._in_initial_user_namespace():  # pylint: disable=protected-access
        reasons.append("they need the machine's root, not root inside a user namespace")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        reasons.append(f"missing {', '.join(missing)}")
    return reasons


def enabled(mode: str) -> bool:
    """Whether ``--roots MODE`` runs qube roots; auto: as the machine's root with the base root cached.

    ``on`` builds the base root when it is missing (Unavailable if it cannot).
    """
    if mode == "off":
        return False
    reasons = unavailable()
    if mode == "auto":
        return not reasons and rootfs.ready()
    if reasons:
        raise Unavailable(f"--roots on: {'; '.join(reasons)}")
    if not rootfs.ready():
        try:
            _path, seconds, _built = rootfs.build()
        except rootfs.BuildError as exc:
            raise Unavailable(f"--roots on: the base root filesystem could not be built: {exc}") from None
        LOG.warning("roots: built the base root filesystem in %.0f s", seconds)
    return True


@dataclasses.dataclass
class Running:
    """A qube's running root: its init (host pid) and the unshare process that holds it."""

    init: int
    proc: subprocess.Popen
    started: float


def spawn(name: str, directory: str, lower: list[str], upper: str, work: str, private: str,
          net_argv: tuple[list[str], bool], template: bool = False, dns: str = properties.DNS_SERVERS,
          repository: str = "", binds: tuple[tuple[str, str, bool], ...] = ()) -> Running:
    """Start a root's init in new mount, PID, UTS and IPC namespaces (and a network namespace of its own, or
    the one ``net_argv`` enters): an overlay of ``lower`` (top first) under ``upper`` mounted at
    ``directory/mnt``, ``private`` at ``/rw`` and ``/home``, ``binds`` (source, path inside, read-only)
    bind-mounted, hostname ``name``; its console goes to ``directory/console.log``.

    The qubes' roots (:class:`Roots`) and the dom0 host (:mod:`rehearsal.dom0host`) are both made here.
    """
    started = time.monotonic()
    mnt = os.path.join(directory, "mnt")
    os.makedirs(mnt, exist_ok=True)
    net, own_net = net_argv
    spec = "\n".join(f"{'ro' if read_only else 'rw'}|{source}|{inside}" for source, inside, read_only in binds)
    argv = [*net, "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
            "--propagation", "private", *(["--net"] if own_net else []),
            "sh", "-c", SETUP, MARKER, name, mnt, ":".join(lower), upper, work, private,
            "1" if own_net else "0", "1" if template else "0", dns, repository, spec]
    console = open(os.path.join(directory, "console.log"), "ab")  # pylint: disable=consider-using-with
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=console,
                                env={"PATH": os.environ.get("PATH", PATH), "INIT": INIT}, start_new_session=True)
    finally:
        console.close()
    line = proc.stdout.readline()
    proc.stdout.close()
    if line != b"ready\n":
        proc.wait()
        raise RuntimeError(f"its init did not come up (exit {proc.returncode}; see "
                           f"{os.path.join(directory, 'console.log')})")
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children", encoding="ascii") as handle:
        init = int(handle.read().split()[0])
    LOG.info("roots: %s runs (init %d) after %.3f s", name, init, time.monotonic() - started)
    return Running(init, proc, started)


class Roots:
    """Runs a rehearsal dom0's running qubes on real roots (a backend :class:`~rehearsal.dom0.Dom0` calls)."""

    def __init__(self, dom0, state_dir: str, daemon_dir: str, base: str | None = None, network=None):
        self.dom0 = dom0
        self.state_dir = os.path.abspath(state_dir)
        self.storage = os.path.join(self.state_dir, "qubes")
        self.daemon_dir = os.path.abspath(daemon_dir)
        self.base = base or rootfs.path()
        self.network = network
        self.running: dict[str, Running] = {}
        self.agent = os.path.join(self.storage, ".agent")
        """The agent's files (``rehearsal/agent``), a layer between every qube's own and the base."""
        self.qrexec_socket: str | None = None
        """Where the updates proxy forwarders make their qrexec calls (set by whoever serves qrexec)."""
        self.forwarders: dict[str, asyncio.AbstractServer] = {}
        self.forwarding: dict[asyncio.Task, str] = {}
        """The forwarders' open connections (task -> template), ended with their template."""
        self.block_mounts: dict[str, dict[tuple[str, str], str]] = {}
        """Per frontend qube: (backend, port) -> the name under ``/dev`` of the block device attached to it."""

    # -- lifecycle of the backend ---------------------------------------------------------------

    async def start(self) -> None:
        """Kill what a previous run left; give the qubes the state says are running their roots."""
        self.kill_stale()
        self._install_agent()
        os.makedirs(self.daemon_dir, exist_ok=True)
        for entry in os.listdir(self.daemon_dir):
            if entry.startswith("qrexec."):
                os.unlink(os.path.join(self.daemon_dir, entry))
        self.dom0.backends.append(self)
        for qube in list(self.dom0.state.domains.values()):
            if qube.klass != "AdminVM" and qube.is_running:
                try:
                    await self.qube_started(qube)
                except wire.QubesException as exc:
                    LOG.error("roots: %s could not be started again: %s", qube.name, exc)

    async def stop(self) -> None:
        """End every qube's processes."""
        if self in self.dom0.backends:
            self.dom0.backends.remove(self)
        for name in list(self.running):
            self._end(name)
        for task in list(self.forwarding):
            task.cancel()
        if self.forwarding:
            await asyncio.gather(*list(self.forwarding), return_exceptions=True)

    def kill_stale(self) -> None:
        """Kill the inits of this state directory that no Roots of this process holds (a killed run's)."""
        mine = {run.init for run in self.running.values()}
        prefix = os.path.join(self.storage, "").encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in mine:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if MARKER.encode() in argv and any(arg.startswith(prefix) for arg in argv):
                LOG.warning("roots: killing a stale init %s", entry)
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _install_agent(self) -> None:
        """The agent layer, fresh from the package (no qube runs yet, so no overlay holds it)."""
        shutil.rmtree(self.agent, ignore_errors=True)
        shutil.copytree(AGENT_DIR, self.agent, symlinks=True)
        for dirpath, dirnames, filenames in os.walk(self.agent):
            for entry in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                os.lchown(entry, 0, 0)
        services = os.path.join(self.agent, "etc", "qubes-rpc")
        for name in os.listdir(services):
            os.chmod(os.path.join(services, name), 0o755)  # an installed package may not keep the modes
        os.chmod(os.path.join(self.agent, "usr", "local", "sbin", "losetup"), 0o755)

    # -- storage -------------------------------------------------------------------------------

    def qube_dir(self, name: str) -> str:
        """The storage of a qube."""
        return os.path.join(self.storage, name)

    def _persistent_root(self, name: str) -> tuple[str, str]:
        root = os.path.join(self.qube_dir(name), "root")
        upper, work = os.path.join(root, "upper"), os.path.join(root, "work")
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        return upper, work

    def _private(self, name: str) -> str:
        private = os.path.join(self.qube_dir(name), "private")
        if not os.path.isdir(private):
            os.makedirs(private)
            home = os.path.join(private, "home", rootfs.USER)
            skel = os.path.join(self.base, "etc", "skel")
            if os.path.isdir(skel):
                shutil.copytree(skel, home, symlinks=True)
            else:
                os.makedirs(home)
            os.chown(os.path.join(private, "home"), 0, 0)
            for dirpath, dirnames, filenames in os.walk(home):
                for entry in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                    os.lchown(entry, rootfs.USER_UID, rootfs.USER_UID)
        return private

    @staticmethod
    def _copy(source: str, dest: str) -> None:
        """A copy of a directory tree with owners, modes, links and extended attributes (overlay's too)."""
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.isdir(source):
            os.makedirs(dest)
            return
        subprocess.run(["cp", "-a", "--reflink=auto", source, dest], check=True, capture_output=True)

    def _root_template(self, qube):
        template = self.dom0.template_of(qube)
        while template is not None and template.klass in ("AppVM", "DispVM"):
            template = self.dom0.template_of(template)
        return template

    def _layers(self, qube) -> tuple[list[str], str, str, str]:
        """(its own lower layers, upper, work, private) of a qube about to start (the agent and base go below)."""
        if qube.klass in ("TemplateVM", "StandaloneVM"):
            upper, work = self._persistent_root(qube.name)
            return [], upper, work, self._private(qube.name)
        volatile = os.path.join(self.qube_dir(qube.name), "volatile")
        shutil.rmtree(volatile, ignore_errors=True)
        os.makedirs(volatile)
        template = self._root_template(qube)
        snapshot = os.path.join(volatile, "template")
        self._copy(os.path.join(self.qube_dir(template.name), "root", "upper") if template else "", snapshot)
        upper, work = os.path.join(volatile, "upper"), os.path.join(volatile, "work")
        os.makedirs(upper)
        os.makedirs(work)
        if qube.klass == "DispVM":
            private = os.path.join(volatile, "private")
            dvm = self.dom0.template_of(qube)
            self._copy(self._private(dvm.name), private)
        else:
            private = self._private(qube.name)
        return [snapshot], upper, work, private

    def volume_cloned(self, qube, volume: str, source, source_volume: str) -> None:
        """admin.vm.volume.CloneTo: the qube's volume becomes a copy of the source's (a StandaloneVM from a template)."""
        if volume == "root" and qube.klass in ("TemplateVM", "StandaloneVM") and \
                source.klass in ("TemplateVM", "StandaloneVM"):
            self._copy(os.path.join(self.qube_dir(source.name), "root"), os.path.join(self.qube_dir(qube.name), "root"))
        elif volume == "private" and source_volume == "private":
            self._copy(self._private(source.name), os.path.join(self.qube_dir(qube.name), "private"))

    def qube_removed(self, name: str) -> None:
        """admin.vm.Remove: its storage goes."""
        self._end(name)
        shutil.rmtree(self.qube_dir(name), ignore_errors=True)

    # -- power ---------------------------------------------------------------------------------

    def _netns_argv(self, qube) -> tuple[list[str], bool]:
        if self.network is not None:
            self.network.reconcile()
            node = self.network.nodes.get(qube.name)
            if node is not None and netns.exists(node.namespace):
                return ["nsenter", f"--net={os.path.join(netns.NETNS_DIR, node.namespace)}"], False
        return [], True

    async def qube_started(self, qube) -> None:
        """Spawn the qube's init; QubesException if it does not come up within the qrexec timeout."""
        if qube.name in self.running:
            return
        timeout = float(self.dom0.value(qube, "qrexec_timeout", 60) or 60)
        loop = asyncio.get_running_loop()
        try:
            # the network namespace is decided here, in the event loop's thread, where the network lives
            net = self._netns_argv(qube)
            run = await asyncio.wait_for(loop.run_in_executor(None, self._spawn, qube, net), timeout)
        except asyncio.TimeoutError:
            self._end(qube.name)
            raise wire.QubesException(f"Cannot connect to qrexec agent for {timeout:g} seconds, "
                                      f"see /var/log/xen/console/guest-{qube.name}.log for details") from None
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            raise wire.QubesException(f"Failed to start {qube.name}: {exc}") from None
        self.running[qube.name] = run
        if qube.klass == "TemplateVM":
            try:
                await self._start_forwarder(qube.name, run.init)
            except OSError as exc:
                LOG.error("roots: the updates proxy forwarder of %s could not listen: %s", qube.name, exc)
        with open(os.path.join(self.daemon_dir, f"qrexec.{qube.name}"), "w", encoding="ascii") as handle:
            handle.write(f"{run.init}\n")
        self._bind_attached(qube)

    # -- the updates proxy forwarder -----------------------------------------------------------

    async def _start_forwarder(self, name: str, init: int) -> None:
        """Listen on the template's 127.0.0.1:8082 (in its network namespace), as Qubes' forwarder does."""
        sock = netns.socket_at(f"/proc/{init}/ns/net")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(UPDATES_PROXY)
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.forwarders[name] = await asyncio.start_server(
            lambda reader, writer: self._forward(name, reader, writer), sock=sock)

    async def _forward(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection of the template's package manager: a qrexec call qubes.UpdatesProxy to @default."""
        task = asyncio.current_task()
        self.forwarding[task] = name
        try:
            await self._forward_one(name, reader, writer)
        except asyncio.CancelledError:
            writer.close()
        finally:
            self.forwarding.pop(task, None)

    async def _forward_one(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            q_reader, q_writer = await asyncio.open_unix_connection(self.qrexec_socket)
        except (OSError, TypeError) as exc:
            LOG.error("roots: updates proxy of %s: no qrexec socket: %s", name, exc)
            writer.close()
            return

        async def upstream() -> None:
            try:
                while chunk := await reader.read(qrexec_proto.CHUNK):
                    q_writer.write(chunk)
                    await q_writer.drain()
                q_writer.write_eof()
            except (ConnectionError, OSError):
                pass

        q_writer.write(qrexec_proto.encode_request(name, "@default", UPDATES_SERVICE))
        feeder = asyncio.ensure_future(upstream())
        sent, stderr, status = False, b"", None
        try:
            while status is None:
                kind, length = qrexec_proto.FRAME.unpack(await q_reader.readexactly(qrexec_proto.FRAME.size))
                data = await q_reader.readexactly(length)
                if kind == qrexec_proto.STDOUT:
                    sent = True
                    writer.write(data)
                    await writer.drain()
                elif kind == qrexec_proto.STDERR:
                    stderr += data[:4096 - len(stderr)]
                else:
                    status = int(data)
            if status != 0 and not sent:
                # Qubes' forwarder just closes the connection; saying why names the policy in apt's error
                why = "refused by the qrexec policy" if status == qrexec_proto.REFUSED else f"failed ({status})"
                reason = f"qubes.UpdatesProxy from {name} {why}"
                body = (reason + ": " + stderr.decode("utf-8", "replace").strip() + "\n").encode()
                writer.write(f"HTTP/1.1 403 {reason}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                             .encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        finally:
            feeder.cancel()
            q_writer.close()
            writer.close()

    def distribution(self) -> str:
        """The URL of the world's distribution repository (``repository:`` in the world file), or ""."""
        world = getattr(self.network, "world", None)
        for destination in getattr(world, "destinations", ()):
            if destination.distribution:
                return f"http://{destination.name}/"
        return ""

    def _spawn(self, qube, net_argv: tuple[list[str], bool]) -> Running:
        lower, upper, work, private = self._layers(qube)
        return spawn(qube.name, self.qube_dir(qube.name), [*lower, self.agent, self.base], upper, work, private,
                     net_argv, template=qube.klass == "TemplateVM", repository=self.distribution())

    def qube_paused(self, qube, paused: bool) -> None:
        """Pause, Suspend (SIGSTOP every process of the qube) or Unpause, Resume (SIGCONT)."""
        run = self.running.get(qube.name)
        if run is None:
            return
        for pid in self.processes(qube.name):
            try:
                os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)
            except ProcessLookupError:
                pass

    def processes(self, name: str) -> list[int]:
        """Host pids of every process in a running qube's PID namespace."""
        run = self.running.get(name)
        if run is None:
            return []
        try:
            namespace = os.readlink(f"/proc/{run.init}/ns/pid")
        except OSError:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                        found.append(int(entry))
                except OSError:
                    continue
        return found

    def qube_stopped(self, qube) -> None:
        """The qube halted (or was killed): end its processes, discard an AppVM's volatile layer."""
        self._end(qube.name)

    def _end(self, name: str) -> None:
        for frontend, mounts in list(self.block_mounts.items()):
            for backend, port in [key for key in mounts if key[0] == name]:
                self._unbind_block(frontend, backend, port)  # its loop devices go with it
        self.block_mounts.pop(name, None)  # what was attached to it goes with its mount namespace
        run = self.running.pop(name, None)
        forwarder = self.forwarders.pop(name, None)
        if forwarder is not None:
            forwarder.close()
        for task, template in list(self.forwarding.items()):
            if template == name:
                task.cancel()
        try:
            os.unlink(os.path.join(self.daemon_dir, f"qrexec.{name}"))
        except FileNotFoundError:
            pass
        if run is not None:
            try:
                os.kill(run.init, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                run.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
            # the PID namespace is gone when its last process is: wait for that before the layer goes
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self._ns_members(run):
                time.sleep(0.01)
        shutil.rmtree(os.path.join(self.qube_dir(name), "volatile"), ignore_errors=True)

    @staticmethod
    def _ns_members(run: Running) -> bool:
        return os.path.exists(f"/proc/{run.init}")

    # -- entering ------------------------------------------------------------------------------

    def init_of(self, name: str) -> int | None:
        """The host pid of a running qube's init (None: no root runs for it)."""
        run = self.running.get(name)
        return run.init if run is not None else None

    def block_devices(self, name: str) -> dict[str, dict]:
        """The loop devices a running qube set up with its ``losetup`` stand-in: port -> device info.

        Each holds the file's path in the qube (``name``, what the block device says of itself) and
        ``host_path``, where the rehearsal reads it (through the init's root while the qube runs).
        """
        init = self.init_of(name)
        if init is None:
            return {}
        folder = f"/proc/{init}/root/run/corral-rehearsal/loop"
        found = {}
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            return {}
        for entry in entries:
            try:
                with open(os.path.join(folder, entry), encoding="utf-8") as handle:
                    inner = handle.read().strip()
            except OSError:
                continue
            if entry.startswith("loop") and inner.startswith("/"):
                # a loop device tells no vendor or product: qubesd's id of an unknown device
                found[entry] = {"device_id": "0000:0000::?******", "name": inner, "description": inner,
                                "host_path": f"/proc/{init}/root{inner}"}
        return found

    # -- attached block devices ------------------------------------------------------------------

    def device_attached(self, qube, devclass: str, item: dict) -> None:
        """A device was attached to a running qube: a qube's block device appears in its root as ``/dev/xvdX``.

        QubesException when it cannot (the attachment fails): the ``frontend-dev`` asked for is taken, none is free.
        """
        if devclass == "block":
            self._bind_block(qube.name, item)

    def device_detached(self, qube, devclass: str, item: dict) -> None:
        """A device was detached from a qube (or its backend stopped): its ``/dev`` node goes."""
        if devclass == "block":
            self._unbind_block(qube.name, item["backend"], item["port_id"])

    def _bind_attached(self, qube) -> None:
        """At a root's start: block devices already attached to it, or attached elsewhere from it, appear."""
        for frontend in list(self.dom0.state.domains.values()):
            if frontend.name not in self.running:
                continue
            for item in list(frontend.attached.get("block", [])):
                if frontend is qube or item["backend"] == qube.name:
                    try:
                        self._bind_block(frontend.name, item)
                    except wire.QubesException as exc:
                        LOG.error("roots: %s:%s does not appear in %s: %s", item["backend"], item["port_id"],
                                  frontend.name, exc)

    def _free_device(self, frontend: str, init: int) -> str:
        taken = set(self.block_mounts.get(frontend, {}).values())
        for dev in FRONTEND_DEVICES:
            if dev not in taken and not os.path.lexists(f"/proc/{init}/root/dev/{dev}"):
                return dev
        raise wire.QubesException(f"No free block device name left in {frontend} (xvdi to xvdz are taken)")

    def _bind_block(self, frontend: str, item: dict) -> None:
        front_init, back_init = self.init_of(frontend), self.init_of(item["backend"])
        info = self.block_devices(item["backend"]).get(item["port_id"])
        key = (item["backend"], item["port_id"])
        mounts = self.block_mounts.setdefault(frontend, {})
        if front_init is None or back_init is None or info is None or key in mounts:
            return  # no root on one side, or no such loop device (any more): nothing to show
        options = item.get("options") or {}
        dev = options.get("frontend-dev") or self._free_device(frontend, front_init)
        if not dev.replace("-", "").replace("_", "").isalnum():
            raise wire.QubesValueError(f"Invalid frontend-dev {dev!r}")
        if dev in mounts.values() or os.path.lexists(f"/proc/{front_init}/root/dev/{dev}"):
            raise wire.QubesException(f"Block device {dev} already exists in {frontend}")
        read_only = str(options.get("read-only", "")).lower() in ("true", "yes")
        target = os.path.join(self.qube_dir(frontend), "mnt", "dev", dev)  # in its namespace (a chroot)
        why = self._crossmount("attach", str(back_init), f"/proc/{back_init}/root{info['name']}", str(front_init),
                               target, "ro" if read_only else "rw")
        if why:
            raise wire.QubesException(f"Cannot attach {key[0]}:{key[1]} to {frontend} as {dev}: {why}")
        mounts[key] = dev
        LOG.info("roots: %s:%s appears in %s as /dev/%s%s", key[0], key[1], frontend, dev,
                 " (read-only)" if read_only else "")

    def _unbind_block(self, frontend: str, backend: str, port: str) -> None:
        dev = self.block_mounts.get(frontend, {}).pop((backend, port), None)
        init = self.init_of(frontend)
        if dev is None or init is None:
            return
        target = os.path.join(self.qube_dir(frontend), "mnt", "dev", dev)
        why = self._crossmount("detach", str(init), target)
        if why:
            LOG.error("roots: /dev/%s of %s stays: %s", dev, frontend, why)

    @staticmethod
    def _crossmount(*args: str) -> str:
        """Run :mod:`rehearsal.crossmount` (it enters mount namespaces, which this threaded process cannot): why it failed, or ""."""
        try:
            result = subprocess.run([sys.executable, "-I", CROSSMOUNT, *args], capture_output=True, text=True,
                                    timeout=30, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        return "" if result.returncode == 0 else (result.stderr.strip() or f"exit status {result.returncode}")

    def user_entry(self, name: str, user: str) -> tuple[int, int, str, str] | None:
        """(uid, gid, home, shell) of a user in a running qube's /etc/passwd."""
        init = self.init_of(name)
        try:
            with open(f"/proc/{init}/root/etc/passwd", encoding="utf-8") as handle:
                for line in handle:
                    fields = line.rstrip("\n").split(":")
                    if len(fields) == 7 and fields[0] == user:
                        return int(fields[2]), int(fields[3]), fields[5] or "/", fields[6] or "/bin/sh"
        except OSError:
            return None
        return None

    def service_path(self, name: str, service: str, arg: str) -> str | None:
        """The file that implements ``service`` (``SERVICE+ARG`` first, as qrexec looks) in the qube."""
        init = self.init_of(name)
        for candidate in ([f"{service}+{arg}"] if arg else []) + [service]:
            inner = f"/etc/qubes-rpc/{candidate}"
            if os.path.isfile(f"/proc/{init}/root{inner}"):
                return inner
        return None

    def forced_user(self, name: str, service: str) -> str | None:
        """``force-user=`` of ``/etc/qubes/rpc-config/SERVICE`` in the qube."""
        init = self.init_of(name)
        try:
            with open(f"/proc/{init}/root/etc/qubes/rpc-config/{service}", encoding="utf-8") as handle:
                for line in handle:
                    key, sep, value = line.strip().partition("=")
                    if sep and key.strip() == "force-user":
                        return value.strip().strip("'\"") or None
        except OSError:
            return None
        return None

    def exec_argv(self, name: str, user: str, argv: list[str], env: dict) -> tuple[list[str], dict]:
        """(argv, env) that run ``argv`` inside the running qube as ``user`` (LookupError: no such user)."""
        init = self.init_of(name)
        entry = self.user_entry(name, user)
        if init is None or entry is None:
            raise LookupError(f"no user {user} in {name}")
        uid, gid, home, shell = entry
        outer = ["nsenter", f"--target={init}", "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd"]
        if uid != 0:
            outer += [f"--setgid={gid}", f"--setuid={uid}"]
        full_env = {"PATH": PATH, "HOME": home, "USER": user, "LOGNAME": user, "SHELL": shell,
                    "LANG": "C.UTF-8", **env}
        wd = home if os.path.isdir(f"/proc/{init}/root{home}") else "/"
        return [*outer, "--", "/usr/bin/env", "-C", wd, *argv], full_env
