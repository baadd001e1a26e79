# SPDX-License-Identifier: GPL-3.0-or-later
"""The nested Xen host: a real Xen hypervisor with a Debian dom0, under QEMU, where the rehearsal dom0 runs
its qubes as Xen domains (:mod:`rehearsal.xen`).

* Its image is made from a root filesystem of the same builder as the qubes' (:mod:`rehearsal.rootfs`, the
  variant :data:`INCLUDE`: Debian's ``xen-system-amd64``, a kernel, systemd, sshd, Python 3 and what the
  rehearsal needs), with the host's own files added (:func:`customise`), written into an ext4 image without
  mounting (``mke2fs -d``), and cached in ``$CORRAL_CACHE/xenhost`` (rebuilt when missing or of another
  version).  Everything in it comes from apt.
* It boots under QEMU's full emulation (KVM cannot run Xen on our machines): Xen is the multiboot kernel,
  dom0's kernel and initrd its modules (``-cpu max,-smap,-smep``).  The image is used read-only (``snapshot``):
  a run's writes are lost at stop.  The checkout is shared read-only (9p) at :data:`INSIDE_REPO`; ``DIR/share``
  holds the run's ssh key.  Its only network is QEMU's user network with ``restrict=on``: no route out,
  sshd forwarded to a port of this machine's loopback.
* ``start`` waits until sshd answers and ``xl list`` works, then starts ``python3 -m rehearsal serve
  --backend xen`` in it (systemd unit ``corral-rehearsal``) with the production paths (``/var/run/qubesd.sock``,
  ``/etc/qubes/policy.d``, ``/var/lib/qubes``); ``stop`` powers it off (QEMU killed if it does not end).

``python -m rehearsal xenhost build|start|stop|status|ssh-config|exec --dir DIR [-- COMMAND...]``.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from rehearsal import rootfs
from rehearsal.dom0host import (  # one error, command runner, record, key and ssh config for both hosts
    HostError, _run, ensure_key, running_record, write_ssh_config)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTFS_NAME = "debian-xenhost"
INCLUDE = rootfs.DOM0HOST_INCLUDE + ("xen-system-amd64", "linux-image-amd64", "systemd-sysv", "udev", "kmod",
                                     "busybox-static", "cpio", "seabios", "qemu-system-xen")
"""The host's packages: the dom0 host's, Xen with its tools, a kernel, systemd, busybox with cpio (what the
qubes' stand-in OS is made of), and what HVM domains need: their firmware (seabios) and device model
(qemu-system-xen)."""
IMAGE_VERSION = 2
"""Of what :func:`customise` puts in; a cached image of another version is made again."""
IMAGE_SIZE = "3G"
INSIDE_COLLECTIONS = "/usr/local/lib/corral"
INSIDE_REPO = INSIDE_COLLECTIONS + "/ansible_collections/corral/qubes"
SHARE = "/mnt/corral-host"
STATE = "/var/lib/qubes"
SOCKET = "/var/run/qubesd.sock"
READY_SOCKET = "/var/run/qubesd.qrexec.sock"
"""Made by the rehearsal's last companion: once it exists, every backend (Xen's first) is in place."""
POLICY_DIR = "/etc/qubes/policy.d"
LOG_DIR = "/var/log/qubes"
XEN_DIR = "/var/lib/corral-xen"
MEMORY_MIB = 3072
"""All of it below 4 GiB (QEMU's pc machine puts RAM above 3.5 GiB over the 4 GiB line): with 4096, dom0's
processes saw corrupted memory while domains were created (xl failing to decompress a kernel, malloc aborts,
oxenstored and udevd dying of SIGSEGV); with 3072 three converges ran without one."""
DOM0_MEMORY_MIB = 1024
XEN_ARGS = (f"console=com1 com1=115200,8n1 dom0_mem={DOM0_MEMORY_MIB}M,max:{DOM0_MEMORY_MIB}M dom0_max_vcpus=2 "
            "loglvl=all guest_loglvl=all")
DOM0_ARGS = "root=/dev/vda ro console=hvc0 earlyprintk=xen"
CPU = "max,-smap,-smep,-xsave,-avx,-avx2,-fma,-f16c,-vaes,-vpclmulqdq"
"""QEMU's emulated CPU: everything TCG offers, but SMAP/SMEP (Xen's PV dom0 faults on them under TCG) and XSAVE
with the AVX family.  With XSAVE (which Xen uses to switch its vCPUs' register state), dom0's processes now and
then computed wrong results, more often with one vCPU than with two (xl failing to XZ-decompress a good kernel,
malloc aborts, SIGSEGV in xl, oxenstored, udevd): 9 of 90 domain creations failed and 2 segfaults were logged in a stress of
create/destroy rounds; without XSAVE (Xen and dom0 use FXSAVE), 0 of 75 and no segfault."""
BOOT_TIMEOUT = 900
"""Seconds a boot may take under full emulation before start gives up (measured: 1 to 4 minutes)."""

SSHD_CONFIG = f"""# The nested Xen host: root by the run's key only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile {SHARE}/authorized_keys
"""

FSTAB = f"""/dev/vda / ext4 rw,relatime 0 0
corralrepo {INSIDE_REPO} 9p trans=virtio,version=9p2000.L,ro,nofail 0 0
corralhost {SHARE} 9p trans=virtio,version=9p2000.L,nofail 0 0
"""
"""The root is written to during a run; QEMU keeps those writes in a temporary overlay (``snapshot=on``)."""

NETWORK = """[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
LinkLocalAddressing=no
IPv6AcceptRA=no
"""
"""QEMU's user network gives the guest 10.0.2.15; no gateway: the host has no route out."""

DOMU_INIT = """#!/bin/busybox sh
# The stand-in OS of a rehearsal qube on Xen: busybox, powering off when Xen asks (xl shutdown).
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /tmp
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "corral stand-in qube up: $(cat /proc/cmdline)"
exec /bin/busybox init
"""

DOMU_INITTAB = """::sysinit:/bin/true
::respawn:/bin/sleep 86400
::shutdown:/bin/sync
"""


# -- the image ------------------------------------------------------------------------------------

def image_dir() -> str:
    """``$CORRAL_CACHE/xenhost``: the image, Xen and dom0's kernel and initrd."""
    return os.path.join(rootfs.cache_root(), "xenhost")


def image_ready() -> bool:
    """Whether a complete image of this version and package list is cached."""
    try:
        with open(os.path.join(image_dir(), "image.json"), encoding="utf-8") as handle:
            built = json.load(handle)
        return built.get("version") == IMAGE_VERSION and built.get("include") == list(INCLUDE)
    except (OSError, ValueError, AttributeError):
        return False


def _put(root: str, path: str, text: str, mode: int = 0o644) -> None:
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(full, mode)


def _enable(root: str, unit: str, target: str) -> None:
    wants = os.path.join(root, "etc/systemd/system", f"{target}.wants")
    os.makedirs(wants, exist_ok=True)
    link = os.path.join(wants, unit)
    if not os.path.lexists(link):
        os.symlink(os.path.join("/lib/systemd/system", unit), link)


def domu_initramfs(root: str, out: str) -> None:
    """The qubes' stand-in OS: a gzipped cpio (newc) of busybox, its init and inittab, made with the root's cpio."""
    tree = tempfile.mkdtemp(prefix="initramfs-", dir=os.path.join(root, "tmp"))
    try:
        os.makedirs(os.path.join(tree, "bin"))
        os.makedirs(os.path.join(tree, "etc"))
        shutil.copy2(os.path.join(root, "bin/busybox"), os.path.join(tree, "bin/busybox"))
        _put(tree, "/init", DOMU_INIT, 0o755)
        _put(tree, "/etc/inittab", DOMU_INITTAB)
        inside = "/" + os.path.relpath(tree, root)
        # the archive goes to a file: through a text pipe its bytes would be changed (\r\n made \n)
        _run(["chroot", root, "sh", "-c", f"cd {inside} && find . | cpio -o -H newc --quiet > {inside}.cpio"])
        with open(tree + ".cpio", "rb") as handle:
            archive = handle.read()
        # what a guest unpacks must be the busybox put in: read back with cpio
        unpacked = subprocess.run(["chroot", root, "sh", "-c", f"cpio -i --quiet --to-stdout bin/busybox "
                                   f"< {inside}.cpio"], capture_output=True, check=True).stdout
        with open(os.path.join(root, "bin/busybox"), "rb") as handle:
            if unpacked != handle.read():
                raise HostError("the qubes' initramfs does not give back busybox as it was put in")
        with gzip.open(out, "wb") as handle:
            handle.write(archive)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
        if os.path.exists(tree + ".cpio"):
            os.unlink(tree + ".cpio")


def customise(root: str) -> None:
    """The host's own files, in a copy of the cached root: mounts, network, sshd, units, the qubes' stand-in OS."""
    _put(root, "/etc/fstab", FSTAB)
    _put(root, "/etc/hostname", "corral-xen\n")
    _put(root, "/etc/hosts", "127.0.0.1 localhost corral-xen\n")
    _put(root, "/etc/qubes-release", "Qubes release 4.3 (R4.3) - the rehearsal's nested Xen host\n")
    _put(root, "/etc/ssh/sshd_config.d/corral-xenhost.conf", SSHD_CONFIG)
    _put(root, "/etc/systemd/network/10-corral.network", NETWORK)
    _put(root, "/usr/lib/python3/dist-packages/corral-rehearsal.pth", f"{INSIDE_COLLECTIONS}\n{INSIDE_REPO}\n")
    # dom0's memory is fixed on Xen's command line: xl does not balloon it
    _put(root, "/etc/xen/xl.conf", 'autoballoon = "off"\n')
    _enable(root, "systemd-networkd.service", "multi-user.target")
    for unit in ("apt-daily-upgrade.timer", "apt-daily.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
                 "fstrim.timer"):
        link = os.path.join(root, "etc/systemd/system/timers.target.wants", unit)
        if os.path.lexists(link):
            os.unlink(link)
    for path in (INSIDE_REPO, SHARE, XEN_DIR, STATE, LOG_DIR, POLICY_DIR, "/root/.ssh"):
        os.makedirs(os.path.join(root, path.lstrip("/")), exist_ok=True)
    kernel = sorted(glob.glob(os.path.join(root, "boot/vmlinuz-*")))[-1]
    shutil.copy2(kernel, os.path.join(root, XEN_DIR.lstrip("/"), "vmlinuz"))
    domu_initramfs(root, os.path.join(root, XEN_DIR.lstrip("/"), "initramfs.cpio.gz"))


def build_image(force: bool = False, log=None) -> tuple[str, float, bool]:
    """Make (once) the cached image; (its directory, seconds spent, whether it was made now)."""
    started = time.monotonic()
    directory = image_dir()
    if image_ready() and not force:
        return directory, time.monotonic() - started, False
    for tool in ("mke2fs", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            raise HostError(f"the Xen host needs {tool} (apt-get install e2fsprogs qemu-system-x86)")
    base, _seconds, _built = rootfs.build(ROOTFS_NAME, include=INCLUDE, log=log)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=".xenhost.build-", dir=parent)
    try:
        staging = os.path.join(temp, "root")
        _run(["cp", "-a", base, staging])
        customise(staging)
        boot = os.path.join(staging, "boot")
        with gzip.open(sorted(glob.glob(os.path.join(boot, "xen-*-amd64.gz")))[-1], "rb") as packed:
            with open(os.path.join(temp, "xen"), "wb") as handle:
                shutil.copyfileobj(packed, handle)
        shutil.copy2(sorted(glob.glob(os.path.join(boot, "vmlinuz-*")))[-1], os.path.join(temp, "vmlinuz"))
        shutil.copy2(sorted(glob.glob(os.path.join(boot, "initrd.img-*")))[-1], os.path.join(temp, "initrd.img"))
        _run(["mke2fs", "-q", "-t", "ext4", "-L", "corral-xen", "-d", staging, "-F",
              os.path.join(temp, "disk.img"), IMAGE_SIZE])
        rootfs.remove_tree(staging)
        with open(os.path.join(temp, "image.json"), "w", encoding="utf-8") as handle:
            json.dump({"version": IMAGE_VERSION, "rootfs": ROOTFS_NAME, "include": list(INCLUDE),
                       "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, handle)
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.rename(temp, directory)
    except BaseException:
        rootfs.remove_tree(temp)
        raise
    return directory, time.monotonic() - started, True


# -- a running host ---------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Host:
    """One nested Xen host: its directory (key, ssh config, console log, QEMU's pid) and its sshd port."""

    def __init__(self, directory: str, name: str = "corral-xen", memory_mib: int = MEMORY_MIB):
        self.directory = os.path.abspath(directory)
        self.name = name
        self.memory_mib = memory_mib
        self.share = os.path.join(self.directory, "share")
        self.key = os.path.join(self.directory, "id_ed25519")
        self.ssh_config = os.path.join(self.directory, "ssh_config")
        self.console = os.path.join(self.directory, "console.log")
        self.pid_file = os.path.join(self.directory, "qemu.pid")
        self.info_file = os.path.join(self.directory, "host.json")

    def info(self) -> dict | None:
        """What ``start`` recorded (QEMU's pid, the port), if QEMU runs."""
        return running_record(self.info_file, "pid", "qemu-system-x86_64")

    def qemu_argv(self, port: int) -> list[str]:
        """The boot command: QEMU with full emulation, Xen as the kernel, dom0's kernel and initrd as modules."""
        images = image_dir()
        modules = f"{images}/vmlinuz {DOM0_ARGS},{images}/initrd.img"
        return ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-cpu", CPU, "-smp", "2",
                "-m", str(self.memory_mib), "-display", "none", "-no-reboot",
                "-kernel", f"{images}/xen", "-initrd", modules, "-append", XEN_ARGS,
                "-drive", f"file={images}/disk.img,if=virtio,format=raw,snapshot=on",
                "-virtfs", f"local,path={REPO},mount_tag=corralrepo,security_model=none,readonly=on",
                "-virtfs", f"local,path={self.share},mount_tag=corralhost,security_model=none",
                "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
                "-device", "virtio-net-pci,netdev=net0",
                "-serial", f"file:{self.console}", "-pidfile", self.pid_file, "-daemonize"]

    def ssh_argv(self, command: str) -> list[str]:
        """``command`` run as root in the host over ssh."""
        return ["ssh", "-F", self.ssh_config, self.name, command]

    def write_ssh_config(self, port: int) -> str:
        """``DIR/ssh_config``: Host NAME on this machine's loopback port, root by the run's key."""
        return write_ssh_config(self.ssh_config, self.name, self.key, [
            "HostName 127.0.0.1", f"Port {port}", "ConnectTimeout 20", "ServerAliveInterval 15"])

    def start(self, release: str | None = None) -> dict:
        """Make the image if missing, boot, wait for sshd and Xen, start the rehearsal; what :meth:`info` returns."""
        if self.info() is not None:
            raise HostError(f"the Xen host in {self.directory} already runs")
        if os.geteuid() != 0:
            raise HostError("the Xen host needs root (its image is made with chroot)")
        started = time.monotonic()
        _images, build_seconds, built = build_image()
        os.makedirs(self.share, exist_ok=True)
        ensure_key(self.key, f"corral Xen host {self.name}")
        shutil.copyfile(self.key + ".pub", os.path.join(self.share, "authorized_keys"))
        port = _free_port()
        self.write_ssh_config(port)
        if os.path.exists(self.console):
            os.unlink(self.console)
        _run(self.qemu_argv(port))
        with open(self.pid_file, encoding="ascii") as handle:
            pid = int(handle.read().strip())
        info = {"pid": pid, "port": port, "name": self.name, "directory": self.directory}
        with open(self.info_file, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        boot_started = time.monotonic()
        try:
            self._wait_ready()
            info["boot_seconds"] = round(time.monotonic() - boot_started, 1)
            self._serve(release)
        except BaseException:
            self.stop()
            raise
        info.update(image_seconds=round(build_seconds, 1), image_built=built,
                    seconds=round(time.monotonic() - started, 1))
        with open(self.info_file, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        return info

    def _console_tail(self) -> str:
        try:
            with open(self.console, encoding="utf-8", errors="replace") as handle:
                return handle.read()[-3000:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        """Until sshd answers and ``xl list`` works (Xen's toolstack is up)."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            if self.info() is None:
                raise HostError(f"QEMU ended while the Xen host booted; its console:\n{self._console_tail()}")
            proc = subprocess.run(self.ssh_argv("xl list >/dev/null && test -d /usr/local/lib/corral/"
                                                "ansible_collections/corral/qubes/rehearsal"),
                                  capture_output=True, check=False, timeout=120)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise HostError(f"the Xen host did not become ready in {BOOT_TIMEOUT} s; its console:\n"
                                f"{self._console_tail()}")
            time.sleep(3)

    def _serve(self, release: str | None) -> None:
        """The rehearsal dom0 with the Xen backend, as a systemd unit; wait for its socket."""
        serve = (f"python3 -m rehearsal serve --backend xen --state {STATE} --socket {SOCKET} "
                 f"--policy-dir {POLICY_DIR} --call-log {LOG_DIR}/rehearsal-calls.jsonl "
                 f"--qrexec-log {LOG_DIR}/qrexec.jsonl --roots off --network off "
                 f"--host-memory {self.memory_mib}" + (f" --release {release}" if release else ""))
        script = (f"mkdir -p {LOG_DIR} {POLICY_DIR} && systemd-run --unit corral-rehearsal --working-directory / "
                  f"--setenv PYTHONDONTWRITEBYTECODE=1 {serve} && "
                  f"for i in $(seq 300); do test -S {READY_SOCKET} && exit 0; "
                  "systemctl is-active -q corral-rehearsal || break; sleep 0.2; done; "
                  "journalctl -u corral-rehearsal --no-pager | tail -40; exit 1")
        _run(self.ssh_argv(script), timeout=180)

    def stop(self) -> bool:
        """Power the host off (QEMU killed after 60 s); False: it was not running."""
        info = self.info()
        if info is None:
            self._cleanup()
            return False
        pid = int(info["pid"])
        subprocess.run(self.ssh_argv("systemctl poweroff"), capture_output=True, check=False, timeout=60)
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.5)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
            while os.path.exists(f"/proc/{pid}"):
                time.sleep(0.1)
        self._cleanup()
        return True

    def _cleanup(self) -> None:
        for path in (self.info_file, self.pid_file):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def main(argv: list[str]) -> int:
    """``python -m rehearsal xenhost ...``."""
    parser = argparse.ArgumentParser(prog="python -m rehearsal xenhost", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("build", "start", "stop", "status", "ssh-config", "exec"))
    parser.add_argument("--dir", help="the host's directory (key, ssh config, console log); all but build")
    parser.add_argument("--name", default="corral-xen", help="its ssh host name (default %(default)s)")
    parser.add_argument("--memory", type=int, default=MEMORY_MIB, metavar="MIB",
                        help="the emulated machine's memory (default %(default)s; dom0 has "
                             f"{DOM0_MEMORY_MIB} of it)")
    parser.add_argument("--release", choices=("4.2", "4.3"), help="for a fresh state (default 4.3)")
    parser.add_argument("--force", action="store_true", help="build: make the image again")
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        if args.action == "build":
            directory, seconds, built = build_image(force=args.force)
            print(f"Xen host image {'made' if built else 'cached'} in {directory} ({seconds:.1f} s)")
            return 0
        if not args.dir:
            parser.error(f"{args.action} needs --dir")
        host = Host(args.dir, args.name, args.memory)
        if args.action == "start":
            info = host.start(args.release)
            print(f"Xen host {host.name} runs (QEMU {info['pid']}; image {info['image_seconds']} s, boot "
                  f"{info['boot_seconds']} s, {info['seconds']} s in all); ssh -F {host.ssh_config} {host.name}")
        elif args.action == "stop":
            print(f"Xen host {host.name}: {'stopped' if host.stop() else 'was not running'}")
        elif args.action == "status":
            info = host.info()
            print(json.dumps(info) if info else f"Xen host {host.name} does not run")
            return 0 if info else 1
        elif args.action == "ssh-config":
            info = host.info()
            if info is None:
                raise HostError(f"the Xen host in {host.directory} does not run")
            sys.stdout.write(host.write_ssh_config(info["port"]))
        else:
            return subprocess.run(host.ssh_argv(shlex.join(command) if command else ""), check=False).returncode
    except (HostError, rootfs.BuildError) as exc:
        print(f"xenhost: {exc}", file=sys.stderr)
        return 1
    return 0
