# SPDX-License-Identifier: GPL-3.0-or-later
"""The windows role's answer file against the XML schema in tests/data (written from Microsoft's documented unattend
structure), the role's entry checks, and the rehearsal installer stand-in's reading of an answer file."""

from __future__ import annotations

import pathlib
import re

import jinja2
import pytest
import xmlschema
import yaml

from ansible_collections.corral.qubes.plugins.module_utils import formats, os_install, windows
from rehearsal import installer

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = xmlschema.XMLSchema11(str(ROOT / "tests" / "data" / "unattend.xsd"))
TEMPLATE = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined).from_string(
    (ROOT / "roles" / "windows" / "templates" / "autounattend.xml.j2").read_text())
PROPS = {"ip": {"value": "10.137.0.7"}, "visible_gateway": {"value": "10.138.0.1"},
         "dns": {"value": "10.139.1.1 10.139.1.2"}}
LOCALES = ["en-US", "de-DE"]
ZONES = ["UTC", "W. Europe Standard Time"]


def raw(**overrides) -> dict:
    base = {"iso": {"qube": "untrusted", "path": "/home/user/win7.iso", "sha256": "a" * 64},
            "edition": "Windows 7 PROFESSIONAL", "computer_name": "WORK", "user": {"name": "user", "password": "pw&<1"},
            "admin_password": "admin\"pw", "product_key": "QW7RT-YU8PK-MN3BV-CX2ZL-9HJKD",
            "first_logon_commands": ["cmd /c echo <ready> & exit"]}
    base.update(overrides)
    return base


def render(**overrides) -> str:
    w = windows.entry(raw(**overrides))
    return TEMPLATE.render(w=w, net=windows.network(w, PROPS))


def test_the_generated_answer_file_is_valid_against_the_schema():
    text = render()
    SCHEMA.validate(text)
    SCHEMA.validate(render(product_key=None, arch="x86", first_logon_commands=[]))
    setup = installer.check_answer(text.encode(), 40 * 1024 ** 3)
    assert setup["network"] == {"address": "10.137.0.7", "prefix": 8, "gateway": "10.138.0.1",
                                "dns": ["10.139.1.1", "10.139.1.2"]}
    assert setup["shutdown"] and setup["user"] == "user" and setup["computer_name"] == "WORK"
    # special characters of the values are escaped, and survive a round trip
    assert "pw&amp;&lt;1" in text and "&lt;ready&gt; &amp; exit" in text
    # the product key in windowsPE and in specialize, where Windows Welcome takes it without asking again
    assert text.count("<Key>QW7RT-YU8PK-MN3BV-CX2ZL-9HJKD</Key>") == 1
    assert text.count("<ProductKey>QW7RT-YU8PK-MN3BV-CX2ZL-9HJKD</ProductKey>") == 1


def test_a_qube_without_network_gets_no_tcpip_settings():
    w = windows.entry(raw())
    text = TEMPLATE.render(w=w, net=windows.network(w, {}))
    SCHEMA.validate(text)
    assert "Microsoft-Windows-TCPIP" not in text and "Microsoft-Windows-DNS-Client" not in text
    assert "0.0.0.0/8" not in text
    assert installer.check_answer(text.encode(), 40 * 1024 ** 3)["network"] == {"dhcp": True}


@pytest.mark.parametrize("change, complaint", [
    (lambda t: t.replace(' publicKeyToken="31bf3856ad364e35"', "", 1), "publicKeyToken"),
    (lambda t: t.replace('versionScope="nonSxS"', 'versionScope="global"', 1), "versionScope"),
    (lambda t: t.replace('processorArchitecture="amd64"', 'processorArchitecture="x64"', 1), "processorArchitecture"),
    (lambda t: t.replace('language="neutral"', 'language="Neutral!"', 1), "language"),
    (lambda t: t.replace('pass="specialize"', 'pass="firstBoot"', 1), "pass"),
    (lambda t: t.replace('pass="specialize"', 'pass="windowsPE"', 1), "onePerPass"),
    (lambda t: t.replace("urn:schemas-microsoft-com:unattend", "urn:example", 1), "unattend"),
    (lambda t: t.replace("<Key>QW7RT-YU8PK-MN3BV-CX2ZL-9HJKD</Key>", "<Key>QW7RT-YU8PK</Key>"), "Key"),
    (lambda t: t.replace("<WillWipeDisk>true</WillWipeDisk>", "<WillWipeDisk>yes</WillWipeDisk>"), "WillWipeDisk"),
    (lambda t: t.replace("<Order>2</Order>\n          <CommandLine>", "<Order>1</Order>\n          <CommandLine>"),
     "oneCommandPerOrder"),
    (lambda t: re.sub(r"10\.137\.0\.7/8", "10.137.0.7", t), "IpAddress"),
    (lambda t: t.replace("<ComputerName>WORK</ComputerName>", "<ComputerName>A-NAME-FAR-TOO-LONG</ComputerName>"),
     "ComputerName"),
    (lambda t: t.replace('<SynchronousCommand wcm:action="add">', "<SynchronousCommand>", 1), "action"),
])
def test_the_schema_refuses_what_the_documented_structure_does_not_allow(change, complaint):
    bad = change(render())
    assert bad != render()
    with pytest.raises(xmlschema.XMLSchemaValidationError) as error:
        SCHEMA.validate(bad)
    assert complaint in str(error.value)


@pytest.mark.parametrize("overrides, message", [
    ({"product_key": "QW7RT-YU8PK"}, "work.product_key: not of the form"),
    ({"locale": "xx-XX"}, "work.locale: not a language Windows 7 knows"),
    ({"timezone": "Europe/Berlin"}, "work.timezone: not a Windows time zone name"),
    ({"iso": {"qube": "untrusted", "path": "/x.iso", "sha256": "abc"}}, "work.iso.sha256"),
    ({"iso": {"qube": "dom0", "path": "/x.iso", "sha256": "a" * 64}}, "work.iso.qube"),
    ({"iso": {"qube": "untrusted", "path": "x.iso", "sha256": "a" * 64}}, "work.iso.path"),
    ({"root_gib": 19}, "work.root_gib"),
    ({"arch": "x86", "root_gib": 16, "memory": 512}, "work.memory"),
    ({"user": {"name": "a/b", "password": "x"}}, "work.user.name"),
    ({"admin_password": ""}, "work.admin_password: required"),
    ({"network": {"address": "10.137.0.300"}}, "work.network.address"),
    ({"post_install": {"prefs": {}}}, "work.post_install"),
    ({"reinstall": "yes"}, "work.reinstall"),
])
def test_entry_checks_name_the_field_and_never_a_secret(overrides, message):
    with pytest.raises(windows.EntryError) as error:
        windows.check("work", raw(**overrides), LOCALES, ZONES)
    assert message in str(error.value)
    for secret in ("pw&<1", 'admin"pw', "QW7RT-YU8PK"):
        assert secret not in str(error.value)


def test_an_x86_entry_with_its_smaller_minimum_is_accepted():
    windows.check("work", raw(arch="x86", root_gib=16, memory=1024), LOCALES, ZONES)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace("shutdown /s /t 0", "echo done"), None),
    (lambda t: t.replace("<WillWipeDisk>true</WillWipeDisk>", "<WillWipeDisk>false</WillWipeDisk>"), "no disk to wipe"),
    (lambda t: t.replace("<AcceptEula>true</AcceptEula>", ""), "license terms"),
    (lambda t: t.replace("10.137.0.7/8", "not-an-address"), "not an IPv4 address"),
    (lambda t: t.replace("<unattend ", "<unattended ", 1).replace("</unattend>", "</unattended>"), "root element"),
])
def test_the_installer_stand_in_stops_where_setup_would(change, message):
    text = change(render())
    if message is None:
        assert installer.check_answer(text.encode(), 40 * 1024 ** 3)["shutdown"] is False
        return
    with pytest.raises(installer.SetupError, match=message):
        installer.check_answer(text.encode(), 40 * 1024 ** 3)


def test_the_installer_stand_in_refuses_a_disk_below_setups_minimum():
    with pytest.raises(installer.SetupError, match="setup needs 20 GB"):
        installer.check_answer(render().encode(), 19 * 1024 ** 3)


def test_the_record_is_salted_by_the_qube_and_never_the_plain_digest():
    import hashlib  # pylint: disable=import-outside-toplevel

    text = render()
    assert os_install.digest(text, "work") == os_install.digest(text, "work")
    assert os_install.digest(text, "work") != os_install.digest(text, "work2")
    assert hashlib.sha256(text.encode()).hexdigest() not in os_install.digest(text, "work")


def test_the_reference_work_entry_asks_what_the_layout_asks():
    """The reference layout's work qube is made by the qubes role and installed by the windows role: both must ask
    the same of it, or each run would undo the other's change."""
    folder = ROOT / "inventories" / "t420s" / "group_vars" / "qubes_admin"
    layout = yaml.safe_load((folder / "layout.yml").read_text())["qubes_layout"]["work"]
    reference = yaml.safe_load((folder / "windows.yml").read_text())["windows_reference"]["work"]
    w = windows.entry(reference)
    props = layout["properties"]
    assert (w["class"], w["label"], w["netvm"]) == (layout["class"], layout["label"], layout["netvm"])
    assert (props["virt_mode"], props["kernel"], props["maxmem"]) == ("hvm", "", 0)
    assert (w["memory"], w["qrexec_timeout"]) == (props["memory"], props["qrexec_timeout"])
    assert w["root_gib"] * 1024 ** 3 == formats.parse_size(layout["volumes"]["root"])
    assert props.get("vcpus", w["vcpus"]) == w["vcpus"]
    # with the ISO and the secrets the inventory leaves to a vault, the entry passes the role's checks
    role_vars = yaml.safe_load((ROOT / "roles" / "windows" / "vars" / "main.yml").read_text())
    filled = {**reference, "iso": {"qube": "untrusted", "path": "/home/user/win7.iso", "sha256": "b" * 64},
              "user": {"name": "user", "password": "x"}, "admin_password": "y"}
    windows.check("work", filled, role_vars["_windows_locales"], role_vars["_windows_time_zones"])
