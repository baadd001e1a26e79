# SPDX-License-Identifier: GPL-3.0-or-later
"""Every call of the collection's client against a live rehearsal dom0 (R4.3)."""

from __future__ import annotations

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import firewall, wire

FEDORA = "fedora-42-xfce"
DEBIAN = "debian-13-xfce"


# ------------------------------------------------------------------ listing

def test_vm_classes(client):
    assert client.vm_classes() == ["AdminVM", "AppVM", "DispVM", "RemoteVM", "StandaloneVM", "TemplateVM"]


def test_fresh_dom0_holds_what_an_installation_holds(client):
    vms = client.list_vms()
    assert list(vms) == ["dom0", DEBIAN, "default-dvm", FEDORA, "sys-firewall", "sys-net"]
    assert vms["dom0"].klass == "AdminVM" and vms["dom0"].state == "Running"
    assert vms["dom0"].uuid == "00000000-0000-0000-0000-000000000000"
    assert {vms[t].klass for t in (FEDORA, DEBIAN)} == {"TemplateVM"}
    assert all(v.state == "Halted" for n, v in vms.items() if n != "dom0")


def test_list_one_qube(client):
    assert list(client.list_vms("sys-net")) == ["sys-net"]


def test_current_state(client):
    assert client.current_state("sys-net") == {"mem": 0, "mem_static_max": 0, "cputime": 0, "power_state": "Halted"}
    client.start("sys-net")
    state = client.current_state("sys-net")
    assert state["power_state"] == "Running" and state["mem"] > 0
    assert client.current_state("dom0")["power_state"] == "Running"


def test_unknown_qube(client):
    with pytest.raises(wire.QubesVMNotFoundError, match="No such domain: 'nosuch'"):
        client.current_state("nosuch")


def test_invalid_dest_name_r43(client):
    with pytest.raises(wire.QubesValueError, match="VM name contains illegal characters"):
        client.list_vms("bad name!")


# ------------------------------------------------------------------ properties

def test_property_list_getall_consistent(client):
    names = client.property_list("sys-net")
    everything = client.property_get_all("sys-net")
    assert list(everything) == names
    for name in ("netvm", "memory", "label", "provides_network", "ip"):
        assert client.property_get("sys-net", name) == everything[name]


def test_property_get_types_and_default_flags(client):
    assert client.property_get("sys-net", "provides_network").native is True
    assert client.property_get("sys-net", "provides_network").is_default is False
    netvm = client.property_get("sys-net", "netvm")
    assert (netvm.native, netvm.is_default, netvm.type) == (None, False, "vm")
    assert client.property_get("sys-firewall", "netvm").native == "sys-net"
    assert client.property_get("default-dvm", "netvm").is_default is True
    assert client.property_get("sys-net", "virt_mode").value == "hvm"    # PCI devices assigned
    assert client.property_get("sys-net", "maxmem").native == 0          # no balancing with PCI
    assert client.property_get(FEDORA, "netvm").native is None           # templates: no network


def test_property_set_get_reset(client):
    client.property_set("default-dvm", "memory", 800)
    value = client.property_get("default-dvm", "memory")
    assert (value.native, value.is_default) == (800, False)
    client.property_reset("default-dvm", "memory")
    value = client.property_get("default-dvm", "memory")
    assert (value.native, value.is_default) == (400, True)


def test_explicit_value_equal_to_default_is_not_default(client):
    client.property_set("default-dvm", "vcpus", 2)
    assert client.property_get("default-dvm", "vcpus").is_default is False


def test_property_get_default_and_help(client):
    assert client.property_get_default("default-dvm", "netvm").value == "sys-firewall"
    assert client.property_get_default(None, "default_template") is None
    assert "network" in client.property_help("default-dvm", "netvm")


@pytest.mark.parametrize("prop,value,error,message", [
    ("memory", "abc", wire.QubesValueError, "Failed to parse property value as int"),
    ("memory", 0, wire.QubesPropertyValueError, "memory must be positive"),
    ("vcpus", -1, wire.QubesPropertyValueError, "vcpus must be positive"),
    ("maxmem", -1, wire.QubesPropertyValueError, "maxmem must be positive or zero"),
    ("autostart", "perhaps", wire.QubesValueError, "Invalid literal for boolean property: 'perhaps'"),
    ("virt_mode", "kvm", wire.QubesPropertyValueError, "Invalid virtualization mode"),
    ("kernel", "../boot", wire.QubesPropertyValueError, "Kernel name cannot contain '/'"),
    ("kernel", "9.9.9", wire.QubesPropertyValueError, "Kernel '9.9.9' not installed"),
    ("label", "pink", wire.QubesLabelNotFoundError, "Label does not exist: pink"),
    ("netvm", "nosuch", wire.QubesPropertyValueError, "Can't set netvm to non-existing qube nosuch"),
    ("netvm", "default-dvm", wire.QubesValueError, "The default-dvm qube does not provide network"),
    ("template", "sys-net", wire.QubesPropertyValueError, "is of type AppVM and not TemplateVM"),
    ("default_user", "bad user", wire.QubesPropertyValueError, "Username can contain only"),
    ("keyboard_layout", "us", wire.QubesPropertyValueError, "invalid number of keyboard layout parameters"),
    ("klass", "TemplateVM", wire.QubesPropertyValueError, "property 'klass' on AppVM instance cannot be set"),
    ("no_such", "1", wire.QubesNoSuchPropertyError, "Invalid property 'no_such' of default-dvm"),
])
def test_property_set_refusals(dom0, client, prop, value, error, message):
    before = client.property_get_all("default-dvm")
    mark = dom0.mark()
    with pytest.raises(error, match=message):
        client.property_set("default-dvm", prop, value)
    assert dom0.writes_since(mark) == []
    assert client.property_get_all("default-dvm") == before


def test_write_once_and_unparsable_values_get_empty_replies(client):
    with pytest.raises(wire.QubesDaemonAccessError):
        client.property_set("default-dvm", "name", "renamed")
    with pytest.raises(wire.QubesDaemonAccessError):
        client.property_set("default-dvm", "mac", "not-a-mac")
    assert "default-dvm" in client.list_vms()


def test_netvm_loops_are_refused(client):
    with pytest.raises(wire.QubesValueError, match="Loops in network are unsupported"):
        client.property_set("sys-net", "netvm", "sys-firewall")
    with pytest.raises(wire.QubesValueError, match="Loops in network are unsupported"):
        client.property_set("sys-firewall", "netvm", "sys-firewall")


def test_provides_network_cannot_be_dropped_while_used(client):
    with pytest.raises(wire.QubesValueError, match="still used by other qubes"):
        client.property_set("sys-firewall", "provides_network", False)


def test_template_cannot_change_while_running_nor_be_reset(client):
    client.start("default-dvm")
    with pytest.raises(wire.QubesVMNotHaltedError, match="Cannot change template while qube is running"):
        client.property_set("default-dvm", "template", DEBIAN)
    with pytest.raises(wire.QubesValueError, match="Cannot unset template"):
        client.property_reset("default-dvm", "template")


def test_running_qube_cannot_attach_to_halted_netvm(client):
    client.create("AppVM", "vpn", "blue", FEDORA)
    client.property_set("vpn", "provides_network", True)
    client.start("default-dvm")
    with pytest.raises(wire.QubesVMNotStartedError, match="Cannot dynamically attach to stopped qube vpn"):
        client.property_set("default-dvm", "netvm", "vpn")


def test_defaults_follow_template_and_globals(client):
    client.create("AppVM", "work", "blue", FEDORA)
    client.property_set(FEDORA, "memory", 1000)
    assert client.property_get("work", "memory").native == 1000
    assert client.property_get("work", "netvm").native == "sys-firewall"
    client.property_set(None, "default_netvm", "sys-net")
    assert client.property_get("work", "netvm").native == "sys-net"
    client.property_set("work", "netvm", None)
    assert client.property_get("work", "ip").value == ""
    assert client.property_get("work", "dns").value == ""


def test_network_properties_are_computed(client):
    client.create("AppVM", "work", "blue", FEDORA)
    props = client.property_get_all("work")
    qid = props["qid"].native
    assert props["ip"].value == f"10.137.0.{qid}"
    assert props["visible_gateway"].value == client.property_get("sys-firewall", "ip").value
    assert props["visible_netmask"].value == "255.255.255.255"
    assert props["dns"].value == "10.139.1.1 10.139.1.2"
    assert client.property_get("sys-firewall", "gateway").value == client.property_get("sys-firewall", "ip").value


def test_global_properties(client):
    assert client.property_list(None)[0] == "check_updates_vm"
    client.property_set(None, "default_qrexec_timeout", 120)
    assert client.property_get(None, "default_qrexec_timeout").native == 120
    assert client.property_get("default-dvm", "qrexec_timeout").native == 120
    client.property_reset(None, "default_qrexec_timeout")
    assert client.property_get(None, "default_qrexec_timeout").is_default
    with pytest.raises(wire.QubesPropertyValueError, match="is of type AppVM and not TemplateVM"):
        client.property_set(None, "default_template", "sys-net")
    with pytest.raises(wire.QubesPropertyValueError, match="No such storage pool"):
        client.property_set(None, "default_pool", "nopool")
    with pytest.raises(wire.QubesNoSuchPropertyError, match="Invalid property 'nope' of Qubes"):
        client.property_get(None, "nope")


def test_clockvm_moves_the_clocksync_service(client):
    client.property_set(None, "clockvm", "sys-firewall")
    assert client.feature_get("sys-firewall", "service.clocksync") == "1"
    assert client.feature_get("sys-net", "service.clocksync") is None


# ------------------------------------------------------------------ create / remove

@pytest.mark.parametrize("klass,template", [("AppVM", FEDORA), ("TemplateVM", None), ("StandaloneVM", None),
                                            ("AppVM", None)])
def test_create_classes(client, klass, template):
    client.create(klass, "new", "purple", template)
    entry = client.list_vms()["new"]
    assert entry.klass == klass and entry.state == "Halted"
    assert client.tag_list("new") == ["audiovm-dom0", "created-by-dom0", "guivm-dom0"]
    assert client.volume_list("new") == ["root", "private", "volatile", "kernel"]
    if klass == "AppVM":
        assert client.property_get("new", "template").native == FEDORA


def test_create_dispvm_needs_a_dvm_template(client):
    client.create("DispVM", "disp-work", "red", "default-dvm")
    assert client.property_get("disp-work", "template").native == "default-dvm"
    assert client.property_get("disp-work", "ip").value.startswith("10.138.")
    with pytest.raises(wire.QubesPropertyValueError, match="template_for_dispvms=True"):
        client.create("DispVM", "disp-bad", "red", "sys-net")
    assert "disp-bad" not in client.list_vms()


def test_create_in_pool(client):
    client.create("AppVM", "pooled", "green", FEDORA, pool="varlibqubes")
    assert client.volume_info("pooled", "private")["pool"] == "varlibqubes"
    client.create("StandaloneVM", "pooled2", "green", pools={"private": "varlibqubes", "root": "varlibqubes"})
    assert client.volume_info("pooled2", "root")["pool"] == "varlibqubes"
    with pytest.raises(wire.QubesException, match="Unknown storage pool nopool"):
        client.create("AppVM", "nopooled", "green", FEDORA, pool="nopool")


@pytest.mark.parametrize("kwargs,error,message", [
    ({"klass": "AppVM", "name": "1bad", "label": "red"}, wire.QubesValueError, "cannot start with"),
    ({"klass": "AppVM", "name": "sys-net", "label": "red"}, wire.QubesValueError, "VM sys-net already exists"),
    ({"klass": "AppVM", "name": "new", "label": "pink"}, wire.QubesLabelNotFoundError, "Label does not exist"),
    ({"klass": "AppVM", "name": "new", "label": "red", "template": "nosuch"}, wire.QubesVMNotFoundError, "nosuch"),
    ({"klass": "TemplateVM", "name": "new", "label": "red", "template": FEDORA}, wire.QubesValueError,
     "TemplateVM cannot be based on template"),
    ({"klass": "AppVM", "name": "new", "label": "red", "template": "sys-net"}, wire.QubesPropertyValueError,
     "not TemplateVM"),
])
def test_create_refusals_change_nothing(dom0, client, kwargs, error, message):
    before = client.list_vms()
    mark = dom0.mark()
    with pytest.raises(error, match=message):
        client.create(**kwargs)
    assert dom0.writes_since(mark) == []
    assert client.list_vms() == before


def test_create_disposable(client):
    name = client.create_disposable()
    assert name.startswith("disp")
    assert "disp-created-by-dom0" in client.tag_list(name)
    assert client.property_get(name, "auto_cleanup").native is True
    with pytest.raises(wire.QubesException, match="template_for_dispvms=False"):
        client.create_disposable("sys-net")


def test_remove(client):
    client.create("AppVM", "gone", "red", FEDORA)
    client.remove("gone")
    assert "gone" not in client.list_vms()


def test_remove_refusals(client):
    with pytest.raises(wire.QubesVMInUseError, match=f"Domain is in use: '{FEDORA}'"):
        client.remove(FEDORA)
    with pytest.raises(wire.QubesVMInUseError, match="'dom0' cannot be removed"):
        client.remove("dom0")
    client.start("default-dvm")
    with pytest.raises(wire.QubesVMNotHaltedError, match="Domain is not powered off: 'default-dvm'"):
        client.remove("default-dvm")
    client.create("AppVM", "rpm", "red", FEDORA)
    client.property_set("rpm", "installed_by_rpm", True)
    with pytest.raises(wire.QubesVMInUseError, match="VM installed by package manager: rpm"):
        client.remove("rpm")


def test_removing_a_global_default_is_refused_until_changed(client):
    with pytest.raises(wire.QubesVMInUseError):
        client.remove("default-dvm")
    client.property_set(None, "default_dispvm", None)
    client.property_set(None, "management_dispvm", None)
    client.remove("default-dvm")
    assert "default-dvm" not in client.list_vms()


# ------------------------------------------------------------------ power

def test_start_brings_up_the_netvm_chain(client):
    client.start("default-dvm")
    states = {n: e.state for n, e in client.list_vms().items()}
    assert states["default-dvm"] == states["sys-firewall"] == states["sys-net"] == "Running"
    client.start("default-dvm")  # already running: a silent no-op


def test_shutdown_wait_force_and_clients(client):
    client.start("default-dvm")
    with pytest.raises(wire.QubesVMError, match="There are other VMs connected to this VM: default-dvm"):
        client.shutdown("sys-firewall")
    client.shutdown("default-dvm", wait=True)
    assert client.list_vms()["default-dvm"].state == "Halted"
    client.shutdown("sys-firewall", wait=True)
    client.shutdown("sys-net", force=True, wait=True)
    assert client.list_vms()["sys-net"].state == "Halted"
    with pytest.raises(wire.QubesVMNotStartedError, match="Domain is powered off: 'sys-net'"):
        client.shutdown("sys-net")


def test_shutdown_without_wait_passes_through_halting(client):
    client.start("sys-net")
    client.shutdown("sys-net")
    assert client.list_vms()["sys-net"].state in ("Halting", "Halted")
    client.shutdown("sys-net", wait=True)
    assert client.list_vms()["sys-net"].state == "Halted"


def test_kill_pause_unpause(client):
    client.start("sys-net")
    client.pause("sys-net")
    assert client.list_vms()["sys-net"].state == "Paused"
    with pytest.raises(wire.QubesVMNotPausedError):
        client.unpause("default-dvm")
    client.unpause("sys-net")
    assert client.list_vms()["sys-net"].state == "Running"
    client.kill("sys-net")
    assert client.list_vms()["sys-net"].state == "Halted"
    with pytest.raises(wire.QubesVMNotStartedError):
        client.kill("sys-net")
    with pytest.raises(wire.QubesVMNotRunningError):
        client.pause("sys-net")


def test_suspend_and_resume(client):
    client.start("sys-net")
    client.call("admin.vm.Suspend", "sys-net")
    assert client.list_vms()["sys-net"].state == "Suspended"
    client.call("admin.vm.Resume", "sys-net")
    assert client.list_vms()["sys-net"].state == "Running"


def test_dom0_power(client):
    with pytest.raises(wire.QubesVMNotHaltedError, match="Cannot start Dom0 fake domain!"):
        client.start("dom0")
    with pytest.raises(wire.QubesVMError, match="Cannot kill Dom0 fake domain!"):
        client.kill("dom0")


def test_not_enough_memory(dom0_factory):
    small = dom0_factory(extra_args=["--host-memory", "5000"], name="small")  # dom0 keeps 4096
    client = small.client()
    client.start("sys-firewall")  # and sys-net: 800 MiB
    with pytest.raises(wire.QubesMemoryError, match="Not enough memory to start domain 'default-dvm'"):
        client.start("default-dvm")
    assert client.list_vms()["default-dvm"].state == "Halted"


def test_prohibit_start(client):
    client.feature_set("sys-net", "prohibit-start", "broken NIC")
    with pytest.raises(wire.QubesException, match="broken NIC"):
        client.start("sys-net")


# ------------------------------------------------------------------ features and tags

def test_features(client):
    assert client.feature_list("default-dvm") == ["appmenus-dispvm"]
    client.feature_set("default-dvm", "service.cups", False)
    client.feature_set("default-dvm", "gui", True)
    client.feature_set("default-dvm", "answer", 42)
    assert client.feature_get("default-dvm", "service.cups") == ""
    assert client.feature_get("default-dvm", "gui") == "1"
    assert client.feature_get("default-dvm", "answer") == "42"
    assert client.feature_list("default-dvm") == ["appmenus-dispvm", "service.cups", "gui", "answer"]
    client.feature_remove("default-dvm", "gui")
    assert client.feature_get("default-dvm", "gui") is None
    with pytest.raises(wire.QubesFeatureNotFoundError, match="Feature not set for domain default-dvm: gui"):
        client.feature_remove("default-dvm", "gui")


def test_feature_inheritance(client):
    assert client.feature_check("default-dvm", "os") == "Linux"
    assert client.feature_check("default-dvm", "servicevm", via="Netvm") == "1"
    assert client.feature_check("default-dvm", "nothing-anywhere") is None
    client.feature_set("dom0", "gui-default-theme", "dark")
    assert client.feature_check("default-dvm", "gui-default-theme", via="TemplateAndAdminVM") == "dark"
    assert client.feature_check("default-dvm", "gui-default-theme", via="AdminVM") == "dark"


@pytest.mark.parametrize("name,value,error", [
    ("bad/name", "1", wire.QubesValueError),
    ("good", "line\nbreak", wire.QubesValueError),
    ("service.", "1", wire.QubesValueError),
    ("service." + "x" * 49, "1", wire.QubesValueError),
    ("preload-dispvm", "1", wire.QubesDaemonAccessError),
])
def test_feature_refusals(dom0, client, name, value, error):
    mark = dom0.mark()
    with pytest.raises(error):
        client.feature_set("default-dvm", name, value)
    assert dom0.writes_since(mark) == []


def test_tags(client):
    client.tag_set("default-dvm", "corral-managed")
    client.tag_set("default-dvm", "corral-managed")  # idempotent
    assert client.tag_get("default-dvm", "corral-managed")
    assert "corral-managed" in client.tag_list("default-dvm")
    client.tag_remove("default-dvm", "corral-managed")
    assert not client.tag_get("default-dvm", "corral-managed")
    with pytest.raises(wire.QubesTagNotFoundError, match="Tag not set for domain default-dvm: corral-managed"):
        client.tag_remove("default-dvm", "corral-managed")
    with pytest.raises(wire.QubesDaemonAccessError):
        client.tag_set("default-dvm", "bad/tag")


def test_gui_tags_follow_guivm(client):
    client.create("AppVM", "gui", "red", FEDORA)
    client.property_set("default-dvm", "guivm", "gui")
    tags = client.tag_list("default-dvm")
    assert "guivm-gui" in tags and "guivm-dom0" not in tags


# ------------------------------------------------------------------ firewall

def test_firewall(client):
    assert client.firewall_get("default-dvm") == ["action=accept"]
    client.firewall_set("default-dvm", ["action=accept dsthost=192.0.2.10 proto=tcp dstports=443",
                                        "action=accept specialtarget=dns", "action=drop"])
    assert client.firewall_get("default-dvm") == [
        "action=accept dst4=192.0.2.10/32 proto=tcp dstports=443-443", "action=accept specialtarget=dns",
        "action=drop"]
    client.firewall_reload("default-dvm")
    client.firewall_set("default-dvm", [])
    assert client.firewall_get("default-dvm") == []


def test_firewall_expired_rules_are_dropped(client):
    client.firewall_set("default-dvm", ["action=accept dsthost=192.0.2.1 expire=1000", "action=drop"])
    assert client.firewall_get("default-dvm") == ["action=drop"]


def test_firewall_refusal_keeps_old_rules(dom0, client):
    client.firewall_set("default-dvm", ["action=accept dsthost=192.0.2.10", "action=drop"])
    before = client.firewall_get("default-dvm")
    mark = dom0.mark()
    with pytest.raises(wire.QubesDaemonAccessError):
        client.firewall_set("default-dvm", ["action=accept", "action=accept dsthost=Bank.Example.COM"])
    assert dom0.writes_since(mark) == []
    assert client.firewall_get("default-dvm") == before
    with pytest.raises(wire.QubesDaemonAccessError):
        client.firewall_get("dom0")


def test_firewall_payload_over_64kib_is_dropped_without_reply(client):
    rules = [f"action=accept dsthost=host{i}.example.com proto=tcp dstports=443" for i in range(1500)]
    assert len("\n".join(rules)) > wire.MAX_REQUEST_SIZE
    with pytest.raises(wire.QubesDaemonAccessError):
        client.firewall_set("default-dvm", rules)
    assert client.firewall_get("default-dvm") == ["action=accept"]
    fitting = rules[:1000]
    client.firewall_set("default-dvm", fitting)
    assert client.firewall_get("default-dvm") == [firewall.parse_rule(r).render() for r in fitting]


# ------------------------------------------------------------------ volumes

def test_volumes(client):
    client.create("AppVM", "work", "blue", FEDORA)
    private = client.volume_info("work", "private")
    assert private["size"] == 2 * 1024 ** 3 and private["save_on_stop"] and not private["snap_on_start"]
    root = client.volume_info("work", "root")
    assert root["snap_on_start"] and root["source"] == f"vm-templates/{FEDORA}/root"
    kernel = client.volume_info("work", "kernel")
    assert kernel["rw"] is False and kernel["vid"] == client.property_get("work", "kernel").value
    client.volume_resize("work", "private", 20 * 1024 ** 3)
    assert client.volume_info("work", "private")["size"] == 20 * 1024 ** 3
    assert client.volume_list_snapshots("work", "private") == []


def test_volume_refusals(dom0, client):
    client.create("StandaloneVM", "win7", "orange")
    mark = dom0.mark()
    with pytest.raises(wire.StoragePoolException, match="For your own safety, shrinking of private is disabled"):
        client.volume_resize("win7", "private", 1024)
    with pytest.raises(wire.StoragePoolException, match="readonly"):
        client.volume_resize("win7", "kernel", 10 ** 9)
    with pytest.raises(wire.QubesDaemonAccessError):
        client.volume_info("win7", "nosuch")
    with pytest.raises(wire.QubesDaemonAccessError):
        client.call("admin.vm.volume.Resize", "win7", "private", "-5")
    assert dom0.writes_since(mark) == []
    with pytest.raises(wire.StoragePoolException, match="based on a template"):
        client.volume_resize("default-dvm", "root", 20 * 1024 ** 3)


def test_revisions_after_shutdown_and_revert(client):
    client.start("sys-net")
    client.shutdown("sys-net", wait=True)
    revisions = client.volume_list_snapshots("sys-net", "private")
    assert len(revisions) == 1
    client.call("admin.vm.volume.Revert", "sys-net", "private", revisions[0])
    assert client.volume_list_snapshots("sys-net", "private") == []


# ------------------------------------------------------------------ labels and pools

def test_labels(client):
    assert client.label_list() == ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"]
    assert client.label_get("red") == "0xcc0000" and client.label_index("black") == 8
    assert client.label_get("1") == "0xcc0000"
    with pytest.raises(wire.QubesValueError):
        client.label_get("pink")
    client.call("admin.label.Create", "dom0", "corral", "0x123abc")
    assert client.label_index("corral") == 9
    client.call("admin.label.Remove", "dom0", "corral")
    assert "corral" not in client.label_list()
    with pytest.raises(wire.QubesDaemonAccessError):
        client.call("admin.label.Remove", "dom0", "red")


def test_pools(client):
    assert client.pool_list() == ["varlibqubes", "linux-kernel"]
    info = client.pool_info("varlibqubes")
    assert info["driver"] == "file" and info["dir_path"] == "/var/lib/qubes" and "size" in info
    with pytest.raises(wire.QubesDaemonAccessError):
        client.pool_info("nopool")


def test_volume_settings(client):
    client.create("StandaloneVM", "bsd", "green")
    client.call("admin.vm.volume.Set.revisions_to_keep", "bsd", "private", "3")
    assert client.volume_info("bsd", "private")["revisions_to_keep"] == 3
    client.call("admin.vm.volume.Set.revisions_to_keep", "bsd", "private", "-1")
    with pytest.raises(wire.QubesValueError, match="Invalid value for revisions_to_keep"):
        client.call("admin.vm.volume.Set.revisions_to_keep", "bsd", "private", "-2")
    client.call("admin.vm.volume.Set.rw", "bsd", "volatile", "False")
    assert client.volume_info("bsd", "volatile")["rw"] is False
    client.call("admin.vm.volume.Set.rw", "bsd", "volatile", "True")
    client.call("admin.vm.volume.Set.ephemeral", "bsd", "volatile", "True")
    assert client.volume_info("bsd", "volatile")["ephemeral"] is True
    with pytest.raises(wire.QubesValueError, match="Cannot enable ephemeral"):
        client.call("admin.vm.volume.Set.ephemeral", "bsd", "private", "True")
    with pytest.raises(wire.QubesDaemonAccessError):
        client.call("admin.vm.volume.Set.rw", "bsd", "private", "perhaps")
    client.call("admin.vm.volume.Clear", "bsd", "private")
    client.start("sys-net")
    for method, payload in (("Set.rw", "False"), ("Set.ephemeral", "False")):
        with pytest.raises(wire.QubesVMNotHaltedError, match="Domain is not powered off: 'sys-net'"):
            client.call(f"admin.vm.volume.{method}", "sys-net", "volatile", payload)
    with pytest.raises(wire.QubesVMNotHaltedError):
        client.call("admin.vm.volume.Clear", "sys-net", "private")
    with pytest.raises(wire.QubesVMNotHaltedError):
        client.call("admin.vm.volume.Set.revisions_to_keep", "sys-net", "private", "-1")


def test_pool_details(client):
    assert client.call("admin.pool.UsageDetails", "dom0", "varlibqubes").startswith("data_size=")
    assert client.call("admin.pool.UsageDetails", "dom0", "linux-kernel") == ""
    assert client.call("admin.pool.ListDrivers").splitlines()[0].startswith("file ")
