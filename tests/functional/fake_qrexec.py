# SPDX-License-Identifier: GPL-3.0-or-later
"""Test double of qrexec-client (dom0) and qrexec-client-vm (a qube), for the qrexec connection plugin.

Run as ``python fake_qrexec.py dom0 -d QUBE [-T] [-w SECONDS] "USER:QUBESRPC SERVICE[+ARG] SOURCE"`` or
``python fake_qrexec.py vm TARGET SERVICE[+ARG]`` (tests wrap it in executables with qrexec's names).
It keeps the stand-ins' contract, with this machine in place of the qube:

* a qube runs when ``qrexec.QUBE`` is in ``$REHEARSAL_QREXEC_DAEMON_DIR``; the qubes that exist are the
  names in ``$FAKE_QREXEC_QUBES`` (comma-separated);
* dom0: no policy; a halted qube gives exit status 1 and "qrexec-client: domain QUBE is not running", an
  unknown one "no such domain";
* vm: ``$REHEARSAL_QUBE`` is the caller; the calls allowed are ``SERVICE:TARGET`` pairs in
  ``$FAKE_QREXEC_ALLOW``; any other is refused (exit status 126, "Request refused"); an allowed call to a
  halted qube starts it (its daemon socket appears);
* ``qubes.VMShell`` and ``qubes.VMRootShell`` run a shell reading the call's standard input
  (``$FAKE_QREXEC_SHELL``, by default ``/bin/sh``: dash on Debian, which reads a pipe in blocks, unlike
  the ``bash`` of Qubes' services), as the user of the call (through ``runuser`` when it is not this
  process's user); standard input, output and error stream through untouched and the exit status is the
  shell's;
* every call is one JSON line in ``$FAKE_QREXEC_LOG``.
"""

from __future__ import annotations

import getpass
import json
import os
import sys


def _log(entry: dict) -> None:
    path = os.environ.get("FAKE_QREXEC_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry) + "\n")


def _daemon(qube: str) -> str:
    return os.path.join(os.environ["REHEARSAL_QREXEC_DAEMON_DIR"], f"qrexec.{qube}")


def _exists(qube: str) -> bool:
    return qube in os.environ.get("FAKE_QREXEC_QUBES", "").split(",")


def _shell(user: str) -> int:
    """Become the shell, as ``user``, on this call's standard streams."""
    shell = os.environ.get("FAKE_QREXEC_SHELL") or "/bin/sh"
    if user in ("root", getpass.getuser()) and (user != "root" or os.geteuid() == 0):
        argv = [shell]
    else:
        argv = ["runuser", "-u", user, "--", shell]
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 127  # not reached


def main_dom0(argv: list[str]) -> int:
    args = list(argv)
    if args[:1] != ["-d"] or len(args) < 3:
        sys.stderr.write('usage: qrexec-client -d QUBE [-T] [-w SECONDS] "USER:QUBESRPC SERVICE SOURCE"\n')
        return 2
    qube = args[1]
    rest = args[2:]
    while rest and rest[0] in ("-T", "-w"):
        rest = rest[2:] if rest[0] == "-w" else rest[1:]
    user, _sep, command = rest[0].partition(":")
    words = command.split()
    _log({"side": "dom0", "target": qube, "user": user, "service": words[1] if len(words) > 1 else ""})
    if not os.path.exists(_daemon(qube)):
        if _exists(qube):
            sys.stderr.write(f"qrexec-client: domain {qube} is not running\n")
        else:
            sys.stderr.write(f"qrexec-client: no such domain: {qube}\n")
        return 1
    if len(words) != 3 or words[0] != "QUBESRPC" or words[1] not in ("qubes.VMShell", "qubes.VMRootShell"):
        sys.stderr.write(f"{command}: no such service in {qube}\n")
        return 127
    return _shell(user)


def main_vm(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: qrexec-client-vm TARGET SERVICE[+ARG]\n")
        return 2
    target, service = argv
    caller = os.environ.get("REHEARSAL_QUBE", "")
    allowed = f"{service}:{target}" in os.environ.get("FAKE_QREXEC_ALLOW", "").split(",")
    _log({"side": "vm", "source": caller, "target": target, "service": service, "allowed": allowed})
    if not allowed or not _exists(target):
        sys.stderr.write("Request refused\n")
        return 126
    if not os.path.exists(_daemon(target)):
        with open(_daemon(target), "w", encoding="utf-8"):
            pass
        _log({"side": "vm", "started": target})
    if service == "qubes.VMRootShell":
        return _shell("root")
    if service == "qubes.VMShell":
        return _shell(os.environ.get("FAKE_QREXEC_DEFAULT_USER", getpass.getuser()))
    sys.stderr.write(f"{service}: no such service in {target}\n")
    return 127


if __name__ == "__main__":
    programs = {"dom0": main_dom0, "vm": main_vm}
    sys.exit(programs[sys.argv[1]](sys.argv[2:]))
