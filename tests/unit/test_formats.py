# SPDX-License-Identifier: GPL-3.0-or-later
"""Reply formats: properties, GetAll escaping, vm.List, volume info, sizes."""

import pytest
from hypothesis import given, strategies as st

from ansible_collections.corral.qubes.plugins.module_utils import formats

# admin.vm.property.GetAll of a fresh AppVM on R4.3 (recorded), first lines
GETALL = (
    "autostart default=True type=bool False\nbackup_timestamp default=True type=int \n"
    "dns default=True type=str 10.139.1.1 10.139.1.2\nlabel default=False type=label red\n"
    "memory default=True type=int 400\nnetvm default=True type=vm sys-firewall\n"
    "qid default=False type=int 7\nkernelopts default=True type=str swiotlb=2048\n"
)


def test_parse_property_values_and_natives():
    value = formats.parse_property("default=False type=vm sys-firewall")
    assert (value.value, value.type, value.is_default, value.native) == ("sys-firewall", "vm", False, "sys-firewall")
    assert formats.parse_property("default=True type=vm ").native is None
    assert formats.parse_property("default=True type=int 2").native == 2
    assert formats.parse_property("default=True type=int ").native is None
    assert formats.parse_property("default=True type=bool False").native is False
    dns = formats.parse_property("default=True type=str 10.139.1.1 10.139.1.2")
    assert dns.value == "10.139.1.1 10.139.1.2"


@pytest.mark.parametrize("bad", ["", "default=True", "type=int 2", "default=maybe type=int 2", "default=True kind=int 2"])
def test_parse_property_rejects_malformed(bad):
    with pytest.raises(ValueError):
        formats.parse_property(bad)


def test_property_render_round_trip():
    text = "default=True type=str 10.139.1.1 10.139.1.2"
    assert formats.parse_property(text).render() == text


def test_get_default():
    assert formats.parse_property_default("type=vm sys-firewall").value == "sys-firewall"
    assert formats.parse_property_default("") is None
    assert formats.render_property_default(None) == ""
    assert formats.render_property_default(formats.parse_property_default("type=int 60")) == "type=int 60"


def test_getall_parse():
    props = formats.parse_property_list_all(GETALL)
    assert list(props) == ["autostart", "backup_timestamp", "dns", "label", "memory", "netvm", "qid", "kernelopts"]
    assert props["dns"].value == "10.139.1.1 10.139.1.2"
    assert props["backup_timestamp"].native is None
    assert props["label"].is_default is False


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=50))
def test_getall_escape_round_trip(value):
    assert formats.unescape_getall(formats.escape_getall(value)) == value
    assert "\n" not in formats.escape_getall(value)


@given(st.lists(st.tuples(st.from_regex(r"\A[a-z_]{1,12}\Z"),
                          st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)),
                unique_by=lambda t: t[0], max_size=8))
def test_getall_render_parse_round_trip(pairs):
    props = [(name, formats.PropertyValue(value, "str", False)) for name, value in pairs]
    parsed = formats.parse_property_list_all(formats.render_property_list_all(props))
    assert {k: v.value for k, v in parsed.items()} == dict(pairs)


def test_vm_list_both_releases():
    r43 = ("dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\n"
           "work class=AppVM state=Halted uuid=3ce2276b-1b81-4ee3-abe8-752886a53c33\n")
    entries = formats.parse_vm_list(r43)
    assert entries["work"] == formats.VmListEntry("work", "AppVM", "Halted", "3ce2276b-1b81-4ee3-abe8-752886a53c33")
    assert "".join(e.render() for e in entries.values()) == r43
    r42 = formats.parse_vm_list("work class=AppVM state=Running\n")
    assert r42["work"].uuid is None and r42["work"].render() == "work class=AppVM state=Running\n"


@pytest.mark.parametrize("bad", ["work AppVM Halted\n", "work class=AppVM\n"])
def test_vm_list_malformed(bad):
    with pytest.raises(ValueError):
        formats.parse_vm_list(bad)


def test_volume_info_typed():
    info = formats.parse_volume_info(
        "pool=varlibqubes\nvid=appvms/t-red/private\nsize=2147483648\nusage=0\nrw=True\nsource=\n"
        "path=/var/lib/qubes/appvms/t-red/private.img\nsave_on_stop=True\nsnap_on_start=False\n"
        "revisions_to_keep=1\nephemeral=False\nis_outdated=False\n")
    assert info["size"] == 2147483648 and info["rw"] is True and info["source"] is None
    assert info["revisions_to_keep"] == 1 and info["snap_on_start"] is False


def test_current_state():
    assert formats.parse_current_state("mem=0 mem_static_max=0 cputime=0 power_state=Halted") == {
        "mem": 0, "mem_static_max": 0, "cputime": 0, "power_state": "Halted"}


@pytest.mark.parametrize("text,expected", [
    ("20GiB", 20 * 1024 ** 3), ("60g", 60 * 1024 ** 3), ("512MiB", 512 * 1024 ** 2), ("10 GB", 10 * 1000 ** 3),
    ("2147483648", 2147483648), (4096, 4096), ("1.5GiB", 3 * 1024 ** 3 // 2), ("1t", 1024 ** 4),
])
def test_parse_size(text, expected):
    assert formats.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GiB", "20 parsecs", "-1GiB", -5, True, "1..2G"])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        formats.parse_size(bad)
