# SPDX-License-Identifier: GPL-3.0-or-later
"""Qube and global properties: types, defaults, validation, order.

qubesd lists a holder's properties sorted by (load stage, name); a property
reads ``default=True`` when it holds no explicit value; ``Set`` first
sanitises the payload by type, then runs the property's own check; computed
("stateless") properties refuse ``Set`` and ignore ``Reset``.  Messages are
qubesd's.  Help texts are this project's own wording (except where a
recorded reply fixes them).
"""

from __future__ import annotations

import dataclasses
import re
import string
import uuid as uuidlib
from collections.abc import Callable

from ansible_collections.corral.qubes.plugins.module_utils import formats, names, wire

GLOBAL = "Qubes"
"""Holder name of the global properties in messages (``... of Qubes``)."""

DNS_SERVERS = "10.139.1.1 10.139.1.2"
DEFAULT_MAC = "00:16:3e:5e:6c:00"
KERNELOPTS_NOPCI = "swiotlb=2048"
KERNELOPTS_PCI = ""
DEFAULT_MEMORY = 400
DEFAULT_VCPUS = 2
USERNAME_CHARS = string.ascii_letters + string.digits + "_-+,."


class Unset(Exception):
    """The property holds no value and has no default (Get shows an empty value)."""


@dataclasses.dataclass(frozen=True)
class Prop:
    """One property definition."""

    name: str
    type: str = "str"
    """Wire type word: str, int, bool, vm or label."""
    stage: int = 2
    default: Callable | None = None
    """``default(dom0, holder)`` -> native value; None: the property has no default."""
    check: Callable | None = None
    """``check(dom0, holder, value)`` -> value to store; raises qubesd's error."""
    computed: bool = False
    write_once: bool = False
    parse: str | None = None
    """Sanitiser when it is not the type's own: uuid, ipv4, ipv6."""
    allow_none: bool = True
    attr: str | None = None
    """The value lives in this attribute of the qube (name, qid, uuid, dispid)."""
    doc: str = ""


# ---------------------------------------------------------------- helpers


def holder_name(holder) -> str:
    """How messages name a holder: the qube name, or ``Qubes``."""
    return GLOBAL if holder is None else holder.name


def template_of(dom0, qube):
    """The qube's template (None for classes without one)."""
    if qube is None or qube.klass not in ("AppVM", "DispVM"):
        return None
    name = qube.props.get("template")
    return dom0.state.domains.get(name) if name else None


def tmpl_or(prop_name: str, fallback: Callable):
    """Default: the template's effective value, or ``fallback(dom0, qube)``."""
    def default(dom0, qube):
        template = template_of(dom0, qube)
        if template is not None:
            return value_of(dom0, template, prop_name)
        return fallback(dom0, qube)
    return default


def const(value):
    """Default: a constant."""
    return lambda dom0, holder: value


def global_value(prop_name: str):
    """Default: a global property's effective value."""
    return lambda dom0, holder: value_of(dom0, None, prop_name, missing=None)


def feature_in_chain(dom0, qube, name: str):
    """A feature from the qube or, if unset there, its template chain."""
    while qube is not None:
        if name in qube.features:
            return qube.features[name]
        qube = template_of(dom0, qube)
    return None


def has_pci(qube) -> bool:
    """Whether PCI devices are assigned to the qube."""
    return bool(qube.devices.get("pci"))


def is_networked(dom0, qube) -> bool:
    """Provides network or has a netvm."""
    return bool(value_of(dom0, qube, "provides_network", missing=False)) or \
        value_of(dom0, qube, "netvm", missing=None) is not None


def ip_for(prefix: str, ident: int, release: str) -> str:
    """The Qubes address for a qid (10.137) or dispid (10.138)."""
    if release == "4.2" or ident < 255:
        return f"{prefix}.{(ident >> 8) & 0xFF}.{ident & 0xFF}"
    k = ident - 1
    return f"{prefix}.{k // 254}.{(k % 254) + 1}"


def default_ip(dom0, qube):
    """``ip``: from the qid (DispVM: dispid) when the qube is networked."""
    if not is_networked(dom0, qube):
        return None
    if qube.klass == "DispVM" and qube.dispid is not None:
        return ip_for("10.138", qube.dispid, dom0.release)
    return ip_for("10.137", qube.qid, dom0.release)


def ipv6_enabled(dom0, qube) -> bool:
    """Feature ``ipv6`` on the qube or along its netvm chain."""
    seen = set()
    while qube is not None and qube.name not in seen:
        seen.add(qube.name)
        if qube.features.get("ipv6"):
            return True
        netvm = value_of(dom0, qube, "netvm", missing=None)
        qube = dom0.state.domains.get(netvm) if netvm else None
    return False


def default_ip6(dom0, qube):
    """``ip6``: only with the ipv6 feature."""
    if not is_networked(dom0, qube) or not ipv6_enabled(dom0, qube):
        return None
    if qube.klass == "DispVM" and qube.dispid is not None:
        return f"fd09:24ef:4179::a8a:{qube.dispid:x}"
    return f"fd09:24ef:4179::a89:{qube.qid:x}"


def visible_ip(dom0, qube):
    """``visible_ip``: net.fake-ip, else ip."""
    fake = feature_in_chain(dom0, qube, "net.fake-ip")
    return fake if fake else value_of(dom0, qube, "ip", missing=None)


def gateway(dom0, qube):
    """``gateway``: what this qube offers its clients."""
    if not value_of(dom0, qube, "provides_network", missing=False):
        return None
    return visible_ip(dom0, qube)


def gateway6(dom0, qube):
    """``gateway6``."""
    if not (value_of(dom0, qube, "provides_network", missing=False) and ipv6_enabled(dom0, qube)):
        return None
    return value_of(dom0, qube, "ip6", missing=None)


def netvm_of(dom0, qube):
    """The qube's netvm object, or None."""
    name = value_of(dom0, qube, "netvm", missing=None)
    return dom0.state.domains.get(name) if name else None


def visible_gateway(dom0, qube):
    """``visible_gateway``: the netvm's gateway."""
    fake = feature_in_chain(dom0, qube, "net.fake-gateway")
    if fake:
        return fake
    netvm = netvm_of(dom0, qube)
    return gateway(dom0, netvm) if netvm is not None else None


def visible_gateway6(dom0, qube):
    """``visible_gateway6``."""
    netvm = netvm_of(dom0, qube)
    if netvm is None or not ipv6_enabled(dom0, qube):
        return None
    return gateway6(dom0, netvm)


def visible_netmask(dom0, qube):
    """``visible_netmask``."""
    fake = feature_in_chain(dom0, qube, "net.fake-netmask")
    if fake:
        return fake
    return "255.255.255.255" if netvm_of(dom0, qube) is not None else None


def dns(dom0, qube):
    """``dns``: the Qubes virtual DNS servers when networked."""
    return DNS_SERVERS if is_networked(dom0, qube) else None


def icon(dom0, qube):
    """``icon``, from class, label and a few flags."""
    label = qube.props.get("label")
    if label is None:
        return None
    if qube.klass == "AdminVM":
        return "adminvm-black"
    if qube.klass == "TemplateVM":
        kind = "templatevm"
    elif qube.klass in ("AppVM", "StandaloneVM") and value_of(dom0, qube, "template_for_dispvms", missing=False):
        kind = "templatevm"
    elif qube.features.get("servicevm"):
        kind = "servicevm"
    elif qube.klass == "DispVM":
        kind = "dispvm"
    elif qube.klass == "StandaloneVM":
        kind = "standalonevm"
    else:
        kind = "appvm"
    return f"{kind}-{label}"


def default_virt_mode(dom0, qube):
    """``virt_mode``: hvm with PCI devices, else the template's, else pvh."""
    if has_pci(qube):
        return "hvm"
    template = template_of(dom0, qube)
    return value_of(dom0, template, "virt_mode") if template is not None else "pvh"


def default_kernelopts(dom0, qube):
    """``kernelopts``: empty without a dom0 kernel; PCI or no-PCI defaults."""
    if not value_of(dom0, qube, "kernel", missing=""):
        return ""
    if has_pci(qube):
        return KERNELOPTS_PCI
    template = template_of(dom0, qube)
    return value_of(dom0, template, "kernelopts") if template is not None else KERNELOPTS_NOPCI


def balancing_possible(dom0, qube) -> bool:
    """Memory balancing needs no PCI devices and, for HVM, a qrexec agent with meminfo-writer."""
    if has_pci(qube):
        return False
    if value_of(dom0, qube, "virt_mode") == "hvm":
        if not feature_in_chain(dom0, qube, "qrexec"):
            return False
        services = [k for k in qube.features if k.startswith("supported-service.")]
        if services and "supported-service.meminfo-writer" not in services:
            return False
    return True


def default_maxmem(dom0, qube):
    """``maxmem``: 0 without balancing; the template's; else 10x memory (Linux) or 4000, capped."""
    if not balancing_possible(dom0, qube):
        return 0
    template = template_of(dom0, qube)
    if template is not None:
        return value_of(dom0, template, "maxmem")
    base = value_of(dom0, qube, "memory") * 10 if qube.features.get("os") == "Linux" else 4000
    return min(base, dom0.state.host_memory_mib // 2)


def default_keyboard_layout(dom0, qube):
    """``keyboard_layout``: the GUI qube's, else us++."""
    guivm_name = value_of(dom0, qube, "guivm", missing=None) if qube.klass != "AdminVM" else None
    guivm = dom0.state.domains.get(guivm_name) if guivm_name else None
    if guivm is not None and guivm is not qube:
        return value_of(dom0, guivm, "keyboard_layout")
    return "us++"


def default_bootmode(dom0, qube):
    """``bootmode``: an own valid boot-mode.active, else the template's appvm default, else default."""
    def valid(mode, where):
        return mode == "default" or any(
            f"boot-mode.kernelopts.{mode}" in q.features for q in where if q is not None)
    template = template_of(dom0, qube)
    active = qube.features.get("boot-mode.active")
    if active and valid(active, (qube, template)):
        return active
    if template is not None:
        mode = value_of(dom0, template, "appvm_default_bootmode", missing="default")
        if valid(mode, (template,)):
            return mode
    return "default"


def default_start_time(dom0, qube):
    """``start_time``: when the qube started, or nothing."""
    return None if qube.start_time is None else str(qube.start_time)


# ---------------------------------------------------------------- checks


def positive(name: str, zero_ok: bool = False):
    """Check: an int > 0 (or >= 0)."""
    def check(dom0, holder, value):
        if value < 0 or (value == 0 and not zero_ok):
            suffix = "positive or zero" if zero_ok else "positive"
            raise wire.QubesPropertyValueError(f"{name} must be {suffix}")
        return value
    return check


def check_default_user(dom0, holder, value):
    """Only letters, digits and _-+,. in a user name."""
    if any(c not in USERNAME_CHARS for c in value):
        raise wire.QubesPropertyValueError(
            f"Username can contain only those characters: {USERNAME_CHARS}")
    return value


def check_virt_mode(dom0, qube, value):
    """hvm, pv or pvh (lowercased); not pvh with PCI devices."""
    value = value.lower()
    if value not in ("hvm", "pv", "pvh"):
        raise wire.QubesPropertyValueError("Invalid virtualization mode, supported values: hvm, pv, pvh")
    if value == "pvh" and has_pci(qube):
        raise wire.QubesPropertyValueError("pvh mode can't be set if pci devices are assigned")
    return value


def check_kernel(dom0, holder, value):
    """No '/', and installed (empty: the qube boots its own kernel)."""
    if not value:
        return ""
    if "/" in value:
        raise wire.QubesPropertyValueError("Kernel name cannot contain '/'")
    if value not in dom0.state.kernels:
        raise wire.QubesPropertyValueError(f"Kernel '{value}' not installed")
    return value


def check_kernelopts(dom0, holder, value):
    """At most 512 characters."""
    if len(value) > 512:
        raise wire.QubesPropertyValueError("Kernelopts value too long (512 chars max)")
    return value


_LAYOUT_VARIANT = re.compile(r"\A[A-Za-z0-9_-]*\Z")
_LAYOUT_OPTIONS = re.compile(r"\A[A-Za-z0-9_:,-]*\Z")


def check_keyboard_layout(dom0, holder, value):
    """``layout+variant+options``."""
    parts = value.split("+")
    if len(parts) != 3:
        raise wire.QubesPropertyValueError("invalid number of keyboard layout parameters")
    layout, variant, options = parts
    if not layout.isalpha():
        raise wire.QubesPropertyValueError("Invalid keyboard layout provided")
    if not _LAYOUT_VARIANT.match(variant):
        raise wire.QubesPropertyValueError("Invalid layout variant provided")
    if not _LAYOUT_OPTIONS.match(options):
        raise wire.QubesPropertyValueError("Invalid layout options provided")
    return value


def check_mac(dom0, holder, value):
    """Six hex pairs; qubesd raises a plain ValueError (an empty reply) otherwise."""
    value = value.lower()
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", value):
        raise ValueError("Invalid MAC address value")
    return value


def check_label(dom0, holder, value):
    """A label name, a numeric index, or ``label-N``."""
    if value.startswith("label-"):
        index = int(value[len("label-"):])  # ValueError -> empty reply, as qubesd
        for label in dom0.state.labels:
            if label.index == index:
                return label.name
        raise KeyError(value)  # qubesd: plain KeyError -> empty reply
    label = dom0.state.label(value)
    if label is None:
        raise wire.QubesLabelNotFoundError(f"Label does not exist: {value}")
    return label.name


def check_provides_network(dom0, qube, value):
    """Cannot stop providing network while qubes use this one."""
    if not value and dom0.connected_vms(qube):
        raise wire.QubesValueError("The qube is still used by other qubes, change theirs 'netvm' first")
    return value


def check_template_for_dispvms(dom0, qube, value):
    """Cannot be switched off while disposables use it."""
    if not value and any(q.klass == "DispVM" and q.props.get("template") == qube.name
                         for q in dom0.state.domains.values()):
        raise wire.QubesVMInUseError(
            "Cannot change template_for_dispvms to False while there are some DispVMs based on this DVM template")
    return value


def check_netvm(dom0, qube, value):
    """Must provide network, no loops; a running qube cannot attach to a halted netvm."""
    if value is None:
        return None
    target = dom0.state.domains[value]
    if not value_of(dom0, target, "provides_network", missing=False):
        raise wire.QubesValueError(f"The {value} qube does not provide network")
    probe, seen = target, set()
    while probe is not None and probe.name not in seen:
        if probe is qube:
            raise wire.QubesValueError("Loops in network are unsupported")
        seen.add(probe.name)
        probe = netvm_of(dom0, probe)
    if qube.is_running and not target.is_running:
        if dom0.release == "4.2":
            raise wire.QubesVMNotStartedError(f"Cannot dynamically attach to stopped NetVM: {value}")
        raise wire.QubesVMNotStartedError(f"Cannot dynamically attach to stopped qube {value}")
    return value


def check_template(dom0, qube, value):
    """AppVM: a TemplateVM; DispVM: a qube with template_for_dispvms; only while halted."""
    if value is None:
        raise wire.QubesPropertyValueError(f"Invalid value None for property 'template' of {qube.name}")
    target = dom0.state.domains[value]
    if qube.klass == "DispVM":
        if not value_of(dom0, target, "template_for_dispvms", missing=False):
            raise wire.QubesPropertyValueError("template for disposable must have template_for_dispvms=True")
    elif target.klass != "TemplateVM":
        raise wire.QubesPropertyValueError(
            f"wrong VM class: domains['{value}'] is of type {target.klass} and not TemplateVM")
    if not qube.is_halted:
        raise wire.QubesVMNotHaltedError("Cannot change template while qube is running")
    return value


def check_global_default_template(dom0, holder, value):
    """default_template must be a TemplateVM."""
    if value is not None:
        klass = dom0.state.domains[value].klass
        if klass != "TemplateVM":
            raise wire.QubesPropertyValueError(
                f"wrong VM class: domains['{value}'] is of type {klass} and not TemplateVM")
    return value


def check_global_default_netvm(dom0, holder, value):
    """No qube at the default netvm may end up in a loop."""
    if value is None:
        return None
    for qube in dom0.state.domains.values():
        if qube.klass in ("AdminVM", "TemplateVM") or "netvm" in qube.props:
            continue
        if qube.name == value:
            raise wire.QubesPropertyValueError(f"Network loop on '{qube.name}'")
    return value


def check_pool(dom0, holder, value):
    """An existing storage pool."""
    if value not in dom0.state.pools:
        raise wire.QubesPropertyValueError("No such storage pool")
    return value


def default_pool(dom0, holder):
    """``default_pool``: a pool named default, else the file pool."""
    if "default" in dom0.state.pools:
        return "default"
    return "varlibqubes" if "varlibqubes" in dom0.state.pools else None


def global_or_pool(dom0, holder):
    """``default_pool_*``: follow default_pool."""
    return value_of(dom0, None, "default_pool", missing=None)


# ---------------------------------------------------------------- tables


def _props(*items: Prop) -> dict[str, Prop]:
    return {p.name: p for p in items}


_COMMON = _props(
    Prop("name", doc="Name of the qube; cannot be changed.", write_once=True, attr="name"),
    Prop("qid", "int", doc="Internal numeric identifier of the qube.", write_once=True, attr="qid"),
    Prop("uuid", doc="UUID of the qube.", write_once=True, parse="uuid", attr="uuid"),
    Prop("label", "label", check=check_label, doc="Colour label shown on the qube's windows."),
    Prop("klass", computed=True, default=lambda d, q: q.klass, doc="Class of the qube."),
    Prop("icon", computed=True, default=icon, doc="Icon name, from class and label."),
    Prop("autostart", "bool", default=const(False), doc="Start the qube when dom0 boots."),
    Prop("backup_timestamp", "int", default=const(None), doc="Time of the last backup of this qube."),
    Prop("debug", "bool", default=const(False), doc="Debug mode: console output and emulated display."),
    Prop("default_user", default=tmpl_or("default_user", const("user")), check=check_default_user,
         doc="User for commands run in the qube."),
    Prop("devices_denied", default=const(""), doc="Device interface classes the qube may not receive."),
    Prop("dns", computed=True, default=dns, doc="DNS servers the qube sees."),
    Prop("gateway", computed=True, default=gateway, doc="Gateway this qube offers to its clients."),
    Prop("gateway6", computed=True, default=gateway6, doc="IPv6 gateway this qube offers to its clients."),
    Prop("include_in_backups", "bool",
         default=lambda d, q: not q.props.get("auto_cleanup", False) if q.klass == "DispVM" else True,
         doc="Include the qube in backups by default."),
    Prop("installed_by_rpm", "bool", default=const(False), doc="The qube belongs to an installed package."),
    Prop("ip", default=default_ip, parse="ipv4", doc="IPv4 address of the qube."),
    Prop("ip6", default=default_ip6, parse="ipv6", doc="IPv6 address of the qube."),
    Prop("kernel", default=tmpl_or("kernel", global_value("default_kernel")), check=check_kernel,
         doc="dom0 kernel the qube boots; empty for the qube's own kernel."),
    Prop("keyboard_layout", default=default_keyboard_layout, check=check_keyboard_layout,
         doc="Keyboard layout: layout+variant+options."),
    Prop("mac", default=const(DEFAULT_MAC), check=check_mac, doc="MAC address of the qube's network interface."),
    Prop("maxmem", "int", default=default_maxmem, check=positive("maxmem", zero_ok=True),
         doc="Maximum memory in MiB (0: no memory balancing)."),
    Prop("memory", "int", default=tmpl_or("memory", const(DEFAULT_MEMORY)), check=positive("memory"),
         doc="Initial memory in MiB."),
    Prop("provides_network", "bool", default=const(False), check=check_provides_network,
         doc="The qube can be another qube's netvm."),
    Prop("qrexec_timeout", "int", default=tmpl_or("qrexec_timeout", global_value("default_qrexec_timeout")),
         check=positive("qrexec_timeout"), doc="Seconds to wait for the qrexec agent at start."),
    Prop("shutdown_timeout", "int",
         default=tmpl_or("shutdown_timeout", global_value("default_shutdown_timeout")),
         check=positive("shutdown_timeout"), doc="Seconds to wait for a clean shutdown."),
    Prop("start_time", computed=True, default=default_start_time, doc="When the qube was started."),
    Prop("stubdom_mem", "int", default=const(None), check=positive("stubdom_mem"),
         doc="Memory of the device-model stub domain in MiB."),
    Prop("stubdom_uuid", computed=True, default=const(""), doc="UUID of the stub domain."),
    Prop("stubdom_xid", "int", computed=True, default=const(-1), doc="Xen id of the stub domain."),
    Prop("updateable", "bool", computed=True, default=lambda d, q: q.klass in ("TemplateVM", "StandaloneVM"),
         doc="Changes to the root volume persist."),
    Prop("vcpus", "int", default=tmpl_or("vcpus", const(DEFAULT_VCPUS)), check=positive("vcpus"),
         doc="Number of virtual CPUs."),
    Prop("virt_mode", default=default_virt_mode, check=check_virt_mode, doc="Virtualisation mode: hvm, pv or pvh."),
    Prop("visible_gateway", computed=True, default=visible_gateway, doc="Default gateway the qube sees."),
    Prop("visible_gateway6", computed=True, default=visible_gateway6, doc="IPv6 gateway the qube sees."),
    Prop("visible_ip", computed=True, default=visible_ip, doc="IPv4 address the qube sees."),
    Prop("visible_ip6", computed=True, default=lambda d, q: value_of(d, q, "ip6", missing=None),
         doc="IPv6 address the qube sees."),
    Prop("visible_netmask", computed=True, default=visible_netmask, doc="Netmask the qube sees."),
    Prop("xid", "int", computed=True, default=lambda d, q: q.xid, doc="Xen domain id (-1 when halted)."),
    Prop("audiovm", "vm", 4, default=global_value("default_audiovm"), doc="Qube providing audio."),
    Prop("bootmode", stage=4, default=default_bootmode, doc="Boot mode (kernel options set)."),
    Prop("default_dispvm", "vm", 4,
         default=lambda d, q: q.props.get("template") if q.klass == "DispVM"
         else value_of(d, None, "default_dispvm", missing=None),
         doc="Disposable template for disposables started from this qube."),
    Prop("guivm", "vm", 4, default=global_value("default_guivm"), doc="Qube providing the GUI."),
    Prop("kernelopts", stage=4, default=default_kernelopts, check=check_kernelopts,
         doc="Kernel command line options."),
    Prop("management_dispvm", "vm", 4,
         default=tmpl_or("management_dispvm", global_value("management_dispvm")),
         doc="Disposable template for management tasks."),
    Prop("netvm", "vm", 4,
         default=lambda d, q: None if q.klass == "TemplateVM" else value_of(d, None, "default_netvm", missing=None),
         check=check_netvm,
         doc="VM that provides network connection to this domain. When None, machine is disconnected. "
             "When absent, domain uses default NetVM."),
)

_TEMPLATE = Prop("template", "vm", 4, check=check_template, allow_none=False,
                 doc="Template the qube's root volume comes from.")
_DVM = Prop("template_for_dispvms", "bool", default=const(False), check=check_template_for_dispvms,
            doc="Disposables may be started from this qube.")

_DOM0 = _props(
    Prop("icon", computed=True, default=const("adminvm-black"), doc="Icon name."),
    Prop("include_in_backups", "bool", default=const(True), doc="Include dom0's home in backups."),
    Prop("keyboard_layout", default=const("us++"), check=check_keyboard_layout, doc="Keyboard layout."),
    Prop("klass", computed=True, default=const("AdminVM"), doc="Class of the qube."),
    Prop("label", "label", check=check_label, doc="Colour label."),
    Prop("name", computed=True, default=const("dom0"), doc="Name of the admin qube."),
    Prop("qid", "int", computed=True, default=const(0), doc="Internal numeric identifier."),
    Prop("updateable", "bool", computed=True, default=const(True), doc="dom0 is updated in place."),
    Prop("uuid", computed=True, default=const("00000000-0000-0000-0000-000000000000"), doc="UUID."),
    Prop("default_dispvm", "vm", 4, default=global_value("default_dispvm"), doc="Default disposable template."),
)

_DISPVM_EXTRA = _props(
    Prop("auto_cleanup", "bool", default=const(False), doc="Remove the disposable when it halts."),
    Prop("dispid", "int", write_once=True, attr="dispid", doc="Internal disposable number."),
    Prop("is_preload", computed=True, default=const(False), doc="The disposable is preloaded."),
)

GLOBAL_PROPS = _props(
    Prop("check_updates_vm", "bool", 3, default=const(True), doc="Qubes check for updates by default."),
    Prop("clockvm", "vm", 3, default=const(None), doc="Qube that synchronises the clock."),
    Prop("default_audiovm", "vm", 3, default=const("dom0"), doc="Default audio qube."),
    Prop("default_dispvm", "vm", 3, default=const(None), doc="Default disposable template."),
    Prop("default_guivm", "vm", 3, default=const("dom0"), doc="Default GUI qube."),
    Prop("default_kernel", stage=3, check=check_kernel, doc="Kernel for qubes that have none set."),
    Prop("default_netvm", "vm", 3, default=const(None), check=check_global_default_netvm,
         doc="Default NetVM for AppVMs. Initial state is None, which means that AppVMs are not "
             "connected to the Internet."),
    Prop("default_pool", stage=3, default=default_pool, check=check_pool, doc="Default storage pool."),
    Prop("default_pool_kernel", stage=3, default=global_or_pool, check=check_pool,
         doc="Storage pool for kernel volumes."),
    Prop("default_pool_private", stage=3, default=global_or_pool, check=check_pool,
         doc="Storage pool for private volumes."),
    Prop("default_pool_root", stage=3, default=global_or_pool, check=check_pool,
         doc="Storage pool for root volumes."),
    Prop("default_pool_volatile", stage=3, default=global_or_pool, check=check_pool,
         doc="Storage pool for volatile volumes."),
    Prop("default_qrexec_timeout", "int", 3, default=const(60), doc="Default qrexec timeout in seconds."),
    Prop("default_shutdown_timeout", "int", 3, default=const(60), doc="Default shutdown timeout in seconds."),
    Prop("default_template", "vm", 3, check=check_global_default_template, doc="Default template for new qubes."),
    Prop("management_dispvm", "vm", 3, default=const(None), doc="Default management disposable template."),
    Prop("stats_interval", "int", 3, default=const(3), doc="Interval of memory statistics in seconds."),
    Prop("updatevm", "vm", 3, default=const(None), doc="Qube that downloads dom0 updates."),
)

R43_ONLY = frozenset({"bootmode", "appvm_default_bootmode", "devices_denied", "stubdom_uuid", "is_preload"})


def class_props(klass: str, release: str) -> dict[str, Prop]:
    """The properties of a qube class, in qubesd's order (load stage, then name)."""
    if klass == "AdminVM":
        table = dict(_DOM0)
    else:
        table = dict(_COMMON)
        if klass in ("AppVM", "DispVM"):
            table["template"] = _TEMPLATE
        if klass in ("AppVM", "StandaloneVM"):
            table["template_for_dispvms"] = _DVM
        if klass == "DispVM":
            table.update(_DISPVM_EXTRA)
        if klass == "TemplateVM":
            table["appvm_default_bootmode"] = Prop(
                "appvm_default_bootmode", stage=4,
                default=lambda d, q: q.features.get("boot-mode.appvm-default", "default"),
                doc="Boot mode of qubes based on this template.")
    if release == "4.2":
        table = {k: v for k, v in table.items() if k not in R43_ONLY}
    return dict(sorted(table.items(), key=lambda item: (item[1].stage, item[0])))


def props_for(dom0, holder) -> dict[str, Prop]:
    """The property table of a holder (None: global)."""
    if holder is None:
        return GLOBAL_PROPS
    return dom0.class_props(holder.klass)


# ---------------------------------------------------------------- access


def store_of(dom0, holder) -> dict:
    """Where a holder's explicit values live."""
    return dom0.state.props if holder is None else holder.props


def lookup(dom0, holder, name: str) -> Prop:
    """A property definition, or qubesd's QubesNoSuchPropertyError."""
    prop = props_for(dom0, holder).get(name)
    if prop is None:
        raise wire.QubesNoSuchPropertyError(f"Invalid property '{name}' of {holder_name(holder)}")
    return prop


def read(dom0, holder, name: str):
    """(value, is_default) of a property; raises Unset when it has no value and no default."""
    prop = lookup(dom0, holder, name)
    if prop.attr is not None:
        value = getattr(holder, prop.attr)
        if value is None:
            raise Unset(name)
        return value, False
    store = store_of(dom0, holder)
    if not prop.computed and name in store:
        return store[name], False
    if prop.default is None:
        raise Unset(name)
    return prop.default(dom0, holder), True


_MISSING = object()


def value_of(dom0, holder, name: str, missing=_MISSING):
    """A property's effective value (``missing`` when unset, or if the holder lacks it)."""
    try:
        return read(dom0, holder, name)[0]
    except (Unset, wire.QubesNoSuchPropertyError):
        if missing is _MISSING:
            raise
        return missing


def render(value) -> str:
    """A native value as property text (None -> empty, bools as True/False)."""
    if value is None:
        return ""
    return str(value)


def get(dom0, holder, name: str) -> formats.PropertyValue:
    """The ``property.Get`` value."""
    prop = lookup(dom0, holder, name)
    try:
        value, is_default = read(dom0, holder, name)
    except Unset:
        return formats.PropertyValue("", prop.type, True)
    return formats.PropertyValue(render(value), prop.type, is_default)


def get_default(dom0, holder, name: str) -> formats.PropertyValue | None:
    """The ``property.GetDefault`` value (None: no default)."""
    prop = lookup(dom0, holder, name)
    if prop.default is None:
        return None
    return formats.PropertyValue(render(prop.default(dom0, holder)), prop.type, True)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("0", "no", "false", "off"):
        return False
    if lowered in ("1", "yes", "true", "on"):
        return True
    raise wire.QubesValueError(f"Invalid literal for boolean property: {text!r}")


def sanitize(dom0, prop: Prop, payload: bytes):
    """Turn a Set payload into a native value, as qubesd's type-based sanitiser does."""
    if prop.type == "vm":
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            raise wire.QubesValueError("") from None
        if text == "":
            return None
        error = names.vm_name_error(text, dom0.release)
        if error:
            raise wire.QubesValueError(error)
        if text not in dom0.state.domains:
            if dom0.release == "4.2":
                raise wire.QubesVMNotFoundError(f"No such domain: '{text}'")
            raise wire.QubesPropertyValueError(f"Can't set {prop.name} to non-existing qube {text}")
        return text
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        raise wire.QubesValueError("Non-ASCII bytes in property value") from None
    if prop.type == "bool":
        return _parse_bool(text)
    parsers = {"int": ("int", int), "uuid": ("UUID", uuidlib.UUID),
               "ipv4": ("IPv4Address", _ipv4), "ipv6": ("IPv6Address", _ipv6)}
    kind = prop.parse or prop.type
    if kind in parsers:
        label, parser = parsers[kind]
        try:
            value = parser(text)
        except ValueError:
            raise wire.QubesValueError(f"Failed to parse property value as {label}") from None
        return str(value) if kind != "int" else value
    if any(c not in string.printable for c in text):
        raise wire.QubesValueError("Invalid characters in property value")
    return text


def _ipv4(text):
    import ipaddress  # pylint: disable=import-outside-toplevel
    return ipaddress.IPv4Address(text)


def _ipv6(text):
    import ipaddress  # pylint: disable=import-outside-toplevel
    return ipaddress.IPv6Address(text)


def set_value(dom0, holder, name: str, payload: bytes) -> None:
    """``property.Set``: sanitise, check, store, fire the event."""
    prop = lookup(dom0, holder, name)
    value = sanitize(dom0, prop, payload)
    store = store_of(dom0, holder)
    if prop.write_once and (prop.attr is not None or name in store):
        raise AttributeError(f"property {name!r} is write-once and already set")
    if prop.computed:
        klass = "Qubes" if holder is None else holder.klass
        raise wire.QubesPropertyValueError(f"property '{name}' on {klass} instance cannot be set")
    if value is None and prop.type == "vm" and not prop.allow_none:
        raise wire.QubesPropertyValueError(
            f"Invalid value None for property '{name}' of {holder_name(holder)}")
    if prop.check is not None:
        value = prop.check(dom0, holder, value)
    old = value_of(dom0, holder, name, missing=None)
    store[name] = value
    dom0.property_changed(holder, name, value, old)


def reset_value(dom0, holder, name: str) -> None:
    """``property.Reset``: back to the default (refused for a qube's template)."""
    prop = lookup(dom0, holder, name)
    store = store_of(dom0, holder)
    if prop.write_once and (prop.attr is not None or name in store):
        raise AttributeError(f"property {name!r} is write-once")
    if prop.computed:
        return
    if name == "template" and holder is not None:
        default = value_of(dom0, None, "default_template", missing=None)
        if holder.klass == "AppVM" and default and dom0.release != "4.2":
            raise wire.QubesValueError(
                f"Cannot unset template. You can set it to the current default ({default}) instead")
        raise wire.QubesValueError("Cannot unset template")
    if name == "netvm" and holder is not None:
        default = prop.default(dom0, holder)
        if default != value_of(dom0, holder, "netvm", missing=None):
            check_netvm(dom0, holder, default)
    if name == "template_for_dispvms" and holder is not None:
        check_template_for_dispvms(dom0, holder, False)
    old = value_of(dom0, holder, name, missing=None)
    store.pop(name, None)
    dom0.property_changed(holder, name, value_of(dom0, holder, name, missing=None), old, reset=True)


def help_text(dom0, holder, name: str) -> str:
    """``property.Help``."""
    return lookup(dom0, holder, name).doc
