# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Qubes Admin API client: two transports and typed calls.

* :class:`SocketTransport` talks to qubesd's socket in dom0
  (``$QUBESD_SOCKET``, default ``/var/run/qubesd.sock``);
* :class:`QrexecTransport` runs ``qrexec-client-vm`` from a management qube
  (or, made with :meth:`QrexecTransport.for_dom0`, ``qrexec-client`` in dom0
  for qrexec services that are not qubesd's, such as the policy admin API).

:class:`AdminClient` frames requests with :mod:`wire`, parses replies with
:mod:`formats`, and raises the typed errors of :mod:`wire`.  It counts its
calls so callers (and benchmarks) can see what a run cost.  No Ansible
imports: modules, tests and tools share it.
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import subprocess
import time

from ansible_collections.corral.qubes.plugins.module_utils import formats, wire

DEFAULT_SOCKET = "/var/run/qubesd.sock"
DEFAULT_QREXEC_CLIENT = "qrexec-client-vm"
DEFAULT_DOM0_QREXEC_CLIENT = "qrexec-client"
QUBES_RELEASE_FILE = "/etc/qubes-release"


class SocketTransport:
    """One Unix-socket connection per call, as qubesd expects."""

    def __init__(self, path: str | None = None, timeout: float | None = None):
        self.path = path or os.environ.get("QUBESD_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SocketTransport({self.path!r})"

    def exchange(self, request: wire.Request) -> bytes:
        """Send one request, half-close, and read the whole reply."""
        try:
            return self.exchange_bytes(request.encode())
        except socket.timeout as exc:
            raise wire.QubesDaemonCommunicationError(
                f"qubesd did not answer {request.method} within {self.timeout} s") from exc

    def exchange_bytes(self, data: bytes) -> bytes:
        """Send raw request bytes, half-close, and return every byte of the reply (b"" if aborted)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError as exc:
                raise wire.QubesDaemonCommunicationError(
                    f"Failed to connect to qubesd service at {self.path}: {exc.strerror or exc}") from exc
            chunks = []
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except (ConnectionResetError, BrokenPipeError):
                # qubesd aborts the connection on access denied / protocol
                # errors; what arrived before the reset is the reply.
                pass
            return b"".join(chunks)
        finally:
            sock.close()


class QrexecTransport:
    """Calls from a management qube: ``qrexec-client-vm <dest> <method>[+<arg>]``.

    The payload goes on stdin and the raw reply (same framing) comes on
    stdout; a non-zero exit status means the qrexec policy refused the call.
    """

    def __init__(self, executable: str | None = None, timeout: float | None = None):
        self.executable = executable or os.environ.get("QREXEC_CLIENT_VM") or DEFAULT_QREXEC_CLIENT
        self.timeout = timeout
        self.local = False

    @classmethod
    def for_dom0(cls, executable: str | None = None, timeout: float | None = None) -> QrexecTransport:
        """Calls from dom0 itself: ``qrexec-client -d <dest> "DEFAULT:QUBESRPC <method>[+<arg>] dom0"``.

        The executable is ``executable``, ``$QREXEC_CLIENT`` or ``qrexec-client``.
        """
        transport = cls(executable or os.environ.get("QREXEC_CLIENT") or DEFAULT_DOM0_QREXEC_CLIENT, timeout)
        transport.local = True
        return transport

    def __repr__(self) -> str:
        return f"QrexecTransport({self.executable!r}{', dom0' if self.local else ''})"

    def argv(self, dest: str, call_name: str) -> list[str]:
        """The command line of one call."""
        if self.local:
            return [self.executable, "-d", dest, f"DEFAULT:QUBESRPC {call_name} dom0"]
        return [self.executable, dest, call_name]

    def run(self, dest: str, call_name: str, payload: bytes = b"") -> subprocess.CompletedProcess:
        """Run one qrexec call; the finished process (exit status, stdout, stderr)."""
        try:
            return subprocess.run(  # noqa: S603 - fixed argv, no shell
                self.argv(dest, call_name), input=payload, capture_output=True, timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            where = "in dom0" if self.local else "from inside a qube"
            raise wire.QubesDaemonCommunicationError(
                f"{self.executable} not found: qrexec calls only work {where}") from exc
        except subprocess.TimeoutExpired as exc:
            raise wire.QubesDaemonCommunicationError(
                f"{call_name} to {dest} did not finish within {self.timeout} s") from exc

    def exchange(self, request: wire.Request) -> bytes:
        """Run one qrexec call and return its stdout."""
        proc = self.run(request.dest, request.call_name, request.payload)
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip()
            raise wire.QubesDaemonAccessError(
                f"Service call error: {request.call_name} to {request.dest} was refused "
                f"({os.path.basename(self.executable)} exit status {proc.returncode})" + (f": {detail}" if detail else ""))
        return proc.stdout


def in_dom0(socket_path: str | None = None) -> bool:
    """Whether calls should be made as dom0: an explicit socket path, ``$QUBESD_SOCKET`` or ``/etc/qubes-release``."""
    return bool(socket_path or os.environ.get("QUBESD_SOCKET") or os.path.exists(QUBES_RELEASE_FILE))


def in_qube(socket_path: str | None = None, qrexec_client: str | None = None) -> bool:
    """Whether calls go through ``qrexec-client-vm``: not in dom0 (see :func:`in_dom0`), and the program is there."""
    return not in_dom0(socket_path) and bool(
        qrexec_client or os.environ.get("QREXEC_CLIENT_VM") or shutil.which(DEFAULT_QREXEC_CLIENT))


def default_transport(socket_path: str | None = None, qrexec_client: str | None = None):
    """The transport a caller in this place should use.

    An explicit socket path, ``$QUBESD_SOCKET`` or a dom0 (``/etc/qubes-release``)
    select the socket; otherwise, inside a qube, qrexec; otherwise the socket.
    """
    if in_qube(socket_path, qrexec_client):
        return QrexecTransport(qrexec_client)
    return SocketTransport(socket_path)


def encode_value(value) -> bytes:
    """Encode a property/feature value the way qubesadmin does (None -> empty)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    return str(value).encode("utf-8")


class AdminClient:
    """Typed Admin API calls over a transport.

    Every call goes through :meth:`call_bytes`, which records the method in
    ``self.calls`` (a Counter) and the time spent in ``self.seconds``.
    """

    def __init__(self, transport=None):
        self.transport = transport if transport is not None else default_transport()
        self.calls: collections.Counter = collections.Counter()
        self.seconds = 0.0

    def __repr__(self) -> str:
        return f"AdminClient({self.transport!r})"

    @property
    def qubesd_calls(self) -> int:
        """How many calls reached qubesd (without the replies a transport had from the run's shared reads)."""
        return sum(getattr(self.transport, "sent", self.calls).values())

    # -- raw calls -----------------------------------------------------------

    def call_bytes(self, method: str, dest: str = "dom0", arg: str = "", payload: bytes | str = b"") -> bytes:
        """One call; the OK content as bytes, or a typed error."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        request = wire.Request(method=method, arg=arg or "", dest=dest, payload=payload)
        started = time.monotonic()
        try:
            reply = self.transport.exchange(request)
        finally:
            self.calls[method] += 1
            self.seconds += time.monotonic() - started
        return wire.parse_reply(reply)

    def call(self, method: str, dest: str = "dom0", arg: str = "", payload: bytes | str = b"") -> str:
        """One call; the OK content as text."""
        return self.call_bytes(method, dest, arg, payload).decode("utf-8")

    # -- qubes ----------------------------------------------------------------

    def vm_classes(self) -> list[str]:
        """``admin.vmclass.List``."""
        return formats.parse_lines(self.call("admin.vmclass.List"))

    def list_vms(self, vm: str | None = None) -> dict[str, formats.VmListEntry]:
        """``admin.vm.List``: every qube, or only ``vm``."""
        return formats.parse_vm_list(self.call("admin.vm.List", vm or "dom0"))

    def current_state(self, vm: str) -> dict:
        """``admin.vm.CurrentState``."""
        return formats.parse_current_state(self.call("admin.vm.CurrentState", vm))

    def create(self, klass: str, name: str, label: str, template: str | None = None,
               pool: str | None = None, pools: dict[str, str] | None = None) -> None:
        """``admin.vm.Create.<klass>`` or, with a pool, ``admin.vm.CreateInPool.<klass>``."""
        payload = f"name={name} label={label}"
        method = f"admin.vm.Create.{klass}"
        if pool or pools:
            method = f"admin.vm.CreateInPool.{klass}"
            if pool:
                payload += f" pool={pool}"
            for volume, volume_pool in sorted((pools or {}).items()):
                payload += f" pool:{volume}={volume_pool}"
        self.call(method, "dom0", template or "", payload)

    def create_disposable(self, template: str | None = None) -> str:
        """``admin.vm.CreateDisposable``; the new qube's name."""
        return self.call("admin.vm.CreateDisposable", template or "dom0")

    def remove(self, vm: str) -> None:
        """``admin.vm.Remove``."""
        self.call("admin.vm.Remove", vm)

    def start(self, vm: str) -> None:
        """``admin.vm.Start`` (a no-op for a qube that is not halted)."""
        self.call("admin.vm.Start", vm)

    def shutdown(self, vm: str, force: bool = False, wait: bool = False) -> None:
        """``admin.vm.Shutdown`` with ``force`` / ``wait``."""
        arg = "+".join(word for word, on in (("force", force), ("wait", wait)) if on)
        self.call("admin.vm.Shutdown", vm, arg)

    def kill(self, vm: str) -> None:
        """``admin.vm.Kill``."""
        self.call("admin.vm.Kill", vm)

    def pause(self, vm: str) -> None:
        """``admin.vm.Pause``."""
        self.call("admin.vm.Pause", vm)

    def unpause(self, vm: str) -> None:
        """``admin.vm.Unpause``."""
        self.call("admin.vm.Unpause", vm)

    # -- properties (vm=None: global qubes-prefs) -----------------------------

    @staticmethod
    def _prop_call(vm: str | None, verb: str) -> tuple[str, str]:
        if vm is None:
            return f"admin.property.{verb}", "dom0"
        return f"admin.vm.property.{verb}", vm

    def property_list(self, vm: str | None = None) -> list[str]:
        """``property.List``."""
        method, dest = self._prop_call(vm, "List")
        return formats.parse_lines(self.call(method, dest))

    def property_get(self, vm: str | None, name: str) -> formats.PropertyValue:
        """``property.Get``."""
        method, dest = self._prop_call(vm, "Get")
        return formats.parse_property(self.call(method, dest, name))

    def property_get_all(self, vm: str | None = None) -> dict[str, formats.PropertyValue]:
        """``property.GetAll``: every property in one call."""
        method, dest = self._prop_call(vm, "GetAll")
        return formats.parse_property_list_all(self.call(method, dest))

    def property_get_default(self, vm: str | None, name: str) -> formats.PropertyValue | None:
        """``property.GetDefault``; None when the property has no default."""
        method, dest = self._prop_call(vm, "GetDefault")
        return formats.parse_property_default(self.call(method, dest, name))

    def property_set(self, vm: str | None, name: str, value) -> None:
        """``property.Set`` (None sends an empty value: no qube for vm-type properties)."""
        method, dest = self._prop_call(vm, "Set")
        self.call(method, dest, name, encode_value(value))

    def property_reset(self, vm: str | None, name: str) -> None:
        """``property.Reset``: back to the default."""
        method, dest = self._prop_call(vm, "Reset")
        self.call(method, dest, name)

    def property_help(self, vm: str | None, name: str) -> str:
        """``property.Help``."""
        method, dest = self._prop_call(vm, "Help")
        return self.call(method, dest, name)

    # -- features and tags ------------------------------------------------------

    def feature_list(self, vm: str) -> list[str]:
        """``admin.vm.feature.List``."""
        return formats.parse_lines(self.call("admin.vm.feature.List", vm))

    def feature_get(self, vm: str, name: str) -> str | None:
        """``admin.vm.feature.Get``; None when the feature is not set."""
        try:
            return self.call("admin.vm.feature.Get", vm, name)
        except wire.QubesFeatureNotFoundError:
            return None

    def feature_check(self, vm: str, name: str, via: str = "Template") -> str | None:
        """``admin.vm.feature.CheckWith<via>``; None when no qube in the chain sets it."""
        try:
            return self.call(f"admin.vm.feature.CheckWith{via}", vm, name)
        except wire.QubesFeatureNotFoundError:
            return None

    def feature_set(self, vm: str, name: str, value) -> None:
        """``admin.vm.feature.Set`` (True -> "1", False/None -> "" as qubesadmin does)."""
        if isinstance(value, bool) or value is None:
            value = "1" if value else ""
        self.call("admin.vm.feature.Set", vm, name, str(value))

    def feature_remove(self, vm: str, name: str) -> None:
        """``admin.vm.feature.Remove``."""
        self.call("admin.vm.feature.Remove", vm, name)

    def tag_list(self, vm: str) -> list[str]:
        """``admin.vm.tag.List``."""
        return formats.parse_lines(self.call("admin.vm.tag.List", vm))

    def tag_get(self, vm: str, tag: str) -> bool:
        """``admin.vm.tag.Get``."""
        return self.call("admin.vm.tag.Get", vm, tag) == "1"

    def tag_set(self, vm: str, tag: str) -> None:
        """``admin.vm.tag.Set`` (idempotent)."""
        self.call("admin.vm.tag.Set", vm, tag)

    def tag_remove(self, vm: str, tag: str) -> None:
        """``admin.vm.tag.Remove``."""
        self.call("admin.vm.tag.Remove", vm, tag)

    # -- firewall -----------------------------------------------------------------

    def firewall_get(self, vm: str) -> list[str]:
        """``admin.vm.firewall.Get``: the rule lines."""
        return formats.parse_lines(self.call("admin.vm.firewall.Get", vm))

    def firewall_set(self, vm: str, lines: list[str]) -> None:
        """``admin.vm.firewall.Set``: replace all rules."""
        self.call("admin.vm.firewall.Set", vm, "", formats.render_lines(lines))

    def firewall_reload(self, vm: str) -> None:
        """``admin.vm.firewall.Reload``."""
        self.call("admin.vm.firewall.Reload", vm)

    # -- volumes, labels, pools ---------------------------------------------------------

    def volume_list(self, vm: str) -> list[str]:
        """``admin.vm.volume.List``."""
        return formats.parse_lines(self.call("admin.vm.volume.List", vm))

    def volume_info(self, vm: str, volume: str) -> dict:
        """``admin.vm.volume.Info`` with typed values."""
        return formats.parse_volume_info(self.call("admin.vm.volume.Info", vm, volume))

    def volume_resize(self, vm: str, volume: str, size: int) -> None:
        """``admin.vm.volume.Resize`` to ``size`` bytes (grow only)."""
        self.call("admin.vm.volume.Resize", vm, volume, str(int(size)))

    def volume_clone_from(self, vm: str, volume: str) -> str:
        """``admin.vm.volume.CloneFrom``: a one-time token naming this volume."""
        return self.call("admin.vm.volume.CloneFrom", vm, volume)

    def volume_clone_to(self, vm: str, volume: str, token: str) -> None:
        """``admin.vm.volume.CloneTo``: replace the volume with the one ``token`` names."""
        self.call("admin.vm.volume.CloneTo", vm, volume, token)

    def volume_list_snapshots(self, vm: str, volume: str) -> list[str]:
        """``admin.vm.volume.ListSnapshots``."""
        return formats.parse_lines(self.call("admin.vm.volume.ListSnapshots", vm, volume))

    def label_list(self) -> list[str]:
        """``admin.label.List``."""
        return formats.parse_lines(self.call("admin.label.List"))

    def label_get(self, label: str) -> str:
        """``admin.label.Get``: the colour (``0xRRGGBB``)."""
        return self.call("admin.label.Get", "dom0", label)

    def label_index(self, label: str) -> int:
        """``admin.label.Index``."""
        return int(self.call("admin.label.Index", "dom0", label))

    def pool_list(self) -> list[str]:
        """``admin.pool.List``."""
        return formats.parse_lines(self.call("admin.pool.List"))

    def pool_info(self, pool: str) -> dict[str, str]:
        """``admin.pool.Info``."""
        return formats.parse_kv_lines(self.call("admin.pool.Info", "dom0", pool))

    # -- devices (R4.3: Assign/Unassign/Assigned/Set.assignment, Attach/Attached/Detach; R4.2: Attach/List/Set.persistent) --

    @staticmethod
    def device_arg(backend: str, port: str, device_id: str | None = None) -> str:
        """``backend+port[+device id]`` as qubesadmin writes it.

        ``:`` becomes ``+``; characters a qrexec argument cannot hold (``*``,
        ``?``) become ``_``, which qubesd reads as "any character".
        """
        text = f"{port}" + (f":{device_id}" if device_id is not None else "")
        safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "+" if ch == ":" else "_"
                       for ch in text)
        return f"{backend}+{safe}"

    def device_available(self, backend: str, devclass: str) -> list[tuple[str, dict]]:
        """``admin.vm.device.<class>.Available``: (head, fields) per device.

        R4.3 lines are ``<port>:<device id> key='value' ...``; R4.2 lines
        ``<port> key=value ... description=<text>`` (fields: ``description``).
        """
        out = []
        for line in formats.parse_lines(self.call(f"admin.vm.device.{devclass}.Available", backend)):
            head, _sep, rest = line.partition(" ")
            if "='" in rest:
                out.append((head, formats.parse_device_properties(rest)))
            else:
                out.append((head, {"description": rest.partition("description=")[2]}))
        return out

    def device_assigned(self, vm: str, devclass: str) -> list[dict]:
        """``admin.vm.device.<class>.Assigned`` (R4.3): the assignments' fields (``_opt`` keys are options)."""
        return self._assignment_lines(f"admin.vm.device.{devclass}.Assigned", vm)

    def _assignment_lines(self, method: str, vm: str) -> list[dict]:
        """R4.3 listing lines ``<backend>+<port>:<device id> key='value' ...``, each as its fields."""
        out = []
        for line in formats.parse_lines(self.call(method, vm)):
            head, _sep, rest = line.partition(" ")
            backend, _sep, ident = head.partition("+")
            port, _sep, device_id = ident.partition(":")
            fields = {"backend_domain": backend, "port_id": port, "device_id": device_id or "*"}
            fields.update(formats.parse_device_properties(rest))
            out.append(fields)
        return out

    def device_attached(self, vm: str, devclass: str) -> list[dict]:
        """``admin.vm.device.<class>.Attached`` (R4.3): what is attached now, fields as :meth:`device_assigned`.

        A manual attachment (``qvm-device attach``) has ``mode`` ``manual``; a device attached because of an
        assignment has the assignment's mode.
        """
        return self._assignment_lines(f"admin.vm.device.{devclass}.Attached", vm)

    def device_attach_now(self, vm: str, devclass: str, backend: str, port: str, device_id: str,
                          options: dict[str, str]) -> None:
        """``admin.vm.device.<class>.Attach`` (R4.3): attach until the qube stops (mode ``manual``)."""
        items = [("device_id", device_id), ("port_id", port), ("devclass", devclass), ("backend_domain", backend),
                 ("mode", "manual"), ("frontend_domain", vm)]
        items += [(f"_{key}", value) for key, value in options.items()]
        self.call(f"admin.vm.device.{devclass}.Attach", vm, self.device_arg(backend, port, device_id),
                  formats.render_device_properties(items))

    def device_assign(self, vm: str, devclass: str, backend: str, port: str, device_id: str, mode: str,
                      options: dict[str, str]) -> None:
        """``admin.vm.device.<class>.Assign`` (R4.3) with the assignment's serialization."""
        items = [("device_id", device_id), ("port_id", port), ("devclass", devclass), ("backend_domain", backend),
                 ("mode", mode), ("frontend_domain", vm)]
        items += [(f"_{key}", value) for key, value in options.items()]
        self.call(f"admin.vm.device.{devclass}.Assign", vm, self.device_arg(backend, port, device_id),
                  formats.render_device_properties(items))

    def device_unassign(self, vm: str, devclass: str, backend: str, port: str, device_id: str) -> None:
        """``admin.vm.device.<class>.Unassign`` (R4.3)."""
        self.call(f"admin.vm.device.{devclass}.Unassign", vm, self.device_arg(backend, port, device_id))

    def device_set_assignment(self, vm: str, devclass: str, backend: str, port: str, device_id: str,
                              mode: str) -> None:
        """``admin.vm.device.<class>.Set.assignment`` (R4.3): a new mode."""
        self.call(f"admin.vm.device.{devclass}.Set.assignment", vm, self.device_arg(backend, port, device_id), mode)

    def device_list(self, vm: str, devclass: str) -> list[dict]:
        """``admin.vm.device.<class>.List`` (R4.2): backend, port, options and ``persistent`` of each line."""
        out = []
        for line in formats.parse_lines(self.call(f"admin.vm.device.{devclass}.List", vm)):
            head, *fields = line.split(" ")
            backend, _sep, port = head.partition("+")
            options = dict(field.split("=", 1) for field in fields if "=" in field)
            persistent = options.pop("persistent", "no") in ("yes", "True")
            out.append({"backend_domain": backend, "port_id": port, "options": options, "persistent": persistent})
        return out

    def device_attach(self, vm: str, devclass: str, backend: str, port: str, options: dict[str, str],
                      persistent: bool) -> None:
        """``admin.vm.device.<class>.Attach`` (R4.2 form: ``k=v`` options, ``persistent=True`` to assign)."""
        payload = " ".join([f"{key}={value}" for key, value in options.items()]
                           + (["persistent=True"] if persistent else []))
        self.call(f"admin.vm.device.{devclass}.Attach", vm, f"{backend}+{port}", payload)

    def device_detach(self, vm: str, devclass: str, backend: str, port: str, device_id: str | None = None) -> None:
        """``admin.vm.device.<class>.Detach``: ``backend+port`` (R4.2 form), or with R4.3's ``device_id``."""
        arg = self.device_arg(backend, port, device_id) if device_id is not None else f"{backend}+{port}"
        self.call(f"admin.vm.device.{devclass}.Detach", vm, arg)

    def device_set_persistent(self, vm: str, devclass: str, backend: str, port: str, persistent: bool) -> None:
        """``admin.vm.device.<class>.Set.persistent`` (R4.2)."""
        self.call(f"admin.vm.device.{devclass}.Set.persistent", vm, f"{backend}+{port}", encode_value(persistent))
