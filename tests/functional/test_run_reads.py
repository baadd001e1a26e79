# SPDX-License-Identifier: GPL-3.0-or-later
"""The callback corral.qubes.run_reads: the tasks of one ansible-playbook run share their Admin API reads until
something changes (real ansible-playbook runs against a rehearsal dom0, its call log as the witness)."""

from __future__ import annotations

import os
import sys

SHARING = {"ANSIBLE_CALLBACKS_ENABLED": "corral.qubes.run_reads"}
INFO = {"corral.qubes.qube_info": {"names": ["sys-net"]}}


def outside(dom0, code: str, **task) -> dict:
    """A command task that changes the dom0 with the collection's client, not with a module of the collection."""
    script = ("from ansible_collections.corral.qubes.plugins.module_utils import client as c; "
              f"a = c.AdminClient(c.SocketTransport({dom0.socket!r})); {code}")
    return {"ansible.builtin.command": {"argv": [sys.executable, "-c", script]}, **task}


def reads_of(calls: list[dict], method: str, dest: str) -> int:
    return sum(1 for call in calls if call["method"] == method and call["dest"] == dest)


def test_a_later_task_gets_the_reads_of_an_earlier_one(dom0, player):
    mark = dom0.mark()
    run = player.run([INFO, INFO], env=SHARING)
    assert run[0]["qubes"] == run[1]["qubes"]
    # the run watches qubesd's events, and none came: the second task asks nothing, not even the qube list
    assert run[0]["api_calls"] > 1 and run[1]["api_calls"] == 0
    calls = dom0.calls_since(mark)
    assert reads_of(calls, "admin.vm.List", "dom0") == 1 and reads_of(calls, "admin.vm.property.GetAll", "sys-net") == 1
    assert reads_of(calls, "admin.Events", "dom0") == 1


def test_a_qubesd_the_run_does_not_watch_is_asked_for_its_qube_list_in_each_task(dom0, player, tmp_path):
    # the tasks reach the same qubesd by another path than the one the callback watches (QUBESD_SOCKET)
    other = tmp_path / "other.sock"
    other.symlink_to(dom0.socket)
    info = {"corral.qubes.qube_info": {"names": ["sys-net"], "qubesd_socket": str(other)}}
    mark = dom0.mark()
    run = player.run([info, info], env=SHARING)
    assert run[0]["qubes"] == run[1]["qubes"] and run[1]["api_calls"] == 1  # the qube list, the rest shared
    assert reads_of(dom0.calls_since(mark), "admin.vm.List", "dom0") == 2


def test_a_setting_changed_by_someone_else_between_tasks_is_seen(dom0, player):
    # a change the run does not report (changed_when false), made with another client: its event drops the reads
    mark = dom0.mark()
    run = player.run([INFO, outside(dom0, "a.property_set('sys-net', 'memory', 555)", changed_when=False), INFO],
                     env=SHARING)
    assert not run[1]["changed"]
    assert run[0]["qubes"]["sys-net"].get("properties", {}).get("memory") != 555
    assert run[2]["qubes"]["sys-net"]["properties"]["memory"] == 555
    assert reads_of(dom0.calls_since(mark), "admin.vm.property.GetAll", "sys-net") == 2


def test_without_the_callback_every_task_reads_for_itself(dom0, player):
    mark = dom0.mark()
    run = player.run([INFO, INFO])
    assert run[0]["api_calls"] == run[1]["api_calls"] > 1
    assert reads_of(dom0.calls_since(mark), "admin.vm.property.GetAll", "sys-net") == 2


def test_a_task_that_reports_a_change_makes_the_next_ones_read_again(dom0, player):
    run = player.run([INFO, outside(dom0, "a.property_set('sys-net', 'memory', 555)"), INFO], env=SHARING)
    assert run[1]["changed"]
    assert run[0]["qubes"]["sys-net"].get("properties", {}).get("memory") != 555
    assert run[2]["qubes"]["sys-net"]["properties"]["memory"] == 555


def test_a_qube_started_meanwhile_makes_the_next_ones_read_again(dom0, player):
    # a start the run does not report (changed_when false): the qube list differs, so the shared reads are dropped
    mark = dom0.mark()
    run = player.run([INFO, outside(dom0, "a.start('sys-net')", changed_when=False), INFO], env=SHARING)
    assert not run[1]["changed"] and run[2]["qubes"]["sys-net"]["state"] == "running"
    assert run[0]["qubes"]["sys-net"]["state"] == "halted"
    assert reads_of(dom0.calls_since(mark), "admin.vm.property.GetAll", "sys-net") == 2


def test_a_change_by_a_module_of_the_collection_is_seen_by_the_next_task(dom0, player):
    change = {"corral.qubes.prefs": {"properties": {}}}  # a task of the collection that reads and changes nothing
    set_label = {"corral.qubes.qube": {"name": "sys-net", "label": "purple"}}
    run = player.run([INFO, change, set_label, INFO, set_label], env=SHARING)
    assert run[2]["changed"] and run[3]["qubes"]["sys-net"]["label"] == "purple" and not run[4]["changed"]


def test_the_run_leaves_no_directory_behind(dom0, player, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    player.run([INFO, INFO], env={**SHARING, "TMPDIR": str(scratch)})
    assert [name for name in os.listdir(scratch) if name.startswith("corral-qubes-reads-")] == []
