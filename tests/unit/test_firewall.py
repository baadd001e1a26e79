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


NOW = 1_800_000_000


@given(rules())
def test_rules_as_data_round_trip_through_the_line_syntax(options):
    """Data -> canonical rule -> line qubesd keeps -> parsed back: the same rule, and as_dict gives the data."""
    options.pop("specialtarget", None)  # with a host or other ports it is refused as never matching
    if "expire" in options:
        options["expire"] = str(NOW + 1 + int(options["expire"]))
    host = options.get("dsthost")
    if host and firewall.parse_host(host)[0] == "dsthost" and host.rstrip(".").rpartition(".")[2].isdigit():
        with pytest.raises(firewall.RuleError) as caught:  # a name with an all-digit top label: refused
            firewall.rule_from_data(options, NOW)
        assert caught.value.field == "dsthost"
        return
    wanted = firewall.rule_from_data(options, NOW)
    read_back = firewall.parse_rule(wanted.rule.render())
    assert wanted.matches(read_back, NOW)
    assert firewall.rule_from_data(firewall.canonical(read_back).as_dict(), NOW) == wanted


def test_rules_as_data_take_numbers_and_normalise_networks():
    wanted = firewall.rule_from_data({"action": "accept", "dsthost": "192.0.2.77/24", "proto": "tcp",
                                      "dstports": 443, "expire": NOW + 60}, NOW).rule
    assert wanted.render() == f"action=accept expire={NOW + 60} dst4=192.0.2.0/24 proto=tcp dstports=443-443"
    assert firewall.rule_from_data({"action": "drop", "dsthost": "2001:DB8:0::1"}, NOW).rule.dsthost == "2001:db8::1/128"


def test_relative_expiry_matches_a_rule_still_running():
    wanted = firewall.rule_from_data({"action": "accept", "expire": "+600"}, NOW)
    assert wanted.rule.expire == NOW + 600 and wanted.lifetime == 600
    assert wanted.matches(firewall.Rule(action="accept", expire=NOW + 300), NOW)
    assert not wanted.matches(firewall.Rule(action="accept", expire=NOW + 900), NOW)
    assert not wanted.matches(firewall.Rule(action="accept"), NOW)
    assert not wanted.matches(firewall.Rule(action="drop", expire=NOW + 300), NOW)


def test_policies():
    bank = {"dsthost": "bank.example.com", "proto": "tcp", "dstports": "443"}
    whitelist = firewall.rules_for_policy("whitelist", [bank], None, NOW)
    assert [w.rule.render() for w in whitelist] == [
        "action=accept dsthost=bank.example.com proto=tcp dstports=443-443", "action=accept specialtarget=dns"]
    assert len(firewall.rules_for_policy("whitelist", [bank], False, NOW)) == 1
    assert len(firewall.rules_for_policy("whitelist", [bank, {"specialtarget": "dns"}], True, NOW)) == 2
    assert [w.rule for w in firewall.rules_for_policy("allow_all", None, None, NOW)] == list(firewall.DEFAULT_RULES)
    assert firewall.rules_for_policy("exact", [], None, NOW) == []
    with pytest.raises(firewall.RuleError) as caught:
        firewall.rules_for_policy("exact", [{"action": "accept"}, {"action": "drop", "proto": "udp"}], None, NOW)
    assert caught.value.index == 1 and "rule 0 before it matches everything" in str(caught.value)


@pytest.mark.parametrize("rule, field, words", [
    ({"dsthost": "0.0.0.0/0"}, "dsthost", "every IPv4 address (0.0.0.0/0) with any protocol"),
    ({"dsthost": "192.0.2.0/0"}, "dsthost", "every IPv4 address (0.0.0.0/0)"),
    ({"dsthost": "::/0"}, "dsthost", "every IPv6 address (::/0) with any protocol"),
    ({"dsthost": "0.0.0.0/0", "proto": "tcp"}, "dsthost", "with tcp on every port"),
    ({"dsthost": "::/0", "proto": "udp"}, "dsthost", "with udp on every port"),
    ({"proto": "tcp"}, "proto", "every address with tcp on every port"),
    ({"action": "accept", "proto": "udp", "comment": "all"}, "proto", "every address with udp"),
])
def test_a_whitelist_refuses_a_rule_that_accepts_every_address(rule, field, words):
    with pytest.raises(firewall.RuleError) as caught:
        firewall.rules_for_policy("whitelist", [{"dsthost": "bank.example.com"}, rule], None, NOW)
    assert (caught.value.index, caught.value.field) == (1, field)
    assert words in str(caught.value) and "no whitelist" in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize("rule", [
    {"dsthost": "0.0.0.0/0", "proto": "tcp", "dstports": 443},   # one port, everywhere: still a limit
    {"dsthost": "::/0", "proto": "icmp"},                         # ping anywhere
    {"dsthost": "0.0.0.0/1"},                                     # half the space is a (poor) choice, not everything
    {"dsthost": "0.0.0.0/0", "action": "drop"},                   # dropping everything is what a whitelist does
    {"dsthost": "0.0.0.0/0", "expire": "+3600"},                  # a temporary opening, as qvm-firewall allows
])
def test_a_whitelist_keeps_rules_that_still_limit(rule):
    assert len(firewall.rules_for_policy("whitelist", [rule], False, NOW)) == 1


def test_exact_rule_lists_may_accept_every_address():
    """Only a whitelist promises to limit: an exact list is what the user wrote."""
    wanted = firewall.rules_for_policy("exact", [{"action": "accept", "dsthost": "0.0.0.0/0"}], None, NOW)
    assert [w.rule.render() for w in wanted] == ["action=accept dst4=0.0.0.0/0"]


@pytest.mark.parametrize("host, words", [
    ("192.0.2.256", "'192.0.2.256' is not an IPv4 address (four numbers 0-255) and never resolves"),
    ("300.1.1.1", "never resolves as a hostname"),
    ("1.2.3.4.5", "never resolves as a hostname"),
    ("host.42", "never resolves as a hostname"),
    ("10.1", "reads as the IPv4 address 10.0.0.1: write 10.0.0.1"),
    ("3232235777", "reads as the IPv4 address 192.168.1.1"),
    ("192.0.2.1.", "never resolves"),
])
def test_a_name_that_only_looks_like_an_ipv4_address_is_refused(host, words):
    for policy in ("whitelist", "exact"):
        with pytest.raises(firewall.RuleError) as caught:
            firewall.rules_for_policy(policy, [{"action": "accept", "dsthost": host}], None, NOW)
        assert caught.value.field == "dsthost" and caught.value.index == 0
        assert words in str(caught.value), str(caught.value)
    # qubesd itself takes it as a hostname: the grammar still reads such a rule from a qube
    assert firewall.parse_rule(f"action=accept dsthost={host}").dst_type == "dsthost"


@pytest.mark.parametrize("host", ["123.example.com", "a1", "1a.2b", "x-1.example.org", "2001:db8::1"])
def test_names_with_digits_are_kept(host):
    assert firewall.rule_from_data({"action": "accept", "dsthost": host}, NOW).rule.dsthost.startswith(host)
