# SPDX-License-Identifier: GPL-3.0-or-later
"""Run real ``ansible-playbook`` against a rehearsal dom0 and read each task's result."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import yaml

from harness import QREXEC_CLIENT, XL

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def ansible_env(dom0, tmp_path: pathlib.Path) -> dict:
    """Environment for ansible commands: this checkout's collection, the rehearsal socket, no colour."""
    config = tmp_path / "ansible.cfg"
    if not config.exists():
        config.write_text("[defaults]\n")  # no user or system configuration leaks into tests
    env = dict(os.environ)
    env.update({
        # the virtualenv, then the rehearsal's stand-ins for dom0 commands (qvm-template)
        "PATH": os.pathsep.join([str(BIN), str(ROOT / "rehearsal" / "bin" / "dom0"), env.get("PATH", "")]),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_CONFIG": str(config),
        "QUBESD_SOCKET": dom0.socket,
        # the policy admin API of this rehearsal dom0, as dom0 reaches it
        "QREXEC_CLIENT": str(QREXEC_CLIENT),
        "REHEARSAL_QREXEC_SOCKET": dom0.qrexec_socket,
        # where corral.qubes.qrexec sees that a qube's root runs (dom0's /var/run/qubes)
        "CORRAL_QREXEC_DAEMON_DIR": dom0.daemon_dir,
        # xl info of the rehearsal's host profile, for the hardware preflight
        "CORRAL_XL": str(XL),
    })
    return env


@dataclasses.dataclass
class Run:
    """One ansible-playbook run: exit status, output and every task's registered result."""

    rc: int
    output: str
    results: list

    def __getitem__(self, index: int) -> dict:
        return self.results[index]

    @property
    def changed(self) -> int:
        """How many tasks reported a change."""
        return sum(1 for result in self.results if result.get("changed"))

    @property
    def failed(self) -> list:
        """Indexes of failed tasks."""
        return [index for index, result in enumerate(self.results) if result.get("failed")]


class Player:
    """Writes a play of module tasks, runs it with ansible-playbook, returns the results."""

    def __init__(self, dom0, tmp_path: pathlib.Path):
        self.dom0 = dom0
        self.tmp_path = tmp_path
        self.count = 0

    def run(self, tasks: list, check: bool = False, diff: bool = False, expect_rc: int | None = 0,
            env: dict | None = None, options: tuple = (), play: dict | None = None) -> Run:
        """Run ``tasks`` (module name -> args dicts) in one play; every task may fail without stopping it.

        ``env`` changes the environment of ansible-playbook (a value None removes the variable); ``options``
        are more command line options (``-vvv``); ``play`` more keys of the play (``module_defaults``).
        """
        self.count += 1
        out = self.tmp_path / f"results-{self.count}.json"
        play_tasks = []
        for index, task in enumerate(tasks):
            task = dict(task)
            task.setdefault("name", f"task {index}")
            task["register"] = f"r{index}"
            task["ignore_errors"] = True
            play_tasks.append(task)
        collected = "{{ [" + ", ".join(f"r{index}" for index in range(len(tasks))) + "] | to_json }}"
        play_tasks.append({"name": "collect results", "check_mode": False, "changed_when": False,
                           "ansible.builtin.copy": {"content": collected, "dest": str(out), "mode": "0600"}})
        playbook = self.tmp_path / f"play-{self.count}.yml"
        play_data = {"hosts": "localhost", "gather_facts": False, **(play or {}), "tasks": play_tasks}
        playbook.write_text(yaml.safe_dump([play_data]))
        argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", *options, str(playbook)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        environment = ansible_env(self.dom0, self.tmp_path)
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        proc = subprocess.run(argv, env=environment, capture_output=True, text=True, check=False, timeout=300)
        output = proc.stdout + proc.stderr
        if expect_rc is not None:
            assert proc.returncode == expect_rc, output
        results = json.loads(out.read_text()) if out.exists() else []
        return Run(proc.returncode, output, results)


def host_play(tmp_path: pathlib.Path, count: int, host: str, tasks: list, gather: bool = False) -> tuple:
    """A playbook running ``tasks`` on ``host`` (each registered, none stopping the play), then writing their
    results on localhost: (the playbook, the results file)."""
    out = tmp_path / f"results-{count}.json"
    play_tasks = [dict(task, register=f"r{index}", ignore_errors=True, name=task.get("name", f"task {index}"))
                  for index, task in enumerate(tasks)]
    collected = "{{ [" + ", ".join(f"hostvars[{host!r}].r{index}" for index in range(len(tasks))) + "] | to_json }}"
    playbook = tmp_path / f"play-{count}.yml"
    playbook.write_text(yaml.safe_dump([
        {"hosts": host, "gather_facts": gather, "tasks": play_tasks},
        {"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
            {"name": "collect", "ansible.builtin.copy": {"content": collected, "dest": str(out), "mode": "0600"}}]},
    ]))
    return playbook, out


def qube(name: str, **args) -> dict:
    """A corral.qubes.qube task."""
    return {"corral.qubes.qube": {"name": name, **args}}


def prefs(**properties) -> dict:
    """A corral.qubes.prefs task."""
    return {"corral.qubes.prefs": {"properties": properties}}
