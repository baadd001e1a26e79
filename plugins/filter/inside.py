# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``inside_plan``: which qubes need their inside configured, from recorded digests; ``template_clones``: the
entries that are clones of a template, as qubes to create."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.corral.qubes.plugins.module_utils import inside, names


def _entries(what: str, entries, source_hashes, extra_keys):
    """(name, entry, applied part) of each entry, checked as a whole: qube names, dicts, known keys (those applied
    inside, ``inside.ENTRY_KEYS``, and ``extra_keys``, the role's own), what goes inside; the first bad one fails
    naming it (``what`` is the filter's name)."""
    if not isinstance(entries, dict):
        raise AnsibleFilterError(f"{what}: expected a mapping of qube names to what goes inside them")
    checked = []
    for name, entry in entries.items():
        error = names.vm_name_error(name) if isinstance(name, str) else "not a string"
        if error:
            raise AnsibleFilterError(f"{what}: {name!r} is not a qube name ({error})")
        if not isinstance(entry, dict):
            raise AnsibleFilterError(f"{what}: {name}: expected a dict")
        unknown = sorted(set(entry) - set(inside.ENTRY_KEYS) - set(extra_keys))
        if unknown:
            known = ", ".join(sorted(set(inside.ENTRY_KEYS) | set(extra_keys)))
            raise AnsibleFilterError(f"{what}: {name}.{unknown[0]}: unknown key; expected one of {known}")
        try:
            checked.append((name, entry, inside.applied(name, entry, source_hashes or {})))
        except inside.InsideError as exc:
            raise AnsibleFilterError(f"{what}: {exc}") from exc
    return checked


def inside_plan(entries, current, source_hashes=None, feature="corral-inside-digest", extra_keys=()) -> list:
    """One item per entry of ``entries`` (qube name -> packages, files, ...), in order.

    ``current`` is the ``qubes`` result of corral.qubes.qube_info (with features) for those qubes; a qube
    missing from it (created later in a check-mode run) counts as changed and halted.  An entry key that is
    neither applied inside (``inside.ENTRY_KEYS``) nor one of ``extra_keys`` (the role's own) fails.
    """
    if not isinstance(current, dict):
        raise AnsibleFilterError("inside_plan: expected the qubes read by corral.qubes.qube_info as second argument")
    plan = []
    for name, entry, part in _entries("inside_plan", entries, source_hashes, extra_keys):
        want = inside.digest(part)
        now = current.get(name) or {}
        have = (now.get("features") or {}).get(feature, "")
        plan.append({"name": name, "digest": want, "recorded": have, "changed": want != have,
                     "running": now.get("state") == "running", "exists": bool(now), **inside.printable(part, entry)})
    return plan


def inside_redacted(entries):
    """``entries`` with the content of every file marked ``no_log`` hidden (for a check of the layout)."""
    return inside.redacted(entries)


def template_clones(entries, label: str = "black", extra_keys=None, source_hashes=None) -> dict:
    """The entries of ``entries`` (template name -> what goes inside it) that name ``clone_from``, as the ``qubes``
    option of corral.qubes.qube: TemplateVMs cloned from it, with the entry's label (else ``label``), marked as
    created by this collection; in the entries' order.

    With ``extra_keys`` (the keys the role handles itself) every entry is first checked as ``inside_plan`` checks
    it (``source_hashes``: the content hash of each ``src`` file), so that a task taking its clones from here fails
    on a bad entry before it reads or changes anything."""
    if not isinstance(entries, dict):
        raise AnsibleFilterError("template_clones: expected a mapping of template names to their entries")
    if extra_keys is not None:
        _entries("template_clones", entries, source_hashes, extra_keys)
    clones = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise AnsibleFilterError(f"template_clones: {name}: expected a dict")
        if entry.get("clone_from") is None:
            continue
        clones[name] = {"class": "TemplateVM", "clone_from": entry["clone_from"], "label": entry.get("label", label),
                        "mark_created": True}
    return clones


class FilterModule:  # pylint: disable=too-few-public-methods
    """corral.qubes inside filters."""

    def filters(self):
        """The filters of this file."""
        return {"inside_plan": inside_plan, "inside_redacted": inside_redacted, "template_clones": template_clones}
