#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The clipboard_audit module: the effective flows of the written policy against a matrix."""

from __future__ import annotations

DOCUMENTATION = r"""
module: clipboard_audit
short_description: Check the flows the qrexec policy really allows between domains against a declared matrix
version_added: 0.1.0
description:
  - Reads the qrexec policy as it is written for O(service) (the files with rules for it, those
    C(policy.GetFiles) names, or every file, includes resolved, when one of those includes others) and the qubes it asks about (classes, tags, disposable
    templates; one C(admin.vm.List), then properties and tags of the managed domains and the qubes their rules
    lead to), and evaluates O(service) for every ordered pair of managed domains and for data copied in dom0, with
    Qubes semantics (files in name order, first matching rule wins, no match denies, C(ask) counts as
    allow as it does for clipboard paste).
  - Fails when the policy allows a flow the matrix does not declare, naming the file and line of the rule that
    allows it; a declared flow the policy denies is a warning.
  - Changes nothing.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
options:
  matrix:
    description:
      - Domain -> the domains its data may flow into (for the clipboard, copied from -> may be pasted into). A
        C(dom0) entry lists where data copied in dom0 may go; without one, none.
    type: dict
    required: true
  domains:
    description: The managed domains; by default every domain the matrix names.
    type: list
    elements: str
  service:
    description: The qrexec service whose flows to check (C(qubes.Filecopy), C(qubes.OpenInVM), ...).
    type: str
    default: qubes.ClipboardPaste
  policy_dir:
    description:
      - Read the policy from this directory instead of through the policy admin API.
      - Without it, dom0 reads its policy directory itself (C(/etc/qubes/policy.d), or C($CORRAL_POLICY_DIR))
        and, on R4.3, the top-level files of its runtime policy directory, which qrexec reads too
        (C(/run/qubes/policy.d), or C($CORRAL_RUNTIME_POLICY_DIR); a file there wins over one of the same name),
        and finds the files that decide the service's calls as C(policy.GetFiles) does, with no policy admin
        call. It asks the API (C(policy.GetFiles)) when a runtime file includes others (R4.3 resolves those
        against the runtime directory). A management qube reads them through the API.
    type: path
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
seealso:
  - module: corral.qubes.policy
  - plugin: corral.qubes.flow_policy
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Only the article's clipboard flows are possible
  corral.qubes.clipboard_audit:
    matrix:
      secure: [personal]
      personal: [work]
      work: [personal]
      untrusted: [personal]
"""

RETURN = r"""
flows:
  description: Every ordered pair (and dom0 to each domain) with the policy's decision.
  returned: always
  type: list
  elements: dict
  sample: [{"from": "secure", "to": "personal", "allowed": true, "declared": true,
            "why": "allow by 30-corral-flows.policy:2"}]
undeclared:
  description: Flows the policy allows that the matrix does not declare (the task fails if any).
  returned: always
  type: list
  elements: dict
blocked:
  description: Declared flows the policy denies.
  returned: always
  type: list
  elements: dict
api_calls:
  description: Number of Admin API calls the run made.
  returned: always
  type: int
policy_calls:
  description: Number of policy admin calls (or file reads) the run made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["clipboard_audit"], supports_check_mode=True)
    tasks.exit_module(module, "clipboard_audit")


if __name__ == "__main__":
    main()
