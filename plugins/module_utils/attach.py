# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A block device attached to a running qube now, or detached (the attach module).

What ``qvm-block attach [--ro] [-o frontend-dev=xvdi] FRONTEND BACKEND:PORT``
does: the attachment lasts until the frontend stops; nothing is assigned.
R4.3 speaks ``Attached`` / ``Attach`` (the assignment's serialization with
mode ``manual``, the device id ``Available`` shows for the port) / ``Detach``;
R4.2 ``List`` (lines with ``persistent=no`` are attachments) / ``Attach``
with ``k=v`` options and no ``persistent=True`` / ``Detach``.  The release is
the one :attr:`engine.Reader.release` sees.

Every input is checked before the first change: the device's form, the
options, that the frontend exists and runs, that the backend runs and
exposes the port, that no other running qube has the device attached.  A
port attached to the frontend with other options is refused (detach it
first): a disk in use is never pulled from under a running qube behind the
user's back.  No Ansible imports.
"""

from __future__ import annotations

import re

from ansible_collections.corral.qubes.plugins.module_utils import devices, engine, names

CLASSES = ("block",)
"""The classes this module attaches (block devices: the only class the collection attaches today)."""
STATES = ("attached", "detached")
OPTIONS = {"block": devices.OPTIONS["block"]}
DEVTYPES = ("disk", "cdrom")
OWN_DISKS = ("xvda", "xvdb", "xvdc", "xvdd")
"""The frontend names a qube's own volumes take (root, private, volatile, kernel modules)."""
FRONTEND_DEV = re.compile(r"^xvd[a-z]{1,2}$")

ARGUMENT_SPEC = dict(  # the module's, also in tasks.ARGUMENT_SPECS
    name={"type": "str", "required": True},
    device={"type": "str", "required": True},
    options={"type": "dict", "default": {}},
    state={"type": "str", "default": "attached", "choices": list(STATES)},
    qubesd_socket={"type": "path"},
    **{"class": {"type": "str", "default": "block", "choices": list(CLASSES)}},
)


def parse_device(text) -> tuple[str, str]:
    """``BACKEND:PORT`` -> (backend, port), or a PlanError naming ``device``."""
    return devices.split_device("device", text, "sys-usb:sda or untrusted:loop0")


def parse_options(devclass: str, raw) -> dict[str, str]:
    """The options as qubesd keeps them (booleans as ``True`` / ``False``), each checked."""
    if not isinstance(raw, dict):
        raise engine.PlanError("options", f"expected a dict of options, not {raw!r}")
    texts = {}
    for key, value in raw.items():
        field = f"options.{key}"
        if key not in OPTIONS[devclass]:
            raise engine.PlanError(field, f"unknown option for {devclass} devices (known: "
                                          f"{', '.join(OPTIONS[devclass])})")
        text = devices.option_text(field, value)
        if key == "read-only" and text not in ("True", "False"):
            raise engine.PlanError(field, f"expected true or false, not {value!r}")
        if key == "devtype" and text not in DEVTYPES:
            raise engine.PlanError(field, f"expected one of {', '.join(DEVTYPES)}, not {value!r}")
        if key == "frontend-dev":
            if not FRONTEND_DEV.match(text):
                raise engine.PlanError(field, f"expected a Xen disk name such as xvdi, not {value!r}")
            if text in OWN_DISKS:
                raise engine.PlanError(field, f"{text} is one of the qube's own volumes ({', '.join(OWN_DISKS)} are "
                                              "root, private, volatile and modules): choose xvdi or later")
        texts[key] = text
    return dict(sorted(texts.items()))


def shown(item: dict) -> str:
    """An attachment as the diff and the result show it: ``BACKEND:PORT (opt=val, ...)``."""
    words = [] if item["manual"] else [f"assigned{' ' + item['mode'] if item['mode'] else ''}"]
    words += [f"{key}={value}" for key, value in item["options"].items()]
    return f"{item['backend']}:{item['port']}" + (f" ({', '.join(words)})" if words else "")


class Attacher:
    """Plans one task: the attachment of one device to one frontend."""

    def __init__(self, reader: engine.Reader, params: dict):
        self.reader = reader
        self.client = reader.client
        self.params = params
        self.name = params["name"]
        self.devclass = params.get("class") or "block"
        self.plan = engine.Plan()

    @property
    def r42(self) -> bool:
        return self.reader.release == "4.2"

    def attached(self, vm: str) -> list[dict]:
        """What is attached to ``vm`` now: {backend, port, device_id, mode, options, manual}."""
        out = []
        if self.r42:
            for item in self.client.device_list(vm, self.devclass):
                out.append({"backend": item["backend_domain"], "port": item["port_id"], "device_id": devices.ANY,
                            "mode": "", "options": dict(sorted(item["options"].items())),
                            "manual": not item["persistent"]})
        else:
            for item in self.client.device_attached(vm, self.devclass):
                options = {key[1:]: value for key, value in item.items() if key.startswith("_")}
                mode = item.get("mode", "manual")
                out.append({"backend": item["backend_domain"], "port": item["port_id"],
                            "device_id": item.get("device_id", devices.ANY), "mode": mode,
                            "options": dict(sorted(options.items())), "manual": mode == "manual"})
        return out

    def build(self) -> engine.Plan:
        """The plan (at most one step); PlanError before anything changes."""
        if self.devclass not in CLASSES:
            raise engine.PlanError("class", f"expected one of {', '.join(CLASSES)}, not {self.devclass!r}")
        backend, port = parse_device(self.params.get("device"))
        state = self.params.get("state") or "attached"
        options = parse_options(self.devclass, self.params.get("options") or {}) if state == "attached" else {}
        release = self.reader.release
        for field, qube in (("name", self.name), ("device", backend)):
            error = names.vm_name_error(qube, release)
            if error:
                raise engine.PlanError(field, error)
        # a missing qube is an error in check mode too: what this module attaches to must run now
        engine.missing_qube(self.reader, self.plan, False, "name", self.name)
        if self.reader.vms[self.name].klass == "AdminVM":
            raise engine.PlanError("name", "dom0 is not a frontend this module attaches to; attach devices to qubes")
        if backend == self.name:
            raise engine.PlanError("device", f"{self.device(backend, port)} is {self.name}'s own device: a qube does "
                                             "not attach its own devices")
        engine.missing_qube(self.reader, self.plan, False, "device", backend, hint=" (the backend of the device)")
        power = self.reader.power(self.name)
        if state == "detached":
            self._plan_detach(backend, port, power)
        else:
            self._plan_attach(backend, port, options, power)
        return self.plan

    @staticmethod
    def device(backend: str, port: str) -> str:
        return f"{backend}:{port}"

    def _plan_detach(self, backend: str, port: str, power: str) -> None:
        current = self.attached(self.name) if power != "halted" else []
        before = [shown(item) for item in current]
        self.plan.summary = {"release": self.reader.release, "attached_before": before, "attached_after": before}
        match = self._find(current, backend, port)
        if match is None:
            return
        if not match["manual"]:
            raise engine.PlanError("device", f"{self.device(backend, port)} is attached to {self.name} because it is "
                                             f"assigned ({shown(match)}): unassign it with corral.qubes.devices; "
                                             "this module detaches only what was attached for now")
        after = [shown(item) for item in current if item is not match]
        device_id = None if self.r42 else match["device_id"]
        devclass = self.devclass
        self.plan.add(f"detach {devclass} device {self.device(backend, port)} from {self.name}",
                      lambda c: c.device_detach(self.name, devclass, backend, port, device_id))
        self.plan.before[self.name] = before
        self.plan.after[self.name] = after
        self.plan.summary["attached_after"] = after

    def _plan_attach(self, backend: str, port: str, options: dict, power: str) -> None:
        devclass, device = self.devclass, self.device(backend, port)
        if power != "running":
            raise engine.PlanError("name", f"{self.name} is {power}: attach needs it running; to attach at every "
                                           "start use corral.qubes.devices")
        current = self.attached(self.name)
        before = [shown(item) for item in current]
        self.plan.summary = {"release": self.reader.release, "attached_before": before, "attached_after": before}
        match = self._find(current, backend, port)
        if match is not None:
            if match["options"] == options:
                return
            how = "assigned, " if not match["manual"] else ""
            raise engine.PlanError("options", f"{device} is attached to {self.name} ({how}with "
                                              f"{_options_text(match['options']) or 'no options'}), not with "
                                              f"{_options_text(options) or 'no options'}: detach it first (state: "
                                              "detached), then attach it again; this module does not pull a disk "
                                              "that may be in use from a running qube on its own")
        if backend != "dom0" and self.reader.power(backend) != "running":
            raise engine.PlanError("device", f"{backend} is {self.reader.power(backend)}: a qube exposes its block "
                                             "devices only while it runs; start it first")
        exposed = devices.DeviceReader(self.reader).available(backend, devclass)
        if port not in exposed:
            offered = ", ".join(self.device(backend, p) for p in sorted(exposed)) or "none"
            raise engine.PlanError("device", f"{backend} exposes no {devclass} device {port}; it exposes: {offered}")
        holders = self._holders(backend, port)
        if holders:
            raise engine.PlanError("device", f"{device} is attached to running {', '.join(holders)}: a device serves "
                                             "one running qube (qubesd refuses it); detach it there first")
        device_id = exposed[port]
        after = before + [shown({"backend": backend, "port": port, "mode": "manual", "options": options,
                                 "manual": True})]
        name = self.name
        if self.r42:
            self.plan.add(f"attach {devclass} device {device} to {name}" + _with(options),
                          lambda c: c.device_attach(name, devclass, backend, port, options, persistent=False))
        else:
            self.plan.add(f"attach {devclass} device {device} ({device_id}) to {name}" + _with(options),
                          lambda c: c.device_attach_now(name, devclass, backend, port, device_id, options))
        self.plan.before[name] = before
        self.plan.after[name] = after
        self.plan.summary["attached_after"] = after

    @staticmethod
    def _find(items: list[dict], backend: str, port: str) -> dict | None:
        return next((item for item in items if (item["backend"], item["port"]) == (backend, port)), None)

    def _holders(self, backend: str, port: str) -> list[str]:
        """Other running qubes that have this device attached."""
        holders = []
        for other, entry in sorted(self.reader.vms.items()):
            if other == self.name or entry.klass == "AdminVM" or self.reader.power(other) == "halted":
                continue
            if self._find(self.attached(other), backend, port) is not None:
                holders.append(other)
        return holders


def _options_text(options: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in options.items())


def _with(options: dict) -> str:
    return f" with {_options_text(options)}" if options else ""


def plan_attach(reader: engine.Reader, params: dict) -> engine.Plan:
    """Validate the attach module's parameters and plan them (check mode plans the same: it only reads).

    The plan's summary holds the release and the frontend's attachments of the class before and after.
    """
    return Attacher(reader, params).build()
