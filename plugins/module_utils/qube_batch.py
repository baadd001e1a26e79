# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Many qubes in one task: the qube module's ``qubes`` option.

The same engine as one qube (:func:`engine.plan_qube`), over one
:class:`engine.Reader`: one ``admin.vm.List`` for all, each qube's
properties, features and tags read once.  The qubes are ordered by what
they refer to (templates, network qubes, clone sources and disposable
templates come before the qubes that use them; removals come last, users
first).  Every qube is planned before the first change, with the qubes this
task creates counted as coming, so bad input anywhere changes nothing and
the errors name the qube and the field.  Then each qube is applied in order
and planned again on fresh reads when an earlier one changed something, as
if it were its own task.  No Ansible imports.
"""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.module_utils import engine, wire

ENTRY_KEYS = ("state", "class", "klass", "template", "label", "netvm", "properties", "features", "services", "tags",
              "tags_mode", "volumes", "pool", "clone_from", "shutdown_if_needed", "mark_created")
BOOLEAN_KEYS = ("shutdown_if_needed", "mark_created")
REFERENCE_PROPERTIES = ("template", "netvm", "default_dispvm", "guivm", "audiovm", "management_dispvm")
"""Properties naming another qube: one of this task's qubes named there comes first."""


class BatchError(ValueError):
    """Entries that cannot be planned: every problem, each naming its qube and field."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}, nothing was changed: "
                         + "; ".join(f"{field}: {message}" for field, message in problems))


def entries_of(qubes) -> dict[str, dict]:
    """The ``qubes`` option as the engine's parameters by name, each checked in shape."""
    if not isinstance(qubes, dict) or not qubes:
        raise BatchError([("qubes", "expected a mapping of qube names to their parameters, such as "
                                    "{work: {label: blue, netvm: sys-firewall}}")])
    entries, problems = {}, []
    for name, raw in qubes.items():
        where = f"qubes.{name}"
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            problems.append((where, f"expected the qube's parameters as a mapping, not {raw!r}"))
            continue
        unknown = sorted(set(raw) - set(ENTRY_KEYS))
        if unknown:
            problems.append((f"{where}.{unknown[0]}", f"unknown key; a qube has {', '.join(ENTRY_KEYS[:1])}, "
                                                      f"{', '.join(key for key in ENTRY_KEYS[1:] if key != 'klass')}"))
            continue
        entry = {key: value for key, value in raw.items() if key != "klass"}
        if "klass" in raw:
            entry.setdefault("class", raw["klass"])
        for key in BOOLEAN_KEYS:
            if key in entry and not isinstance(entry[key], bool):
                problems.append((f"{where}.{key}", f"expected true or false, not {entry[key]!r}"))
        if entry.get("tags_mode", "exact") not in engine.TAGS_MODES:
            problems.append((f"{where}.tags_mode", f"expected one of {', '.join(engine.TAGS_MODES)}, "
                                                   f"not {entry['tags_mode']!r}"))
        entries[str(name)] = {"name": name, **entry}
    if problems:
        raise BatchError(problems)
    return entries


def _refers_to(entry: dict) -> set[str]:
    named = {entry.get(key) for key in ("template", "netvm", "clone_from")}
    properties = entry.get("properties") if isinstance(entry.get("properties"), dict) else {}
    named |= {properties.get(key) for key in REFERENCE_PROPERTIES}
    return {value for value in named if isinstance(value, str) and value}


def ordered(entries: dict[str, dict]) -> list[str]:
    """The qubes to converge (all but removals) in order: what a qube refers to first, otherwise the given order.
    A loop of references keeps the given order (the engine reports the loop)."""
    present = [name for name, entry in entries.items() if entry.get("state") != "absent"]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for other in sorted(_refers_to(entries[name]) & set(present), key=present.index):
            visit(other)
        visiting.discard(name)
        order.append(name)

    for name in present:
        visit(name)
    return order


def removal_order(reader: engine.Reader, names: list[str]) -> list[str]:
    """Qubes to remove, a qube before the ones it uses (by its current properties), otherwise the given order."""

    def uses(user: str, used: str) -> bool:
        return user in reader.vms and any(value.value == used for value in reader.props(user).values())

    left, order = list(names), []
    while left:
        name = next((name for name in left if not any(other != name and uses(other, name) for other in left)),
                    left[0])  # in a loop, the engine refuses what it must
        left.remove(name)
        order.append(name)
    return order


def converge(client, qubes, created_in_run, check_mode: bool, diff: bool, reader: engine.Reader | None = None) -> dict:
    """The ``qubes`` task: plan every qube, then apply each in order (unless in check mode); the result.

    ``reader``: reads this task has made already (nothing changed since); by default, a new one."""
    try:
        entries = entries_of(qubes)
    except BatchError as exc:
        return _failed(exc)
    names = ordered(entries)
    reader = engine.Reader(client) if reader is None else reader
    try:
        coming = {name for name in names if name not in reader.vms}
        removals = removal_order(reader, [name for name in entries if name not in names])
    except wire.QubesException as exc:
        return {"failed": True, "changed": False, "msg": f"reading the current state failed: {type(exc).__name__}: {exc}"}
    if check_mode:
        reader.created_in_run = None if created_in_run is None else sorted(set(created_in_run) | coming)
    else:
        reader.created_in_run = sorted(coming)
    plans, problems = {}, []
    for name in names + removals:  # every qube planned before the first change (a removal: its shape)
        try:
            if name in removals:
                engine.QubeSpec.from_params(entries[name])
                continue
            plans[name] = engine.plan_qube(reader, entries[name], True)
        except engine.PlanError as exc:
            problems.append((f"qubes.{name}.{exc.field}", exc.message))
        except wire.QubesException as exc:
            return {"failed": True, "changed": False,
                    "msg": f"{name}: reading the current state failed: {type(exc).__name__}: {exc}"}
    if problems:
        return _failed(BatchError(problems))
    result: dict = {"changed": False, "actions": [], "qubes": {}}
    diffs, warnings, done = [], [], []
    stale = False
    for name in names + removals:
        plan = plans.get(name)
        # a plan made before any change stands as made; after one, every qube is planned again on fresh reads (a
        # change to a template or a network qube can change what its users report)
        if plan is None or (not check_mode and (plan.changed or plan.warnings or done)):
            if stale:
                reader = engine.Reader(client)
                stale = False
            try:
                plan = engine.plan_qube(reader, entries[name], check_mode)
            except engine.PlanError as exc:
                return _partial(result, f"qubes.{name}.{exc.field}: {exc.message}", done, exc.field)
            except wire.QubesException as exc:
                return _partial(result, f"{name}: reading the current state failed: {type(exc).__name__}: {exc}",
                                done)
        one: dict = {"changed": plan.changed, "actions": plan.actions}
        if plan.summary:
            one["qube"] = plan.summary
        if plan.warnings:
            one["warnings"] = list(plan.warnings)
            warnings += [f"{name}: {warning}" for warning in plan.warnings]
        result["qubes"][name] = one
        result["actions"] += [f"{name}: {action}" for action in plan.actions]
        if diff and plan.changed:
            diffs.append({"before_header": name, "after_header": name, "before": plan.before, "after": plan.after})
        if plan.changed:
            result["changed"] = True
            if not check_mode:
                try:
                    plan.apply(client)
                except engine.ApplyError as exc:
                    done += [f"{name}: {text}" for text in exc.done]
                    return _partial(result, f"{name}: {exc}", done)
                done += [f"{name}: {action}" for action in plan.actions]
                stale = True
    if warnings:
        result["warnings"] = warnings
    if diffs:
        result["diff"] = diffs
    return result


def _failed(exc: BatchError) -> dict:
    return {"failed": True, "changed": False, "msg": str(exc), "field": exc.problems[0][0],
            "problems": [{"path": field, "msg": message} for field, message in exc.problems]}


def _partial(result: dict, msg: str, done: list[str], field: str | None = None) -> dict:
    out = {**result, "failed": True, "changed": bool(done), "msg": msg, "actions_done": done}
    if field:
        out["field"] = field
    return out
