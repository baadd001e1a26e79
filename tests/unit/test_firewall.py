# SPDX-License-Identifier: GPL-3.0-or-later
"""The firewall grammar: qubesd's canonical form and its refusals."""

import pytest
from hypothesis import given, strategies as st

from ansible_collections.corral.qubes.plugins.module_utils import firewall

# admin.vm.firewall.Set payload and what firewall.Get returned afterwards (recorded on R4.3)
SENT = [
    "action=accept dsthost=1.2.3.4 proto=tcp dstports=443",
    "action=accept dsthost=example.com proto=udp dstports=1000-2000 comment=my_comment",
    "action=accept specialtarget=dns",
    "action=accept proto=icmp icmptype=8",
    "action=drop",
]
READ_BACK = [
    "action=accept dst4=1.2.3.4/32 proto=tcp dstports=443-443",
    "action=accept dsthost=example.com proto=udp dstports=1000-2000 comment=my_comment",
    "action=accept specialtarget=dns",
    "action=accept proto=icmp icmptype=8",
    "action=drop",
]


def test_canonical_form_matches_qubesd():
    assert [firewall.parse_rule(line).render() for line in SENT] == READ_BACK


def test_canonical_form_is_a_fixed_point():
    assert [firewall.parse_rule(line).render() for line in READ_BACK] == READ_BACK


def test_expire_is_emitted_after_action():
    rule = firewall.parse_rule("action=accept dsthost=10.0.0.0/8 expire=2000000000")
    assert rule.render() == "action=accept expire=2000000000 dst4=10.0.0.0/8"
    assert rule.is_expired(2000000001) and not rule.is_expired(1999999999)


def test_options_in_any_order_and_synonyms():
    a = firewall.parse_rule("proto=tcp dstports=22 action=accept dst4=203.0.113.0/28")
    b = firewall.parse_rule("action=accept dsthost=203.0.113.0/28 proto=tcp dstports=22-22")
    assert a == b
    assert firewall.parse_rule("action=accept dst6=2001:db8::1").render() == "action=accept dst6=2001:db8::1/128"


def test_comment_may_hold_spaces_and_is_last():
    rule = firewall.parse_rule("action=drop proto=icmp comment=No ICMP here")
    assert rule.comment == "No ICMP here"
    assert rule.render() == "action=drop proto=icmp comment=No ICMP here"


def test_as_dict_short_ports():
    assert firewall.parse_rule("action=accept proto=tcp dstports=443").as_dict() == {
        "action": "accept", "proto": "tcp", "dstports": "443"}


@pytest.mark.parametrize("line,field", [
    ("action=accept dsthost=1.2.3.4 proto=tcp dstport=443", "dstport"),        # unknown key (recorded)
    ("action=accept dsthost=1.2.3.4 proto=tcp dstports=99999", "dstports"),    # out of range (recorded)
    ("action=maybe", "action"),                                                # bad action (recorded)
    ("dsthost=1.2.3.4", "action"),                                             # no action
    ("action=accept dstports=443", "dstports"),                                # ports without proto
    ("action=accept proto=icmp dstports=443", "dstports"),                     # ports with icmp
    ("action=accept proto=tcp icmptype=8", "icmptype"),                        # icmptype without icmp
    ("action=accept proto=icmp icmptype=256", "icmptype"),
    ("action=accept dsthost=Bank.Example.com", "dsthost"),                     # uppercase hostname
    ("action=accept dsthost=bank!example.com", "dsthost"),
    ("action=accept dsthost=1.2.3.4/33", "dsthost"),
    ("action=accept dsthost=1.2.3/24", "dsthost"),
    ("action=accept dsthost=2001:db8::/129", "dsthost"),
    ("action=accept dst4=2001:db8::1", "dst4"),
    ("action=accept dsthost=1.2.3.4 dst4=1.2.3.4", "dst4"),                    # twice
    ("action=accept action=drop", "action"),
    ("action=accept proto=sctp", "proto"),
    ("action=accept specialtarget=ntp", "specialtarget"),
    ("action=accept expire=+300", "expire"),
    ("action=accept proto=tcp dstports=2000-1000", "dstports"),
    ("action=accept comment=no|pipes", "comment"),
    ("action=accept garbage", "garbage"),
    ("", None),
])
def test_refusals_name_the_field(line, field):
    with pytest.raises(firewall.RuleError) as info:
        firewall.parse_rule(line)
    assert info.value.field == field


def test_default_rules_accept_everything():
    assert firewall.render_rules(firewall.DEFAULT_RULES) == "action=accept\n"
    assert firewall.parse_rules("") == []


hosts = st.one_of(
    st.builds(lambda a, b, c, d, n: f"{a}.{b}.{c}.{d}/{n}", *[st.integers(0, 255)] * 4, st.integers(0, 32)),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4),
    st.from_regex(r"\A[a-z0-9][a-z0-9.-]{0,30}\Z"),
)


@st.composite
def rules(draw):
    options = {"action": draw(st.sampled_from(firewall.ACTIONS))}
    if draw(st.booleans()):
        options["dsthost"] = draw(hosts)
    proto = draw(st.sampled_from([None, "tcp", "udp", "icmp"]))
    if proto:
        options["proto"] = proto
    if proto in ("tcp", "udp") and draw(st.booleans()):
        low = draw(st.integers(0, 65535))
        options["dstports"] = f"{low}-{draw(st.integers(low, 65535))}"
    if proto == "icmp" and draw(st.booleans()):
        options["icmptype"] = str(draw(st.integers(0, 255)))
    if draw(st.booleans()):
        options["specialtarget"] = "dns"
    if draw(st.booleans()):
        options["expire"] = str(draw(st.integers(0, 2 ** 40)))
    if draw(st.booleans()):
        options["comment"] = draw(st.from_regex(r"\A[A-Za-z0-9:;,./_ -]{1,20}\Z"))
    return options


@given(rules(), st.randoms())
def test_any_order_parses_to_the_same_canonical_rule(options, rnd):
    comment = options.pop("comment", None)
    items = list(options.items())
    rnd.shuffle(items)
    line = " ".join(f"{k}={v}" for k, v in items) + (f" comment={comment}" if comment else "")
    rule = firewall.parse_rule(line)
    assert firewall.parse_rule(rule.render()) == rule
    assert firewall.parse_rule(rule.render()).render() == rule.render()
