# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared reads of a run (module_utils/run_reads.py): what a later task gets, and when it asks qubesd again."""

from __future__ import annotations

import os
import pathlib
import socket
import threading
import time

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod, run_reads, wire


class Qubesd:
    """Answers like qubesd from a table of replies that a test changes; records every request it got."""

    def __init__(self, path: str):
        self.path = path
        self.replies = {"admin.vm.List": wire.REPLY_OK + b"dom0 class=AdminVM state=Running\nwork class=AppVM state=Halted\n",
                        "admin.vm.property.Get": wire.REPLY_OK + b"default=False type=int 400",
                        "admin.vm.feature.Get": wire.REPLY_EXCEPTION + b"QubesFeatureNotFoundError\x00\x00no\x00",
                        "admin.vm.Start": wire.REPLY_OK}
        self.got: list[str] = []

    def exchange(self, request: wire.Request) -> bytes:
        self.got.append(request.method)
        return self.replies[request.method]


def task(tmp_path, qubesd):
    """A client as one task of the run makes it."""
    return client_mod.AdminClient(run_reads.wrap(qubesd, {run_reads.ENV: str(tmp_path)}))


def test_a_later_task_gets_shared_reads_after_checking_the_qube_list(tmp_path):
    qubesd = Qubesd("/run/qubesd.sock")
    first = task(tmp_path, qubesd)
    first.list_vms()
    assert first.property_get("work", "memory").value == "400"
    assert first.feature_get("work", "gui") is None
    second = task(tmp_path, qubesd)
    qubesd.got.clear()
    assert second.property_get("work", "memory").value == "400" and second.feature_get("work", "gui") is None
    assert second.list_vms()["work"].state == "Halted"
    assert qubesd.got == ["admin.vm.List"]  # one list, checked before the first shared reply, handed on
    assert second.qubesd_calls == 1 and sum(second.calls.values()) == 3 and second.transport.shared == 2


def test_reading_again_in_one_task_asks_qubesd(tmp_path):
    qubesd = Qubesd("/run/qubesd.sock")
    task(tmp_path, qubesd).property_get("work", "memory")
    second = task(tmp_path, qubesd)
    qubesd.got.clear()
    second.property_get("work", "memory")
    qubesd.replies["admin.vm.property.Get"] = wire.REPLY_OK + b"default=False type=int 800"
    assert second.property_get("work", "memory").value == "800"  # waiting for a change sees it
    assert qubesd.got == ["admin.vm.List", "admin.vm.property.Get"]


def test_a_call_that_may_change_something_drops_them(tmp_path):
    qubesd = Qubesd("/run/qubesd.sock")
    first = task(tmp_path, qubesd)
    first.property_get("work", "memory")
    first.start("work")
    assert list(tmp_path.iterdir()) == []
    qubesd.got.clear()
    task(tmp_path, qubesd).property_get("work", "memory")
    assert qubesd.got == ["admin.vm.List", "admin.vm.property.Get"]


def test_a_different_qube_list_drops_them(tmp_path):
    qubesd = Qubesd("/run/qubesd.sock")
    task(tmp_path, qubesd).property_get("work", "memory")
    qubesd.replies["admin.vm.List"] = qubesd.replies["admin.vm.List"].replace(b"Halted", b"Running")
    qubesd.replies["admin.vm.property.Get"] = wire.REPLY_OK + b"default=False type=int 800"
    qubesd.got.clear()
    assert task(tmp_path, qubesd).property_get("work", "memory").value == "800"
    assert qubesd.got == ["admin.vm.List", "admin.vm.property.Get"]


def test_each_socket_has_its_own_and_a_cut_line_is_skipped(tmp_path):
    one, other = Qubesd("/run/one.sock"), Qubesd("/run/other.sock")
    task(tmp_path, one).property_get("work", "memory")
    [path] = tmp_path.iterdir()
    with open(path, "a", encoding="ascii") as handle:
        handle.write('{"k": "admin.vm.feature.Get+gui work|", "r": "MA')  # a task killed while writing
    other.got.clear()
    task(tmp_path, other).property_get("work", "memory")
    assert other.got == ["admin.vm.List", "admin.vm.property.Get"]
    one.got.clear()
    second = task(tmp_path, one)
    second.property_get("work", "memory")
    assert second.feature_get("work", "gui") is None
    assert one.got == ["admin.vm.List", "admin.vm.feature.Get"]


def test_no_run_directory_or_no_socket_means_no_sharing(tmp_path):
    qubesd = Qubesd("/run/qubesd.sock")
    assert run_reads.wrap(qubesd, {}) is qubesd
    assert run_reads.wrap(qubesd, {run_reads.ENV: str(tmp_path / "gone")}) is qubesd
    qrexec = client_mod.QrexecTransport("qrexec-client-vm")
    assert run_reads.wrap(qrexec, {run_reads.ENV: str(tmp_path)}) is qrexec


def test_what_is_shared():
    assert run_reads.shared("admin.vm.property.GetAll") and run_reads.shared("admin.vm.device.pci.Assigned")
    assert not run_reads.shared("admin.vm.List") and not run_reads.shared("admin.vm.device.usb.Available")
    assert not run_reads.shared("admin.vm.CurrentState") and not run_reads.shared("admin.vm.device.pci.Attached")
    assert run_reads.read_only("admin.vm.device.usb.Available") and not run_reads.read_only("admin.vm.device.pci.Assign")
    assert not run_reads.read_only("admin.vm.feature.Set") and not run_reads.read_only("admin.vm.firewall.Reload")


def _watch(tmp_path, qubesd, token: str) -> None:
    """The run watching qubesd's events under ``token`` (what the callback's events stream writes)."""
    pathlib.Path(run_reads.watch_path(str(tmp_path), qubesd.path)).write_text(token)


def test_a_list_recorded_while_the_run_watches_is_handed_on_under_the_same_stream_only(tmp_path):
    qubesd = Qubesd("/run/qubesd.sock")
    task(tmp_path, qubesd).property_get("work", "memory")  # not watched yet: its list is not handed on
    qubesd.got.clear()
    _watch(tmp_path, qubesd, "aaaa")
    second = task(tmp_path, qubesd)
    second.property_get("work", "memory")
    assert qubesd.got == ["admin.vm.List"]  # checked once more, now recorded under the stream
    qubesd.got.clear()
    third = task(tmp_path, qubesd)
    assert third.property_get("work", "memory").value == "400" and third.list_vms()["work"].state == "Halted"
    assert qubesd.got == [] and third.transport.shared == 1 + 1
    assert third.list_vms() and qubesd.got == ["admin.vm.List"]  # a second list in one task asks qubesd
    # another stream (qubesd restarted, a new watch): what the old one vouched for is not handed on
    _watch(tmp_path, qubesd, "bbbb")
    qubesd.got.clear()
    task(tmp_path, qubesd).property_get("work", "memory")
    assert qubesd.got == ["admin.vm.List"]
    # no watch at all
    os.unlink(run_reads.watch_path(str(tmp_path), qubesd.path))
    qubesd.got.clear()
    task(tmp_path, qubesd).property_get("work", "memory")
    assert qubesd.got == ["admin.vm.List"]


def _qubesd_answering(path: str, data: bytes) -> threading.Thread:
    """A socket that answers one connection with ``data`` and keeps it open a moment (a stream that goes on)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve():
        conn, _address = server.accept()
        conn.recv(4096)
        conn.sendall(data)
        time.sleep(0.5)
        conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_the_events_watch_starts_only_on_an_event_stream_and_drops_the_reads_for_events_that_came(tmp_path):
    refused = str(tmp_path / "refused.sock")
    _qubesd_answering(refused, wire.encode_exception("QubesDaemonAccessError", "denied", ""))
    assert not run_reads.EventsWatch(str(tmp_path), refused).start()
    assert not os.path.exists(run_reads.watch_path(str(tmp_path), refused))
    busy = str(tmp_path / "busy.sock")
    pathlib.Path(run_reads.reads_path(str(tmp_path), busy)).write_text("")
    _qubesd_answering(busy, wire.encode_event("", "connection-established") + wire.encode_event("work", "domain-start"))
    watch = run_reads.EventsWatch(str(tmp_path), busy)
    assert watch.start() and os.path.exists(run_reads.watch_path(str(tmp_path), busy))
    assert not os.path.exists(run_reads.reads_path(str(tmp_path), busy))  # the event after the first message
    watch.stop()
    assert not os.path.exists(run_reads.watch_path(str(tmp_path), busy))
