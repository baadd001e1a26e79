# SPDX-License-Identifier: GPL-3.0-or-later
"""State survives restarts, and is never half-written."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from rehearsal.model import STATE_FILE, Dom0State


def snapshot(client) -> dict:
    """What a client can read of the qube 'work' and the globals."""
    return {
        "list": client.list_vms(), "props": client.property_get_all("work"),
        "features": [(f, client.feature_get("work", f)) for f in client.feature_list("work")],
        "tags": client.tag_list("work"), "fw": client.firewall_get("work"),
        "private": client.volume_info("work", "private"), "globals": client.property_get_all(None),
        "pools": client.pool_list(),
    }


def test_state_survives_a_restart(dom0):
    client = dom0.client()
    client.create("AppVM", "work", "blue")
    client.property_set("work", "memory", 1234)
    client.feature_set("work", "service.cups", "")
    client.feature_set("work", "zz-last", "1")
    client.tag_set("work", "corral")
    client.firewall_set("work", ["action=accept dsthost=198.51.100.0/24", "action=drop"])
    client.volume_resize("work", "private", 5 * 1024 ** 3)
    client.call("admin.vm.notes.Set", "work", "", "written before the restart")
    before = snapshot(client)
    dom0.restart()
    client = dom0.client()
    after = snapshot(client)
    assert after == before
    assert client.call("admin.vm.notes.Get", "work") == "written before the restart"


def test_running_qubes_stay_running_and_halting_ones_settle(dom0_factory):
    dom0 = dom0_factory(extra_args=["--shutdown-delay", "60"], name="slowhalt")
    client = dom0.client()
    client.start("default-dvm")          # and its netvm chain
    client.shutdown("default-dvm")       # stays Halting for a minute
    assert client.list_vms()["default-dvm"].state == "Halting"
    dom0.restart()
    states = {name: entry.state for name, entry in dom0.client().list_vms().items()}
    assert (states["sys-net"], states["sys-firewall"], states["default-dvm"]) == ("Running", "Running", "Halted")


def test_state_file_is_always_complete_while_killed_mid_writes(dom0):
    """SIGKILL the server while it writes; whatever is on disk parses and loads."""
    stop = threading.Event()

    def hammer():
        client = dom0.client()
        i = 0
        while not stop.is_set():
            try:
                client.property_set("sys-net", "memory", 400 + i % 100)
            except Exception:  # pylint: disable=broad-exception-caught
                return
            i += 1

    threads = [threading.Thread(target=hammer) for _i in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    dom0.proc.send_signal(signal.SIGKILL)
    dom0.proc.wait()
    stop.set()
    for thread in threads:
        thread.join()
    dom0.proc = None
    with open(os.path.join(dom0.state_dir, STATE_FILE), encoding="utf-8") as fh:
        json.load(fh)
    assert Dom0State.load(dom0.state_dir) is not None
    assert not [n for n in os.listdir(dom0.state_dir) if n not in (STATE_FILE, "policy.d", "qubes") and not n.startswith(".qubes.")]
    dom0.start()
    assert 400 <= dom0.client().property_get("sys-net", "memory").native < 500


def test_socket_is_group_accessible_and_removed_on_stop(dom0):
    assert oct(os.stat(dom0.socket).st_mode & 0o777) == "0o660"
    dom0.stop()
    assert not os.path.exists(dom0.socket)
