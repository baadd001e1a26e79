# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal dom0: a stand-in for qubesd that answers like a real dom0.

Run it with ``python -m rehearsal serve --state DIR --socket PATH``; see
docs/rehearsal.md for what it implements and where it differs from qubesd.
"""

import importlib.util
import os
import sys


def _find_collection() -> None:
    """Make the collection corral.qubes importable when installed apart from this package.

    The rehearsal speaks through the collection's wire format, firewall and policy grammars
    (``ansible_collections.corral.qubes.plugins.module_utils``).  In a checkout ``make setup``
    puts them on the path; after ``pip install ./rehearsal`` and ``ansible-galaxy collection
    install``, they are found in the collections paths Ansible would use.
    """
    try:
        if importlib.util.find_spec("ansible_collections.corral.qubes.plugins.module_utils"):
            return
    except ImportError:
        pass
    configured = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS")
    paths = configured.split(os.pathsep) if configured else [
        os.path.expanduser("~/.ansible/collections"), "/usr/share/ansible/collections"]
    for path in paths:
        if os.path.isdir(os.path.join(path, "ansible_collections", "corral", "qubes", "plugins", "module_utils")):
            sys.path.append(os.path.abspath(path))  # a namespace package: its path follows sys.path
            return


_find_collection()
