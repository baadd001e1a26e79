# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.prefs and corral.qubes.qube_info through ansible-playbook."""

from __future__ import annotations

from playbook import prefs, qube

INFO = {"corral.qubes.qube_info": {}}


def test_prefs_set_reset_check_and_idempotence(dom0, player):
    client = dom0.client()
    mark = dom0.mark()
    checked = player.run([prefs(clockvm="sys-firewall", default_qrexec_timeout=90)], check=True, diff=True)
    assert checked[0]["changed"] and dom0.writes_since(mark) == []
    assert checked[0]["diff"] == {"before": {"clockvm": "sys-net", "default_qrexec_timeout": "60 (default)"},
                                  "after": {"clockvm": "sys-firewall", "default_qrexec_timeout": "90"}}
    assert checked[0]["prefs"]["default_qrexec_timeout"] == "90"

    run = player.run([prefs(clockvm="sys-firewall", default_qrexec_timeout="90", check_updates_vm="off"),
                      prefs(clockvm="sys-firewall", default_qrexec_timeout=90, check_updates_vm=False),
                      prefs(default_qrexec_timeout="*default*", updatevm=""),
                      prefs(default_qrexec_timeout="*default*", updatevm="")])
    assert [r["changed"] for r in run.results] == [True, False, True, False]
    assert run[2]["prefs"]["default_qrexec_timeout"] == 60 and run[2]["prefs"]["updatevm"] is None
    timeout = client.property_get(None, "default_qrexec_timeout")
    assert (timeout.value, timeout.is_default) == ("60", True)
    assert client.property_get(None, "clockvm").value == "sys-firewall"
    assert client.property_get(None, "check_updates_vm").value == "False"


def test_prefs_bad_input_changes_nothing(dom0, player):
    mark = dom0.mark()
    run = player.run([
        prefs(clockvm="sys-net", no_such_pref=1),
        prefs(default_template="sys-net"),
        prefs(default_netvm="default-dvm"),
        prefs(default_dispvm="fedora-42-xfce"),
        prefs(updatevm="missing"),
        prefs(default_qrexec_timeout="soon"),
        prefs(stats_interval=-3),
        prefs(default_pool="nowhere"),
    ])
    fields = [(r["field"], r["msg"]) for r in run.results]
    assert [field for field, _msg in fields] == [
        "properties.no_such_pref", "properties.default_template", "properties.default_netvm",
        "properties.default_dispvm", "properties.updatevm", "properties.default_qrexec_timeout",
        "properties.stats_interval", "properties.default_pool"]
    assert "needs a TemplateVM" in fields[1][1] and "does not provide network" in fields[2][1]
    assert dom0.writes_since(mark) == []


def test_qube_info_reads_layout_that_pastes_back(dom0, player):
    layout = {"label": "blue", "netvm": "sys-firewall", "properties": {"memory": 800, "debug": True},
              "features": {"video-model": "cirrus"}, "services": {"cups": False},
              "tags": ["work"], "volumes": {"private": "4GiB"}, "state": "running"}
    player.run([qube("work", **layout)])
    run = player.run([INFO, {"corral.qubes.qube_info": {"names": ["work"], "sections": ["tags"]}},
                      {"corral.qubes.qube_info": {"names": ["work", "ghost"]}},
                      {"corral.qubes.qube_info": {"names": ["dom0"]}}])
    everything = run[0]
    assert set(everything["qubes"]) == {"fedora-42-xfce", "debian-13-xfce", "sys-net", "sys-firewall",
                                        "default-dvm", "work"}
    work = everything["qubes"]["work"]
    assert work == {"class": "AppVM", "state": "running", "label": "blue", "template": "fedora-42-xfce",
                    "netvm": "sys-firewall", "properties": {"memory": 800, "debug": True},
                    "features": {"video-model": "cirrus"}, "services": {"cups": False}, "tags": ["work"],
                    "volumes": {"private": "4GiB", "volatile": "10GiB"}, "firewall": [{"action": "accept"}]}
    details = everything["details"]["work"]
    assert details["power_state"] == "Running"
    assert details["properties"]["memory"] == {"value": 800, "type": "int", "default": False}
    assert details["properties"]["vcpus"]["default"] is True
    assert "created-by-dom0" in details["tags"]
    assert everything["qubes"]["sys-net"]["properties"]["provides_network"] is True
    assert run[1]["qubes"] == {"work": {"class": "AppVM", "state": "running", "label": "blue",
                                        "template": "fedora-42-xfce", "netvm": "sys-firewall", "tags": ["work"]}}
    assert run[2]["failed"] and "no qube named ghost" in run[2]["msg"]
    assert run[3]["failed"] and run[3]["field"] == "names"

    # Adopting: every qube read back converges to itself with no change.
    mark = dom0.mark()
    pasted = []
    for name, data in everything["qubes"].items():
        args = {key: value for key, value in data.items() if key != "firewall"}
        pasted.append(qube(name, **args))
    again = player.run(pasted)
    assert again.changed == 0 and not again.failed, again.results
    assert dom0.writes_since(mark) == []
