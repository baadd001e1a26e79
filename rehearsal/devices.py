# SPDX-License-Identifier: GPL-3.0-or-later
"""Device methods of the rehearsal dom0: listing, assignment, attachment.

R4.3 speaks the new device API (``Available``, ``Assigned``, ``Attached``,
``Assign``, ``Unassign``, ``Attach``, ``Detach``, ``Set.assignment``) with
``key='value'`` serializations; R4.2 the old one (``Available``, ``List``,
``Attach``/``Detach`` with ``persistent=True`` for assignments,
``Set.persistent``).  An assignment is kept per qube as
``{backend, port_id, device_id, mode, options}``.  Only dom0 exposes devices
here: the host's PCI devices.
"""

from __future__ import annotations

from ansible_collections.corral.qubes.plugins.module_utils import formats, wire

from rehearsal.registry import DEVICE_CLASSES, Call, PermissionDenied, ProtocolError, method

MODES = ("required", "auto-attach", "ask-to-attach")
SUPPORTED_MODES = {"pci": ("required",)}
"""Assignment modes per class (others: all of MODES)."""


def _devclass(call: Call) -> str:
    return call.request.method.split(".")[3]


def _parse_arg(call: Call) -> tuple[str, str, str]:
    """``backend+port[+device_id with ':' as '+']`` -> (backend, port, device_id); ``_`` is ``*``."""
    backend, _sep, rest = call.arg.partition("+")
    port, _sep, device = rest.partition("+")
    if not backend or not port:
        raise ProtocolError("device argument needs backend+port")
    call.dom0.state.domains[backend]  # pylint: disable=expression-not-assigned  # KeyError: empty reply
    device = device.replace("+", ":") if device else "*"
    return backend, "*" if port == "_" else port, "*" if device == "_" else device


def exposed(call: Call, backend: str, devclass: str) -> dict[str, dict]:
    """Devices a backend exposes: port -> {device_id, description}."""
    if backend == "dom0" and devclass == "pci":
        return call.dom0.state.pci_devices
    if devclass == "block" and backend != "dom0":
        return block_devices(call.dom0, backend)
    return {}


def block_devices(dom0, backend: str) -> dict[str, dict]:
    """The block devices a running qube exposes: its loop devices (files set up with ``losetup``), when it runs a root."""
    qube = dom0.state.domains.get(backend)
    if qube is None or not qube.is_running:
        return {}
    for runner in dom0.backends:
        if hasattr(runner, "block_devices"):
            return runner.block_devices(backend)
    return {}


def _id_matches(arg_id: str, device_id: str) -> bool:
    """A device id from a qrexec argument (``_`` stands for a character it cannot hold, such as ``*``)."""
    return arg_id in ("*", device_id) or (len(arg_id) == len(device_id) and all(
        a in ("_", d) for a, d in zip(arg_id, device_id)))


def _matches(item: dict, backend: str, port: str, device: str) -> bool:
    return item["backend"] == backend and port in ("*", item["port_id"]) and _id_matches(device, item["device_id"])


def _serialization(call: Call, item: dict, mode: str) -> str:
    items = [("device_id", item["device_id"]), ("port_id", item["port_id"]), ("devclass", _devclass(call)),
             ("backend_domain", item["backend"]), ("mode", mode), ("frontend_domain", call.dest.name)]
    items += [(f"_{key}", value) for key, value in sorted(item.get("options", {}).items())]
    return formats.render_device_properties(items)


def _filtered(call: Call, items):
    """Assignments matching the optional ``backend+port`` argument, sorted."""
    wanted = None
    if call.arg:
        backend, port, _device = _parse_arg(call)
        wanted = (backend, port)
    for item in sorted(items, key=lambda a: (a["backend"], a["port_id"])):
        if wanted is None or wanted == (item["backend"], item["port_id"]):
            yield item


def _lines(call: Call, items, mode_of) -> str:
    return "".join(f"{item['backend']}+{item['port_id']}:{item['device_id']} {_serialization(call, item, mode_of(item))}\n"
                   for item in _filtered(call, items))


def attached_items(call: Call) -> list[dict]:
    """What is attached now: the automatic assignments and manual attachments of a running qube."""
    if not call.dest.is_running:
        return []
    devclass = _devclass(call)
    return list(call.dest.devices.get(devclass, [])) + list(call.dest.attached.get(devclass, []))


DEVICE_TEXT_FIELDS = ("product", "vendor", "manufacturer", "name", "serial")
"""What a device says about itself; qubesd sends only those that are known (not ``unknown``)."""
UNKNOWN_INTERFACE = "?******"


def device_info_items(devclass: str, backend: str, port: str, info: dict) -> list[tuple[str, str]]:
    """The ``key='value'`` fields of a device in R4.3's ``Available``, in qubesd's order.

    First the virtual device (device_id, port_id, devclass, backend_domain),
    then the known text fields, the interfaces (7 characters each; ``?******``
    when none is known), the parent device of a sub-device (a partition, a
    USB interface) and the class's extra data as ``_key`` (``_sbdf`` of PCI).
    """
    items = [("device_id", info.get("device_id") or "0000:0000::" + UNKNOWN_INTERFACE), ("port_id", port),
             ("devclass", devclass), ("backend_domain", backend)]
    items += [(key, info[key]) for key in DEVICE_TEXT_FIELDS if info.get(key) not in (None, "", "unknown")]
    items.append(("interfaces", info.get("interfaces") or UNKNOWN_INTERFACE))
    if info.get("parent"):
        parent_class, _sep, parent_port = info["parent"].partition(":")
        items += [("parent_port_id", parent_port), ("parent_devclass", parent_class)]
    if devclass == "pci" and info.get("sbdf"):
        items.append(("_sbdf", info["sbdf"]))
    return items


@method("admin.vm.device.*.Available", arg="optional")
def device_available(call: Call):
    """Devices this qube exposes (only dom0's PCI devices here).

    R4.3: ``<port>:<device_id> <serialization>`` (see :func:`device_info_items`);
    R4.2: ``<port> description=<class>: <vendor> <product>``.
    """
    devclass = _devclass(call)
    lines = []
    for port, info in sorted(exposed(call, call.dest.name, devclass).items()):
        if call.arg and call.arg != port:
            continue
        if call.dom0.release == "4.2":
            lines.append(f"{port} description={info['description']}\n")
        else:
            items = device_info_items(devclass, call.dest.name, port, info)
            lines.append(f"{port}:{items[0][1]} {formats.render_device_properties(items)}\n")
    return "".join(lines)


@method("admin.vm.device.*.Assigned", arg="optional", releases=("4.3",))
def device_assigned(call: Call):
    """Persistent assignments of this qube."""
    return _lines(call, call.dest.devices.get(_devclass(call), []), lambda item: item["mode"])


@method("admin.vm.device.*.Attached", arg="optional", releases=("4.3",))
def device_attached(call: Call):
    """Devices attached now (manual attachments have mode 'manual')."""
    return _lines(call, attached_items(call), lambda item: item.get("mode", "manual"))


def _check_payload(call: Call, backend: str, port: str, device: str) -> dict:
    """The assignment a payload describes, checked against the argument (qubesd's deserialize)."""
    props = formats.parse_device_properties(call.payload.decode("ascii"))  # errors: empty reply
    devclass = _devclass(call)
    if props.get("backend_domain", backend) != backend:
        raise wire.QubesException(f"Got device exposed by {props['backend_domain']}when expected devices from {backend}.")
    if props.get("port_id", port) != port:
        raise wire.QubesException(f"Got device with id: {props['port_id']} when expected id: {port}.")
    if props.get("devclass", devclass) != devclass:
        raise wire.QubesException(f"Got {props['devclass']} device when expected {devclass}.")
    device_id = props.get("device_id", device)
    if not _id_matches(device, device_id):
        raise wire.QubesException(f"Got device with id: {device_id} when expected id: {device}.")
    mode = props.get("mode", "auto-attach")
    if mode not in MODES + ("manual",):
        raise ValueError(f"unknown assignment mode {mode!r}")
    options = {key[1:]: value for key, value in props.items() if key.startswith("_")}
    return {"backend": backend, "port_id": port, "device_id": device_id, "mode": mode, "options": options}


def _check_mode(devclass: str, mode: str) -> None:
    allowed = SUPPORTED_MODES.get(devclass, MODES)
    if mode not in allowed:
        raise wire.QubesValueError(
            f"{devclass} devices cannot be assigned in '{mode}' mode; allowed modes: {', '.join(sorted(allowed))}.")


@method("admin.vm.device.*.Assign", arg="required", payload=True, write=True, releases=("4.3",))
def device_assign(call: Call):
    """Assign a device (persistent): it attaches when the qube starts."""
    backend, port, device = _parse_arg(call)
    devclass = _devclass(call)
    item = _check_payload(call, backend, port, device)
    assigned = call.dest.devices.setdefault(devclass, [])
    if any(_matches(a, backend, port, item["device_id"]) for a in assigned):
        raise wire.DeviceAlreadyAssigned(f"{devclass} device {backend}:{port} already assigned to {call.dest.name}")
    if item["mode"] == "manual":
        raise ValueError("Only auto-attachable devices can be assigned.")
    _check_mode(devclass, item["mode"])
    if devclass == "pci" and call.dest.props.get("virt_mode") == "pvh":
        raise wire.QubesException("Can't attach PCI device to VM in pvh mode")
    assigned.append(item)
    call.dom0.fire(call.dest, f"device-assign:{devclass}", device=f"{backend}:{port}")


@method("admin.vm.device.*.Unassign", arg="required", write=True, releases=("4.3",))
def device_unassign(call: Call):
    """Remove an assignment."""
    backend, port, device = _parse_arg(call)
    devclass = _devclass(call)
    assigned = call.dest.devices.get(devclass, [])
    for item in assigned:
        if _matches(item, backend, port, device):
            assigned.remove(item)
            call.dom0.fire(call.dest, f"device-unassign:{devclass}", device=f"{backend}:{port}")
            return
    raise wire.DeviceNotAssigned(f"{devclass} device {backend}:{port} not assigned to {call.dest.name}")


@method("admin.vm.device.*.Set.assignment", arg="required", payload=True, write=True, releases=("4.3",))
def device_set_assignment(call: Call):
    """Change the mode of an assignment."""
    mode = call.payload.decode("ascii", "replace")
    if mode not in MODES:
        raise PermissionDenied("invalid assignment mode")
    backend, port, device = _parse_arg(call)
    devclass = _devclass(call)
    _check_mode(devclass, mode)
    for item in call.dest.devices.get(devclass, []):
        if _matches(item, backend, port, device):
            item["mode"] = mode
            call.dom0.fire(call.dest, f"device-assignment-changed:{devclass}", device=f"{backend}:{port}")
            return
    raise wire.QubesValueError(f"Device {backend}:{port} not assigned to {call.dest.name}")


def _attach(call: Call, item: dict) -> None:
    devclass = _devclass(call)
    if call.dest.is_halted:
        raise wire.QubesVMNotRunningError("VM not running, cannot attach device, do you mean `assign`?")
    info = exposed(call, item["backend"], devclass).get(item["port_id"])
    if info is None or item["device_id"] not in ("*", info["device_id"]):
        raise ProtocolError(f"{devclass} device not recognized in {item['port_id']} port.")
    if any(a["backend"] == item["backend"] and a["port_id"] == item["port_id"] for a in attached_items(call)):
        raise wire.DeviceAlreadyAttached(
            f"device {item['backend']}:{item['port_id']} of class {devclass} already attached to {call.dest.name}")
    item = dict(item, device_id=info["device_id"], mode="manual")
    attached = call.dest.attached.setdefault(devclass, [])
    attached.append(item)
    try:
        call.dom0.backend_hook("device_attached", call.dest, devclass, item)  # a qube's root shows it (roots)
    except wire.QubesException:
        attached.remove(item)
        call.dom0.backend_hook("device_detached", call.dest, devclass, item)
        raise
    call.dom0.fire(call.dest, f"device-attach:{devclass}", device=f"{item['backend']}:{item['port_id']}")


@method("admin.vm.device.*.Attach", arg="required", payload=True, write=True)
def device_attach(call: Call):
    """R4.3: attach now (until the qube stops). R4.2: with ``persistent=True``, assign."""
    backend, port, device = _parse_arg(call)
    devclass = _devclass(call)
    if call.dom0.release == "4.2":
        options = dict(field.split("=", 1) for field in call.payload.decode("ascii").split())
        persistent = options.pop("persistent", "False") in ("True", "yes")
        item = {"backend": backend, "port_id": port, "device_id": device, "mode": "required", "options": options}
        if not persistent:
            _attach(call, item)
            return
        assigned = call.dest.devices.setdefault(devclass, [])
        if any(a["backend"] == backend and a["port_id"] == port for a in assigned):
            raise wire.DeviceAlreadyAttached(
                f"device {backend}:{port} of class {devclass} already attached to {call.dest.name}")
        info = exposed(call, backend, devclass).get(port)
        item["device_id"] = info["device_id"] if info else device
        assigned.append(item)
        return
    _attach(call, _check_payload(call, backend, port, device))


@method("admin.vm.device.*.Detach", arg="required", write=True)
def device_detach(call: Call):
    """Detach a device attached now (not a required assignment of a running qube)."""
    backend, port, _device = _parse_arg(call)
    devclass = _devclass(call)
    if call.dom0.release == "4.2":
        assigned = call.dest.devices.get(devclass, [])
        for item in assigned:
            if item["backend"] == backend and item["port_id"] == port:
                if not call.dest.is_halted:
                    raise wire.QubesVMNotHaltedError("Can not detach a persistent device from a running qube")
                assigned.remove(item)
                return
    manual = call.dest.attached.get(devclass, [])
    for item in manual:
        if item["backend"] == backend and item["port_id"] == port:
            manual.remove(item)
            call.dom0.backend_hook("device_detached", call.dest, devclass, item)
            call.dom0.fire(call.dest, f"device-detach:{devclass}", port=f"{backend}:{port}")
            return
    if any(a["backend"] == backend and a["port_id"] == port for a in attached_items(call)):
        raise wire.QubesVMNotHaltedError(
            "Can not detach a required device from a non halted qube. You need to unassign device first.")
    raise wire.DeviceNotAssigned(f"{devclass} device {port} not attached to {call.dest.name}")


@method("admin.vm.device.*.List", arg="optional", releases=("4.2",))
def device_list(call: Call):
    """Persistent and current attachments (R4.2 format)."""
    devclass = _devclass(call)
    lines = []
    for persistent, items in (("yes", call.dest.devices.get(devclass, [])),
                              ("no", call.dest.attached.get(devclass, []) if call.dest.is_running else [])):
        for item in _filtered(call, items):
            opts = " ".join(f"{k}={v}" for k, v in sorted(item.get("options", {}).items()))
            lines.append(f"{item['backend']}+{item['port_id']} {opts + ' ' if opts else ''}persistent={persistent}\n")
    return "".join(lines)


@method("admin.vm.device.*.Set.persistent", arg="required", payload=True, write=True, releases=("4.2",))
def device_set_persistent(call: Call):
    """R4.2: turn a current attachment into an assignment, or back."""
    backend, port, _device = _parse_arg(call)
    devclass = _devclass(call)
    value = call.payload.decode("ascii")
    call.enforce(value in ("True", "False"))
    source, target = (call.dest.attached, call.dest.devices) if value == "True" else (call.dest.devices, call.dest.attached)
    for item in source.get(devclass, []):
        if item["backend"] == backend and item["port_id"] == port:
            source[devclass].remove(item)
            target.setdefault(devclass, []).append(item)
            return
    raise wire.DeviceNotAssigned(f"{devclass} device {backend}:{port} not attached to {call.dest.name}")


@method("admin.vm.device.denied.List", releases=("4.3",))
def device_denied_list(call: Call):
    """Denied device interfaces, 7 characters each (no trailing newline)."""
    value = call.dom0.value(call.dest, "devices_denied") or ""
    return "\n".join(value[i:i + 7] for i in range(0, len(value), 7))


@method("admin.deviceclass.List", scope="global")
def deviceclass_list(call: Call):
    """Device classes."""
    return formats.render_lines(DEVICE_CLASSES)
