# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test module: its result repeats a no_log parameter."""

from __future__ import annotations

DOCUMENTATION = r"""
module: echo
short_description: Repeat a secret in the result (tests only)
description: Puts its no_log parameter in a message, a nested value, a diff and a warning.
options:
  name:
    description: A name.
    type: str
    required: true
  secret:
    description: A secret.
    type: str
    aliases: [passphrase]
  fail:
    description: Fail, with the secret in the message.
    type: bool
    default: false
author: corral.qubes developers
"""

EXAMPLES = r"""
- name: Echo
  corral_test.probe.echo:
    name: me
    secret: hunter2
"""

RETURN = r"""
said:
  description: The name and the secret.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks
from ansible_collections.corral_test.probe.plugins.module_utils import echo


def main():
    """Run the echo task as a module process, reporting as corral.qubes' modules do."""
    module = AnsibleModule(argument_spec=echo.ARGUMENT_SPEC, supports_check_mode=True)
    tasks.report(module, echo.run(module.params, module.check_mode, module._diff))  # pylint: disable=protected-access


if __name__ == "__main__":
    main()
