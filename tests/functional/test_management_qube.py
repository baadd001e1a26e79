# SPDX-License-Identifier: GPL-3.0-or-later
"""The management_qube role, then the collection's modules run from inside that qube through qrexec."""

from __future__ import annotations

import pytest

from harness import QREXEC_CLIENT_VM
from playbook import qube


@pytest.fixture
def mgmt(dom0, player):
    """Qubes work and personal, and a management qube allowed to manage work only."""
    run = player.run([qube("work", label="blue", netvm="sys-firewall"), qube("personal", label="yellow"), {
        "ansible.builtin.include_role": {"name": "corral.qubes.management_qube"},
        "vars": {"management_qube_manages": ["work"]}}])
    assert not run.failed, run.output
    return {"REHEARSAL_QUBE": "mgmt", "QREXEC_CLIENT_VM": str(QREXEC_CLIENT_VM), "QUBESD_SOCKET": None}


def test_role_writes_a_least_privilege_admin_policy(dom0, player, mgmt):
    info = player.run([{"corral.qubes.qube_info": {"names": ["mgmt"], "sections": []}}])[0]
    assert info["qubes"]["mgmt"]["netvm"] == ""
    again = player.run([{"ansible.builtin.include_role": {"name": "corral.qubes.management_qube"},
                         "vars": {"management_qube_manages": ["work"]}}])
    assert again.changed == 0, again.output


def test_modules_from_the_management_qube_get_only_what_the_policy_grants(dom0, player, mgmt):
    mark = dom0.mark()
    run = player.run([
        {"corral.qubes.qube_info": {}},
        qube("work", label="green", properties={"memory": 500}, features={"managed-by": "mgmt"}),
        qube("work", label="green", properties={"memory": 500}, features={"managed-by": "mgmt"}),
        {"corral.qubes.firewall": {"name": "work", "policy": "whitelist",
                                   "rules": [{"dsthost": "198.51.100.0/24"}]}},
        qube("personal", label="green"),
        qube("newcomer", label="red"),
        {"corral.qubes.policy": {"name": "20-corral-admin-mgmt", "rules": []}},
    ], env=mgmt)
    assert set(run[0]["qubes"]) == {"work"}  # admin.vm.List is filtered to the granted qubes
    assert run[1]["changed"] and not run[2]["changed"] and run[3]["changed"]
    # personal is not listed to mgmt, so the task would create it: that needs calls on dom0 it was not granted.
    assert run[4]["failed"] and "refused" in run[4]["msg"]
    assert run[5]["failed"] and "refused" in run[5]["msg"]
    assert run[6]["failed"] and "refused" in run[6]["msg"].lower()
    # every Admin API call of the run came from mgmt, through qrexec
    sources = {(call.get("source"), call["method"]) for call in dom0.calls_since(mark)}
    assert {source for source, _method in sources} == {"mgmt"}, sources
    client = dom0.client()
    assert client.property_get("work", "label").value == "green"
    assert client.property_get("personal", "label").value == "yellow"
    assert "newcomer" not in client.list_vms()


def test_a_granted_policy_admin_api_works_from_the_management_qube(dom0, player, mgmt):
    # dom0 grants mgmt the policy admin API (old-format include file, as in real Qubes).
    grant = player.run([{"corral.qubes.policy": {"name": "include/admin-policy-rwx",
                                                 "content": "mgmt @adminvm allow target=dom0\n"}}])[0]
    assert grant["changed"], grant
    rules = [{"service": "qubes.Filecopy", "source": "work", "target": "@anyvm", "action": "deny"}]
    run = player.run([{"corral.qubes.policy": {"name": "40-from-mgmt", "rules": rules}},
                      {"corral.qubes.policy": {"name": "40-from-mgmt", "rules": rules}}], env=mgmt)
    assert [r.get("changed") for r in run.results] == [True, False], run.output
    assert "qubes.Filecopy * work @anyvm deny" in run[0]["content"]


def test_the_layout_from_the_management_qube(dom0, player, mgmt, tmp_path):
    """The role with qubes_from_management_qube: the parts a management qube cannot do are skipped, names hidden
    by its admin policy are warnings of the layout check, and a module names the hidden qube as not visible."""
    layout = {"work": {"label": "purple", "netvm": "sys-firewall", "template": "fedora-42-xfce",
                       "firewall": [{"action": "accept", "dsthost": "198.51.100.7"}, {"action": "drop"}]}}
    rules = [{"service": "qubes.Filecopy", "source": "work", "target": "@anyvm", "action": "deny"}]
    mark = dom0.mark()
    run = player.run([{"ansible.builtin.include_role": {"name": "corral.qubes.qubes"},
                       "vars": {"qubes_layout": layout, "qubes_from_management_qube": True,
                                "qubes_prefs": {"clockvm": "sys-firewall"}, "qubes_policies": {"50-from-mgmt": rules}}}],
                     env=mgmt)
    assert not run.failed, run.output
    assert "sys-firewall is not visible to this management qube" in " ".join(run.output.split())  # 2.18 wraps warnings
    assert {call.get("source") for call in dom0.calls_since(mark)} == {"mgmt"}  # every call came from mgmt
    client = dom0.client()
    assert client.property_get("work", "label").value == "purple"
    assert client.firewall_get("work") == ["action=accept dst4=198.51.100.7/32", "action=drop"]
    assert client.property_get(None, "clockvm").value != "sys-firewall"  # prefs skipped
    assert not (dom0.policy_dir / "50-from-mgmt.policy").exists()  # policy files skipped
    hidden = player.run([qube("work", template="debian-13-xfce", shutdown_if_needed=True)], env=mgmt)[0]
    assert hidden["failed"] and hidden["field"] == "template"
    assert "no qube named 'debian-13-xfce' is visible to this management qube" in hidden["msg"]
    assert "install or create the template first" not in hidden["msg"]
