# SPDX-License-Identifier: GPL-3.0-or-later
"""Whonix settings expanded into layout data, per release, and merged into a layout (module_utils/whonix.py)."""

from __future__ import annotations

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import policy, whonix


@pytest.mark.parametrize("release, version", [("4.3", 18), ("4.2", 17)])
def test_defaults_expand_for_the_release(release, version):
    got = whonix.expand({}, release)
    assert got["version"] == version
    assert got["templates"] == [{"names": [f"whonix-gateway-{version}", f"whonix-workstation-{version}"],
                                 "enablerepo": ["qubes-templates-community"]}]
    dvm = f"whonix-workstation-{version}-dvm"
    assert list(got["layout"]) == ["sys-whonix", dvm, "anon-whonix"]
    gateway = got["layout"]["sys-whonix"]
    assert (gateway["template"], gateway["label"], gateway["netvm"]) == (f"whonix-gateway-{version}", "black",
                                                                         "sys-firewall")
    assert gateway["properties"] == {"provides_network": True, "autostart": True, "memory": 500}
    assert gateway["features"] == {"servicevm": "1"}
    assert got["layout"]["anon-whonix"]["properties"] == {"default_dispvm": dvm}
    assert got["layout"][dvm]["properties"] == {"template_for_dispvms": True}
    assert all(entry["tags_mode"] == "add" for entry in got["layout"].values())
    r43 = release == "4.3"
    assert ("sdwdate-gui-client" in got["layout"]["anon-whonix"]["tags"]) == r43
    rules = got["policies"]["45-corral-whonix-updates"]
    assert [policy.rule_from_dict(rule, index).render() for index, rule in enumerate(rules)] == [
        "qubes.UpdatesProxy * @tag:whonix-updatevm @default allow target=sys-whonix",
        "qubes.UpdatesProxy * @tag:whonix-updatevm @anyvm deny"]


def test_every_template_through_whonix_and_other_names():
    got = whonix.expand({"gateway": "gw", "workstation": "", "dispvm_template": "anon-dvm",
                         "updates_all_templates": True, "version": "18"}, "4.3")
    assert list(got["layout"]) == ["gw", "anon-dvm"]
    assert got["layout"]["anon-dvm"]["netvm"] == "gw"
    assert got["policies"]["45-corral-whonix-updates"][-1] == {
        "service": "qubes.UpdatesProxy", "source": "@type:TemplateVM", "target": "@default", "action": "allow",
        "redirect": "gw"}


@pytest.mark.parametrize("settings, release, path, words", [
    ({"version": 17}, "4.3", "whonix_version", "Whonix 17 is not for Qubes R4.3, which has Whonix 18"),
    ({"version": 18}, "4.2", "whonix_version", "Whonix 18 is not for Qubes R4.2, which has Whonix 17"),
    ({"version": "latest"}, "4.3", "whonix_version", "expected a Whonix version such as 18"),
    ({"workstation_netvm": "sys-firewall"}, "4.3", "whonix_workstation_netvm", "sys-firewall is not a Whonix gateway"),
    ({"gatway": "x"}, "4.3", "whonix_gatway", "unknown setting"),
    ({"gateway_memory": "lots"}, "4.3", "whonix_gateway_memory", "expected int"),
    ({"updates_all_templates": "yes"}, "4.3", "whonix_updates_all_templates", "expected bool"),
    ({"gateway": ""}, "4.3", "whonix_gateway", "name the Whonix gateway qube"),
])
def test_bad_settings_name_their_variable(settings, release, path, words):
    with pytest.raises(whonix.WhonixError) as caught:
        whonix.expand(settings, release)
    assert caught.value.path == path and words in str(caught.value)


def test_merge_keeps_the_layout_first_then_whonix_in_order_and_lays_entries_over():
    expanded = whonix.expand({}, "4.3")
    layout = {"sys-firewall": {"label": "green"}, "anon-whonix": {"label": "purple", "properties": {"memory": 800}}}
    merged = whonix.merge(expanded, layout, [{"names": ["debian-13-xfce"]}], {"50-config-input": []})
    # the gateway and the disposable template are converged before anon-whonix, whose netvm and default_dispvm they are
    assert list(merged["qubes_layout"]) == ["sys-firewall", "sys-whonix", "whonix-workstation-18-dvm", "anon-whonix"]
    anon = merged["qubes_layout"]["anon-whonix"]
    assert anon["label"] == "purple" and anon["netvm"] == "sys-whonix"
    assert anon["properties"] == {"default_dispvm": "whonix-workstation-18-dvm", "memory": 800}
    assert merged["qubes_templates"][1]["names"] == ["whonix-gateway-18", "whonix-workstation-18"]
    assert list(merged["qubes_policies"]) == ["50-config-input", "45-corral-whonix-updates"]
    again = whonix.merge(expanded, merged["qubes_layout"], merged["qubes_templates"], merged["qubes_policies"])
    assert again == merged  # the role run twice in one play adds nothing twice


@pytest.mark.parametrize("name, release, error", [
    ("whonix-gateway-17", "4.3", "use whonix-gateway-18"), ("whonix-workstation-18", "4.2", "use whonix-workstation-17"),
    ("whonix-gateway-18", "4.3", None), ("fedora-42-xfce", "4.3", None), (None, "4.3", None)])
def test_version_error_of_a_template_name(name, release, error):
    got = whonix.version_error(name, release)
    assert (got is None) if error is None else (error in got)
