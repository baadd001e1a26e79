# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.devices through ansible-playbook against fresh rehearsal dom0s (R4.3 and R4.2)."""

from __future__ import annotations

import pytest

from playbook import Player, qube

NIC, WIFI, EHCI2, EHCI1 = "dom0:00_19.0", "dom0:03_00.0", "dom0:00_1a.0", "dom0:00_1d.0"
NSR = {"no-strict-reset": True}


def pci(device, **extra) -> dict:
    return {"class": "pci", "device": device, **extra}


def devices(name=None, devs=None, **args) -> dict:
    """A corral.qubes.devices task."""
    if name is not None:
        args.update(name=name, devices=devs if devs is not None else [])
    return {"corral.qubes.devices": args}


def pci_assigned(client, qube_name):
    return sorted(line.split(" ", 1)[0] for line in client.call("admin.vm.device.pci.Assigned", qube_name).splitlines())


@pytest.fixture
def usb_player(dom0, player):
    """A halted sys-usb (fresh dom0s have none)."""
    player.run([qube("sys-usb", label="red", netvm="")])
    return player


def test_assign_check_diff_idempotence(dom0, usb_player):
    client = dom0.client()
    wanted = devices("sys-usb", [pci(EHCI2, options=NSR), pci(EHCI1, options=NSR)])
    mark = dom0.mark()
    checked = usb_player.run([wanted], check=True, diff=True)
    assert checked[0]["changed"] and dom0.writes_since(mark) == []
    assert checked[0]["diff"]["before"] == {"sys-usb": []}
    assert [d["device"] for d in checked[0]["diff"]["after"]["sys-usb"]] == [EHCI2, EHCI1]
    assert checked[0]["diff"]["after"]["sys-usb"][0]["device_id"] == "0x8086:0x1c2d::p0c0320"

    run = usb_player.run([wanted, wanted], diff=True)
    assert [r["changed"] for r in run.results] == [True, False]
    assert pci_assigned(client, "sys-usb") == [
        "dom0+00_1a.0:0x8086:0x1c2d::p0c0320", "dom0+00_1d.0:0x8086:0x1c26::p0c0320"]
    assert "_no-strict-reset='True'" in client.call("admin.vm.device.pci.Assigned", "sys-usb")
    mark = dom0.mark()
    again = usb_player.run([wanted])
    assert not again[0]["changed"] and dom0.writes_since(mark) == []
    assert len(dom0.calls_since(mark)) <= 6  # List + one Assigned per class (the in-process path: no more)
    assert client.property_get("sys-usb", "virt_mode").value == "hvm"


def test_strict_append_options_and_pinning(dom0, usb_player):
    client = dom0.client()
    usb_player.run([devices("sys-usb", [pci(EHCI2), pci(EHCI1)])])
    run = usb_player.run([
        devices("sys-usb", [pci(EHCI2)], strict=False),                        # append: EHCI1 stays
        devices("sys-usb", [pci(EHCI2, options={"permissive": True})], strict=False),   # options: re-assign
        devices("sys-usb", [pci(EHCI2, options={"permissive": True})]),        # strict: EHCI1 removed
        devices("sys-usb", [pci(EHCI2, device_id="0x8086:0x1c2d::p0c0320", options={"permissive": True})]),
        devices("sys-usb", [pci(EHCI2, device_id="*", options={"permissive": True})]),  # any device in the port
        devices("sys-usb", [pci(EHCI2, device_id="*", options={"permissive": True})]),
        devices("sys-usb", [], classes=["usb"]),                                 # other classes: untouched
        devices("sys-usb", []),                                                  # strict, empty: all gone
    ])
    assert [r["changed"] for r in run.results] == [False, True, True, False, True, False, False, True]
    assert run[1]["actions"][0].startswith("unassign pci device dom0:00_1a.0")
    assert run[2]["actions"] == ["unassign pci device dom0:00_1d.0 from sys-usb"]
    assert run[4]["devices"]["sys-usb"][0]["device_id"] == "*"
    assert pci_assigned(client, "sys-usb") == []


def test_modes_of_other_classes(dom0, usb_player):
    """usb/block/mic assignments (R4.3 modes) of a device whose backend is off: pinned by device id."""
    client = dom0.client()
    key = {"class": "usb", "device": "sys-usb:2-1", "device_id": "0x1050:0x0407::u03**01"}
    usb_player.run([qube("vault", label="black", netvm="")])
    run = usb_player.run([
        devices("vault", [dict(key, mode="ask-to-attach")], classes=["usb"]),
        devices("vault", [dict(key, mode="auto-attach")], classes=["usb"]),
        devices("vault", [dict(key, mode="auto-attach")], classes=["usb"]),
        devices("vault", [{"class": "block", "device": "sys-usb:sda", "device_id": "*",
                           "options": {"read-only": "yes"}}], classes=["block"]),
        devices("vault", [{"class": "mic", "device": "sys-usb:mic", "device_id": "*"}], classes=["mic"]),
    ])
    assert [r["changed"] for r in run.results] == [True, True, False, True, True], [r.get("msg") for r in run.results]
    assert run[1]["actions"] == ["set the assignment of usb device sys-usb:2-1 to vault to auto-attach"]
    assert "mode='auto-attach'" in client.call("admin.vm.device.usb.Assigned", "vault")
    assert "_read-only='yes'" in client.call("admin.vm.device.block.Assigned", "vault")


def test_running_qube_pci_change_needs_shutdown(dom0, player):
    client = dom0.client()
    client.start("sys-net")
    only_nic = devices("sys-net", [pci(NIC, options=NSR)], classes=["pci"])
    mark = dom0.mark()
    refused = player.run([only_nic])
    assert refused[0]["failed"] and refused[0]["field"] == "shutdown_if_needed"
    assert dom0.writes_since(mark) == []
    checked = player.run([devices("sys-net", [pci(NIC, options=NSR)], classes=["pci"], shutdown_if_needed=True)],
                         check=True)
    assert checked[0]["actions"] == ["shut down sys-net", "unassign pci device dom0:03_00.0 from sys-net",
                                     "start sys-net"]
    assert dom0.writes_since(mark) == []
    done = player.run([devices("sys-net", [pci(NIC, options=NSR)], classes=["pci"], shutdown_if_needed=True)])
    assert done[0]["changed"] and client.list_vms()["sys-net"].state == "Running"
    assert pci_assigned(client, "sys-net") == ["dom0+00_19.0:0x8086:0x1502::p020000"]


def test_several_qubes_in_one_task(dom0, usb_player):
    client = dom0.client()
    task = devices(qubes={"sys-net": [pci(NIC, options=NSR), pci(WIFI, options=NSR)],
                          "sys-usb": [pci(EHCI2, options=NSR), pci(EHCI1, options=NSR)]}, classes=["pci"])
    run = usb_player.run([task, task])
    assert [r["changed"] for r in run.results] == [True, False]
    assert set(run[1]["devices"]) == {"sys-net", "sys-usb"}
    assert len(pci_assigned(client, "sys-usb")) == 2


def test_each_qube_of_a_task_with_its_own_shutdown_if_needed(dom0, usb_player):
    client = dom0.client()
    client.start("sys-net")
    client.start("sys-usb")
    entries = {"sys-net": {"devices": [pci(NIC, options=NSR)], "shutdown_if_needed": True},
               "sys-usb": {"devices": [pci(EHCI2, options=NSR)]}}  # no flag of its own: the task's (false)
    mark = dom0.mark()
    refused = usb_player.run([devices(qubes=entries, classes=["pci"])])[0]
    assert refused["failed"] and refused["field"] == "shutdown_if_needed" and "of sys-usb" in refused["msg"]
    assert dom0.writes_since(mark) == []  # every qube planned before the first change
    bad = usb_player.run([devices(qubes={"sys-usb": {"devices": [], "shutdown": True}}),
                          devices(qubes={"sys-usb": {"devices": [], "shutdown_if_needed": "yes"}}),
                          devices(qubes={"sys-usb": {"devices": [pci("00_1a.0")]}})])
    assert [r.get("field") for r in bad.results] == ["qubes.sys-usb.shutdown", "qubes.sys-usb.shutdown_if_needed",
                                                     "qubes.sys-usb.devices[0].device"]
    assert dom0.writes_since(mark) == []

    entries["sys-usb"]["shutdown_if_needed"] = True
    entries["sys-net"]["shutdown_if_needed"] = False  # its own false over the task's true
    refused = usb_player.run([devices(qubes=entries, classes=["pci"], shutdown_if_needed=True)])[0]
    assert refused["failed"] and refused["field"] == "qubes.sys-net.shutdown_if_needed"
    entries["sys-net"]["shutdown_if_needed"] = True
    task = devices(qubes=entries, classes=["pci"])
    run = usb_player.run([task, task])
    assert [r["changed"] for r in run.results] == [True, False]
    assert run[0]["actions"][0] == "shut down sys-net" and "start sys-usb" in run[0]["actions"]
    assert pci_assigned(client, "sys-net") == ["dom0+00_19.0:0x8086:0x1502::p020000"]
    assert len(pci_assigned(client, "sys-usb")) == 1
    vms = client.list_vms()
    assert vms["sys-net"].state == "Running" and vms["sys-usb"].state == "Running"


def test_bad_input_changes_nothing(dom0, usb_player):
    client = dom0.client()
    usb_player.run([qube("pvh-only", label="red", netvm="", properties={"virt_mode": "pvh"}),
                    qube("other", label="red", netvm="")])
    client.start("sys-net")
    client.start("other")
    mark = dom0.mark()
    run = usb_player.run([
        devices("sys-usb", [pci("dom0:09_00.0")]),                                  # not on the host
        devices("other", [pci(NIC)], shutdown_if_needed=True),                      # held by running sys-net
        devices("pvh-only", [pci(EHCI2)]),                                          # PCI to a PVH qube
        devices("sys-usb", [{"class": "gpu", "device": "dom0:00_02.0"}]),            # unknown class
        devices("sys-usb", [pci(EHCI2, mode="auto-attach")]),                       # PCI: only required
        devices("sys-usb", [pci(EHCI2, mode="sometimes")]),                         # unknown mode
        devices("sys-usb", [pci(EHCI2, options={"fast": True})]),                   # unknown option
        devices("sys-usb", [pci("00_1a.0")]),                                       # not BACKEND:PORT
        devices("sys-usb", [pci(EHCI2, device_id="0x8086:0x1502::p020000")]),       # another device there
        devices("sys-usb", [pci(EHCI2), pci(EHCI2)]),                               # twice
        devices("ghost", [pci(EHCI2)]),                                             # no such qube
        devices("dom0", [pci(EHCI2)]),
        devices(qubes={"sys-usb": [pci(EHCI2)]}, name="sys-usb"),                  # both forms
        devices(qubes={"sys-net": [pci(EHCI2)], "other": [pci(EHCI2)]}, strict=False,
                shutdown_if_needed=True),                                           # two running qubes
    ])
    fields = [r.get("field") for r in run.results]
    assert all(r["failed"] for r in run.results), run.output
    assert fields == ["devices[0].device", "devices[0].device", "devices[0].device", "devices[0].class",
                      "devices[0].mode", "devices[0].mode", "devices[0].options.fast", "devices[0].device",
                      "devices[0].device_id", "devices[1]", "name", "name", "qubes", "qubes.other[0].device"]
    msgs = [r["msg"] for r in run.results]
    assert "no pci device 09_00.0" in msgs[0] and "present: dom0:00_19.0" in msgs[0]
    assert "assigned to running sys-net" in msgs[1]
    assert "virt_mode pvh" in msgs[2]
    assert "wanted by running" in msgs[13] or "assigned to running" in msgs[13]
    assert dom0.writes_since(mark) == []


def test_r42(dom0_factory, tmp_path):
    r42 = dom0_factory(release="4.2")
    player = Player(r42, tmp_path)
    client = r42.client()
    player.run([qube("sys-usb", label="red", netvm="")])
    wanted = devices("sys-usb", [pci(EHCI2, options=NSR), pci(EHCI1, options=NSR)], classes=["pci"])
    mark = r42.mark()
    checked = player.run([wanted], check=True, diff=True)
    assert checked[0]["changed"] and r42.writes_since(mark) == []
    run = player.run([wanted, wanted,
                      devices("sys-usb", [pci(EHCI2, options=NSR)], classes=["pci"]),
                      devices("sys-usb", [pci(EHCI2, mode="required", device_id="0x8086:0x1c2d::p0c0320")]),
                      devices("sys-usb", [pci("dom0:09_00.0")])])
    assert [r["changed"] for r in run.results[:3]] == [True, False, True]
    assert run[0]["actions"][0] == "assign pci device dom0:00_1a.0 to sys-usb with no-strict-reset=True"
    assert client.call("admin.vm.device.pci.List", "sys-usb") == "dom0+00_1a.0 no-strict-reset=True persistent=yes\n"
    assert run[3]["failed"] and run[3]["field"] == "devices[0].device_id"
    assert run[4]["failed"] and run[4]["field"] == "devices[0].device"
    # an attachment made persistent rather than re-made
    client.start("sys-usb")
    client.call("admin.vm.device.pci.Attach", "sys-usb", "dom0+00_1d.0", "")
    persist = player.run([devices("sys-usb", [pci(EHCI2, options=NSR), pci(EHCI1)], classes=["pci"])])
    assert persist[0]["actions"] == ["make the attachment of pci device dom0:00_1d.0 to sys-usb persistent"]
    assert client.call("admin.vm.device.pci.List", "sys-usb").count("persistent=yes") == 2
