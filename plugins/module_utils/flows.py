# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Flow matrices between domains (clipboard, file copy, open in VM, open URL) as policy, and their audit.

A matrix maps a domain to the domains its data may flow into (for the
clipboard: copied from -> may be pasted into).  :func:`matrix_rules` turns
it into policy rules: allow for each declared pair, deny for every other
ordered pair of managed domains, and the flows out of dom0 stated
explicitly.  :func:`audit` evaluates the written policy (the grammar and
evaluator of :mod:`policy`) for every pair and reports flows the matrix
does not declare.  No Ansible imports.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.corral.qubes.plugins.module_utils import policy

DOM0 = "dom0"
FLOW_ACTIONS = ("allow", "ask")


def check_matrix(matrix, domains=None) -> tuple[dict[str, list[str]], list[str]]:
    """(matrix with lists, the managed domains in order); ValueError naming the entry at fault.

    The managed domains are ``domains`` if given, else every domain the
    matrix names.  ``dom0`` may appear as a source only (data copied in dom0).
    """
    if not isinstance(matrix, dict):
        raise ValueError("matrix: expected a mapping of domains to the domains their data may go to")
    checked: dict[str, list[str]] = {}
    for source, targets in matrix.items():
        targets = [] if targets is None else targets
        if not isinstance(targets, list) or not all(isinstance(target, str) for target in targets):
            raise ValueError(f"matrix.{source}: expected a list of domain names, not {targets!r}")
        if DOM0 in targets:
            raise ValueError(f"matrix.{source}: dom0 cannot be a target; only data copied in dom0 flows out of it")
        if source in targets:
            raise ValueError(f"matrix.{source}: a domain does not need a flow to itself")
        checked[str(source)] = list(targets)
    named = [name for name in checked if name != DOM0]
    named += [target for targets in checked.values() for target in targets if target not in named]
    managed = list(dict.fromkeys(named)) if domains is None else list(domains)
    for source, targets in checked.items():
        for name in [source] + targets:
            if name != DOM0 and name not in managed:
                raise ValueError(f"matrix.{source}: {name} is not one of the managed domains ({', '.join(managed)})")
    return checked, managed


def matrix_rules(matrix, service: str = "qubes.ClipboardPaste", domains=None, action: str = "allow",
                 dom0: str = "deny") -> list[dict]:
    """Policy rule dicts for a matrix: declared pairs ``action``, every other pair of managed domains deny.

    Flows out of dom0 into managed domains are ``dom0`` (deny by default)
    unless the matrix has a ``dom0`` entry, which then lists exactly the
    domains dom0's data may go to.
    """
    if action not in FLOW_ACTIONS:
        raise ValueError(f"action: expected allow or ask, not {action!r}")
    if dom0 not in ("allow", "ask", "deny"):
        raise ValueError(f"dom0: expected allow, ask or deny, not {dom0!r}")
    checked, managed = check_matrix(matrix, domains)
    rules = []
    for source in managed:
        allowed = checked.get(source, [])
        rules += [_rule(service, source, target, action) for target in allowed]
        rules += [_rule(service, source, target, "deny") for target in managed if target != source
                  and target not in allowed]
    for target in managed:
        if DOM0 in checked:
            verdict = action if target in checked[DOM0] else "deny"
        else:
            verdict = dom0
        rules.append(_rule(service, "@adminvm", target, verdict))
    for rule in rules:  # every rule the grammar accepts, or a clear error now
        policy.rule_from_dict(rule, 0)
    return rules


def _rule(service: str, source: str, target: str, action: str) -> dict:
    rule = {"service": service, "argument": "*", "source": source, "target": target, "action": action}
    if action == "deny":
        rule["notify"] = False  # a refused paste already shows the GUI daemon's own message
    return rule


class _System(Mapping):
    """Every qube by name, as evaluation needs it; a qube's properties and tags are read when evaluation first asks
    about it (the qubes of the flows and the ones their rules lead to), not for every qube of the dom0."""

    def __init__(self, reader):
        self._reader = reader
        self._known: dict[str, dict] = {}

    def __getitem__(self, name: str) -> dict:
        if name not in self._known:
            entry = self._reader.vms[name]
            info = {"class": entry.klass, "uuid": entry.uuid}
            if entry.klass != "AdminVM":
                props = self._reader.props(name)
                info["tags"] = self._reader.tags(name)
                for prop in ("default_dispvm", "template"):
                    if prop in props:
                        info[prop] = props[prop].value or None
                info["template_for_dispvms"] = props.get("template_for_dispvms") is not None and \
                    props["template_for_dispvms"].value == "True"
            self._known[name] = info
        return self._known[name]

    def __contains__(self, name) -> bool:
        return name in self._reader.vms

    def __iter__(self):
        return iter(self._reader.vms)

    def __len__(self) -> int:
        return len(self._reader.vms)


def system_of(reader) -> Mapping:
    """What evaluation needs to know about every qube, read through an engine Reader as evaluation asks."""
    return _System(reader)


def audit(sources: dict[str, str], system: dict, matrix: dict, domains: list[str], service: str) -> dict:
    """Every flow between the managed domains (and out of dom0) as the policy decides it.

    Returns ``flows`` (from, to, allowed, declared, why), ``undeclared``
    (allowed but not in the matrix) and ``blocked`` (declared but denied).
    Ask counts as allow, as the GUI daemon evaluates clipboard paste.
    """
    missing = [name for name in domains if name not in system]
    if missing:
        raise ValueError(f"domains: no qube named {', '.join(missing)}")
    whole = policy.Policy(sources)
    found = []
    for source in [DOM0] + domains:
        for target in domains:
            if target == source:
                continue
            decision = whole.evaluate(service, "", source, target, system, assume_yes_for_ask=True)
            declared = target in matrix.get(source, [])
            where = f"{decision.file}:{decision.line}" if decision.file else "no rule matched"
            found.append({"from": source, "to": target, "allowed": decision.allowed, "declared": declared,
                          "why": f"{decision.action} by {where}" if decision.file else where})
    return {"flows": found,
            "undeclared": [flow for flow in found if flow["allowed"] and not flow["declared"]],
            "blocked": [flow for flow in found if flow["declared"] and not flow["allowed"]]}
