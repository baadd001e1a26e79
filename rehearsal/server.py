# SPDX-License-Identifier: GPL-3.0-or-later
"""The Unix-socket server: qubesd's framing, one request per connection.

The server reads until the client half-closes (aborting at once when the
request grows past 65536 bytes), answers OK / EXCEPTION or aborts with no
bytes exactly where qubesd would, and never dies on what a client sends.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import traceback

from ansible_collections.corral.qubes.plugins.module_utils import wire

from rehearsal import observe, registry
from rehearsal.dom0 import Dom0


class _Connection(asyncio.Protocol):
    def __init__(self, server: RehearsalServer):
        self.server = server
        self.transport = None
        self.buffer = bytearray()
        self.finished = False
        self.closed = asyncio.get_running_loop().create_future()
        self.listener = None

    def connection_made(self, transport):
        self.transport = transport
        self.server.connections.add(self)

    def data_received(self, data):
        if self.finished:
            return
        self.buffer += data
        if len(self.buffer) > wire.MAX_REQUEST_SIZE:
            self.finished = True
            self.server.log_unparsed(len(self.buffer), "request too long")
            self.transport.abort()

    def eof_received(self):
        if self.finished:
            return False
        self.finished = True
        self.server.track(asyncio.ensure_future(self.server.respond(bytes(self.buffer), self)))
        return True

    def connection_lost(self, exc):
        self.server.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.listener is not None and self.listener in self.server.dom0.listeners:
            self.server.dom0.listeners.remove(self.listener)

    def reply(self, data: bytes | None) -> None:
        if self.transport.is_closing():
            return
        if data is None:
            self.transport.abort()
        else:
            self.transport.write(data)
            self.transport.close()


class RehearsalServer:
    """Serves one :class:`Dom0` on a Unix socket."""

    def __init__(self, dom0: Dom0, socket_path: str, call_log: observe.CallLog | None = None,
                 faults: observe.Faults | None = None, debug: bool = False, network=None):
        self.dom0 = dom0
        self.network = network
        """A :class:`rehearsal.network.Network` that realises the qubes, or None."""
        self.socket_path = socket_path
        self.call_log = call_log or observe.CallLog(None)
        self.faults = faults or observe.Faults()
        self.debug = debug
        self._server = None
        self._tasks: set = set()
        self.connections: set = set()
        """The open connections: requests being read or answered, and event streams."""
        self.companions: list = []
        """Other listeners started after this one and stopped before it (e.g. the qrexec socket)."""

    def track(self, task) -> None:
        """Keep a reference to a running request task."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Realise the network (if asked), then listen on the socket (mode 0660, as qubesd's)."""
        if self.network is not None:
            await self.network.start()
        directory = os.path.dirname(os.path.abspath(self.socket_path))
        os.makedirs(directory, exist_ok=True)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        loop = asyncio.get_running_loop()
        old_umask = os.umask(0o007)
        try:
            self._server = await loop.create_unix_server(lambda: _Connection(self), path=self.socket_path)
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o660)  # root:qubes rw, as qubesd's socket
        for companion in self.companions:
            await companion.start()

    async def stop(self) -> None:
        """Stop the companions, stop listening, finish running requests, remove the network's namespaces, save."""
        for companion in reversed(self.companions):
            await companion.stop()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # What is still open has no request running: event streams, whose subscriber may have gone already (after
        # its request's EOF nothing is read, so its close is not seen) and clients that never finished a request.
        # qubesd drops them when it stops; since Python 3.12 wait_closed waits for every connection.
        for conn in list(self.connections):
            conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        if self.network is not None:
            await self.network.stop()
        self.dom0.save()
        self.call_log.close()

    def log_unparsed(self, size: int, reason: str) -> None:
        """Log a request that never got as far as a method."""
        self.call_log.write({"t": round(time.time(), 6), "method": None, "result": "empty",
                             "reason": reason, "request_bytes": size, "mutating": False})

    async def respond(self, data: bytes, conn: _Connection) -> None:
        """Answer one complete request."""
        started = time.monotonic()
        try:
            request = wire.parse_request(data)
        except wire.FramingError as exc:
            self.log_unparsed(len(data), f"framing: {exc}")
            conn.reply(None)
            return
        meth = registry.find_method(self.dom0, request.method)
        mutating = bool(meth and meth.write)
        fault, latency = self.faults.next_call(request.method)
        if latency:
            await asyncio.sleep(latency)
        if fault == "drop":
            self.call_log.write(observe.log_entry(request, "empty", started, mutating=mutating, fault=fault))
            conn.reply(None)
            return
        if fault == "fail":
            err = observe.INJECTED_FAULT
            self.call_log.write(observe.log_entry(request, "exception", started, mutating=mutating,
                                                  exc_class=err.exc_class, fault=fault))
            conn.reply(wire.encode_error(err))
            return
        if fault == "garble":
            self.call_log.write(observe.log_entry(request, "ok", started, mutating=mutating, fault=fault))
            conn.reply(wire.encode_ok(observe.GARBLED_PAYLOAD))
            return
        reason = None
        try:
            if request.method.startswith("admin.vm."):
                # power states from the backend that runs the qubes for real (Xen), if there is one
                self.dom0.observe_power()
            reply = await self._dispatch(request, meth, conn)
            if reply is _STREAMING:
                return
            result, exc_class = "ok", None
            if mutating:
                self.dom0.save()
        except wire.QubesException as exc:
            reply, result, exc_class = wire.encode_error(exc), "exception", exc.exc_class
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # qubesd aborts the connection on protocol errors, refused permissions and
            # any error that is not a QubesException.
            reply, result, exc_class = None, "empty", None
            reason = f"{type(exc).__name__}: {exc}"
            if self.debug:
                traceback.print_exc()
        entry = observe.log_entry(request, result, started, mutating=mutating, exc_class=exc_class)
        if reason:
            entry["reason"] = reason
        self.call_log.write(entry)
        conn.reply(reply)

    async def _dispatch(self, request: wire.Request, meth, conn: _Connection):
        src = self.dom0.resolve(request.source)
        dest = self.dom0.resolve(request.dest)
        if meth is None:
            raise registry.ProtocolError(f"no such method: {request.method!r}")
        call = registry.Call(self.dom0, request, src, dest)
        registry.check_request(call, meth)
        if meth.stream:
            self._stream_events(call, conn)
            return _STREAMING
        result = meth.func(call)
        if inspect.isawaitable(result):
            result = await result
        return wire.encode_ok(result if result is not None else b"")

    def _stream_events(self, call: registry.Call, conn: _Connection) -> None:
        dom0 = self.dom0
        only = None if call.dest.name == "dom0" else call.dest.name
        from_qube = call.src.klass != "AdminVM"

        def listener(subject: str, event: str, kwargs: dict) -> None:
            if event.startswith(registry.EVENTS_FILTERED) or conn.transport.is_closing():
                return
            if only is not None and subject != only:
                return
            if from_qube and not registry.admin_policy_allows(
                    dom0, call.src, "admin.Events", event.replace(":", "_"), subject or "@adminvm"):
                return
            conn.transport.write(wire.encode_event(subject, event, kwargs))

        conn.listener = listener
        dom0.listeners.append(listener)
        conn.transport.write(wire.encode_event("", "connection-established"))
        self.call_log.write(observe.log_entry(call.request, "stream", time.monotonic(), mutating=False))


_STREAMING = object()
