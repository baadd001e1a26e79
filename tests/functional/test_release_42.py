# SPDX-License-Identifier: GPL-3.0-or-later
"""R4.2 behaviour, where it differs from R4.3."""

from __future__ import annotations

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import wire


@pytest.fixture
def r42(dom0_factory):
    """A fresh R4.2 rehearsal dom0."""
    return dom0_factory(release="4.2")


def test_fresh_r42(r42):
    client = r42.client()
    vms = client.list_vms()
    assert list(vms) == ["dom0", "debian-12-xfce", "default-dvm", "fedora-41-xfce", "sys-firewall", "sys-net"]
    assert all(entry.uuid is None for entry in vms.values())
    assert r42.raw(b"admin.vm.List+ dom0 name sys-net\x00") == b"0\x00sys-net class=AppVM state=Halted\n"
    assert client.vm_classes() == ["AdminVM", "AppVM", "DispVM", "StandaloneVM", "TemplateVM"]


def test_r42_property_set_has_no_r43_only_properties(r42):
    props = r42.client().property_list("sys-net")
    assert "bootmode" not in props and "devices_denied" not in props and "stubdom_uuid" not in props
    assert "netvm" in props


def test_r42_names_and_errors(r42):
    client = r42.client()
    with pytest.raises(wire.QubesValueError, match="VM name contains illegal characters"):
        client.create("AppVM", "with.dot", "red")
    with pytest.raises(wire.QubesValueError) as info:
        client.create("AppVM", "new", "pink")
    assert info.value.message == ""
    with pytest.raises(wire.QubesDaemonAccessError):
        client.create("AppVM", "new", "red", "nosuch")
    with pytest.raises(wire.QubesVMNotFoundError, match="No such domain: 'nosuch'"):
        client.property_set("sys-net", "default_dispvm", "nosuch")
    with pytest.raises(wire.QubesVMInUseError, match=r"Domain is in use: 'fedora-41-xfce';see"):
        client.remove("fedora-41-xfce")


def test_r42_lacks_r43_methods(r42):
    client = r42.client()
    client.start("sys-net")
    for method in ("admin.vm.Suspend", "admin.vm.notes.Get", "admin.vm.device.pci.Assigned"):
        with pytest.raises(wire.QubesDaemonAccessError):
            client.call(method, "sys-net")
    assert client.call("admin.vm.device.pci.List", "sys-net") == (
        "dom0+00_19.0 no-strict-reset=True persistent=yes\ndom0+03_00.0 no-strict-reset=True persistent=yes\n")


def test_r42_features_are_not_validated(r42):
    client = r42.client()
    client.feature_set("sys-net", "preload-dispvm", "1")
    assert client.feature_get("sys-net", "preload-dispvm") == "1"
