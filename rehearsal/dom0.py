# SPDX-License-Identifier: GPL-3.0-or-later
"""The rehearsal dom0's behaviour: qubes, volumes, power, events.

:class:`Dom0` wraps the persisted :class:`~rehearsal.model.Dom0State` with
what qubesd does around it: creating qubes with their volumes and automatic
tags, refusing to remove a qube in use, starting the netvm chain first,
refusing to stop a netvm with running clients, firing events for
``admin.Events`` subscribers (and for whatever realises the layout).
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time

from ansible_collections.corral.qubes.plugins.module_utils import names, wire

from rehearsal import properties, whonix
from rehearsal.model import GiB, Dom0State, Qube, Volume

PRIVATE_SIZE = 2 * GiB
ROOT_SIZE = 10 * GiB
VOLATILE_SIZE = 10 * GiB
KERNEL_SIZE = 157286400
VOLUME_NAMES = ("root", "private", "volatile", "kernel")
VM_CLASSES = {
    "4.2": ("AdminVM", "AppVM", "DispVM", "StandaloneVM", "TemplateVM"),
    "4.3": ("AdminVM", "AppVM", "DispVM", "RemoteVM", "StandaloneVM", "TemplateVM"),
}
CREATABLE = ("AppVM", "DispVM", "StandaloneVM", "TemplateVM")
PROTECTED_FEATURES_43 = (
    "deferred-netvm-original", "preload-dispvm", "preload-dispvm-completed", "preload-dispvm-in-progress",
)
DOM0_MEMORY_MIB = 4096
"""What dom0 itself keeps of the host's memory."""


def deny_all(source: str, service: str, arg: str, target: str) -> bool:  # pylint: disable=unused-argument
    """The admin policy of a fresh dom0 for list filtering: nothing is granted to qubes."""
    return False


class Dom0:
    """Runtime state and behaviour of the rehearsal dom0."""

    def __init__(self, state: Dom0State, state_dir: str | None = None, shutdown_delay: float = 0.1):
        self.state = state
        self.release = state.release
        self.state_dir = state_dir
        self.shutdown_delay = shutdown_delay
        self.max_qid = 254 if self.release == "4.2" else 10000
        self.listeners: list = []
        self.backends: list = []
        """What runs the qubes (:class:`rehearsal.roots.Roots`): ``await qube_started(qube)`` (may raise
        QubesException: the start fails), ``qube_stopped(qube)``, ``qube_paused(qube, paused)``, ``qube_removed(name)``,
        ``volume_cloned(qube, volume, source, source_volume)``.  Optional (called through :meth:`backend_hook` on
        the backends that define them): ``device_attached(qube, devclass, item)`` after a device was attached to
        the running ``qube`` (``item``: its ``{backend, port_id, device_id, mode, options}``, as in
        ``qube.attached[devclass]``; may raise QubesException: the attachment fails and is undone) and
        ``device_detached(qube, devclass, item)`` after it was detached, or its backend qube stopped."""
        self.admin_policy = deny_all
        """``admin_policy(source, service, arg, target) -> bool``: may a qube's call see ``target``?"""
        self.clone_tokens: dict[str, tuple[str, str]] = {}
        self._class_props: dict = {}
        self._next_xid = 1 + max((q.xid for q in state.domains.values()), default=0)
        self._pending_halts: dict[str, asyncio.TimerHandle] = {}
        for qube in state.domains.values():
            # A restart of the rehearsal is a reboot of nothing: transitional states settle.
            if qube.power_state == "Halting":
                self._halted(qube)
        whonix.loaded(self)  # qubesd's Whonix extension, at load

    # -- lookups ------------------------------------------------------------------

    def class_props(self, klass: str) -> dict:
        """The property table of a class (cached)."""
        if klass not in self._class_props:
            self._class_props[klass] = properties.class_props(klass, self.release)
        return self._class_props[klass]

    def qube(self, name: str) -> Qube:
        """A qube by name, or qubesd's QubesVMNotFoundError."""
        try:
            return self.state.domains[name]
        except KeyError:
            raise wire.QubesVMNotFoundError(f"No such domain: '{name}'") from None

    def resolve(self, text: str) -> Qube:
        """A request's source/destination: a name (validated first in R4.3) or ``uuid:``."""
        if self.release != "4.2":
            if text.startswith("uuid:"):
                wanted = text[len("uuid:"):]
                if len(text) != 41 or any(c not in string.hexdigits.lower() + "-" for c in wanted):
                    raise wire.QubesVMInvalidUUIDError(f"VM UUID is not valid: '{wanted}'")
                for qube in self.state.domains.values():
                    if qube.uuid == wanted:
                        return qube
                raise wire.QubesVMNotFoundError(f"No such domain: '{text}'")
            if text != "dom0":
                error = names.vm_name_error(text, self.release)
                if error:
                    raise wire.QubesValueError(error)
        return self.qube(text)

    def value(self, holder, name: str, missing=None):
        """A property's effective value (``missing`` if unset)."""
        return properties.value_of(self, holder, name, missing=missing)

    def connected_vms(self, netvm: Qube) -> list[Qube]:
        """Qubes whose effective netvm is ``netvm``."""
        return [q for q in self.state.domains.values()
                if q.klass != "AdminVM" and q is not netvm and self.value(q, "netvm") == netvm.name]

    def template_of(self, qube: Qube) -> Qube | None:
        """The qube's template, if its class has one."""
        return properties.template_of(self, qube)

    def backend_hook(self, hook: str, *args) -> None:
        """Call the optional hook ``hook(*args)`` of every backend that defines it (see :attr:`backends`)."""
        for backend in list(self.backends):
            function = getattr(backend, hook, None)
            if function is not None:
                function(*args)

    # -- events ---------------------------------------------------------------------

    def fire(self, subject: Qube | None, event: str, **kwargs) -> None:
        """Send an event to every listener (admin.Events streams, realisers)."""
        name = "" if subject is None else subject.name
        rendered = {k: ("None" if v is None else str(v)) for k, v in kwargs.items()}
        for listener in list(self.listeners):
            listener(name, event, rendered)

    def property_changed(self, holder, name: str, new, old, reset: bool = False) -> None:
        """Events and qubesd's side effects of a property change."""
        kind = "reset" if reset else "set"
        kwargs = {"name": name} if reset else {"name": name, "newvalue": new}
        if old is not None:
            kwargs["oldvalue"] = old
        self.fire(holder, f"property-{kind}:{name}", **kwargs)
        if holder is None:
            if name == "clockvm" and new != old:
                for qube_name, present in ((old, False), (new, True)):
                    qube = self.state.domains.get(qube_name) if qube_name else None
                    if qube is None:
                        continue
                    if present:
                        qube.features["service.clocksync"] = "1"
                    else:
                        qube.features.pop("service.clocksync", None)
            if name in ("default_guivm", "default_audiovm"):
                for qube in self.state.domains.values():
                    self.refresh_gui_tags(qube)
        elif name in ("guivm", "audiovm"):
            self.refresh_gui_tags(holder)
        elif name == "label" or name == "template_for_dispvms":
            self.fire(holder, "property-reset:icon", name="icon")

    def refresh_gui_tags(self, qube: Qube) -> None:
        """Tags ``guivm-<qube>`` / ``audiovm-<qube>`` follow the effective guivm and audiovm."""
        if qube.klass == "AdminVM":
            return
        for prop in ("guivm", "audiovm"):
            target = self.value(qube, prop)
            wanted = f"{prop}-{target}" if target else None
            for tag in [t for t in qube.tags if t.startswith(f"{prop}-") and t != wanted]:
                qube.tags.discard(tag)
                self.fire(qube, f"domain-tag-delete:{tag}", tag=tag)
            if wanted and wanted not in qube.tags:
                qube.tags.add(wanted)
                self.fire(qube, f"domain-tag-add:{wanted}", tag=wanted)

    def save(self) -> None:
        """Persist the state (atomically) if the rehearsal has a state directory."""
        if self.state_dir:
            self.state.save(self.state_dir)

    # -- create / remove ----------------------------------------------------------------

    def create(self, klass: str, name: str, label: str, template: str | None = None,
               pool: str | None = None, pools: dict | None = None, creator: str = "dom0",
               uuid: str | None = None, qid: int | None = None) -> Qube:
        """Add a qube with its volumes, as admin.vm.Create does after parsing."""
        dispid = self._new_dispid() if klass == "DispVM" else None
        if klass == "DispVM" and not name:
            name = f"disp{dispid}"
        if name in self.state.domains:
            raise wire.QubesValueError(f"VM {name} already exists")
        if klass in ("AppVM", "DispVM") and template is None:
            template = self.value(None, "default_template" if klass == "AppVM" else "default_dispvm")
            if template is None:
                raise wire.QubesValueError("Template for the qube not specified, nor default template set.")
        qube = Qube(name=name, klass=klass, qid=qid if qid is not None else self.state.next_qid(self.max_qid),
                    uuid=uuid or self.state.new_uuid())
        qube.props["label"] = label
        qube.dispid = dispid
        if template is not None:
            properties.check_template(self, qube, template)
            qube.props["template"] = template
        self.state.domains[name] = qube
        self.fire(None, "domain-add", vm=name)
        try:
            self._create_volumes(qube, pool, pools or {})
        except wire.QubesException:
            del self.state.domains[name]
            self.fire(None, "domain-delete", vm=name)
            raise
        tag = f"created-by-{creator}"
        qube.tags.add(tag)
        self.fire(qube, f"domain-tag-add:{tag}", tag=tag)
        creator_qube = self.state.domains.get(creator)
        for extra in (creator_qube.features.get("tag-created-vm-with", "") if creator_qube else "").split():
            qube.tags.add(extra)
        self.refresh_gui_tags(qube)
        if not self.value(None, "check_updates_vm", True):
            qube.features["check-updates"] = ""
        whonix.created(self, qube)  # qubesd's Whonix extension, at creation
        return qube

    def create_disposable(self, template: Qube, creator: str) -> Qube:
        """admin.vm.CreateDisposable: ``disp<dispid>`` from a disposable template."""
        qube = self.create("DispVM", "", self.value(template, "label"), template.name, creator=creator)
        qube.props["auto_cleanup"] = True
        tag = f"disp-created-by-{creator}"
        qube.tags.add(tag)
        self.fire(qube, f"domain-tag-add:{tag}", tag=tag)
        return qube

    def _new_dispid(self) -> int:
        used = {q.dispid for q in self.state.domains.values() if q.dispid is not None}
        while True:
            dispid = secrets.randbelow(9999) + 1
            if dispid not in used:
                return dispid

    def _pool_for(self, volume: str, pool: str | None, pools: dict) -> str:
        if volume in pools:
            return pools[volume]
        if volume == "kernel":
            return self.value(None, "default_pool_kernel") or "linux-kernel"
        if pool is not None:
            return pool
        return self.value(None, f"default_pool_{volume}") or self.value(None, "default_pool")

    def _create_volumes(self, qube: Qube, pool: str | None, pools: dict) -> None:
        """Volumes of a new qube (sizes and flags per class, as qubesd makes them)."""
        for name in pools:
            if name == "root" and qube.klass in ("AppVM", "DispVM"):
                template = self.template_of(qube)
                origin = template.volumes["root"].pool if template else None
                if pools[name] != origin:
                    raise wire.QubesException(
                        f"Snapshot volume root must be in the same pool as its origin (root volume of "
                        f"template),cannot move to pool {pools[name]} ")
        base = "vm-templates" if qube.klass == "TemplateVM" else "appvms"
        for name in VOLUME_NAMES:
            pool_name = self._pool_for(name, pool, pools)
            if name == "root" and qube.klass in ("AppVM", "DispVM"):
                pool_name = self.template_of(qube).volumes["root"].pool
            if name == "private" and qube.klass == "DispVM":
                pool_name = self.template_of(qube).volumes["private"].pool
            pool_obj = self.state.pools.get(pool_name)
            if pool_obj is None:
                raise wire.QubesException(f"Unknown storage pool {pool_name}")
            keep = int(pool_obj.config.get("revisions_to_keep", 0))
            vid = f"{base}/{qube.name}/{name}"
            vol = Volume(name=name, pool=pool_name, vid=vid, size=0)
            if name == "root":
                if qube.klass in ("AppVM", "DispVM"):
                    vol.snap_on_start = True
                    vol.size = self._root_source(qube).size
                else:
                    vol.save_on_stop, vol.size, vol.revisions_to_keep = True, ROOT_SIZE, keep
            elif name == "private":
                if qube.klass == "DispVM":
                    vol.snap_on_start = True
                    vol.size = self.template_of(qube).volumes["private"].size
                else:
                    vol.save_on_stop, vol.size, vol.revisions_to_keep = True, PRIVATE_SIZE, keep
            elif name == "volatile":
                vol.size = VOLATILE_SIZE
                vol.ephemeral = pool_obj.config.get("ephemeral_volatile") == "True"
            else:
                vol.rw, vol.vid, vol.size = False, "", 0
            qube.volumes[name] = vol

    def _root_source(self, qube: Qube) -> Volume:
        """The volume an AppVM/DispVM root snapshots (the template's, through DVM templates)."""
        template = self.template_of(qube)
        while template is not None and template.klass in ("AppVM", "DispVM"):
            template = self.template_of(template)
        return template.volumes["root"]

    def volume_view(self, qube: Qube, name: str) -> Volume:
        """A volume with the fields qubesd derives at read time (source, path, kernel)."""
        vol = qube.volumes[name]
        pool = self.state.pools[vol.pool]
        view = Volume(**{**vol.__dict__, "revisions": list(vol.revisions)})
        if name == "kernel":
            kernel = self.value(qube, "kernel") or ""
            view.vid = kernel
            view.path = f"{pool.config.get('dir_path')}/{kernel}/modules.img" if kernel else None
            view.size = KERNEL_SIZE if kernel else 0
            return view
        if vol.snap_on_start:
            source = self._root_source(qube) if name == "root" else self.template_of(qube).volumes["private"]
            view.source = source.vid
            view.path = f"{self.state.pools[source.pool].config.get('dir_path')}/{source.vid}.img"
            if name == "root":
                view.size = max(vol.size, source.size)
        else:
            view.path = f"{pool.config.get('dir_path')}/{vol.vid}.img"
        return view

    def references_to(self, qube: Qube) -> list[tuple[str | None, str]]:
        """(holder name or None for global, property) pairs that refer to ``qube``."""
        refs = []
        for prop in properties.GLOBAL_PROPS.values():
            if prop.type == "vm" and self.value(None, prop.name) == qube.name:
                refs.append((None, prop.name))
        for other in self.state.domains.values():
            if other is qube:
                continue
            for prop_name, prop in self.class_props(other.klass).items():
                if prop.type != "vm":
                    continue
                # R4.3 counts only explicit values of other qubes; R4.2 counted defaults too.
                current = self.value(other, prop_name) if self.release == "4.2" else other.props.get(prop_name)
                if current == qube.name:
                    refs.append((other.name, prop_name))
        return refs

    def remove(self, qube: Qube) -> None:
        """admin.vm.Remove: halted, not from a package, not in use."""
        if qube.klass == "AdminVM":
            raise wire.QubesVMInUseError("'dom0' cannot be removed")
        if self.release == "4.2" and not qube.is_halted:
            raise wire.QubesVMNotHaltedError(f"Domain is not powered off: '{qube.name}'")
        if self.value(qube, "installed_by_rpm"):
            raise wire.QubesVMInUseError(f"VM installed by package manager: {qube.name}")
        if not qube.is_halted:
            raise wire.QubesVMNotHaltedError(f"Domain is not powered off: '{qube.name}'")
        if self.references_to(qube):
            sep = ";" if self.release == "4.2" else ";  "
            raise wire.QubesVMInUseError(
                f"Domain is in use: '{qube.name}'{sep}see 'journalctl -u qubesd -e' in dom0 for details")
        self.fire(None, "domain-pre-delete", vm=qube.name)
        del self.state.domains[qube.name]
        for backend in list(self.backends):
            backend.qube_removed(qube.name)
        for prop in ("default_guivm", "default_netvm", "clockvm", "updatevm", "default_template"):
            if self.state.props.get(prop) == qube.name:
                del self.state.props[prop]
        self.fire(None, "domain-delete", vm=qube.name)

    # -- power ----------------------------------------------------------------------------

    def memory_in_use(self) -> int:
        """MiB held by running qubes (and dom0's own share)."""
        return DOM0_MEMORY_MIB + sum(
            self.value(q, "memory") or 0 for q in self.state.domains.values()
            if q.klass != "AdminVM" and q.is_running)

    def _observer(self):
        """The backend that knows the qubes' real power states (``power_states()``: the Xen backend), if any."""
        return next((b for b in self.backends if hasattr(b, "power_states")), None)

    def _observed_free_memory(self) -> int | None:
        observer = self._observer()
        return None if observer is None else observer.free_memory_mib()

    def observe_power(self) -> None:
        """Take the qubes' power states and xids from the backend that runs them for real (if one does).

        A domain the backend no longer has is Halted (the guest powered off, or someone destroyed it: the
        shutdown events fire as after a shutdown); a domain paused or unpaused behind the rehearsal's back is
        Paused or Running; Crashed and Dying are reported as they are.
        """
        observer = self._observer()
        if observer is None:
            return
        seen = observer.power_states()
        for qube in list(self.state.domains.values()):
            if qube.klass == "AdminVM" or qube.is_halted:
                continue
            state, domid = seen.get(qube.name, ("Halted", -1))
            if state == "Halted":
                qube.power_state = "Halting"
                self._finish_halt(qube)
            elif state != qube.power_state and not (state == "Running" and qube.power_state == "Halting"):
                qube.power_state = state
                qube.xid = domid

    async def start(self, qube: Qube) -> None:
        """admin.vm.Start: netvm chain first; a qube that is not halted is left alone."""
        if qube.klass == "AdminVM":
            raise wire.QubesVMNotHaltedError("Cannot start Dom0 fake domain!")
        if qube.power_state == "Halting":
            await self.wait_halted(qube)
        if not qube.is_halted:
            return
        if self.release != "4.2" and qube.features.get("prohibit-start"):
            self.fire(qube, "domain-start-failed", reason="prohibit-start")
            raise wire.QubesException(
                f"Qube start prohibited: {qube.features['prohibit-start']} (feature prohibit-start)")
        self.fire(qube, "domain-pre-start")
        if self.value(qube, "virt_mode") == "pvh" and not self.value(qube, "kernel"):
            raise wire.QubesException("virt_mode PVH require kernel to be set")
        netvm = properties.netvm_of(self, qube)
        if netvm is not None and netvm.klass != "AdminVM" and not netvm.is_running:
            try:
                await self.start(netvm)
            except wire.QubesException:
                self.fire(qube, "domain-start-failed", reason="netvm failed to start")
                raise
        memory = self.value(qube, "memory") or 0
        free = self._observed_free_memory()
        if (memory > free) if free is not None else (self.memory_in_use() + memory > self.state.host_memory_mib):
            self.fire(qube, "domain-start-failed", reason="not enough memory")
            raise wire.QubesMemoryError(f"Not enough memory to start domain '{qube.name}'")
        qube.power_state = "Running"
        qube.xid = self._next_xid
        self._next_xid += 1
        qube.start_time = round(time.time(), 2)
        for backend in list(self.backends):
            try:
                await backend.qube_started(qube)
            except wire.QubesException as exc:
                for other in self.backends:
                    other.qube_stopped(qube)
                self._halted(qube)
                self.fire(qube, "domain-start-failed", reason=str(exc))
                raise
        for prop in ("xid", "stubdom_xid", "start_time"):
            self.fire(qube, f"property-reset:{prop}", name=prop)
        self.fire(qube, "domain-spawn")
        self.fire(qube, "domain-start")

    def _halted(self, qube: Qube) -> None:
        handle = self._pending_halts.pop(qube.name, None)
        if handle is not None:
            handle.cancel()
        qube.power_state = "Halted"
        qube.xid = -1
        qube.start_time = None
        qube.attached = {}

    def _finish_halt(self, qube: Qube) -> None:
        if self.state.domains.get(qube.name) is not qube or qube.power_state != "Halting":
            return
        self._halted(qube)
        for backend in list(self.backends):
            backend.qube_stopped(qube)
        for vol in qube.volumes.values():
            # a save_on_stop volume keeps its previous contents as a revision
            if vol.save_on_stop and vol.revisions_to_keep > 0:
                vol.revisions.append(f"{time.time():.6f}-back")
                del vol.revisions[:-vol.revisions_to_keep]
        self.fire(qube, "domain-stopped")
        self.fire(qube, "domain-shutdown")
        for prop in ("xid", "stubdom_xid", "start_time"):
            self.fire(qube, f"property-reset:{prop}", name=prop)
        self._detach_exposed(qube)
        self.save()

    def _detach_exposed(self, backend: Qube) -> None:
        """The devices a halted qube exposed are gone: detached from the qubes they were attached to (as qubesd)."""
        for frontend in list(self.state.domains.values()):
            if frontend is backend or not frontend.is_running:
                continue
            for devclass, items in frontend.attached.items():
                for item in [i for i in items if i["backend"] == backend.name]:
                    items.remove(item)
                    self.backend_hook("device_detached", frontend, devclass, item)
                    self.fire(frontend, f"device-detach:{devclass}", port=f"{item['backend']}:{item['port_id']}")

    async def wait_halted(self, qube: Qube, timeout: float | None = None) -> None:
        """Wait for a Halting qube to reach Halted (QubesVMShutdownTimeoutError after ``timeout`` seconds)."""
        observer = self._observer()
        deadline = None if timeout is None else time.monotonic() + timeout
        while qube.power_state == "Halting":
            if deadline is not None and time.monotonic() > deadline:
                raise wire.QubesVMShutdownTimeoutError(f"Domain shutdown timed out: '{qube.name}'")
            await asyncio.sleep(0.01 if observer is None else 0.2)
            if observer is not None:
                self.observe_power()

    async def shutdown(self, qube: Qube, force: bool, wait: bool) -> None:
        """admin.vm.Shutdown: refuses while clients run unless forced; Halting, then Halted."""
        if qube.is_halted:
            raise wire.QubesVMNotStartedError(f"Domain is powered off: '{qube.name}'")
        if qube.power_state == "Halting":
            if wait:
                await self.wait_halted(qube)
            return
        clients = [q.name for q in self.connected_vms(qube) if q.is_running]
        self.fire(qube, "domain-pre-shutdown", force=force)
        if clients and not force:
            message = f"There are other VMs connected to this VM: {', '.join(clients)}"
            self.fire(qube, "domain-shutdown-failed", reason=message)
            raise wire.QubesVMError(message)
        qube.power_state = "Halting"
        observer = self._observer()
        if observer is not None:
            # the backend asks the guest; the qube is Halted when its domain is gone
            try:
                await observer.qube_shutdown(qube)
            except wire.QubesException as exc:
                # the guest cannot be asked (an HVM domain without PV drivers): it runs on
                qube.power_state = "Running"
                self.fire(qube, "domain-shutdown-failed", reason=str(exc))
                raise
            if wait:
                await self.wait_halted(qube, timeout=self.value(qube, "shutdown_timeout") or 60)
            return
        if self.shutdown_delay <= 0:
            self._finish_halt(qube)
            return
        loop = asyncio.get_running_loop()
        self._pending_halts[qube.name] = loop.call_later(self.shutdown_delay, self._finish_halt, qube)
        if wait:
            await self.wait_halted(qube)

    def powered_off_by_guest(self, qube: Qube) -> None:
        """The guest powered itself off (an installer's last step): Halted as after a shutdown, with no call."""
        if qube.power_state not in ("Running", "Halting"):
            return
        qube.power_state = "Halting"
        self._finish_halt(qube)

    def kill(self, qube: Qube) -> None:
        """admin.vm.Kill."""
        if qube.klass == "AdminVM":
            raise wire.QubesVMError("Cannot kill Dom0 fake domain!")
        if qube.is_halted:
            raise wire.QubesVMNotStartedError(f"Domain is powered off: '{qube.name}'")
        qube.power_state = "Halting"
        self._finish_halt(qube)

    def pause(self, qube: Qube) -> None:
        """admin.vm.Pause."""
        if qube.is_halted or qube.power_state == "Halting":
            raise wire.QubesVMNotRunningError(
                f"Domain not running (either powered off or paused): '{qube.name}'")
        if qube.power_state == "Paused":
            # libvirt refuses to suspend a paused domain; qubesd does not catch that.
            raise RuntimeError("libvirt: domain is already paused")
        qube.power_state = "Paused"
        for backend in list(self.backends):
            backend.qube_paused(qube, True)
        self.fire(qube, "domain-paused")

    def unpause(self, qube: Qube) -> None:
        """admin.vm.Unpause (and Resume of a paused qube)."""
        if qube.power_state not in ("Paused", "Suspended"):
            raise wire.QubesVMNotPausedError(f"Domain is not paused: '{qube.name}'")
        qube.power_state = "Running"
        for backend in list(self.backends):
            backend.qube_paused(qube, False)
        self.fire(qube, "domain-unpaused")

    def suspend(self, qube: Qube) -> None:
        """admin.vm.Suspend (R4.3)."""
        if qube.klass == "AdminVM":
            raise wire.QubesVMError("Cannot suspend Dom0 fake domain!")
        if qube.power_state not in ("Running", "Paused"):
            raise wire.QubesVMNotRunningError(
                f"Domain not running (either powered off or paused): '{qube.name}'")
        qube.power_state = "Suspended"
        for backend in list(self.backends):
            backend.qube_paused(qube, True)
        self.fire(qube, "domain-suspended")

    # -- volumes ----------------------------------------------------------------------------------

    def clone_token(self, qube: Qube, volume: str) -> str:
        """admin.vm.volume.CloneFrom: a 32-character token for CloneTo."""
        token = "".join(secrets.choice(string.ascii_letters + string.digits) for _i in range(32))
        self.clone_tokens[token] = (qube.name, volume)
        return token

    def clone_volume(self, qube: Qube, name: str, source: Qube, source_name: str) -> None:
        """admin.vm.volume.CloneTo: the volume takes the source volume's size, usage and contents."""
        vol, src = qube.volumes[name], source.volumes[source_name]
        vol.size, vol.usage = src.size, src.usage
        for backend in list(self.backends):
            backend.volume_cloned(qube, name, source, source_name)

    def resize(self, qube: Qube, name: str, size: int) -> None:
        """admin.vm.volume.Resize on the file driver: grow only; not snapshots or read-only volumes."""
        vol = qube.volumes[name]
        if not vol.rw:
            raise wire.StoragePoolException(f"Can not resize readonly volume {vol.vid}")
        if vol.snap_on_start:
            raise wire.StoragePoolException(
                "Cannot resize volume based on a template - resizethe template instead")
        if size < vol.size:
            raise wire.StoragePoolException(
                f"For your own safety, shrinking of {name} is disabled. If you really know what you "
                f"are doing, use `truncate` on {vol.vid} manually.")
        vol.size = size
