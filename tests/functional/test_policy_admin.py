# SPDX-License-Identifier: GPL-3.0-or-later
"""The policy admin API (policy.*) of a real rehearsal dom0, through the qrexec stand-ins and the collection's client."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import policy, policy_client, policy_files
from harness import QREXEC_CLIENT

USER_RULES = "# mine\nqubes.Filecopy * sys-net sys-firewall deny\n"


@pytest.fixture
def admin(dom0, monkeypatch):
    """A PolicyAdmin in dom0 (qrexec-client stand-in)."""
    monkeypatch.setenv("REHEARSAL_QREXEC_SOCKET", dom0.qrexec_socket)
    return policy_client.PolicyAdmin(client_mod.QrexecTransport.for_dom0(str(QREXEC_CLIENT)))


def on_disk(dom0, path):
    """A policy file's bytes on disk (None if absent)."""
    full = dom0.policy_dir / path
    return full.read_bytes() if full.exists() else None


def test_fresh_policy_directory(admin):
    assert admin.list() == ["35-compat", "80-whonix", "90-admin-default", "90-admin-policy-default", "90-default",
                            "90-default-gui-daemon", "91-admin-default-deny"]
    assert admin.include_list() == ["admin-global-ro", "admin-global-rwx", "admin-local-ro", "admin-local-rwx",
                                    "admin-policy-ro", "admin-policy-rwx"]
    token, text = admin.get("90-default-gui-daemon")
    assert token == "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    assert "qubes.ClipboardPaste * @anyvm @anyvm ask" in text.splitlines()
    token, text = admin.include_get("admin-local-ro")
    assert "!include include/admin-local-rwx" in text
    assert admin.get_files("admin.vm.List") == ["90-admin-default"]
    assert admin.get_files("qubes.ClipboardPaste") == ["90-default-gui-daemon"]


def test_replace_and_remove_with_tokens(dom0, admin):
    admin.replace("30-user", USER_RULES, "new")
    assert on_disk(dom0, "30-user.policy") == USER_RULES.encode()
    assert oct(os.stat(dom0.policy_dir / "30-user.policy").st_mode & 0o777) == "0o664"
    with pytest.raises(policy_client.PolicyTokenMismatch):
        admin.replace("30-user", "", "new")
    token, text = admin.get("30-user")
    assert text == USER_RULES
    admin.replace("30-user", USER_RULES + "qubes.Filecopy * sys-net dom0 deny\n", token)
    with pytest.raises(policy_client.PolicyTokenMismatch, match="changed since it was read"):
        admin.replace("30-user", "", token)  # stale token
    assert admin.get_files("qubes.Filecopy") == ["30-user", "90-default"]
    admin.replace("30-user", USER_RULES, "any")
    with pytest.raises(policy_client.PolicyTokenMismatch):
        admin.remove("30-user", token.replace("sha256:", "sha256:0"))
    admin.remove("30-user", admin.get("30-user")[0])
    assert on_disk(dom0, "30-user.policy") is None
    with pytest.raises(policy_client.PolicyNotFound):
        admin.get("30-user")
    with pytest.raises(policy_client.PolicyNotFound):
        admin.remove("30-user", "any")
    assert "30-user" not in admin.list()


def test_invalid_policy_is_refused_and_nothing_is_written(dom0, admin):
    before = {p: on_disk(dom0, p) for p in ("30-user.policy", "include/admin-local-rwx")}
    with pytest.raises(policy_client.PolicyInvalid, match=r"30-user.policy:2: target=: allow with target @default"):
        admin.replace("30-user", "# ok\nqubes.Filecopy * sys-net @default allow\n", "any")
    with pytest.raises(policy_client.PolicyInvalid, match=r"include/admin-local-rwx:1: action"):
        admin.include_replace("admin-local-rwx", "mgmt @anyvm permit\n", "any")
    with pytest.raises(policy_client.PolicyInvalid, match="does not exist"):
        admin.replace("30-user", "!include include/nothing-here\n", "new")
    assert {p: on_disk(dom0, p) for p in before} == before
    assert not [n for n in os.listdir(dom0.policy_dir) if n.startswith(".")]


def test_removing_an_included_file_is_refused(dom0, admin):
    with pytest.raises(policy_client.PolicyInvalid, match="included file include/admin-local-rwx does not exist"):
        admin.include_remove("admin-local-rwx", "any")
    assert on_disk(dom0, "include/admin-local-rwx") is not None
    admin.include_replace("spare", "mgmt @anyvm deny\n", "new")  # not included by anything: may go
    admin.include_remove("spare", admin.include_get("spare")[0])
    assert "spare" not in admin.include_list()


def test_names_are_checked(admin):
    with pytest.raises(policy.PolicyError):
        admin.get("30-user.policy")
    for bad in ("30-User", "a.b", "..%2fx"):
        with pytest.raises(policy_client.PolicyInvalid, match="Invalid name"):
            admin.call("policy.Get", bad)  # the service checks too
    with pytest.raises(policy_client.PolicyInvalid, match="Invalid name"):
        admin.call("policy.include.Get", "include/admin-local-ro")


def test_a_crash_mid_write_leaves_the_old_file(dom0_factory, monkeypatch):
    dom0 = dom0_factory(extra_args=["--fault", "policy.Replace:2:crash"])
    monkeypatch.setenv("REHEARSAL_QREXEC_SOCKET", dom0.qrexec_socket)
    admin = policy_client.PolicyAdmin(client_mod.QrexecTransport.for_dom0(str(QREXEC_CLIENT)))
    admin.replace("30-user", USER_RULES, "new")
    with pytest.raises(policy_client.PolicyAdminError):
        admin.replace("30-user", "qubes.Filecopy * sys-net sys-firewall allow\n", "any")
    dom0.proc.wait(10)
    assert dom0.proc.returncode == -9  # SIGKILL, between writing the new file and renaming it
    assert on_disk(dom0, "30-user.policy") == USER_RULES.encode()
    assert [n for n in os.listdir(dom0.policy_dir) if n.startswith(policy_files.TEMP_PREFIX)]  # the unfinished write
    policy.Policy.from_directory(str(dom0.policy_dir))  # still a valid policy
    dom0.start(extra_args=[])
    assert admin.get("30-user")[1] == USER_RULES
    assert not [n for n in os.listdir(dom0.policy_dir) if n.startswith(".")]


def test_fresh_init_writes_the_policy_directory(dom0_factory):
    dom0 = dom0_factory(release="4.2")
    assert "qubes.Notifications" not in on_disk(dom0, "90-default.policy").decode()
    assert b"admin.vm.Suspend" not in on_disk(dom0, "90-admin-default.policy")  # an R4.3 method
    assert b"!include-service admin.vm.device.pci.List * include/admin-local-ro" in on_disk(
        dom0, "90-admin-default.policy")
