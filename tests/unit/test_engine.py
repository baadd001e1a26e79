# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's pure parts: input shape, canonical values, the property schema."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.corral.qubes.plugins.module_utils import engine, formats, schema
from rehearsal import properties

GiB = 1024 ** 3


@pytest.mark.parametrize("kind, raw, text", [
    ("bool", True, "True"), ("bool", "off", "False"), ("bool", "YES", "True"),
    ("int", 800, "800"), ("int", "4000", "4000"), ("vm", "", ""), ("vm", None, ""), ("vm", "sys-net", "sys-net"),
    ("str", "hvm", "hvm"), ("str", 12, "12"), ("label", "red", "red"), ("int", "*default*", engine.DEFAULT),
])
def test_canonical_property_values(kind, raw, text):
    assert engine.canonical_property("f", kind, raw) == text


@pytest.mark.parametrize("kind, raw, prop, message", [
    ("bool", "maybe", "", "expected a boolean"), ("int", True, "", "expected an integer"),
    ("int", "1.5", "", "expected an integer"), ("int", 0, "memory", "greater than 0"),
    ("int", -1, "maxmem", "0 or more"), ("vm", 3, "", "expected a qube name"),
    ("vm", "no way", "", "is not a qube name"), ("str", "a\nb", "", "printable ASCII"),
    ("str", "kvm", "virt_mode", "one of pv, pvh, hvm"), ("str", "../x", "kernel", "cannot contain '/'"),
    ("str", ["x"], "", "expected a string"),
])
def test_canonical_property_refusals_name_the_field(kind, raw, prop, message):
    with pytest.raises(engine.PlanError) as caught:
        engine.canonical_property("properties.x", kind, raw, prop)
    assert caught.value.field == "properties.x" and message in str(caught.value)


PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7e)


@given(st.one_of(st.booleans(), st.integers(), st.text(alphabet=PRINTABLE)))
def test_feature_values_are_stored_as_strings(value):
    text = engine.feature_text("features.x", value)
    assert isinstance(text, str)
    if isinstance(value, bool):
        assert text == ("1" if value else "")
    else:
        assert text == str(value)


@pytest.mark.parametrize("size, shown", [(20 * GiB, "20GiB"), (512 * 1024 ** 2, "512MiB"), (1000, 1000),
                                         (2 * 1024 ** 4, "2TiB"), (None, None)])
def test_human_size(size, shown):
    assert engine.human_size(size) == shown
    if isinstance(shown, str):
        assert engine.size_bytes("v", shown) == size


def test_spec_collects_top_level_properties_and_services():
    spec = engine.QubeSpec.from_params({
        "name": "work", "label": "blue", "netvm": "", "template": "fedora-42-xfce",
        "properties": {"memory": 800}, "features": {"a": True, "b": None}, "services": {"cups": False},
        "tags": ["x", "x", "y"], "volumes": {"private": "20GiB"}, "state": "running"})
    assert spec.properties == {"memory": ("properties.memory", 800), "label": ("label", "blue"),
                               "template": ("template", "fedora-42-xfce"), "netvm": ("netvm", "")}
    assert spec.features == {"a": "1", "b": None, "service.cups": ""}
    assert spec.tags == ["x", "y"] and spec.volumes == {"private": 20 * GiB}


@pytest.mark.parametrize("params, field", [
    ({"name": "dom0"}, "name"), ({"name": "x", "state": "gone"}, "state"), ({"name": "x", "class": "VM"}, "class"),
    ({"name": "x", "properties": []}, "properties"), ({"name": "x", "features": {"a b": 1}}, "features.a b"),
    ({"name": "x", "services": {"s": 1}}, "services.s"),
    ({"name": "x", "features": {"service.s": "1"}, "services": {"s": True}}, "services.s"),
    ({"name": "x", "tags": "a"}, "tags"), ({"name": "x", "tags": ["guivm-dom0"]}, "tags[0]"),
    ({"name": "x", "tags_mode": "merge"}, "tags_mode"), ({"name": "x", "volumes": {"kernel": 1}}, "volumes.kernel"),
    ({"name": "x", "volumes": {"private": "-1GiB"}}, "volumes.private"),
    ({"name": "x", "pool": {"swap": "p"}}, "pool.swap"), ({"name": "x", "pool": 3}, "pool"),
    ({"name": "x", "clone_from": "x"}, "clone_from"), ({"name": "x", "netvm": "a", "properties": {"netvm": "b"}},
                                                       "netvm"),
])
def test_spec_refusals(params, field):
    with pytest.raises(engine.PlanError) as caught:
        engine.QubeSpec.from_params(params)
    assert caught.value.field == field


@pytest.mark.parametrize("release", ["4.2", "4.3"])
@pytest.mark.parametrize("klass", schema.CLASSES)
def test_schema_matches_the_rehearsal_dom0(klass, release):
    served = properties.class_props(klass, release)
    assert schema.class_properties(klass, release) == {name: prop.type for name, prop in served.items()}
    read_only = {name for name, prop in served.items() if prop.computed or prop.write_once or prop.attr}
    assert read_only == {name for name in served if not schema.writable(name)}


@pytest.mark.parametrize("value, wanted, shown", [
    (formats.PropertyValue("400", "int", True), "400", "400"),          # explicit now, same value
    (formats.PropertyValue("400", "int", False), "400", None),
    (formats.PropertyValue("400", "int", False), "800", "800"),
    (formats.PropertyValue("400", "int", False), engine.DEFAULT, "(default)"),
    (formats.PropertyValue("400", "int", True), engine.DEFAULT, None),
])
def test_what_counts_as_a_property_change(value, wanted, shown):
    assert engine.changed_to(value, wanted) == shown
