# SPDX-License-Identifier: GPL-3.0-or-later
"""The client from a management qube: qrexec-client-vm, through a relaying test double."""

from __future__ import annotations

import pathlib
import sys

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import wire

RELAY_SOURCE = pathlib.Path(__file__).parent / "qrexec_relay.py"


@pytest.fixture
def relay(tmp_path):
    """An executable qrexec-client-vm that runs the relay."""
    path = tmp_path / "qrexec-client-vm"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {RELAY_SOURCE} \"$@\"\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def mgmt(dom0, relay, monkeypatch):
    """A client in a qube named mgmt, calling through qrexec."""
    dom0.client().create("AppVM", "mgmt", "black")
    monkeypatch.setenv("QREXEC_TEST_SOURCE", "mgmt")
    monkeypatch.setenv("QREXEC_TEST_SOCKET", dom0.socket)
    return client_mod.AdminClient(client_mod.QrexecTransport(relay))


def test_calls_arrive_with_the_qube_as_source(dom0, mgmt):
    mark = dom0.mark()
    assert mgmt.property_get("sys-net", "provides_network").native is True
    mgmt.property_set("sys-net", "memory", 512)
    assert mgmt.property_get(None, "default_netvm").native == "sys-firewall"  # keyword adminvm -> dom0
    entries = dom0.calls_since(mark)
    assert {e["source"] for e in entries} == {"mgmt"}
    assert dom0.client().property_get("sys-net", "memory").native == 512


def test_vm_list_is_filtered_by_policy(mgmt):
    # a fresh dom0 grants admin.vm.List to no qube: the list comes back empty
    assert mgmt.list_vms() == {}


def test_errors_keep_their_type(mgmt):
    with pytest.raises(wire.QubesVMNotFoundError):
        mgmt.property_get("nosuch", "netvm")


def test_created_by_tags_are_protected_from_qubes(dom0, mgmt):
    with pytest.raises(wire.QubesDaemonAccessError):
        mgmt.tag_set("sys-net", "created-by-mgmt")
    mgmt.create("AppVM", "made-by-mgmt", "red")
    assert "created-by-mgmt" in dom0.client().tag_list("made-by-mgmt")


def test_refused_call(mgmt, monkeypatch):
    monkeypatch.setenv("QREXEC_TEST_REFUSE", "admin.vm.Remove")
    with pytest.raises(wire.QubesDaemonAccessError, match="refused.*exit status 126.*Request refused"):
        mgmt.remove("sys-net")


def test_missing_qrexec_client():
    client = client_mod.AdminClient(client_mod.QrexecTransport("/nonexistent/qrexec-client-vm"))
    with pytest.raises(wire.QubesDaemonCommunicationError, match="not found"):
        client.list_vms()


def test_socket_transport_reports_a_missing_socket(tmp_path):
    client = client_mod.AdminClient(client_mod.SocketTransport(str(tmp_path / "none.sock")))
    with pytest.raises(wire.QubesDaemonCommunicationError, match="Failed to connect to qubesd"):
        client.list_vms()


def test_transport_selection(monkeypatch, tmp_path, relay):
    monkeypatch.delenv("QUBESD_SOCKET", raising=False)
    monkeypatch.setenv("QREXEC_CLIENT_VM", relay)
    assert isinstance(client_mod.default_transport(), client_mod.QrexecTransport)
    monkeypatch.setenv("QUBESD_SOCKET", str(tmp_path / "q.sock"))
    transport = client_mod.default_transport()
    assert isinstance(transport, client_mod.SocketTransport) and transport.path == str(tmp_path / "q.sock")
    assert client_mod.default_transport(socket_path="/x.sock").path == "/x.sock"


def test_client_counts_calls(dom0):
    client = dom0.client()
    client.list_vms()
    client.property_get_all("sys-net")
    client.property_get_all("sys-firewall")
    assert client.calls == {"admin.vm.List": 1, "admin.vm.property.GetAll": 2}
    assert client.seconds > 0
