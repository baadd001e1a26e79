#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The template module: templates installed, upgraded, reinstalled or removed with qvm-template."""

from __future__ import annotations

DOCUMENTATION = r"""
module: template
short_description: Install, upgrade, reinstall or remove Qubes OS templates with qvm-template
version_added: 0.1.0
description:
  - Makes the templates named in O(names) installed, upgraded, reinstalled or removed the way C(qvm-template) does
    it in dom0, for example C(fedora-42-xfce), C(debian-13-minimal) or, from the community repository,
    C(whonix-gateway-18).
  - What is installed is read through the Admin API. A template is installed (managed by C(qvm-template)) when its
    feature C(template-name) equals its name; its version is C(template-epoch):C(template-version)-C(template-release).
    So a run with nothing to do makes a few Admin API reads and runs no C(qvm-template).
  - What the repositories offer is known only to C(qvm-template), which asks the update qube. When a template has to
    be installed, and always for O(state=latest) and O(state=reinstalled), the module first runs one read-only
    listing, C(qvm-template [global options] list --available --machine-readable), and checks every name and
    repository against it before anything changes. That listing also runs in check mode; it changes nothing.
  - Changes run C(qvm-template) with the global options (C(--enablerepo), C(--repo-files), C(--releasever),
    C(--updatevm)) before the subcommand, and C(--yes), for example
    C(qvm-template --enablerepo=qubes-templates-community --yes install whonix-gateway-18 whonix-workstation-18).
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - corral.qubes.admin_api
  - corral.qubes.admin_api.check_mode
options:
  names:
    description:
      - Template names, as C(qvm-template) knows them (the package name without C(qubes-template-)).
      - An unknown name fails before any change, with the closest names the repositories offer.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) installs the templates that are missing and leaves installed ones as they are.
      - V(latest) also upgrades installed templates when the repositories have a newer version (this needs the
        read-only listing on every run).
      - V(reinstalled) reinstalls every named template from the repositories (C(qvm-template reinstall), which needs
        the installed version to be available), installing missing ones. It acts, and reports a change, on every run,
        like the C(restarted) state of a service; the template's root volume is replaced, its private volume kept.
      - V(absent) removes the named templates that are installed. A template still used by a qube (as its
        C(template) or any other qube property) or by a global preference is not removed; the task fails naming
        them, before any change. A running template must be shut down first.
    type: str
    choices: [present, latest, reinstalled, absent]
    default: present
  enablerepo:
    description:
      - Repositories to enable in addition to the default ones (C(--enablerepo)), such as
        C(qubes-templates-community) for Whonix, or the C(-testing) repositories. Globs are allowed.
      - A repository that does not exist fails the task before any change.
    type: list
    elements: str
    default: []
  pool:
    description:
      - Storage pool for templates that are installed (C(install --pool)). Templates already installed stay in their
        pool.
    type: str
  releasever:
    description: Qubes release whose repositories to use (C(--releasever)); the default is dom0's release.
    type: str
  updatevm:
    description:
      - The qube that downloads templates (C(--updatevm)); the default is the global C(updatevm). An empty string
        means dom0 itself.
    type: str
  repo_files:
    description: Repository configuration files (C(--repo-files)) instead of C(/etc/qubes/repo-templates/*.repo).
    type: list
    elements: path
    default: []
  qvm_template:
    description: The C(qvm-template) program, a name looked up in E(PATH) or a path.
    type: path
    default: qvm-template
  versions:
    description:
      - Read each installed template's version (its features C(template-epoch), C(template-version) and
        C(template-release)) to report it in RV(templates).
      - With V(false) and O(state=present), an installed template costs one read (its feature C(template-name),
        which tells whether C(qvm-template) installed it) and is reported as V(installed); the other states need the
        versions and read them anyway. Roles that converge a whole layout pass V(false).
    type: bool
    default: true
notes:
  - Runs C(qvm-template), so the module runs in dom0; from a management qube only the reads would work.
  - C(qvm-template) asks before replacing a template (reinstall, upgrade); the module passes C(--yes).
seealso:
  - module: corral.qubes.qube
  - name: qvm-template
    description: The Qubes template manager.
    link: https://doc.qubes-os.org/en/latest/user/templates/templates.html
"""

EXAMPLES = r"""
- name: The templates of the layout
  corral.qubes.template:
    names: [fedora-42-xfce, debian-13-xfce]

- name: Whonix from the community repository
  corral.qubes.template:
    names: [whonix-gateway-18, whonix-workstation-18]
    enablerepo: [qubes-templates-community]

- name: Keep the Fedora template at the newest build
  corral.qubes.template:
    names: [fedora-42-xfce]
    state: latest

- name: An old template no qube uses any more
  corral.qubes.template:
    names: [fedora-41-xfce]
    state: absent
"""

RETURN = r"""
templates:
  description: Each named template's version after the run (C(EPOCH:VERSION-RELEASE)), V(absent) when not installed,
    V(unmanaged) for a template C(qvm-template) did not install, V(installed) for one installed before the run when
    O(versions=false); in check mode, the versions the run would leave.
  returned: success
  type: dict
  sample: {"fedora-42-xfce": "0:4.3.0-202511010000", "fedora-41-xfce": "absent"}
actions:
  description: What was done (or, in check mode, what would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["qvm-template install whonix-gateway-18 whonix-workstation-18"]
commands:
  description: The C(qvm-template) command lines the run started, the read-only listing included.
  returned: always
  type: list
  elements: str
  sample: ["qvm-template --enablerepo=qubes-templates-community list --available --machine-readable"]
api_calls:
  description: Number of Admin API calls the module made itself (not counting those of C(qvm-template)).
  returned: always
  type: int
  sample: 9
field:
  description: The parameter a validation error is about (only on failure).
  returned: failure
  type: str
  sample: names
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.corral.qubes.plugins.module_utils import tasks


def main():
    """Run the module (the action plugin of the same name runs the same task in-process when it can)."""
    module = AnsibleModule(argument_spec=tasks.ARGUMENT_SPECS["template"], supports_check_mode=True)
    tasks.exit_module(module, "template")


if __name__ == "__main__":
    main()
