# SPDX-License-Identifier: GPL-3.0-or-later
"""Naming rules, in qubesd's words."""

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import names


@pytest.mark.parametrize("name", ["work", "sys-net", "a", "w" * 31, "anon_whonix", "Vault2"])
def test_valid_names(name):
    assert names.vm_name_error(name, "4.2") is None
    assert names.vm_name_error(name, "4.3") is None


def test_dots_only_from_r43():
    assert names.vm_name_error("fedora.42", "4.3") is None
    assert names.vm_name_error("fedora.42", "4.2") == "VM name contains illegal characters"


@pytest.mark.parametrize("name,message", [
    ("1-bad", "VM name cannot start with hyphen, underscore, dot or numbers"),
    ("-x", "VM name cannot start with hyphen, underscore, dot or numbers"),
    ("w" * 32, "VM name must be shorter than 32 characters"),
    ("has space", "VM name contains illegal characters"),
    ("ünicode", "VM name contains illegal characters"),
    ("Domain-0", "VM name cannot be 'Domain-0'"),
    ("none", "VM name cannot be 'none' nor 'default'"),
    ("default", "VM name cannot be 'none' nor 'default'"),
    ("work-dm", "VM name cannot end with -dm"),
    ("", "VM name contains illegal characters"),
])
def test_invalid_names_r43(name, message):
    assert names.vm_name_error(name, "4.3") == message


def test_r42_has_no_leading_character_message():
    assert names.vm_name_error("1-bad", "4.2") == "VM name contains illegal characters"


def test_non_string():
    assert names.vm_name_error(42) == "VM name must be string, 'int' found"


@pytest.mark.parametrize("tag,ok", [("anon-vm", True), ("created-by-dom0", True), ("a_b", True),
                                    ("bad/tag", False), ("with space", False), ("", False), ("dot.tag", False)])
def test_tags(tag, ok):
    assert (names.tag_error(tag) is None) is ok


@pytest.mark.parametrize("name,ok", [("service.cups", True), ("gui", True), ("x y", False), ("", False), ("a/b", False)])
def test_feature_names(name, ok):
    assert (names.feature_name_error(name) is None) is ok


@pytest.mark.parametrize("value,ok", [("1", True), ("", True), ("a b ~", True), ("line\nbreak", False), ("é", False)])
def test_feature_values(value, ok):
    assert (names.feature_value_error(value) is None) is ok


@pytest.mark.parametrize("name,ok", [("corral", True), ("my.label-1", True), ("123", False), ("bad label", False)])
def test_label_names(name, ok):
    assert (names.label_name_error(name) is None) is ok


def test_article_as_spoken():
    assert [names.article(word) for word in ("AppVM", "AdminVM", "TemplateVM", "StandaloneVM", "DispVM")] == [
        "an AppVM", "an AdminVM", "a TemplateVM", "a StandaloneVM", "a DispVM"]
