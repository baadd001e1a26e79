# SPDX-License-Identifier: GPL-3.0-or-later
"""The dom0 host: the rehearsal dom0 in namespaces of its own, over a Debian root, reached by ssh.

A real dom0 is a machine whose files the collection changes (``/etc/qubes/policy.d``, ``/etc/pam.d``,
``/etc/qubes/yk-keys``) and whose qubesd listens on ``/var/run/qubesd.sock``.  The dom0 host gives
tests that machine:

* its root is an overlay over a cached Debian root made by :mod:`rehearsal.rootfs` (the variant
  :data:`rehearsal.rootfs.DOM0HOST_INCLUDE`: Python 3.11, PyYAML, sshd, sudo, iproute2, nftables),
  with a persistent layer of its own in ``DIR/root``, and a layer of dom0 files the rehearsal writes at
  each start (``DIR/layer``, below it: the stand-ins listed next);
* it runs in mount, PID, UTS and IPC namespaces of its own and in the network namespace ``NAME``
  (``ip netns``), made by the same code as the qubes' roots (:func:`rehearsal.roots.spawn`);
* inside, sshd listens on 127.0.0.1:22 (root, by the key ``DIR/id_ed25519``), so Ansible reaches it
  as it reaches a machine: ``ssh -F DIR/ssh_config NAME`` (``ProxyCommand ip netns exec %h nc
  127.0.0.1 %p``), and its modules run with the host's ``/usr/bin/python3`` and their production
  defaults;
* inside, the rehearsal serves ``/var/run/qubesd.sock`` with its state in ``/var/lib/qubes`` (a bind
  of ``DIR/state``), its qrexec policy in ``/etc/qubes/policy.d``, its qrexec daemon directory
  ``/var/run/qubes``, its logs in ``/var/log/qubes``; the qubes run on real roots inside the host
  (nested namespaces) when the qubes' base root is cached, with network realisation;
* the rehearsal's code is the checkout, bind-mounted read-only at :data:`INSIDE_REPO`.

Stand-ins for dom0 programs, in the host's ``PATH`` (documented as stand-ins; the real ones need Xen and
Qubes' daemons): ``qrexec-client``, ``qvm-template`` and ``xl`` (the rehearsal's, ``rehearsal/bin``),
``qubes-dom0-update`` (installs with apt and dpkg from the local repository of dom0 packages that the
host is given, as the real one installs with dnf what the update qube downloaded), ``/etc/qubes-release``,
and the PAM files of the display manager and the screen locker (``lightdm``, ``xfce4-screensaver``:
Debian's ``common-*`` stacks), which a real dom0 has from its packages.

``python -m rehearsal dom0host start|stop|status|ssh-config|exec --dir DIR [--name NAME] [-- COMMAND...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

from rehearsal import debrepo, rootfs, roots

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSIDE_COLLECTIONS = "/usr/local/lib/corral"
INSIDE_REPO = INSIDE_COLLECTIONS + "/ansible_collections/corral/qubes"
"""Where the checkout (the collection and the rehearsal) is inside the host, read-only."""
INSIDE_CACHE = "/var/cache/corral-qubes"
"""The rehearsal's cache inside the host (``$CORRAL_CACHE`` of its server): the qubes' base root, read-only."""
STATE = "/var/lib/qubes"
SOCKET = "/var/run/qubesd.sock"
QREXEC_SOCKET = "/var/run/qubesd.qrexec.sock"
DAEMON_DIR = "/var/run/qubes"
POLICY_DIR = "/etc/qubes/policy.d"
RUNTIME_POLICY_DIR = "/run/qubes/policy.d"
LOG_DIR = "/var/log/qubes"
DOM0_REPO = "/var/lib/corral-rehearsal/dom0-repo"
"""The local repository ``qubes-dom0-update`` installs from (a read-only bind of a :mod:`rehearsal.debrepo` one)."""
DOM0_SOURCES = "/etc/corral-rehearsal/dom0-update.list"
DOM0_PACKAGES = ("qubes-yubikey-dom0", "qubes-input-proxy")
"""The dom0 packages the host's repository offers by default (stand-ins, :func:`rehearsal.debrepo.stand_in_repository`)."""
DEFAULT_NAME = "corral-dom0"
SERVER_PID = "/run/corral-rehearsal.pid"

DOM0_UPDATE = r"""#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Stand-in for dom0's qubes-dom0-update in the rehearsal's dom0 host. The real one downloads packages in the
# update qube and installs them with dnf in dom0; this one installs with apt and dpkg from the host's local
# repository of dom0 packages (__SOURCES__). Packages named: installed (or with --action=remove, removed);
# none: everything upgraded. -y / --assumeyes answers yes, as dnf's; without it apt asks (and gives up
# without a terminal).
set -e
yes= action= packages=
for word in "$@"; do
    case "$word" in
        -y|--assumeyes) yes=-y ;;
        --action=*) action=${word#--action=} ;;
        --clean|--console|--show-output|--quiet|--refresh|--enablerepo=*|--disablerepo=*) ;;
        -*) echo "qubes-dom0-update (rehearsal stand-in): option $word not supported" >&2; exit 2 ;;
        *) packages="$packages $word" ;;
    esac
done
apt="apt-get -q -o Dir::Etc::sourcelist=__SOURCES__ -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
export DEBIAN_FRONTEND=noninteractive
$apt update >/dev/null
if [ -z "$packages" ]; then exec $apt upgrade $yes; fi
case "${action:-install}" in
    install|reinstall) exec $apt install $yes --no-install-recommends $packages ;;
    remove) exec $apt remove $yes $packages ;;
    upgrade) exec $apt install --only-upgrade $yes $packages ;;
    *) echo "qubes-dom0-update (rehearsal stand-in): --action=$action not supported" >&2; exit 2 ;;
esac
""".replace("__SOURCES__", DOM0_SOURCES)

PAM_STAND_IN = """#%PAM-1.0
# Stand-in for the PAM file of {what} of a Qubes dom0 (the rehearsal's dom0 host has no GUI):
# the host's common stacks.
@include common-auth
@include common-account
@include common-session
"""

SSHD_CONFIG = """# The rehearsal's dom0 host: root by key only, on loopback of the host's network namespace.
ListenAddress 127.0.0.1
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
"""


class HostError(RuntimeError):
    """The dom0 host cannot start, or is not running (the message says why)."""


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise HostError(f"{shlex.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def running_record(info_file: str, pid_key: str, marker: str) -> dict | None:
    """What a host's ``start`` recorded in ``info_file``, if the process under ``pid_key`` still runs and has
    ``marker`` as one of its arguments (a recycled pid is not the host); None otherwise."""
    try:
        with open(info_file, encoding="utf-8") as handle:
            info = json.load(handle)
        with open(f"/proc/{int(info[pid_key])}/cmdline", "rb") as handle:
            if marker.encode() not in handle.read().split(b"\0"):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def ensure_key(key: str, comment: str) -> None:
    """An ed25519 key without passphrase at ``key`` (kept when it exists)."""
    if not os.path.exists(key):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key])


def write_ssh_config(path: str, name: str, key: str, reach: list[str]) -> str:
    """An ssh config with Host ``name``: root by ``key``, no host key kept, reached as ``reach`` says."""
    lines = [f"Host {name}", *reach, "User root", f"IdentityFile {key}", "IdentitiesOnly yes",
             "StrictHostKeyChecking no", "UserKnownHostsFile /dev/null", "LogLevel ERROR"]
    text = lines[0] + "\n" + "".join(f"    {line}\n" for line in lines[1:])
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return text


class Host:
    """One dom0 host: its directory (root layer, state, key, ssh config) and its network namespace name."""

    def __init__(self, directory: str, name: str = DEFAULT_NAME, release: str | None = None,
                 packages: tuple[str, ...] = DOM0_PACKAGES, roots_mode: str = "auto", network_mode: str = "auto"):
        self.directory = os.path.abspath(directory)
        self.name = name
        self.release = release
        self.packages = tuple(packages)
        self.roots_mode = roots_mode
        self.network_mode = network_mode
        self.key = os.path.join(self.directory, "id_ed25519")
        self.ssh_config = os.path.join(self.directory, "ssh_config")
        self.info_file = os.path.join(self.directory, "host.json")

    # -- what is running ---------------------------------------------------------------------------

    def info(self) -> dict | None:
        """What ``start`` recorded (init pid, name), if the host runs."""
        return running_record(self.info_file, "init", roots.MARKER)

    @property
    def init(self) -> int:
        """The host's init (HostError if it does not run)."""
        info = self.info()
        if info is None:
            raise HostError(f"the dom0 host in {self.directory} does not run (python -m rehearsal dom0host start)")
        return int(info["init"])

    @property
    def fs(self) -> str:
        """``DIR/fs``: a link to the running host's root (``/proc/INIT/root``), a stable path from outside."""
        return os.path.join(self.directory, "fs")

    def _link(self, target: str | None) -> None:
        if os.path.islink(self.fs):
            os.unlink(self.fs)
        if target:
            os.symlink(target, self.fs)

    def outside(self, path: str) -> str:
        """A path of the host seen from outside, through ``DIR/fs`` (/var/run is /run there: an absolute link
        would resolve against this side's root)."""
        self.init  # pylint: disable=pointless-statement
        if path == "/var/run" or path.startswith("/var/run/"):
            path = path[len("/var"):]
        return self.fs + path

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run as root inside the host (all its namespaces, its root)."""
        return ["nsenter", f"--target={self.init}", "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd",
                "--", "/usr/bin/env", "-i", "PATH=" + roots.PATH, "HOME=/root", "LANG=C.UTF-8", *argv]

    # -- start -------------------------------------------------------------------------------------

    def _layer(self, repository: str | None) -> str:
        """The dom0 files of the host, written afresh at each start (a lower layer above the Debian root)."""
        layer = os.path.join(self.directory, "layer")
        shutil.rmtree(layer, ignore_errors=True)

        def put(path: str, text: str, mode: int = 0o644) -> None:
            full = os.path.join(layer, path.lstrip("/"))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(full, mode)

        def wrapper(path: str, target: str, env: str = "") -> None:
            put(path, f"#!/bin/sh\n# Stand-in (the rehearsal's dom0 host): {target}\n{env}"
                      f'exec {INSIDE_REPO}/{target} "$@"\n', 0o755)

        release = self.release or "4.3"
        put("/etc/qubes-release", f"Qubes release {release} (R{release}) - the rehearsal's dom0 host\n")
        put("/etc/ssh/sshd_config.d/corral-dom0host.conf", SSHD_CONFIG)
        with open(self.key + ".pub", encoding="ascii") as handle:
            put("/root/.ssh/authorized_keys", handle.read(), 0o600)
        os.chmod(os.path.join(layer, "root", ".ssh"), 0o700)
        os.chmod(os.path.join(layer, "root"), 0o700)
        put("/usr/lib/python3/dist-packages/corral-rehearsal.pth", f"{INSIDE_COLLECTIONS}\n{INSIDE_REPO}\n")
        wrapper("/usr/bin/qrexec-client", "rehearsal/bin/qrexec-client",
                f'export REHEARSAL_QREXEC_SOCKET="${{REHEARSAL_QREXEC_SOCKET:-{QREXEC_SOCKET}}}"\n')
        wrapper("/usr/bin/qvm-template", "rehearsal/bin/dom0/qvm-template")
        wrapper("/usr/sbin/xl", "rehearsal/bin/xl")
        put("/usr/bin/qubes-dom0-update", DOM0_UPDATE, 0o755)
        put(DOM0_SOURCES, f"# the rehearsal's dom0 packages (stand-ins)\ndeb [trusted=yes] file:{DOM0_REPO} ./\n"
            if repository else "")
        put("/etc/pam.d/lightdm", PAM_STAND_IN.format(what="the display manager (lightdm)"))
        put("/etc/pam.d/xfce4-screensaver", PAM_STAND_IN.format(what="the screen locker (xfce4-screensaver)"))
        for entry in ("root", "usr", "etc"):
            for dirpath, dirnames, filenames in os.walk(os.path.join(layer, entry)):
                for item in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                    os.lchown(item, 0, 0)
        return layer

    def start(self) -> dict:
        """Build what is missing, start the host, sshd and the rehearsal inside; what :meth:`info` returns."""
        if self.info() is not None:
            raise HostError(f"the dom0 host in {self.directory} already runs")
        if os.geteuid() != 0:
            raise HostError("the dom0 host needs root (namespaces, mounts)")
        missing = [tool for tool in (*roots.TOOLS, "ip", "nc", "ssh", "ssh-keygen") if shutil.which(tool) is None]
        if missing:
            raise HostError(f"the dom0 host needs {', '.join(missing)} on this machine "
                            "(apt-get install iproute2 netcat-openbsd openssh-client)")
        if not all(os.path.isdir(os.path.join(REPO, part)) for part in ("plugins/module_utils", "rehearsal/bin")):
            raise HostError(f"the dom0 host runs the rehearsal from a checkout of the collection; {REPO} is not one")
        started = time.monotonic()
        base, _seconds, _built = rootfs.build(rootfs.DOM0HOST_NAME, include=rootfs.DOM0HOST_INCLUDE)
        qubes_base = rootfs.path() if rootfs.ready() else None
        repository = debrepo.stand_in_repository(rootfs.cache_root(), list(self.packages)) if self.packages else None
        for sub in ("root/upper", "root/work", "private", "state"):
            os.makedirs(os.path.join(self.directory, sub), exist_ok=True)
        ensure_key(self.key, f"corral dom0 host {self.name}")
        layer = self._layer(repository)
        self._netns()
        binds = [(REPO, INSIDE_REPO, True), (os.path.join(self.directory, "state"), STATE, False)]
        if qubes_base:
            binds.append((qubes_base, os.path.join(INSIDE_CACHE, "rootfs", rootfs.DEFAULT_NAME), True))
        if repository:
            binds.append((repository, DOM0_REPO, True))
        net = (["nsenter", f"--net=/run/netns/{self.name}"], False)
        run = roots.spawn(self.name, self.directory, [layer, base], os.path.join(self.directory, "root", "upper"),
                          os.path.join(self.directory, "root", "work"), os.path.join(self.directory, "private"),
                          net, dns="", binds=tuple(binds))
        info = {"init": run.init, "name": self.name, "directory": self.directory,
                "socket": SOCKET, "qrexec_socket": QREXEC_SOCKET, "daemon_dir": DAEMON_DIR}
        with open(self.info_file, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        self._link(f"/proc/{run.init}/root")
        try:
            self._services(qubes_base is not None)
        except BaseException:
            self.stop()
            raise
        self.write_ssh_config()
        self.write_controller_files()
        info["seconds"] = round(time.monotonic() - started, 2)
        return info

    def _netns(self) -> None:
        if not os.path.exists(f"/run/netns/{self.name}"):
            _run(["ip", "netns", "add", self.name])
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"])

    def _services(self, qubes_roots: bool) -> None:
        """sshd, then the rehearsal; wait for its sockets."""
        script = (
            "set -e; mkdir -p /run/sshd /var/log/qubes /etc/qubes; ssh-keygen -A >/dev/null; /usr/sbin/sshd; "
            f"cd /; CORRAL_CACHE={INSIDE_CACHE} setsid python3 -m rehearsal serve --state {STATE} --socket {SOCKET} "
            f"--policy-dir {POLICY_DIR} --runtime-policy-dir {RUNTIME_POLICY_DIR} --qrexec-daemon-dir {DAEMON_DIR} "
            f"--call-log {LOG_DIR}/rehearsal-calls.jsonl --qrexec-log {LOG_DIR}/qrexec.jsonl "
            f"--roots {self.roots_mode if qubes_roots else 'off'} --network {self.network_mode} "
            + (f"--release {self.release} " if self.release else "")
            + f"> {LOG_DIR}/rehearsal.log 2>&1 < /dev/null & echo $! > {SERVER_PID}")
        _run(self.exec_argv(["sh", "-c", script]))
        deadline = time.monotonic() + 60
        ready = self.outside(QREXEC_SOCKET)
        while not os.path.exists(ready):
            if time.monotonic() > deadline or not self._server_alive():
                log = self.outside(f"{LOG_DIR}/rehearsal.log")
                tail = open(log, encoding="utf-8", errors="replace").read()[-2000:] if os.path.exists(log) else ""
                raise HostError(f"the rehearsal did not come up in the dom0 host:\n{tail}")
            time.sleep(0.1)

    def _server_alive(self) -> bool:
        proc = subprocess.run(self.exec_argv(["sh", "-c", f"kill -0 $(cat {SERVER_PID})"]), capture_output=True,
                              check=False)
        return proc.returncode == 0

    def write_ssh_config(self) -> str:
        """``DIR/ssh_config``: Host NAME through its network namespace, root by the host's key."""
        return write_ssh_config(self.ssh_config, self.name, self.key, ["ProxyCommand ip netns exec %h nc 127.0.0.1 %p"])

    def write_controller_files(self) -> dict:
        """What the controller needs besides ssh, written to ``DIR``: for the qrexec connection plugin.

        The connection plugin runs where Ansible runs, in a real dom0 beside qrexec-client and qubesd.  Here
        Ansible runs outside the host, so the plugin is given the host's qrexec daemon directory and qubesd
        socket through the host's root (``/proc/INIT/root``) and ``DIR/qrexec-client``, the rehearsal's
        stand-in pointed at the host's qrexec socket.  ``DIR/controller.json`` holds those inventory variables.
        """
        client = os.path.join(self.directory, "qrexec-client")
        with open(client, "w", encoding="utf-8") as handle:
            handle.write(f"#!/bin/sh\n# dom0's qrexec-client for a controller outside the dom0 host {self.name}\n"
                         f"REHEARSAL_QREXEC_SOCKET={shlex.quote(self.outside(QREXEC_SOCKET))} "
                         f'exec {shlex.quote(os.path.join(REPO, "rehearsal", "bin", "qrexec-client"))} "$@"\n')
        os.chmod(client, 0o755)
        variables = {
            "dom0": {"ansible_connection": "ssh", "ansible_host": self.name, "ansible_user": "root",
                     "ansible_python_interpreter": "/usr/bin/python3",
                     "ansible_ssh_common_args": f"-F {self.ssh_config}"},
            "qubes": {"ansible_qrexec_from": "dom0", "ansible_qrexec_client": client,
                      "ansible_qrexec_daemon_dir": self.outside(DAEMON_DIR),
                      "ansible_qrexec_qubesd_socket": self.outside(SOCKET)}}
        with open(os.path.join(self.directory, "controller.json"), "w", encoding="utf-8") as handle:
            json.dump(variables, handle, indent=1)
        return variables

    # -- stop --------------------------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop the rehearsal (SIGTERM: it saves and ends its qubes), then everything in the host; False: not running."""
        info = self.info()
        if info is None:
            self._cleanup()
            return False
        init = int(info["init"])
        subprocess.run(self.exec_argv(["sh", "-c", f"kill $(cat {SERVER_PID}) 2>/dev/null; "
                                                   f"for i in $(seq 100); do kill -0 $(cat {SERVER_PID}) 2>/dev/null "
                                                   "|| break; sleep 0.1; done"]),
                       capture_output=True, check=False, timeout=30)
        try:
            os.kill(init, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{init}") and time.monotonic() < deadline:
            time.sleep(0.05)
        self._cleanup()
        return True

    def _cleanup(self) -> None:
        self._link(None)
        try:
            os.unlink(self.info_file)
        except FileNotFoundError:
            pass
        if os.path.exists(f"/run/netns/{self.name}"):
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


def main(argv: list[str]) -> int:
    """``python -m rehearsal dom0host ...``."""
    parser = argparse.ArgumentParser(prog="python -m rehearsal dom0host", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "status", "ssh-config", "exec"))
    parser.add_argument("--dir", required=True, help="the host's directory (its root layer, state, key, ssh config)")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help="its network namespace and ssh host name (default %(default)s)")
    parser.add_argument("--release", choices=("4.2", "4.3"), help="for a fresh state (default 4.3)")
    parser.add_argument("--dom0-package", action="append", metavar="NAME",
                        help="a package the host's qubes-dom0-update repository offers (repeatable; default "
                             f"{', '.join(DOM0_PACKAGES)})")
    parser.add_argument("--roots", choices=("auto", "on", "off"), default="auto",
                        help="the qubes' roots inside the host (auto: when the qubes' base root is cached)")
    parser.add_argument("--network", choices=("auto", "on", "off"), default="auto",
                        help="network realisation inside the host")
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    host = Host(args.dir, args.name, args.release, tuple(args.dom0_package or DOM0_PACKAGES), args.roots, args.network)
    try:
        if args.action == "start":
            info = host.start()
            print(f"dom0 host {host.name} runs (init {info['init']}, {info['seconds']} s); "
                  f"ssh -F {host.ssh_config} {host.name}")
        elif args.action == "stop":
            print(f"dom0 host {host.name}: {'stopped' if host.stop() else 'was not running'}")
        elif args.action == "status":
            info = host.info()
            print(json.dumps(info) if info else f"dom0 host {host.name} does not run")
            return 0 if info else 1
        elif args.action == "ssh-config":
            host.init  # pylint: disable=pointless-statement
            sys.stdout.write(host.write_ssh_config())
        else:
            return subprocess.run(host.exec_argv(command or ["sh"]), check=False).returncode
    except (HostError, rootfs.BuildError) as exc:
        print(f"dom0host: {exc}", file=sys.stderr)
        return 1
    return 0
