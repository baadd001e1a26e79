# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admin API reads shared by the tasks of one ``ansible-playbook`` run.

Every task reads what it needs from qubesd, so a run of many tasks reads the same properties, features and tags
again and again. When the callback ``corral.qubes.run_reads`` is enabled, it gives each run a private directory
(``$CORRAL_QUBES_RUN_READS``, inherited by the tasks' worker processes); a task's client then records the
replies of its reads there, and a later task of the same run gets such a reply without asking qubesd.

What keeps that honest:

* only reads of settings are shared (:data:`SHARED`); ``CurrentState``, a device's availability or live
  attachments (what changes on its own) always go to qubesd, and the qube list as follows;
* a task's first ``admin.vm.List`` goes to qubesd, and when its reply differs from the one recorded with the
  shared reads (a qube started, stopped, created or removed meanwhile) they are dropped; unless the run *watches*
  that qubesd: the callback holds an ``admin.Events`` stream open and drops the shared reads as soon as an event
  comes (any change: a qube started or created, a property, feature or tag set, by anyone), checking for events
  before each task starts, and a list recorded while it watched is then given to later tasks like any shared read
  (the watch file, :func:`watch_path`, holds the token of the stream the list was recorded under);
* any other call (anything that may change something) drops them before it is made, and so does the callback
  after any task that reports a change or fails (a ``command`` running ``qvm-prefs``, a task inside a qube);
* a task gets each shared reply once: if it reads the same thing again (waiting for a change), qubesd answers.

What it cannot see: without the watch, a setting changed during the run by someone else (``qvm-prefs`` in a
terminal) or by a task that reports no change; with it, a change made while a task runs, until the next task
starts (a task's reads are as fresh as its start), or one qubesd sends no event for. No Ansible imports: the
client uses it in a module process too.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import secrets
import socket
import time

from ansible_collections.corral.qubes.plugins.module_utils import wire

ENV = "CORRAL_QUBES_RUN_READS"
"""The run's directory, set by the callback for the tasks of one playbook run."""
LIST = "admin.vm.List"
SHARED = frozenset({
    "admin.vm.property.Get", "admin.vm.property.GetAll", "admin.vm.property.GetDefault", "admin.vm.property.List",
    "admin.property.Get", "admin.property.GetAll", "admin.property.GetDefault", "admin.property.List",
    "admin.vm.feature.List", "admin.vm.feature.Get", "admin.vm.feature.CheckWithTemplate",
    "admin.vm.feature.CheckWithNetvm", "admin.vm.feature.CheckWithAdminVM", "admin.vm.feature.CheckWithTemplateAndAdminVM",
    "admin.vm.tag.List", "admin.vm.tag.Get", "admin.vm.firewall.Get",
    "admin.vm.volume.List", "admin.vm.volume.Info", "admin.vm.volume.ListSnapshots",
    "admin.label.List", "admin.label.Get", "admin.label.Index", "admin.pool.List", "admin.pool.Info",
    "admin.vmclass.List",
})
"""Reads of settings: they change only when a call or a tool changes something."""
SHARED_SUFFIXES = (".Assigned",)
"""``admin.vm.device.<class>.Assigned``: persistent assignments (not ``Attached`` or ``Available``)."""
READ_ONLY = frozenset({LIST, "admin.vm.CurrentState", "admin.Events", "admin.vm.Stats"})
"""Reads that are never shared and change nothing."""
READ_ONLY_SUFFIXES = (".Available", ".Attached", ".List")


def shared(method: str) -> bool:
    """Whether a reply to ``method`` may be given to a later task of the run."""
    return method in SHARED or (method.startswith("admin.vm.device.") and method.endswith(SHARED_SUFFIXES))


def read_only(method: str) -> bool:
    """Whether ``method`` changes nothing (a shared read, or one of :data:`READ_ONLY`)."""
    return shared(method) or method in READ_ONLY or (
        method.startswith("admin.vm.device.") and method.endswith(READ_ONLY_SUFFIXES))


def key(request: wire.Request) -> str:
    """What identifies a read: its header and payload."""
    return f"{request.method}+{request.arg} {request.dest}|" + request.payload.hex()


def _digest(socket_path: str) -> str:
    return hashlib.sha256(os.path.abspath(socket_path).encode()).hexdigest()[:16]


def reads_path(directory: str, socket_path: str) -> str:
    """The file of the shared reads of one qubesd socket in a run's directory."""
    return os.path.join(directory, f"reads-{_digest(socket_path)}.jsonl")


def watch_path(directory: str, socket_path: str) -> str:
    """The file that says the run watches this qubesd's events: the token of the open ``admin.Events`` stream."""
    return os.path.join(directory, f"watch-{_digest(socket_path)}")


class RunReads:
    """The shared reads of one run for one qubesd socket: a file of JSON lines in the run's directory."""

    def __init__(self, directory: str, socket_path: str):
        self.path = reads_path(directory, socket_path)
        self.watch = watch_path(directory, socket_path)
        self.served: set[str] = set()
        self._entries: dict[str, bytes] | None = None
        self._list: bytes | None = None
        self._list_token: str | None = None

    def _load(self) -> dict[str, bytes]:
        if self._entries is None:
            self._entries, self._list, self._list_token = {}, None, None
            try:
                with open(self.path, encoding="ascii") as handle:
                    for line in handle:
                        try:
                            entry = json.loads(line)
                            reply = base64.b64decode(entry["r"])
                        except (ValueError, KeyError, TypeError):
                            continue  # a line cut short by a task that was killed
                        if entry["k"] == LIST:
                            self._list, self._list_token = reply, entry.get("w")
                        else:
                            self._entries[entry["k"]] = reply
            except OSError:
                pass
        return self._entries

    def reply(self, request: wire.Request) -> bytes | None:
        """The recorded reply to a shared read this task has not had yet; None: ask qubesd."""
        name = key(request)
        if name in self.served:
            return None
        reply = self._load().get(name)
        if reply is not None:
            self.served.add(name)
        return reply

    def watch_token(self) -> str | None:
        """The token of the events stream the run watches this qubesd with (None: not watched)."""
        try:
            with open(self.watch, encoding="ascii") as handle:
                return handle.read().strip() or None
        except OSError:
            return None

    def watched_list(self) -> bytes | None:
        """The recorded qube list, if it was recorded under the events stream still watched and this task has not had
        it yet (no event since: the callback drops the reads when one comes); None: ask qubesd."""
        if LIST in self.served:
            return None
        self._load()
        token = self.watch_token()
        if self._list is None or token is None or self._list_token != token:
            return None
        self.served.add(LIST)
        return self._list

    def record(self, request: wire.Request, reply: bytes) -> None:
        """Keep a reply qubesd gave: a shared read, or the qube list (which drops what it contradicts)."""
        if reply[:2] not in (wire.REPLY_OK, wire.REPLY_EXCEPTION):
            return
        token = None
        if request.method == LIST:
            self._load()
            token = self.watch_token()
            self.served.add(LIST)
            if self._list is not None and self._list != reply:
                self.drop()
            if self._list == reply and self._list_token == token:
                return
            self._list, self._list_token = reply, token
            name = LIST
        else:
            name = key(request)
            self.served.add(name)
            if self._load().get(name) == reply:
                return
            self._entries[name] = reply
        entry = {"k": name, "r": base64.b64encode(reply).decode("ascii")}
        if token is not None:
            entry["w"] = token
        line = json.dumps(entry) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            return  # the run is over (its directory removed): nothing to share with
        with os.fdopen(fd, "a", encoding="ascii") as handle:
            handle.write(line)

    def drop(self) -> None:
        """Forget every shared read (something may change, or has changed)."""
        self._entries, self._list, self._list_token = {}, None, None
        try:
            os.unlink(self.path)
        except OSError:
            pass


class SharedReadsTransport:
    """A transport whose shared reads may come from earlier tasks of the run (see the module's text).

    ``sent`` counts the calls that reached qubesd, ``shared`` the replies that came from the run's reads.
    """

    def __init__(self, inner, reads: RunReads):
        self.inner = inner
        self.reads = reads
        self.sent: collections.Counter = collections.Counter()
        self.shared = 0
        self._checked = False
        self._list: bytes | None = None

    def __repr__(self) -> str:
        return f"SharedReadsTransport({self.inner!r})"

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _send(self, request: wire.Request) -> bytes:
        self.sent[request.method] += 1
        return self.inner.exchange(request)

    def _check_list(self) -> bytes:
        """The qube list from qubesd, compared with the one the shared reads were made under; or, when the run
        watches qubesd's events and none came since it was recorded, the recorded one."""
        reply = self.reads.watched_list()
        if reply is not None:
            self.shared += 1
            self._checked = True
            return reply
        reply = self._send(wire.Request(method=LIST))
        self.reads.record(wire.Request(method=LIST), reply)
        self._checked = True
        return reply

    def exchange(self, request: wire.Request) -> bytes:
        """A shared reply if there is one, else qubesd's (recorded); any call that may change something drops them."""
        if request.method == LIST and request.dest == "dom0" and not request.arg and not request.payload:
            reply, self._list = self._list, None
            return reply if reply is not None else self._check_list()
        if shared(request.method):
            if not self._checked:
                # shared reads only after this task has seen that no qube came, went or changed its power state
                self._list = self._check_list()
            reply = self.reads.reply(request)
            if reply is not None:
                self.shared += 1
                return reply
            reply = self._send(request)
            self.reads.record(request, reply)
            return reply
        if not read_only(request.method):
            self.reads.drop()
            self._list = None
        return self._send(request)


def wrap(transport, environ=None):
    """``transport`` sharing reads with the run's other tasks when the run has a directory and it is qubesd's socket."""
    directory = (os.environ if environ is None else environ).get(ENV)
    path = getattr(transport, "path", None)
    if not directory or not path or not os.path.isdir(directory):
        return transport
    return SharedReadsTransport(transport, RunReads(directory, path))


class EventsWatch:
    """An ``admin.Events`` stream held open by the run's controller for one qubesd: while it is open, a qube list
    recorded in the run is given to later tasks, and the shared reads are dropped as soon as an event comes.

    :meth:`start` subscribes and waits for qubesd's first message (``connection-established``), then writes the
    watch file with a fresh token; :meth:`poll` (before each task) reads what came without waiting: any event drops
    the shared reads, and the end of the stream (qubesd restarted) also ends the watch.
    """

    def __init__(self, directory: str, socket_path: str):
        self.directory = directory
        self.socket_path = socket_path
        self.sock: socket.socket | None = None

    def start(self, timeout: float = 2.0) -> bool:
        """Subscribe to qubesd's events; False (and no watch) when that does not work."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.socket_path)
            sock.sendall(wire.Request(method="admin.Events").encode())
            sock.shutdown(socket.SHUT_WR)
            buffer, events, deadline = b"", [], time.monotonic() + timeout
            while not events:
                data = sock.recv(4096)
                buffer += data
                if not data or not buffer.startswith(wire.REPLY_EVENT[:len(buffer)]) or time.monotonic() > deadline:
                    raise OSError("no event stream")  # an exception reply (not allowed to watch), or nothing
                events, buffer = wire.parse_events(buffer)
            if events[0][1] != "connection-established":
                raise OSError(f"the stream began with {events[0][1]!r}")
            sock.setblocking(False)
        except OSError:
            sock.close()
            return False
        self.sock = sock
        temporary = watch_path(self.directory, self.socket_path) + ".new"
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(8))
        os.replace(temporary, watch_path(self.directory, self.socket_path))
        if len(events) > 1 or buffer:
            self._changed()  # events right after the first message
        return True

    def poll(self) -> bool:
        """Whether something came since the last poll (the shared reads then dropped)."""
        if self.sock is None:
            return False
        came = False
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.stop()
                return True
            came = True
        if came:
            self._changed()
        return came

    def _changed(self) -> None:
        try:
            os.unlink(reads_path(self.directory, self.socket_path))
        except OSError:
            pass

    def stop(self) -> None:
        """Close the stream and remove the watch file (the qube lists recorded under it are no longer given)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._changed()
        try:
            os.unlink(watch_path(self.directory, self.socket_path))
        except OSError:
            pass


def drop_all(directory: str) -> None:
    """Forget the shared reads of every socket of the run (the callback, after a task that changed something)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith("reads-"):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass
