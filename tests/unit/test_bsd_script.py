# SPDX-License-Identifier: GPL-3.0-or-later
"""The bsd role's install script: parsed by a real shell (``sh -n``), the variables bsdinstall reads from its
preamble, read back by the rehearsal's bsdinstall stand-in; the role's entry checks; the reference layout's entry."""

from __future__ import annotations

import pathlib
import subprocess

import jinja2
import pytest
import yaml

from ansible_collections.corral.qubes.plugins.module_utils import bsd
from rehearsal import installer

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined).from_string(
    (ROOT / "roles" / "bsd" / "templates" / "installerconfig.j2").read_text())
PROPS = {"ip": {"value": "10.137.0.9"}, "visible_gateway": {"value": "10.138.0.1"},
         "dns": {"value": "10.139.1.1 10.139.1.2"}}
HASH = "$6$corralsalt$" + "a" * 86
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNvcnJhbC1xdWJlcy10ZXN0LWtleS1ub3QtcmVhbA user@vault"
MANIFEST = b"base.txz\tx\t1\tbase\t\"Base system\"\ton\nkernel.txz\tx\t1\tkernel\t\"Kernel\"\ton\n" \
           b"lib32.txz\tx\t1\tlib32\t\"32-bit\"\ton\n"
GiB = 1024 ** 3


def raw(**overrides) -> dict:
    base = {"iso": {"qube": "untrusted", "path": "/home/user/FreeBSD.iso", "sha256": "b" * 64},
            "root_password_hash": HASH}
    base.update(overrides)
    return base


def render(name: str = "bsd", props=None, **overrides) -> str:
    b = bsd.entry(name, raw(**overrides))
    return TEMPLATE.render(b=b, bsd_name=name, net=bsd.network(b, PROPS if props is None else props))


def medium(config: str | None, sets=("base.txz", "kernel.txz", "lib32.txz")) -> installer.Medium:
    files = {f"/usr/freebsd-dist/{name}": 1000 for name in sets}
    texts = {"/usr/freebsd-dist/manifest": MANIFEST}
    if config is not None:
        texts["/etc/installerconfig"] = config.encode()
    return installer.Medium("loop0", True, files, None, texts)


def preamble_variables(text: str) -> dict:
    """What bsdinstall gets from the preamble: the shell sources it (here dash, as FreeBSD's sh an ash)."""
    preamble = text.split("\n#!", 1)[0]
    out = subprocess.run(["sh", "-c", preamble + '\nprintf "%s\\n%s\\n%s\\n" "$nonInteractive" "$PARTITIONS" '
                          '"$DISTRIBUTIONS"'], capture_output=True, text=True, check=True, env={})
    return dict(zip(("nonInteractive", "PARTITIONS", "DISTRIBUTIONS"), out.stdout.splitlines()))


def test_the_script_parses_and_its_preamble_sets_what_bsdinstall_reads():
    text = render(sshd=True, ssh_authorized_keys=[KEY], setup_commands=["pkg bootstrap -y || true"],
                  distributions=["kernel.txz", "base.txz", "lib32.txz"])
    assert subprocess.run(["sh", "-n"], input=text, text=True, check=False).returncode == 0
    assert preamble_variables(text) == {"nonInteractive": "YES", "PARTITIONS": "DEFAULT",
                                        "DISTRIBUTIONS": "kernel.txz base.txz lib32.txz"}
    script = text.split("\n#!/bin/sh\n", 1)[1]
    assert script.startswith("set -e\n") and "pkg bootstrap -y || true\n" in script
    assert f"echo '{HASH}' | pw usermod root -H 0" in script and KEY in script
    install = installer.freebsd_setup([medium(text)], 20 * GiB)
    assert install.powers_off and install.guest == {
        "os": "FreeBSD", "hostname": "bsd", "sets": ["kernel.txz", "base.txz", "lib32.txz"], "sshd": True,
        "root_password": True,
        "network": {"address": "10.137.0.9", "prefix": 8, "gateway": "10.138.0.1", "dns": ["10.139.1.1", "10.139.1.2"]}}


def test_a_qube_without_network_gets_no_address_and_overrides_apply():
    text = render(props={})
    assert "ifconfig_" not in text and "resolv.conf" not in text
    assert installer.freebsd_setup([medium(text)], 20 * GiB).guest["network"] == {"none": True}
    text = render(network={"address": "10.137.0.99", "prefix": 32, "dns": ["10.139.1.3"]}, hostname="mail.example")
    guest = installer.freebsd_setup([medium(text)], 20 * GiB).guest
    assert guest["hostname"] == "mail.example"
    assert guest["network"] == {"address": "10.137.0.99", "prefix": 32, "gateway": "10.138.0.1", "dns": ["10.139.1.3"]}


@pytest.mark.parametrize("config, sets, size, said", [
    (None, ("base.txz", "kernel.txz"), 20, "no /etc/installerconfig"),
    ('PARTITIONS=DEFAULT\n#!/bin/sh\nif true; then\n', ("base.txz", "kernel.txz"), 20, "does not parse"),
    ('DISTRIBUTIONS="kernel.txz base.txz src.txz"\n#!/bin/sh\n', ("base.txz", "kernel.txz"), 20, "src.txz is not"),
    ('DISTRIBUTIONS="kernel.txz base.txz lib32.txz"\n#!/bin/sh\n', ("base.txz", "kernel.txz"), 20, "lib32.txz is not"),
    ('PARTITIONS="da3 GPT"\n#!/bin/sh\n', ("base.txz", "kernel.txz"), 20, "names disk 'da3'"),
    ('cp /dev/null /tmp/x\n#!/bin/sh\n', ("base.txz", "kernel.txz"), 20, "only assignments"),
    ('PARTITIONS=DEFAULT\n#!/bin/sh\n', ("base.txz", "kernel.txz"), 1, "too small"),
])
def test_the_stand_in_stops_where_bsdinstall_would(config, sets, size, said):
    with pytest.raises(installer.SetupError, match=said):
        installer.freebsd_setup([medium(config, sets)], size * GiB)


def test_dhcp_or_another_interface_leaves_the_guest_without_an_address():
    for line in ('sysrc ifconfig_xn0="DHCP"', 'sysrc ifconfig_em0="inet 10.137.0.9/8"'):
        install = installer.freebsd_setup([medium(f"PARTITIONS=DEFAULT\n#!/bin/sh\n{line}\n")], 20 * GiB)
        assert install.guest["network"] == {"none": True} and "no address" in install.message


def test_a_windows_medium_is_not_a_freebsd_one():
    windows = installer.Medium("loop0", True, {"/sources/install.wim": 10}, None, {})
    assert installer.freebsd_setup([windows], 20 * GiB) is None


@pytest.mark.parametrize("overrides, field", [
    ({"root_password_hash": "hunter2"}, "bsd.root_password_hash: expected a SHA-512 crypt hash"),
    ({"root_password_hash": None}, "bsd.root_password_hash: required"),
    ({"iso": {"qube": "untrusted", "path": "FreeBSD.iso", "sha256": "b" * 64}}, "bsd.iso.path"),
    ({"iso": {"qube": "untrusted", "path": "/x.iso", "sha256": "abc"}}, "bsd.iso.sha256"),
    ({"root_gib": 2}, "bsd.root_gib: expected GiB for the root volume (an integer of at least 4)"),
    ({"memory": 256}, "bsd.memory"),
    ({"hostname": "bad_host"}, "bsd.hostname"),
    ({"interface": "eth0 up"}, "bsd.interface"),
    ({"partitions": "ada0; reboot"}, "bsd.partitions"),
    ({"distributions": ["base.txz"]}, "bsd.distributions: expected base.txz and kernel.txz"),
    ({"distributions": ["base.txz", "kernel.txz", "../x.txz"]}, "bsd.distributions: expected a list"),
    ({"ssh_authorized_keys": [KEY]}, "bsd.ssh_authorized_keys: given without sshd"),
    ({"sshd": True, "ssh_authorized_keys": ["ssh-ed25519 AAAA 'x"]}, "bsd.ssh_authorized_keys: expected"),
    ({"setup_commands": ["a\nb"]}, "bsd.setup_commands"),
    ({"network": {"prefix": 40}}, "bsd.network.prefix"),
    ({"network": {"mtu": 1500}}, "bsd.network: expected a dict"),
    ({"class": "TemplateVM"}, "bsd.class: unknown key"),
    ({"reinstall": "yes"}, "bsd.reinstall: expected true or false"),
])
def test_bad_entries_fail_naming_the_field_and_never_the_hash(overrides, field):
    with pytest.raises(bsd.EntryError) as caught:
        bsd.check("bsd", raw(**overrides))
    assert str(caught.value).startswith(field), caught.value
    assert HASH not in str(caught.value) and "hunter2" not in str(caught.value)


def test_the_reference_layout_installs_its_bsd_qube_with_this_role():
    layout = yaml.safe_load((ROOT / "inventories" / "t420s" / "group_vars" / "qubes_admin" / "layout.yml").read_text())
    refs = yaml.safe_load((ROOT / "inventories" / "t420s" / "group_vars" / "qubes_admin" / "bsd.yml").read_text())
    shell = layout["qubes_layout"]["bsd"]
    entry = refs["bsd_reference"]["bsd"]
    assert shell["class"] == "StandaloneVM" and shell["properties"]["virt_mode"] == "hvm"
    assert shell["properties"]["memory"] == entry["memory"] and shell["volumes"]["root"] == f"{entry['root_gib']}GiB"
    assert shell["netvm"] == entry["netvm"] and shell["label"] == entry["label"]
    bsd.check("bsd", {**entry, "iso": raw()["iso"], "root_password_hash": HASH})
