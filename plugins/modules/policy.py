#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The policy module: one qrexec policy file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: policy
short_description: Write or remove one Qubes OS qrexec policy file, validated
version_added: 0.1.0
description:
  - Writes one file of C(/etc/qubes/policy.d) from a list of rules as data, or from its text, or removes it.
  - The file and the whole policy it would make are validated first, as strictly as C(qubes-policy-lint) (tokens
    per column, actions and their parameters, includes that must exist). One syntax error in any policy file makes
    Qubes deny every qrexec call, so an invalid file is refused with its line and field, and nothing is written.
  - Writes go through the policy admin API (C(policy.Replace) / C(policy.Remove)) with the token of what was read
    (C(new) when creating), so an edit made by someone else in between is detected instead of overwritten; the
    service validates again and writes atomically. This works from dom0 and from a management qube that the
    policy allows to use the API.
  - In dom0 the files are read from the policy directory itself (C(/etc/qubes/policy.d), readable by dom0's user;
    C($CORRAL_POLICY_DIR) names another, as a rehearsal dom0 does), so a file that is already as wanted costs no
    qrexec call; only a write or removal goes through the API. A management qube reads through the API too.
  - With O(policy_dir) the directory is written directly instead (for a system without that API), with the same
    tokens and an atomic write through a hidden temporary file that qrexec ignores.
author:
  - corral.qubes contributors (!UNKNOWN)
options:
  name:
    description:
      - The file's name without C(.policy), starting with a number that orders it among the others, for example
        V(30-corral-flows) (before Global Config's C(50-config-*) files and the C(90-*) defaults). Lowercase
        letters, digits, C(_) and C(-) only.
      - V(include/NAME) names a file of C(policy.d/include), in the new format for C(!include) or, given as
        O(content), in the old C(SOURCE TARGET ACTION) format that C(!include-service) reads (for example
        V(include/admin-policy-rwx) to let a management qube use the policy admin API).
    type: str
    required: true
  rules:
    description:
      - The rules, in order (the first matching rule of the whole policy wins).
      - Each rule has C(service) (or V(*)), C(argument) (default V(*); V(+) for none, V(+ARG)), C(source),
        C(target), C(action) (V(allow), V(deny), V(ask)) and the action's parameters C(redirect) (written
        C(target=)), C(default_target) (ask), C(user), C(notify) and C(autostart) (booleans).
      - Tokens are those of Qubes - C(@anyvm), C(@adminvm), C(@dispvm), C(@dispvm:NAME), C(@tag:T), C(@type:CLASS),
        C(@default) (target only), C(uuid:UUID) - each only in the columns where qrexec accepts it.
    type: list
    elements: dict
  content:
    description: The file's text instead of O(rules) (comments and C(!include) directives allowed).
    type: str
  header:
    description: A comment written above the rules (with O(rules) only). An empty string writes none.
    type: str
    default: "Managed by corral.qubes (Ansible): edits here are replaced on the next run."
  state:
    description: V(present) writes the file; V(absent) removes it (refused while another file includes it).
    type: str
    choices: [present, absent]
    default: present
  policy_dir:
    description:
      - Write the files of this directory directly (atomically) instead of using the policy admin API.
      - By default the API is used, through C(qrexec-client) in dom0 (E(QREXEC_CLIENT)) or C(qrexec-client-vm) in a
        management qube (E(QREXEC_CLIENT_VM)).
    type: path
attributes:
  check_mode:
    support: full
    description: Reads and validates everything and writes nothing.
  diff_mode:
    support: full
    description: A line diff of the file.
  action:
    support: full
    description: On a local connection without C(become) or a task C(environment), the action plugin runs the task
      inside Ansible's process; otherwise the module runs as usual.
  platform:
    support: full
    platforms: [qubes]
    description: Runs in dom0, or in a management qube allowed to use the policy admin API.
seealso:
  - module: corral.qubes.clipboard_audit
  - plugin: corral.qubes.flow_policy
    plugin_type: filter
  - name: Qubes qrexec policy
    description: The policy format.
    link: https://www.qubes-os.org/doc/qrexec/
"""

EXAMPLES = r"""
- name: The clipboard matrix of the layout, before the defaults
  corral.qubes.policy:
    name: 30-corral-flows
    rules: "{{ {'qubes.ClipboardPaste': {'secure': ['personal'], 'work': ['personal']}} | corral.qubes.flow_policy }}"

- name: Nothing may be pasted into the vault, and split-GPG asks
  corral.qubes.policy:
    name: 31-vault
    rules:
      - {service: qubes.ClipboardPaste, source: "@anyvm", target: vault, action: deny}
      - {service: qubes.Gpg, source: "@tag:gpg-client", target: vault, action: ask, default_target: vault}
      - {service: qubes.OpenURL, source: vault, target: "@default", action: allow, redirect: "@dispvm:web-dvm"}

- name: A file written by hand
  corral.qubes.policy:
    name: 40-updates
    content: |
      # templates update through the VPN
      qubes.UpdatesProxy * @type:TemplateVM @default allow target=sys-vpn-work

- name: Gone
  corral.qubes.policy:
    name: 40-updates
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, what would be done).
  returned: always
  type: list
  elements: str
  sample: ["write policy file 30-corral-flows.policy (17 lines)"]
policy_file:
  description:
    - The file, relative to the policy directory.
    - Not named C(path), which Ansible reserves for a local file it describes with its owner, mode and state.
  returned: success
  type: str
  sample: 30-corral-flows.policy
content:
  description: The file's text after the run (null when absent).
  returned: success
  type: str
policy_calls:
  description: Number of policy admin calls (or file reads and writes) the run made.
  returned: success
  type: int
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
  sample: rules[3].source
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["policy"], supports_check_mode=True)
    tasks.exit_module(module, "policy")


if __name__ == "__main__":
    main()
