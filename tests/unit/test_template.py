# SPDX-License-Identifier: GPL-3.0-or-later
"""Parsing and version order of the template module (no processes)."""

from __future__ import annotations

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import template
from ansible_collections.corral.qubes.plugins.module_utils.template import Version, vercmp


@pytest.mark.parametrize("left, right, order", [
    ("1.0", "1.0", 0), ("1.0", "1.1", -1), ("1.10", "1.9", 1), ("1.01", "1.1", 0), ("1.0", "1.0.1", -1),
    ("1.0a", "1.0", 1), ("1.0~rc1", "1.0", -1), ("1.0~rc1", "1.0~rc2", -1), ("2a", "2.0", -1),
    ("202511010000", "202601150000", -1), ("4.3.0", "4.2.0", 1), ("1_0", "1.0", 0),
])
def test_vercmp_orders_as_rpm(left, right, order):
    assert vercmp(left, right) == order
    reverse_left, reverse_right = right, left
    assert vercmp(reverse_left, reverse_right) == -order


def test_versions_parse_and_order():
    old, new = Version.parse("0:4.3.0-202511010000"), Version.parse("4.3.0-202601150000")
    assert str(new) == "0:4.3.0-202601150000"
    assert old.compare(new) == -1 and new.compare(old) == 1 and old.compare(old) == 0
    assert Version.parse("1:1.0-1").compare(Version.parse("0:9.9-9")) == 1
    for bad in ("4.3.0", "x:1-1", "-1", "0:-1"):
        with pytest.raises(ValueError):
            Version.parse(bad)


def test_parse_list_machine_readable():
    text = ("installed|fedora-42-xfce|0:4.3.0-202511010000|qubes-templates-itl\n"
            "available|fedora-42-xfce|0:4.3.0-202601150000|qubes-templates-itl\n"
            "available|fedora-42-xfce|0:4.3.0-202601150000|qubes-templates-itl-testing\n"
            "available|whonix-gateway-18|0:4.3.0-202511250000|qubes-templates-community\n\n")
    entries = template.parse_list(text)
    assert [entry.status for entry in entries] == ["installed", "available", "available", "available"]
    best = template.latest_available(entries)
    assert set(best) == {"fedora-42-xfce", "whonix-gateway-18"}
    assert best["fedora-42-xfce"].reponame == "qubes-templates-itl"  # same version: the non-testing one
    with pytest.raises(ValueError):
        template.parse_list("available|fedora-42-xfce|0:4.3.0-1\n")
    with pytest.raises(ValueError):
        template.parse_list("sideways|fedora-42-xfce|0:4.3.0-1|repo\n")


def test_parse_list_json():
    document = {"installed": [{"name": "debian-13-xfce", "evr": "0:4.3.0-202511010000",
                               "reponame": "qubes-templates-itl"}],
                "upgradable": [{"name": "debian-13-xfce", "evr": "0:4.3.0-202601150000",
                                "reponame": "qubes-templates-itl"}]}
    entries = template.parse_list_json(document)
    assert [(entry.status, str(entry.version)) for entry in entries] == [
        ("installed", "0:4.3.0-202511010000"), ("upgradable", "0:4.3.0-202601150000")]
    assert template.latest_available(entries) == {}


def test_parse_info_keeps_pipes_of_the_description():
    line = ("available|whonix-gateway-18|0|4.3.0|202511250000|qubes-templates-community|1503238553|"
            "2025-11-25 00:00:00||GPLv3+|https://www.whonix.org|Whonix Gateway|First line.|Second line.")
    [entry] = template.parse_info(line)
    assert entry["installtime"] == "" and entry["size"] == "1503238553"
    assert entry["description"] == "First line.\nSecond line."
    with pytest.raises(ValueError):
        template.parse_info("available|x|0|1")


def test_global_options_go_before_the_subcommand():
    tool = template.Tool("qvm-template", ["qubes-templates-community"], "4.2", "", ["/etc/x.repo"])
    assert tool.argv("install", "--pool", "p", "whonix-gateway-17", yes=True) == [
        "qvm-template", "--enablerepo=qubes-templates-community", "--repo-files=/etc/x.repo", "--releasever=4.2",
        "--updatevm=", "--yes", "install", "--pool", "p", "whonix-gateway-17"]
