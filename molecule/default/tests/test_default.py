# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify the reference layout (inventories/t420s) through the Admin API; testinfra runs on dom0."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import yaml

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import formats, policy, policy_client

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
from whonix_checks import check_updates_proxy_decisions, check_whonix_qubes  # noqa: E402  pylint: disable=wrong-import-position

GROUP_VARS = pathlib.Path(__file__).resolve().parents[3] / "inventories" / "t420s" / "group_vars" / "qubes_admin"
LAYOUT = yaml.safe_load((GROUP_VARS / "layout.yml").read_text())


def admin():
    """A client on the rehearsal dom0 Molecule created."""
    return client_mod.AdminClient(client_mod.SocketTransport(os.environ["QUBESD_SOCKET"]))


def test_every_qube_reads_back_as_its_layout(host):
    """qube_info (through Ansible on the instance) returns what the layout declares."""
    result = host.ansible("corral.qubes.qube_info", "names=" + ",".join(LAYOUT["qubes_layout"]), check=False)
    for name, wanted in LAYOUT["qubes_layout"].items():
        got = result["qubes"][name]
        assert got["class"] == wanted.get("class", "AppVM"), name
        assert got["label"] == wanted["label"], name
        if "template" in wanted and got["class"] == "AppVM":
            assert got["template"] == wanted["template"], name
        if "netvm" in wanted:
            assert got["netvm"] == wanted["netvm"], name
        for prop, value in wanted.get("properties", {}).items():
            assert got["properties"][prop] == value, (name, prop)
        for feature, value in wanted.get("features", {}).items():
            assert got["features"][feature] == value, (name, feature)
        assert got["services"] == wanted.get("services", got["services"]), name
        if "tags" in wanted:
            assert sorted(got["tags"]) == sorted(wanted["tags"]), name
        for volume, size in wanted.get("volumes", {}).items():
            assert formats.parse_size(got["volumes"][volume]) == formats.parse_size(size), (name, volume)


def test_templates_of_the_layout_are_installed_with_their_package_features():
    client = admin()
    vms = client.list_vms()
    for group in LAYOUT["qubes_templates"]:
        for name in group["names"]:
            assert vms[name].klass == "TemplateVM", name
            features = {feature: client.feature_get(name, feature) for feature in client.feature_list(name)}
            assert features["template-name"] == name
            for suffix in ("epoch", "version", "release", "reponame", "buildtime", "installtime", "license", "url",
                           "summary", "description"):
                assert features[f"template-{suffix}"] != "", (name, suffix)
            if group.get("enablerepo"):
                assert features["template-reponame"] in group["enablerepo"], name
    assert client.feature_get("whonix-gateway-18", "whonix-gw") == "1"
    assert client.feature_get("whonix-workstation-18", "whonix-ws") == "1"


def test_qvm_template_ran_once_to_install_and_never_in_the_idempotence_run():
    log = pathlib.Path(os.environ["QUBESD_SOCKET"]).parent / "qvm-template.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    changes = [run for run in runs if run["mutating"]]
    # fedora-42-minimal (the source of secure's clone, by the Fedora role), then Whonix (by the qubes role)
    assert [run["command"] for run in changes] == ["install", "install"]
    assert changes[0]["argv"][-1:] == ["fedora-42-minimal"]
    assert changes[1]["argv"][-2:] == ["whonix-gateway-18", "whonix-workstation-18"]
    assert runs[-1] is changes[1]  # nothing after the installs: the second converge started no qvm-template


def test_network_qubes_and_offline_qubes():
    client = admin()
    assert client.property_get("sys-vpn-work", "provides_network").value == "True"
    assert client.property_get("work", "netvm").value == "sys-vpn-work"
    for name in ("vault", "sys-usb"):
        netvm = client.property_get(name, "netvm")
        assert (netvm.value, netvm.is_default) == ("", False), name


def test_global_preferences():
    client = admin()
    for prop, value in LAYOUT["qubes_prefs"].items():
        assert client.property_get(None, prop).value == value, prop


def test_firewall_whitelists_of_the_domains():
    """Each whitelisted domain has DNS plus exactly its tasks' destinations; untrusted accepts everything."""
    network = yaml.safe_load((GROUP_VARS / "network.yml").read_text())
    client = admin()
    assert client.firewall_get("secure") == ["action=accept dsthost=bank.example.com proto=tcp dstports=443-443",
                                             "action=accept specialtarget=dns"]
    assert client.firewall_get("untrusted") == ["action=accept"]
    work = client.firewall_get("work")
    assert "action=accept dst4=198.51.100.0/24" in work and work[-1] == "action=accept specialtarget=dns"
    hosts = {line.split("dsthost=")[1].split()[0] for line in client.firewall_get("personal") if "dsthost=" in line}
    wanted = {entry["dsthost"] for name in ("private_mail", "private_cloud", "blog")
              for entry in network["qubes_destinations"][name]}
    assert hosts == wanted


def test_clipboard_matrix_is_the_written_policy():
    """The flows file is in place, and every pair of the four domains behaves as the matrix declares."""
    flows = yaml.safe_load((GROUP_VARS / "network.yml").read_text())["qubes_flows"]["qubes.ClipboardPaste"]
    admin_api = policy_client.PolicyAdmin()
    assert "30-corral-flows" in admin_api.get_files("qubes.ClipboardPaste")
    sources = {f"{name}.policy": admin_api.get(name)[1] for name in admin_api.list()}
    sources.update({f"include/{name}": admin_api.include_get(name)[1] for name in admin_api.include_list()})
    system = {name: {"class": entry.klass} for name, entry in admin().list_vms().items()}
    whole = policy.Policy(sources)
    for source in flows:
        for target in flows:
            if source != target:
                decision = whole.evaluate("qubes.ClipboardPaste", "", source, target, system, assume_yes_for_ask=True)
                assert decision.allowed == (target in flows[source]), (source, target)


def test_service_qubes_hold_their_devices():
    """sys-net has both network cards and sys-usb both USB controllers, as the layout assigns them."""
    client = admin()
    for name in ("sys-net", "sys-usb"):
        wanted = {device["device"].replace(":", "+", 1) for device in LAYOUT["qubes_layout"][name]["devices"]}
        assigned = {}
        for line in client.call("admin.vm.device.pci.Assigned", name).splitlines():
            head, _sep, rest = line.partition(" ")
            assigned[head.split(":", 1)[0]] = formats.parse_device_properties(rest)
        assert set(assigned) == wanted, name
        for fields in assigned.values():
            assert (fields["mode"], fields["_no-strict-reset"], fields["frontend_domain"]) == ("required", "True", name)
        assert client.property_get(name, "virt_mode").value == "hvm", name
    assert client.property_get("sys-usb", "memory").value == "300"


def test_the_fedora_templates_record_what_was_applied_inside():
    """The Fedora role's templates and clone exist and each records its digest; secure runs on the clone."""
    client = admin()
    fedora = yaml.safe_load((GROUP_VARS / "fedora.yml").read_text())["fedora_templates"]
    vms = client.list_vms()
    for name, entry in fedora.items():
        assert vms[name].klass == "TemplateVM", name
        recorded = client.feature_get(name, "corral-inside-digest") if "corral-inside-digest" in client.feature_list(
            name) else None
        assert (recorded or "").startswith("sha256:") == bool(entry.get("packages") or entry.get("files")), name
    assert client.property_get("secure", "template").value == "fedora-42-secure"


def whole_policy():
    """The policy of the dom0, read through the policy admin API (files and includes)."""
    admin_api = policy_client.PolicyAdmin()
    sources = {f"{name}.policy": admin_api.get(name)[1] for name in admin_api.list()}
    sources.update({f"include/{name}": admin_api.include_get(name)[1] for name in admin_api.include_list()})
    return policy.Policy(sources)


def test_whonix_qubes_tags_and_properties():
    """sys-whonix, the Whonix disposable template and anon-whonix (corral.qubes.whonix, defaults of whonix.yml)."""
    check_whonix_qubes(admin())


def test_updates_proxy_decisions_for_each_template():
    """Whonix templates update through sys-whonix only; the other templates as the defaults say (sys-net)."""
    check_updates_proxy_decisions(admin(), whole_policy())
