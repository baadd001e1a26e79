# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of corral.qubes.role_arguments: several roles' variables against their argument specs, in one task.

Each role's entry point is validated as Ansible validates it when the role runs (the role's
``meta/argument_specs.yml``, the variables taken from the task's variables and templated by
ansible.builtin.validate_argument_spec's own code, the same validator), so a playbook that imports the roles
with ``rolespec_validate: false`` loses no check and pays for one task instead of one per role.
"""

from __future__ import annotations

import os

import yaml

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action.validate_argument_spec import ActionModule as ValidateArgumentSpec

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
PREFIX = "corral.qubes."
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present, as Ansible uses it


def collection_roles() -> list[str]:
    """The roles of this collection that have an argument spec."""
    if not os.path.isdir(ROLES_DIR):
        return []
    return sorted(name for name in os.listdir(ROLES_DIR)
                  if os.path.isfile(os.path.join(ROLES_DIR, name, "meta", "argument_specs.yml")))


def plain(value):
    """``value`` as plain Python data (dicts, lists, str, int, float, bool, None), so that the validator's deep copy
    of the variables copies plain values: ansible-core 2.19 templates values into tagged subclasses of str, int and
    dict, which ``copy.deepcopy`` copies one by one through their reduce protocol (a 100-qube layout: about 85 ms
    against 3). Only the copy that is validated; the variables themselves are left as they are."""
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return value if type(value) is kind else kind.__new__(kind, value)  # pylint: disable=unidiomatic-typecheck
    return value


def parse_entries(given) -> list[tuple[str, str]]:
    """``roles`` as (role, entry point) pairs; a ValueError naming the entry when one is not understood."""
    if not isinstance(given, list) or not given:
        raise ValueError("roles: expected a non-empty list of roles of corral.qubes, e.g. [corral.qubes.fedora]")
    known = collection_roles()
    entries = []
    for index, entry in enumerate(given):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or set(entry) - {"name", "entry_point"}:
            raise ValueError(f"roles[{index}]: expected a role name, or a mapping with name and entry_point")
        name = entry["name"].removeprefix(PREFIX)
        if name not in known:
            raise ValueError(f"roles[{index}]: {entry['name']!r} is not a role of corral.qubes with an argument spec; "
                             f"roles: {', '.join(PREFIX + role for role in known)}")
        entries.append((name, str(entry.get("entry_point") or "main")))
    return entries


class ActionModule(ValidateArgumentSpec):
    """corral.qubes.role_arguments."""

    TRANSFERS_FILES = False
    _requires_connection = False

    @staticmethod
    def _options(role: str, entry_point: str) -> dict:
        # plain YAML, read as plain data (the file is this collection's own; the validator needs no origins)
        with open(os.path.join(ROLES_DIR, role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
            specs = (yaml.load(handle, Loader=SAFE_LOADER) or {}).get("argument_specs") or {}
        if entry_point not in specs:
            raise ValueError(f"roles: {PREFIX}{role} has no entry point {entry_point!r}; "
                             f"entry points: {', '.join(sorted(specs))}")
        return specs[entry_point].get("options") or {}

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ValidateArgumentSpec, self).run(tmp, task_vars)  # ActionBase's, not the single spec's
        unknown = sorted(set(self._task.args) - {"roles"})
        if unknown:
            return dict(result, failed=True, changed=False, field=unknown[0],
                        msg=f"{unknown[0]}: not an option of corral.qubes.role_arguments (only roles)")
        try:
            entries = parse_entries(self._task.args.get("roles"))
            specs = [(role, entry_point, self._options(role, entry_point)) for role, entry_point in entries]
        except (ValueError, AnsibleError, OSError, yaml.YAMLError) as exc:
            return dict(result, failed=True, changed=False, msg=str(exc), field="roles")
        # every role's variables templated at once (a variable two roles read is templated once)
        everything = {name: spec for _role, _entry, options in specs for name, spec in options.items()}
        given = plain(self.get_args_from_task_vars(everything, task_vars))
        errors: dict[str, list[str]] = {}
        for role, entry_point, options in specs:
            provided = {name: value for name, value in given.items() if name in options}
            outcome = ArgumentSpecValidator(options).validate(provided, validate_role_argument_spec=True)
            if outcome.error_messages:
                errors[f"{PREFIX}{role} ({entry_point})"] = list(outcome.error_messages)
        result.update(changed=False, roles=[f"{PREFIX}{role} ({entry_point})" for role, entry_point, _o in specs])
        if errors:
            lines = [f"{where}: {message}" for where, messages in errors.items() for message in messages]
            result.update(failed=True, argument_errors=errors,
                          msg="Validation of the roles' arguments failed (nothing was read or changed):\n"
                              + "\n".join(lines))
        else:
            result["msg"] = f"The arguments of {len(specs)} role entry points are valid"
        return result
