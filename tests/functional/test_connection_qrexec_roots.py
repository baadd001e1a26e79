# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.qrexec into qubes that really run: the rehearsal's qube roots and its qrexec stand-ins.

ansible-playbook on "dom0" (this machine) runs tasks inside a qube's own Debian root through the
rehearsal's ``qrexec-client`` (and ``qrexec-client-vm`` from a management qube, under the policy):
command, shell, copy, fetch, file, template, stat, setup, and package (apt, from a local repository
the test builds and copies into the qube through the connection itself). The rehearsal logs every
qrexec call, so the tests count them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest
import yaml

from harness import QREXEC_CLIENT, QREXEC_CLIENT_VM
from playbook import BIN, ansible_env, host_play
from rehearsal import roots, rootfs
from rehearsal.debrepo import build_package, write_repository

REASONS = roots.unavailable()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots: {'; '.join(REASONS)}")
QREXEC_LINE = re.compile(r"^<[^>]+> QREXEC \S+ .* <<< ", re.M)
QUBE_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="session")
def base_root():
    """The cached base root filesystem (built on first use)."""
    path, _seconds, _built = rootfs.build()
    return path


@pytest.fixture
def lab(dom0_factory, base_root, tmp_path):  # pylint: disable=unused-argument
    """A fresh rehearsal dom0 whose running qubes run on real roots, with an AppVM work and a management qube."""
    dom0 = dom0_factory(extra_args=("--roots", "on"))
    client = dom0.client()
    client.create("AppVM", "work", "blue", template="debian-13-xfce")
    client.create("AppVM", "mgmt", "black", template="debian-13-xfce")
    return Lab(dom0, tmp_path)


class Lab:
    """ansible-playbook runs through the plugin against one rehearsal dom0 with roots."""

    def __init__(self, dom0, tmp_path):
        self.dom0 = dom0
        self.tmp_path = tmp_path
        self.count = 0

    def qrexec_calls(self) -> list[dict]:
        return self.dom0.qrexec_calls() if os.path.exists(self.dom0.qrexec_log) else []

    def play(self, host: str, tasks: list, gather: bool = False, pipelining: bool = True, hostvars=None,
             env=None, expect_rc=0):
        """Run ``tasks`` on ``host``; (results, output, qrexec calls into qubes, Admin API methods)."""
        self.count += 1
        playbook, out = host_play(self.tmp_path, self.count, host, tasks, gather)
        inventory = self.tmp_path / f"inventory-{self.count}.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {
            "localhost": {"ansible_connection": "local"},
            host: {"ansible_connection": "corral.qubes.qrexec", "ansible_python_interpreter": QUBE_PYTHON,
                   **(hostvars or {})}}}}))
        environment = ansible_env(self.dom0, self.tmp_path)
        environment.update({"QREXEC_CLIENT": str(QREXEC_CLIENT), "QREXEC_CLIENT_VM": str(QREXEC_CLIENT_VM),
                            "CORRAL_QREXEC_DAEMON_DIR": self.dom0.daemon_dir,
                            "REHEARSAL_QREXEC_DAEMON_DIR": self.dom0.daemon_dir,
                            "ANSIBLE_PIPELINING": "1" if pipelining else "0"})
        environment.update(env or {})
        calls_before, api_mark = len(self.qrexec_calls()), self.dom0.mark()
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-vvv", "-i", str(inventory), str(playbook)],
                              env=environment, capture_output=True, text=True, check=False, timeout=600)
        output = proc.stdout + proc.stderr
        if expect_rc is not None:
            assert proc.returncode == expect_rc, output
        results = json.loads(out.read_text()) if out.exists() else []
        calls = [c for c in self.qrexec_calls()[calls_before:] if c.get("target") != "dom0"]
        api = [c["method"] for c in self.dom0.calls_since(api_mark)]
        return results, output, calls, api


def make_deb(directory) -> tuple:
    """A small .deb (a script in /usr/bin) and the flat repository holding it: (the .deb, its Packages index)."""
    deb = build_package(directory, "corral-hello", "1.0",
                        {"/usr/bin/corral-hello": b"#!/bin/sh\necho hello from corral-hello 1.0\n"},
                        description="a package the qrexec connection tests install", modes={"/usr/bin/corral-hello": 0o755})
    write_repository(directory / "repo", [deb])
    return directory / "repo" / deb.name, directory / "repo" / "Packages"


def test_modules_run_inside_a_real_qube_root(lab):
    blob = lab.tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 1000 + os.urandom(300_000))
    template = lab.tmp_path / "motd.j2"
    template.write_text("{{ ansible_facts.hostname }} says {{ greeting }}\n")
    tasks = [
        {"ansible.builtin.command": "hostname"},
        {"ansible.builtin.shell": "id -un; test -d /rw && echo has-rw; echo warn >&2"},
        {"ansible.builtin.copy": {"src": str(blob), "dest": "/home/user/blob.bin", "owner": "user", "mode": "0600"}},
        {"ansible.builtin.template": {"src": str(template), "dest": "/etc/motd"}, "vars": {"greeting": "grüezi"}},
        {"ansible.builtin.file": {"path": "/rw/config", "state": "directory", "mode": "0755"}},
        {"ansible.builtin.stat": {"path": "/home/user/blob.bin", "checksum_algorithm": "sha256"}},
        {"ansible.builtin.fetch": {"src": "/etc/motd", "dest": str(lab.tmp_path / "motd.fetched"), "flat": True}},
        {"ansible.builtin.fetch": {"src": "/home/user/blob.bin", "dest": str(lab.tmp_path / "blob.fetched"),
                                   "flat": True}},
        {"ansible.builtin.command": "cat /etc/motd"},
    ]
    client = lab.dom0.client()
    assert client.current_state("work")["power_state"] == "Halted"
    results, output, calls, api = lab.play("work", tasks, gather=True)
    assert not [index for index, r in enumerate(results) if r.get("failed")], output
    assert results[0]["stdout"] == "work"  # the qube's own UTS namespace
    assert results[1]["stdout_lines"] == ["root", "has-rw"] and results[1]["stderr"] == "warn"
    assert results[5]["stat"]["checksum"] == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert results[5]["stat"]["pw_name"] == "user"
    assert (lab.tmp_path / "motd.fetched").read_text() == "work says grüezi\n"
    assert (lab.tmp_path / "blob.fetched").read_bytes() == blob.read_bytes()
    assert results[8]["stdout"] == "work says grüezi"
    # one qrexec call per command, all of them into work as root through qubes.VMShell from dom0
    assert len(calls) == len(QREXEC_LINE.findall(output)), output
    assert {(c["source"], c["target"], c["service"]) for c in calls} == {("dom0", "work", "qubes.VMShell")}
    # work was started once, by the first command: its qrexec_timeout read, one admin.vm.Start
    assert api == ["admin.vm.property.Get", "admin.vm.Start"]
    assert client.current_state("work")["power_state"] == "Running"
    # not on the host: the files are in the qube's root
    assert not os.path.exists("/home/user/blob.bin") or os.path.getsize("/home/user/blob.bin") != blob.stat().st_size

    # without pipelining, the same again: nothing changes, no Admin API call
    results, output, calls, api = lab.play("work", tasks[2:5], pipelining=False)
    assert [r.get("changed") for r in results] == [False, False, False], output
    assert api == [] and len(calls) == len(QREXEC_LINE.findall(output))


def test_package_installs_with_apt_inside_the_qube(lab):
    """The generic package module (apt here: the roots are Debian) from a local repository copied in."""
    deb, index = make_deb(lab.tmp_path)
    repo = "/srv/corral-repo"
    tasks = [
        {"ansible.builtin.file": {"path": repo, "state": "directory", "mode": "0755"}},
        {"ansible.builtin.copy": {"src": str(deb), "dest": f"{repo}/{deb.name}", "mode": "0644"}},
        {"ansible.builtin.copy": {"src": str(index), "dest": f"{repo}/Packages", "mode": "0644"}},
        {"ansible.builtin.copy": {"content": f"deb [trusted=yes] file:{repo} ./\n",
                                  "dest": "/etc/apt/sources.list.d/corral.list", "mode": "0644"}},
        # only the local repository: the qube has no network
        {"ansible.builtin.shell": "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources; "
                                  "apt-get update -o Acquire::Languages=none"},
        {"ansible.builtin.package": {"name": "corral-hello", "state": "present"}},
        {"ansible.builtin.command": "corral-hello"},
        {"ansible.builtin.package": {"name": "corral-hello", "state": "present"}},
        {"ansible.builtin.package": {"name": "corral-no-such-package", "state": "present"}},
    ]
    results, output, calls, _api = lab.play("work", tasks)
    assert [r.get("failed", False) for r in results] == [False] * 8 + [True], output
    assert results[5]["changed"] and not results[7]["changed"]
    assert results[6]["stdout"] == "hello from corral-hello 1.0"
    assert "corral-no-such-package" in results[8]["msg"]
    assert len(calls) == len(QREXEC_LINE.findall(output))


def test_a_large_binary_file_both_ways(lab):
    big = lab.tmp_path / "big.bin"
    with open(big, "wb") as stream:
        for _mib in range(70):
            stream.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    tasks = [{"ansible.builtin.copy": {"src": str(big), "dest": "/rw/big.bin", "mode": "0600"}},
             {"ansible.builtin.stat": {"path": "/rw/big.bin", "checksum_algorithm": "sha256"}},
             {"ansible.builtin.fetch": {"src": "/rw/big.bin", "dest": str(lab.tmp_path / "big.back"), "flat": True}}]
    results, output, _calls, _api = lab.play("work", tasks)
    assert not [r for r in results if r.get("failed")], output
    assert results[1]["stat"]["checksum"] == digest and results[1]["stat"]["size"] == 70 * 1024 * 1024
    assert hashlib.sha256((lab.tmp_path / "big.back").read_bytes()).hexdigest() == digest


def test_from_a_management_qube_under_the_policy(lab):
    client = lab.dom0.client()
    client.start("mgmt")
    mgmt = {"ansible_qrexec_from": "vm"}
    env = {"REHEARSAL_QUBE": "mgmt"}
    # refused: no rule allows qubes.VMRootShell from mgmt to work
    _r, output, calls, api = lab.play("work", [{"ansible.builtin.command": "true"}], hostvars=mgmt, env=env,
                                      expect_rc=None)
    assert "the qrexec policy refused qubes.VMRootShell from " in output and "to the qube work" in output, output
    assert [(c["source"], c["service"], c["decision"]) for c in calls] == [("mgmt", "qubes.VMRootShell", "deny")]
    assert client.current_state("work")["power_state"] == "Halted"
    (lab.dom0.policy_dir / "30-mgmt.policy").write_text("qubes.VMRootShell * mgmt work allow\n")
    results, output, calls, api = lab.play("work", [{"ansible.builtin.command": "id -un"},
                                                    {"ansible.builtin.command": "hostname"}],
                                           hostvars=mgmt, env=env)
    assert [r["stdout"] for r in results] == ["root", "work"], output
    # dom0's qrexec started the halted target on the first call; the management qube made no Admin API call
    assert [(c["source"], c["target"], c["decision"], c.get("started", False)) for c in calls] == [
        ("mgmt", "work", "allow", True), ("mgmt", "work", "allow", False)]
    assert api == []  # qrexec started it inside dom0, without the Admin API call log seeing the plugin call anything
