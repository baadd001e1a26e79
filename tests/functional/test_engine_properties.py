# SPDX-License-Identifier: GPL-3.0-or-later
"""Idempotent by construction: any valid layout of a qube, once applied, plans no further change.

100 examples per run; ``CORRAL_EXAMPLES=800`` for a longer search by hand.
"""

from __future__ import annotations

import itertools
import os
import time

import pytest
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


def test_planning_a_volume_size_reads_that_volume_alone(dom0):
    """A qube's own volumes (root, private, volatile, kernel) are read without its list of volumes; any other
    name fails naming the field, before anything is read."""
    client = dom0.client()
    engine.plan_qube(engine.Reader(client), {"name": "sys-net", "volumes": {"private": "40GiB"}})
    assert client.calls["admin.vm.volume.List"] == 0 and client.calls["admin.vm.volume.Info"] == 1
    reads = sum(client.calls.values())
    with pytest.raises(engine.PlanError, match="expected root, private or volatile") as failed:
        engine.plan_qube(engine.Reader(client), {"name": "sys-net", "volumes": {"data": "1GiB"}})
    assert failed.value.field == "volumes.data" and sum(client.calls.values()) == reads
    reader = engine.Reader(client)
    assert list(reader.volumes("sys-net", only={"kernel", "root"})) == ["root", "kernel"]
    assert client.calls["admin.vm.volume.List"] == 0
    assert list(reader.volumes("sys-net")) == list(engine.QUBE_VOLUMES)  # all of them: the list is read
    assert client.calls["admin.vm.volume.List"] == 1


HOSTS = st.one_of(
    st.builds(lambda a, b, n: f"192.0.{a}.{b}/{n}", st.integers(0, 255), st.integers(0, 255), st.integers(8, 32)),
    st.builds(lambda a, b: f"198.51.{a}.{b}", st.integers(0, 255), st.integers(0, 255)),
    st.builds(lambda h, n: f"2001:DB8:{h:x}::/{n}", st.integers(0, 0xffff), st.integers(32, 128)),
    st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,12}\.example\.(com|org|net)\Z"))


@st.composite
def rule_dicts(draw):
    """A rule as a playbook gives it, with numbers or strings where both are allowed."""
    rule = {"action": draw(st.sampled_from(["accept", "drop"])), "dsthost": draw(HOSTS)}
    proto = draw(st.sampled_from([None, "tcp", "udp", "icmp"]))
    if proto:
        rule["proto"] = proto
    if proto in ("tcp", "udp") and draw(st.booleans()):
        low = draw(st.integers(1, 65535))
        rule["dstports"] = draw(st.sampled_from([low, str(low), f"{low}-{draw(st.integers(low, 65535))}"]))
    if proto == "icmp" and draw(st.booleans()):
        rule["icmptype"] = draw(st.sampled_from([8, "0", 3]))
    if draw(st.booleans()):
        rule["expire"] = draw(st.sampled_from(["+3600", "+60", 4102444800]))
    if draw(st.booleans()):
        rule["comment"] = draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9:;,./_ -]{0,20}\Z"))
    return rule


def hand_written(rule: dict, now: float) -> str:
    """A rule dict as a qvm-firewall line (action, proto, dsthost, dstports, icmptype, expire, comment)."""
    options = dict(rule, action=rule.get("action", "accept"))
    if str(options.get("expire", "")).startswith("+"):
        options["expire"] = int(now) + int(options["expire"][1:])
    keys = ("action", "proto", "dsthost", "dstports", "icmptype", "expire", "comment")
    return " ".join(f"{key}={options[key]}" for key in keys if key in options)


def test_applied_firewall_rules_plan_no_change(dom0):
    client = dom0.client()
    client.create("AppVM", "fw", "red")

    @settings(max_examples=int(os.environ.get("CORRAL_EXAMPLES", "100")))
    @given(policy=st.sampled_from(["exact", "whitelist"]), rules=st.lists(rule_dicts(), max_size=6, unique_by=str),
           dns=st.sampled_from([None, False]), by_hand=st.booleans())
    def converge_twice(policy, rules, dns, by_hand):
        params = {"name": "fw", "policy": policy, "rules": rules, "dns": dns if policy == "whitelist" else None}
        now = time.time()
        try:
            specs = engine.firewall_specs(params, now)
        except engine.PlanError as exc:  # a rule that repeats or follows a catch-all: refused, nothing done
            assert "repeats rule" in str(exc) or "can never match" in str(exc) or "allow_all" in str(exc), exc
            return
        if by_hand:  # the same rules written as someone would with qvm-firewall: its option order, text as typed
            client.firewall_set("fw", [hand_written(rule, now) for rule in rules] + (
                ["action=accept specialtarget=dns"] if policy == "whitelist" and dns is None else []))
        else:
            engine.plan_firewall(engine.Reader(client), specs, False, now).apply(client)
        later = time.time()
        again = engine.plan_firewall(engine.Reader(client), engine.firewall_specs(params, later), False, later)
        assert again.actions == [], (params, client.firewall_get("fw"))

    converge_twice()  # pylint: disable=no-value-for-parameter
