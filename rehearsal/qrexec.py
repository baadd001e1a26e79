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
import time

from ansible_collections.corral.qubes.plugins.module_utils import policy, wire

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

    def __init__(self, server, store: PolicyStore, socket_path: str, roots=None, log=None):
        self.server = server
        self.roots = roots
        """The :class:`rehearsal.roots.Roots` that runs the qubes (None: services into qubes do not exist)."""
        self.log = log or observe.CallLog(None)
        """One line per call (source, target, service, decision, exit status; never a byte of the payload)."""
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
            try:
                header = await reader.readuntil(b"\0")
            except asyncio.LimitOverrunError:
                header = b""
            except asyncio.IncompleteReadError as exc:
                header = exc.partial
            await self._answer(header, reader, writer)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _read_stdin(reader: asyncio.StreamReader) -> bytes:
        """All of a call's stdin, for the services the rehearsal answers itself (ValueError: too long)."""
        data = bytearray()
        while True:
            chunk = await reader.read(qrexec_proto.CHUNK)
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > qrexec_proto.MAX_REQUEST:
                raise ValueError("request too long")

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: int, stdout: bytes = b"", stderr: bytes = b"") -> int:
        for kind, data in ((qrexec_proto.STDERR, stderr), (qrexec_proto.STDOUT, stdout)):
            for pos in range(0, len(data), qrexec_proto.CHUNK):
                writer.write(qrexec_proto.frame(kind, data[pos:pos + qrexec_proto.CHUNK]))
        writer.write(qrexec_proto.exit_frame(status))
        return status

    def _log(self, **entry) -> None:
        self.log.write({"t": round(time.time(), 6), "kind": "qrexec", **entry})

    async def _answer(self, header: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not header.endswith(b"\0") or len(header) > qrexec_proto.MAX_HEADER:
                raise ValueError("no NUL after the header" if len(header) <= qrexec_proto.MAX_HEADER
                                 else "header too long")
            source, target, service_arg, options = qrexec_proto.parse_header(header[:-1])
        except (ValueError, UnicodeDecodeError) as exc:
            self._reply(writer, qrexec_proto.REFUSED, stderr=f"qrexec: {exc}\n".encode())
            return
        service, _plus, arg = service_arg.partition("+")
        entry = {"source": source, "target": target, "service": service, "arg": arg}
        if source in DOM0_NAMES:
            source, final = "dom0", ("dom0" if target in DOM0_NAMES else target)
            entry["decision"] = "dom0"
        else:
            decision = self._decide(source, target, service, arg)
            entry["decision"] = "allow" if decision.allowed else "deny"
            if not decision.allowed or options:
                self._log(**entry, status=qrexec_proto.REFUSED)
                self._reply(writer, qrexec_proto.REFUSED, stderr=b"Request refused\n")
                return
            final = decision.target
        entry["final"] = final
        if final == "dom0" or service in ("qubes.ClipboardCopy", "qubes.ClipboardPaste") and entry["source"] == "dom0":
            try:
                payload = await self._read_stdin(reader)
            except ValueError as exc:
                self._log(**entry, status=qrexec_proto.REFUSED)
                self._reply(writer, qrexec_proto.REFUSED, stderr=f"qrexec: {exc}\n".encode())
                return
            if service.startswith("admin.") and final == "dom0":
                self._log(**entry, status=0)
                await self._relay_to_qubesd(service_arg, source, target, payload, writer)
                return
            status, stdout, stderr = self._local_service(service, arg, source, final, payload)
            self._log(**entry, status=status)
            self._reply(writer, status, stdout, stderr)
            return
        await self._into_qube(source, final, service, arg, options, reader, writer, entry)

    async def _into_qube(self, source: str, name: str, service: str, arg: str, options: dict,
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter, entry: dict) -> int:
        """A service (or, from dom0, a command) run inside a qube's root; its exit status."""
        qube = self.dom0.state.domains.get(name)
        label = "qrexec-client" if source == "dom0" else "qrexec"
        if qube is None or qube.klass == "AdminVM":
            return self._finish(writer, entry, qrexec_proto.CLIENT_ERROR if source == "dom0" else qrexec_proto.REFUSED,
                                stderr=f"{label}: no such domain: {name}\n".encode())
        if not qube.is_running:
            if source == "dom0":
                return self._finish(writer, entry, qrexec_proto.CLIENT_ERROR,
                                    stderr=f"qrexec-client: domain {name} is not running\n".encode())
            try:
                entry["started"] = True
                await self.dom0.start(qube)
                self.dom0.save()
            except wire.QubesException as exc:
                return self._finish(writer, entry, qrexec_proto.REFUSED,
                                    stderr=f"qrexec: cannot start {name}: {exc}\n".encode())
        while qube.power_state in ("Paused", "Suspended"):
            await asyncio.sleep(0.05)  # its agent answers once it runs again, as a paused qube's does
        if self.roots is None or self.roots.init_of(name) is None:
            return self._finish(writer, entry, qrexec_proto.NOT_FOUND, stderr=(
                f"{service}: no such service in {name} (the rehearsal runs no root for it: --roots off)\n").encode())
        if service == qrexec_proto.COMMAND_SERVICE and source == "dom0" and "command" in options:
            try:
                command = bytes.fromhex(options["command"]).decode("utf-8")
            except ValueError:
                return self._finish(writer, entry, qrexec_proto.REFUSED, stderr=b"qrexec: malformed command\n")
            argv, forced = ["/bin/sh", "-c", command], None
        else:
            path = self.roots.service_path(name, service, arg)
            if path is None:
                return self._finish(writer, entry, qrexec_proto.NOT_FOUND,
                                    stderr=f"{service}: no such service in {name}\n".encode())
            argv, forced = [path, *([arg] if arg else [])], self.roots.forced_user(name, service)
        user = options.get("user", "DEFAULT")
        if user == "DEFAULT":
            user = self.dom0.value(qube, "default_user", "user") or "user"
        user = forced or user
        env = {"QREXEC_REMOTE_DOMAIN": options.get("remote", source), "QREXEC_SERVICE_FULL_NAME":
               f"{service}+{arg}" if arg else service}
        if arg:
            env["QREXEC_SERVICE_ARGUMENT"] = arg
        entry["user"] = user
        try:
            full_argv, full_env = self.roots.exec_argv(name, user, argv, env)
        except LookupError as exc:
            return self._finish(writer, entry, qrexec_proto.REFUSED, stderr=f"qrexec: {exc}\n".encode())
        return await self._pump(full_argv, full_env, reader, writer,
                                lambda status: self._log(**entry, status=status))

    def _finish(self, writer: asyncio.StreamWriter, entry: dict, status: int, stderr: bytes = b"") -> int:
        """A call into a qube that ends without running a service: logged, then answered."""
        self._log(**entry, status=status)
        return self._reply(writer, status, stderr=stderr)

    @staticmethod
    async def _pump(argv: list[str], env: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    logged) -> int:
        """Run a process; stream the client's stdin into it and its stdout and stderr back; its exit status.

        ``logged(status)`` writes the call's log line before the exit status goes out, so a client that has
        its answer finds its call in the log."""
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                    start_new_session=True)

        async def feed() -> None:
            try:
                while True:
                    chunk = await reader.read(qrexec_proto.CHUNK)
                    if not chunk:
                        break
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
            except (ConnectionError, BrokenPipeError):
                pass
            finally:
                try:
                    proc.stdin.close()
                except (ConnectionError, BrokenPipeError):
                    pass

        async def send(stream: asyncio.StreamReader, kind: bytes) -> None:
            while True:
                chunk = await stream.read(qrexec_proto.CHUNK)
                if not chunk:
                    return
                writer.write(qrexec_proto.frame(kind, chunk))
                await writer.drain()

        feeder = asyncio.ensure_future(feed())
        try:
            await asyncio.gather(send(proc.stdout, qrexec_proto.STDOUT), send(proc.stderr, qrexec_proto.STDERR))
            status = await proc.wait()
        except BaseException:
            # the client went away or the rehearsal stops: end the service and what it started
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise
        finally:
            feeder.cancel()
        status = 128 - status if status < 0 else status
        logged(status)
        writer.write(qrexec_proto.exit_frame(status))
        return status

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
            while True:
                chunk = await q_reader.read(qrexec_proto.CHUNK)
                if not chunk:
                    break
                writer.write(qrexec_proto.frame(qrexec_proto.STDOUT, chunk))
                await writer.drain()
            writer.write(qrexec_proto.exit_frame(0))
        except ConnectionError:
            pass
        finally:
            q_writer.close()


def _kill_self() -> None:
    """The ``crash`` fault: die as abruptly as a power cut would stop qubes-policy-admin."""
    os.kill(os.getpid(), signal.SIGKILL)
