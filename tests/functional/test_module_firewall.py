# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.firewall through ansible-playbook against a rehearsal dom0."""

from __future__ import annotations

import time

import pytest

from playbook import qube

BANK = {"dsthost": "bank.example.com", "proto": "tcp", "dstports": 443}


def firewall(**args) -> dict:
    """A corral.qubes.firewall task."""
    return {"corral.qubes.firewall": args}


@pytest.fixture
def work(dom0, player):
    """A qube 'work' behind sys-firewall with the default rule."""
    player.run([qube("work", label="blue", netvm="sys-firewall")])
    return dom0.client()


def test_whitelist_check_diff_apply_idempotence(dom0, player, work):
    task = firewall(name="work", policy="whitelist",
                    rules=[BANK, {"dsthost": "198.51.100.7/24"}, {"dsthost": "2001:DB8::1", "proto": "udp",
                                                                  "dstports": "5000-5010", "comment": "rtp [a]"}])
    mark = dom0.mark()
    checked = player.run([task], check=True, diff=True)[0]
    assert checked["changed"] and dom0.writes_since(mark) == []
    after = ["action=accept dsthost=bank.example.com proto=tcp dstports=443-443",
             "action=accept dst4=198.51.100.0/24",
             "action=accept dst6=2001:db8::1/128 proto=udp dstports=5000-5010 comment=rtp [a]",
             "action=accept specialtarget=dns"]
    assert checked["diff"] == {"before": {"work": ["action=accept"]}, "after": {"work": after}}
    assert checked["actions"] == ["set the firewall of work: 4 rules (was 1)"]

    run = player.run([task, task], diff=True)
    assert [r["changed"] for r in run.results] == [True, False]
    assert work.firewall_get("work") == after
    assert run[1]["rules"]["work"] == [
        {"action": "accept", "dsthost": "bank.example.com", "proto": "tcp", "dstports": "443"},
        {"action": "accept", "dsthost": "198.51.100.0/24"},
        {"action": "accept", "dsthost": "2001:db8::1/128", "proto": "udp", "dstports": "5000-5010",
         "comment": "rtp [a]"},
        {"action": "accept", "specialtarget": "dns"}]

    # A second run reads and compares only: one List and one firewall.Get; no write.
    mark = dom0.mark()
    again = player.run([task])[0]
    assert not again["changed"] and dom0.writes_since(mark) == []
    assert sorted(call["method"] for call in dom0.calls_since(mark)) == [
        "admin.vm.List", "admin.vm.firewall.Get"]

    # What qube_info reads pastes back as an exact rule list with no change.
    info = player.run([{"corral.qubes.qube_info": {"names": ["work"], "sections": ["firewall"]}}])[0]
    pasted = player.run([firewall(name="work", rules=info["qubes"]["work"]["firewall"])])[0]
    assert not pasted["changed"]


def test_policies_and_rules_written_by_hand_in_another_order(dom0, player, work):
    # qubesd keeps the text it was given; a rule set with qvm-firewall's option order and an
    # unnormalised network compares equal to the same rules as data.
    work.firewall_set("work", ["action=accept proto=tcp dsthost=192.0.2.9/24 dstports=22",
                               "action=accept specialtarget=dns"])
    run = player.run([
        firewall(name="work", policy="whitelist", rules=[{"dsthost": "192.0.2.0/24", "proto": "tcp", "dstports": "22"}]),
        firewall(name="work", policy="whitelist", dns=False, rules=[{"dsthost": "192.0.2.0/24", "proto": "tcp",
                                                                     "dstports": "22"}]),
        firewall(name="work", policy="allow_all"),
        firewall(name="work", policy="allow_all"),
        firewall(name="work", rules=[]),
        firewall(name="work", policy="exact", rules=[]),
        firewall(name="work", rules=[{"action": "drop", "proto": "icmp", "icmptype": 8},
                                     {"action": "accept", "proto": "icmp"}, {"action": "drop"}]),
    ])
    assert [r["changed"] for r in run.results] == [False, True, True, False, True, False, True]
    assert work.firewall_get("work") == ["action=drop proto=icmp icmptype=8", "action=accept proto=icmp",
                                         "action=drop"]


def test_several_qubes_in_one_task(dom0, player, work):
    player.run([qube("mail", label="yellow", netvm="sys-firewall")])
    layout = {"work": {"policy": "whitelist", "rules": [BANK]},
              "mail": {"policy": "exact", "rules": [{"action": "accept", "dsthost": "mail.example.net"}]},
              "sys-firewall": {"policy": "allow_all"}}
    mark = dom0.mark()
    first = player.run([firewall(qubes=layout)])[0]
    writes = dom0.writes_since(mark)
    assert first["changed"] and sorted(call["dest"] for call in writes) == ["mail", "work"]
    assert sorted(first["actions"]) == ["set the firewall of mail: 1 rule (was 1)",
                                        "set the firewall of work: 2 rules (was 1)"]
    assert set(first["rules"]) == {"work", "mail", "sys-firewall"}
    mark = dom0.mark()
    second = player.run([firewall(qubes=layout)])[0]
    assert not second["changed"] and dom0.writes_since(mark) == []


def test_relative_expiry_is_not_pushed_on(dom0, player, work):
    task = firewall(name="work", rules=[{"action": "accept", "dsthost": "192.0.2.1", "expire": "+3600"}])
    before = time.time()
    run = player.run([task, task])
    assert [r["changed"] for r in run.results] == [True, False]
    expire = run[0]["rules"]["work"][0]["expire"]
    assert before + 3600 - 1 <= expire <= time.time() + 3600
    assert run[1]["rules"]["work"][0]["expire"] == expire
    # A shorter lifetime than what is left is a change (the rule would outlive the wish).
    shorter = player.run([firewall(name="work", rules=[{"action": "accept", "dsthost": "192.0.2.1", "expire": "+60"}])])
    assert shorter[0]["changed"]


def test_check_mode_on_a_qube_an_earlier_task_creates(dom0, player):
    run = player.run([qube("later", label="red"), firewall(name="later", policy="whitelist", rules=[BANK])],
                     check=True)
    assert run[1]["changed"] and "does not exist yet" in " ".join(run[1]["warnings"])
    outside = player.run([firewall(name="later", policy="whitelist", rules=[BANK])])
    assert outside[0]["field"] == "name" and "no qube named 'later'" in outside[0]["msg"]


def test_a_qube_without_netvm_gets_a_warning(dom0, player):
    player.run([qube("vault", label="black", netvm="")])
    run = player.run([firewall(name="vault", rules=[])])
    assert run[0]["changed"] and "vault has no netvm" in " ".join(run[0]["warnings"])


BAD = [
    # (task arguments, field, words in the message)
    ({"rules": [dict(BANK, action="accept"), {"action": "accept", "dsthost": "10.0.0.0/33"}]}, "rules[1].dsthost", "at most 32"),
    ({"rules": [{"action": "accept", "dsthost": "10.0.0.300/24"}]}, "rules[0].dsthost", "invalid IP address"),
    ({"rules": [{"action": "accept", "dsthost": "Bank.Example.com"}]}, "rules[0].dsthost", "'bank.example.com'"),
    ({"rules": [{"action": "accept", "dsthost": "bank!.example.com"}]}, "rules[0].dsthost", "invalid hostname"),
    ({"rules": [{"action": "accept", "dstports": 443}]}, "rules[0].dstports", "proto tcp or udp"),
    ({"rules": [{"action": "accept", "proto": "udp", "dstports": "70000"}]}, "rules[0].dstports", "0-65535"),
    ({"rules": [{"action": "accept", "proto": "tcp", "dstports": "90-80"}]}, "rules[0].dstports", "ends before"),
    ({"rules": [{"action": "accept", "proto": "tcp", "dstports": [80, 443]}]}, "rules[0].dstports", "one per rule"),
    ({"rules": [{"action": "accept", "icmptype": 8}]}, "rules[0].icmptype", "proto icmp"),
    ({"rules": [{"action": "accept", "proto": "icmp", "icmptype": 300}]}, "rules[0].icmptype", "0-255"),
    ({"rules": [{"action": "accept", "port": 22}]}, "rules[0].port", "unknown key"),
    ({"rules": [{}]}, "rules[0]", "empty rule"),
    ({"rules": [{"dsthost": "192.0.2.1"}]}, "rules[0].action", "needs action"),
    ({"rules": [{"action": "allow"}]}, "rules[0].action", "accept or drop"),
    ({"rules": [{"action": "accept", "proto": "sctp"}]}, "rules[0].proto", "tcp, udp or icmp"),
    ({"rules": [{"action": "accept", "specialtarget": "dns", "dsthost": "192.0.2.53"}]}, "rules[0].specialtarget",
     "cannot also have a dsthost"),
    ({"rules": [{"action": "accept", "specialtarget": "dns", "proto": "tcp", "dstports": 853}]}, "rules[0].dstports",
     "only matches port 53"),
    ({"rules": [{"action": "drop"}, {"action": "accept", "dsthost": "192.0.2.1"}]}, "rules[1]", "can never match"),
    ({"rules": [BANK, BANK], "policy": "whitelist"}, "rules[1]", "repeats rule 0"),
    ({"rules": [{"proto": "tcp", "dstports": 443}, {}], "policy": "whitelist"}, "rules[1]", "empty rule"),
    ({"rules": [{"action": "accept"}], "policy": "whitelist"}, "rules[0].action", "use policy allow_all"),
    ({"rules": [BANK, {"dsthost": "0.0.0.0/0"}], "policy": "whitelist"}, "rules[1].dsthost",
     "every IPv4 address (0.0.0.0/0) with any protocol on every port, which is no whitelist"),
    ({"rules": [{"dsthost": "::/0", "proto": "tcp"}], "policy": "whitelist"}, "rules[0].dsthost",
     "every IPv6 address (::/0) with tcp on every port"),
    ({"rules": [{"action": "accept", "dsthost": "192.0.2.256"}]}, "rules[0].dsthost",
     "not an IPv4 address (four numbers 0-255) and never resolves as a hostname"),
    ({"rules": [BANK, {"dsthost": "192.0.2.256", "proto": "tcp", "dstports": 443}], "policy": "whitelist"},
     "rules[1].dsthost", "never resolves"),
    ({"rules": [BANK], "policy": "allow_all"}, "rules", "takes no rules"),
    ({"rules": [], "dns": True}, "dns", "only a whitelist"),
    ({"rules": [{"action": "accept", "expire": 1000}]}, "rules[0].expire", "in the past"),
    ({"rules": [{"action": "accept", "expire": "+soon"}]}, "rules[0].expire", "+seconds"),
    ({"rules": [{"action": "accept", "comment": "50% off!"}]}, "rules[0].comment", "forbidden character"),
    ({"rules": [{"action": "accept", "dsthost": "a.example.com", "proto": "tcp", "dstports": port,
                 "comment": "x" * 40} for port in range(1, 1001)]}, "rules", "at most 65536"),
]


def test_bad_input_names_the_rule_and_changes_nothing(dom0, player, work):
    work.firewall_set("work", ["action=accept dsthost=keep.example.com", "action=accept specialtarget=dns"])
    mark = dom0.mark()
    run = player.run([firewall(name="work", **args) for args, _field, _words in BAD])
    for (args, field, words), result in zip(BAD, run.results):
        assert result.get("failed"), (args, result)
        assert (result.get("field"), words in result["msg"]) == (field, True), (args, result["msg"])
        assert result["msg"].startswith(field), result["msg"]
    assert dom0.writes_since(mark) == []
    assert work.firewall_get("work") == ["action=accept dsthost=keep.example.com", "action=accept specialtarget=dns"]


def test_bad_targets_and_forms(dom0, player, work):
    mark = dom0.mark()
    run = player.run([
        firewall(name="dom0", rules=[]),
        firewall(name="ghost", rules=[]),
        firewall(name="-bad", rules=[]),
        firewall(name="work", rules=[], qubes={"work": {"rules": []}}),
        firewall(rules=[]),
        firewall(qubes={"work": {"policy": "allow_all"}, "mail": {"policy": "deny_all"}}),
        firewall(qubes={"work": {"policy": "whitelist", "rules": [{"dsthost": "UP.example.com"}]}}),
        firewall(qubes={"work": {"policy": "allow_all", "extra": 1}}),
        firewall(qubes={"work": ["action=accept"]}),
        firewall(name="work", policy="block"),
    ])
    fields = [r.get("field") for r in run.results]
    assert fields == ["name", "name", "name", "name", "name", "qubes.mail.policy", "qubes.work.rules[0].dsthost",
                      "qubes.work.extra", "qubes.work", None]
    assert "dom0 has no firewall" in run[0]["msg"]
    assert "value of policy must be one of" in run[9]["msg"]
    assert all(r.get("failed") for r in run.results)
    assert dom0.writes_since(mark) == []
