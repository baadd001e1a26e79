# SPDX-License-Identifier: GPL-3.0-or-later
"""The hardware preflight: the xl stand-in, corral.qubes.hardware_check and the role in site.yml."""

from __future__ import annotations

import pathlib
import subprocess

import yaml

from ansible_collections.corral.qubes.plugins.module_utils import hardware as hardware_mod
from ansible_collections.corral.qubes.plugins.module_utils import whonix
from harness import XL
from playbook import ROOT
from rehearsal import dom0 as dom0_mod
from rehearsal import hardware
from test_site import site

LAYOUT = yaml.safe_load((ROOT / "inventories" / "t420s" / "group_vars" / "qubes_admin" / "layout.yml").read_text())
PROFILE = yaml.safe_load((ROOT / "roles" / "hardware" / "vars" / "main.yml").read_text())["hardware_profiles"]["t420s"]


def check(**args) -> dict:
    return {"corral.qubes.hardware_check": {"profile": PROFILE, **args}}


def test_xl_stand_in_prints_xl_info():
    proc = subprocess.run([str(XL), "info"], capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert all(len(line) >= 25 and line[23:25] == ": " for line in lines)  # keys padded as xl pads them
    info = hardware_mod.parse_xl_info(proc.stdout)
    assert (info["nr_cpus"], info["cores_per_socket"], info["threads_per_core"]) == ("4", "2", "2")
    assert info["virt_caps"].split()[:3] == ["pv", "hvm", "hvm_directio"]
    assert int(info["total_memory"]) <= 16384 and info["xen_version"].startswith("4.")
    assert subprocess.run([str(XL), "list"], capture_output=True, check=False).returncode == 1
    assert hardware.DOM0_MEMORY_MIB == dom0_mod.DOM0_MEMORY_MIB


def test_reference_layout_fits_the_t420s(dom0, player):
    mark = dom0.mark()
    run = player.run([check(layout=LAYOUT["qubes_layout"], xl_command=str(XL))], check=True)
    result = run[0]
    assert not result.get("failed"), result.get("msg")
    assert {row["result"] for row in result["checks"]} <= {"ok", "warn"}
    checks = {row["check"]: row for row in result["checks"]}
    assert checks["VT-d (hvm_directio)"]["result"] == "ok"
    assert checks["PCI passthrough needs VT-d"]["note"] == "sys-net, sys-usb"
    assert "bsd" in checks["HVM qubes need VT-x"]["note"] and "work" in checks["HVM qubes need VT-x"]["note"]
    assert checks["device dom0:00_1a.0 of sys-usb"]["result"] == "ok"
    assert result["facts"]["pci"]["00_19.0"] == "Intel Corporation 82579LM Gigabit Network Connection (Lewisville)"
    assert result["report_lines"][0].split()[:2] == ["CHECK", "EXPECTED"]
    assert len(result["report_lines"]) == len(result["checks"]) + 1
    assert dom0.writes_since(mark) == []


def test_what_does_not_fit(dom0, player, tmp_path):
    no_vtd = tmp_path / "xl-no-vtd"
    no_vtd.write_text(f"#!/bin/sh\n{XL} \"$@\" | sed 's/ hvm_directio//'\n")
    no_vtd.chmod(0o755)
    layout = dict(LAYOUT["qubes_layout"])
    layout["big"] = {"label": "red", "properties": {"memory": 12000, "autostart": True},
                     "volumes": {"private": "300GiB"},
                     "devices": [{"class": "pci", "device": "dom0:05_00.0"}]}
    layout["twin"] = {"label": "red", "properties": {"autostart": True},
                      "devices": [{"class": "pci", "device": "dom0:00_1a.0"}]}
    run = player.run([check(layout=layout, xl_command=str(XL)),
                      check(layout=LAYOUT["qubes_layout"], xl_command=str(no_vtd)),
                      check(layout={}, xl_command=str(tmp_path / "no-such-xl")),
                      {"corral.qubes.hardware_check": {"profile": {"memory_mib": "lots", "cores": 2, "threads": 4}}}])
    failed = {row["check"] for row in run[0]["checks"] if row["result"] == "fail"}
    assert failed == {"memory of autostart qubes + dom0", "volume sizes of the layout",
                      "device dom0:05_00.0 of big", "device dom0:00_1a.0"}
    assert "the layout does not fit the machine" in run[0]["msg"]
    assert {row["check"] for row in run[1]["checks"] if row["result"] == "fail"} == {
        "VT-d (hvm_directio)", "PCI passthrough needs VT-d"}
    assert run[2]["failed"] and run[2]["field"] == "xl_command"
    assert run[3]["failed"] and run[3]["field"] == "profile.memory_mib"


def test_site_stops_before_any_change_when_the_layout_is_too_big(dom0, tmp_path):
    extra = tmp_path / "too-big.yml"
    layout = dict(LAYOUT["qubes_layout"])
    layout["sys-net"] = dict(layout["sys-net"], properties=dict(layout["sys-net"]["properties"], memory=14000))
    # an extra variable is above what the Whonix role sets: the layout given here includes Whonix itself
    layout = whonix.merge(whonix.expand({}, "4.3"), layout, [], {})["qubes_layout"]
    extra.write_text(yaml.safe_dump({"qubes_layout": layout}))
    mark = dom0.mark()
    proc = site(dom0, tmp_path, "-e", f"@{extra}")
    assert proc.returncode != 0
    assert "memory of autostart qubes + dom0" in proc.stdout and "fail" in proc.stdout
    assert "Qubes of the layout" not in proc.stdout
    # site.yml's preflight is one task: the whole-layout check, given the hardware role's settings, fails itself
    failed = proc.stdout.split("fatal: ", 1)[0].rsplit("TASK [", 1)[1]
    assert failed.startswith("corral.qubes.qubes : The whole layout, checked before any change]"), proc.stdout
    assert "TASK [corral.qubes.hardware :" not in proc.stdout and "TASK [corral.qubes.fedora :" not in proc.stdout
    assert dom0.writes_since(mark) == []
    assert pathlib.Path(dom0.call_log).exists()


def test_the_whole_layout_check_checks_the_machine_for_the_layout_it_checked(dom0, player):
    """layout_check given the hardware check's options (site.yml's preflight): the machine for the layout checked,
    with Whonix added (sys-whonix starts at boot), unless another layout is given; a failed check fails the task."""
    layout = LAYOUT["qubes_layout"]
    too_big = dict(layout, **{"sys-net": dict(layout["sys-net"], properties=dict(layout["sys-net"]["properties"],
                                                                                 memory=14000))})
    machine = {"profile": PROFILE, "xl_command": str(XL)}
    mark = dom0.mark()

    fedora = yaml.safe_load((ROOT / "inventories/t420s/group_vars/qubes_admin/fedora.yml").read_text())
    clones = {name: {key: value for key, value in entry.items() if key in ("clone_from", "label")}
              for name, entry in fedora["fedora_templates"].items()}

    def whole(layout_checked, **hardware_args):
        return {"corral.qubes.layout_check": {"layout": layout_checked, "templates": LAYOUT["qubes_templates"],
                                              "inside": clones, "whonix": {}, "scope": "all",
                                              "hardware": dict(machine, **hardware_args)}}

    run = player.run([whole(layout), whole(layout, layout=layout), whole(too_big), whole(layout, layout=too_big)])
    for fits in run[:2]:
        assert not fits.get("failed"), fits.get("msg")
        autostart = {row["check"]: row for row in fits["hardware"]["checks"]}["memory of autostart qubes + dom0"]
        assert "sys-whonix 500" in autostart["note"], autostart  # the layout with Whonix added
        assert fits["hardware"]["report_lines"][0].split()[:2] == ["CHECK", "EXPECTED"]
    for failed in run[2:]:
        assert failed["failed"] and failed["msg"].startswith("the layout does not fit the machine: memory of"), failed
        assert failed["field"] == "hardware" and "checks" in failed["hardware"]
    assert dom0.writes_since(mark) == []


def test_the_whole_layout_check_takes_whonix_enabled_as_a_bool_only(dom0, player):
    """whonix.enabled false adds nothing (the result holds the variables as given); a value that is not a bool fails
    naming whonix_enabled, before any check."""
    layout = {"work": {"label": "blue"}}
    run = player.run([{"corral.qubes.layout_check": {"layout": layout, "whonix": {"enabled": False}}},
                      {"corral.qubes.layout_check": {"layout": layout, "whonix": {"enabled": "maybe"}}}])
    assert not run[0].get("failed"), run[0].get("msg")
    assert run[0]["whonix"] == {"qubes_layout": layout, "qubes_templates": [], "qubes_policies": {}}
    assert run[1]["failed"] and "whonix_enabled: expected bool, not 'maybe'" in run[1]["msg"]


def test_hardware_layout_given_is_the_one_fitted_and_left_out_the_layout_checked(dom0, tmp_path):
    """hardware_layout set: site.yml's whole check and the hardware role alone fit the machine to it; not set, the
    whole check fits the layout it checked (site.yml's other tests) and the role alone qubes_layout."""
    layout = LAYOUT["qubes_layout"]
    too_big = dict(layout, **{"sys-net": dict(layout["sys-net"], properties=dict(layout["sys-net"]["properties"],
                                                                                 memory=14000))})
    given = tmp_path / "hardware-layout.yml"
    given.write_text(yaml.safe_dump({"hardware_layout": too_big}))
    # qubes_layout too big, Whonix in it (as the Whonix role's facts would give it to the preflight playbook)
    checked = tmp_path / "qubes-layout.yml"
    with_whonix = whonix.merge(whonix.expand({}, "4.3"), too_big, LAYOUT["qubes_templates"], LAYOUT["qubes_policies"])
    checked.write_text(yaml.safe_dump({key: with_whonix[key] for key in ("qubes_layout", "qubes_templates",
                                                                         "qubes_policies")}))
    fits = tmp_path / "fits.yml"
    fits.write_text(yaml.safe_dump({"hardware_layout": layout}))
    mark = dom0.mark()

    proc = site(dom0, tmp_path, "--check", "-e", f"@{given}")
    assert proc.returncode != 0 and "memory of autostart qubes + dom0" in proc.stdout, proc.stdout
    failed = proc.stdout.split("fatal: ", 1)[0].rsplit("TASK [", 1)[1]
    assert failed.startswith("corral.qubes.qubes : The whole layout, checked before any change]"), proc.stdout

    def preflight(*extra):
        return site(dom0, tmp_path, "-e", f"@{checked}", *extra, playbook="playbooks/preflight.yml")

    alone = preflight()  # the role alone, hardware_layout not set: qubes_layout, too big
    assert alone.returncode != 0 and "memory of autostart qubes + dom0" in alone.stdout, alone.stdout
    assert alone.stdout.split("fatal: ", 1)[0].rsplit("TASK [", 1)[1].startswith("corral.qubes.hardware :")
    alone = preflight("-e", f"@{fits}")  # the role alone, hardware_layout set: that one, which fits
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert dom0.writes_since(mark) == []
