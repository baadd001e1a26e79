# SPDX-License-Identifier: GPL-3.0-or-later
"""The call sequences real qvm-* tools make, replayed through the client.

The real tools are not installable here; these tests make the calls the
tools were measured to make (same methods, same order, same payload forms)
and check every answer has the shape the tools parse.
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import formats, wire

CLONE_SKIPPED = {"name", "qid", "template", "label", "uuid", "installed_by_rpm"}


def qvm_clone(client, src: str, dst: str) -> None:
    """What qvm-clone SRC DST does (R4.3), call for call."""
    client.list_vms()
    client.list_vms()
    props = {name: client.property_get(src, name) for name in client.property_list(src)}
    template = props["template"].value if "template" in props else ""
    klass = client.list_vms(src)[src].klass
    client.call(f"admin.vm.Create.{klass}", "dom0", template, f"name={dst} label={props['label'].value}")
    writable = client.property_list(dst)
    for name, value in props.items():
        if value.is_default or name in CLONE_SKIPPED or name not in writable:
            continue
        try:
            client.call("admin.vm.property.Set", dst, name, value.value)
        except wire.QubesPropertyValueError as exc:
            if "cannot be set" not in str(exc):
                raise
    for tag in client.tag_list(src):
        if not tag.startswith("created-by-"):
            client.tag_set(dst, tag)
    for feature in client.feature_list(src):
        client.feature_set(dst, feature, client.feature_get(src, feature))
    notes = client.call("admin.vm.notes.Get", src)
    if notes:
        client.call("admin.vm.notes.Set", dst, "", notes)
    client.firewall_set(dst, client.firewall_get(src))
    for volume in client.volume_list(src):
        if client.volume_list(dst) and client.volume_info(src, volume)["save_on_stop"]:
            token = client.call("admin.vm.volume.CloneFrom", src, volume)
            assert re.fullmatch(r"[A-Za-z0-9]{32}", token)
            client.call("admin.vm.volume.CloneTo", dst, volume, token)
    for devclass in formats.parse_lines(client.call("admin.deviceclass.List")):
        for line in formats.parse_lines(client.call(f"admin.vm.device.{devclass}.Assigned", src)):
            key, _sep, serialization = line.partition(" ")
            props = formats.parse_device_properties(serialization)
            props["frontend_domain"] = dst
            client.call(f"admin.vm.device.{devclass}.Assign", dst, key.replace(":", "+"),
                        formats.render_device_properties(props.items()))


def test_qvm_clone(dom0):
    client = dom0.client()
    client.feature_set("sys-firewall", "custom", "x")
    client.tag_set("sys-firewall", "corral")
    client.firewall_set("sys-firewall", ["action=accept dsthost=192.0.2.0/24", "action=drop"])
    client.volume_resize("sys-firewall", "private", 3 * 1024 ** 3)
    client.call("admin.vm.notes.Set", "sys-firewall", "", "the firewall")
    qvm_clone(client, "sys-firewall", "sys-firewall2")
    for name in ("provides_network", "netvm", "autostart", "label"):
        assert client.property_get("sys-firewall2", name).value == client.property_get("sys-firewall", name).value
    assert client.feature_get("sys-firewall2", "custom") == "x"
    assert "corral" in client.tag_list("sys-firewall2")
    assert client.firewall_get("sys-firewall2") == client.firewall_get("sys-firewall")
    assert client.volume_info("sys-firewall2", "private")["size"] == 3 * 1024 ** 3
    assert client.call("admin.vm.notes.Get", "sys-firewall2") == "the firewall"


def test_qvm_clone_copies_device_assignments(client):
    qvm_clone(client, "sys-net", "sys-net2")
    assert client.call("admin.vm.device.pci.Assigned", "sys-net2") == \
        client.call("admin.vm.device.pci.Assigned", "sys-net").replace("frontend_domain='sys-net'",
                                                                       "frontend_domain='sys-net2'")
    assert client.property_get("sys-net2", "virt_mode").value == "hvm"


def test_clone_token_is_single_use(client):
    token = client.call("admin.vm.volume.CloneFrom", "sys-net", "private")
    client.create("AppVM", "copy", "red")
    client.call("admin.vm.volume.CloneTo", "copy", "private", token)
    with pytest.raises(wire.QubesDaemonAccessError):
        client.call("admin.vm.volume.CloneTo", "copy", "private", token)


def test_qvm_remove_names_the_users(client):
    """qvm-remove on QubesVMInUseError asks every property to name the holders."""
    with pytest.raises(wire.QubesVMInUseError):
        client.remove("sys-net")
    holders = [("global", p) for p in client.property_list(None)
               if client.property_get(None, p).type == "vm" and client.property_get(None, p).value == "sys-net"]
    for qube in client.list_vms():
        for prop, value in client.property_get_all(qube).items():
            if value.type == "vm" and value.value == "sys-net" and not value.is_default:
                holders.append((qube, prop))
    assert holders == [("global", "clockvm"), ("sys-firewall", "netvm")]


def test_qvm_volume_info(client):
    client.list_vms()
    assert "private" in client.volume_list("sys-net")
    info = formats.parse_kv_lines(client.call("admin.vm.volume.Info", "sys-net", "private"))
    assert list(info) == list(formats.VOLUME_INFO_KEYS)
    assert client.volume_list_snapshots("sys-net", "private") == []


def test_qvm_ls_and_qvm_prefs(client):
    for name in client.list_vms():
        props = client.property_get_all(name)
        assert props["klass"].value and "label" in props
    assert client.property_list("sys-net") == list(client.property_get_all("sys-net"))
    assert client.property_list(None) == list(client.property_get_all(None))


def test_device_calls(client):
    assert client.call("admin.deviceclass.List") == "pci\nblock\nusb\nmic\n"
    assert client.call("admin.vm.device.pci.Assigned", "sys-net") == (
        "dom0+00_19.0:0x8086:0x1502::p020000 device_id='0x8086:0x1502::p020000' port_id='00_19.0' devclass='pci' "
        "backend_domain='dom0' mode='required' frontend_domain='sys-net' _no-strict-reset='True'\n"
        "dom0+03_00.0:0x8086:0x0085::p028000 device_id='0x8086:0x0085::p028000' port_id='03_00.0' devclass='pci' "
        "backend_domain='dom0' mode='required' frontend_domain='sys-net' _no-strict-reset='True'\n")
    assert client.call("admin.vm.device.block.Assigned", "sys-net") == ""
    assert client.call("admin.vm.device.pci.Attached", "sys-net") == ""
    client.start("sys-net")
    assert client.call("admin.vm.device.pci.Attached", "sys-net").count("\n") == 2
    available = client.call("admin.vm.device.pci.Available", "dom0")
    assert available.count("\n") == 4 and "port_id='00_1a.0'" in available
    assert client.call("admin.vm.device.denied.List", "sys-net") == ""
    with pytest.raises(wire.QubesDaemonAccessError):
        client.call("admin.vm.device.pci.List", "sys-net")  # gone in R4.3
    with pytest.raises(wire.QubesDaemonAccessError):
        client.call("admin.vm.device.nosuch.Assigned", "sys-net")


def test_notes(client):
    assert client.call("admin.vm.notes.Get", "sys-net") == ""
    client.call("admin.vm.notes.Set", "sys-net", "", "NIC: Intel 82579LM\tok\n\x07bell")
    assert client.call("admin.vm.notes.Get", "sys-net") == "NIC: Intel 82579LM\tok\n_bell"
    with pytest.raises(wire.QubesDaemonAccessError):
        client.call("admin.vm.notes.Get", "dom0")
