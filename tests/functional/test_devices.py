# SPDX-License-Identifier: GPL-3.0-or-later
"""Device assignment and attachment (R4.3 device API; R4.2's old one)."""

from __future__ import annotations

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import formats, wire
from rehearsal import seed

EHCI = ("00_1a.0", "0x8086:0x1c2d::p0c0320")


def assignment(port, device, mode="required", frontend="sys-usb", **options):
    items = [("device_id", device), ("port_id", port), ("devclass", "pci"), ("backend_domain", "dom0"),
             ("mode", mode), ("frontend_domain", frontend)]
    items += [(f"_{k}", v) for k, v in options.items()]
    return formats.render_device_properties(items)


def arg(port, device):
    return f"dom0+{port}+{device.replace(':', '+')}"


@pytest.fixture
def usb(client):
    """A sys-usb qube, as the reference layout has one."""
    client.create("AppVM", "sys-usb", "red")
    return client


def assigned(client, qube="sys-usb"):
    return [line.split(" ", 1) for line in formats.parse_lines(client.call("admin.vm.device.pci.Assigned", qube))]


def test_assign_a_usb_controller(usb):
    assert usb.property_get("sys-usb", "virt_mode").value == "pvh"
    usb.call("admin.vm.device.pci.Assign", "sys-usb", arg(*EHCI), assignment(*EHCI, **{"no-strict-reset": "True"}))
    [(key, props)] = assigned(usb)
    assert key == "dom0+00_1a.0:0x8086:0x1c2d::p0c0320"
    assert formats.parse_device_properties(props) == {
        "device_id": EHCI[1], "port_id": EHCI[0], "devclass": "pci", "backend_domain": "dom0", "mode": "required",
        "frontend_domain": "sys-usb", "_no-strict-reset": "True"}
    assert usb.property_get("sys-usb", "virt_mode").value == "hvm"   # PCI devices: HVM by default
    assert usb.property_get("sys-usb", "maxmem").native == 0         # and no memory balancing
    assert usb.call("admin.vm.device.pci.Attached", "sys-usb") == ""
    usb.start("sys-usb")
    assert usb.call("admin.vm.device.pci.Attached", "sys-usb").startswith("dom0+00_1a.0:0x8086:0x1c2d::p0c0320 ")
    with pytest.raises(wire.QubesPropertyValueError, match="pvh mode can't be set if pci devices are assigned"):
        usb.property_set("sys-usb", "virt_mode", "pvh")


def test_assign_refusals(dom0, usb):
    usb.call("admin.vm.device.pci.Assign", "sys-usb", arg(*EHCI), assignment(*EHCI))
    mark = dom0.mark()
    with pytest.raises(wire.DeviceAlreadyAssigned, match="already assigned to sys-usb"):
        usb.call("admin.vm.device.pci.Assign", "sys-usb", arg(*EHCI), assignment(*EHCI))
    with pytest.raises(wire.QubesValueError, match="pci devices cannot be assigned in 'auto-attach' mode"):
        usb.call("admin.vm.device.pci.Assign", "sys-usb", arg("00_1d.0", "0x8086:0x1c26::p0c0320"),
                 assignment("00_1d.0", "0x8086:0x1c26::p0c0320", mode="auto-attach"))
    with pytest.raises(wire.QubesException, match="Got device with id: 00_1d.0 when expected id: 00_1a.0"):
        usb.call("admin.vm.device.pci.Assign", "sys-usb", arg(*EHCI), assignment("00_1d.0", EHCI[1]))
    other = ("00_1d.0", "0x8086:0x1c26::p0c0320")
    for bad_arg, payload in ((arg(*other), assignment(*other, mode="manual")),     # manual: not assignable
                             (arg(*EHCI), "device_id='unterminated"),              # malformed serialization
                             ("nosuchqube+00_1a.0+x", assignment(*EHCI))):         # unknown backend
        with pytest.raises(wire.QubesDaemonAccessError):
            usb.call("admin.vm.device.pci.Assign", "sys-usb", bad_arg, payload)
    usb.create("AppVM", "pvh-only", "red")
    usb.property_set("pvh-only", "virt_mode", "pvh")
    with pytest.raises(wire.QubesException, match="Can't attach PCI device to VM in pvh mode"):
        usb.call("admin.vm.device.pci.Assign", "pvh-only", arg(*EHCI), assignment(*EHCI, frontend="pvh-only"))
    assert dom0.writes_since(mark) == [e for e in dom0.calls_since(mark)
                                       if e["method"] == "admin.vm.Create.AppVM" or e["arg"] == "virt_mode"]
    assert len(assigned(usb)) == 1


def test_unassign_and_set_assignment(usb):
    usb.call("admin.vm.device.pci.Assign", "sys-usb", arg(*EHCI), assignment(*EHCI))
    with pytest.raises(wire.QubesValueError, match="pci devices cannot be assigned in 'ask-to-attach' mode"):
        usb.call("admin.vm.device.pci.Set.assignment", "sys-usb", arg(*EHCI), "ask-to-attach")
    with pytest.raises(wire.QubesDaemonAccessError):
        usb.call("admin.vm.device.pci.Set.assignment", "sys-usb", arg(*EHCI), "sometimes")
    usb.call("admin.vm.device.pci.Unassign", "sys-usb", arg(*EHCI))
    assert assigned(usb) == []
    with pytest.raises(wire.DeviceNotAssigned, match="not assigned to sys-usb"):
        usb.call("admin.vm.device.pci.Unassign", "sys-usb", arg(*EHCI))


def test_usb_class_modes(usb):
    usb.create("AppVM", "work", "blue")
    payload = formats.render_device_properties([
        ("device_id", "1050:0407:0001:u03**01"), ("port_id", "2-1"), ("devclass", "usb"),
        ("backend_domain", "sys-usb"), ("mode", "auto-attach"), ("frontend_domain", "work")])
    usb.call("admin.vm.device.usb.Assign", "work", "sys-usb+2-1+1050+0407+0001+u03**01", payload)
    usb.call("admin.vm.device.usb.Set.assignment", "work", "sys-usb+2-1+1050+0407+0001+u03**01", "ask-to-attach")
    line = usb.call("admin.vm.device.usb.Assigned", "work")
    assert line.startswith("sys-usb+2-1:1050:0407:0001:u03**01 ") and "mode='ask-to-attach'" in line


def test_attach_and_detach(usb):
    with pytest.raises(wire.QubesVMNotRunningError, match="do you mean `assign`"):
        usb.call("admin.vm.device.pci.Attach", "sys-usb", arg(*EHCI), assignment(*EHCI, mode="manual"))
    usb.start("sys-usb")
    with pytest.raises(wire.QubesDaemonAccessError):  # dom0 exposes no such port
        usb.call("admin.vm.device.pci.Attach", "sys-usb", arg("09_00.0", "1:2"), assignment("09_00.0", "1:2", "manual"))
    usb.call("admin.vm.device.pci.Attach", "sys-usb", arg(*EHCI), assignment(*EHCI, mode="manual"))
    assert "mode='manual'" in usb.call("admin.vm.device.pci.Attached", "sys-usb")
    with pytest.raises(wire.DeviceAlreadyAttached):
        usb.call("admin.vm.device.pci.Attach", "sys-usb", arg(*EHCI), assignment(*EHCI, mode="manual"))
    usb.call("admin.vm.device.pci.Detach", "sys-usb", arg(*EHCI))
    assert usb.call("admin.vm.device.pci.Attached", "sys-usb") == ""
    with pytest.raises(wire.DeviceNotAssigned, match="not attached to sys-usb"):
        usb.call("admin.vm.device.pci.Detach", "sys-usb", arg(*EHCI))
    with pytest.raises(wire.QubesVMNotHaltedError, match="unassign device first"):
        usb.call("admin.vm.device.pci.Detach", "sys-net", arg("00_19.0", "0x8086:0x1502::p020000"))


def test_manual_attachments_end_with_the_qube(usb):
    usb.start("sys-usb")
    usb.call("admin.vm.device.pci.Attach", "sys-usb", arg(*EHCI), assignment(*EHCI, mode="manual"))
    usb.kill("sys-usb")
    usb.start("sys-usb")
    assert usb.call("admin.vm.device.pci.Attached", "sys-usb") == ""


def test_assignments_survive_a_restart(dom0, usb):
    usb.call("admin.vm.device.pci.Assign", "sys-usb", arg(*EHCI), assignment(*EHCI))
    dom0.restart()
    assert len(assigned(dom0.client())) == 1


def test_r42_device_api(dom0_factory):
    r42 = dom0_factory(release="4.2").client()
    r42.create("AppVM", "sys-usb", "red")
    r42.call("admin.vm.device.pci.Attach", "sys-usb", "dom0+00_1a.0", "no-strict-reset=True persistent=True")
    assert r42.call("admin.vm.device.pci.List", "sys-usb") == "dom0+00_1a.0 no-strict-reset=True persistent=yes\n"
    assert r42.property_get("sys-usb", "virt_mode").value == "hvm"
    r42.start("sys-usb")
    r42.call("admin.vm.device.pci.Attach", "sys-usb", "dom0+00_1d.0", "")
    assert "dom0+00_1d.0 persistent=no" in r42.call("admin.vm.device.pci.List", "sys-usb")
    r42.call("admin.vm.device.pci.Set.persistent", "sys-usb", "dom0+00_1d.0", "True")
    assert r42.call("admin.vm.device.pci.List", "sys-usb").count("persistent=yes") == 2
    with pytest.raises(wire.QubesDaemonAccessError):
        r42.call("admin.vm.device.pci.Assign", "sys-usb", "dom0+00_1a.0", "")


# R4.3 replies as qubesd sends them (the byte form documented by qubesadmin's own qvm-device tests: the
# virtual device first, then the known text fields, the interfaces and the class's extra data).
DOCUMENTED_AVAILABLE = (
    b"0\x0000_14.0:0x8086:0xa0ed::p0c0330 device_id='0x8086:0xa0ed::p0c0330' port_id='00_14.0' devclass='pci' "
    b"backend_domain='dom0' product='p1' vendor='v' interfaces='p0c0330' _sbdf='0000:00:14.0'\n")
T420S_AVAILABLE = (
    b"0\x00"
    b"00_19.0:0x8086:0x1502::p020000 device_id='0x8086:0x1502::p020000' port_id='00_19.0' devclass='pci' "
    b"backend_domain='dom0' product='82579LM Gigabit Network Connection (Lewisville)' vendor='Intel Corporation' "
    b"interfaces='p020000' _sbdf='0000:00:19.0'\n"
    b"00_1a.0:0x8086:0x1c2d::p0c0320 device_id='0x8086:0x1c2d::p0c0320' port_id='00_1a.0' devclass='pci' "
    b"backend_domain='dom0' product='6 Series/C200 Series Chipset Family USB Enhanced Host Controller #2' "
    b"vendor='Intel Corporation' interfaces='p0c0320' _sbdf='0000:00:1a.0'\n"
    b"00_1d.0:0x8086:0x1c26::p0c0320 device_id='0x8086:0x1c26::p0c0320' port_id='00_1d.0' devclass='pci' "
    b"backend_domain='dom0' product='6 Series/C200 Series Chipset Family USB Enhanced Host Controller #1' "
    b"vendor='Intel Corporation' interfaces='p0c0320' _sbdf='0000:00:1d.0'\n"
    b"03_00.0:0x8086:0x0085::p028000 device_id='0x8086:0x0085::p028000' port_id='03_00.0' devclass='pci' "
    b"backend_domain='dom0' product='Centrino Advanced-N 6205 [Taylor Peak]' vendor='Intel Corporation' "
    b"interfaces='p028000' _sbdf='0000:03:00.0'\n")
T420S_ASSIGNED_SYS_NET = (
    b"0\x00"
    b"dom0+00_19.0:0x8086:0x1502::p020000 device_id='0x8086:0x1502::p020000' port_id='00_19.0' devclass='pci' "
    b"backend_domain='dom0' mode='required' frontend_domain='sys-net' _no-strict-reset='True'\n"
    b"dom0+03_00.0:0x8086:0x0085::p028000 device_id='0x8086:0x0085::p028000' port_id='03_00.0' devclass='pci' "
    b"backend_domain='dom0' mode='required' frontend_domain='sys-net' _no-strict-reset='True'\n")


def test_r43_device_replies_byte_for_byte(dom0_factory):
    state = seed.fresh_state("4.3")
    state.pci_devices = {"00_14.0": {"device_id": "0x8086:0xa0ed::p0c0330", "vendor": "v", "product": "p1",
                                     "interfaces": "p0c0330", "sbdf": "0000:00:14.0"}}
    documented = dom0_factory(state=state, name="documented")
    assert documented.raw(b"admin.vm.device.pci.Available dom0 name dom0\x00") == DOCUMENTED_AVAILABLE
    fresh = dom0_factory(name="t420s")
    assert fresh.raw(b"admin.vm.device.pci.Available dom0 name dom0\x00") == T420S_AVAILABLE
    assert fresh.raw(b"admin.vm.device.pci.Assigned dom0 name sys-net\x00") == T420S_ASSIGNED_SYS_NET
    # the device ids of sys-net's assignments are those dom0 exposes: one device, one assignment
    available = formats.parse_lines(fresh.client().call("admin.vm.device.pci.Available", "dom0"))
    exposed = {line.split(" ", 1)[0] for line in available}
    assigned = {line.split(" ", 1)[0].split("+", 1)[1]
                for line in formats.parse_lines(fresh.client().call("admin.vm.device.pci.Assigned", "sys-net"))}
    assert assigned <= exposed and len(assigned) == 2


def test_r42_available_keeps_its_form(dom0_factory):
    r42 = dom0_factory(release="4.2")
    assert r42.raw(b"admin.vm.device.pci.Available dom0 name dom0\x00").split(b"\n")[0] == (
        b"0\x0000_19.0 description=Ethernet controller: Intel Corporation 82579LM Gigabit Network Connection "
        b"(Lewisville)")
