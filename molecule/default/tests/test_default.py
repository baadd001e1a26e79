# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify the converged layout through the Admin API (testinfra runs on the instance, dom0)."""

from __future__ import annotations

import os

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod

GiB = 1024 ** 3


def admin():
    """A client on the rehearsal dom0 Molecule created."""
    return client_mod.AdminClient(client_mod.SocketTransport(os.environ["QUBESD_SOCKET"]))


def test_domains_as_layout_data(host):
    result = host.ansible("corral.qubes.qube_info", "names=secure,personal,untrusted,vault,win7", check=False)
    qubes = result["qubes"]
    assert {name: data["label"] for name, data in qubes.items()} == {
        "secure": "green", "personal": "yellow", "untrusted": "red", "vault": "black", "win7": "blue"}
    assert qubes["untrusted"]["state"] == "running" and qubes["secure"]["state"] == "halted"
    assert qubes["vault"]["netvm"] == "" and qubes["secure"]["netvm"] == "sys-firewall"
    assert qubes["secure"]["services"] == {"cups": False}
    assert qubes["personal"]["volumes"]["private"] == "10GiB"
    assert qubes["win7"]["class"] == "StandaloneVM" and qubes["win7"]["volumes"]["root"] == "60GiB"
    assert qubes["win7"]["properties"] == {"virt_mode": "hvm", "kernel": "", "memory": 4096, "maxmem": 0}


def test_tags_and_power_through_the_admin_api():
    client = admin()
    vms = client.list_vms()
    assert vms["untrusted"].state == "Running"
    assert vms["sys-firewall"].state == "Running" and vms["sys-net"].state == "Running"
    for name in ("secure", "personal", "untrusted"):
        assert {"corral", "domain"} <= set(client.tag_list(name))
    assert client.feature_get("win7", "os") == "Windows"
    assert client.volume_info("win7", "root")["size"] == 60 * GiB


def test_global_preferences():
    client = admin()
    assert client.property_get(None, "default_dispvm").value == "untrusted-dvm"
    timeout = client.property_get(None, "default_qrexec_timeout")
    assert (timeout.value, timeout.is_default) == ("90", False)
    assert client.property_get("untrusted-dvm", "template_for_dispvms").value == "True"
