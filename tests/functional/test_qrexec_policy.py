# SPDX-License-Identifier: GPL-3.0-or-later
"""Calls from rehearsal qubes through the qrexec stand-in, under the qrexec policy; the clipboard."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import policy_client, wire
from harness import QREXEC_CLIENT, QREXEC_CLIENT_VM, ROOT
from rehearsal import qrexec_proto

GRANT_LIST = """\
admin.vm.List * mgmt @adminvm allow target=dom0
admin.vm.List * mgmt @tag:managed allow target=dom0
admin.vm.List * mgmt sys-net ask
admin.vm.property.Get * mgmt @tag:managed allow target=dom0
admin.vm.property.Set * mgmt sys-firewall deny
"""


@pytest.fixture
def dom0_admin(dom0, monkeypatch):
    """The policy admin client in dom0; also points the stand-ins at this dom0 from a qube named mgmt."""
    dom0.client().create("AppVM", "mgmt", "black")
    monkeypatch.setenv("REHEARSAL_QREXEC_SOCKET", dom0.qrexec_socket)
    monkeypatch.setenv("REHEARSAL_QUBE", "mgmt")
    return policy_client.PolicyAdmin(client_mod.QrexecTransport.for_dom0(str(QREXEC_CLIENT)))


@pytest.fixture
def mgmt(dom0_admin):
    """The Admin API client inside the qube mgmt, through qrexec-client-vm."""
    return client_mod.AdminClient(client_mod.QrexecTransport(str(QREXEC_CLIENT_VM), timeout=30))


def qrexec_vm(qube, target, service, payload=b"", env=None):
    """Run the qrexec-client-vm stand-in as ``qube``."""
    return subprocess.run([str(QREXEC_CLIENT_VM), target, service], input=payload, capture_output=True,
                          env=dict(env, REHEARSAL_QUBE=qube), timeout=30, check=False)


def test_calls_from_a_qube_are_refused_by_default(dom0, mgmt):
    mark = dom0.mark()
    with pytest.raises(wire.QubesDaemonAccessError, match=r"exit status 126\): Request refused"):
        mgmt.list_vms()
    with pytest.raises(wire.QubesDaemonAccessError, match="Request refused"):
        mgmt.property_get("sys-net", "netvm")
    assert dom0.calls_since(mark) == []  # qubesd never saw them


def test_an_admin_grant_lets_calls_through_and_filters_the_list(dom0, dom0_admin, mgmt):
    dom0.client().tag_set("sys-firewall", "managed")
    dom0_admin.replace("30-mgmt", GRANT_LIST, "new")
    mark = dom0.mark()
    # sys-net is only "ask": the list filter counts that as deny
    assert sorted(mgmt.list_vms()) == ["dom0", "sys-firewall"]
    assert mgmt.property_get("sys-firewall", "netvm").value == "sys-net"
    with pytest.raises(wire.QubesDaemonAccessError, match="Request refused"):
        mgmt.property_get("sys-net", "netvm")  # not tagged managed
    with pytest.raises(wire.QubesDaemonAccessError, match="Request refused"):
        mgmt.property_set("sys-firewall", "memory", 500)  # explicitly denied
    calls = dom0.calls_since(mark)
    assert [(c["method"], c["source"], c["dest"]) for c in calls] == [
        ("admin.vm.List", "mgmt", "dom0"), ("admin.vm.property.Get", "mgmt", "sys-firewall")]
    # the grant follows the tag, evaluated afresh for every call
    dom0.client().tag_remove("sys-firewall", "managed")
    assert sorted(mgmt.list_vms()) == ["dom0"]


def test_grants_through_the_default_include_files(dom0, dom0_admin, mgmt):
    _token, text = dom0_admin.include_get("admin-local-rwx")
    dom0_admin.include_replace("admin-local-rwx", text + "mgmt @tag:created-by-mgmt allow,target=dom0\n",
                               dom0_admin.include_get("admin-local-rwx")[0])
    _token, text = dom0_admin.include_get("admin-global-rwx")
    dom0_admin.include_replace("admin-global-rwx", text + "mgmt @adminvm allow,target=dom0\n", "any")
    mgmt.create("AppVM", "made-by-mgmt", "red")  # admin.vm.Create.AppVM: global, read-write
    mgmt.property_set("made-by-mgmt", "memory", 600)  # local, read-write
    assert mgmt.property_get("made-by-mgmt", "memory").native == 600  # read-only includes read-write
    assert "created-by-mgmt" in mgmt.tag_list("made-by-mgmt")
    with pytest.raises(wire.QubesDaemonAccessError):
        mgmt.property_get("sys-net", "memory")
    with pytest.raises(wire.QubesDaemonAccessError):
        mgmt.property_get_all("made-by-mgmt")  # 91-admin-default-deny
    assert sorted(mgmt.list_vms()) == ["dom0"]  # admin.vm.List is granted per listed qube: only to @adminvm


def test_policy_api_from_a_qube_needs_a_grant(dom0, dom0_admin):
    in_qube = policy_client.PolicyAdmin(client_mod.QrexecTransport(str(QREXEC_CLIENT_VM)))
    with pytest.raises(policy_client.PolicyRefused, match="Request refused"):
        in_qube.list()
    dom0_admin.include_replace("admin-policy-ro", dom0_admin.include_get("admin-policy-ro")[1]
                               + "mgmt @adminvm allow,target=dom0\n", "any")
    assert "90-default" in in_qube.list()
    with pytest.raises(policy_client.PolicyRefused):
        in_qube.replace("30-user", "", "new")  # read-only grant
    dom0_admin.include_replace("admin-policy-rwx", "mgmt @adminvm allow,target=dom0\n", "any")
    in_qube.replace("30-user", "qubes.Filecopy * mgmt @anyvm deny\n", "new")
    assert dom0_admin.get("30-user")[1] == "qubes.Filecopy * mgmt @anyvm deny\n"


def test_other_services(dom0, dom0_admin):
    env = dom0.qube_env("mgmt")
    refused = qrexec_vm("mgmt", "sys-net", "qubes.VMShell", env=env)  # 90-default denies
    assert (refused.returncode, refused.stderr) == (126, b"Request refused\n")
    dom0_admin.replace("30-user", "my.Service +x mgmt sys-net allow\n", "new")
    allowed = qrexec_vm("mgmt", "sys-net", "my.Service+x", env=env)
    assert allowed.returncode == 127 and b"no such service" in allowed.stderr
    assert qrexec_vm("mgmt", "sys-net", "my.Service+y", env=env).returncode == 126
    assert qrexec_vm("ghost", "sys-net", "my.Service+x", env=env).returncode == 126


def test_an_invalid_policy_on_disk_denies_everything(dom0, dom0_admin, mgmt):
    dom0_admin.replace("30-mgmt", GRANT_LIST, "new")
    assert "dom0" in mgmt.list_vms()
    (dom0.policy_dir / "40-Broken.policy").write_text("")  # a bad name, written behind the API's back
    with pytest.raises(wire.QubesDaemonAccessError, match="Request refused"):
        mgmt.list_vms()
    (dom0.policy_dir / "40-Broken.policy").unlink()
    assert "dom0" in mgmt.list_vms()


def test_events_from_a_qube_are_filtered(dom0, dom0_admin):
    dom0_admin.replace("30-mgmt", "admin.Events * mgmt @adminvm allow target=dom0\n"
                                  "admin.Events * mgmt sys-net allow target=dom0\n", "new")
    proc = subprocess.Popen([str(QREXEC_CLIENT_VM), "dom0", "admin.Events"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, env=dom0.qube_env("mgmt"))
    try:
        first = proc.stdout.read(len(b"1\x00\x00connection-established\x00\x00"))
        assert first == b"1\x00\x00connection-established\x00\x00"
        admin = dom0.client()
        admin.feature_set("sys-firewall", "hidden", "1")
        admin.feature_set("sys-net", "seen", "1")
        data = b""
        while b"feature-set:seen" not in data:
            data += proc.stdout.read1(65536)
        assert b"sys-firewall" not in data
    finally:
        proc.kill()
        proc.wait()


# -- clipboard --------------------------------------------------------------------------------

CLIPBOARD_POLICY = """\
qubes.ClipboardPaste * secure personal allow
qubes.ClipboardPaste * personal work allow
qubes.ClipboardPaste * work personal ask
qubes.ClipboardPaste * untrusted personal ask
qubes.ClipboardPaste * @adminvm work deny
qubes.ClipboardPaste * @anyvm @anyvm deny
"""


def clipboard(dom0, *args):
    """``python -m rehearsal clipboard ...`` against this dom0."""
    return subprocess.run([sys.executable, "-m", "rehearsal", "clipboard", *args, "--qrexec-socket",
                           dom0.qrexec_socket], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)


def gui_daemon(dom0, service, qube, payload=b""):
    """What the CLI sends: a dom0 call of the clipboard service; (status, stdout, stderr)."""
    out = io.BytesIO()
    status, stderr = qrexec_proto.call(dom0.qrexec_socket, "dom0", qube, service, payload, out)
    return status, out.getvalue(), stderr


def test_clipboard_cli(dom0, dom0_admin):
    dom0.client().create("AppVM", "work", "red")
    assert clipboard(dom0, "paste", "work").stderr == "The clipboard is empty\n"
    assert clipboard(dom0, "copy", "sys-net", "from sys-net").returncode == 0
    pasted = clipboard(dom0, "paste", "work")  # default policy: ask, taken as yes
    assert (pasted.returncode, pasted.stdout) == (0, "from sys-net")
    assert clipboard(dom0, "paste", "work").returncode == 1  # a paste empties the clipboard
    dom0_admin.replace("30-clipboard", CLIPBOARD_POLICY, "new")
    assert clipboard(dom0, "copy", "dom0", "from dom0").returncode == 0
    denied = clipboard(dom0, "paste", "work")
    assert (denied.returncode, denied.stdout) == (1, "")
    assert denied.stderr == "Pasting from dom0 to work is denied by policies\n"  # @adminvm matches dom0
    assert clipboard(dom0, "copy", "nosuch", "x").returncode == 1


def test_clipboard_matrix(dom0, dom0_admin):
    qubes = ("secure", "personal", "work", "untrusted")
    for name in qubes:
        dom0.client().create("AppVM", name, "red")
    dom0_admin.replace("30-clipboard", CLIPBOARD_POLICY, "new")
    allowed = {("secure", "personal"), ("personal", "work"), ("work", "personal"), ("untrusted", "personal")}
    results = {}
    for source in qubes:
        for target in qubes:
            if source == target:
                continue
            assert gui_daemon(dom0, "qubes.ClipboardCopy", source, f"{source}->{target}".encode())[0] == 0
            status, out, err = gui_daemon(dom0, "qubes.ClipboardPaste", target)
            results[(source, target)] = status == 0
            if status == 0:
                assert out == f"{source}->{target}".encode()
            else:
                assert (status, out, err) == (1, b"", f"Pasting from {source} to {target} is denied by policies\n".encode())
    assert len(results) == 12
    assert {pair for pair, ok in results.items() if ok} == allowed
