# SPDX-License-Identifier: GPL-3.0-or-later
"""The layout check's shape checks (no dom0), and the role's argument spec pinned against its key tables."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from ansible_collections.corral.qubes.plugins.module_utils import layout

ROOT = pathlib.Path(__file__).resolve().parents[2]


def shape(**params) -> layout.Layout:
    checked = layout.Layout(params)
    checked.check_shape()
    return checked


def test_every_problem_with_its_path():
    checked = shape(layout={"secure": {"lable": "green", "netvm": 3, "devices": [{"class": "pci"}]},
                            "bad name": {}},
                    templates=[{"names": [], "stat": "present"}],
                    tasks=[{"domain": "secure", "reach": ["nowhere"], "nam": "x"}],
                    network={"secure": {"polcy": "whitelist"}},
                    policies={"50-x": [{"service": "qubes.Filecopy", "source": "a", "target": "b", "action": "maybe"}]})
    paths = [path for path, _message in checked.problems.items]
    assert paths == ["qubes_layout.secure.lable", "qubes_layout.secure.netvm", "qubes_layout.secure.devices[0].device",
                     "qubes_layout.bad name", "qubes_templates[0].stat", "qubes_templates[0].names",
                     "qubes_tasks[0].nam", "qubes_tasks[0].reach", "qubes_network.secure.polcy",
                     "qubes_policies.50-x[0].action"]


def test_where_qube_names_appear():
    checked = shape(layout={"a": {"template": "t", "netvm": "n", "clone_from": "c",
                                  "properties": {"default_dispvm": "d", "memory": 400},
                                  "devices": [{"class": "usb", "device": "sys-usb:2-1"}]}},
                    templates=[{"names": ["t2"], "updatevm": "u"}],
                    tasks=[{"domain": "dom"}], network={"netq": "allow_all"}, flows={"qubes.ClipboardPaste": {"s": ["x"]}},
                    policies={"50-x": [{"service": "s.S", "source": "src", "target": "@dispvm:dvm", "action": "allow"},
                                       {"service": "s.S", "source": "@anyvm", "target": "dom0", "action": "deny"}]})
    assert not checked.problems.items
    assert [name for _path, name in checked.refs] == ["t", "n", "c", "d", "sys-usb", "u", "dom", "netq", "s", "x",
                                                      "src", "dvm"]
    assert checked.templates == {"t2": "qubes_templates[0].names[0]"}


def test_the_role_argument_spec_lists_the_same_keys():
    spec = yaml.safe_load((ROOT / "roles/qubes/meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    options = spec["options"]
    assert set(options["qubes_templates"]["options"]) == set(layout.TEMPLATE_KEYS)
    assert set(options["qubes_tasks"]["options"]) == set(layout.TASK_KEYS)
    for option, variable in layout.VARIABLES.items():
        if option != "inside":
            assert variable in options, option
    for key in layout.QUBE_KEYS:
        assert f"C({key})" in " ".join(options["qubes_layout"]["description"]), key
    fedora = yaml.safe_load((ROOT / "roles/fedora/meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    assert layout.VARIABLES["inside"] in fedora["options"]
    for key in layout.INSIDE_KEYS:
        assert f"C({key})" in " ".join(fedora["options"]["fedora_templates"]["description"]), key


def test_the_layout_as_the_qubes_options_of_the_qube_and_devices_modules():
    usb = [{"class": "pci", "device": "dom0:00_1a.0"}]
    qubes_layout = {"sys-usb": {"label": "red", "devices": usb, "shutdown_if_needed": True, "firewall": []},
                    "vault": {"label": "black", "netvm": "", "devices": []},
                    "work": {"label": "blue", "mark_created": False}, "empty": None}
    assert layout.qube_options(qubes_layout) == {
        "sys-usb": {"label": "red", "shutdown_if_needed": True, "mark_created": True},
        "vault": {"label": "black", "netvm": "", "mark_created": True},
        "work": {"label": "blue", "mark_created": False}, "empty": {"mark_created": True}}
    # only the qubes that list devices (an empty list too: it removes theirs), each with its own flag
    assert layout.device_options(qubes_layout) == {"sys-usb": {"devices": usb, "shutdown_if_needed": True},
                                                   "vault": {"devices": [], "shutdown_if_needed": False}}
    for bad, where in (([], "qubes_layout: expected a mapping"), ({"x": ["y"]}, "qubes_layout.x: expected a mapping")):
        for convert in (layout.qube_options, layout.device_options):
            with pytest.raises(ValueError, match=f"^{re.escape(where)}"):
                convert(bad)
