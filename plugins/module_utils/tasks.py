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


def connect(params: dict) -> client_mod.AdminClient:
    """An Admin API client for the task's connection options (sharing reads with the run's other tasks when the
    callback corral.qubes.run_reads gives the run a directory: :mod:`run_reads`)."""
    return client_mod.AdminClient(run_reads.wrap(client_mod.default_transport(params.get("qubesd_socket"))))


def policy_store(params: dict):
    """Where policy files are read and written: a directory given as policy_dir, else the policy admin API."""
    if params.get("policy_dir"):
        return policy_files.DirectoryStore(params["policy_dir"])
    return policy_files.default_store()


def run(kind: str, params: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """Run one task; the result as Ansible reports it (``failed`` and ``msg`` on failure)."""
    if kind == "policy":
        return _policy(params, check_mode, diff)
    client = connect(params)
    if kind == "clipboard_audit":
        result = _audit(engine.Reader(client), params)
        result["api_calls"] = client.qubesd_calls
        return result
    if kind == "qube" and (params.get("qubes") is not None or not params.get("name")):
        if params.get("qubes") is None or params.get("name"):
            field = "name" if params.get("qubes") is None else "qubes"
            return {"failed": True, "changed": False, "field": field,
                    "msg": f"{field}: give either name (one qube, with its options) or qubes (a mapping of qube "
                           "names to their options), not both or neither"}
        result = qube_batch.converge(client, params["qubes"], params.get("created_in_run"), check_mode, diff)
        result["api_calls"] = client.qubesd_calls
        return result
    reader = engine.Reader(client)
    reader.created_in_run = params.get("created_in_run")
    if kind == "template":
        result = template_mod.run(reader, params, check_mode, diff)
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
    store = policy_store(params)
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
