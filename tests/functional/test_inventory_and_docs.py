# SPDX-License-Identifier: GPL-3.0-or-later
"""The qubes inventory plugin through ansible-inventory, and ansible-doc for every plugin."""

from __future__ import annotations

import json
import subprocess

import pytest
from ansible.release import __version__ as ansible_version

from playbook import BIN, ROOT, ansible_env, qube

ANSIBLE_VERSION = tuple(int(part) for part in ansible_version.split(".")[:2])


def plain(value):
    """ansible-inventory marks strings from plugins as data, never templates (``__ansible_unsafe``)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def inventory(dom0, tmp_path, config: str) -> dict:
    source = tmp_path / "laptop.qubes.yml"
    source.write_text(config)
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list"],
                          env=ansible_env(dom0, tmp_path), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return plain(json.loads(proc.stdout))


def test_inventory_hosts_groups_and_constructed_options(dom0, player, tmp_path):
    player.run([qube("work", label="blue", tags=["anon-vm", "office"], state="running"),
                qube("vault", label="black", netvm="")])
    mark = dom0.mark()
    data = inventory(dom0, tmp_path, "\n".join([
        "plugin: corral.qubes.qubes",
        "keyed_groups:",
        "  - key: qubes_netvm",
        "    prefix: behind",
        "compose:",
        "  memory_mib: qubes_properties.memory",
        "groups:",
        "  offline: not qubes_netvm and qubes_class != 'AdminVM'",
        ""]))
    hostvars = data["_meta"]["hostvars"]
    assert set(hostvars) == {"dom0", "fedora-42-xfce", "debian-13-xfce", "sys-net", "sys-firewall",
                             "default-dvm", "work", "vault"}
    work = hostvars["work"]
    assert work["qubes_class"] == "AppVM" and work["qubes_power_state"] == "running"
    assert work["qubes_template"] == "fedora-42-xfce" and work["qubes_netvm"] == "sys-firewall"
    # compose keeps the property's type from ansible-core 2.19 on; 2.18 (the R4.3 dom0's) renders it as text
    memory = 400 if ANSIBLE_VERSION >= (2, 19) else "400"
    assert "ansible_connection" not in work and work["memory_mib"] == memory  # no connection by default
    assert "created-by-dom0" in work["qubes_tags"] and "guivm-dom0" in work["qubes_tags"]
    assert not [group for group in data if group.startswith(("tag_created_by", "tag_guivm", "tag_audiovm"))]
    assert hostvars["dom0"]["ansible_connection"] == "local"
    assert set(data["class_appvm"]["hosts"]) == {"work", "vault", "sys-net", "sys-firewall", "default-dvm"}
    assert set(data["label_blue"]["hosts"]) == {"work"}
    assert set(data["tag_anon_vm"]["hosts"]) == {"work"}
    assert "work" in data["template_fedora_42_xfce"]["hosts"]
    assert "work" in data["behind_sys_firewall"]["hosts"]
    assert set(data["offline"]["hosts"]) == {"vault", "sys-net", "fedora-42-xfce", "debian-13-xfce"}
    calls = [call["method"] for call in dom0.calls_since(mark)]
    assert calls.count("admin.vm.List") == 1 and "admin.vm.property.Get" not in calls
    assert calls.count("admin.vm.property.GetAll") == 8

    running = inventory(dom0, tmp_path, "plugin: corral.qubes.qubes\ninclude_halted: false\n"
                        "include_dom0: false\nconnection: community.general.qubes\n")
    assert set(running["_meta"]["hostvars"]) == {"work", "sys-firewall", "sys-net"}  # started with work
    assert running["_meta"]["hostvars"]["work"]["ansible_connection"] == "community.general.qubes"


def test_a_misnamed_inventory_file_is_named_with_the_rule(dom0, tmp_path):
    source = tmp_path / "laptop.yml"
    source.write_text("plugin: corral.qubes.qubes\n")
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list"],
                          env=ansible_env(dom0, tmp_path), capture_output=True, text=True, check=False)
    output = " ".join((proc.stdout + proc.stderr).split())
    assert "names the inventory plugin corral.qubes.qubes, which reads only files named *.qubes.yml" in output
    assert "rename it" in output


def documented_plugins() -> list[tuple[str, str]]:
    """Every plugin and role of the collection, found in the tree (a new one is covered without editing this)."""
    found = [("module", path.stem) for path in (ROOT / "plugins" / "modules").glob("*.py")]
    found += [("inventory", path.stem) for path in (ROOT / "plugins" / "inventory").glob("*.py")]
    found += [("connection", path.stem) for path in (ROOT / "plugins" / "connection").glob("*.py")]
    found += [("filter", path.stem) for path in (ROOT / "plugins" / "filter").glob("*.yml")]
    found += [("role", path.name) for path in (ROOT / "roles").iterdir() if (path / "meta" / "argument_specs.yml").exists()]
    return sorted((kind, f"corral.qubes.{name}") for kind, name in found if not name.startswith("_"))


def test_every_plugin_is_documented():
    kinds = {kind for kind, _name in documented_plugins()}
    assert kinds == {"module", "inventory", "filter", "connection", "role"}
    assert ("filter", "corral.qubes.whitelists") in documented_plugins()


@pytest.mark.parametrize("kind, name", documented_plugins())
def test_ansible_doc_renders(dom0, tmp_path, kind, name):
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", kind, name], env=ansible_env(dom0, tmp_path),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert name in proc.stdout and "[WARNING]" not in proc.stderr, proc.stderr
    if kind != "role":
        assert "EXAMPLES" in proc.stdout, proc.stdout
