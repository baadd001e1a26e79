# -*- coding: utf-8 -*-
# Copyright: contributors to the corral.qubes collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection plugin: run tasks inside a qube, one qrexec call per command."""

from __future__ import annotations

DOCUMENTATION = r"""
name: qrexec
short_description: Run tasks inside a qube over qrexec, one call per command
version_added: 0.1.0
description:
  - Runs commands, and copies files to and from, a qube of the Qubes OS system Ansible runs on, with exactly one
    qrexec call per command, file upload or file download, and no Admin API call per command.
  - From dom0 each command is one C(qrexec-client -d QUBE "USER:QUBESRPC qubes.VMShell dom0"), as
    C(qvm-run -u USER) makes it; no qrexec policy applies to dom0.
  - From a management qube each command is one C(qrexec-client-vm QUBE qubes.VMRootShell) (C(qubes.VMShell) for
    a O(remote_user) other than C(root)); dom0's qrexec policy must allow that service from the management qube to
    the target, and dom0's qrexec starts a halted target itself.
  - The command travels on the service's standard input as one shell line, followed by the task's input
    (pipelining) or the file's bytes, streamed in both directions; files of any size and content are copied
    byte for byte, never held in memory whole. An upload goes to a temporary file beside the destination,
    renamed over it when complete.
  - From dom0, a qube is known to run when its qrexec daemon socket (C(qrexec.QUBE) in O(qrexec_daemon_dir))
    exists, which costs no Admin API call. A qube that does not run is started once, when the first command
    needs it, with one C(admin.vm.Start) (after one C(admin.vm.property.Get) of its C(qrexec_timeout)), and the
    plugin waits up to that timeout for its qrexec daemon. The qube is left running.
  - The exit status and standard error of every command are the command's own. A qube that does not exist,
    dom0 as the target, a call the qrexec policy refuses, a qube that fails to start or does not answer in time
    are connection failures whose message names the qube.
author:
  - corral.qubes contributors (!UNKNOWN)
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description:
      - The qube to run in; the inventory host name unless C(ansible_host) says otherwise. O(qube) overrides it.
      - C(dom0) is refused; dom0 uses Ansible's C(local) connection.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  qube:
    description:
      - The qube to run in, when it is not the host's name or C(ansible_host).
    type: str
    vars:
      - name: ansible_qrexec_qube
  remote_user:
    description:
      - The user in the qube the commands run as.
      - From dom0 any user of the qube (the C(USER:) of the qrexec command). From a management qube C(root) uses
        the service C(qubes.VMRootShell); another user uses C(qubes.VMShell), which runs as the qube's
        C(default_user) (usually C(user)), so name that user.
    type: str
    default: root
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
    keyword:
      - name: remote_user
  qrexec_from:
    description:
      - Where Ansible runs. C(dom0) uses O(qrexec_client); C(vm) (a management qube) uses O(qrexec_client_vm).
      - C(auto) picks C(dom0) when O(qrexec_client) is found (it exists only in dom0), else C(vm) when
        O(qrexec_client_vm) is found.
    type: str
    default: auto
    choices: [auto, dom0, vm]
    vars:
      - name: ansible_qrexec_from
    env:
      - name: CORRAL_QREXEC_FROM
    ini:
      - section: corral_qrexec_connection
        key: qrexec_from
  qrexec_client:
    description: The C(qrexec-client) program of dom0 (a name looked up in E(PATH), or a path).
    type: str
    default: qrexec-client
    vars:
      - name: ansible_qrexec_client
    env:
      - name: QREXEC_CLIENT
    ini:
      - section: corral_qrexec_connection
        key: qrexec_client
  qrexec_client_vm:
    description: The C(qrexec-client-vm) program of a management qube (a name looked up in E(PATH), or a path).
    type: str
    default: qrexec-client-vm
    vars:
      - name: ansible_qrexec_client_vm
    env:
      - name: QREXEC_CLIENT_VM
    ini:
      - section: corral_qrexec_connection
        key: qrexec_client_vm
  qrexec_daemon_dir:
    description:
      - The directory of dom0 where each running qube's qrexec daemon has its socket C(qrexec.QUBE).
    type: path
    default: /var/run/qubes
    vars:
      - name: ansible_qrexec_daemon_dir
    env:
      - name: CORRAL_QREXEC_DAEMON_DIR
    ini:
      - section: corral_qrexec_connection
        key: qrexec_daemon_dir
  qubesd_socket:
    description:
      - Path of qubesd's Admin API socket in dom0, used only to start a qube that does not run.
    type: path
    default: /var/run/qubesd.sock
    vars:
      - name: ansible_qrexec_qubesd_socket
    env:
      - name: QUBESD_SOCKET
    ini:
      - section: corral_qrexec_connection
        key: qubesd_socket
notes:
  - The service's shell reads the command line only; the command's own shell prints a marker first, and the
    plugin sends the input only once it has seen it. So nothing is lost whatever shell the qube's C(qubes.VMShell)
    runs and however it reads (Qubes' runs C(bash), which reads a byte at a time; C(dash) reads blocks), and a
    call that never reached the qube (refused, no such qube) is told apart from a command's own exit status.
  - C(become) works as on any POSIX host (C(sudo) in a qube needs no password); a become method that prompts for
    a password is refused, the qube's root is reached with O(remote_user=root) instead.
  - Use the inventory plugin P(corral.qubes.qubes#inventory) with C(connection=corral.qubes.qrexec) to hand its qubes this
    connection; the collection's Admin API modules still run on dom0 (C(delegate_to) a dom0 host).
"""

EXAMPLES = r"""
# inventory.qubes.yml: every qube a host, reached over qrexec (dom0 keeps the local connection)
# plugin: corral.qubes.qubes
# connection: corral.qubes.qrexec

- name: Packages in a template, from dom0
  hosts: fedora-42-xfce
  connection: corral.qubes.qrexec
  gather_facts: false
  tasks:
    - name: The YubiKey tools
      ansible.builtin.package:
        name: ykpers
        state: present

- name: A file in a qube whose host name is not the qube's name
  hosts: usb
  connection: corral.qubes.qrexec
  vars:
    ansible_qrexec_qube: sys-usb
    ansible_pipelining: true
  tasks:
    - name: The udev rule
      ansible.builtin.copy:
        src: files/99-yubikey.rules
        dest: /rw/config/99-yubikey.rules
        mode: "0644"
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import names, wire

display = Display()

CHUNK = 1024 * 1024
READY = b"corral-qrexec\n"
"""What the command's own shell prints first: its absence means the service never ran."""
REFUSED = 126
"""qrexec's exit status for a call that the policy refuses."""
DOM0_NAMES = frozenset({"dom0", "@adminvm"})
DEFAULT_QREXEC_TIMEOUT = 60
USER_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]*\Z")


def command_line(cmd: str) -> bytes:
    """The one line that the service's shell reads.

    The shell replaces itself with ``/bin/sh -c``, whose script (an argument, not input) prints
    :data:`READY` and then runs ``cmd``. Once READY arrives, the service's shell is gone, so whatever
    follows on standard input is the command's, even with a shell that reads its input in blocks.
    """
    script = f"printf '{READY.decode().strip()}\\n'\n{cmd}"
    return to_bytes(f"exec /bin/sh -c {shlex.quote(script)}\n")


def put_command(out_path: str) -> str:
    """Store standard input as ``out_path``: into a temporary file beside it, then renamed over it."""
    temporary = f"{out_path}.corral-{os.getpid()}-{threading.get_ident()}.tmp"
    return (f"tmp={shlex.quote(temporary)}; dest={shlex.quote(out_path)}; "
            'cat > "$tmp" && mv -f -- "$tmp" "$dest" || { status=$?; rm -f -- "$tmp"; exit "$status"; }')


def fetch_command(in_path: str) -> str:
    """Write ``in_path`` to standard output."""
    return f"exec cat -- {shlex.quote(in_path)}"


class _Result:
    """What one qrexec call gave: exit status, whether the service ran, its output and error bytes."""

    def __init__(self, returncode: int, ran: bool, stdout: bytes, stderr: bytes):
        self.returncode = returncode
        self.ran = ran
        self.stdout = stdout
        self.stderr = stderr


class _Call:
    """One running qrexec call: the command line in, then (once the command runs) its input, streamed."""

    def __init__(self, proc: subprocess.Popen, head: bytes, data: bytes | None, source_path: str | None):
        self.proc = proc
        self.head = head
        self.data = data
        self.source_path = source_path
        self.started = threading.Event()
        self.ran = False
        self.errors: list = []
        self.stderr: list = []

    def feed(self) -> None:
        """Write the command line; after READY, ``data`` or the file at ``source_path`` in chunks; then close."""
        stream = self.proc.stdin
        try:
            stream.write(self.head)
            stream.flush()
            if self.data or self.source_path is not None:
                self.started.wait()
                if self.ran and self.data:
                    stream.write(self.data)
                if self.ran and self.source_path is not None:
                    with open(self.source_path, "rb") as source:
                        shutil.copyfileobj(source, stream, CHUNK)
        except BrokenPipeError:
            pass  # the service ended without reading everything; its status tells why
        except OSError as exc:
            self.errors.append(exc)
        finally:
            try:
                stream.close()
            except BrokenPipeError:
                pass

    def drain_stderr(self) -> None:
        """Read standard error to its end."""
        while True:
            chunk = self.proc.stderr.read1(CHUNK)
            if not chunk:
                break
            self.stderr.append(chunk)

    def read_stdout(self, sink) -> bytes:
        """Standard output after READY, into ``sink`` (a binary file) or returned; all of it if READY never came."""
        kept: list = []
        seen = b""
        try:
            while True:
                chunk = self.proc.stdout.read1(CHUNK)
                if not chunk:
                    break
                if not self.ran:
                    seen += chunk
                    if len(seen) < len(READY) and READY.startswith(seen):
                        continue
                    if not seen.startswith(READY):
                        self.started.set()  # the input is not sent: nobody would read it
                        break  # not the command's shell: qrexec's own words, kept for the message
                    self.ran = True
                    self.started.set()
                    chunk, seen = seen[len(READY):], b""
                if sink is not None:
                    sink.write(chunk)
                else:
                    kept.append(chunk)
            if seen:
                kept.append(seen)
                kept.append(self.proc.stdout.read())
        finally:
            self.started.set()
        return b"".join(kept)


def run_call(argv: list[str], head: bytes, data: bytes | None = None, source_path: str | None = None,
             sink=None) -> _Result:
    """One qrexec call: standard input streamed in, standard output into ``sink`` (a binary file) or kept."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603 - no shell
                                stderr=subprocess.PIPE)
    except OSError as exc:
        raise AnsibleConnectionFailure(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    call = _Call(proc, head, data, source_path)
    feeder = threading.Thread(target=call.feed, daemon=True)
    reader = threading.Thread(target=call.drain_stderr, daemon=True)
    feeder.start()
    reader.start()
    try:
        stdout = call.read_stdout(sink)
    finally:
        proc.stdout.close()
        feeder.join()
        reader.join()
        proc.stderr.close()
        returncode = proc.wait()
    if call.errors:
        raise AnsibleError(f"reading the input for {argv[0]} failed: {call.errors[0]}")
    return _Result(returncode, call.ran, stdout, b"".join(call.stderr))


class Connection(ConnectionBase):
    """Commands and files inside a qube over qrexec."""

    transport = "corral.qubes.qrexec"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qube = None
        self.side = None
        self.executable = None

    # -- where and how ---------------------------------------------------------------------------------

    def _target(self) -> str:
        qube = self.get_option("qube") or self.get_option("remote_addr") or self._play_context.remote_addr
        if not qube:
            raise AnsibleConnectionFailure("corral.qubes.qrexec: no qube to connect to (set ansible_host or ansible_qrexec_qube)")
        qube = str(qube)
        if qube in DOM0_NAMES:
            raise AnsibleConnectionFailure(
                f"corral.qubes.qrexec connects to qubes, not to {qube}: use Ansible's local connection for dom0 "
                "(ansible_connection=local)")
        problem = names.vm_name_error(qube)
        if problem:
            raise AnsibleConnectionFailure(f"corral.qubes.qrexec: {qube!r} is not a qube name: {problem}")
        return qube

    def _side(self) -> tuple[str, str]:
        """('dom0' or 'vm', the program to run)."""
        side = self.get_option("qrexec_from")
        dom0_client = self.get_option("qrexec_client")
        vm_client = self.get_option("qrexec_client_vm")
        if side == "dom0":
            return "dom0", shutil.which(dom0_client) or dom0_client
        if side == "vm":
            return "vm", shutil.which(vm_client) or vm_client
        found = shutil.which(dom0_client)
        if found:
            return "dom0", found
        found = shutil.which(vm_client)
        if found:
            return "vm", found
        raise AnsibleConnectionFailure(
            f"corral.qubes.qrexec cannot reach the qube {self.qube}: neither {dom0_client} (dom0) nor {vm_client} "
            "(a management qube) is here; set qrexec_from and qrexec_client or qrexec_client_vm")

    @property
    def user(self) -> str:
        """The user the commands run as."""
        return self.get_option("remote_user") or self.default_user

    def _argv(self) -> list[str]:
        if self.side == "dom0":
            return [self.executable, "-d", self.qube, f"{self.user}:QUBESRPC qubes.VMShell dom0"]
        return [self.executable, self.qube, self.service]

    @property
    def service(self) -> str:
        """The qrexec service that runs the shell."""
        if self.side == "vm" and self.user == "root":
            return "qubes.VMRootShell"
        return "qubes.VMShell"

    def _connect(self):
        if self._connected:
            return self
        self.qube = self._target()
        if not USER_NAME.match(self.user):
            raise AnsibleConnectionFailure(
                f"corral.qubes.qrexec: remote_user {self.user!r} for the qube {self.qube} is not a user name "
                "(letters, digits, '_', '.', '-')")
        self.side, self.executable = self._side()
        self._play_context.remote_user = self.user
        display.vvv(f"QREXEC {self.side} -> {self.qube} as {self.user} ({self.executable})", host=self.qube)
        if self.side == "dom0":
            self._ensure_running()
        self._connected = True
        return self

    # -- starting a qube (dom0) ------------------------------------------------------------------------------

    def _daemon_socket(self) -> str:
        return os.path.join(self.get_option("qrexec_daemon_dir"), f"qrexec.{self.qube}")

    def _ensure_running(self) -> None:
        """Start the qube when its qrexec daemon is not there: one property.Get and one admin.vm.Start."""
        daemon = self._daemon_socket()
        if os.path.exists(daemon):
            return
        socket_path = self.get_option("qubesd_socket")
        admin = client_mod.AdminClient(client_mod.SocketTransport(socket_path))
        try:
            timeout = admin.property_get(self.qube, "qrexec_timeout").native
        except wire.QubesVMNotFoundError as exc:
            raise AnsibleConnectionFailure(f"the qube {self.qube} does not exist ({exc})") from None
        except wire.QubesException as exc:
            raise AnsibleConnectionFailure(
                f"cannot read the qrexec_timeout of the qube {self.qube} from qubesd at {socket_path}: "
                f"{type(exc).__name__}: {exc}") from None
        try:
            timeout = int(timeout) if timeout else DEFAULT_QREXEC_TIMEOUT
        except (TypeError, ValueError):
            timeout = DEFAULT_QREXEC_TIMEOUT
        display.vv(f"QREXEC starting the qube {self.qube} (qrexec_timeout {timeout} s)", host=self.qube)
        try:
            admin.start(self.qube)
        except wire.QubesException as exc:
            raise AnsibleConnectionFailure(
                f"the qube {self.qube} did not start: {type(exc).__name__}: {exc}") from None
        deadline = time.monotonic() + timeout
        while not os.path.exists(daemon):
            if time.monotonic() >= deadline:
                raise AnsibleConnectionFailure(
                    f"the qube {self.qube} started but its qrexec daemon ({daemon}) did not appear within its "
                    f"qrexec_timeout of {timeout} s")
            time.sleep(0.05)

    # -- one call ---------------------------------------------------------------------------------------------

    def _call(self, cmd: str, data: bytes | None = None, source_path: str | None = None, sink=None) -> _Result:
        argv = self._argv()
        display.vvv(f"QREXEC {shlex.join(argv)} <<< {cmd}", host=self.qube)
        result = run_call(argv, command_line(cmd), data=data, source_path=source_path, sink=sink)
        if not result.ran:
            raise AnsibleConnectionFailure(self._failure_message(result))
        return result

    def _failure_message(self, result: _Result) -> str:
        """Why the service did not run in the qube, from qrexec's exit status and words."""
        said = to_text(result.stderr + result.stdout, errors="surrogate_or_replace").strip()
        detail = f" ({os.path.basename(self.executable)} exit status {result.returncode}" + (
            f": {said})" if said else ")")
        if self.side == "vm" and result.returncode == REFUSED:
            here = socket.gethostname() or "this qube"
            return (f"the qrexec policy refused {self.service} from {here} to the qube {self.qube}, or that qube "
                    f"does not exist: dom0 needs a policy rule such as "
                    f"'{self.service} * {here} {self.qube} allow'{detail}")
        lowered = said.lower()
        if "no such domain" in lowered or "does not exist" in lowered:
            return f"the qube {self.qube} does not exist{detail}"
        if "not running" in lowered:
            return f"the qube {self.qube} is not running{detail}"
        return f"the qrexec service {self.service} did not run in the qube {self.qube}{detail}"

    # -- Ansible's interface ---------------------------------------------------------------------------------------

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """One command in the qube: (exit status, standard output, standard error)."""
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if sudoable and self.become and self.become.expect_prompt():
            raise AnsibleError(
                f"corral.qubes.qrexec cannot answer the password prompt of become ({self.become.name}) in the qube "
                f"{self.qube}: become without a password, or set remote_user=root")
        result = self._call(to_text(cmd), data=in_data)
        return result.returncode, result.stdout, result.stderr

    def put_file(self, in_path, out_path):
        """Copy a local file into the qube, streamed, with one call."""
        super().put_file(in_path, out_path)
        in_path = to_text(in_path)
        out_path = to_text(out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.qube)
        if not os.path.isfile(in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        result = self._call(put_command(out_path), source_path=in_path)
        if result.returncode != 0:
            raise AnsibleError(
                f"copying {in_path} to {out_path} in the qube {self.qube} failed (exit status {result.returncode}): "
                + to_text(result.stderr, errors="surrogate_or_replace").strip())

    def fetch_file(self, in_path, out_path):
        """Copy a file of the qube to a local file, streamed, with one call."""
        super().fetch_file(in_path, out_path)
        in_path = to_text(in_path)
        out_path = to_text(out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.qube)
        with open(out_path, "wb") as sink:
            result = self._call(fetch_command(in_path), sink=sink)
        if result.returncode != 0:
            raise AnsibleError(
                f"fetching {in_path} from the qube {self.qube} failed (exit status {result.returncode}): "
                + to_text(result.stderr, errors="surrogate_or_replace").strip())

    def close(self):
        """Nothing stays open between calls."""
        self._connected = False

    def reset(self):
        """Nothing to reset: every command is its own qrexec call."""
        self.close()
