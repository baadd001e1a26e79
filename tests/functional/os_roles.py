# SPDX-License-Identifier: GPL-3.0-or-later
"""What the tests of the roles that install an operating system (windows, bsd) share: the role run from a playbook
on dom0, a command inside a qube through qrexec, the qubes' power states, the installer stand-in's screen."""

from __future__ import annotations

import pathlib
import subprocess

import yaml

from harness import QREXEC_CLIENT
from playbook import BIN, ROOT, ansible_env


def play_role(dom0, tmp_path, role: str, variables: dict, *args, env: dict | None = None):
    """``corral.qubes.ROLE`` with ``variables``, from a playbook on dom0 (localhost)."""
    book = tmp_path / f"{role}.yml"
    book.write_text(yaml.safe_dump([{"name": f"The {role} role", "hosts": "localhost", "connection": "local",
                                     "gather_facts": False, "roles": [{"role": f"corral.qubes.{role}"}]}]))
    values = tmp_path / f"{role}-vars.yml"
    values.write_text(yaml.safe_dump(variables))
    environment = {**ansible_env(dom0, tmp_path), **(env or {})}
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(book), "-e", f"@{values}", *args]
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=600)


def inside(dom0, qube: str, command: str) -> subprocess.CompletedProcess:
    """``command`` run as root in ``qube`` (qubes.VMShell through the rehearsal's qrexec)."""
    return subprocess.run([str(QREXEC_CLIENT), "-d", qube, "root:QUBESRPC qubes.VMShell dom0"], input=command,
                          capture_output=True, text=True, env=dom0.qube_env(), timeout=120, check=False)


def power(dom0) -> dict:
    """Qube name to its power state, as admin.vm.List gives it."""
    return {line.split(" ", 1)[0]: line.split("state=")[1].split(" ")[0]
            for line in dom0.client().call("admin.vm.List", "dom0").splitlines()}


def installer_log(dom0, qube: str) -> str:
    """What the installer stand-in showed on the qube's screen."""
    path = pathlib.Path(dom0.state_dir) / "qubes" / qube / "installer.log"
    return path.read_text() if path.exists() else ""
