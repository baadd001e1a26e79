#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The firewall module: the ordered outgoing rules of qubes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: firewall
short_description: Set the Qubes OS firewall rules of one or several qubes
version_added: 0.1.0
description:
  - Sets the ordered outgoing firewall rules of a qube (what C(qvm-firewall) shows), or of several qubes in one
    task. The qube's netvm (normally C(sys-firewall)) enforces them; the first matching rule wins and anything
    no rule matches is dropped.
  - Rules are data, validated before anything changes. A bad rule fails the task with its index and key
    (for example C(rules[2].dsthost)) and no rule of any qube is changed.
  - Rules are compared with what qubesd reports in canonical form (C(dst4=192.0.2.1/32) for C(192.0.2.1),
    C(443-443) for C(443), option order), so a second run reports no change.
  - A whole rule list is set in one call, so a qube never has half of its new rules.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
  - corral.qubes.admin_api.created_in_run
  - corral.qubes.admin_api.check_mode
options:
  name:
    description:
      - The qube whose rules to set. Give O(name) with O(rules), O(policy) and O(dns), or O(qubes), not both.
    type: str
  policy:
    description:
      - V(whitelist) - the O(rules) (their O(rules[].action) defaults to V(accept)), then a rule accepting DNS
        (unless O(dns=false)), then the implicit drop of everything else.
      - V(allow_all) - one rule accepting everything (the Qubes default, C(qvm-firewall VM reset)); takes no
        O(rules).
      - V(exact) - exactly the O(rules), in order; an empty list blocks everything.
      - Defaults to V(exact).
    type: str
    choices: [whitelist, allow_all, exact]
  dns:
    description:
      - With O(policy=whitelist), whether to add C(action=accept specialtarget=dns) after the rules
        (default V(true)). Not allowed with other policies.
    type: bool
  rules:
    description:
      - The rules, in order. Keys are the options of the Qubes rule syntax; give only those that apply.
      - A rule that repeats an earlier one, or that comes after a rule matching everything, is refused.
      - With O(policy=whitelist), an accept rule for every address of a family on every port (O(rules[].dsthost)
        V(0.0.0.0/0) or V(::/0), or none, without O(rules[].dstports), and not ICMP) is refused, as it would make
        the whitelist meaningless.
    type: list
    elements: dict
    suboptions:
      action:
        description: V(accept) or V(drop). Required unless O(policy=whitelist).
        type: str
        choices: [accept, drop]
      dsthost:
        description:
          - An IPv4 or IPv6 address, a network in CIDR form (C(198.51.100.0/24)), or a hostname.
          - A hostname may hold only lowercase letters, digits, C(-), C(.) and C(_). The netvm resolves it
            when it applies the rules (at start and on every change), not per connection.
          - A name whose last label is all digits (V(192.0.2.256), V(10.1)) is refused, since it is no valid IPv4
            address and never resolves as a hostname.
        type: str
      proto:
        description: V(tcp), V(udp) or V(icmp).
        type: str
        choices: [tcp, udp, icmp]
      dstports:
        description: A port (V(443)) or a range (V("8000-8100")), 0-65535. Needs O(rules[].proto) tcp or udp.
        type: raw
      icmptype:
        description: An ICMP type number, 0-255. Needs O(rules[].proto=icmp).
        type: raw
      specialtarget:
        description: V(dns) - the netvm's DNS servers on port 53 (cannot have a O(rules[].dsthost)).
        type: str
        choices: [dns]
      expire:
        description:
          - When the rule ends, in seconds since the epoch, or V(+N) for N seconds from now (like
            C(qvm-firewall)). A relative rule still running is left as it is, so re-runs do not extend it.
          - qubesd drops expired rules, so an expiry already past is refused.
        type: raw
      comment:
        description: Free text; letters, digits, spaces and C(:;,./_[]-).
        type: str
  qubes:
    description:
      - Several qubes in one task (one read per qube, one write per changed qube), as a mapping of qube names to
        dicts with the keys O(policy), O(rules) and O(dns) described above.
      - Use the P(corral.qubes.whitelists#filter) filter to compute whitelists from a layout's tasks and
        destinations.
    type: dict
notes:
  - The rules take effect in the qube's netvm at once; a running qube does not restart, and the netvm drops
    connections the new rules no longer allow. A qube without a netvm has nothing to enforce them (the task
    warns).
  - All the rules of one qube travel in one Admin API request, which qubesd limits to 64 KiB (some 700 rules
    with hostnames); larger sets are refused before any change. Merge destinations into networks.
seealso:
  - module: corral.qubes.qube
  - module: corral.qubes.qube_info
  - plugin: corral.qubes.whitelists
    plugin_type: filter
  - name: The Qubes firewall
    description: How Qubes enforces these rules.
    link: https://www.qubes-os.org/doc/firewall/
"""

EXAMPLES = r"""
- name: Online banking only (and DNS), nothing else
  corral.qubes.firewall:
    name: secure
    policy: whitelist
    rules:
      - {dsthost: bank.example.com, proto: tcp, dstports: 443}

- name: The company networks for work, a temporary exception that ends in an hour
  corral.qubes.firewall:
    name: work
    policy: whitelist
    rules:
      - {dsthost: 198.51.100.0/24}
      - {dsthost: mail.example.org, proto: tcp, dstports: 443}
      - {dsthost: 192.0.2.80, proto: tcp, dstports: "8000-8100", expire: "+3600", comment: ticket 1234}

- name: Exactly these rules, in this order
  corral.qubes.firewall:
    name: personal
    rules:
      - {action: drop, dsthost: 203.0.113.66}
      - {action: accept, dsthost: 203.0.113.0/28, proto: tcp, dstports: 22}
      - {action: accept, specialtarget: dns}
      - {action: accept, proto: icmp, icmptype: 8}

- name: The whole layout in one task, whitelists computed from the layout's tasks
  corral.qubes.firewall:
    qubes:
      secure: {policy: whitelist, rules: "{{ (qubes_tasks | corral.qubes.whitelists(qubes_destinations)).secure }}"}
      untrusted: {policy: allow_all}
      vault: {policy: exact, rules: []}
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, what would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["set the firewall of secure: 2 rules (was 1)"]
rules:
  description: Each qube's rules after the run (in check mode, as they would be), as data in canonical form.
  returned: success
  type: dict
  sample:
    secure:
      - {action: accept, dsthost: bank.example.com, proto: tcp, dstports: "443"}
      - {action: accept, specialtarget: dns}
api_calls:
  description: Number of Admin API calls the run made.
  returned: always
  type: int
  sample: 3
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
  sample: rules[2].dsthost
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["firewall"], supports_check_mode=True)
    tasks.exit_module(module, "firewall")


if __name__ == "__main__":
    main()
