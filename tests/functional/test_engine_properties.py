# SPDX-License-Identifier: GPL-3.0-or-later
"""Idempotent by construction: any valid layout of a qube, once applied, plans no further change.

100 examples per run; ``CORRAL_EXAMPLES=800`` for a longer search by hand.
"""

from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.corral.qubes.plugins.module_utils import engine, formats

LABELS = ("red", "orange", "yellow", "green", "gray", "blue", "purple", "black")
GiB = 1024 ** 3


def cased(words):
    """A word in any letter case (qubesd reads booleans case-insensitively)."""
    return st.sampled_from(words).flatmap(
        lambda word: st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
            lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper))))


BOOL = st.one_of(st.booleans(), cased(["true", "false", "yes", "no", "on", "off"]), st.sampled_from(["1", "0"]))
POSITIVE = st.integers(min_value=1, max_value=100000)
MEMORY = st.integers(min_value=1, max_value=2000)  # MiB: a running qube must fit the host (16 GiB, 4 for dom0)
PROPERTIES = st.fixed_dictionaries({}, optional={
    "memory": st.one_of(MEMORY, MEMORY.map(str)),
    "maxmem": st.integers(min_value=0, max_value=100000),
    "vcpus": st.integers(min_value=1, max_value=64),
    "qrexec_timeout": POSITIVE,
    "autostart": BOOL, "debug": BOOL, "include_in_backups": BOOL,
    "virt_mode": cased(["pv", "pvh", "hvm"]),
    "default_user": st.text(alphabet="abcxyzABC019_+,.-", min_size=1, max_size=12),
    "kernelopts": st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40),
    "memory_default": st.just("*default*"),
})
FEATURE_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 6),
                          st.floats(allow_nan=False, allow_infinity=False, width=32),
                          st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20))
FEATURES = st.dictionaries(st.sampled_from(["a", "b.c", "video-model", "os", "x_y"]), FEATURE_VALUE, max_size=4)
SERVICES = st.dictionaries(st.sampled_from(["cups", "crond", "network-manager"]),
                           st.one_of(st.none(), st.booleans()), max_size=3)
TAGS = st.lists(st.sampled_from(["work", "domain", "a-b", "x_1", "corral"]), max_size=4)
VOLUMES = st.fixed_dictionaries({}, optional={
    "private": st.sampled_from([2 * GiB, "2GiB", "3GiB", "3072MiB", "5g", 6 * GiB + 4096, "10GB"]),
    "volatile": st.sampled_from(["10GiB", "12GiB", 11 * GiB]),
})


def layout(name, label, netvm, props, features, services, tags, mode, volumes, state):
    props = dict(props)
    if props.pop("memory_default", None):
        props["memory"] = "*default*"
    return {"name": name, "label": label, "netvm": netvm, "properties": props, "features": features,
            "services": services, "tags": tags, "tags_mode": mode, "volumes": volumes, "state": state}


LAYOUTS = st.builds(layout, st.just(""), st.sampled_from(LABELS),
                    st.sampled_from([None, "", "sys-firewall", "sys-net", "*default*"]), PROPERTIES, FEATURES,
                    SERVICES, st.one_of(st.none(), TAGS), st.sampled_from(["exact", "add"]), VOLUMES,
                    st.sampled_from(["present", "halted", "running", "paused"]))


def test_applied_layouts_plan_no_change(dom0):
    client = dom0.client()
    names = (f"h{index}" for index in itertools.count())

    @settings(max_examples=int(os.environ.get("CORRAL_EXAMPLES", "100")))
    @given(first=LAYOUTS, second=LAYOUTS)
    def converge_twice(first, second):
        name = next(names)
        for params in (first, second):  # create, then change an existing qube into another layout
            params = {**params, "name": name}
            try:
                plan = engine.plan_qube(engine.Reader(client), params)
            except engine.PlanError as exc:  # the second layout may shrink a volume: refused, nothing done
                assert exc.field.startswith("volumes.") and "only grow" in str(exc), exc
                continue
            try:
                plan.apply(client)
            except engine.ApplyError as exc:
                raise AssertionError(f"qubesd refused a planned step: {exc}") from exc
            again = engine.plan_qube(engine.Reader(client), params)
            assert again.actions == [], (params, again.actions)
            props = client.property_get_all(name)
            for prop, value in params["properties"].items():
                if value == "*default*":
                    assert props[prop].is_default
                else:
                    assert not props[prop].is_default
            for volume, size in params["volumes"].items():
                assert client.volume_info(name, volume)["size"] == formats.parse_size(size)
        if engine.power_word(client.list_vms(name)[name].state) != "halted":
            client.kill(name)
        client.remove(name)

    converge_twice()  # pylint: disable=no-value-for-parameter


def test_planning_a_clone_reads_each_volume_once(dom0):
    client = dom0.client()
    engine.plan_qube(engine.Reader(client), {"name": "copy", "clone_from": "default-dvm",
                                             "volumes": {"private": "4GiB"}, "pool": "varlibqubes"})
    assert client.calls["admin.vm.volume.List"] == 1  # the source's; its template's root is not needed
    assert client.calls["admin.vm.volume.Info"] == 4  # default-dvm's root, private, volatile, kernel
    assert client.calls["admin.vm.property.GetAll"] == 1  # the source: one GetAll, no Get
