# SPDX-License-Identifier: GPL-3.0-or-later
"""The Admin API methods of the rehearsal dom0 (devices: :mod:`rehearsal.devices`).

A handler raises the typed errors of :mod:`wire` where qubesd answers with
an exception, and any other exception where qubesd aborts (empty reply).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from ansible_collections.corral.qubes.plugins.module_utils import firewall, formats, names, wire

from rehearsal import properties, whonix
from rehearsal.dom0 import DOM0_MEMORY_MIB, PROTECTED_FEATURES_43, VM_CLASSES, Dom0
from rehearsal.model import Label, Qube
from rehearsal.registry import Call, PermissionDenied, ProtocolError, admin_policy_allows, method


# ===================================================================== listing


@method("admin.vmclass.List", scope="global")
def vmclass_list(call: Call):
    """Qube classes."""
    return formats.render_lines(VM_CLASSES[call.dom0.release])


def _vm_line(dom0: Dom0, qube: Qube) -> str:
    entry = formats.VmListEntry(qube.name, qube.klass, _power_state(qube),
                                qube.uuid if dom0.release != "4.2" else None)
    return entry.render()


def _power_state(qube: Qube) -> str:
    return "Running" if qube.klass == "AdminVM" else qube.power_state


@method("admin.vm.List")
def vm_list(call: Call):
    """All qubes (dest dom0) or one; filtered by policy for calls from qubes."""
    dom0 = call.dom0
    if call.dest.name == "dom0":
        qubes = sorted(dom0.state.domains.values(), key=lambda q: (q.klass != "AdminVM", q.name))
    else:
        qubes = [call.dest]
    if call.src.klass != "AdminVM":
        qubes = [q for q in qubes if admin_policy_allows(dom0, call.src, "admin.vm.List", "", q.name)]
    return "".join(_vm_line(dom0, q) for q in qubes)


@method("admin.vm.CurrentState")
def vm_current_state(call: Call):
    """Memory, CPU time and power state."""
    dom0, qube = call.dom0, call.dest
    if qube.klass == "AdminVM":
        mem, static, cpu = DOM0_MEMORY_MIB * 1024, dom0.state.host_memory_mib * 1024, int(time.monotonic() * 1e9)
    elif qube.is_halted:
        mem = static = cpu = 0
    else:
        memory = dom0.value(qube, "memory") or 0
        mem = memory * 1024
        static = max(memory, dom0.value(qube, "maxmem") or 0) * 1024
        cpu = int(max(0.0, time.time() - (qube.start_time or time.time())) * 1e8)
    return f"mem={mem} mem_static_max={static} cputime={cpu} power_state={_power_state(qube)}"


# ===================================================================== properties


def _holder(call: Call, is_global: bool):
    return None if is_global else call.dest


def _register_property_methods(prefix: str, is_global: bool) -> None:
    scope = "global" if is_global else "local"

    @method(f"{prefix}.List", scope=scope)
    def prop_list(call: Call):
        return formats.render_lines(properties.props_for(call.dom0, _holder(call, is_global)))

    @method(f"{prefix}.Get", scope=scope, arg="required")
    def prop_get(call: Call):
        return properties.get(call.dom0, _holder(call, is_global), call.arg).render()

    @method(f"{prefix}.GetAll", scope=scope)
    def prop_get_all(call: Call):
        holder = _holder(call, is_global)
        pairs = [(name, properties.get(call.dom0, holder, name))
                 for name in properties.props_for(call.dom0, holder)]
        return formats.render_property_list_all(pairs)

    @method(f"{prefix}.GetDefault", scope=scope, arg="required")
    def prop_get_default(call: Call):
        value = properties.get_default(call.dom0, _holder(call, is_global), call.arg)
        return formats.render_property_default(value)

    @method(f"{prefix}.Set", scope=scope, arg="required", payload=True, write=True)
    def prop_set(call: Call):
        properties.set_value(call.dom0, _holder(call, is_global), call.arg, call.payload)

    @method(f"{prefix}.Reset", scope=scope, arg="required", write=True)
    def prop_reset(call: Call):
        properties.reset_value(call.dom0, _holder(call, is_global), call.arg)

    @method(f"{prefix}.Help", scope=scope, arg="required")
    def prop_help(call: Call):
        return properties.help_text(call.dom0, _holder(call, is_global), call.arg)


_register_property_methods("admin.vm.property", is_global=False)
_register_property_methods("admin.property", is_global=True)


# ===================================================================== create / remove


def _parse_create_payload(call: Call, in_pool: bool) -> tuple[dict, str | None, dict]:
    """name/label/pool parameters of admin.vm.Create*, checked in qubesd's order."""
    dom0 = call.dom0
    text = call.payload.decode("ascii")  # UnicodeDecodeError -> empty reply
    params: dict = {}
    pool = None
    pools: dict = {}
    for item in text.split(" "):
        key, value = item.split("=", 1)  # ValueError (no '=') -> empty reply
        if key in params:
            raise ProtocolError("duplicated parameters")
        if key == "name":
            error = names.vm_name_error(value, dom0.release)
            if error:
                raise wire.QubesValueError(error)
            params["name"] = value
        elif key == "label":
            call.enforce(not value.isdigit() and bool(re.fullmatch(r"[A-Za-z0-9_.-]+", value)))
            label = dom0.state.label(value)
            if label is None:
                if dom0.release == "4.2":
                    raise wire.QubesValueError()
                raise wire.QubesLabelNotFoundError(f"Label does not exist: {value}")
            params["label"] = label.name
        elif in_pool and key == "pool":
            call.enforce(pool is None)
            if value not in dom0.state.pools:
                raise wire.QubesException(f"Unknown storage pool {value}")
            pool = value
        elif in_pool and key.startswith("pool:"):
            volume = key[len("pool:"):]
            call.enforce(volume in ("root", "private", "volatile", "kernel") and volume not in pools)
            if value not in dom0.state.pools:
                raise wire.QubesException(f"Unknown storage pool {value}")
            pools[volume] = value
        else:
            raise ProtocolError("Invalid param name")
    if "name" not in params or "label" not in params:
        raise ProtocolError("Missing name or label")
    if pool is not None and pools:
        raise ProtocolError("Only one of 'pool=' and 'pool:volume=' can be used")
    return params, pool, pools


def _create(call: Call, in_pool: bool):
    dom0 = call.dom0
    klass = call.request.method.rsplit(".", 1)[1]
    template = call.arg or None
    if template is not None:
        if klass not in ("AppVM", "DispVM"):
            raise wire.QubesValueError(f"{klass} cannot be based on template")
        if template not in dom0.state.domains:
            if dom0.release == "4.2":
                raise PermissionDenied(f"Template {template} does not exist")
            raise wire.QubesVMNotFoundError(f"No such domain: '{template}'")
    params, pool, pools = _parse_create_payload(call, in_pool)
    dom0.create(klass, params["name"], params["label"], template, pool, pools, creator=call.src.name)


@method("admin.vm.Create.*", scope="global", arg="optional", payload=True, write=True)
def vm_create(call: Call):
    """A new qube."""
    _create(call, in_pool=False)


@method("admin.vm.CreateInPool.*", scope="global", arg="optional", payload=True, write=True)
def vm_create_in_pool(call: Call):
    """A new qube with its volumes in given pools."""
    _create(call, in_pool=True)


@method("admin.vm.CreateDisposable", arg="optional", payload=True, write=True)
def vm_create_disposable(call: Call):
    """A new disposable from the caller's default_dispvm or from dest."""
    dom0 = call.dom0
    if dom0.release == "4.2":
        call.enforce(not call.arg and not call.payload)
    else:
        call.enforce(call.arg in ("", "preload"))
        if call.payload not in (b"", b"uuid"):
            raise wire.QubesValueError(
                "Invalid payload for admin.vm.CreateDisposable: expected the empty string or 'uuid'")
        if call.arg == "preload":
            return ""
    template_name = dom0.value(call.src, "default_dispvm") if call.dest.name == "dom0" else call.dest.name
    template = dom0.state.domains.get(template_name) if template_name else None
    if template is None or not dom0.value(template, "template_for_dispvms", False):
        raise wire.QubesException(
            "Refusing to create DispVM out of this AppVM, because template_for_dispvms=False")
    qube = dom0.create_disposable(template, creator=call.src.name)
    if call.payload == b"uuid":
        return f"uuid:{qube.uuid}"
    return qube.name


@method("admin.vm.Remove", write=True)
def vm_remove(call: Call):
    """Remove a halted qube nothing refers to."""
    call.dom0.remove(call.dest)


# ===================================================================== power


@method("admin.vm.Start", write=True)
async def vm_start(call: Call):
    """Start (netvm chain first); a no-op unless halted."""
    await call.dom0.start(call.dest)


@method("admin.vm.Shutdown", arg="optional", write=True)
async def vm_shutdown(call: Call):
    """Shutdown, with ``force`` and/or ``wait``."""
    words = call.arg.split("+") if call.arg else []
    call.enforce(all(word in ("force", "wait") for word in words))
    if call.dest.klass == "AdminVM":
        raise TypeError("AdminVM.shutdown() takes no force/wait")
    await call.dom0.shutdown(call.dest, force="force" in words, wait="wait" in words)


@method("admin.vm.Kill", write=True)
def vm_kill(call: Call):
    """Kill at once."""
    call.dom0.kill(call.dest)


@method("admin.vm.Pause", write=True)
def vm_pause(call: Call):
    """Pause."""
    call.enforce(call.dest.klass != "AdminVM")
    call.dom0.pause(call.dest)


@method("admin.vm.Unpause", write=True)
def vm_unpause(call: Call):
    """Unpause."""
    call.enforce(call.dest.klass != "AdminVM")
    call.dom0.unpause(call.dest)


@method("admin.vm.Suspend", write=True, releases=("4.3",))
def vm_suspend(call: Call):
    """Suspend (R4.3)."""
    call.dom0.suspend(call.dest)


@method("admin.vm.Resume", write=True, releases=("4.3",))
def vm_resume(call: Call):
    """Resume a suspended or paused qube (R4.3)."""
    call.enforce(call.dest.klass != "AdminVM")
    call.dom0.unpause(call.dest)


# ===================================================================== features


def _feature_missing(qube: Qube, name: str) -> wire.QubesFeatureNotFoundError:
    return wire.QubesFeatureNotFoundError(f"Feature not set for domain {qube.name}: {name}")


@method("admin.vm.feature.List")
def feature_list(call: Call):
    """Feature names."""
    return formats.render_lines(call.dest.features)


@method("admin.vm.feature.Get", arg="optional")
def feature_get(call: Call):
    """One feature's value."""
    if call.arg not in call.dest.features:
        raise _feature_missing(call.dest, call.arg)
    return call.dest.features[call.arg]


def _check_with(call: Call, chain: Callable):
    for qube in chain(call.dom0, call.dest):
        if qube is not None and call.arg in qube.features:
            return qube.features[call.arg]
    raise _feature_missing(call.dest, call.arg)


def _template_chain(dom0: Dom0, qube: Qube):
    while qube is not None:
        yield qube
        qube = dom0.template_of(qube)


def _netvm_chain(dom0: Dom0, qube: Qube):
    seen = set()
    while qube is not None and qube.name not in seen:
        seen.add(qube.name)
        yield qube
        qube = properties.netvm_of(dom0, qube)


@method("admin.vm.feature.CheckWithTemplate", arg="optional")
def feature_check_with_template(call: Call):
    """The feature from the qube or its template chain."""
    return _check_with(call, _template_chain)


@method("admin.vm.feature.CheckWithNetvm", arg="optional")
def feature_check_with_netvm(call: Call):
    """The feature from the qube or its netvm chain."""
    return _check_with(call, _netvm_chain)


@method("admin.vm.feature.CheckWithAdminVM", arg="optional")
def feature_check_with_adminvm(call: Call):
    """The feature from the qube, then dom0."""
    return _check_with(call, lambda d, q: (q, d.state.domains["dom0"]))


@method("admin.vm.feature.CheckWithTemplateAndAdminVM", arg="optional")
def feature_check_with_template_and_adminvm(call: Call):
    """The feature from the qube, its template chain, then dom0."""
    return _check_with(call, lambda d, q: (*_template_chain(d, q), d.state.domains["dom0"]))


def _protect_feature(call: Call) -> None:
    if call.dom0.release != "4.2" and call.arg in PROTECTED_FEATURES_43:
        raise PermissionDenied(f"feature {call.arg} is managed by qubesd")


@method("admin.vm.feature.Set", arg="optional", payload=True, write=True)
def feature_set(call: Call):
    """Set a feature (a string; empty means false but present)."""
    dom0, qube, name = call.dom0, call.dest, call.arg
    value = call.payload.decode("ascii")  # UnicodeDecodeError -> empty reply
    if dom0.release != "4.2":
        if names.feature_name_error(name):
            raise wire.QubesValueError("feature name contains illegal characters")
        if names.feature_value_error(value):
            raise wire.QubesValueError(f"{name} value contains illegal characters")
    _protect_feature(call)
    if name.startswith("service."):
        service = name[len("service."):]
        if not service:
            raise wire.QubesValueError("Service name cannot be empty")
        if "/" in service:
            raise wire.QubesValueError("Service name cannot contain a slash")
        if service in (".", ".."):
            raise wire.QubesValueError('Service name cannot be "." or ".."')
        if len(service.encode()) > 48:
            raise wire.QubesValueError("Service name must not exceed 48 bytes")
    old = qube.features.get(name)
    qube.features[name] = value
    kwargs = {"feature": name, "value": value}
    if old is not None:
        kwargs["oldvalue"] = old
    dom0.fire(qube, f"domain-feature-set:{name}", **kwargs)
    whonix.feature_set(dom0, qube, name, value)  # qubesd's Whonix extension


@method("admin.vm.feature.Remove", arg="optional", write=True)
def feature_remove(call: Call):
    """Remove a feature."""
    _protect_feature(call)
    if call.arg not in call.dest.features:
        raise _feature_missing(call.dest, call.arg)
    del call.dest.features[call.arg]
    call.dom0.fire(call.dest, f"domain-feature-delete:{call.arg}", feature=call.arg)


# ===================================================================== tags


def _valid_tag(call: Call) -> str:
    if call.arg and names.tag_error(call.arg):
        raise ValueError("disallowed characters")  # not a QubesException: empty reply
    return call.arg


def _protect_tag(call: Call) -> None:
    if call.arg.startswith("created-by-") and call.src.klass != "AdminVM":
        raise PermissionDenied("created-by-* tags are managed by qubesd")


@method("admin.vm.tag.List")
def tag_list(call: Call):
    """Tags, sorted."""
    return formats.render_lines(sorted(call.dest.tags))


@method("admin.vm.tag.Get", arg="optional")
def tag_get(call: Call):
    """1 if the tag is set, else 0."""
    return "1" if _valid_tag(call) in call.dest.tags else "0"


@method("admin.vm.tag.Set", arg="required", write=True)
def tag_set(call: Call):
    """Add a tag (idempotent)."""
    tag = _valid_tag(call)
    _protect_tag(call)
    if tag in call.dest.tags:
        return
    if tag.startswith("created-by-"):
        # qubesd looks the creator up when the tag is added: unknown -> KeyError -> empty reply
        call.dom0.state.domains[tag[len("created-by-"):]]  # pylint: disable=expression-not-assigned
    call.dest.tags.add(tag)
    call.dom0.fire(call.dest, f"domain-tag-add:{tag}", tag=tag)


@method("admin.vm.tag.Remove", arg="required", write=True)
def tag_remove(call: Call):
    """Remove a tag."""
    tag = _valid_tag(call)
    _protect_tag(call)
    if tag not in call.dest.tags:
        raise wire.QubesTagNotFoundError(f"Tag not set for domain {call.dest.name}: {tag}")
    call.dest.tags.discard(tag)
    call.dom0.fire(call.dest, f"domain-tag-delete:{tag}", tag=tag)


# ===================================================================== firewall


def _no_dom0_firewall(call: Call) -> None:
    if call.dest.klass == "AdminVM":
        raise AttributeError("dom0 has no firewall")


@method("admin.vm.firewall.Get")
def firewall_get(call: Call):
    """Current rules, expired ones left out."""
    _no_dom0_firewall(call)
    now = time.time()
    return firewall.render_rules(r for r in call.dest.firewall_rules() if not r.is_expired(now))


@method("admin.vm.firewall.Set", payload=True, write=True)
def firewall_set(call: Call):
    """Replace all rules (all or nothing)."""
    _no_dom0_firewall(call)
    rules = firewall.parse_rules(call.payload.decode("ascii"))  # any error -> empty reply
    now = time.time()
    call.dest.firewall = [r.render() for r in rules if not r.is_expired(now)]
    call.dom0.fire(call.dest, "firewall-changed")


@method("admin.vm.firewall.Reload")
def firewall_reload(call: Call):
    """Re-apply the rules (hostnames are resolved again)."""
    _no_dom0_firewall(call)
    call.dom0.fire(call.dest, "firewall-changed")


# ===================================================================== volumes


def _volume(call: Call):
    call.enforce(call.arg in call.dest.volumes)
    return call.dest.volumes[call.arg]


def _digits(payload: bytes, allow_minus: bool = False) -> int:
    """A size/number payload as R4.3 validates it (R4.2: up to 20 digits)."""
    text = payload.strip()
    negative = allow_minus and text.startswith(b"-")
    digits = text[1:] if negative else text
    if not digits or not digits.isdigit() or len(digits) > 19 or (len(digits) > 1 and digits.startswith(b"0")):
        raise ProtocolError("invalid number")
    return -int(digits) if negative else int(digits)


@method("admin.vm.volume.List")
def volume_list(call: Call):
    """Volume names."""
    return formats.render_lines(call.dest.volumes)


@method("admin.vm.volume.Info", arg="required")
def volume_info(call: Call):
    """Volume details (file driver)."""
    _volume(call)
    view = call.dom0.volume_view(call.dest, call.arg)
    items = [
        ("pool", view.pool), ("vid", view.vid), ("size", view.size), ("usage", view.usage), ("rw", view.rw),
        ("source", view.source), ("path", view.path), ("save_on_stop", view.save_on_stop),
        ("snap_on_start", view.snap_on_start), ("revisions_to_keep", view.revisions_to_keep),
        ("ephemeral", view.ephemeral),
    ]
    if call.dom0.state.pools[view.pool].driver == "file":
        items.append(("is_outdated", False))
    return formats.render_kv_lines(items)


@method("admin.vm.volume.ListSnapshots", arg="required")
def volume_list_snapshots(call: Call):
    """Revisions, oldest first."""
    return formats.render_lines(_volume(call).revisions)


@method("admin.vm.volume.Resize", arg="required", payload=True, write=True)
def volume_resize(call: Call):
    """Grow a volume (bytes)."""
    _volume(call)
    size = _digits(call.payload)
    call.dom0.resize(call.dest, call.arg, size)


@method("admin.vm.volume.Revert", arg="required", payload=True, write=True)
def volume_revert(call: Call):
    """Go back to a revision."""
    vol = _volume(call)
    revision = call.payload.decode("ascii").strip()
    call.enforce(revision in vol.revisions)
    vol.revisions.remove(revision)


@method("admin.vm.volume.CloneFrom", arg="required")
def volume_clone_from(call: Call):
    """A token to copy this volume with CloneTo."""
    _volume(call)
    return call.dom0.clone_token(call.dest, call.arg)


@method("admin.vm.volume.CloneTo", arg="required", payload=True, write=True)
def volume_clone_to(call: Call):
    """Replace this volume with the one a CloneFrom token names."""
    _volume(call)
    token = call.payload.decode("ascii").strip()
    source = call.dom0.clone_tokens.pop(token, None)
    call.enforce(source is not None)
    src_qube = call.dom0.state.domains.get(source[0])
    call.enforce(src_qube is not None and source[1] in src_qube.volumes)
    call.dom0.clone_volume(call.dest, call.arg, src_qube, source[1])


@method("admin.vm.volume.Clear", arg="required", write=True)
def volume_clear(call: Call):
    """Replace the volume with an empty image of the same size."""
    vol = _volume(call)
    if not call.dest.is_halted:
        raise wire.QubesVMNotHaltedError(f"Domain is not powered off: '{call.dest.name}'")
    if not vol.save_on_stop:
        raise NotImplementedError("only save_on_stop volumes can be cleared")
    vol.usage = 0


def _bool_payload(call: Call) -> bool:
    text = call.payload.decode("ascii").strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ProtocolError("Invalid value")


@method("admin.vm.volume.Set.revisions_to_keep", arg="required", payload=True, write=True)
def volume_set_revisions(call: Call):
    """How many revisions to keep (-1 in R4.3: no snapshots)."""
    vol = _volume(call)
    value = _digits(call.payload, allow_minus=call.dom0.release != "4.2")
    if value < -1:
        raise wire.QubesValueError("Invalid value for revisions_to_keep")
    if (value == -1) != (vol.revisions_to_keep == -1) and not call.dest.is_halted:
        raise wire.QubesVMNotHaltedError(f"Domain is not powered off: '{call.dest.name}'")
    vol.revisions_to_keep = value


def _volume_flag(call: Call):
    """The volume and the boolean of a Set.rw / Set.ephemeral call (the qube must be halted)."""
    vol = _volume(call)
    value = _bool_payload(call)
    if not call.dest.is_halted:
        raise wire.QubesVMNotHaltedError(f"Domain is not powered off: '{call.dest.name}'")
    return vol, value


@method("admin.vm.volume.Set.rw", arg="required", payload=True, write=True)
def volume_set_rw(call: Call):
    """Read-write or read-only (qube halted)."""
    vol, value = _volume_flag(call)
    vol.rw = value


@method("admin.vm.volume.Set.ephemeral", arg="required", payload=True, write=True)
def volume_set_ephemeral(call: Call):
    """Encrypt with an ephemeral key (only plain writable volumes)."""
    vol, value = _volume_flag(call)
    if value and (vol.snap_on_start or vol.save_on_stop or not vol.rw):
        raise wire.QubesValueError(
            "Cannot enable ephemeral on snap_on_start or save_on_stop or non-dom0 or not writable volume")
    vol.ephemeral = value


# ===================================================================== labels and pools


def _label(call: Call) -> Label:
    label = call.dom0.state.label(call.arg)
    if label is None:
        raise wire.QubesValueError()
    return label


@method("admin.label.List", scope="global")
def label_list(call: Call):
    """Label names in index order."""
    return formats.render_lines(label.name for label in sorted(call.dom0.state.labels, key=lambda x: x.index))


@method("admin.label.Get", scope="global", arg="optional")
def label_get(call: Call):
    """A label's colour."""
    return _label(call).color


@method("admin.label.Index", scope="global", arg="optional")
def label_index(call: Call):
    """A label's index."""
    return str(_label(call).index)


@method("admin.label.Create", scope="global", arg="required", payload=True, write=True)
def label_create(call: Call):
    """A new label: name as arg, colour 0xRRGGBB as payload."""
    call.enforce(names.label_name_error(call.arg) is None)
    if call.dom0.state.label(call.arg) is not None and not call.arg.isdigit():
        raise wire.QubesValueError("label already exists")
    color = call.payload.decode("ascii").strip()
    call.enforce(len(color) == 8 and color.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in color[2:]))
    index = max([8] + [label.index for label in call.dom0.state.labels]) + 1
    call.dom0.state.labels.append(Label(index=index, name=call.arg, color=color))


@method("admin.label.Remove", scope="global", arg="required", write=True)
def label_remove(call: Call):
    """Remove an unused label of one's own (index > 8)."""
    label = _label(call)
    call.enforce(label.index > 8)
    if any(q.props.get("label") == label.name for q in call.dom0.state.domains.values()):
        raise wire.QubesException("label still in use")
    call.dom0.state.labels.remove(label)


@method("admin.pool.List", scope="global")
def pool_list(call: Call):
    """Pool names."""
    return formats.render_lines(call.dom0.state.pools)


def _pool(call: Call):
    call.enforce(call.arg in call.dom0.state.pools)
    return call.dom0.state.pools[call.arg]


@method("admin.pool.Info", scope="global", arg="required")
def pool_info(call: Call):
    """Pool configuration, size and usage."""
    pool = _pool(call)
    items = sorted(pool.config.items())
    if pool.size:
        items += [("size", pool.size), ("usage", pool.usage)]
    return formats.render_kv_lines(items)


@method("admin.pool.UsageDetails", scope="global", arg="required")
def pool_usage_details(call: Call):
    """Data size and usage."""
    pool = _pool(call)
    if not pool.size:
        return ""
    return formats.render_kv_lines([("data_size", pool.size), ("data_usage", pool.usage)])


@method("admin.pool.ListDrivers", scope="global")
def pool_list_drivers(call: Call):
    """Storage drivers and their parameters."""
    return "file dir_path revisions_to_keep ephemeral_volatile\nlinux-kernel dir_path\n"


# ===================================================================== notes


@method("admin.vm.notes.Get", scope="vm", arg="optional", releases=("4.3",))
def notes_get(call: Call):
    """The qube's notes."""
    return call.dest.notes


@method("admin.vm.notes.Set", scope="vm", arg="optional", payload=True, write=True, releases=("4.3",))
def notes_set(call: Call):
    """Replace the notes (characters unsafe to display become '_')."""
    text = call.payload.decode("utf-8")  # UnicodeDecodeError -> empty reply
    call.dest.notes = "".join(c if (c.isprintable() or c in "\t\n") else "_" for c in text)


# ===================================================================== events


@method("admin.Events", stream=True)
def events(call: Call):
    """Handled by the server: a stream of events (all, or one qube's)."""
    raise AssertionError("admin.Events is a stream")  # pragma: no cover
