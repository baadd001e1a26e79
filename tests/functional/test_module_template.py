# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.template through ansible-playbook against fresh rehearsal dom0s and the qvm-template stand-in."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

from playbook import Player, ROOT, ansible_env

COMMUNITY = "qubes-templates-community"
STAND_IN = ROOT / "rehearsal" / "bin" / "dom0" / "qvm-template"


def template(names, **args) -> dict:
    """A corral.qubes.template task."""
    return {"corral.qubes.template": {"names": names, **args}}


def tool_runs(dom0) -> list[dict]:
    """Every run of the qvm-template stand-in against this dom0 (it logs beside the socket)."""
    path = pathlib.Path(dom0.socket).parent / "qvm-template.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def features(client, name) -> dict:
    return {feature: client.feature_get(name, feature) for feature in client.feature_list(name)}


def qvm_template(dom0, tmp_path, *argv):
    env = ansible_env(dom0, tmp_path)
    return subprocess.run([str(STAND_IN), *argv], env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("release, gateway, workstation", [("4.3", "whonix-gateway-18", "whonix-workstation-18"),
                                                           ("4.2", "whonix-gateway-17", "whonix-workstation-17")])
def test_install_whonix_from_the_community_repository(dom0_factory, tmp_path, release, gateway, workstation):
    dom0 = dom0_factory(release)
    player = Player(dom0, tmp_path)
    task = template([gateway, workstation], enablerepo=[COMMUNITY])
    mark = dom0.mark()
    check = player.run([task], check=True, diff=True)
    assert check[0]["changed"] and not check[0].get("failed"), check.output
    assert dom0.writes_since(mark) == []
    assert [run["command"] for run in tool_runs(dom0)] == ["list"]
    assert check[0]["diff"]["before"] == {gateway: "absent", workstation: "absent"}
    assert check[0]["diff"]["after"][gateway].startswith(f"0:{release}.0-")
    assert check[0]["commands"] == [f"qvm-template --enablerepo={COMMUNITY} list --available --machine-readable"]

    done = player.run([task], diff=True)
    assert done[0]["changed"], done.output
    assert done[0]["commands"][-1] == f"qvm-template --enablerepo={COMMUNITY} --yes install {gateway} {workstation}"
    assert done[0]["templates"] == check[0]["diff"]["after"]
    client = dom0.client()
    got = features(client, gateway)
    assert got["template-name"] == gateway and got["template-reponame"] == COMMUNITY
    assert f"{got['template-epoch']}:{got['template-version']}-{got['template-release']}" == done[0]["templates"][gateway]
    for feature in ("template-buildtime", "template-installtime", "template-license", "template-url",
                    "template-summary", "template-description"):
        assert got[feature], feature
    assert got["whonix-gw"] == "1" and features(client, workstation)["whonix-ws"] == "1"
    assert "whonix-updatevm" in client.tag_list(gateway)
    assert client.list_vms()[gateway].klass == "TemplateVM"
    assert client.property_get(gateway, "netvm").is_default  # reset after the PostInstall start
    assert client.current_state(gateway)["power_state"] == "Halted"

    runs = len(tool_runs(dom0))
    mark = dom0.mark()
    again = player.run([task])
    assert not again[0]["changed"] and again[0]["commands"] == []
    assert len(tool_runs(dom0)) == runs  # a no-op runs no qvm-template at all
    assert dom0.writes_since(mark) == []
    assert len(dom0.calls_since(mark)) <= 1 + 2 * 5  # admin.vm.List, then feature.List + 4 Gets per template

    # without the versions: one read of template-name per template, the same answer otherwise
    mark = dom0.mark()
    quick = player.run([{"corral.qubes.template": {**task["corral.qubes.template"], "versions": False}}])
    assert not quick[0]["changed"] and quick[0]["commands"] == [], quick.output
    assert quick[0]["templates"] == {gateway: "installed", workstation: "installed"}
    calls = dom0.calls_since(mark)
    assert [(call["method"], call["arg"]) for call in calls if call["method"] != "admin.vm.List"] == \
        [("admin.vm.feature.Get", "template-name")] * 2


def test_wrong_release_names_are_unknown_with_suggestions(dom0_factory, tmp_path):
    """Whonix 17 is R4.2's; on R4.3 the repository offers 18, which the error suggests."""
    dom0 = dom0_factory("4.3")
    player = Player(dom0, tmp_path)
    mark = dom0.mark()
    run = player.run([template(["whonix-gateway-17"], enablerepo=[COMMUNITY]),
                      template(["fedora-24-xfce", "debian-13-xfce"]),
                      template(["whonix-gateway-18"])])
    assert run[0]["failed"] and run[0]["field"] == "names"
    assert "no template named 'whonix-gateway-17'" in run[0]["msg"] and "whonix-gateway-18" in run[0]["msg"]
    assert "fedora-42-xfce" in run[1]["msg"] or "fedora-43-xfce" in run[1]["msg"]
    assert "qubes-templates-community: add it to enablerepo" in run[2]["msg"]
    assert dom0.writes_since(mark) == []
    assert all(entry["command"] == "list" for entry in tool_runs(dom0))


def test_a_repository_that_does_not_exist(dom0, player):
    mark = dom0.mark()
    run = player.run([template(["fedora-43-xfce"], enablerepo=["qubes-templates-comunity"])])
    assert run[0]["failed"] and run[0]["field"] == "enablerepo"
    assert "no repository named 'qubes-templates-comunity'" in run[0]["msg"]
    assert dom0.writes_since(mark) == []
    bad = player.run([template(["fedora-43-xfce"], enablerepo=["bad repo"]), template(["fedora-43-xfce"], pool="nope"),
                      template(["fedora-43-xfce"], updatevm="sys-nowhere"),
                      template(["fedora-43-xfce"], releasever="four")])
    assert [result["field"] for result in bad.results] == ["enablerepo", "pool", "updatevm", "releasever"]
    assert dom0.writes_since(mark) == [] and tool_runs(dom0) == [
        entry for entry in tool_runs(dom0) if entry["command"] == "list"]


def test_absent_refuses_a_template_in_use_naming_the_users(dom0, player):
    client = dom0.client()
    mark = dom0.mark()
    run = player.run([template(["fedora-42-xfce"], state="absent")], check=True)
    assert run[0]["failed"]
    for user in ("sys-net (template)", "sys-firewall (template)", "default-dvm (template)",
                 "qubes-prefs default_template"):
        assert user in run[0]["msg"], run[0]["msg"]
    assert dom0.writes_since(mark) == [] and tool_runs(dom0) == []
    # An AppVM removed from the layout frees debian-13-xfce once nothing else uses it
    client.create("AppVM", "mail", "blue", "debian-13-xfce")
    run = player.run([template(["debian-13-xfce"], state="absent")])
    assert run[0]["failed"] and "mail (template)" in run[0]["msg"]
    client.remove("mail")
    mark = dom0.mark()
    check = player.run([template(["debian-13-xfce"], state="absent")], check=True, diff=True)
    assert check[0]["changed"] and check[0]["diff"]["after"] == {"debian-13-xfce": "absent"}
    assert check[0]["diff"]["before"]["debian-13-xfce"] == "0:4.3.0-202511010000"
    assert dom0.writes_since(mark) == [] and tool_runs(dom0) == []
    done = player.run([template(["debian-13-xfce"], state="absent")])
    assert done[0]["changed"] and done[0]["commands"] == ["qvm-template --yes remove debian-13-xfce"]
    assert "debian-13-xfce" not in client.list_vms()
    again = player.run([template(["debian-13-xfce"], state="absent")])
    assert not again[0]["changed"] and again[0]["templates"] == {"debian-13-xfce": "absent"}
    assert [entry["command"] for entry in tool_runs(dom0)] == ["remove"]


def test_latest_upgrades_and_then_stays(dom0, player):
    client = dom0.client()
    check = player.run([template(["fedora-42-xfce", "debian-13-minimal"], state="latest")], check=True, diff=True)
    assert check[0]["diff"]["before"] == {"fedora-42-xfce": "0:4.3.0-202511010000", "debian-13-minimal": "absent"}
    assert check[0]["diff"]["after"] == {"fedora-42-xfce": "0:4.3.0-202601150000",
                                         "debian-13-minimal": "0:4.3.0-202511200000"}
    done = player.run([template(["fedora-42-xfce", "debian-13-minimal"], state="latest")])
    assert done[0]["actions"] == ["qvm-template install debian-13-minimal", "qvm-template upgrade fedora-42-xfce"]
    assert client.feature_get("fedora-42-xfce", "template-release") == "202601150000"
    assert client.list_vms()["sys-net"].klass == "AppVM"  # upgrading keeps the qubes that use it
    again = player.run([template(["fedora-42-xfce", "debian-13-minimal"], state="latest")])
    assert not again[0]["changed"]
    # latest must ask the repositories: one read-only listing, no change
    assert again[0]["commands"] == ["qvm-template list --available --machine-readable"]
    assert [entry["command"] for entry in tool_runs(dom0)][-1] == "list"


def test_testing_repository_has_a_newer_build(dom0, player):
    run = player.run([template(["fedora-42-xfce"], state="latest", enablerepo=["qubes-templates-itl-testing"])],
                     check=True)
    assert run[0]["templates"] == {"fedora-42-xfce": "0:4.3.0-202602010000"}


def test_reinstalled_always_acts(dom0, player):
    client = dom0.client()
    client.feature_set("debian-13-xfce", "template-installtime", "2000-01-01 00:00:00")
    first = player.run([template(["debian-13-xfce"], state="reinstalled")], diff=True)
    assert first[0]["changed"] and first[0]["actions"] == ["qvm-template reinstall debian-13-xfce"]
    assert client.feature_get("debian-13-xfce", "template-installtime") != "2000-01-01 00:00:00"
    second = player.run([template(["debian-13-xfce"], state="reinstalled")])
    assert second[0]["changed"]
    assert second[0]["commands"][0] == "qvm-template list --available --all-versions --machine-readable"
    # reinstall needs the installed build in the repositories, older or newest
    upgraded = player.run([template(["fedora-42-xfce"], state="latest"),
                           template(["fedora-42-xfce"], state="reinstalled")])
    assert upgraded[1]["changed"] and not upgraded[1].get("failed")


def test_pool_releasever_updatevm_repo_files_reach_the_command_line(dom0, player, tmp_path):
    repo = tmp_path / "extra.repo"
    repo.write_text("[qubes-templates-itl]\n")
    run = player.run([template(["fedora-41-minimal"], pool="varlibqubes", releasever="4.2", updatevm="sys-firewall",
                               repo_files=[str(repo)])])
    assert run[0]["changed"], run.output
    assert run[0]["commands"][-1] == (f"qvm-template --repo-files={repo} --releasever=4.2 --updatevm=sys-firewall "
                                      "--yes install --pool varlibqubes fedora-41-minimal")
    assert run[0]["templates"] == {"fedora-41-minimal": "0:4.2.0-202510150000"}  # R4.2's build, as asked
    client = dom0.client()
    assert client.volume_info("fedora-41-minimal", "root")["pool"] == "varlibqubes"


def test_unmanaged_qubes_of_the_name(dom0, player):
    client = dom0.client()
    client.create("TemplateVM", "fedora-43-xfce", "black")
    client.create("AppVM", "debian-12-xfce", "black", "fedora-42-xfce")
    run = player.run([template(["fedora-43-xfce"]), template(["fedora-43-xfce"], state="absent"),
                      template(["debian-12-xfce"])])
    assert not run[0]["changed"] and "not installed by qvm-template" in run[0]["warnings"][0]
    quick = player.run([template(["fedora-43-xfce"], versions=False)])
    assert quick[0]["templates"] == {"fedora-43-xfce": "unmanaged"}, quick.output
    assert "not installed by qvm-template" in quick[0]["warnings"][0]
    assert run[1]["failed"] and "not installed by qvm-template" in run[1]["msg"]
    assert run[2]["failed"] and "is a AppVM, not a template" in run[2]["msg"]
    assert tool_runs(dom0) == []


def test_the_stand_in_lists_like_the_real_tool(dom0, tmp_path):
    listing = qvm_template(dom0, tmp_path, "list", "--installed", "--machine-readable")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines() == ["installed|debian-13-xfce|0:4.3.0-202511010000|qubes-templates-itl",
                                           "installed|fedora-42-xfce|0:4.3.0-202511010000|qubes-templates-itl"]
    info = qvm_template(dom0, tmp_path, "--enablerepo=qubes-templates-community", "info", "--available",
                        "--machine-readable-json", "whonix-gateway-18")
    document = json.loads(info.stdout)
    assert list(document) == ["available"]
    assert set(document["available"][0]) == {"name", "epoch", "version", "release", "reponame", "size", "buildtime",
                                             "installtime", "license", "url", "summary", "description"}
    assert "\n" in document["available"][0]["description"]  # JSON keeps the newlines
    line = qvm_template(dom0, tmp_path, "--enablerepo=qubes-templates-community", "info", "--available",
                        "--machine-readable", "whonix-gateway-18").stdout.strip()
    fields = line.split("|")
    assert fields[:3] == ["available", "whonix-gateway-18", "0"] and len(fields) == 14  # a two-line description
    missing = qvm_template(dom0, tmp_path, "--yes", "install", "fedora-24-xfce")
    assert missing.returncode == 2 and "qvm-template: error: Template 'fedora-24-xfce' not found." in missing.stderr
    nothing = qvm_template(dom0, tmp_path, "list", "--available", "whonix-*")
    assert nothing.returncode == 2 and "No matching templates to list" in nothing.stderr
    assert os.path.exists(pathlib.Path(dom0.socket).parent / "qvm-template.jsonl")
