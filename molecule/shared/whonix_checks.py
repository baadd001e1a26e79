# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks of the reference layout's Whonix that both scenarios verify (default: the rehearsal dom0 on this
machine; dom0host: the dom0 host over ssh), against a client of that dom0's Admin API and its whole policy."""

from __future__ import annotations

DVM = "whonix-workstation-18-dvm"


def check_whonix_qubes(client) -> None:
    """sys-whonix, the Whonix disposable template and anon-whonix (corral.qubes.whonix, defaults of whonix.yml)."""

    def prop(qube, name):
        return client.property_get(qube, name).value

    assert prop("sys-whonix", "template") == "whonix-gateway-18" and prop("sys-whonix", "label") == "black"
    assert prop("sys-whonix", "netvm") == "sys-firewall" and prop("sys-whonix", "memory") == "500"
    assert prop("sys-whonix", "provides_network") == prop("sys-whonix", "autostart") == "True"
    assert client.feature_get("sys-whonix", "servicevm") == "1"
    assert {"anon-gateway", "sdwdate-gui-server"} <= set(client.tag_list("sys-whonix"))
    assert prop(DVM, "template_for_dispvms") == "True" and client.feature_get(DVM, "appmenus-dispvm") == "1"
    assert prop("anon-whonix", "template") == "whonix-workstation-18"
    assert prop("anon-whonix", "default_dispvm") == DVM
    for qube in (DVM, "anon-whonix"):
        assert prop(qube, "netvm") == "sys-whonix", qube
        assert {"anon-vm", "sdwdate-gui-client"} <= set(client.tag_list(qube)), qube
    for template in ("whonix-gateway-18", "whonix-workstation-18"):
        assert "whonix-updatevm" in client.tag_list(template), template


def check_updates_proxy_decisions(client, whole) -> None:
    """Whonix templates update through sys-whonix only; the other templates as the defaults say (sys-net).

    ``whole`` is the dom0's whole policy (a module_utils.policy.Policy), evaluated for each template.
    """
    vms = client.list_vms()
    system = {name: {"class": entry.klass, "tags": client.tag_list(name) if entry.klass != "AdminVM" else []}
              for name, entry in vms.items()}
    templates = [name for name, entry in vms.items() if entry.klass == "TemplateVM"]
    assert len([name for name in templates if name.startswith("whonix-")]) == 2
    for name in templates:
        decision = whole.evaluate("qubes.UpdatesProxy", "", name, "@default", system)
        wanted = "sys-whonix" if name.startswith("whonix-") else "sys-net"
        assert (decision.allowed, decision.target) == (True, wanted), name
        if name.startswith("whonix-"):
            assert not whole.evaluate("qubes.UpdatesProxy", "", name, "sys-net", system).allowed, name
