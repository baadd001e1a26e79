# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole layout checked at once, before the first change.

This file is the one place that lists a layout's variables, the keys of
their entries, and where qube names appear in them.  :func:`check` walks the
layout with the engine's own checks (``engine.QubeSpec``, device, firewall
and policy rule parsing, the network filters), collects *every* problem with
its path (``qubes_layout.secure.lable``), checks that each qube named
anywhere exists in the layout or on the system, and reports drift: qubes on
the system the layout does not declare, tags the layout does not declare on
qubes whose tags it leaves open, and which undeclared qubes this collection
created (and ``prune`` may remove).

To add a layout key: add it to the table of its variable below (``QUBE_KEYS``
for an entry of ``qubes_layout``) and, if it names qubes, a line in the
``_shape_*`` method of that variable.  No Ansible imports.
"""

from __future__ import annotations

import difflib
import time

from ansible_collections.corral.qubes.plugins.module_utils import devices, engine, firewall, hardware, inside, names
from ansible_collections.corral.qubes.plugins.module_utils import network
from ansible_collections.corral.qubes.plugins.module_utils import policy as policy_mod
from ansible_collections.corral.qubes.plugins.module_utils import policy_client, policy_files
from ansible_collections.corral.qubes.plugins.module_utils import schema
from ansible_collections.corral.qubes.plugins.module_utils import template as template_mod
from ansible_collections.corral.qubes.plugins.module_utils import whonix

CREATED_FEATURE = engine.CREATED_FEATURE
"""Feature corral.qubes.qube sets on the qubes it creates with mark_created (the role sets it): what ``prune`` may remove."""

QUBE_KEYS = {
    # the options of corral.qubes.qube (validated by engine.QubeSpec)
    "class": (str,), "template": (str,), "label": (str,), "netvm": (str,), "properties": (dict,),
    "features": (dict,), "services": (dict,), "tags": (list,), "tags_mode": (str,), "volumes": (dict,),
    "pool": (str, dict), "clone_from": (str,), "shutdown_if_needed": (bool,), "state": (str,),
    # set by corral.qubes.devices
    "devices": (list,),
    # set by corral.qubes.firewall: a rule list (what qube_info returns), a word or a dict (as in qubes_network)
    "firewall": (str, list, dict),
}
"""Keys of an entry of ``qubes_layout``: exactly the keys corral.qubes.qube_info returns, and ``devices``."""

OTHER_MODULES_KEYS = ("devices", "firewall")
"""Keys of a layout entry that corral.qubes.devices and corral.qubes.firewall converge, not corral.qubes.qube."""


def _layout_entries(qubes_layout):
    """(name, entry) of each qube of a layout, an empty entry as {}; ValueError naming what is not a mapping."""
    if not isinstance(qubes_layout, dict):
        raise ValueError(f"qubes_layout: expected a mapping of qube names to entries, not {type(qubes_layout).__name__}")
    for name, entry in qubes_layout.items():
        if entry is not None and not isinstance(entry, dict):
            raise ValueError(f"qubes_layout.{name}: expected a mapping, not {entry!r}")
        yield name, entry or {}


def qube_options(qubes_layout, mark_created: bool = True) -> dict[str, dict]:
    """A layout's qubes as the ``qubes`` option of corral.qubes.qube: each entry without devices and firewall,
    marked as created by this collection (``mark_created``) unless the entry says otherwise."""
    options = {}
    for name, entry in _layout_entries(qubes_layout):
        kept = {key: value for key, value in entry.items() if key not in OTHER_MODULES_KEYS}
        if mark_created:
            kept.setdefault("mark_created", True)
        options[name] = kept
    return options


def device_options(qubes_layout) -> dict[str, dict]:
    """The layout's device assignments as the ``qubes`` option of corral.qubes.devices: each qube that lists
    ``devices``, with them and its ``shutdown_if_needed`` (false unless the entry sets it)."""
    options = {}
    for name, entry in _layout_entries(qubes_layout):
        if "devices" in entry:
            options[name] = {"devices": entry["devices"], "shutdown_if_needed": entry.get("shutdown_if_needed", False)}
    return options


TEMPLATE_KEYS = {"names": (list,), "state": (str,), "enablerepo": (list,), "pool": (str,), "releasever": (str,),
                 "updatevm": (str,)}
"""Keys of an entry of ``qubes_templates`` (the options of corral.qubes.template)."""

TASK_KEYS = {"name": (str,), "domain": (str,), "reach": (list,)}
"""Keys of an entry of ``qubes_tasks``."""

INSIDE_KEYS = {"clone_from": (str,), "label": (str,), "packages": (list,), "packages_absent": (list,),
               "files": (list,), "restart_qubes": (bool,)}
"""Keys of an entry of ``fedora_templates`` (the role corral.qubes.fedora; what goes inside: module_utils/inside.py)."""

VARIABLES = {
    "layout": "qubes_layout", "templates": "qubes_templates", "prefs": "qubes_prefs",
    "destinations": "qubes_destinations", "tasks": "qubes_tasks", "network": "qubes_network",
    "flows": "qubes_flows", "policies": "qubes_policies", "inside": "fedora_templates",
}
"""The check's options and the role variables they come from (used in every path)."""

VM_TYPED_KEYS = ("template", "netvm", "clone_from")
VM_PREFS = ("clockvm", "default_audiovm", "default_dispvm", "default_guivm", "default_netvm", "default_template",
            "management_dispvm", "updatevm")
"""Global preferences whose value is a qube (qubes-prefs of type vm; corral.qubes.prefs checks the rest)."""
POLICY_NAME_KEYS = ("source", "target", "redirect", "default_target")
TYPE_WORDS = {str: "a string", list: "a list", dict: "a mapping", bool: "true or false", int: "a number"}


def _type_error(value, kinds) -> str | None:
    if isinstance(value, bool) and bool not in kinds:
        return f"expected {' or '.join(TYPE_WORDS[k] for k in kinds)}, not {value!r}"
    if not isinstance(value, kinds):
        return f"expected {' or '.join(TYPE_WORDS[k] for k in kinds)}, not {value!r}"
    return None


class Problems:
    """Every problem found, each with its path."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        """One problem (the same one once)."""
        if (path, message) not in self.items:
            self.items.append((path, message))

    def keys(self, path: str, entry: dict, table: dict) -> dict:
        """Unknown keys and wrong types of ``entry``; the entry without them."""
        kept = {}
        for key, value in entry.items():
            if key not in table:
                close = difflib.get_close_matches(str(key), list(table), 1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.add(f"{path}.{key}", f"unknown key{hint}; known: {', '.join(table)}")
                continue
            if value is None:
                continue
            error = _type_error(value, table[key])
            if error:
                self.add(f"{path}.{key}", error)
                continue
            kept[key] = value
        return kept

    def mapping(self, path: str, value) -> dict:
        """``value`` if it is a mapping, else {} and a problem."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping, not {value!r}")
            return {}
        return value

    def listing(self, path: str, value) -> list:
        """``value`` if it is a list, else [] and a problem."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(path, f"expected a list, not {value!r}")
            return []
        return value


class Layout:
    """One layout, checked: shape first (no dom0 needed), then names against the system."""

    def __init__(self, params: dict):
        self.params = params
        self.problems = Problems()
        self.refs: list[tuple[str, str]] = []
        """(path, qube name) for every qube named anywhere."""
        self.entries: dict[str, dict] = {}
        self.removed: set[str] = set()
        self.templates: dict[str, str] = {}
        """Template name -> path, for the templates the layout installs."""
        self.now = time.time()
        self.warnings: list[str] = []
        self._whonix_bases: dict[tuple[str, str], str | None] = {}

    def var(self, option: str) -> str:
        """The role variable an option comes from (the start of every path)."""
        return VARIABLES[option]

    # -- shape ------------------------------------------------------------------

    def check_shape(self) -> None:
        """Every variable's keys and types, with the engine's checks of each part."""
        self._shape_layout()
        self._shape_templates()
        self._shape_network()
        self._shape_flows()
        self._shape_policies()
        self._shape_inside()
        prefs = self.problems.mapping(self.var("prefs"), self.params.get("prefs"))
        self.prefs = {str(key): value for key, value in prefs.items()}

    def _named_entries(self, option: str, table: dict, what: str):
        """(name, path, entry with known keys) of a variable keyed by qube name; bad names and keys are problems."""
        top = self.var(option)
        for name, raw in self.problems.mapping(top, self.params.get(option)).items():
            path = f"{top}.{name}"
            error = names.vm_name_error(name) if isinstance(name, str) else "not a string"
            if error:
                self.problems.add(path, f"{name!r} is not {what}: {error}")
                continue
            yield name, path, self.problems.keys(path, self.problems.mapping(path, raw), table)

    def _shape_layout(self) -> None:
        for name, path, entry in self._named_entries("layout", QUBE_KEYS, "a valid qube name"):
            self.entries[name] = entry
            if entry.get("state") == "absent":
                self.removed.add(name)
            module_params = {key: value for key, value in entry.items() if key not in OTHER_MODULES_KEYS}
            try:
                engine.QubeSpec.from_params({"name": name, **module_params})
            except engine.PlanError as exc:
                self.problems.add(f"{path}.{exc.field}", exc.message)
            for key in VM_TYPED_KEYS:
                if isinstance(entry.get(key), str) and entry[key] not in ("", engine.DEFAULT):
                    self.refs.append((f"{path}.{key}", entry[key]))
            self._properties(path, entry)
            for index, item in enumerate(entry.get("devices") or []):
                where = f"{path}.devices[{index}]"
                try:
                    wanted = devices.parse_device(where, item)
                except engine.PlanError as exc:
                    self.problems.add(exc.field, exc.message)
                    continue
                if wanted.backend != "dom0":
                    self.refs.append((f"{where}.device", wanted.backend))
            if entry.get("firewall") is not None:
                self._check_firewall(f"{path}.firewall", name, entry["firewall"], {})

    def _properties(self, path: str, entry: dict) -> None:
        """Property names of the entry's class (any class when it gives none), and the qubes they name."""
        classes = [entry["class"]] if entry.get("class") in schema.CLASSES else list(schema.CLASSES)
        table: dict = {}
        for klass in classes:
            table.update(schema.class_properties(klass))
        for prop, value in (entry.get("properties") or {}).items():
            where = f"{path}.properties.{prop}"
            if prop not in table:
                close = difflib.get_close_matches(str(prop), [p for p in table if schema.writable(p)], 1)
                self.problems.add(where, f"no property {prop!r}" + (f" (did you mean {close[0]}?)" if close else "")
                                  + (f" for {classes[0]}" if len(classes) == 1 else ""))
            elif not schema.writable(prop):
                self.problems.add(where, f"{prop} is set by qubesd and cannot be changed")
            elif table[prop] == "vm" and isinstance(value, str) and value not in ("", engine.DEFAULT):
                self.refs.append((where, value))

    def _check_firewall(self, path: str, qube: str, value, lists: dict):
        """A qube's firewall setting, with the firewall module's own rule checks; its canonical rule lines."""
        try:
            spec = network.setting(path, value, lists.get(qube))
            wanted = firewall.rules_for_policy(spec["policy"], spec["rules"], spec.get("dns"), self.now)
        except network.NetworkError as exc:
            self.problems.add(exc.path, exc.message)
            return None
        except firewall.RuleError as exc:
            where = f"{path}.rules[{exc.index}]" if exc.index is not None and not isinstance(value, list) else (
                f"{path}[{exc.index}]" if exc.index is not None else path)
            self.problems.add(".".join(part for part in (where, exc.field) if part),
                              str(exc).removeprefix(f"{exc.field}: "))
            return None
        return [want.rule.render() for want in wanted]

    def _shape_templates(self) -> None:
        top = self.var("templates")
        for index, raw in enumerate(self.problems.listing(top, self.params.get("templates"))):
            path = f"{top}[{index}]"
            entry = self.problems.keys(path, self.problems.mapping(path, raw), TEMPLATE_KEYS)
            state = entry.get("state", "present")
            if state not in template_mod.STATES:
                self.problems.add(f"{path}.state", f"expected one of {', '.join(template_mod.STATES)}, not {state!r}")
            if not entry.get("names"):
                self.problems.add(f"{path}.names", "list the templates of this group")
            for number, name in enumerate(entry.get("names") or []):
                error = names.vm_name_error(name) if isinstance(name, str) else "not a string"
                if error:
                    self.problems.add(f"{path}.names[{number}]", f"{name!r} is not a template name: {error}")
                elif state == "absent":
                    self.removed.add(name)
                else:
                    self.templates[name] = f"{path}.names[{number}]"
            if isinstance(entry.get("updatevm"), str):
                self.refs.append((f"{path}.updatevm", entry["updatevm"]))

    def _shape_network(self) -> None:
        destinations = self.problems.mapping(self.var("destinations"), self.params.get("destinations"))
        tasks_top = self.var("tasks")
        tasks = []
        for index, raw in enumerate(self.problems.listing(tasks_top, self.params.get("tasks"))):
            path = f"{tasks_top}[{index}]"
            entry = self.problems.keys(path, self.problems.mapping(path, raw), TASK_KEYS)
            if "domain" not in entry:
                self.problems.add(f"{path}.domain", "every task names its domain, as in {name: x, domain: work}")
                continue
            self.refs.append((f"{path}.domain", entry["domain"]))
            tasks.append(entry)
        lists = {}
        try:
            lists = network.whitelists(tasks, destinations)
        except network.NetworkError as exc:
            self.problems.add(self._network_path(exc.path), exc.message)
        top = self.var("network")
        self.network_rules = {}
        for qube, value in self.problems.mapping(top, self.params.get("network")).items():
            self.refs.append((f"{top}.{qube}", str(qube)))
            self.network_rules[str(qube)] = self._check_firewall(f"{top}.{qube}", str(qube), value, lists)
        for qube, entry in self.entries.items():
            if entry.get("firewall") is None or qube not in self.network_rules or self.network_rules[qube] is None:
                continue
            own = self._check_firewall(f"{self.var('layout')}.{qube}.firewall", qube, entry["firewall"], lists)
            if own is not None and own != self.network_rules[qube]:
                self.problems.add(f"{self.var('layout')}.{qube}.firewall",
                                  f"differs from {top}.{qube} (the network intent): give the firewall of {qube} once, "
                                  "either here or in qubes_network (with qubes_tasks for a whitelist)")

    def _network_path(self, path: str) -> str:
        """A network filter's path (``tasks[0].reach``) under the role variable it comes from."""
        first = path.split(".", 1)[0].split("[", 1)[0]
        return VARIABLES.get(first, first) + path[len(first):]

    def _shape_flows(self) -> None:
        top = self.var("flows")
        for service, matrix in self.problems.mapping(top, self.params.get("flows")).items():
            path = f"{top}.{service}"
            for source, targets in self.problems.mapping(path, matrix).items():
                self.refs.append((f"{path}.{source}", str(source)))
                for index, target in enumerate(self.problems.listing(f"{path}.{source}", targets)):
                    if not isinstance(target, str):
                        self.problems.add(f"{path}.{source}[{index}]", f"expected a qube name, not {target!r}")
                    else:
                        self.refs.append((f"{path}.{source}[{index}]", target))

    def _shape_policies(self) -> None:
        top = self.var("policies")
        for name, rules in self.problems.mapping(top, self.params.get("policies")).items():
            path = f"{top}.{name}"
            for index, item in enumerate(self.problems.listing(path, rules)):
                try:
                    policy_mod.rule_from_dict(item, index)
                except policy_mod.PolicyError as exc:
                    self.problems.add(f"{path}[{index}].{exc.field}", exc.message)
                    continue
                for key in POLICY_NAME_KEYS:
                    qube = _policy_qube(item.get(key))
                    if qube:
                        self.refs.append((f"{path}[{index}].{key}", qube))

    def _shape_inside(self) -> None:
        for name, path, entry in self._named_entries("inside", INSIDE_KEYS, "a template name"):
            try:
                inside.applied(path, entry, _AnySource())
            except inside.InsideError as exc:
                self.problems.add(exc.path, str(exc).removeprefix(f"{exc.path}: "))
            if "clone_from" in entry:
                self.refs.append((f"{path}.clone_from", entry["clone_from"]))
            self.templates[name] = path

    # -- names against the system -------------------------------------------------

    def check_names(self, reader: engine.Reader, hidden_by_policy: bool = False) -> None:
        """Every qube named anywhere exists in the layout or on the system (and is not removed by it)."""
        system = set(reader.vms)
        known = (system | set(self.entries) | set(self.templates)) - self.removed
        for prop, value in self.prefs.items():
            if prop in VM_PREFS and isinstance(value, str) and value not in ("", engine.DEFAULT):
                self.refs.append((f"{self.var('prefs')}.{prop}", value))
        for path, name in self.refs:
            if name in known:
                continue
            if name in self.removed:
                self.problems.add(path, f"{name} is removed by this layout (state: absent) but still named here")
                continue
            close = difflib.get_close_matches(name, sorted(known), 1)
            hint = f"; did you mean {close[0]}?" if close else ""
            if hidden_by_policy:
                # The admin policy filters admin.vm.List: the qube may exist, hidden. Not checked, and said so.
                self.warnings.append(f"{path}: {name} is not visible to this management qube (its admin policy may "
                                     f"hide it, or it does not exist) and not in the layout: not checked{hint}")
                continue
            self.problems.add(path, f"no qube named {name!r}: not in the layout and not on the system{hint}")

    # -- Whonix (module_utils/whonix.py) -------------------------------------------

    def check_whonix(self, reader: engine.Reader) -> None:
        """Whonix templates of this release only; a Whonix workstation's netvm is a Whonix gateway."""
        release = reader.release
        for name, path in self.templates.items():
            error = whonix.version_error(name, release)
            if error:
                self.problems.add(path, error)
        top = self.var("layout")
        for name, entry in self.entries.items():
            if name in self.removed:
                continue
            error = whonix.version_error(entry.get("template"), release)
            if error:
                self.problems.add(f"{top}.{name}.template", error)
            netvm = entry.get("netvm")
            if not isinstance(netvm, str) or netvm == "":
                continue
            base = self._whonix_base(reader, name, "workstation")
            if base is None:
                continue
            if netvm == engine.DEFAULT:
                # reset to its default, the netvm is the global default_netvm (the addon names the gateway only
                # when the qube is made or loaded): the traffic would leave without Tor until then
                self.problems.add(f"{top}.{name}.netvm",
                                  f"{name} is a Whonix workstation (based on {base}) and {engine.DEFAULT} would give "
                                  "it the global default_netvm, not a Whonix gateway: its traffic would leave without "
                                  "Tor; name the gateway or leave netvm out")
            elif self._whonix_base(reader, netvm, "gateway") is None:
                self.problems.add(f"{top}.{name}.netvm",
                                  f"{name} is a Whonix workstation (based on {base}) and its netvm {netvm} is not a "
                                  "Whonix gateway (a qube based on a whonix-gateway template, such as sys-whonix): "
                                  "its traffic would leave without Tor; name the gateway or leave netvm out")

    def _whonix_base(self, reader: engine.Reader, name: str, kind: str, depth: int = 0) -> str | None:
        """The Whonix template of ``kind`` (``gateway``/``workstation``) a qube is based on through its template
        chain (None if it is not), from the layout first, then the system (a template's name, or its feature
        whonix-gw/whonix-ws: only the one of ``kind`` is read)."""
        if depth > 3 or not isinstance(name, str) or name in ("", engine.DEFAULT):
            return None
        if (name, kind) not in self._whonix_bases:
            self._whonix_bases[name, kind] = self._whonix_base_of(reader, name, kind, depth)
        return self._whonix_bases[name, kind]

    def _whonix_base_of(self, reader: engine.Reader, name: str, kind: str, depth: int) -> str | None:
        named = whonix.template_kind(name)
        if named:
            return name if named[0] == kind else None
        entry = self.entries.get(name)
        if name in reader.vms and reader.vms[name].klass == "TemplateVM" and (entry is None or "template" not in entry):
            # a template on the system: its own feature says
            feature = whonix.GATEWAY_FEATURE if kind == "gateway" else whonix.WORKSTATION_FEATURE
            return name if reader.features(name, [feature]).get(feature) not in (None, "") else None
        if entry is not None and isinstance(entry.get("template"), str):
            return self._whonix_base(reader, entry["template"], kind, depth + 1)
        if name in reader.vms and reader.vms[name].klass in ("AppVM", "DispVM"):
            template = reader.props(name).get("template")
            if template is not None and template.value:
                return self._whonix_base(reader, template.value, kind, depth + 1)
        return None

    def created(self, reader: engine.Reader) -> list[str]:
        """The qubes and templates this run creates (in the layout, not on the system yet)."""
        wanted = [name for name in self.entries if name not in self.removed] + list(self.templates)
        return [name for name in dict.fromkeys(wanted) if name not in reader.vms]

    def drift(self, reader: engine.Reader, hidden_by_policy: bool = False) -> dict:
        """What is on the system that the layout does not declare.

        ``qubes``: qubes (not dom0) neither in the layout nor among its
        templates; ``created``: those of them this collection created (feature
        :data:`CREATED_FEATURE`); ``tags``: qube -> tags the layout does not
        declare, for entries whose tags it leaves open (no ``tags`` or
        ``tags_mode: add``), tags qubesd sets itself left out.  From a
        management qube (``hidden_by_policy``) only the qubes its admin policy
        grants are visible, so undeclared qubes are not reported there.
        """
        declared = set(self.entries) | set(self.templates)
        qubes = [] if hidden_by_policy else sorted(
            name for name, entry in reader.vms.items()
            if entry.klass != "AdminVM" and name not in declared and name not in self.removed)
        created = [name for name in qubes if CREATED_FEATURE in reader.client.feature_list(name)]
        tags = {}
        for name, entry in self.entries.items():
            if name in self.removed or name not in reader.vms or (
                    entry.get("tags") is not None and entry.get("tags_mode", "exact") == "exact"):
                continue
            extra = [tag for tag in reader.tags(name) if not tag.startswith(engine.PROTECTED_TAG_PREFIXES)
                     and tag not in (entry.get("tags") or [])]
            if extra:
                tags[name] = extra
        return {"qubes": qubes, "created": created, "tags": tags}


class _AnySource(dict):
    """Content hashes for any ``src`` file: the check sees only the layout, the role hashes the files."""

    def get(self, key, default=None):
        return "0" * 64


def _policy_qube(value) -> str | None:
    """The qube a policy rule's source/target names, if it is one (``@dispvm:x`` names ``x``)."""
    if not isinstance(value, str) or not value or value == "dom0":
        return None
    if value.startswith("@dispvm:") and not value.startswith("@dispvm:@"):
        return value.split(":", 1)[1]
    if value.startswith("@"):
        return None
    return value


def policy_drift(store, declared) -> list[str]:
    """Policy files this collection wrote (they start with its header) that ``declared`` does not name."""
    mark = "".join(f"# {line}".rstrip() + "\n" for line in policy_files.HEADER.splitlines())
    found = []
    for name in store.names():
        if name in declared:
            continue
        read = store.get(name)
        if read is not None and read[1].startswith(mark):
            found.append(name)
    return sorted(found)


def check(reader: engine.Reader, params: dict, hidden_by_policy: bool = False, store=None) -> dict:
    """The layout check's result: failed with every problem, or the names it creates and the drift."""
    merged = expanded = None
    given_layout = params.get("layout")
    settings = None if params.get("whonix") is None else dict(params["whonix"])  # a dict, as the argument spec says
    enabled = settings.pop("enabled", True) if settings is not None else False
    if not isinstance(enabled, bool):
        return {"failed": True, "changed": False, "problems": [{"path": "whonix_enabled", "msg": "expected bool"}],
                "msg": f"the layout has 1 problem, nothing was changed: whonix_enabled: expected bool, not {enabled!r}"}
    if settings is not None and not enabled:
        # Whonix left out (the role's whonix_enabled): the variables as given, for whoever takes them from here
        merged = {"qubes_layout": params.get("layout") or {}, "qubes_templates": params.get("templates") or [],
                  "qubes_policies": params.get("policies") or {}}
    elif settings is not None:
        try:
            expanded = whonix.expand(settings, reader.release)
        except whonix.WhonixError as exc:
            return {"failed": True, "changed": False, "problems": [{"path": exc.path, "msg": exc.message}],
                    "msg": f"the layout has 1 problem, nothing was changed: {exc}"}
        merged = whonix.merge(expanded, params.get("layout"), params.get("templates"), params.get("policies"))
        params = {**params, "layout": merged["qubes_layout"], "templates": merged["qubes_templates"],
                  "policies": merged["qubes_policies"]}
    layout = Layout(params)
    layout.check_shape()
    if params.get("scope") == "whonix":
        # Only what Whonix adds: the rest of the layout is the preflight's whole check.
        layout.problems = Problems()
    else:
        layout.check_names(reader, hidden_by_policy)
    layout.check_whonix(reader)
    if layout.problems.items:
        lines = [f"{path}: {message}" for path, message in layout.problems.items]
        return {"failed": True, "changed": False, "problems": [{"path": p, "msg": m} for p, m in layout.problems.items],
                "msg": f"the layout has {len(lines)} problem{'s' if len(lines) != 1 else ''}, nothing was changed: "
                       + "; ".join(lines)}
    whole = params.get("scope") != "whonix"
    machine = None
    if params.get("hardware"):
        # the machine against its profile, for the layout checked (with Whonix added) unless another one is given
        wanted = dict(params["hardware"])
        if wanted.get("layout") is None or wanted["layout"] == given_layout:
            wanted["layout"] = params.get("layout") or {}
        machine = hardware.run_check(reader, wanted)
        if machine.get("failed"):
            failed = {key: value for key, value in machine.items() if key not in ("failed", "changed", "msg")}
            return {"failed": True, "changed": False, "hardware": failed, "field": f"hardware.{machine.get('field')}"
                    if machine.get("field") else "hardware", "msg": machine["msg"]}
    drift = layout.drift(reader, hidden_by_policy) if whole else {"qubes": [], "created": [], "tags": {}}
    drift["policy_files"] = []
    warnings = list(layout.warnings)
    if store is not None and not hidden_by_policy and whole:
        declared = set(params.get("policies") or {}) | set(params.get("policies_elsewhere") or [])
        if params.get("flows"):
            declared.add(params.get("flows_policy") or "30-corral-flows")
        try:
            drift["policy_files"] = policy_drift(store, declared)
        except (policy_client.PolicyAdminError, OSError) as exc:
            warnings.append(f"policy files not checked for drift: {exc}")
    result = {"changed": False, "created": layout.created(reader), "drift": drift,
              "prunable": drift["created"] if params.get("prune") else [], "release": reader.release}
    if machine is not None:
        warnings.extend(machine.pop("warnings", []))
        result["hardware"] = {key: value for key, value in machine.items() if key != "changed"}
    if expanded is not None:
        result["whonix"] = {**merged, "version": expanded["version"], "gateway": expanded["gateway"],
                            "dispvm_template": expanded["dispvm_template"]}
    elif merged is not None:
        result["whonix"] = merged
    if drift["qubes"]:
        warnings.append(f"qubes on the system that the layout does not declare: {', '.join(drift['qubes'])}"
                        + (f" (created by corral.qubes: {', '.join(drift['created'])}; prune removes those)"
                           if drift["created"] else ""))
    for name, tags in drift["tags"].items():
        warnings.append(f"{name} has tags the layout does not declare: {', '.join(tags)}")
    if drift["policy_files"]:
        warnings.append("policy files written by corral.qubes that the layout does not declare: "
                        f"{', '.join(drift['policy_files'])} (remove one with corral.qubes.policy state=absent)")
    if warnings:
        result["warnings"] = warnings
    return result
