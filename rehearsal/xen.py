# SPDX-License-Identifier: GPL-3.0-or-later
"""The Xen backend of the rehearsal dom0: its qubes run as real Xen domains.

Switched on by ``serve --backend xen``, inside the nested Xen host (:mod:`rehearsal.xenhost`), where ``xl``
drives a real hypervisor.  Starting a qube creates a domain named after it with the qube's ``memory``,
``maxmem`` and ``vcpus``, of the type its ``virt_mode`` names (PVH, PV; HVM only where the hypervisor offers
it: ``virt_caps`` of ``xl info``); Shutdown, Kill, Pause and Unpause are ``xl shutdown``, ``xl destroy``,
``xl pause`` and ``xl unpause``.  What the rehearsal reports as a qube's power state, its ``xid`` and the
host's free memory comes from Xen (``xl list``, ``xl info``), read before each call that concerns a qube,
so a domain that went away (the guest powered off, someone ran ``xl destroy``) is Halted, as qubesd sees it.

Stand-in (documented): a qube's OS is not its template's.  A PVH or PV domain boots the host's own Linux
kernel with a busybox initramfs (:data:`KERNEL`, :data:`INITRAMFS`, built into the host's image) whatever the
qube's ``kernel`` property names, and powers off when Xen asks it to; an HVM domain runs its firmware with
no disk (the qube's volumes are metadata), so only Kill ends it.  It runs no qrexec agent, so, as qubesd
for a qube without the ``qrexec`` feature, a start does not wait for one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess

from ansible_collections.corral.qubes.plugins.module_utils import hardware, wire

KERNEL = "/var/lib/corral-xen/vmlinuz"
INITRAMFS = "/var/lib/corral-xen/initramfs.cpio.gz"
"""The stand-in OS of every domain: the host's kernel and a busybox initramfs (made by :mod:`rehearsal.xenhost`)."""

XL_STATES = {"r": "Running", "b": "Running", "p": "Paused", "s": "Halting", "c": "Crashed", "d": "Dying"}
"""``xl list``'s state letters (running, blocked, paused, shutdown, crashed, dying) as qubesd names them."""


class XlError(wire.QubesException):
    """An ``xl`` command failed (the message carries its error output)."""


def xl_list(text: str) -> dict[str, dict]:
    """``xl list`` output -> name -> {id, memory, vcpus, state}; Domain-0 left out."""
    domains = {}
    for line in text.splitlines()[1:]:
        words = line.split()
        if len(words) < 6 or words[0] == "Domain-0":
            continue
        flags = words[4].replace("-", "")
        state = next((XL_STATES[f] for f in "dcsp" if f in flags), "Running")
        domains[words[0]] = {"id": int(words[1]), "memory": int(words[2]), "vcpus": int(words[3]), "state": state}
    return domains


def domain_config(name: str, uuid: str, virt_mode: str, memory: int, maxmem: int, vcpus: int) -> str:
    """The ``xl create`` configuration of a qube's domain (as qubesd's libvirt XML would make it)."""
    lines = [f'name = "{name}"', f'uuid = "{uuid}"', f'type = "{virt_mode}"',
             f"memory = {memory}", f"maxmem = {max(maxmem, memory)}", f"vcpus = {vcpus}",
             'on_poweroff = "destroy"', 'on_reboot = "destroy"', 'on_crash = "destroy"']
    if virt_mode == "hvm":
        lines += ['boot = "c"', 'serial = "pty"', 'vnc = 0', 'sdl = 0']
    else:
        lines += [f'kernel = "{KERNEL}"', f'ramdisk = "{INITRAMFS}"', f'extra = "console=hvc0 quiet qube={name}"']
    if virt_mode == "pvh":
        # the emulated CPU of the nested host advertises rdtscp, which a PVH guest then traps on
        lines.append('cpuid = "host,rdtscp=0"')
    return "\n".join(lines) + "\n"


class Xen:
    """A backend of :class:`rehearsal.dom0.Dom0`: the qubes as Xen domains (see the module's text)."""

    def __init__(self, dom0, state_dir: str, xl: str = "xl"):
        self.dom0 = dom0
        self.xl = xl
        self.config_dir = os.path.join(os.path.abspath(state_dir), "xen")
        os.makedirs(self.config_dir, exist_ok=True)
        self._virt_caps: list[str] | None = None

    # -- xl -------------------------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``xl ARGS`` (XlError naming the command and its error output when it fails and ``check``)."""
        proc = subprocess.run([self.xl, *args], capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise XlError(f"xl {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()}")
        return proc

    def domains(self) -> dict[str, dict]:
        """The domains Xen runs now (``xl list``), by name."""
        return xl_list(self.run("list").stdout)

    def info(self) -> dict[str, str]:
        """``xl info``."""
        return hardware.parse_xl_info(self.run("info").stdout)

    def free_memory_mib(self) -> int:
        """What Xen has free for a new domain (``free_memory`` of ``xl info``)."""
        return int(self.info()["free_memory"])

    @property
    def virt_caps(self) -> list[str]:
        """What the hypervisor can run (``virt_caps`` of ``xl info``: pv, hvm, ...)."""
        if self._virt_caps is None:
            self._virt_caps = self.info().get("virt_caps", "").split()
        return self._virt_caps

    # -- what Dom0 asks -----------------------------------------------------------------------------

    def power_states(self) -> dict[str, tuple[str, int]]:
        """name -> (power state, domain id) of every domain Xen has."""
        return {name: (d["state"], d["id"]) for name, d in self.domains().items()}

    async def qube_started(self, qube) -> None:
        """``xl create`` the qube's domain; its xid is Xen's domain id."""
        virt_mode = self.dom0.value(qube, "virt_mode") or "pvh"
        if virt_mode == "hvm" and "hvm" not in self.virt_caps:
            raise wire.QubesException(
                f"Cannot start '{qube.name}': virt_mode hvm needs the hypervisor's HVM support, and this Xen "
                f"host offers only {' '.join(self.virt_caps) or 'nothing'} (virt_caps of xl info: the emulated "
                "CPU has no hardware virtualization); give the qube virt_mode pvh or pv here")
        memory = int(self.dom0.value(qube, "memory") or 0)
        maxmem = int(self.dom0.value(qube, "maxmem") or 0)
        vcpus = int(self.dom0.value(qube, "vcpus") or 1)
        path = os.path.join(self.config_dir, f"{qube.name}.cfg")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(domain_config(qube.name, qube.uuid, virt_mode, memory, maxmem, vcpus))
        if qube.name in self.domains():
            # a leftover of an earlier run of the rehearsal: qubesd would not know it either
            self.run("destroy", qube.name, check=False)
        proc = await asyncio.create_subprocess_exec(self.xl, "create", path, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise XlError(f"Start failed: xl create {qube.name}: "
                          f"{(err or out).decode('utf-8', 'replace').strip()[-1500:]}")
        domid = self.run("domid", qube.name).stdout.strip()
        qube.xid = int(domid)

    async def qube_shutdown(self, qube) -> None:
        """``xl shutdown``: Xen asks the guest to power off; it is Halted when Xen no longer has it."""
        self.run("shutdown", qube.name)

    def qube_stopped(self, qube) -> None:
        """After a kill (or a shutdown that ended): the domain is gone (destroyed if it is not yet)."""
        if qube.name in self.domains():
            self.run("destroy", qube.name, check=False)

    def qube_paused(self, qube, paused: bool) -> None:
        """``xl pause`` / ``xl unpause``."""
        self.run("pause" if paused else "unpause", qube.name)

    def qube_removed(self, name: str) -> None:
        """The qube is gone: its domain configuration too."""
        try:
            os.unlink(os.path.join(self.config_dir, f"{name}.cfg"))
        except FileNotFoundError:
            pass

    def volume_cloned(self, qube, volume: str, source, source_volume: str) -> None:  # pylint: disable=unused-argument
        """Volumes stay metadata: the stand-in OS boots from its initramfs."""

    # -- a companion of the server --------------------------------------------------------------------

    async def start(self) -> None:
        """Run the qubes from now on; what Xen runs now is the truth (:meth:`rehearsal.dom0.Dom0.observe_power`)."""
        self.dom0.backends.insert(0, self)
        self.dom0.observe_power()

    async def stop(self) -> None:
        """The domains keep running when the rehearsal stops, as a real dom0's do when qubesd restarts."""
        if self in self.dom0.backends:
            self.dom0.backends.remove(self)
