# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read, plan, apply: the one engine behind the qube, prefs and qube_info modules.

A run has three phases:

1. **Read** the current state with few calls (:class:`Reader` caches
   ``admin.vm.List`` and one ``property.GetAll`` per qube it looks at).
2. **Plan**: compare the wanted state with the current one in canonical form
   (property text as qubesd reports it, default versus explicit, features as
   strings, sizes in bytes), validate every input against what exists, and
   produce an ordered list of :class:`Step` with a before/after picture.
   Anything wrong raises :class:`PlanError` naming the field: nothing has
   been changed at that point.
3. **Apply** the steps in order (or, in check mode, only report them).

No Ansible imports: modules, the inventory plugin and tests share it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ansible_collections.corral.qubes.plugins.module_utils import firewall, formats, names, schema, wire

DEFAULT = "*default*"
"""A property value meaning "reset to the default" (``qvm-prefs --default``)."""

QUBE_STATES = ("present", "absent", "running", "halted", "paused", "killed")
TAGS_MODES = ("exact", "add")
QUBE_VOLUMES = ("root", "private", "volatile", "kernel")
"""The volumes of every qube (``admin.vm.volume.List``'s order); dom0 has none."""
PROTECTED_TAG_PREFIXES = ("created-by-", "disp-created-by-", "guivm-", "audiovm-")
"""Tags qubesd sets itself; exact mode never removes them and a layout cannot set them."""

CREATED_FEATURE = "corral-created"
"""Feature set on the qubes corral.qubes.qube creates with ``mark_created``: what a layout's ``prune`` may remove."""

TOP_LEVEL_PROPERTIES = ("label", "template", "netvm")
NOT_COPIED = frozenset({"label", "template", "name", "installed_by_rpm", "backup_timestamp"})
"""Properties a clone does not take from its source."""

_TRUE = ("1", "yes", "true", "on")
_FALSE = ("0", "no", "false", "off")
_VIRT_MODES = ("pv", "pvh", "hvm")


class PlanError(ValueError):
    """Input that cannot be planned, with the field it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ApplyError(RuntimeError):
    """A step failed; ``done`` lists the steps that had already been applied."""

    def __init__(self, step: str, error: Exception, done: list[str], undone: str = ""):
        super().__init__(f"{step} failed: {type(error).__name__}: {error}{undone}")
        self.step = step
        self.error = error
        self.done = done


# ---------------------------------------------------------------- reading


class Reader:
    """Cached reads of one dom0 (one ``admin.vm.List``, one ``GetAll`` per qube, each volume, feature and tag list
    once): what a plan is made from.  After applying a plan, read again with a new Reader."""

    def __init__(self, client):
        self.client = client
        self._vms = None
        self._props: dict = {}
        self._labels = None
        self._pools = None
        self._volume_names: dict = {}
        self._volume_info: dict = {}
        self._feature_names: dict = {}
        self._feature_values: dict = {}
        self._tags: dict = {}
        self.created_in_run = None
        """Names an earlier task of this run creates (check mode assumes only these); None: any name."""

    @property
    def hidden_by_policy(self) -> bool:
        """Whether a qube missing from ``admin.vm.List`` may exist but be hidden (the qrexec transport of a
        management qube, where the admin policy filters the list)."""
        return getattr(self.client.transport, "local", True) is False

    @property
    def vms(self) -> dict[str, formats.VmListEntry]:
        """Every qube by name, with class and power state."""
        if self._vms is None:
            self._vms = self.client.list_vms()
        return self._vms

    def props(self, vm: str | None) -> dict[str, formats.PropertyValue]:
        """Every property of a qube (None: the global qubes-prefs)."""
        key = vm or ""
        if key not in self._props:
            self._props[key] = self.client.property_get_all(vm)
        return self._props[key]

    @property
    def labels(self) -> list[str]:
        """Label names."""
        if self._labels is None:
            self._labels = self.client.label_list()
        return self._labels

    @property
    def pools(self) -> list[str]:
        """Storage pool names."""
        if self._pools is None:
            self._pools = self.client.pool_list()
        return self._pools

    def features(self, vm: str, only=None) -> dict[str, str]:
        """Features set on the qube, each value read once.

        With ``only``, just those names: one ``feature.Get`` each (a feature
        not set is left out), no ``feature.List``; without, every feature the
        list names.
        """
        if only is None:
            if vm not in self._feature_names:
                self._feature_names[vm] = self.client.feature_list(vm)
            wanted = list(self._feature_names[vm])
        else:
            wanted = sorted(only)
        for name in wanted:
            if (vm, name) not in self._feature_values:
                self._feature_values[vm, name] = self.client.feature_get(vm, name)
        return {name: self._feature_values[vm, name] for name in wanted if self._feature_values[vm, name] is not None}

    def tags(self, vm: str) -> list[str]:
        """Tags of the qube (read once)."""
        if vm not in self._tags:
            self._tags[vm] = self.client.tag_list(vm)
        return list(self._tags[vm])

    def volumes(self, vm: str, only=None) -> dict[str, dict]:
        """Volume details by name (only those named in ``only`` when given); each read once.

        A qube (any class but dom0's) has the volumes :data:`QUBE_VOLUMES`, so asked for some of those only,
        the qube's list of volumes is not read."""
        if (vm not in self._volume_names and only is not None and set(only) <= set(QUBE_VOLUMES)
                and vm in self.vms and self.vms[vm].klass != "AdminVM"):
            wanted = [name for name in QUBE_VOLUMES if name in only]
        else:
            if vm not in self._volume_names:
                self._volume_names[vm] = self.client.volume_list(vm)
            wanted = [name for name in self._volume_names[vm] if only is None or name in only]
        for name in wanted:
            if (vm, name) not in self._volume_info:
                self._volume_info[vm, name] = self.client.volume_info(vm, name)
        return {name: self._volume_info[vm, name] for name in wanted}

    @property
    def release(self) -> str:
        """``4.3``, or ``4.2`` when ``admin.vm.List`` has no uuids (its R4.2 form)."""
        dom0 = next((entry for entry in self.vms.values() if entry.klass == "AdminVM"), None)
        return "4.2" if dom0 is not None and dom0.uuid is None else "4.3"

    def power(self, vm: str) -> str:
        """``halted``, ``running`` or ``paused``."""
        return power_word(self.vms[vm].state)

    def firewall(self, vm: str) -> tuple[list[str], list[firewall.Rule] | None]:
        """The qube's rule lines as qubesd returns them, and parsed (None if a line is not understood)."""
        lines = self.client.firewall_get(vm)
        try:
            return lines, [firewall.parse_rule(line) for line in lines]
        except firewall.RuleError:
            return lines, None


def power_word(state: str) -> str:
    """The layout word for a qubesd power state."""
    if state in ("Halted", "Crashed", "NA"):
        return "halted"
    if state in ("Paused", "Suspended"):
        return "paused"
    return "running"


# ---------------------------------------------------------------- values


def canonical_property(field: str, kind: str, value, prop: str = "") -> str:
    """A wanted property value as the text qubesd will report (or DEFAULT)."""
    if isinstance(value, str) and value == DEFAULT:
        return DEFAULT
    if kind == "bool":
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return str(value.lower() in _TRUE)
        raise PlanError(field, f"expected a boolean (true or false), got {value!r}")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise PlanError(field, f"expected an integer, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise PlanError(field, f"expected an integer, got {value!r}") from None
        if prop in schema.POSITIVE_INTS and number <= 0:
            raise PlanError(field, f"expected an integer greater than 0, got {number}")
        if number < 0:
            raise PlanError(field, f"expected an integer of 0 or more, got {number}")
        return str(number)
    if kind in ("vm", "label"):
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise PlanError(field, f"expected a qube name, got {value!r}" if kind == "vm"
                            else f"expected a label name, got {value!r}")
        if kind == "vm" and value:
            error = names.vm_name_error(value)
            if error:
                raise PlanError(field, f"{value!r} is not a qube name: {error}")
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PlanError(field, f"expected a string, got {value!r}")
    text = str(value)
    if not all(0x20 <= ord(c) <= 0x7E for c in text):
        raise PlanError(field, "expected printable ASCII without newlines")
    if prop == "virt_mode":
        text = text.lower()
        if text not in _VIRT_MODES:
            raise PlanError(field, f"expected one of {', '.join(_VIRT_MODES)}, got {value!r}")
    if prop == "kernel" and "/" in text:
        raise PlanError(field, "a kernel name cannot contain '/'")
    return text


def feature_text(field: str, value) -> str | None:
    """A feature value as qubesd stores it (True "1", False "", numbers as text); None removes."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise PlanError(field, f"expected a string, number, boolean or null, got {value!r}")
    error = names.feature_value_error(value)
    if error:
        raise PlanError(field, error)
    return value


def size_bytes(field: str, value) -> int:
    """A volume size in bytes from ``20GiB`` and friends."""
    try:
        return formats.parse_size(value)
    except (ValueError, TypeError) as exc:
        raise PlanError(field, str(exc)) from None


def human_size(size: int | None):
    """Bytes as the largest exact binary unit (``20GiB``), for output that can be pasted back."""
    if size is None:
        return None
    for unit, factor in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return size


def shown(value: formats.PropertyValue | None) -> str | None:
    """A property value for a diff: ``400 (default)`` for defaults."""
    if value is None:
        return None
    return f"{value.value} (default)" if value.is_default else value.value


def changed_to(value: formats.PropertyValue, text: str) -> str | None:
    """How a wanted value (text or DEFAULT) shows in a diff if it changes ``value``; None if it does not.

    An explicit value equal to the default is a change (qubesd then stores it explicitly); a reset is
    a change only for an explicit value.
    """
    if text == DEFAULT:
        return None if value.is_default else "(default)"
    return None if not value.is_default and value.value == text else text


# ---------------------------------------------------------------- plans


@dataclasses.dataclass
class Step:
    """One mutating call (or a few that belong together), with what it does in words."""

    text: str
    run: Callable


@dataclasses.dataclass
class Plan:
    """Ordered steps plus the before/after picture of what they change."""

    steps: list = dataclasses.field(default_factory=list)
    before: dict = dataclasses.field(default_factory=dict)
    after: dict = dataclasses.field(default_factory=dict)
    warnings: list = dataclasses.field(default_factory=list)
    summary: dict = dataclasses.field(default_factory=dict)
    """The object after the plan: name, class, power state, label, template, netvm."""
    undo: tuple | None = None
    """(steps covered, text, run): if one of the first ``steps covered`` steps fails, ``run`` undoes them."""

    @property
    def changed(self) -> bool:
        """Whether applying would change anything."""
        return bool(self.steps)

    @property
    def actions(self) -> list[str]:
        """The steps in words."""
        return [step.text for step in self.steps]

    def add(self, text: str, run: Callable) -> None:
        """Append a step."""
        self.steps.append(Step(text, run))

    def add_property(self, holder: str | None, prop: str, text: str) -> None:
        """Append a property Set (or, for DEFAULT, Reset) of a qube or of qubes-prefs (``holder`` None)."""
        who = holder or "qubes-prefs"
        if text == DEFAULT:
            self.add(f"reset {who} {prop} to its default", lambda c: c.property_reset(holder, prop))
        else:
            self.add(f"set {who} {prop} = {text!r}", lambda c: c.property_set(holder, prop, text))

    def apply(self, client) -> list[str]:
        """Run every step in order; on failure raise :class:`ApplyError`."""
        done: list[str] = []
        for index, step in enumerate(self.steps):
            try:
                step.run(client)
            except (wire.QubesException, OSError, ValueError) as exc:
                raise ApplyError(step.text, exc, done, self._undo(client, index)) from exc
            done.append(step.text)
        return done

    def _undo(self, client, failed_index: int) -> str:
        """Undo a half-done group of steps (a clone whose copy failed); the outcome in words."""
        if self.undo is None or failed_index >= self.undo[0]:
            return ""
        _covered, text, run = self.undo
        try:
            run(client)
        except (wire.QubesException, OSError, ValueError) as exc:
            return f"; then {text} failed too ({type(exc).__name__}: {exc})"
        return f"; {text}, so a new run starts over"


def _diff_dict(before: dict, after: dict, key: str, old, new) -> None:
    """Record one changed field in the before/after picture."""
    before[key] = old
    after[key] = new


# ---------------------------------------------------------------- the wanted qube


def _or_empty(value):
    """None as an empty mapping; anything else as given (so a list is refused, not ignored)."""
    return {} if value is None else value


@dataclasses.dataclass
class QubeSpec:
    """The validated shape of one qube's parameters (before looking at dom0)."""

    name: str
    state: str = "present"
    klass: str | None = None
    properties: dict = dataclasses.field(default_factory=dict)
    """name -> (field, raw value); canonicalised once the class is known."""
    features: dict = dataclasses.field(default_factory=dict)
    """feature name -> text, or None to remove."""
    tags: list | None = None
    tags_mode: str = "exact"
    volumes: dict = dataclasses.field(default_factory=dict)
    pool: dict | str | None = None
    clone_from: str | None = None
    shutdown_if_needed: bool = False
    mark_created: bool = False

    @classmethod
    def from_params(cls, params: dict) -> QubeSpec:
        """Validate the module parameters' shape and values that need no dom0."""
        name = params.get("name")
        error = names.vm_name_error(name) if isinstance(name, str) else "expected a qube name"
        if error:
            raise PlanError("name", f"{name!r} is not a valid qube name: {error}")
        if name == "dom0":
            raise PlanError("name", "dom0 is managed with corral.qubes.prefs and cannot be a managed qube")
        state = params.get("state") or "present"
        if state not in QUBE_STATES:
            raise PlanError("state", f"expected one of {', '.join(QUBE_STATES)}, got {state!r}")
        klass = params.get("class")
        if klass is not None and klass not in schema.CLASSES:
            raise PlanError("class", f"expected one of {', '.join(schema.CLASSES)}, got {klass!r}")
        spec = cls(name=name, state=state, klass=klass)

        props = _or_empty(params.get("properties"))
        if not isinstance(props, dict):
            raise PlanError("properties", "expected a mapping of property names to values")
        for prop, value in props.items():
            if not isinstance(prop, str):
                raise PlanError("properties", f"property names are strings, got {prop!r}")
            spec.properties[prop] = (f"properties.{prop}", value)
        for prop in TOP_LEVEL_PROPERTIES:
            if params.get(prop) is None:
                continue
            if prop in spec.properties:
                raise PlanError(prop, f"given both as {prop} and as properties.{prop}: keep one")
            spec.properties[prop] = (prop, params[prop])

        features = _or_empty(params.get("features"))
        if not isinstance(features, dict):
            raise PlanError("features", "expected a mapping of feature names to values")
        for feature, value in features.items():
            error = names.feature_name_error(feature)
            if error:
                raise PlanError(f"features.{feature}", error)
            spec.features[feature] = feature_text(f"features.{feature}", value)
        services = _or_empty(params.get("services"))
        if not isinstance(services, dict):
            raise PlanError("services", "expected a mapping of service names to true, false or null")
        for service, value in services.items():
            field = f"services.{service}"
            if value is not None and not isinstance(value, bool):
                raise PlanError(field, f"expected true, false or null, got {value!r}")
            feature = f"service.{service}"
            error = names.feature_name_error(feature)
            if error:
                raise PlanError(field, error)
            if feature in spec.features:
                raise PlanError(field, f"also given as features.{feature}: keep one")
            spec.features[feature] = feature_text(field, value)

        tags = params.get("tags")
        if tags is not None:
            if not isinstance(tags, list):
                raise PlanError("tags", "expected a list of tag names")
            for index, tag in enumerate(tags):
                error = names.tag_error(tag)
                if error:
                    raise PlanError(f"tags[{index}]", error)
                if tag.startswith(PROTECTED_TAG_PREFIXES):
                    raise PlanError(f"tags[{index}]", f"{tag!r}: tags starting with "
                                    f"{', '.join(PROTECTED_TAG_PREFIXES)} are set by qubesd itself")
            spec.tags = list(dict.fromkeys(tags))
        spec.tags_mode = params.get("tags_mode") or "exact"
        if spec.tags_mode not in TAGS_MODES:
            raise PlanError("tags_mode", f"expected exact or add, got {spec.tags_mode!r}")

        volumes = _or_empty(params.get("volumes"))
        if not isinstance(volumes, dict):
            raise PlanError("volumes", "expected a mapping of volume names to sizes, such as private: 20GiB")
        for volume, size in volumes.items():
            if volume not in ("root", "private", "volatile"):
                raise PlanError(f"volumes.{volume}", "expected root, private or volatile")
            spec.volumes[volume] = size_bytes(f"volumes.{volume}", size)

        pool = params.get("pool")
        if pool is not None and not isinstance(pool, (str, dict)):
            raise PlanError("pool", "expected a pool name or a mapping of volume names to pool names")
        if isinstance(pool, dict):
            for volume in pool:
                if volume not in ("root", "private", "volatile", "kernel"):
                    raise PlanError(f"pool.{volume}", "expected root, private, volatile or kernel")
        spec.pool = pool or None
        clone_from = params.get("clone_from")
        if clone_from is not None:
            error = names.vm_name_error(clone_from) if isinstance(clone_from, str) else "not a string"
            if error:
                raise PlanError("clone_from", f"{clone_from!r} is not a qube name: {error}")
            if clone_from == name:
                raise PlanError("clone_from", "a qube cannot be cloned from itself")
        spec.clone_from = clone_from
        spec.shutdown_if_needed = bool(params.get("shutdown_if_needed"))
        spec.mark_created = bool(params.get("mark_created"))
        return spec


# ---------------------------------------------------------------- qube planner


def missing_qube(reader: Reader, plan: Plan, check_mode: bool, field: str, name: str, where: str = "",
                 hint: str = "", assumed: str = "") -> bool:
    """Whether qube ``name`` is missing: an error naming ``field``, or in check mode a warning.

    In check mode an earlier task of the same run may create the qube, so the
    plan goes on (with ``assumed`` said in the warning) without what needs it
    - only for the names in ``reader.created_in_run`` when it is set (what
    the layout creates); any other name is the same error as in a real run.
    Through a management qube's qrexec transport a missing qube may be hidden
    by the admin policy, and the error says so.
    """
    if name in reader.vms:
        return False
    planned = reader.created_in_run
    if check_mode and (planned is None or name in planned):
        plan.warnings.append(f"{where or field}: {name} does not exist yet; check mode assumes an earlier task "
                             f"of this run creates it{assumed}")
        return True
    if reader.hidden_by_policy:
        raise PlanError(field, f"no qube named {name!r} is visible to this management qube: its admin policy may "
                               "hide it (add it to the qubes the management qube manages), or it does not exist")
    if check_mode:
        hint = f"{hint}; nothing in this run creates it (created_in_run: {', '.join(planned) or 'none'})"
    raise PlanError(field, f"no qube named {name!r}{hint}")


class QubePlanner:
    """Plans one qube against the state a :class:`Reader` sees."""

    def __init__(self, reader: Reader, spec: QubeSpec, check_mode: bool = False):
        self.reader = reader
        self.spec = spec
        self.plan = Plan()
        self.name = spec.name
        self.check_mode = check_mode
        self.netvm_to_start = None
        """A halted netvm that a running qube moves to: started before the change."""

    def _missing(self, field: str, name: str, hint: str = "") -> bool:
        """Whether qube ``name`` is missing: an error, or in check mode a warning.

        In check mode an earlier task of the same run may create the qube, so
        the plan goes on without the checks that need it.
        """
        return missing_qube(self.reader, self.plan, self.check_mode, field, name,
                            where=f"{self.name}: {field}", hint=hint)

    # -- entry point ------------------------------------------------------------

    def build(self) -> Plan:
        """The whole plan; raises PlanError before anything is changed."""
        spec = self.spec
        exists = self.name in self.reader.vms
        if spec.state == "absent":
            if exists:
                self._plan_removal()
                self.plan.before, self.plan.after = self._diff_shape(self.plan.before), self._diff_shape(
                    self.plan.after)
            return self.plan
        if exists:
            self._plan_existing()
        else:
            self._plan_new()
        self.plan.before, self.plan.after = self._diff_shape(self.plan.before), self._diff_shape(self.plan.after)
        return self.plan

    def _diff_shape(self, picture: dict) -> dict:
        """One shape for every diff of a qube, created or changed: its name first, then state and class, the
        top-level properties (label, template, netvm) at the top, the other properties, features, tags and
        volumes below."""
        picture = dict(picture)
        props = dict(picture.pop("properties", {}))
        out = {"name": self.name}
        for key in ("state", "class"):
            if key in picture:
                out[key] = picture.pop(key)
        for prop in TOP_LEVEL_PROPERTIES:
            if prop in picture:
                out[prop] = picture.pop(prop)
            elif prop in props:
                out[prop] = props.pop(prop)
        if props:
            out["properties"] = props
        out.update(picture)
        return out

    # -- removal ----------------------------------------------------------------

    def _plan_removal(self) -> None:
        name = self.name
        users = users_of(self.reader, name)
        if users:
            raise PlanError("state", f"{name} cannot be removed while {', '.join(users)} use it: "
                            "change or remove those first")
        power = self.reader.power(name)
        self.plan.before = {"state": power, "class": self.reader.vms[name].klass}
        self.plan.after = {"state": "absent"}
        if power != "halted":
            self.plan.add(f"kill {name}", lambda c: c.kill(name))
        self.plan.add(f"remove {name}", lambda c: c.remove(name))

    # -- new qubes --------------------------------------------------------------

    def _plan_new(self) -> None:
        spec, name, reader = self.spec, self.name, self.reader
        klass, source, pending, base = self._origin_of_new()
        release = reader.release
        error = names.vm_name_error(name, release)
        if error:
            raise PlanError("name", f"{name!r} is not a valid qube name on Qubes R{release}: {error}")
        table = schema.class_properties(klass, release)
        wanted = self._canonical_properties(table, klass)
        label = self._label_of_new(wanted.pop("label", None), source, pending)
        template = self._template_of_new(klass, wanted.pop("template", None), source, pending)

        pools = self._check_pool()
        self._check_new_properties(wanted, table, klass)

        # The starting point after creation, for comparing the rest of the layout.
        baseline = {}
        copy_props: dict = {}
        copy_features: dict = {}
        copy_tags: list = []
        if source is not None:
            for prop, value in reader.props(source).items():
                if (not value.is_default and prop in table and schema.writable(prop)
                        and prop not in NOT_COPIED):
                    copy_props[prop] = value
            baseline = dict(copy_props)
            copy_features = reader.features(source)
            copy_tags = [tag for tag in reader.tags(source) if not tag.startswith(PROTECTED_TAG_PREFIXES)]

        before = {"state": "absent"}
        after: dict = {"state": "halted" if spec.state in ("present", "killed") else spec.state, "class": klass,
                       "label": label}
        if klass in ("AppVM", "DispVM"):
            after["template"] = template

        how = f"create {klass} {name}"
        if template and klass in ("AppVM", "DispVM"):
            how += f" from template {template}"
        if spec.clone_from:
            how = f"clone {spec.clone_from} to {name}"
        elif base:
            how += f" with a copy of {base}'s root volume"
        if pending:
            how += f" ({pending} does not exist yet)"

        def create(client, klass=klass, template=template):
            client.create(klass, name, label, template=template if klass in ("AppVM", "DispVM") else None,
                          pool=pools if isinstance(pools, str) else None,
                          pools=pools if isinstance(pools, dict) else None)
        self.plan.add(how, create)

        if source is not None:
            self._plan_copy(source, klass, copy_props, wanted, copy_features, copy_tags)
            # A half-made copy would look finished to the next run: remove it, as qvm-clone does.
            self.plan.undo = (len(self.plan.steps), f"removed the half-made {name}", lambda c: c.remove(name))
        elif pending:
            self.plan.add(f"copy the settings of {pending} to {name}", _only_planned)

        after_props = {}
        for prop, text in wanted.items():
            if text == DEFAULT:
                continue
            current = baseline.get(prop)
            if current is not None and current.value == text:
                continue
            after_props[prop] = text
            self.plan.add_property(self.name, prop, text)
        if after_props:
            after["properties"] = after_props

        scratch: dict = {}  # a new qube's "before" is only its absence
        if spec.mark_created:
            self.spec.features.setdefault(CREATED_FEATURE, "1")  # what a layout's prune may remove, later
        self._plan_features(dict(copy_features), scratch, after)
        self._plan_tags(copy_tags, scratch, after)
        self._plan_new_volumes(klass, template, source, scratch, after)
        self._plan_power("halted", spec.state)
        self.plan.before = before
        self.plan.after = after
        self.plan.summary = {"name": name, **{key: after[key] for key in ("class", "state", "label", "template")
                                              if key in after}}
        if "netvm" in wanted:
            self.plan.summary["netvm"] = wanted["netvm"]

    def _origin_of_new(self):
        """(class, source to copy from, source not created yet (check mode), template-based source)."""
        spec, reader = self.spec, self.reader
        source = pending = base = None
        klass = spec.klass or "AppVM"
        if spec.clone_from is not None and self._missing("clone_from", spec.clone_from):
            pending = spec.clone_from
        elif spec.clone_from is not None:
            source = spec.clone_from
            source_class = reader.vms[source].klass
            if source_class not in schema.CLASSES:
                raise PlanError("clone_from", f"{source} is {names.article(source_class)}, which cannot be cloned")
            if spec.klass and spec.klass != source_class:
                raise PlanError("class", f"a clone keeps the class of {source} ({source_class}), not {spec.klass}")
            klass = source_class
        if klass in schema.OWN_ROOT and "template" in spec.properties:
            # A TemplateVM or StandaloneVM made from another qube's root, as qvm-create does it.
            field, raw = spec.properties.pop("template")
            base = canonical_property(field, "vm", raw)
            if spec.clone_from is not None:
                raise PlanError(field, f"give either clone_from or template for {names.article(klass)}, not both")
            if self._missing(field, base, " to copy the root volume from"):
                pending = base
            elif reader.vms[base].klass not in schema.OWN_ROOT:
                raise PlanError(field, f"{base} is {names.article(reader.vms[base].klass)}: {names.article(klass)} can only be made "
                                "from a TemplateVM or StandaloneVM")
            else:
                source = base
        return klass, source, pending, base

    def _label_of_new(self, wanted, source, pending):
        """The label of a new qube: given, or its clone source's."""
        if wanted not in (None, DEFAULT):
            label = wanted
        elif source is not None:
            label = self.reader.props(source)["label"].value
        elif pending and self.spec.clone_from:
            return None  # the clone's source, not created yet, will give it
        else:
            raise PlanError("label", f"a new qube needs a label, one of: {', '.join(self.reader.labels)}")
        self._check_label("label", label)
        return label

    def _template_of_new(self, klass, wanted, source, pending):
        """The template of a new AppVM or DispVM: given, its clone source's, or the global default."""
        if klass not in ("AppVM", "DispVM"):
            return None
        if wanted == DEFAULT:
            raise PlanError("template", "a template cannot be reset to its default")
        template = wanted
        if template is None and source is not None:
            template = self.reader.props(source)["template"].value
        if template is None and pending:
            return None  # the clone's source, not created yet, will give it
        if template is None:
            default = "default_dispvm" if klass == "DispVM" else "default_template"
            template = self.reader.props(None)[default].value or None
            if template is None:
                raise PlanError("template", f"no template given and qubes-prefs has no {default}")
        self._check_template(klass, template)
        return template

    def _plan_copy(self, source, klass, copy_props, wanted, features, tags) -> None:
        name = self.name
        props = {prop: value.value for prop, value in copy_props.items() if prop not in wanted}
        volumes = [volume for volume, info in self.reader.volumes(source).items()
                   if info.get("save_on_stop") and (volume != "root" or klass in schema.OWN_ROOT)]
        if self.spec.clone_from is None:
            volumes = [volume for volume in volumes if volume == "root"]

        def copy(client):
            for prop, text in props.items():
                client.property_set(name, prop, text)
            for feature, value in features.items():
                client.feature_set(name, feature, value)
            for tag in tags:
                client.tag_set(name, tag)
            rules = client.firewall_get(source)
            if rules != [rule.render() for rule in firewall.DEFAULT_RULES]:
                client.firewall_set(name, rules)
            for volume in volumes:
                token = client.volume_clone_from(source, volume)
                client.volume_clone_to(name, volume, token)

        parts = [_count(len(props), "property", "properties"), _count(len(features), "feature", "features"),
                 _count(len(tags), "tag", "tags"), "firewall"]
        if volumes:
            parts.append(f"volumes {', '.join(volumes)}")
        self.plan.add(f"copy {', '.join(parts)} of {source} to {name}", copy)

    def _plan_new_volumes(self, klass, template, source, before, after) -> None:
        if not self.spec.volumes:
            return
        sizes = dict(schema.DEFAULT_VOLUME_SIZES)
        if "root" in self.spec.volumes and klass in ("AppVM", "DispVM") and template in self.reader.vms:
            root = self.reader.volumes(template, only={"root"}).get("root")
            if root:
                sizes["root"] = root["size"]
        if source is not None:
            for volume, info in self.reader.volumes(source, only=set(self.spec.volumes)).items():
                sizes[volume] = info["size"]
        self._plan_volume_sizes(sizes, before, after)

    # -- existing qubes -----------------------------------------------------------

    def _plan_existing(self) -> None:
        spec, name, reader = self.spec, self.name, self.reader
        klass = reader.vms[name].klass
        if klass not in schema.CLASSES:
            raise PlanError("name", f"{name} is {names.article(klass)}, which this module does not manage")
        if spec.klass and spec.klass != klass:
            raise PlanError("class", f"{name} exists as {names.article(klass)}; its class cannot be changed to "
                            f"{spec.klass} (remove it and create it again, or pick another name)")
        current = reader.props(name)
        table = {prop: value.type for prop, value in current.items()}
        if klass in schema.OWN_ROOT:
            spec.properties.pop("template", None)  # only the source of a new qube's root
        wanted = self._canonical_properties(table, klass)
        if wanted.get("label") == DEFAULT:
            raise PlanError("label", "a label has no default: name one")
        if wanted.get("template") == DEFAULT:
            raise PlanError("template", "a template cannot be reset to its default")
        # Values that stay as they are need no checking (and no reads).
        changing = {prop: text for prop, text in wanted.items() if changed_to(current[prop], text) is not None}
        if "label" in changing:
            self._check_label(spec.properties["label"][0], changing["label"])
        if "template" in changing:
            self._check_template(klass, changing["template"])
        self._check_existing_pool(klass)
        self._check_new_properties({p: v for p, v in changing.items() if p not in ("label", "template")},
                                   table, klass, current)

        power = reader.power(name)
        before: dict = {"state": power}
        after: dict = {"state": power}
        halted_needed = []
        prop_steps = []
        for prop, text in wanted.items():
            value = current[prop]
            new_shown = changed_to(value, text)
            if new_shown is None:
                continue
            _diff_dict(before.setdefault("properties", {}), after.setdefault("properties", {}),
                       prop, shown(value), new_shown)
            if prop in schema.HALTED_ONLY:
                halted_needed.append(prop)
            prop_steps.append((prop, text))

        desired = spec.state
        power_done = False
        if desired in ("halted", "killed") and power != "halted":
            # Stop first: a halted qube accepts every change (a template, a halted netvm, ...).
            self._plan_power(power, desired)
            power_done = True
            power = "halted"
        if halted_needed and power != "halted":
            if spec.shutdown_if_needed:
                self._plan_stop(power)
                power_done = False
                power = "halted"
            else:
                raise PlanError("shutdown_if_needed", f"changing {', '.join(halted_needed)} of {name} needs it "
                                f"halted and it is {power}: set shutdown_if_needed: true (it is started again "
                                "afterwards) or state: halted")
        if self.netvm_to_start and power != "halted":
            netvm = self.netvm_to_start
            self.plan.add(f"start {netvm}, the new netvm of running {name}", lambda c: c.start(netvm))
        for prop, text in sorted(prop_steps, key=lambda step: step[0] not in schema.HALTED_ONLY):
            self.plan.add_property(self.name, prop, text)
        at_start = sorted(prop for prop, _text in prop_steps if prop in schema.APPLIED_AT_START)
        if at_start and power != "halted" and desired not in ("halted", "killed"):
            self.plan.warnings.append(f"{name} is {power}: {', '.join(at_start)} take effect when it next "
                                      "starts (shut it down and start it, or use state: halted then running)")

        if spec.features:
            self._plan_features(reader.features(name, only=set(spec.features)), before, after)
        if spec.tags is not None:
            self._plan_tags(reader.tags(name), before, after)
        if spec.volumes:
            for volume in spec.volumes:
                if volume == "root" and klass not in schema.OWN_ROOT:
                    raise PlanError("volumes.root", f"the root volume of {names.article(klass)} follows its template: "
                                    "grow the template's root instead")
            info = reader.volumes(name, only=set(spec.volumes))
            missing = set(spec.volumes) - set(info)
            if missing:
                raise PlanError(f"volumes.{sorted(missing)[0]}", f"{name} has no such volume")
            self._plan_volume_sizes({volume: details["size"] for volume, details in info.items()}, before, after)
        if not power_done:
            # "present" after a change that needed a halted qube: back to how it was.
            self._plan_power(power, reader.power(name) if desired == "present" else desired)
        if desired != "present":
            after["state"] = "halted" if desired == "killed" else desired
        self.plan.before = before
        self.plan.after = after
        summary = {"name": name, "class": klass, "state": after["state"]}
        for prop in TOP_LEVEL_PROPERTIES:
            if prop in current:
                text = wanted.get(prop, current[prop].value)
                if text == DEFAULT:  # only netvm can be reset: it follows the global default again
                    text = reader.props(None)["default_netvm"].value
                summary[prop] = text
        self.plan.summary = summary

    # -- checks -----------------------------------------------------------------

    def _canonical_properties(self, table: dict, klass: str) -> dict[str, str]:
        wanted = {}
        for prop, (field, raw) in self.spec.properties.items():
            if prop not in table:
                known = ", ".join(sorted(p for p in table if schema.writable(p)))
                raise PlanError(field, f"{klass} has no property {prop!r}; settable properties: {known}")
            if not schema.writable(prop):
                raise PlanError(field, f"{prop} is set by qubesd and cannot be changed")
            wanted[prop] = canonical_property(field, table[prop], raw, prop)
        return wanted

    def _check_label(self, field: str, label: str) -> None:
        if label not in self.reader.labels:
            raise PlanError(field, f"unknown label {label!r}; labels: {', '.join(self.reader.labels)}")

    def _check_template(self, klass: str, template: str) -> None:
        field = self.spec.properties.get("template", ("template", None))[0]
        vms = self.reader.vms
        if self._missing(field, template, ": install or create the template first"):
            return
        if klass == "AppVM" and vms[template].klass != "TemplateVM":
            raise PlanError(field, f"{template} is {names.article(vms[template].klass)}; an AppVM needs a TemplateVM")
        if klass == "DispVM" and self.reader.props(template).get("template_for_dispvms",
                                                                 formats.PropertyValue("False")).value != "True":
            raise PlanError(field, f"{template} cannot be the template of a DispVM: "
                            "set template_for_dispvms: true on it")

    def _check_pool(self):
        pool = self.spec.pool
        if pool is None:
            return None
        wanted = [pool] if isinstance(pool, str) else list(pool.values())
        for item in wanted:
            if item not in self.reader.pools:
                raise PlanError("pool", f"no storage pool named {item!r}; pools: {', '.join(self.reader.pools)}")
        return pool

    def _check_existing_pool(self, klass: str) -> None:
        pool = self._check_pool()
        if pool is None:
            return
        wanted = {"private": pool} if isinstance(pool, str) else dict(pool)
        if isinstance(pool, str) and klass in schema.OWN_ROOT:
            wanted["root"] = pool
        info = self.reader.volumes(self.name, only=set(wanted))
        for volume, pool_name in wanted.items():
            if volume in info and info[volume].get("pool") != pool_name:
                raise PlanError("pool", f"the {volume} volume of {self.name} is in pool {info[volume].get('pool')}, "
                                f"not {pool_name}: a pool is chosen only when a qube is created")

    def _check_new_properties(self, wanted: dict, table: dict, klass: str, current=None) -> None:
        """Targets of vm properties exist (netvm: provides network, no loop, running if needed)."""
        reader = self.reader
        for prop, text in wanted.items():
            if prop == "netvm" and text == DEFAULT:
                self._start_netvm_if_needed(current, reader.props(None)["default_netvm"].value)
            if table.get(prop) != "vm" or text in (DEFAULT, ""):
                continue
            field = self.spec.properties[prop][0]
            if self._missing(field, text) or prop != "netvm":
                continue
            if text == self.name:
                raise PlanError(field, f"{self.name} cannot be its own netvm")
            if reader.props(text).get("provides_network", formats.PropertyValue("False")).value != "True":
                raise PlanError(field, f"{text} does not provide network: set provides_network: true on it "
                                "first, or pick a netvm that does")
            hop, seen = text, set()
            while hop and hop not in seen:
                seen.add(hop)
                hop = reader.props(hop)["netvm"].value if hop in reader.vms and hop != "dom0" else ""
                if hop == self.name:
                    raise PlanError(field, f"network loop: {text} reaches the network through {self.name}")
            self._start_netvm_if_needed(current, text)

    def _start_netvm_if_needed(self, current, netvm: str) -> None:
        """qubesd attaches a running qube only to a running netvm: plan to start it (and its own netvms) first."""
        reader = self.reader
        if (current is not None and netvm and netvm in reader.vms and reader.power(self.name) != "halted"
                and self.spec.state not in ("halted", "killed") and reader.power(netvm) == "halted"):
            self.netvm_to_start = netvm

    # -- steps ------------------------------------------------------------------

    def _plan_features(self, current: dict, before: dict, after: dict) -> None:
        name = self.name
        for feature, text in self.spec.features.items():
            old = current.get(feature)
            if old == text:
                continue
            _diff_dict(before.setdefault("features", {}), after.setdefault("features", {}), feature, old, text)
            if text is None:
                self.plan.add(f"remove feature {feature} of {name}", lambda c, f=feature: c.feature_remove(name, f))
            else:
                self.plan.add(f"set feature {feature} of {name} = {text!r}",
                              lambda c, f=feature, t=text: c.feature_set(name, f, t))

    def _plan_tags(self, current: list, before: dict, after: dict) -> None:
        wanted = self.spec.tags
        if wanted is None:
            return
        name = self.name
        add = [tag for tag in wanted if tag not in current]
        remove = []
        if self.spec.tags_mode == "exact":
            remove = [tag for tag in current if tag not in wanted and not tag.startswith(PROTECTED_TAG_PREFIXES)]
        if not add and not remove:
            return
        visible = sorted(tag for tag in current if not tag.startswith(PROTECTED_TAG_PREFIXES))
        before["tags"] = visible
        after["tags"] = sorted(set(visible) - set(remove) | set(add))
        for tag in add:
            self.plan.add(f"add tag {tag} to {name}", lambda c, t=tag: c.tag_set(name, t))
        for tag in remove:
            self.plan.add(f"remove tag {tag} from {name}", lambda c, t=tag: c.tag_remove(name, t))

    def _plan_volume_sizes(self, sizes: dict, before: dict, after: dict) -> None:
        name = self.name
        for volume, size in self.spec.volumes.items():
            old = sizes.get(volume)
            if old is None:
                raise PlanError(f"volumes.{volume}", f"{name} has no {volume} volume")
            if size < old:
                raise PlanError(f"volumes.{volume}", f"{human_size(size)} is smaller than the current "
                                f"{human_size(old)}: volumes only grow (qubesd refuses to shrink them)")
            if size == old:
                continue
            _diff_dict(before.setdefault("volumes", {}), after.setdefault("volumes", {}),
                       volume, human_size(old), human_size(size))
            self.plan.add(f"grow {name} {volume} volume from {human_size(old)} to {human_size(size)}",
                          lambda c, v=volume, s=size: c.volume_resize(name, v, s))

    def _plan_stop(self, power: str) -> None:
        name = self.name
        reader = self.reader
        if name in reader.vms and reader.props(name).get("provides_network",
                                                         formats.PropertyValue("False")).value == "True":
            # qubesd refuses a clean shutdown of a netvm that running qubes use: say so before any change.
            clients = [other for other in reader.vms if other != name and reader.power(other) != "halted"
                       and "netvm" in reader.props(other) and reader.props(other)["netvm"].value == name]
            if clients:
                raise PlanError("state", f"{name} provides network to running {', '.join(sorted(clients))}: "
                                "halt them or move them to another netvm first")
        if power == "paused":
            self.plan.add(f"unpause {name}", lambda c: c.unpause(name))
        self.plan.add(f"shut down {name}", lambda c: c.shutdown(name, wait=True))

    def _plan_power(self, power: str, desired: str) -> None:
        """Steps from ``power`` (halted/running/paused) to ``desired`` (a module state)."""
        name = self.name
        if desired == "present" or desired == power:
            return
        if desired == "running":
            if power == "paused":
                self.plan.add(f"unpause {name}", lambda c: c.unpause(name))
            else:
                self.plan.add(f"start {name}", lambda c: c.start(name))
        elif desired == "halted":
            self._plan_stop(power)
        elif desired == "killed":
            if power != "halted":
                self.plan.add(f"kill {name}", lambda c: c.kill(name))
        elif desired == "paused":
            if power == "halted":
                self.plan.add(f"start {name}", lambda c: c.start(name))
            self.plan.add(f"pause {name}", lambda c: c.pause(name))


def plan_stop_and_start(reader: Reader, plan: Plan, name: str, check_mode: bool = False) -> Callable:
    """Steps that halt running or paused qube ``name`` (as ``shutdown_if_needed`` does) added to ``plan``.

    Refused before any change when the qube provides network to running
    qubes.  Returns a function that adds the steps bringing it back to how
    it was (started again, paused again), to call after the changes.
    """
    power = reader.power(name)
    planner = QubePlanner(reader, QubeSpec(name=name), check_mode)
    planner._plan_stop(power)
    plan.steps.extend(planner.plan.steps)

    def restore() -> None:
        back = QubePlanner(reader, QubeSpec(name=name), check_mode)
        back._plan_power("halted", power)
        plan.steps.extend(back.plan.steps)
    return restore


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _only_planned(client):
    """A step that exists only in check mode (its source is not created yet); never applied."""
    raise RuntimeError("a step planned for a qube that does not exist cannot be applied")


def users_of(reader: Reader, name: str) -> list[str]:
    """What refers to ``name`` in a way qubesd counts as use: explicit vm properties, a qube's template even by
    default (an AppVM on the default template still runs from it), and global preferences."""
    users = []
    for other in reader.vms:
        if other == name:
            continue
        for prop, value in reader.props(other).items():
            if value.type == "vm" and value.value == name and (not value.is_default or prop == "template"):
                users.append(f"{other} ({prop})")
    for prop, value in reader.props(None).items():
        if value.type == "vm" and value.value == name:
            users.append(f"qubes-prefs {prop}")
    return users


def plan_qube(reader: Reader, params: dict, check_mode: bool = False) -> Plan:
    """Validate ``params`` (the qube module's) and plan them against dom0.

    In check mode, qubes the task refers to but that do not exist yet are
    warnings (an earlier task of the same run may create them), not errors.
    """
    return QubePlanner(reader, QubeSpec.from_params(params), check_mode).build()


# ---------------------------------------------------------------- global prefs


def plan_prefs(reader: Reader, properties: dict) -> Plan:
    """Plan qubes-prefs changes (``DEFAULT`` resets one)."""
    if not isinstance(properties, dict):
        raise PlanError("properties", "expected a mapping of qubes-prefs names to values")
    current = reader.props(None)
    plan = Plan()
    wanted = {}
    for prop, raw in properties.items():
        field = f"properties.{prop}"
        if prop not in current:
            raise PlanError(field, f"qubes-prefs has no property {prop!r}; properties: {', '.join(sorted(current))}")
        text = canonical_property(field, current[prop].type, raw, prop)
        if current[prop].type == "vm" and text not in (DEFAULT, ""):
            _check_global_target(reader, field, prop, text)
        if prop.startswith("default_pool") and text != DEFAULT and text not in reader.pools:
            raise PlanError(field, f"no storage pool named {text!r}; pools: {', '.join(reader.pools)}")
        wanted[prop] = text
    for prop, text in wanted.items():
        new_shown = changed_to(current[prop], text)
        if new_shown is None:
            continue
        plan.add_property(None, prop, text)
        plan.before[prop] = shown(current[prop])
        plan.after[prop] = new_shown
    return plan


def _check_global_target(reader: Reader, field: str, prop: str, target: str) -> None:
    vms = reader.vms
    if target not in vms:
        raise PlanError(field, f"no qube named {target!r}")
    if prop == "default_template" and vms[target].klass != "TemplateVM":
        raise PlanError(field, f"{target} is {names.article(vms[target].klass)}; default_template needs a TemplateVM")
    if prop == "default_netvm" and reader.props(target).get(
            "provides_network", formats.PropertyValue("False")).value != "True":
        raise PlanError(field, f"{target} does not provide network: set provides_network: true on it first")
    if prop in ("default_dispvm", "management_dispvm") and reader.props(target).get(
            "template_for_dispvms", formats.PropertyValue("False")).value != "True":
        raise PlanError(field, f"{target} cannot be a disposable template: set template_for_dispvms: true on it")


# ---------------------------------------------------------------- firewall


def firewall_specs(params: dict, now: float) -> dict[str, tuple[str, list]]:
    """Validate the firewall module's rules: qube -> (field prefix, [firewall.WantedRule]).

    ``name`` with ``rules``/``policy``/``dns``, or ``qubes`` mapping each
    qube to a dict of those three.  A bad rule names its index and key.
    """
    if params.get("qubes") is not None:
        if not isinstance(params["qubes"], dict) or not params["qubes"]:
            raise PlanError("qubes", "expected a mapping of qube names to {policy, rules, dns}")
        forms = {}
        for name, spec in params["qubes"].items():
            if not isinstance(spec, dict):
                raise PlanError(f"qubes.{name}", f"expected a dict with policy, rules and dns, not {spec!r}")
            unknown = sorted(set(spec) - {"policy", "rules", "dns"})
            if unknown:
                raise PlanError(f"qubes.{name}.{unknown[0]}", "unknown key; a qube's firewall has policy, rules, dns")
            forms[str(name)] = (f"qubes.{name}.", spec)
    else:
        forms = {params["name"]: ("", params)}
    specs = {}
    for name, (prefix, spec) in forms.items():
        rules = spec.get("rules")
        if rules is not None and not isinstance(rules, list):
            raise PlanError(f"{prefix}rules", "expected a list of rule dicts")
        try:
            wanted = firewall.rules_for_policy(spec.get("policy") or "exact", rules, spec.get("dns"), now)
        except firewall.RuleError as exc:
            where = f"{prefix}rules[{exc.index}]" if exc.index is not None else prefix.rstrip(".")
            field = ".".join(part for part in (where, exc.field) if part) or "rules"
            raise PlanError(field, str(exc).removeprefix(f"{exc.field}: ")) from exc
        _check_request_size(f"{prefix}rules", name, [w.rule for w in wanted])
        specs[name] = (prefix, wanted)
    return specs


def _check_request_size(field: str, name: str, rules: list) -> None:
    """Refuse rules that do not fit in one Admin API request (qubesd reads at most 64 KiB)."""
    request = wire.Request("admin.vm.firewall.Set", dest=name, payload=firewall.render_rules(rules).encode())
    size = len(request.encode())
    if size > wire.MAX_REQUEST_SIZE:
        raise PlanError(field, f"{len(rules)} rules for {name} make a request of {size} bytes; qubesd accepts "
                               f"at most {wire.MAX_REQUEST_SIZE}: merge destinations into networks or shorten comments")


def plan_firewall(reader: Reader, specs: dict, check_mode: bool, now: float) -> Plan:
    """Plan the rules of each qube in ``specs`` (from :func:`firewall_specs`): one Set per changed qube."""
    plan = Plan()
    current = {}
    for name, (prefix, _wanted) in specs.items():
        field = prefix.rstrip(".") or "name"
        error = names.vm_name_error(name, reader.release)
        if error:
            raise PlanError(field, error)
        if missing_qube(reader, plan, check_mode, field, name, assumed=", with the default rule (accept everything)"):
            current[name] = ([rule.render() for rule in firewall.DEFAULT_RULES], list(firewall.DEFAULT_RULES))
            continue
        if reader.vms[name].klass == "AdminVM":
            raise PlanError(field, "dom0 has no firewall: rules apply to qubes behind a netvm")
        current[name] = reader.firewall(name)
    rules_after = {}
    for name, (_prefix, wanted) in specs.items():
        lines, parsed = current[name]
        unchanged = parsed is not None and len(parsed) == len(wanted) and all(
            want.matches(rule, now) for want, rule in zip(wanted, parsed))
        rules = parsed if unchanged else [want.rule for want in wanted]
        rules_after[name] = [rule.as_dict() for rule in rules]
        if unchanged:
            continue
        new_lines = [rule.render() for rule in rules]
        if name in reader.vms and "netvm" in reader.props(name) and not reader.props(name)["netvm"].value:
            plan.warnings.append(f"{name} has no netvm: its rules take effect once it gets one")
        plan.before[name], plan.after[name] = lines, new_lines
        plan.add(f"set the firewall of {name}: {_count(len(rules), 'rule', 'rules')} (was {len(lines)})",
                 lambda client, name=name, new_lines=new_lines: client.firewall_set(name, new_lines))
    plan.summary = {"rules": rules_after}
    return plan


# ---------------------------------------------------------------- facts

INFO_SECTIONS = ("properties", "features", "tags", "volumes", "firewall")


def describe_qube(reader: Reader, name: str, sections=INFO_SECTIONS, features_only=None) -> tuple[dict, dict]:
    """(layout, details) of one qube.

    ``layout`` has exactly the qube module's parameters, so it can be pasted
    back as layout data; ``details`` has the power state and every property
    with its type and default flag.  ``features_only`` limits the features
    (and services) read to those names.
    """
    entry = reader.vms[name]
    props = reader.props(name)
    layout: dict = {"class": entry.klass, "state": power_word(entry.state), "label": props["label"].value}
    if "template" in props:
        layout["template"] = props["template"].value
    if "netvm" in props and not props["netvm"].is_default:
        layout["netvm"] = props["netvm"].value
    details: dict = {"power_state": entry.state, "uuid": entry.uuid}
    if "properties" in sections:
        layout["properties"] = {
            prop: value.native for prop, value in props.items()
            if not value.is_default and schema.writable(prop) and prop not in TOP_LEVEL_PROPERTIES
            and prop not in ("installed_by_rpm", "backup_timestamp")}
        details["properties"] = {prop: {"value": value.native, "type": value.type, "default": value.is_default}
                                 for prop, value in props.items()}
    if "features" in sections:
        features = reader.features(name, features_only)
        layout["features"] = {k: v for k, v in features.items() if not k.startswith("service.") and k != CREATED_FEATURE}
        layout["services"] = {k[len("service."):]: v == "1" for k, v in features.items() if k.startswith("service.")}
    if "tags" in sections:
        details["tags"] = reader.tags(name)
        layout["tags"] = [tag for tag in details["tags"] if not tag.startswith(PROTECTED_TAG_PREFIXES)]
    if "volumes" in sections:
        volumes = reader.volumes(name)
        layout["volumes"] = {
            volume: human_size(info.get("size")) for volume, info in volumes.items()
            if volume in ("private", "volatile") or (volume == "root" and entry.klass in schema.OWN_ROOT)}
        details["volumes"] = volumes
    if "firewall" in sections:
        rules = firewall.parse_rules(formats.render_lines(reader.client.firewall_get(name)))
        layout["firewall"] = [rule.as_dict() for rule in rules]
    return layout, details
