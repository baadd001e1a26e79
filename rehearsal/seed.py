# SPDX-License-Identifier: GPL-3.0-or-later
"""A fresh rehearsal dom0: what a new Qubes installation holds.

dom0, a Fedora and a Debian template, sys-net (with the network cards),
sys-firewall, default-dvm, and the global preferences the installer sets.
Template names and kernel follow the release: R4.3 ships Fedora 42 and
Debian 13, R4.2 Fedora 41 and Debian 12.
"""

from __future__ import annotations

from rehearsal import dom0 as dom0_mod
from rehearsal import hardware
from rehearsal.model import DOM0_UUID, STANDARD_LABELS, Dom0State, Label, Pool, Qube

RELEASE_DEFAULTS = {
    "4.3": {"templates": ("fedora-42-xfce", "debian-13-xfce"), "kernel": "6.12.48-1.qubes.fc41",
            "template_version": "4.3.0"},
    "4.2": {"templates": ("fedora-41-xfce", "debian-12-xfce"), "kernel": "6.6.77-1.qubes.fc37",
            "template_version": "4.2.0"},
}

T420S_PCI = hardware.pci_devices(hardware.T420S)
"""The T420s's PCI devices (Intel 82579LM ethernet, Centrino Advanced-N 6205 wifi, two EHCI USB controllers)."""
NETWORK_CARDS = hardware.NETWORK_CARDS


def _template_features(name: str, version: str) -> dict:
    distribution, _sep, rest = name.partition("-")
    number = rest.split("-")[0]
    return {
        "template-name": name, "template-epoch": "0", "template-version": version,
        "template-release": "202511010000", "template-reponame": "qubes-templates-itl",
        "template-buildtime": "2025-11-01 00:00:00", "template-installtime": "2025-12-21 12:00:00",
        "template-license": "GPLv2", "template-url": "https://www.qubes-os.org/",
        "template-summary": f"Qubes OS template for {name}",
        "template-description": f"Qubes OS template for {name}",
        "os": "Linux", "os-distribution": distribution, "os-version": number,
        "qrexec": "1", "gui": "1", "vmexec": "1",
        "supported-service.meminfo-writer": "1", "supported-service.qubes-firewall": "1",
        "supported-service.network-manager": "1", "supported-service.qubes-updates-proxy": "1",
    }


def fresh_state(release: str = "4.3", templates: tuple[str, str] | None = None,
                extra_appvms: tuple[str, ...] = (), uuids: dict | None = None,
                host_memory_mib: int = 16384) -> Dom0State:
    """The state of a freshly installed dom0.

    ``templates`` overrides the (fedora, debian) template names; ``extra_appvms``
    adds AppVMs on the default template; ``uuids`` fixes qube UUIDs by name (for
    tests that compare against recorded replies).
    """
    defaults = RELEASE_DEFAULTS[release]
    fedora, debian = templates or defaults["templates"]
    uuids = uuids or {}
    state = Dom0State(release=release, host_memory_mib=host_memory_mib)
    state.labels = [Label(index=i, name=name, color=color) for i, (name, color) in enumerate(STANDARD_LABELS, 1)]
    state.pools = {
        "varlibqubes": Pool("varlibqubes", "file", {
            "dir_path": "/var/lib/qubes", "driver": "file", "ephemeral_volatile": "False",
            "name": "varlibqubes", "revisions_to_keep": "1"}, size=270553174016, usage=30162702336),
        "linux-kernel": Pool("linux-kernel", "linux-kernel", {
            "dir_path": "/var/lib/qubes/vm-kernels", "driver": "linux-kernel", "name": "linux-kernel"}),
    }
    state.kernels = [defaults["kernel"]]
    state.pci_devices = {port: dict(info) for port, info in T420S_PCI.items()}
    state.domains["dom0"] = Qube(name="dom0", klass="AdminVM", qid=0, uuid=DOM0_UUID,
                                 props={"label": "black"}, power_state="Running", xid=0)
    state.props.update({"default_kernel": defaults["kernel"], "default_pool_kernel": "linux-kernel"})

    dom0 = dom0_mod.Dom0(state)

    def create(klass, name, label, template=None, **props):
        qube = dom0.create(klass, name, label, template, uuid=uuids.get(name))
        qube.props.update(props)
        return qube

    for name in (fedora, debian):
        qube = create("TemplateVM", name, "black")
        qube.features.update(_template_features(name, defaults["template_version"]))
    state.props["default_template"] = fedora
    net = create("AppVM", "sys-net", "red", fedora, provides_network=True, netvm=None, autostart=True)
    net.devices["pci"] = [{"backend": "dom0", "port_id": port, "device_id": T420S_PCI[port]["device_id"],
                           "mode": "required", "options": {"no-strict-reset": "True"}} for port in NETWORK_CARDS]
    net.features.update({"servicevm": "1", "service.clocksync": "1"})
    fw = create("AppVM", "sys-firewall", "green", fedora, provides_network=True, netvm="sys-net", autostart=True)
    fw.features.update({"servicevm": "1"})
    dvm = create("AppVM", "default-dvm", "red", fedora, template_for_dispvms=True)
    dvm.features.update({"appmenus-dispvm": "1"})
    state.props.update({
        "default_netvm": "sys-firewall", "updatevm": "sys-firewall", "clockvm": "sys-net",
        "default_dispvm": "default-dvm", "management_dispvm": "default-dvm",
    })
    for name in extra_appvms:
        create("AppVM", name, "blue", fedora)
    return state
