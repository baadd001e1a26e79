# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every task the collection runs, from validated parameters to a result dict.

The argument specs live here once.  The modules (run by Ansible as a
separate process) and the action plugins of the same names (which, on a
local connection, run the same task inside Ansible's own process and save
the module start-up) both call :func:`run`.  No Ansible imports.
"""

from __future__ import annotations

import copy
import time
import traceback

from ansible_collections.corral.qubes.plugins.module_utils import attach, client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import devices, engine, firewall, flows, hardware, os_install, policy_client
from ansible_collections.corral.qubes.plugins.module_utils import policy_files, qube_batch, run_reads, schema, wire
from ansible_collections.corral.qubes.plugins.module_utils import layout as layout_mod
from ansible_collections.corral.qubes.plugins.module_utils import template as template_mod

ADMIN_API_ARGS = {"qubesd_socket": {"type": "path"}}
CREATED_IN_RUN = {"created_in_run": {"type": "list", "elements": "str"}}

ARGUMENT_SPECS = {
    "qube": dict(
        ADMIN_API_ARGS,
        **CREATED_IN_RUN,
        name={"type": "str"},
        qubes={"type": "dict"},
        state={"type": "str", "default": "present", "choices": list(engine.QUBE_STATES)},
        template={"type": "str"},
        label={"type": "str"},
        netvm={"type": "str"},
        properties={"type": "dict", "default": {}},
        features={"type": "dict", "default": {}},
        services={"type": "dict", "default": {}},
        tags={"type": "list", "elements": "str"},
        tags_mode={"type": "str", "default": "exact", "choices": list(engine.TAGS_MODES)},
        volumes={"type": "dict", "default": {}},
        pool={"type": "raw"},
        clone_from={"type": "str"},
        shutdown_if_needed={"type": "bool", "default": False},
        mark_created={"type": "bool", "default": False},
        **{"class": {"type": "str", "choices": list(schema.CLASSES), "aliases": ["klass"]}},
    ),
    "devices": dict(
        ADMIN_API_ARGS,
        **CREATED_IN_RUN,
        name={"type": "str"},
        devices={"type": "list", "elements": "dict"},
        qubes={"type": "dict"},
        strict={"type": "bool", "default": True},
        classes={"type": "list", "elements": "str", "default": list(devices.CLASSES), "choices": list(devices.CLASSES)},
        shutdown_if_needed={"type": "bool", "default": False},
    ),
    "hardware_check": dict(
        ADMIN_API_ARGS,
        profile={"type": "dict", "required": True},
        layout={"type": "dict", "default": {}},
        xl_command={"type": "str", "default": "xl"},
        pool={"type": "str"},
        dom0_memory_mib={"type": "int", "default": 4096},
    ),
    "prefs": dict(
        ADMIN_API_ARGS,
        properties={"type": "dict", "required": True},
    ),
    "firewall": dict(
        ADMIN_API_ARGS,
        **CREATED_IN_RUN,
        name={"type": "str"},
        rules={"type": "list", "elements": "dict"},
        policy={"type": "str", "choices": list(firewall.POLICIES)},
        dns={"type": "bool"},
        qubes={"type": "dict"},
    ),
    "policy": dict(
        name={"type": "str", "required": True},
        rules={"type": "list", "elements": "dict"},
        content={"type": "str"},
        header={"type": "str", "default": policy_files.HEADER},
        state={"type": "str", "default": "present", "choices": ["present", "absent"]},
        policy_dir={"type": "path"},
    ),
    "clipboard_audit": dict(
        ADMIN_API_ARGS,
        matrix={"type": "dict", "required": True},
        domains={"type": "list", "elements": "str"},
        service={"type": "str", "default": "qubes.ClipboardPaste"},
        policy_dir={"type": "path"},
    ),
    "template": dict(
        ADMIN_API_ARGS,
        names={"type": "list", "elements": "str", "required": True},
        state={"type": "str", "default": "present", "choices": list(template_mod.STATES)},
        enablerepo={"type": "list", "elements": "str", "default": []},
        pool={"type": "str"},
        releasever={"type": "str"},
        updatevm={"type": "str"},
        repo_files={"type": "list", "elements": "path", "default": []},
        qvm_template={"type": "path", "default": template_mod.DEFAULT_TOOL},
        versions={"type": "bool", "default": True},
    ),
    "layout_check": dict(
        ADMIN_API_ARGS,
        layout={"type": "dict", "default": {}},
        templates={"type": "list", "elements": "raw", "default": []},
        prefs={"type": "dict", "default": {}},
        destinations={"type": "dict", "default": {}},
        tasks={"type": "list", "elements": "raw", "default": []},
        network={"type": "dict", "default": {}},
        flows={"type": "dict", "default": {}},
        policies={"type": "dict", "default": {}},
        inside={"type": "dict", "default": {}},
        flows_policy={"type": "str", "default": "30-corral-flows"},
        policies_elsewhere={"type": "list", "elements": "str", "default": []},
        prune={"type": "bool", "default": False},
        whonix={"type": "dict"},
        scope={"type": "str", "default": "all", "choices": ["all", "whonix"]},
    ),
    "qube_info": dict(
        ADMIN_API_ARGS,
        names={"type": "list", "elements": "str", "default": []},
        sections={"type": "list", "elements": "str", "default": list(engine.INFO_SECTIONS),
                  "choices": list(engine.INFO_SECTIONS)},
        missing={"type": "str", "default": "fail", "choices": ["fail", "skip"]},
        features_only={"type": "list", "elements": "str"},
    ),
    "os_install": os_install.ARGUMENT_SPEC,
    "attach": attach.ARGUMENT_SPEC,
}


def _options(kind: str, *left_out: str) -> dict:
    """The argument spec of ``kind`` as the options of one entry of a layout step (its connection options left out:
    the layout task gives them once)."""
    return {name: dict(spec) for name, spec in ARGUMENT_SPECS[kind].items() if name not in left_out}


# The whole-layout check can check the machine too, with the hardware check's options (site.yml's preflight); its
# layout, not given, is the one checked.
ARGUMENT_SPECS["layout_check"]["hardware"] = {"type": "dict", "options": {
    **_options("hardware_check", "qubesd_socket"), "layout": {"type": "dict"}}}


LAYOUT_STEPS = ("templates", "qubes", "devices", "prefs", "firewall", "policies", "audits", "prune", "info")
"""The steps of a layout task, in the order they run: templates before the qubes based on them, the qubes (network
qubes before their clients) before their devices and firewalls, policy files before the audit that reads them, the
removal of what the layout no longer declares, then the read of what the steps leave (as corral.qubes.qube_info)."""

READ_STEPS = ("audits", "info")
"""Steps that only read what the others leave: not part of the check that plans every step first."""

ARGUMENT_SPECS["layout"] = dict(
    ADMIN_API_ARGS,
    **CREATED_IN_RUN,
    templates={"type": "list", "elements": "dict", "default": [], "options": _options("template", "qubesd_socket")},
    qubes={"type": "dict", "default": {}},
    devices={"type": "dict", "default": {}},
    prefs={"type": "dict", "default": {}},
    firewall={"type": "dict", "default": {}},
    policies={"type": "list", "elements": "dict", "default": [], "options": _options("policy", "policy_dir")},
    audits={"type": "list", "elements": "dict", "default": [],
            "options": _options("clipboard_audit", "qubesd_socket", "policy_dir")},
    prune={"type": "list", "elements": "str", "default": []},
    info={"type": "dict", "options": _options("qube_info", "qubesd_socket")},
    policy_dir={"type": "path"},
)


def connect(params: dict) -> client_mod.AdminClient:
    """An Admin API client for the task's connection options (sharing reads with the run's other tasks when the
    callback corral.qubes.run_reads gives the run a directory: :mod:`run_reads`)."""
    return client_mod.AdminClient(run_reads.wrap(client_mod.default_transport(params.get("qubesd_socket"))))


def policy_store(params: dict, release: str | None = None):
    """Where policy files are read and written: a directory given as policy_dir, else the policy admin API (in dom0
    the files are read from the directory; with the dom0's ``release``, also the files for a service)."""
    if params.get("policy_dir"):
        return policy_files.DirectoryStore(params["policy_dir"])
    return policy_files.default_store(release)


def run(kind: str, params: dict, check_mode: bool = False, diff: bool = False,
        reader: engine.Reader | None = None, listings: dict | None = None) -> dict:
    """Run one task; the result as Ansible reports it (``failed`` and ``msg`` on failure).

    ``reader``: the reads an earlier step of the same task made, with nothing changed since (:func:`_layout`);
    by default the task connects and reads afresh. ``listings``: the qvm-template listings of that task."""
    if kind == "policy":
        return _policy(params, check_mode, diff)
    if kind == "layout":
        return _layout(params, check_mode, diff)
    client = connect(params) if reader is None else reader.client
    if kind == "clipboard_audit":
        result = _audit(engine.Reader(client) if reader is None else reader, params)
        result["api_calls"] = client.qubesd_calls
        return result
    if kind == "qube" and (params.get("qubes") is not None or not params.get("name")):
        if params.get("qubes") is None or params.get("name"):
            field = "name" if params.get("qubes") is None else "qubes"
            return {"failed": True, "changed": False, "field": field,
                    "msg": f"{field}: give either name (one qube, with its options) or qubes (a mapping of qube "
                           "names to their options), not both or neither"}
        result = qube_batch.converge(client, params["qubes"], params.get("created_in_run"), check_mode, diff, reader)
        result["api_calls"] = client.qubesd_calls
        return result
    reader = engine.Reader(client) if reader is None else reader
    reader.created_in_run = params.get("created_in_run")
    if kind == "template":
        result = template_mod.run(reader, params, check_mode, diff, listings)
        result["api_calls"] = client.qubesd_calls
        return result
    if kind == "layout_check":
        result = _layout_check(reader, params)
    elif kind == "qube_info":
        result = _info(reader, params)
    elif kind == "hardware_check":
        result = hardware.run_check(reader, params)
    else:
        result = _converge(kind, reader, params, check_mode, diff)
    result["api_calls"] = client.qubesd_calls
    return result


def _converge(kind: str, reader: engine.Reader, params: dict, check_mode: bool, diff: bool) -> dict:
    """Plan, apply unless in check mode, report.

    Bad input (:class:`engine.PlanError`) fails before any mutating call,
    naming the field; a failed step reports what had been applied before it.
    """
    try:
        if kind == "qube":
            plan = engine.plan_qube(reader, params, check_mode)
        elif kind == "firewall":
            plan = _plan_firewall(reader, params, check_mode)
        elif kind == "devices":
            plan = devices.plan_devices(reader, params, check_mode)
        elif kind == "attach":
            plan = attach.plan_attach(reader, params)
        else:
            plan = engine.plan_prefs(reader, params["properties"])
    except engine.PlanError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), "field": exc.field}
    except wire.QubesException as exc:
        return {"failed": True, "changed": False,
                "msg": f"reading the current state failed: {type(exc).__name__}: {exc}"}
    result: dict = {"changed": plan.changed, "actions": plan.actions}
    if plan.warnings:
        result["warnings"] = list(plan.warnings)
    if diff and plan.changed:
        result["diff"] = {"before": plan.before, "after": plan.after}
    applied = plan.changed and not check_mode
    if applied:
        try:
            plan.apply(reader.client)
        except engine.ApplyError as exc:
            return {"failed": True, "changed": bool(exc.done), "msg": str(exc), "actions_done": exc.done,
                    "actions": plan.actions}
    if kind == "qube":
        if plan.summary:
            result["qube"] = plan.summary
    elif kind in ("firewall", "devices", "attach"):
        result.update(plan.summary)
    else:
        current = reader.client.property_get_all(None) if applied else reader.props(None)
        prefs = {prop: value.native for prop, value in current.items()}
        if not applied:
            prefs.update({prop: value for prop, value in plan.after.items() if value != "(default)"})
        result["prefs"] = prefs
    return result


def _defaults(kind: str, given: dict) -> dict:
    """``given`` with the defaults of ``kind``'s argument spec under it, as the validator would give them."""
    params = {name: copy.deepcopy(spec.get("default")) for name, spec in ARGUMENT_SPECS[kind].items()}
    params.update(given)
    return params


def layout_steps(params: dict) -> list[tuple[str, str, str, str, dict]]:
    """The steps of a layout task, each as (step, label, heading, kind, the parameters of that kind's task), in
    order, an empty step left out. The label names the option in errors (``templates[0]``), the heading heads the
    step's actions, diffs and warnings (``templates: fedora-42-xfce``)."""
    connection = {"qubesd_socket": params.get("qubesd_socket")}
    created = {"created_in_run": params.get("created_in_run")}
    policy_dir = {"policy_dir": params.get("policy_dir")}
    steps = [("templates", f"templates[{index}]", "templates: " + ", ".join(map(str, entry.get("names") or [])),
              "template", dict(entry, **connection)) for index, entry in enumerate(params.get("templates") or [])]
    if params.get("qubes"):
        steps.append(("qubes", "qubes", "qubes", "qube", _defaults("qube", {"qubes": params["qubes"], **connection, **created})))
    if params.get("devices"):
        steps.append(("devices", "devices", "devices", "devices",
                      _defaults("devices", {"qubes": params["devices"], **connection, **created})))
    if params.get("prefs"):
        steps.append(("prefs", "prefs", "prefs", "prefs", {"properties": params["prefs"], **connection}))
    if params.get("firewall"):
        steps.append(("firewall", "firewall", "firewall", "firewall",
                      _defaults("firewall", {"qubes": params["firewall"], **connection, **created})))
    steps += [("policies", f"policies[{index}]", f"policies: {entry.get('name')}", "policy", dict(entry, **policy_dir))
              for index, entry in enumerate(params.get("policies") or [])]
    steps += [("audits", f"audits[{index}]", f"audits: {entry.get('service')}", "clipboard_audit",
               dict(entry, **connection, **policy_dir))
              for index, entry in enumerate(params.get("audits") or [])]
    steps += [("prune", f"prune[{index}]", f"prune: {name}", "qube", _defaults("qube", {"name": name, "state": "absent", **connection}))
              for index, name in enumerate(params.get("prune") or [])]
    if params.get("info") is not None:
        given = {key: value for key, value in params["info"].items() if value is not None}
        steps.append(("info", "info", "info", "qube_info", _defaults("qube_info", {**given, **connection})))
    return steps


def _step_field(label: str, kind: str, field: str) -> str:
    """A step's field named as the layout task's option: ``qubes.work.netvm`` of the devices step is
    ``devices.work.netvm``, ``names`` of the first template entry ``templates[0].names``."""
    if kind in ("devices", "firewall") and (field == "qubes" or field.startswith("qubes.")):
        return label + field[len("qubes"):]
    if kind == "prefs" and (field == "properties" or field.startswith("properties.")):
        return label + field[len("properties"):]
    if label == "qubes" or not field:
        return field
    return f"{label}.{field}"


def _layout(params: dict, check_mode: bool, diff: bool) -> dict:
    """A whole layout in one task: each step as its own task would run it, in :data:`LAYOUT_STEPS` order, on one
    client.

    Every step is first planned in check mode on the current state (what an earlier step creates assumed), so bad
    input anywhere fails before the first change. That plan is the result in check mode and when nothing is to
    change (the audits and the info, which read what the other steps leave, then run on it); otherwise the steps run for real,
    each on fresh reads after a step that changed something. The first failing step ends the task, its field named
    as this task's option, with the results of the steps before it."""
    client = connect(params)
    steps = layout_steps(params)
    reader = engine.Reader(client)
    try:
        created = _created_by_layout(reader, params, check_mode)
    except wire.QubesException as exc:
        return {"failed": True, "changed": False, "steps": {}, "actions": [],
                "msg": f"reading the current state failed: {type(exc).__name__}: {exc}"}
    planned = [step for step in steps if step[0] not in READ_STEPS]
    listings: dict = {}  # what the repositories offer is listed once, by the check
    result = _run_steps(client, reader, planned, True, diff, created, listings=listings)
    if result.get("failed") and not check_mode:
        result["changed"] = False
        if "nothing was changed" not in result["msg"]:
            result["msg"] += " (nothing was changed: every step is checked before the first change)"
    elif check_mode or not result["changed"]:
        reads = [step for step in steps if step[0] in READ_STEPS]
        result = _run_steps(client, reader, reads, check_mode, diff, created, result=result)
    else:
        # nothing has changed since the check: its reads serve the steps until the first change
        result = _run_steps(client, reader, steps, False, diff, params.get("created_in_run"), listings=listings)
    result["api_calls"] = client.qubesd_calls
    return result


def _created_by_layout(reader: engine.Reader, params: dict, check_mode: bool) -> list[str] | None:
    """What the steps may assume an earlier step (or, in check mode, an earlier task) creates: the templates the
    templates step installs and the qubes the qubes step creates; in check mode also ``created_in_run`` (left out:
    any name, as a module alone assumes)."""
    given = params.get("created_in_run")
    if check_mode and given is None:
        return None
    coming = {name for entry in params.get("templates") or [] if entry.get("state") != "absent"
              for name in entry.get("names") or [] if isinstance(name, str) and name not in reader.vms}
    coming |= {name for name, entry in (params.get("qubes") or {}).items()
               if name not in reader.vms and not (isinstance(entry, dict) and entry.get("state") == "absent")}
    return sorted(coming | set(given or []) if check_mode else coming)


def _run_steps(client, reader: engine.Reader, steps: list, check_mode: bool, diff: bool, created,
               result: dict | None = None, listings: dict | None = None) -> dict:
    """Run ``steps`` in order (into ``result``, when given), ``reader`` serving until a step changes something."""
    if result is None:
        result = {"changed": False, "actions": [], "steps": {}}
    results = result["steps"]
    diffs, warnings = result.pop("diff", []), result.pop("warnings", [])
    for step, label, heading, kind, step_params in steps:
        before = client.qubesd_calls
        one = run(kind, dict(step_params, created_in_run=created), check_mode, diff, reader=reader, listings=listings)
        one["api_calls"] = client.qubesd_calls - before
        if step in ("qubes", "devices", "prefs", "firewall", "info"):
            results[step] = one
        else:
            results.setdefault(step, []).append(one)
        warnings += [f"{heading}: {warning}" for warning in one.pop("warnings", [])]
        result["actions"] += [f"{heading}: {action}" for action in one.get("actions", [])]
        result["changed"] = result["changed"] or bool(one.get("changed"))
        if diff and one.get("diff"):
            for entry in one["diff"] if isinstance(one["diff"], list) else [one["diff"]]:
                # a qube's diff is headed by its name, a policy file's by its path; any other by its step
                headed = entry.get("before_header")
                diffs.append(entry if headed else dict(entry, before_header=heading, after_header=heading))
        if one.get("failed"):
            field = _step_field(label, kind, one.get("field") or "")
            msg = str(one.get("msg", ""))
            own = one.get("field")
            if own and msg.startswith(f"{own}: ") and field != own:
                msg = f"{field}: {msg[len(own) + 2:]}"
            elif not (field and msg.startswith(f"{field}: ")):
                msg = f"{label}: {msg}"
            result.update(failed=True, msg=msg, step=label)
            if field:
                result["field"] = field
            break
        if one.get("changed") and not check_mode and kind != "policy":
            reader = engine.Reader(client)  # what a later step plans from is read again after a change
    if warnings:
        result["warnings"] = warnings
    if diffs:
        result["diff"] = diffs
    return result


def _plan_firewall(reader: engine.Reader, params: dict, check_mode: bool) -> engine.Plan:
    """The firewall task: ``name`` (with rules/policy/dns) or ``qubes``, not both."""
    single = {key: params.get(key) for key in ("name", "rules", "policy", "dns") if params.get(key) is not None}
    if params.get("qubes") is not None and single:
        raise engine.PlanError(sorted(single)[0], "give either qubes (several qubes) or name with rules, "
                                                  "policy and dns (one qube), not both")
    if params.get("qubes") is None and "name" not in single:
        raise engine.PlanError("name", "name the qube (or give qubes: a mapping of qubes to their rules)")
    now = time.time()
    return engine.plan_firewall(reader, engine.firewall_specs(params, now), check_mode, now)


def _policy(params: dict, check_mode: bool, diff: bool) -> dict:
    """One policy file: plan (validating the whole resulting policy), write unless in check mode."""
    store = policy_store(params)
    try:
        plan, text = policy_files.plan_policy_file(store, params)
    except engine.PlanError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), "field": exc.field}
    except (policy_client.PolicyAdminError, wire.QubesException, OSError) as exc:
        return {"failed": True, "changed": False, "msg": f"reading the policy failed: {exc}"}
    path = policy_files.source_path(params["name"])
    result: dict = {"changed": plan.changed, "actions": plan.actions, "policy_file": path, "content": text}
    if diff and plan.changed:
        result["diff"] = {"before": plan.before[path] or "", "after": plan.after[path] or "",
                          "before_header": path, "after_header": path}
    if plan.changed and not check_mode:
        try:
            plan.apply(None)
        except engine.ApplyError as exc:
            return {"failed": True, "changed": False, "msg": str(exc), "actions": plan.actions}
    result["policy_calls"] = store.calls
    return result


def _audit(reader: engine.Reader, params: dict) -> dict:
    """Effective flows of a service between the managed domains, against the declared matrix."""
    try:
        matrix, domains = flows.check_matrix(params["matrix"], params.get("domains"))
    except ValueError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), "field": "matrix"}
    store = policy_store(params, reader.release)
    try:
        sources = {path: text for path, (_token, text) in store.read_for_service(params["service"]).items()}
        report = flows.audit(sources, flows.system_of(reader), matrix, domains, params["service"])
    except (policy_client.PolicyAdminError, wire.QubesException, OSError) as exc:
        return {"failed": True, "changed": False, "msg": f"reading the policy or the qubes failed: {exc}"}
    except ValueError as exc:
        return {"failed": True, "changed": False, "msg": str(exc)}
    result = {"changed": False, **report, "policy_calls": store.calls}
    if report["undeclared"]:
        result["failed"] = True
        result["msg"] = (f"{params['service']} allows flows the matrix does not declare: " + "; ".join(
            f"{flow['from']} -> {flow['to']} ({flow['why']})" for flow in report["undeclared"]))
    elif report["blocked"]:
        result["warnings"] = [f"declared but denied by the policy: {flow['from']} -> {flow['to']}"
                              for flow in report["blocked"]]
    return result


def _layout_check(reader: engine.Reader, params: dict) -> dict:
    """The whole layout against the system: every problem at once, or what the run creates and the drift."""
    try:
        return layout_mod.check(reader, params, hidden_by_policy=reader.hidden_by_policy, store=policy_files.default_store())
    except wire.QubesException as exc:
        return {"failed": True, "changed": False, "msg": f"reading the system failed: {type(exc).__name__}: {exc}"}


def _info(reader: engine.Reader, params: dict) -> dict:
    try:
        known = reader.vms
        wanted = params["names"] or [name for name, entry in known.items() if entry.klass != "AdminVM"]
        missing = [name for name in wanted if name not in known]
        if missing and params.get("missing") == "skip":
            wanted = [name for name in wanted if name in known]
        elif missing:
            return {"failed": True, "changed": False, "field": "names",
                    "msg": f"names: no qube named {', '.join(missing)}"}
        if any(known[name].klass == "AdminVM" for name in wanted):
            return {"failed": True, "changed": False, "field": "names",
                    "msg": "names: dom0 is not a qube this module describes; "
                           "read global preferences with corral.qubes.prefs in check mode"}
        qubes, details = {}, {}
        for name in wanted:
            qubes[name], details[name] = engine.describe_qube(
                reader, name, params["sections"], params.get("features_only"))
    except wire.QubesException as exc:
        return {"failed": True, "changed": False, "msg": f"reading qubes failed: {type(exc).__name__}: {exc}"}
    return {"changed": False, "qubes": qubes, "details": details, "missing": missing}


def run_guarded(kind: str, params: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """:func:`run`, with an unexpected exception turned into a failure carrying its traceback.

    Both ways of running a task use it (the module process and the action
    plugin's in-process path), so both report such a failure in the same words.
    """
    try:
        return run(kind, params, check_mode, diff)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        return {"failed": True, "changed": False, "exception": traceback.format_exc(),
                "msg": f"corral.qubes.{kind} failed unexpectedly: {type(exc).__name__}: {exc}"}


def exit_module(module, kind: str) -> None:
    """Run a task inside an AnsibleModule and exit with its result."""
    report(module, run_guarded(kind, module.params, module.check_mode, module._diff))  # pylint: disable=protected-access


def report(module, result: dict) -> None:
    """Exit an AnsibleModule with a task's result.

    Warnings go through the module's own reporting (passing them to exit_json
    is deprecated), masked first: AnsibleModule masks no_log values in the
    result but not in the warnings it records.
    """
    for warning in result.pop("warnings", []):
        module.warn(mask_text(str(warning), module.no_log_values))
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


def mask_text(text: str, secrets) -> str:
    """``text`` with every secret in it replaced, longest first, as Ansible masks no_log values."""
    for secret in sorted((str(value) for value in secrets if str(value)), key=len, reverse=True):
        text = text.replace(secret, "********")
    return text
