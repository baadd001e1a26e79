# SPDX-License-Identifier: GPL-3.0-or-later
"""Flow matrices into policy rules, the filters, and the audit on the seed's matrix."""

from __future__ import annotations

import itertools

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.filter.flows import admin_policy, flow_policy
from ansible_collections.corral.qubes.plugins.module_utils import flows, policy

SEED = {"secure": ["personal"], "personal": ["work"], "work": ["personal"], "untrusted": ["personal"]}
DOMAINS = ["secure", "personal", "work", "untrusted"]
DEFAULTS = {"90-default-gui-daemon.policy": "qubes.ClipboardPaste * @adminvm @anyvm ask\n"
                                            "qubes.ClipboardPaste * @anyvm @anyvm ask\n"}
SYSTEM = {"dom0": {"class": "AdminVM"}, **{name: {"class": "AppVM"} for name in DOMAINS + ["vault"]}}


def written(matrix, **options) -> dict:
    rules = [policy.rule_from_dict(rule, index) for index, rule in enumerate(flow_policy(matrix, **options))]
    return dict(DEFAULTS, **{"30-corral-flows.policy": policy.render(rules)})


def test_seed_matrix_every_ordered_pair_behaves_as_declared():
    rules = flows.matrix_rules(SEED)
    assert len(rules) == 12 + 4
    report = flows.audit(written({"qubes.ClipboardPaste": SEED}), SYSTEM, SEED, DOMAINS, "qubes.ClipboardPaste")
    assert report["undeclared"] == [] and report["blocked"] == []
    decided = {(flow["from"], flow["to"]): flow["allowed"] for flow in report["flows"]}
    for source, target in itertools.permutations(DOMAINS, 2):
        assert decided[source, target] == (target in SEED[source]), (source, target)
    assert not any(decided["dom0", target] for target in DOMAINS)
    # A qube outside the matrix keeps the defaults.
    whole = policy.Policy(written({"qubes.ClipboardPaste": SEED}))
    assert whole.evaluate("qubes.ClipboardPaste", "", "vault", "secure", SYSTEM, assume_yes_for_ask=True).allowed


def test_dom0_entry_and_options():
    rules = flows.matrix_rules({"dom0": ["work"], "work": []}, dom0="allow")
    assert {(r["source"], r["target"], r["action"]) for r in rules if r["source"] == "@adminvm"} == {
        ("@adminvm", "work", "allow")}
    asked = flows.matrix_rules({"a": ["b"], "b": []}, "qubes.Filecopy", action="ask", dom0="ask")
    assert [(r["service"], r["source"], r["target"], r["action"]) for r in asked] == [
        ("qubes.Filecopy", "a", "b", "ask"), ("qubes.Filecopy", "b", "a", "deny"),
        ("qubes.Filecopy", "@adminvm", "a", "ask"), ("qubes.Filecopy", "@adminvm", "b", "ask")]
    # Managed domains given explicitly: unnamed ones are denied both ways.
    explicit = flows.matrix_rules({"a": ["b"]}, domains=["a", "b", "c"])
    assert ("c", "a", "deny") in {(r["source"], r["target"], r["action"]) for r in explicit}


@pytest.mark.parametrize("matrix, words", [
    ({"a": "b"}, "matrix.a: expected a list"),
    ({"a": ["dom0"]}, "dom0 cannot be a target"),
    ({"a": ["a"]}, "flow to itself"),
    (["a"], "expected a mapping"),
])
def test_bad_matrices(matrix, words):
    with pytest.raises(ValueError, match=None) as caught:
        flows.check_matrix(matrix)
    assert words in str(caught.value)
    with pytest.raises(AnsibleFilterError):
        flow_policy({"qubes.ClipboardPaste": matrix})


def test_bad_filter_input():
    with pytest.raises(AnsibleFilterError, match="not one of the managed domains"):
        flow_policy({"qubes.ClipboardPaste": {"a": ["b"]}}, domains=["a"])
    with pytest.raises(AnsibleFilterError, match="expected allow or ask"):
        flow_policy({"qubes.ClipboardPaste": {"a": ["b"]}}, action="deny")
    with pytest.raises(AnsibleFilterError, match="expected a mapping"):
        flow_policy([{"a": ["b"]}])
    with pytest.raises(AnsibleFilterError, match="service"):
        flow_policy({"qubes ClipboardPaste": {"a": ["b"]}})


def test_admin_policy_grants_only_the_named_calls_on_the_named_qubes():
    rules = admin_policy("mgmt", ["work"], ["admin.vm.property.Set"], ["admin.label.List"])
    sources = {"20-corral-admin-mgmt.policy": policy.render(
        policy.rule_from_dict(rule, index) for index, rule in enumerate(rules))}
    whole = policy.Policy(sources)
    system = {"dom0": {"class": "AdminVM"}, "mgmt": {"class": "AppVM"}, "work": {"class": "AppVM"},
              "personal": {"class": "AppVM"}}

    def decide(service, target):
        decision = whole.evaluate(service, "", "mgmt", target, system)
        return decision.action, decision.target

    assert decide("admin.vm.property.Set", "work") == ("allow", "dom0")
    assert decide("admin.vm.property.Set", "personal")[0] == "deny"
    assert decide("admin.vm.Remove", "work")[0] == "deny"
    assert decide("admin.vm.List", "dom0") == ("allow", "dom0")
    assert decide("admin.vm.List", "personal")[0] == "deny"
    assert decide("admin.label.List", "dom0") == ("allow", "dom0")
    with pytest.raises(AnsibleFilterError):
        admin_policy("mgmt", ["@anyvm"], ["admin.vm.Start"])
