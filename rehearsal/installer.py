# SPDX-License-Identifier: GPL-3.0-or-later
"""The HVM installer stand-in: what an operating system's installer does when an HVM boots from install media.

A stand-in (the rehearsal runs no guest code): when a qube that boots from
its disks (``virt_mode`` hvm, ``kernel`` empty) starts with CD-ROMs attached
(R4.3: block assignments with ``devtype=cdrom``; R4.2: block attachments with
``devtype=cdrom``), it reads the real ISO images behind them (the files a
backend qube set up with ``losetup``, :meth:`rehearsal.roots.Roots.block_devices`)
with pycdlib, and plays the installer it finds there (:data:`SETUPS`).

Windows setup:

* a bootable medium (El Torito) with ``sources/install.wim`` is the Windows
  medium; without one the firmware finds no bootable device and the qube stays
  running, doing nothing;
* ``autounattend.xml`` at the root of an attached medium is the answer file
  (setup's implicit search of removable media); it is checked (:func:`check_answer`);
  a missing or faulty one stops setup where it would ask the user, and the qube
  stays running;
* a good one "installs": after ``delay`` seconds the root volume has used
  space, the guest keeps the network settings the answer file gives
  (``Qube.guest``, which network realisation applies to the qube's end of its
  link: a wrong address really breaks its network) and the guest powers off,
  as its last first-logon command asks.

FreeBSD's bsdinstall (:func:`freebsd_setup`):

* a bootable medium with ``usr/freebsd-dist/MANIFEST`` is a FreeBSD one;
  without ``etc/installerconfig`` the installer's menu waits for the user;
* the install script is checked as bsdinstall would meet it: ``sh -n`` on the
  whole file (a syntax error stops it), the preamble's assignments (the stand-in
  reads only ``NAME=value`` and ``export NAME=value`` lines there, where
  bsdinstall would source any shell), ``PARTITIONS`` (``DEFAULT`` or a layout of
  the disk the guest sees, ``ada0``), every set of ``DISTRIBUTIONS`` (default
  ``kernel.txz base.txz``) listed in the medium's MANIFEST and present (the
  installer has no network to fetch one), and the disk's size;
* the script's ``sysrc`` lines make the new system's rc.conf: the host name,
  ``ifconfig_xn0`` (the guest's only network interface: FreeBSD's Xen driver,
  which gets no DHCP in Qubes, so ``DHCP`` or another interface leaves the guest
  without an address), ``defaultrouter``; ``nameserver`` lines its resolv.conf;
* a good script "installs" after ``delay`` seconds, and bsdinstall's reboot at
  the end powers the qube off (Qubes ends a domain that reboots).

What happened is written to ``STATE/qubes/NAME/installer.log`` (the qube's
screen).  Installed guests boot from disk afterwards with no media needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import ipaddress
import logging
import os
import re
import shlex
import subprocess
import time
import xml.etree.ElementTree as ET

LOG = logging.getLogger("rehearsal.installer")
NS = "urn:schemas-microsoft-com:unattend"
GiB = 1024 ** 3
USED = {"amd64": 16 * GiB, "x86": 12 * GiB}
"""Used space on the root volume after the install, by processor architecture (a stand-in figure)."""
NEEDS = {"amd64": 20 * GiB, "x86": 16 * GiB}
"""The smallest disk Windows 7 setup accepts (Microsoft's system requirements)."""
NO_BOOT = "No bootable device."


class SetupError(ValueError):
    """What Windows setup would stop at (the message is what the stand-in shows)."""


def boots_from_disk(dom0, qube) -> bool:
    """An HVM without a kernel of dom0's: its firmware boots from its disks or CD-ROMs."""
    return dom0.value(qube, "virt_mode") == "hvm" and not dom0.value(qube, "kernel")


def guest_link(dom0, qube):
    """How the guest configures its end of the network link (see :func:`rehearsal.netns.link`).

    ``(address, prefix, gateway)`` for an HVM whose system this stand-in installed with static settings
    (``("", 0, "")`` when that system set no address);
    ``None`` (as Qubes configures it) otherwise: qubes with a kernel of dom0's, an installed guest that takes
    DHCP (an HVM's emulated card gets the Qubes address from its stubdomain), and HVMs this stand-in never
    installed, which keep the rehearsal's usual configuration as though their system took the Qubes address.
    """
    if qube is None or not boots_from_disk(dom0, qube) or qube.klass == "AdminVM":
        return None
    net = (qube.guest or {}).get("network")
    if net is None or net.get("dhcp"):
        return None
    if net.get("none"):
        return ("", 0, "")  # the guest set no address: its end of the link is up, with nothing on it
    return (net["address"], int(net["prefix"]), net.get("gateway") or "")


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _text(node, path: str) -> str | None:
    found = node.find("/".join(_q(part) for part in path.split("/"))) if node is not None else None
    return found.text.strip() if found is not None and found.text else None


def _component(passes: dict, pass_name: str, name: str):
    for comp in passes.get(pass_name, []):
        if comp.get("name") == name:
            return comp
    return None


def check_answer(data: bytes, disk_size: int) -> dict:
    """What setup reads from an answer file, or :class:`SetupError` for what would stop it.

    Returns ``arch``, ``computer_name``, ``user``, ``network`` (``{"dhcp": True}`` or address, prefix,
    gateway, dns) and ``shutdown`` (the last first-logon command powers the guest off).
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SetupError(f"Windows could not parse the answer file: {exc}") from None
    if root.tag != _q("unattend"):
        raise SetupError(f"the answer file's root element is {root.tag}, not unattend in {NS}")
    passes: dict[str, list] = {}
    for settings in root.findall(_q("settings")):
        passes.setdefault(settings.get("pass"), []).extend(settings.findall(_q("component")))
    for pass_name in ("windowsPE", "oobeSystem"):
        if pass_name not in passes:
            raise SetupError(f"the answer file has no {pass_name} settings")
    archs = {comp.get("processorArchitecture") for comps in passes.values() for comp in comps}
    if len(archs) != 1 or archs - set(USED):
        raise SetupError(f"the answer file's components name processor architectures {sorted(map(str, archs))}")
    arch = archs.pop()
    setup = _component(passes, "windowsPE", "Microsoft-Windows-Setup")
    if setup is None:
        raise SetupError("windowsPE has no Microsoft-Windows-Setup component")
    disk = setup.find(f"{_q('DiskConfiguration')}/{_q('Disk')}")
    if disk is None or _text(disk, "WillWipeDisk") != "true":
        raise SetupError("no disk to wipe: setup would ask where to install")
    if _text(setup, "ImageInstall/OSImage/InstallTo/DiskID") is None:
        raise SetupError("ImageInstall names no disk to install to")
    key = _text(setup, "UserData/ProductKey/Key")
    if key is not None and (len(key) != 29 or any(len(g) != 5 for g in key.split("-"))):
        raise SetupError("The product key is not valid")
    if _text(setup, "UserData/AcceptEula") != "true":
        raise SetupError("the license terms are not accepted: setup would ask")
    if disk_size < NEEDS[arch]:
        raise SetupError(f"Windows cannot be installed to this disk: it is {disk_size // GiB} GB, "
                         f"setup needs {NEEDS[arch] // GiB} GB")
    shell = _component(passes, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    accounts = shell.find(f"{_q('UserAccounts')}/{_q('LocalAccounts')}") if shell is not None else None
    users = [_text(a, "Name") for a in accounts] if accounts is not None else []
    if not users:
        raise SetupError("oobeSystem creates no user account: Windows would ask for one")
    commands = shell.find(_q("FirstLogonCommands")) if shell is not None else None
    lines = sorted(((int(_text(c, "Order") or 0), _text(c, "CommandLine") or "") for c in commands),
                   key=lambda item: item[0]) if commands is not None else []
    last = lines[-1][1].lower() if lines else ""
    special = _component(passes, "specialize", "Microsoft-Windows-Shell-Setup")
    return {"arch": arch, "user": users[0], "computer_name": _text(special, "ComputerName"),
            "network": _network(passes), "shutdown": "shutdown" in last and "/s" in last}


def _network(passes: dict) -> dict:
    tcpip = _component(passes, "specialize", "Microsoft-Windows-TCPIP")
    if tcpip is None:
        return {"dhcp": True}
    iface = tcpip.find(f"{_q('Interfaces')}/{_q('Interface')}")
    if iface is None or _text(iface, "Ipv4Settings/DhcpEnabled") != "false":
        return {"dhcp": True}
    address = _text(iface, "UnicastIpAddresses/IpAddress")
    try:
        parsed = ipaddress.IPv4Interface(address or "")
    except ValueError:
        raise SetupError(f"the static address {address!r} is not an IPv4 address with a prefix") from None
    gateway = None
    for route in iface.findall(f"{_q('Routes')}/{_q('Route')}"):
        if _text(route, "Prefix") == "0.0.0.0/0":
            gateway = _text(route, "NextHopAddress")
    dns_client = _component(passes, "specialize", "Microsoft-Windows-DNS-Client")
    dns = []
    if dns_client is not None:
        for item in dns_client.iter(_q("IpAddress")):
            dns.append(item.text.strip())
    return {"address": str(parsed.ip), "prefix": parsed.network.prefixlen, "gateway": gateway, "dns": dns}


@dataclasses.dataclass
class Medium:
    """What one attached CD-ROM holds."""

    port: str
    bootable: bool
    files: dict
    """Lower-case path -> size."""
    answer: bytes | None
    texts: dict = dataclasses.field(default_factory=dict)
    """Lower-case path -> contents, for the files an installer reads (:data:`TEXTS`)."""


TEXTS = ("/autounattend.xml", "/etc/installerconfig", "/usr/freebsd-dist/manifest")
"""Files an installer reads from its media: Windows setup's answer file, bsdinstall's script and set list."""


def read_medium(path: str, port: str) -> Medium:
    """An ISO image read with pycdlib: El Torito boot record, file sizes and the files of :data:`TEXTS`."""
    import pycdlib  # pylint: disable=import-outside-toplevel  # only the installer needs it

    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        # a vendor's DVD keeps its files in UDF (its ISO 9660 part may hold only a notice); else the richest names
        facade_kind = ("udf_path" if iso.has_udf() else "rr_path" if iso.has_rock_ridge()
                       else "joliet_path" if iso.has_joliet() else "iso_path")
        files = {}
        texts = {}
        for dirpath, _dirs, names in iso.walk(**{facade_kind: "/"}):
            for name in names:
                full = (dirpath.rstrip("/") + "/" + name)
                clean = full.split(";")[0].lower()
                record = iso.get_record(**{facade_kind: full})
                files[clean] = record.get_data_length()
                if clean in TEXTS:
                    out = io.BytesIO()
                    iso.get_file_from_iso_fp(out, **{facade_kind: full})
                    texts[clean] = out.getvalue()
        answer = texts.get("/autounattend.xml")
        bootable = getattr(iso, "eltorito_boot_catalog", None) is not None
    finally:
        iso.close()
    return Medium(port, bootable, files, answer, texts)


@dataclasses.dataclass
class Install:
    """What an installer found on its media and will do: the message it shows, the guest it leaves, the space used."""

    message: str
    guest: dict
    """``os``, ``network`` (``{"dhcp": True}`` or address, prefix, gateway, dns) and what else the system is."""
    used: int
    powers_off: bool
    reboots: tuple[str, ...] = ()
    """What each later boot from the disk does, in order, when the installer reboots on the way: each reboot powers
    the qube off (Qubes ends a domain that reboots), and the install goes on only when the qube is started again."""


def windows_setup(media: list[Medium], disk_size: int) -> Install | None:
    """Windows setup: None when no medium is a Windows one; :class:`SetupError` where setup would stop."""
    windows = [m for m in media if m.bootable and "/sources/install.wim" in m.files]
    if not windows:
        return None
    answers = [m.answer for m in media if m.answer is not None]
    if not answers:
        raise SetupError("Windows setup: no answer file; setup waits for the user (Install now)")
    try:
        setup = check_answer(answers[0], disk_size)
    except SetupError as exc:
        raise SetupError(f"Windows setup stopped: {exc}") from None
    guest = {"os": "Windows", "arch": setup["arch"], "user": setup["user"],
             "computer_name": setup["computer_name"], "network": setup["network"]}
    return Install(f"Windows setup: installing from {windows[0].port} with the answer file "
                   f"(sha256 {hashlib.sha256(answers[0]).hexdigest()[:12]})", guest,
                   USED[setup["arch"]] + windows[0].files["/sources/install.wim"], setup["shutdown"], WINDOWS_REBOOTS)


WINDOWS_REBOOTS = ("Windows setup goes on from the disk: updating the registry, starting services, installing devices, "
                   "applying the system settings (specialize)",
                   "Windows setup prepares the computer for first use; Windows Welcome with the answer file, the "
                   "first logon and the first-logon commands (oobeSystem)")
"""Windows 7 setup's boots from the disk: it restarts the computer after copying its files and after the first."""


FREEBSD_USED = 2 * GiB
"""Used space on the root volume after bsdinstall (the sets extracted, the default layout's swap): a stand-in figure."""
FREEBSD_NEEDS = 3 * GiB // 2
"""The smallest disk the stand-in's bsdinstall takes (the FreeBSD handbook's minimum for a system without desktop)."""
FREEBSD_DISKS = ("ada0",)
"""The disks the guest sees: its root volume (further volumes would follow)."""
FREEBSD_INTERFACE = "xn0"
"""The guest's network interface: FreeBSD's Xen network driver takes over the HVM's network card."""
ASSIGNMENT = re.compile(r"^(export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def _sh_syntax(text: bytes) -> str | None:
    """``sh -n``'s complaint about a script, or None."""
    done = subprocess.run(["sh", "-n"], input=text, capture_output=True, check=False, timeout=30)
    if done.returncode == 0:
        return None
    return done.stderr.decode("utf-8", "replace").strip() or "syntax error"


def _preamble(lines: list[str]) -> dict:
    """The variables a preamble sets; :class:`SetupError` for a line the stand-in cannot read."""
    found = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = ASSIGNMENT.match(text)
        if match is None:
            raise SetupError(f"the stand-in reads only assignments in the preamble; line {number} is {text!r}")
        try:
            words = shlex.split(match.group(3))
        except ValueError as exc:
            raise SetupError(f"line {number} of the preamble: {exc}") from None
        found[match.group(2)] = " ".join(words)
    return found


def _partitions(value: str) -> None:
    disk = value.split()[0] if value.split() else ""
    if disk != "DEFAULT" and disk not in FREEBSD_DISKS:
        raise SetupError(f"PARTITIONS names disk {disk!r}; the guest's disks are {', '.join(FREEBSD_DISKS)}")
    if value.count("{") != value.count("}"):
        raise SetupError(f"PARTITIONS {value!r}: unbalanced braces")


def _rc_conf(script: list[str]) -> dict:
    """What the script's ``sysrc`` lines write to rc.conf."""
    conf = {}
    for line in script:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words[:1] == ["sysrc"]:
            for word in words[1:]:
                name, sep, value = word.partition("=")
                if sep and not name.startswith("-"):
                    conf[name] = value
    return conf


def _freebsd_network(conf: dict, script: list[str]) -> tuple[dict, str]:
    """The guest's network from rc.conf and resolv.conf lines, and what the stand-in says of it."""
    interfaces = sorted(key[len("ifconfig_"):] for key in conf if key.startswith("ifconfig_"))
    setting = conf.get(f"ifconfig_{FREEBSD_INTERFACE}")
    if setting is None:
        return {"none": True}, f"no address: rc.conf configures {', '.join(interfaces) or 'no interface'}, the " \
                               f"guest has {FREEBSD_INTERFACE}"
    words = setting.split()
    if not words or words[0].upper() in ("DHCP", "SYNCDHCP"):
        return {"none": True}, f"no address: {FREEBSD_INTERFACE} asks for DHCP, which Xen's network driver does " \
                               "not get in Qubes"
    try:
        if words[0] != "inet":
            raise ValueError(words[0])
        if len(words) >= 4 and words[2] == "netmask":
            parsed = ipaddress.IPv4Interface(f"{words[1]}/{words[3]}")
        else:
            parsed = ipaddress.IPv4Interface(words[1])
    except (ValueError, IndexError):
        raise SetupError(f"ifconfig_{FREEBSD_INTERFACE}={setting!r} is not 'inet ADDRESS/PREFIX'") from None
    dns = [m.group(1) for m in (re.match(r"^\s*nameserver\s+(\S+)", line) for line in script) if m]
    net = {"address": str(parsed.ip), "prefix": parsed.network.prefixlen, "gateway": conf.get("defaultrouter"),
           "dns": dns}
    return net, f"{FREEBSD_INTERFACE} {parsed.with_prefixlen} via {net['gateway'] or 'no router'}"


def freebsd_setup(media: list[Medium], disk_size: int) -> Install | None:
    """bsdinstall: None when no medium is a FreeBSD one; :class:`SetupError` where it would stop."""
    freebsd = [m for m in media if m.bootable and "/usr/freebsd-dist/manifest" in m.texts]
    if not freebsd:
        return None
    medium = freebsd[0]  # the firmware boots the first bootable CD-ROM; its root is the installer's
    config = medium.texts.get("/etc/installerconfig")
    if config is None:
        raise SetupError("FreeBSD installer: no /etc/installerconfig; the menu waits for the user (Install, Shell, "
                         "Live CD)")
    complaint = _sh_syntax(config)
    if complaint:
        raise SetupError(f"bsdinstall: the install script does not parse: {complaint}")
    lines = config.decode("utf-8", "replace").splitlines()
    cut = next((i for i, line in enumerate(lines) if line.startswith("#!")), len(lines))
    variables = _preamble(lines[:cut])
    script = lines[cut + 1:]
    _partitions(variables.get("PARTITIONS", "DEFAULT"))
    listed = {line.split("\t")[0]: line for line in medium.texts["/usr/freebsd-dist/manifest"].decode(
        "utf-8", "replace").splitlines() if line.strip()}
    sets = variables.get("DISTRIBUTIONS", "kernel.txz base.txz").split()
    for name in sets:
        if name not in listed or f"/usr/freebsd-dist/{name}" not in medium.files:
            raise SetupError(f"bsdinstall: distribution {name} is not on the media (MANIFEST lists "
                             f"{', '.join(sorted(listed))}) and the installer has no network to fetch it")
    if disk_size < FREEBSD_NEEDS:
        raise SetupError(f"bsdinstall: the disk is {disk_size / GiB:.1f} GB, too small for FreeBSD")
    conf = _rc_conf(script)
    net, said = _freebsd_network(conf, script)
    guest = {"os": "FreeBSD", "hostname": conf.get("hostname"), "network": net, "sets": sets,
             "sshd": conf.get("sshd_enable", "NO").upper() == "YES",
             "root_password": any("pw usermod root" in line and " -H" in line for line in script)}
    return Install(f"bsdinstall: installing {' '.join(sets)} from {medium.port} with /etc/installerconfig "
                   f"(sha256 {hashlib.sha256(config).hexdigest()[:12]}); network: {said}", guest,
                   FREEBSD_USED + sum(medium.files[f"/usr/freebsd-dist/{name}"] for name in sets), True)


SETUPS = (windows_setup, freebsd_setup)
"""The installers the stand-in knows, tried in order on a starting HVM's media (each: media, disk size ->
:class:`Install` or None, or :class:`SetupError`)."""


class Installer:
    """A backend of :class:`~rehearsal.dom0.Dom0`: plays the installer of HVMs that start with install media."""

    def __init__(self, dom0, state_dir: str, delay: float = 1.0):
        self.dom0 = dom0
        self.state_dir = os.path.abspath(state_dir)
        self.delay = delay
        self.pending: dict[str, asyncio.Task] = {}

    async def start(self) -> None:
        self.dom0.backends.append(self)

    async def stop(self) -> None:
        if self in self.dom0.backends:
            self.dom0.backends.remove(self)
        for task in list(self.pending.values()):
            task.cancel()
        self.pending.clear()

    def screen(self, qube, text: str) -> None:
        """What the qube's window would show, appended to its installer log."""
        folder = os.path.join(self.state_dir, "qubes", qube.name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "installer.log"), "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")
        LOG.info("installer: %s: %s", qube.name, text)

    @staticmethod
    def cdroms(qube) -> list[dict]:
        """The CD-ROMs of a starting qube: its block assignments and attachments with ``devtype=cdrom``."""
        items = list(qube.devices.get("block", [])) + list(qube.attached.get("block", []))
        return [item for item in items if item.get("options", {}).get("devtype") == "cdrom"]

    async def qube_started(self, qube) -> None:
        """Read the media of an HVM that boots from disk; schedule the install when they hold a good one, or the
        next step of an install that rebooted."""
        if qube.klass == "AdminVM" or not boots_from_disk(self.dom0, qube):
            return
        if (qube.guest or {}).get("setup_left"):
            # the disk holds a setup under way: the firmware boots it (a Windows DVD's "press any key" times out)
            self.pending[qube.name] = asyncio.ensure_future(self._go_on(qube))
            return
        from rehearsal import devices  # pylint: disable=import-outside-toplevel  # devices imports the registry

        cdroms = self.cdroms(qube)
        media = []
        loop = asyncio.get_running_loop()
        for item in cdroms:
            info = devices.block_devices(self.dom0, item["backend"]).get(item["port_id"])
            if info is None:
                self.screen(qube, f"CD-ROM {item['backend']}:{item['port_id']}: no medium")
                continue
            try:
                media.append(await loop.run_in_executor(None, read_medium, info["host_path"], item["port_id"]))
            except Exception as exc:  # pylint: disable=broad-exception-caught  # an unreadable image: no medium
                self.screen(qube, f"CD-ROM {item['backend']}:{item['port_id']}: unreadable medium ({exc})")
        root = qube.volumes.get("root")
        for setup in SETUPS:
            try:
                install = setup(media, root.size if root else 0)
            except SetupError as exc:
                self.screen(qube, str(exc))
                return
            if install is not None:
                self.screen(qube, install.message)
                self.pending[qube.name] = asyncio.ensure_future(self._install(qube, install))
                return
        if not (qube.guest or {}).get("os"):
            self.screen(qube, NO_BOOT)

    async def _install(self, qube, install: Install) -> None:
        try:
            await asyncio.sleep(self.delay)
            if not qube.is_running or self.dom0.state.domains.get(qube.name) is not qube:
                return
            root = qube.volumes.get("root")
            if root is not None:
                root.usage = min(root.size, install.used)
            qube.guest = dict(install.guest)
            if install.reboots:
                qube.guest["setup_left"] = list(install.reboots)
                qube.guest["powers_off"] = install.powers_off
                self.screen(qube, f"{install.guest['os']} setup copied its files and restarts the computer (Qubes "
                                  "powers the qube off: start it again)")
                self.dom0.powered_off_by_guest(qube)
                return
            if not install.powers_off:
                self.screen(qube, f"{install.guest['os']} installed; it keeps running (no power-off at the end)")
                self.dom0.save()
                return
            self.screen(qube, f"{install.guest['os']} installed; its last step shuts it down")
            self.dom0.powered_off_by_guest(qube)
        finally:
            self.pending.pop(qube.name, None)

    async def _go_on(self, qube) -> None:
        """The next boot of an install that rebooted: one more step, then a reboot (power-off) or the end."""
        try:
            await asyncio.sleep(self.delay)
            if not qube.is_running or self.dom0.state.domains.get(qube.name) is not qube:
                return
            guest = dict(qube.guest)
            left = list(guest.pop("setup_left"))
            self.screen(qube, left.pop(0))
            if left:
                qube.guest = {**guest, "setup_left": left}
                self.screen(qube, "setup restarts the computer (Qubes powers the qube off: start it again)")
                self.dom0.powered_off_by_guest(qube)
                return
            powers_off = guest.pop("powers_off", True)
            qube.guest = guest
            if not powers_off:
                self.screen(qube, f"{guest['os']} installed; it keeps running (no power-off at the end)")
                self.dom0.save()
                return
            self.screen(qube, f"{guest['os']} installed; its last step shuts it down")
            self.dom0.powered_off_by_guest(qube)
        finally:
            self.pending.pop(qube.name, None)

    def qube_stopped(self, qube) -> None:
        task = self.pending.pop(qube.name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def qube_paused(self, qube, paused: bool) -> None:  # pylint: disable=unused-argument
        """A paused installer waits (nothing to do here: the delay is short)."""

    def qube_removed(self, name: str) -> None:
        task = self.pending.pop(name, None)
        if task is not None:
            task.cancel()

    def volume_cloned(self, qube, volume: str, source, source_volume: str) -> None:
        """A clone of an installed qube's root holds the same system."""
        if volume == "root" and source.guest:
            qube.guest = dict(source.guest)
