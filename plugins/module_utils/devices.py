# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Device assignments of qubes: validate, read, plan (the devices module).

A wanted assignment is a device class (pci, usb, block, mic), a device named
by backend and port (``dom0:00_19.0``), optionally pinned to a device id,
an assignment mode (R4.3: required, auto-attach, ask-to-attach) and options
(``no-strict-reset``, ``permissive`` for PCI; ``read-only``, ``frontend-dev``,
``devtype`` for block devices).  R4.3 speaks ``Assigned`` / ``Assign`` /
``Unassign`` / ``Set.assignment``; R4.2 ``List`` / ``Attach`` with
``persistent=True`` / ``Detach`` / ``Set.persistent``; the release is the
one :attr:`engine.Reader.release` sees.

Every input is checked before the first change: the class, mode and options,
that the qube exists (and is not dom0), that the device is present on its
backend, that no other running qube holds it, and that a PCI device does not
go to a qube set to PVH.  A PCI change on a running qube needs it halted:
with ``shutdown_if_needed`` it is shut down first and started again after.
No Ansible imports.
"""

from __future__ import annotations

import dataclasses

from ansible_collections.corral.qubes.plugins.module_utils import engine, names, wire

CLASSES = ("pci", "usb", "block", "mic")
MODES = ("required", "auto-attach", "ask-to-attach")
DEFAULT_MODE = {"pci": "required", "usb": "auto-attach", "block": "auto-attach", "mic": "auto-attach"}
CLASS_MODES = {"pci": ("required",)}
"""Modes qubesd accepts per class (the others: all of :data:`MODES`)."""
OPTIONS = {
    "pci": ("no-strict-reset", "permissive"),
    "block": ("read-only", "frontend-dev", "devtype"),
    "usb": (),
    "mic": (),
}
DEVICE_KEYS = ("class", "device", "device_id", "mode", "options")
ANY = "*"


@dataclasses.dataclass
class Wanted:
    """One wanted assignment, validated in shape."""

    field: str
    devclass: str
    backend: str
    port: str
    device_id: str | None
    """Pinned device id, ``*`` for any device in the port, None for the one present now."""
    mode: str
    options: dict

    @property
    def key(self) -> tuple[str, str, str]:
        return self.devclass, self.backend, self.port

    @property
    def device(self) -> str:
        return f"{self.backend}:{self.port}"


def split_device(field: str, text, example: str = "dom0:00_19.0 or sys-usb:2-1") -> tuple[str, str]:
    """``BACKEND:PORT`` -> (backend, port), or a PlanError naming ``field``: the one reading of a device's name
    (assignments, attachments and install media)."""
    backend, sep, port = str(text or "").partition(":")
    if (not isinstance(text, str) or not sep or not backend or not port or ":" in port
            or any(ch.isspace() or ch in "+'" for ch in text)):
        raise engine.PlanError(field, f"expected BACKEND:PORT such as {example}, not {text!r}")
    return backend, port


def option_text(field: str, value) -> str:
    """An option's value as qubesd keeps it: booleans as ``True`` / ``False``, else a short text (no quote, no
    space), or a PlanError naming ``field``."""
    if isinstance(value, bool):
        return "True" if value else "False"
    text = str(value) if isinstance(value, (int, str)) else ""
    if not text or "'" in text or any(ch.isspace() for ch in text):
        raise engine.PlanError(field, f"expected a boolean or a short text, not {value!r}")
    return text


def parse_device(field: str, raw) -> Wanted:
    """One entry of a device list: a dict with class, device and optionally device_id, mode, options."""
    if not isinstance(raw, dict):
        raise engine.PlanError(field, f"expected a dict with class and device (such as dom0:00_19.0), not {raw!r}")
    unknown = sorted(set(raw) - set(DEVICE_KEYS))
    if unknown:
        raise engine.PlanError(f"{field}.{unknown[0]}", f"unknown key; a device has {', '.join(DEVICE_KEYS)}")
    devclass = raw.get("class")
    if devclass not in CLASSES:
        raise engine.PlanError(f"{field}.class", f"expected one of {', '.join(CLASSES)}, not {devclass!r}")
    backend, port = split_device(f"{field}.device", raw.get("device"))
    device_id = raw.get("device_id")
    if device_id is not None and (not isinstance(device_id, str) or not device_id or " " in device_id
                                  or "'" in device_id or "+" in device_id):
        raise engine.PlanError(f"{field}.device_id", "expected a device id such as 0x8086:0x1502::p020000, or * "
                                                     f"for any device in the port, not {device_id!r}")
    mode = raw.get("mode") or DEFAULT_MODE[devclass]
    if mode not in MODES:
        raise engine.PlanError(f"{field}.mode", f"expected one of {', '.join(MODES)}, not {mode!r}")
    if mode not in CLASS_MODES.get(devclass, MODES):
        raise engine.PlanError(f"{field}.mode", f"{devclass} devices can only be assigned as "
                                                f"{' or '.join(CLASS_MODES[devclass])}, not {mode!r}")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise engine.PlanError(f"{field}.options", f"expected a dict of options, not {options!r}")
    texts = {}
    for key, value in options.items():
        if key not in OPTIONS[devclass]:
            known = ", ".join(OPTIONS[devclass]) or "none"
            raise engine.PlanError(f"{field}.options.{key}", f"unknown option for {devclass} devices (known: {known})")
        texts[key] = option_text(f"{field}.options.{key}", value)
    return Wanted(field, devclass, backend, port, device_id, mode, dict(sorted(texts.items())))


QUBE_ENTRY_KEYS = ("devices", "shutdown_if_needed")
"""The keys of a qube's entry in ``qubes`` when it is a mapping rather than the list of its devices."""


def _qube_entry(name: str, entry) -> tuple[str, object, bool | None]:
    """One value of ``qubes``: (field of its devices, its devices as given, its own shutdown_if_needed or None)."""
    if not isinstance(entry, dict):
        return f"qubes.{name}", entry if entry is not None else [], None
    unknown = sorted(str(key) for key in entry if key not in QUBE_ENTRY_KEYS)
    if unknown:
        raise engine.PlanError(f"qubes.{name}.{unknown[0]}", "expected the list of the qube's devices, or a mapping "
                                                             f"with {' and '.join(QUBE_ENTRY_KEYS)}")
    shutdown = entry.get("shutdown_if_needed")
    if shutdown is not None and not isinstance(shutdown, bool):
        raise engine.PlanError(f"qubes.{name}.shutdown_if_needed", f"expected true or false, not {shutdown!r}")
    devs = entry.get("devices")
    return f"qubes.{name}.devices", devs if devs is not None else [], shutdown


def device_specs(params: dict) -> dict[str, tuple[str, list[Wanted], bool | None]]:
    """Validate the module's devices: qube -> (field prefix, [Wanted], its own shutdown_if_needed or None);
    ``name`` + ``devices``, or ``qubes`` (each qube's list of devices, or a mapping with devices and
    shutdown_if_needed)."""
    qubes = params.get("qubes")
    if qubes is not None and (params.get("name") is not None or params.get("devices") is not None):
        raise engine.PlanError("qubes", "give either qubes (several qubes) or name with devices (one qube), not both")
    if qubes is None:
        if not params.get("name"):
            raise engine.PlanError("name", "name the qube (or give qubes: a mapping of qubes to their devices)")
        forms = {params["name"]: ("devices", params.get("devices") or [], None)}
    else:
        if not isinstance(qubes, dict) or not qubes:
            raise engine.PlanError("qubes", "expected a mapping of qube names to lists of devices")
        forms = {str(name): _qube_entry(str(name), entry) for name, entry in qubes.items()}
    specs = {}
    for name, (field, raw, shutdown) in forms.items():
        if not isinstance(raw, list):
            raise engine.PlanError(field, f"expected a list of devices, not {raw!r}")
        wanted = [parse_device(f"{field}[{index}]", item) for index, item in enumerate(raw)]
        seen = {}
        for want in wanted:
            if want.key in seen:
                raise engine.PlanError(want.field, f"{want.devclass} device {want.device} is listed twice "
                                                   f"(also {seen[want.key]})")
            seen[want.key] = want.field
        specs[name] = (field, wanted, shutdown)
    return specs


# ---------------------------------------------------------------- current state


class DeviceReader:
    """Device reads of one dom0, each call once: what backends expose and what qubes have assigned."""

    def __init__(self, reader: engine.Reader):
        self.reader = reader
        self.client = reader.client
        self._available: dict = {}
        self._assigned: dict = {}

    @property
    def r42(self) -> bool:
        return self.reader.release == "4.2"

    def available(self, backend: str, devclass: str) -> dict[str, str]:
        """Port -> device id of what ``backend`` exposes (R4.2: ``*``, it has no device ids)."""
        if (backend, devclass) not in self._available:
            ports = {}
            for head, fields in self.client.device_available(backend, devclass):
                port, _sep, device_id = head.partition(":")
                ports[port] = ANY if self.r42 else fields.get("device_id", device_id)
            self._available[backend, devclass] = ports
        return self._available[backend, devclass]

    def assigned(self, vm: str, devclass: str) -> list[dict]:
        """Assignments of ``vm``: {backend, port, device_id, mode, options, persistent} (R4.2: also attachments)."""
        if (vm, devclass) not in self._assigned:
            out = []
            if self.r42:
                for item in self.client.device_list(vm, devclass):
                    out.append({"backend": item["backend_domain"], "port": item["port_id"], "device_id": ANY,
                                "mode": DEFAULT_MODE[devclass], "options": dict(sorted(item["options"].items())),
                                "persistent": item["persistent"]})
            else:
                for item in self.client.device_assigned(vm, devclass):
                    options = {key[1:]: value for key, value in item.items() if key.startswith("_")}
                    out.append({"backend": item["backend_domain"], "port": item["port_id"],
                                "device_id": item.get("device_id", ANY), "mode": item.get("mode", "auto-attach"),
                                "options": dict(sorted(options.items())), "persistent": True})
            self._assigned[vm, devclass] = out
        return self._assigned[vm, devclass]


def shown(devclass: str, item: dict) -> dict:
    """An assignment as the diff and the result show it."""
    out = {"class": devclass, "device": f"{item['backend']}:{item['port']}", "device_id": item["device_id"],
           "mode": item["mode"]}
    if item["options"]:
        out["options"] = dict(item["options"])
    return out


# ---------------------------------------------------------------- planning


class DevicePlanner:
    """Plans the assignments of every qube of one task."""

    def __init__(self, reader: engine.Reader, specs: dict, params: dict, check_mode: bool):
        self.reader = reader
        self.devices = DeviceReader(reader)
        self.specs = specs
        self.strict = params.get("strict", True)
        self.classes = list(params.get("classes") or CLASSES)
        self.shutdown_if_needed = bool(params.get("shutdown_if_needed"))
        self.check_mode = check_mode
        self.plan = engine.Plan()
        self.after: dict = {}

    def build(self) -> engine.Plan:
        """The whole plan; PlanError before anything changes."""
        unknown = [devclass for devclass in self.classes if devclass not in CLASSES]
        if unknown:
            raise engine.PlanError("classes", f"expected classes among {', '.join(CLASSES)}, not {unknown[0]!r}")
        release = self.reader.release
        present = {}
        for name, (field, wanted, _shutdown) in self.specs.items():
            error = names.vm_name_error(name, release)
            where = "name" if field == "devices" else f"qubes.{name}"
            if error:
                raise engine.PlanError(where, error)
            if engine.missing_qube(self.reader, self.plan, self.check_mode, where, name,
                                   assumed=", with no devices"):
                self.after[name] = [shown(w.devclass, self._planned_item(w, None)) for w in wanted]
                continue
            if self.reader.vms[name].klass == "AdminVM":
                raise engine.PlanError(where, "dom0 keeps the devices it does not give away; "
                                              "assign them to qubes")
            present[name] = (field, wanted)
        if self.devices.r42:
            for _field, wanted in present.values():
                for want in wanted:
                    if want.mode != DEFAULT_MODE[want.devclass]:
                        raise engine.PlanError(f"{want.field}.mode", "Qubes R4.2 has no assignment modes (an "
                                               f"assignment is persistent): leave mode out, not {want.mode!r}")
                    if want.device_id not in (None, ANY):
                        raise engine.PlanError(f"{want.field}.device_id", "Qubes R4.2 names devices by port only: "
                                               "leave device_id out")
        outside = sorted({w.devclass for _f, wanted in present.values() for w in wanted} - set(self.classes))
        if outside and self.strict:
            raise engine.PlanError("classes", f"{outside[0]} devices are listed but {outside[0]} is not among the "
                                              "managed classes")
        for name, (field, wanted) in present.items():
            self._plan_qube(name, field, wanted)
        return self.plan

    # -- one qube ----------------------------------------------------------------

    def _resolve(self, want: Wanted) -> str:
        """The device id to assign (checks that the device is there, unless pinned on a backend that is off)."""
        backend = want.backend
        if backend not in self.reader.vms:
            if engine.missing_qube(self.reader, self.plan, self.check_mode, f"{want.field}.device", backend,
                                   assumed=", exposing the device"):
                return want.device_id or ANY
        running = backend in self.reader.vms and self.reader.power(backend) == "running"
        if not running and want.device_id is not None and backend != "dom0":
            return want.device_id  # a qube that is off exposes nothing; a pinned id is taken as given
        ports = self.devices.available(backend, want.devclass) if running or backend == "dom0" else {}
        if want.port not in ports:
            offered = ", ".join(f"{backend}:{port}" for port in sorted(ports)) or "none"
            state = ""
            if not running and backend != "dom0":
                state = f" ({backend} is not running: give device_id to assign a device it exposes when it runs)"
            raise engine.PlanError(f"{want.field}.device", f"{backend} has no {want.devclass} device {want.port}"
                                                           f"{state}; present: {offered}")
        present = ports[want.port]
        if want.device_id in (None, ANY) or self.devices.r42:
            return want.device_id or present
        if want.device_id != present:
            raise engine.PlanError(f"{want.field}.device_id", f"{want.device} holds device {present}, not "
                                                              f"{want.device_id}")
        return want.device_id

    def _planned_item(self, want: Wanted, device_id: str | None) -> dict:
        return {"backend": want.backend, "port": want.port, "device_id": device_id or want.device_id or ANY,
                "mode": want.mode, "options": dict(want.options)}

    def _check_target(self, name: str, want: Wanted) -> None:
        if want.devclass != "pci":
            return
        props = self.reader.props(name)
        virt = props.get("virt_mode")
        if virt is not None and virt.value == "pvh" and not virt.is_default:
            raise engine.PlanError(f"{want.field}.device", f"{name} is set to virt_mode pvh, which cannot take PCI "
                                                           "devices: set its virt_mode to hvm (corral.qubes.qube)")

    def _holders(self, name: str, want: Wanted) -> list[str]:
        """Other running qubes that have this device assigned (or, on R4.2, attached)."""
        holders = []
        for other, entry in self.reader.vms.items():
            if other == name or entry.klass == "AdminVM" or self.reader.power(other) == "halted":
                continue
            if any(item["backend"] == want.backend and item["port"] == want.port
                   for item in self.devices.assigned(other, want.devclass)):
                holders.append(other)
        return holders

    def _plan_qube(self, name: str, field: str, wanted: list[Wanted]) -> None:
        power = self.reader.power(name)
        by_key = {want.key: want for want in wanted}
        classes = [devclass for devclass in self.classes if self.strict or any(w.devclass == devclass for w in wanted)]
        current = {devclass: self.devices.assigned(name, devclass) for devclass in classes}
        before_list, after_list, steps = [], [], []
        for devclass in classes:
            # R4.2 lists attachments too: only persistent ones are assignments (others matter if wanted)
            current[devclass] = [item for item in current[devclass]
                                 if item["persistent"] or (devclass, item["backend"], item["port"]) in by_key]
            for item in current[devclass]:
                if item["persistent"]:
                    before_list.append(shown(devclass, item))
        for devclass in classes:
            items = current[devclass]
            for item in items:
                key = (devclass, item["backend"], item["port"])
                if key not in by_key:
                    if self.strict:
                        steps.append(("remove", devclass, item, None))
                    else:
                        after_list.append(shown(devclass, item))
            for want in (w for w in wanted if w.devclass == devclass):
                match = next((item for item in items if (item["backend"], item["port"]) == (want.backend, want.port)),
                             None)
                if match is not None and self._same(want, match):
                    if not match["persistent"]:
                        steps.append(("persist", devclass, match, want))
                    after_list.append(shown(devclass, dict(match, persistent=True)))
                    continue
                self._check_target(name, want)
                device_id = self._resolve(want)
                new = self._planned_item(want, device_id)
                if match is None:
                    others = self._holders(name, want)
                    if others and power != "halted":
                        raise engine.PlanError(f"{want.field}.device", f"{want.devclass} device {want.device} is "
                                                                       f"assigned to running {', '.join(others)}; "
                                                                       f"{name} is running too: a device serves one "
                                                                       "running qube")
                    steps.append(("add", devclass, new, want))
                elif (match["device_id"], match["options"]) == (new["device_id"], new["options"]) \
                        or (self.devices.r42 and match["options"] == new["options"]):
                    steps.append(("mode", devclass, new, want))
                else:
                    steps.append(("replace", devclass, new, match))
                after_list.append(shown(devclass, new))
        self.after[name] = after_list
        if not steps:
            return
        self._check_running_conflicts(name, wanted, power)
        needs_halt = [step for step in steps if step[1] == "pci" and step[0] != "persist"]
        restore = None
        if needs_halt and power != "halted":
            own = self.specs[name][2]
            if not (self.shutdown_if_needed if own is None else own):
                where = "shutdown_if_needed" if own is None else f"qubes.{name}.shutdown_if_needed"
                raise engine.PlanError(where, f"changing the PCI devices of {name} needs it halted and it is {power}: "
                                              "set shutdown_if_needed: true (it is started again afterwards) or halt "
                                              "it first")
            restore = engine.plan_stop_and_start(self.reader, self.plan, name, self.check_mode)
        for kind, devclass, item, other in steps:
            self._add_step(name, kind, devclass, item, other)
        if restore is not None:
            restore()
        self.plan.before[name] = before_list
        self.plan.after[name] = after_list

    def _check_running_conflicts(self, name: str, wanted: list[Wanted], power: str) -> None:
        """Two qubes of this task that both run may not want the same device."""
        if power == "halted":
            return
        for other, (_field, other_wanted, _shutdown) in self.specs.items():
            if other == name or other not in self.reader.vms or self.reader.power(other) == "halted":
                continue
            for want in wanted:
                if any(o.key == want.key for o in other_wanted):
                    raise engine.PlanError(want.field + ".device", f"{want.devclass} device {want.device} is wanted "
                                                                   f"by running {name} and {other}: a device serves "
                                                                   "one running qube")

    def _same(self, want: Wanted, item: dict) -> bool:
        if item["options"] != want.options:
            return False
        if self.devices.r42:
            return True
        if want.mode != item["mode"]:
            return False
        return want.device_id is None or want.device_id == item["device_id"]

    def _add_step(self, name: str, kind: str, devclass: str, item: dict, other) -> None:
        backend, port, device_id = item["backend"], item["port"], item["device_id"]
        label = f"{devclass} device {backend}:{port}"
        if self.devices.r42:
            if kind in ("remove", "replace"):
                old = item if kind == "remove" else other
                self.plan.add(f"unassign {label} from {name}",
                              lambda c, o=old: c.device_detach(name, devclass, o["backend"], o["port"]))
            if kind == "persist":
                self.plan.add(f"make the attachment of {label} to {name} persistent",
                              lambda c: c.device_set_persistent(name, devclass, backend, port, True))
            elif kind in ("add", "replace", "mode"):
                if kind == "mode":
                    return
                opts = dict(item["options"])
                self.plan.add(f"assign {label} to {name}" + _opts_text(opts),
                              lambda c: c.device_attach(name, devclass, backend, port, opts, True))
            return
        if kind in ("remove", "replace"):
            old = item if kind == "remove" else other
            self.plan.add(f"unassign {devclass} device {old['backend']}:{old['port']} from {name}",
                          lambda c, o=old: c.device_unassign(name, devclass, o["backend"], o["port"], o["device_id"]))
        if kind in ("add", "replace"):
            mode, opts = item["mode"], dict(item["options"])
            self.plan.add(f"assign {label} ({device_id}) to {name} as {mode}" + _opts_text(opts),
                          lambda c: c.device_assign(name, devclass, backend, port, device_id, mode, opts))
        elif kind == "mode":
            mode = item["mode"]
            self.plan.add(f"set the assignment of {label} to {name} to {mode}",
                          lambda c: c.device_set_assignment(name, devclass, backend, port, device_id, mode))


def _opts_text(options: dict) -> str:
    return f" with {', '.join(f'{k}={v}' for k, v in options.items())}" if options else ""


def plan_devices(reader: engine.Reader, params: dict, check_mode: bool = False) -> engine.Plan:
    """Validate the devices module's parameters and plan them; the plan's summary holds every qube's devices."""
    planner = DevicePlanner(reader, device_specs(params), params, check_mode)
    try:
        plan = planner.build()
    except wire.QubesException as exc:
        raise engine.PlanError("name", f"reading the devices failed: {type(exc).__name__}: {exc}") from exc
    plan.summary = {"devices": planner.after}
    return plan
