# SPDX-License-Identifier: GPL-3.0-or-later
"""The dom0 host of the tests: started, reached over ssh by real ansible-playbook runs, read back."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import yaml

from rehearsal import dom0host

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
REASONS = ([] if os.geteuid() == 0 else ["it needs root"]) + [
    f"missing {tool}" for tool in ("ip", "nc", "ssh", "ssh-keygen", "unshare", "nsenter", "debootstrap")
    if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep))]
LEAKS = ("QUBESD_SOCKET", "QREXEC_CLIENT", "QREXEC_CLIENT_VM", "REHEARSAL_QREXEC_SOCKET", "CORRAL_XL", "CORRAL_POLICY_DIR",
         "CORRAL_RUNTIME_POLICY_DIR", "CORRAL_QREXEC_DAEMON_DIR", "REHEARSAL_QREXEC_DAEMON_DIR", "REHEARSAL_HOST")
"""The rehearsal's variables for a play on this machine: none may reach a play against the dom0 host."""


class Dom0Host:
    """A started dom0 host and what a play needs to reach it (its inventory, Ansible's environment)."""

    def __init__(self, directory: pathlib.Path, name: str):
        self.directory = directory
        self.host = dom0host.Host(str(directory / "host"), name)
        self.info = None

    def start(self) -> Dom0Host:
        """Start it (the Debian root is built once into the cache)."""
        self.info = self.host.start()
        return self

    def stop(self) -> None:
        """Stop it (its state stays in its directory)."""
        self.host.stop()

    def inventory(self, group_vars: pathlib.Path | None = None) -> pathlib.Path:
        """An inventory: host ``dom0`` in ``qubes_admin`` over ssh, and the qrexec connection's variables for
        ``corral_inside`` (the group the roles add qubes to); optionally the reference layout's group_vars."""
        variables = self.host.write_controller_files()
        folder = self.directory / "inventory"
        folder.mkdir(exist_ok=True)
        (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
            "qubes_admin": {"hosts": {"dom0": variables["dom0"]}},
            "corral_inside": {"vars": variables["qubes"]}}}}), encoding="utf-8")
        link = folder / "group_vars"
        if link.is_symlink() or link.exists():
            link.unlink()
        if group_vars is not None:
            link.symlink_to(group_vars)
        return folder

    def env(self, **extra) -> dict:
        """Ansible's environment: this checkout's collection, no colour, none of the rehearsal's variables."""
        config = self.directory / "ansible.cfg"
        if not config.exists():
            config.write_text("[defaults]\nhost_key_checking = False\n[ssh_connection]\npipelining = True\n",
                              encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if key not in LEAKS}
        env.update({"PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
                    "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
                    "ANSIBLE_LOCAL_TEMP": str(self.directory / "ansible-tmp"),
                    "ANSIBLE_CONFIG": str(config), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
                    "ANSIBLE_RETRY_FILES_ENABLED": "0"}, **extra)
        return env

    def playbook(self, playbook: pathlib.Path, *options: str, inventory: pathlib.Path | None = None,
                 env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        """``ansible-playbook -i INVENTORY PLAYBOOK OPTIONS`` (output text in stdout, stderr merged)."""
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory or self.inventory()), str(playbook),
                               *options], cwd=ROOT, env=env or self.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)

    def sh(self, script: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess:
        """A shell script run in the host as root, over ssh (as Ansible reaches it)."""
        proc = subprocess.run(["ssh", "-F", self.host.ssh_config, self.host.name, script], input=stdin,
                              capture_output=True, text=True, timeout=300, check=False)
        if check:
            assert proc.returncode == 0, f"{script}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def read(self, path: str) -> str:
        """A file of the host, read from outside (through its root)."""
        return pathlib.Path(self.host.outside(path)).read_text(encoding="utf-8")

    def log(self, name: str) -> list[dict]:
        """A JSON-lines log of the rehearsal in the host (``rehearsal-calls.jsonl``, ``qrexec.jsonl``)."""
        path = pathlib.Path(self.host.outside(f"{dom0host.LOG_DIR}/{name}"))
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def log_text(self, name: str) -> str:
        """A log of the rehearsal in the host, as text."""
        path = pathlib.Path(self.host.outside(f"{dom0host.LOG_DIR}/{name}"))
        return path.read_text(encoding="utf-8") if path.exists() else ""


def recap(output: str) -> dict:
    """The PLAY RECAP numbers of host dom0."""
    for line in output.splitlines():
        if line.startswith("dom0 ") and "ok=" in line:
            return {key: int(value) for key, value in (word.split("=") for word in line.split()[2:])}
    raise AssertionError(f"no PLAY RECAP for dom0 in:\n{output[-3000:]}")
