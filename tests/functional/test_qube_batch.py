# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.qube with ``qubes``: many qubes in one task, through ansible-playbook on a rehearsal dom0."""

from __future__ import annotations

import collections

from ansible_collections.corral.qubes.plugins.module_utils import qube_batch

# The client comes after its network qube in the mapping: the task orders them.
LAYOUT = {
    "mail": {"template": "fedora-42-xfce", "label": "blue", "netvm": "sys-vpn", "properties": {"memory": 500},
             "services": {"cups": False}, "features": {"corral-x": "1"}, "tags": ["domain"], "mark_created": True},
    "sys-vpn": {"template": "fedora-42-xfce", "label": "green", "netvm": "sys-firewall",
                "properties": {"provides_network": True}, "tags": ["service"]},
    "notes": {"label": "black", "netvm": "", "volumes": {"private": "3GiB"}},
}


def batch(qubes, **args) -> dict:
    return {"corral.qubes.qube": {"qubes": qubes, **args}}


def test_many_qubes_in_one_task_then_nothing_to_do(dom0, player):
    mark = dom0.mark()
    checked = player.run([batch(LAYOUT)], check=True, diff=True)[0]
    assert checked["changed"] and not dom0.writes_since(mark)
    assert [d["before_header"] for d in checked["diff"]] == ["sys-vpn", "mail", "notes"]
    assert any(w.startswith("mail: ") and "sys-vpn does not exist yet" in w for w in checked["warnings"]), checked

    first = player.run([batch(LAYOUT)])[0]
    assert first["changed"] and set(first["qubes"]) == {"mail", "sys-vpn", "notes"}
    assert first["actions"][0].startswith("sys-vpn: create")
    client = dom0.client()
    assert client.property_get("mail", "netvm").value == "sys-vpn"
    assert client.feature_get("mail", "corral-created") == "1"
    assert "service" in client.tag_list("sys-vpn") and "domain" not in client.tag_list("sys-vpn")

    mark = dom0.mark()
    again = player.run([batch(LAYOUT)])[0]
    assert not again["changed"] and all(not one["changed"] for one in again["qubes"].values())
    calls = collections.Counter(call["method"] for call in dom0.calls_since(mark))
    assert not dom0.writes_since(mark)
    assert calls["admin.vm.List"] == 1, calls
    # each qube's properties, features and tags read once, only where the layout manages them
    assert calls["admin.vm.property.GetAll"] <= 3 + 1 and calls["admin.vm.tag.List"] == 2, calls
    assert sum(calls.values()) <= 1 + 4 * 3, calls


def test_bad_input_anywhere_changes_nothing_and_names_the_qube(dom0, player):
    bad = dict(LAYOUT, notes={"label": "no-such-colour"}, mail=dict(LAYOUT["mail"], properties={"memory": "lots"}))
    mark = dom0.mark()
    result = player.run([batch(bad)])[0]
    assert result["failed"] and not dom0.writes_since(mark)
    paths = [problem["path"] for problem in result["problems"]]
    assert "qubes.notes.label" in paths and "qubes.mail.properties.memory" in paths, result
    assert "nothing was changed" in result["msg"]
    unknown = player.run([batch({"notes": {"colour": "red"}})])[0]
    assert unknown["field"] == "qubes.notes.colour" and "unknown key" in unknown["msg"]
    both = player.run([{"corral.qubes.qube": {"name": "notes", "qubes": {"notes": {}}}}])[0]
    assert both["failed"] and "not both" in both["msg"]


def test_removals_go_last_users_first(dom0, player):
    player.run([batch(LAYOUT)])
    gone = {"sys-vpn": {"state": "absent"}, "mail": {"state": "absent"}, "notes": {}}
    result = player.run([batch(gone)])[0]
    assert not result.get("failed"), result
    order = [action.split(":")[0] for action in result["actions"] if "remove" in action]
    assert order == ["mail", "sys-vpn"], result["actions"]
    assert {"mail", "sys-vpn"}.isdisjoint(dom0.client().list_vms())


def test_order_puts_what_a_qube_uses_first():
    entries = qube_batch.entries_of({"c": {"netvm": "b"}, "b": {"template": "a"}, "a": {}, "d": {"state": "absent"},
                                     "e": {"properties": {"default_dispvm": "c"}}})
    assert qube_batch.ordered(entries) == ["a", "b", "c", "e"]


def test_after_a_change_the_next_qubes_are_read_again(dom0, player):
    player.run([batch(LAYOUT)])
    vpn = dict(LAYOUT["sys-vpn"], properties={"provides_network": True, "memory": 700})
    changed = dict(LAYOUT, **{"sys-vpn": vpn})
    mark = dom0.mark()
    result = player.run([batch(changed)])[0]
    assert result["changed"] and [name for name, one in result["qubes"].items() if one["changed"]] == ["sys-vpn"]
    reads = collections.Counter(call["dest"] for call in dom0.calls_since(mark)
                                if call["method"] == "admin.vm.property.GetAll")
    # planned before the change, then again on fresh reads after sys-vpn (their netvm) changed
    assert reads["mail"] == 2 and reads["notes"] == 2, reads
