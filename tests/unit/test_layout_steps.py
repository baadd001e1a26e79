# SPDX-License-Identifier: GPL-3.0-or-later
"""The steps of a corral.qubes.layout task: their order, what each step's task receives, how its fields are named."""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.module_utils import tasks

PARAMS = {
    "qubesd_socket": "/run/test.sock", "created_in_run": ["work"], "policy_dir": "/tmp/policy.d",
    "prune": ["old"], "audits": [{"service": "qubes.Filecopy", "matrix": {}, "domains": None}],
    "policies": [{"name": "30-flows", "rules": [], "content": None, "header": "", "state": "present"}],
    "firewall": {"work": {"policy": "allow_all"}}, "prefs": {"clockvm": "sys-net"},
    "devices": {"sys-usb": []}, "qubes": {"work": {"label": "blue"}},
    "templates": [{"names": ["debian-13-xfce"], "state": "present"}, {"names": ["fedora-42-xfce"], "state": "latest"}],
    "info": {"names": ["debian-13-xfce"], "sections": ["features"], "features_only": ["os"], "missing": None},
}


def test_steps_come_in_the_order_of_what_they_use_whatever_the_order_given():
    steps = tasks.layout_steps(PARAMS)
    assert [step[1] for step in steps] == ["templates[0]", "templates[1]", "qubes", "devices", "prefs", "firewall",
                                           "policies[0]", "audits[0]", "prune[0]", "info"]
    assert tuple(dict.fromkeys(step[0] for step in steps)) == tasks.LAYOUT_STEPS
    assert [step[2] for step in steps][:2] == ["templates: debian-13-xfce", "templates: fedora-42-xfce"]
    assert steps[-2][2] == "prune: old" and steps[-3][2] == "audits: qubes.Filecopy"


def test_each_step_gets_its_module_parameters_with_the_task_connection():
    by_label = {label: (kind, params) for _step, label, _heading, kind, params in tasks.layout_steps(PARAMS)}
    kind, qubes = by_label["qubes"]
    assert kind == "qube" and qubes["qubes"] == PARAMS["qubes"] and qubes["state"] == "present"
    assert qubes["qubesd_socket"] == "/run/test.sock" and qubes["created_in_run"] == ["work"]
    assert by_label["devices"][1]["strict"] is True and by_label["devices"][1]["qubes"] == {"sys-usb": []}
    assert by_label["prefs"][1] == {"properties": {"clockvm": "sys-net"}, "qubesd_socket": "/run/test.sock"}
    assert by_label["policies[0]"][1]["policy_dir"] == "/tmp/policy.d" and by_label["policies[0]"][0] == "policy"
    assert by_label["audits[0]"][1]["policy_dir"] == "/tmp/policy.d"
    assert by_label["prune[0]"][1]["name"] == "old" and by_label["prune[0]"][1]["state"] == "absent"
    assert by_label["templates[1]"][1]["qubesd_socket"] == "/run/test.sock"
    kind, info = by_label["info"]  # a suboption left out (None) takes the module's default
    assert kind == "qube_info" and info["names"] == ["debian-13-xfce"] and info["features_only"] == ["os"]
    assert info["missing"] == "fail" and info["qubesd_socket"] == "/run/test.sock"


def test_empty_steps_are_left_out():
    assert tasks.layout_steps({"qubesd_socket": None}) == []
    assert [step[1] for step in tasks.layout_steps({"prefs": {"clockvm": "sys-net"}})] == ["prefs"]


def test_a_step_field_is_named_from_the_layout_task_options():
    assert tasks._step_field("devices", "devices", "qubes.sys-usb.devices") == "devices.sys-usb.devices"
    assert tasks._step_field("firewall", "firewall", "qubes.work.rules[0].dsthost") == "firewall.work.rules[0].dsthost"
    assert tasks._step_field("prefs", "prefs", "properties.clockvm") == "prefs.clockvm"
    assert tasks._step_field("qubes", "qube", "qubes.work.label") == "qubes.work.label"
    assert tasks._step_field("templates[1]", "template", "names") == "templates[1].names"
    assert tasks._step_field("policies[0]", "policy", "rules") == "policies[0].rules"
    assert tasks._step_field("audits[0]", "clipboard_audit", "") == ""


def test_the_layout_spec_takes_each_modules_options_for_its_entries():
    spec = tasks.ARGUMENT_SPECS["layout"]
    assert set(spec["templates"]["options"]) == set(tasks.ARGUMENT_SPECS["template"]) - {"qubesd_socket"}
    assert set(spec["policies"]["options"]) == set(tasks.ARGUMENT_SPECS["policy"]) - {"policy_dir"}
    audit_options = set(tasks.ARGUMENT_SPECS["clipboard_audit"]) - {"qubesd_socket", "policy_dir"}
    assert set(spec["audits"]["options"]) == audit_options
    assert set(spec["info"]["options"]) == set(tasks.ARGUMENT_SPECS["qube_info"]) - {"qubesd_socket"}
