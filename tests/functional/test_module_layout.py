# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.layout: a whole layout in one task, through ansible-playbook on a rehearsal dom0."""

from __future__ import annotations

import collections

from test_module_template import tool_runs

GATEWAY = "whonix-gateway-18"
LAYOUT = {
    "templates": [{"names": [GATEWAY], "enablerepo": ["qubes-templates-community"]}],
    # the client comes before its network qube, which is based on the template the first step installs
    "qubes": {
        "mail": {"template": "fedora-42-xfce", "label": "blue", "netvm": "sys-tor", "tags": ["domain"]},
        "sys-tor": {"template": GATEWAY, "label": "black", "netvm": "sys-firewall",
                    "properties": {"provides_network": True}},
    },
    "prefs": {"clockvm": "sys-firewall"},
    "firewall": {"mail": {"rules": [{"action": "accept", "dsthost": "192.0.2.25", "proto": "tcp", "dstports": 465}]}},
    "policies": [{"name": "30-layout-flows", "rules": [
        {"service": "qubes.ClipboardPaste", "source": "mail", "target": "sys-tor", "action": "deny"}]}],
    "audits": [{"matrix": {"dom0": ["mail", "sys-tor"], "sys-tor": ["mail"], "mail": []}}],
}


INFO = {"names": [GATEWAY, "mail"], "sections": ["features"], "features_only": ["template-name"]}


def layout(**args) -> dict:
    return {"corral.qubes.layout": args}


def settled(diffs: list) -> list:
    """The parts of a diff whose before and after do not depend on what qubesd makes up on creation (a new qube's
    UUID): the global preferences, the firewall, the policy files."""
    return [(entry["before"], entry["after"]) for entry in diffs
            if entry["before_header"] in ("prefs", "firewall") or entry["before_header"].endswith(".policy")]


def test_check_converge_then_a_no_op_of_one_list(dom0, player):
    client = dom0.client()
    mark = dom0.mark()
    # check mode on a fresh dom0: the template, the qubes on it and their firewall are planned, nothing written
    checked = player.run([layout(**{**LAYOUT, "audits": [], "info": dict(INFO, missing="skip")})], check=True,
                         diff=True)[0]
    assert not checked.get("failed") and checked["changed"], checked
    assert not dom0.writes_since(mark) and "sys-tor" not in client.list_vms()
    headers = [entry["before_header"] for entry in checked["diff"]]
    assert headers[:3] == ["templates: " + GATEWAY, "sys-tor", "mail"], headers
    assert "prefs" in headers and "firewall" in headers and headers[-1].endswith("30-layout-flows.policy")
    assert [entry.split(":")[0] for entry in checked["actions"]][:2] == ["templates", "qubes"]
    # the read after the steps sees the system as it is: in check mode nothing it names exists yet
    assert checked["steps"]["info"]["missing"] == [GATEWAY, "mail"] and checked["steps"]["info"]["qubes"] == {}

    first = player.run([layout(**LAYOUT, info=INFO)], diff=True)[0]
    assert not first.get("failed") and first["changed"], first
    # the check's diff is what the run did: the same parts, the same before and after (the audit adds no diff)
    assert [entry["before_header"] for entry in first["diff"]] == headers
    assert settled(checked["diff"]) and settled(first["diff"]) == settled(checked["diff"])
    assert first["actions"] == checked["actions"]
    steps = [action.split(":")[0] for action in first["actions"]]
    assert steps == sorted(steps, key=["templates", "qubes", "prefs", "firewall", "policies"].index), steps
    assert client.feature_get(GATEWAY, "template-name") == GATEWAY
    assert client.property_get("mail", "netvm").value == "sys-tor"
    assert client.property_get(None, "clockvm").value == "sys-firewall"
    assert "action=accept dst4=192.0.2.25/32 proto=tcp dstports=465-465" in client.firewall_get("mail")
    assert (dom0.policy_dir / "30-layout-flows.policy").exists()
    assert first["steps"]["audits"][0]["undeclared"] == []
    assert first["steps"]["info"]["qubes"][GATEWAY]["features"] == {"template-name": GATEWAY}  # read after the install
    assert first["steps"]["info"]["qubes"]["mail"]["features"] == {}
    runs = len(tool_runs(dom0))

    mark = dom0.mark()
    again = player.run([layout(**LAYOUT, info=INFO)])[0]
    assert not again.get("failed") and not again["changed"], again
    assert not dom0.writes_since(mark) and len(tool_runs(dom0)) == runs
    calls = collections.Counter(call["method"] for call in dom0.calls_since(mark))
    assert calls["admin.vm.List"] == 1, calls  # every step of the task planned from one qube list
    assert again["api_calls"] == sum(calls.values()), (again["api_calls"], calls)
    assert set(again["steps"]) == {"templates", "qubes", "prefs", "firewall", "policies", "audits", "info"}
    assert again["steps"]["info"]["qubes"] == first["steps"]["info"]["qubes"]


def test_bad_input_in_a_late_step_fails_before_the_first_change(dom0, player):
    bad = {**LAYOUT, "firewall": {"mail": {"rules": [{"action": "accept", "dsthost": "192.0.2.0/33"}]}}}
    mark = dom0.mark()
    result = player.run([layout(**bad)])[0]
    assert result["failed"] and not result["changed"], result
    assert result["step"] == "firewall" and result["field"].startswith("firewall.mail"), result
    assert result["msg"].startswith(result["field"] + ": ") and "nothing was changed" in result["msg"], result
    assert not dom0.writes_since(mark) and [run["command"] for run in tool_runs(dom0)] in ([], ["list"])
    assert "sys-tor" not in dom0.client().list_vms()
    # the options of a list step are checked by the argument spec, naming the entry
    spec = player.run([layout(policies=[{"rules": []}])])[0]
    assert spec["failed"] and "name" in spec["msg"] and "policies" in spec["msg"], spec
    # a mapping step's field is named from this task's option
    unknown = player.run([layout(devices={"mail": {"colour": "red"}})])[0]
    assert unknown["failed"] and unknown["field"] == "devices.mail.colour", unknown


def test_a_step_naming_a_qube_no_step_creates_fails_before_any_change(dom0, player):
    # prefs names a qube no step creates: planned as an error before anything changes
    result = player.run([layout(qubes={"notes": {"label": "black", "netvm": ""}},
                                prefs={"default_dispvm": "no-such-dvm"})])[0]
    assert result["failed"] and result["step"] == "prefs" and result["field"].startswith("prefs"), result
    assert "notes" not in dom0.client().list_vms()
    assert "qubes" in result["steps"] and not result["steps"]["qubes"].get("failed")
