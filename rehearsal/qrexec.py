# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal's qrexec: calls between qubes under the qrexec policy, and the clipboard.

:class:`QrexecServer` listens on a second Unix socket (framing in
:mod:`rehearsal.qrexec_proto`).  A call from a qube is evaluated against
the policy directory of :class:`~rehearsal.policy_admin.PolicyStore`; a
call from dom0 bypasses the policy, as in Qubes.  What an allowed call
reaches:

* ``admin.*`` (allowed to dom0): qubesd's socket, with the qube as source
  and the target the qube asked for, exactly as qrexec hands it over;
* ``policy.*`` (to dom0): the policy admin service;
* from dom0, ``qubes.ClipboardCopy`` / ``qubes.ClipboardPaste`` to a qube:
  the GUI daemon's global clipboard (see :class:`Clipboard`);
* anything else: the service does not exist in the rehearsal (exit 127).

:func:`admin_policy` gives :attr:`Dom0.admin_policy` the real evaluation, so
``admin.vm.List`` and ``admin.Events`` called by a qube are filtered by the
policy ("ask" counts as deny there).
"""

from __future__ import annotations

import asyncio
import os
import signal

from ansible_collections.corral.qubes.plugins.module_utils import policy

from rehearsal import observe, qrexec_proto
from rehearsal.dom0 import Dom0
from rehearsal.policy_admin import PolicyStore

DOM0_NAMES = ("dom0", "@adminvm")


def system_info(dom0: Dom0) -> dict[str, policy.QubeInfo]:
    """What the policy evaluator needs to know about every qube."""
    info = {}
    for qube in dom0.state.domains.values():
        info[qube.name] = policy.QubeInfo(
            name=qube.name, klass=qube.klass, tags=frozenset(qube.tags), uuid=qube.uuid,
            default_dispvm=dom0.value(qube, "default_dispvm", missing=None),
            template_for_dispvms=bool(dom0.value(qube, "template_for_dispvms", missing=False)),
            template=qube.props.get("template") if qube.klass == "DispVM" else None)
    return info


def admin_policy(dom0: Dom0, store: PolicyStore):
    """``Dom0.admin_policy``: does the policy *allow* (not ask) ``source`` to call ``service`` on ``target``?"""
    def allows(source: str, service: str, arg: str, target: str) -> bool:
        return store.evaluate(service, arg, source, target, system_info(dom0)).allowed
    return allows


class Clipboard:
    """The GUI daemon's global clipboard: one buffer and the qube it was copied from."""

    def __init__(self, dom0: Dom0, store: PolicyStore):
        self.dom0 = dom0
        self.store = store
        self.source: str | None = None
        self.data = b""

    def copy(self, qube: str, data: bytes) -> tuple[int, bytes, bytes]:
        """The user copies ``qube``'s clipboard (``data``) into the global one."""
        if qube not in self.dom0.state.domains:
            return 1, b"", f"No such qube: {qube}\n".encode()
        self.source, self.data = qube, data
        return 0, b"", b""

    def paste(self, qube: str) -> tuple[int, bytes, bytes]:
        """The user pastes into ``qube``: allowed unless ``qubes.ClipboardPaste`` denies it."""
        if qube not in self.dom0.state.domains or qube == "dom0":
            return 1, b"", f"No such qube: {qube}\n".encode()
        if self.source is None:
            return 1, b"", b"The clipboard is empty\n"
        decision = self.store.evaluate("qubes.ClipboardPaste", "", self.source, qube, system_info(self.dom0),
                                       assume_yes_for_ask=True)
        if not decision.allowed:
            return 1, b"", f"Pasting from {self.source} to {qube} is denied by policies\n".encode()
        data, self.source, self.data = self.data, None, b""
        return 0, data, b""


class QrexecServer:
    """The qrexec socket of one rehearsal dom0 (a companion of its RehearsalServer)."""

    def __init__(self, server, store: PolicyStore, socket_path: str):
        self.server = server
        self.dom0: Dom0 = server.dom0
        self.store = store
        self.socket_path = socket_path
        self.clipboard = Clipboard(self.dom0, store)
        self._server = None
        self._tasks: set = set()
        """Running connections.  The event loop keeps only weak references to tasks, and a relay
        waiting on qubesd is otherwise reachable from nothing once its client has sent EOF."""

    async def start(self) -> None:
        """Listen (mode 0660, like the qubesd socket)."""
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        old_umask = os.umask(0o007)
        try:
            self._server = await asyncio.start_unix_server(self._connection, path=self.socket_path)
        finally:
            os.umask(old_umask)

    async def stop(self) -> None:
        """Stop listening and end running connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            data = await reader.read(qrexec_proto.MAX_REQUEST + 1)
            while len(data) <= qrexec_proto.MAX_REQUEST:
                chunk = await reader.read(qrexec_proto.MAX_REQUEST + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            await self._answer(data, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _answer(self, data: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            if len(data) > qrexec_proto.MAX_REQUEST:
                raise ValueError("request too long")
            source, target, service_arg, payload = qrexec_proto.parse_request(data)
        except (ValueError, UnicodeDecodeError) as exc:
            writer.write(qrexec_proto.reply_header(qrexec_proto.REFUSED, f"qrexec: {exc}\n".encode()))
            return
        service, _plus, arg = service_arg.partition("+")
        if source in DOM0_NAMES:
            source, final = "dom0", ("dom0" if target in DOM0_NAMES else target)
        else:
            decision = self._decide(source, target, service, arg)
            if not decision.allowed:
                writer.write(qrexec_proto.reply_header(qrexec_proto.REFUSED, b"Request refused\n"))
                return
            final = decision.target
        if service.startswith("admin.") and final == "dom0":
            await self._relay_to_qubesd(service_arg, source, target, payload, writer)
            return
        status, stdout, stderr = self._local_service(service, arg, source, final, payload)
        writer.write(qrexec_proto.reply_header(status, stderr) + stdout)
        await writer.drain()

    def _decide(self, source: str, target: str, service: str, arg: str) -> policy.Decision:
        if source not in self.dom0.state.domains:
            return policy.Decision("deny", reason=f"no such source qube: {source}")
        return self.store.evaluate(service, arg, source, target, system_info(self.dom0))

    def _local_service(self, service: str, arg: str, source: str, final: str,
                       payload: bytes) -> tuple[int, bytes, bytes]:
        """Services the rehearsal itself runs: (status, stdout, stderr)."""
        if service.startswith("policy.") and final == "dom0":
            status, stdout = self._policy_call(service, arg, payload)
            return status, stdout, b""
        if source == "dom0" and service == "qubes.ClipboardCopy":
            return self.clipboard.copy(final, payload)
        if source == "dom0" and service == "qubes.ClipboardPaste":
            return self.clipboard.paste(final)
        return qrexec_proto.NOT_FOUND, b"", f"{service}: no such service in {final}\n".encode()

    def _policy_call(self, service: str, arg: str, payload: bytes) -> tuple[int, bytes]:
        fault, _latency = self.server.faults.next_call(service)
        if fault == "fail":
            return 2, b"Injected fault (rehearsal dom0)\n"
        if fault == "garble":
            return 0, observe.GARBLED_PAYLOAD
        self.store.before_commit = _kill_self if fault == "crash" else None
        try:
            return self.store.handle(service, arg, payload)
        finally:
            self.store.before_commit = None

    async def _relay_to_qubesd(self, service_arg: str, source: str, target: str, payload: bytes,
                               writer: asyncio.StreamWriter) -> None:
        """Hand the call to qubesd's socket as qrexec does, and stream its reply back."""
        method_arg = service_arg if "+" in service_arg else service_arg + "+"
        dest = "keyword adminvm" if target == "@adminvm" else f"name {target}"
        q_reader, q_writer = await asyncio.open_unix_connection(self.server.socket_path)
        try:
            q_writer.write(f"{method_arg} {source} {dest}".encode("ascii") + b"\0" + payload)
            q_writer.write_eof()
            writer.write(qrexec_proto.reply_header(0))
            while True:
                chunk = await q_reader.read(65536)
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            q_writer.close()


def _kill_self() -> None:
    """The ``crash`` fault: die as abruptly as a power cut would stop qubes-policy-admin."""
    os.kill(os.getpid(), signal.SIGKILL)
