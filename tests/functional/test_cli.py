# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m rehearsal``: init, call, demo (what ``make rehearse`` runs)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

from harness import ROOT


def rehearsal(*args, check=False):
    return subprocess.run([sys.executable, "-m", "rehearsal", *args], cwd=ROOT, capture_output=True, text=True,
                          check=check, timeout=120)


def test_init_writes_a_fresh_state_once(tmp_path):
    state = tmp_path / "state"
    assert rehearsal("init", "--state", str(state), "--release", "4.2").returncode == 0
    assert json.loads((state / "qubes.json").read_text())["release"] == "4.2"
    again = rehearsal("init", "--state", str(state))
    assert again.returncode == 1 and "already holds a state" in again.stderr
    assert rehearsal("init", "--state", str(state), "--force").returncode == 0
    assert json.loads((state / "qubes.json").read_text())["release"] == "4.3"


def test_an_existing_state_keeps_its_release(tmp_path):
    state = tmp_path / "state"
    rehearsal("init", "--state", str(state), "--release", "4.2", check=True)
    result = rehearsal("serve", "--state", str(state), "--socket", str(tmp_path / "s.sock"), "--release", "4.3")
    assert result.returncode != 0 and "holds an R4.2 state" in result.stderr


def test_init_refuses_bad_templates_option(tmp_path):
    result = rehearsal("init", "--state", str(tmp_path / "s"), "--templates", "only-one")
    assert result.returncode != 0 and "two names" in result.stderr


def test_call(dom0):
    listed = rehearsal("call", "admin.vm.List", "sys-net", "--socket", dom0.socket)
    assert listed.returncode == 0 and listed.stdout.startswith("sys-net class=AppVM state=Halted uuid=")
    got = rehearsal("call", "admin.vm.property.Get", "sys-net", "--arg", "netvm", "--socket", dom0.socket)
    assert got.stdout == "default=False type=vm \n"
    assert rehearsal("call", "admin.vm.property.Set", "sys-net", "--arg", "memory", "--payload", "512",
                     "--socket", dom0.socket).returncode == 0
    assert dom0.client().property_get("sys-net", "memory").native == 512
    failed = rehearsal("call", "admin.vm.List", "nosuch", "--socket", dom0.socket)
    assert failed.returncode == 2 and failed.stderr == "QubesVMNotFoundError: No such domain: 'nosuch'\n"


def test_demo_tours_a_fresh_dom0(tmp_path):
    result = rehearsal("demo", "--state", str(tmp_path / "state"), "--socket", str(tmp_path / "qubesd.sock"),
                       "--call-log", str(tmp_path / "calls.jsonl"), check=True)
    out = result.stdout
    assert "sys-firewall" in out and "fedora-42-xfce" in out
    assert "work's firewall as qubesd keeps it:\n  action=accept dst4=198.51.100.0/24" in out
    assert "QubesValueError: The default-dvm qube does not provide network" in out
    assert "QubesVMInUseError: Domain is in use: 'fedora-42-xfce'" in out
    assert "successful writes" in out
    assert (tmp_path / "state" / "qubes.json").exists()


def test_run_serves_while_a_command_runs(tmp_path):
    script = ("import os; from ansible_collections.corral.qubes.plugins.module_utils import client; "
              "c = client.AdminClient(); c.create('AppVM', 'made', 'red'); print(os.environ['QUBESD_SOCKET'])")
    args = ("run", "--fresh", "--state", str(tmp_path / "state"), "--socket", str(tmp_path / "q.sock"), "--")
    result = rehearsal(*args, sys.executable, "-c", script, check=True)
    assert result.stdout.strip() == str(tmp_path / "q.sock")
    assert "made" in (tmp_path / "state" / "qubes.json").read_text()
    again = rehearsal(*args, sys.executable, "-c", "raise SystemExit(7)")
    assert again.returncode == 7
    assert "made" not in (tmp_path / "state" / "qubes.json").read_text()  # --fresh started over
    assert rehearsal("run", "--state", str(tmp_path / "state"), "--socket", str(tmp_path / "q.sock")).returncode == 2


def test_serve_prints_the_environment_of_a_play_and_two_servers_share_a_folder(tmp_path):
    """Each server's qrexec socket is named after its qubesd socket (a.sock -> a.qrexec.sock), so two servers in
    one folder do not collide; serve prints what a play needs, and that environment reaches each server."""
    servers, environments = [], []
    try:
        for name in ("a", "b"):
            subprocess.run([sys.executable, "-m", "rehearsal", "init", "--state", str(tmp_path / name)], cwd=ROOT,
                           check=True, capture_output=True)
            proc = subprocess.Popen([sys.executable, "-m", "rehearsal", "serve", "--state", str(tmp_path / name),
                                     "--socket", str(tmp_path / f"{name}.sock")], cwd=ROOT, stdout=subprocess.PIPE,
                                    text=True)
            servers.append(proc)
            lines, deadline = [], time.monotonic() + 20
            while time.monotonic() < deadline and not any(line.strip().startswith("export PATH=") for line in lines):
                lines.append(proc.stdout.readline())
            env = {}
            for line in lines:
                if line.strip().startswith("export ") and not line.strip().startswith("export PATH="):
                    key, value = line.strip()[len("export "):].split("=", 1)
                    env[key] = shlex.split(value)[0]
            environments.append(env)
        for name, env in zip(("a", "b"), environments):
            assert env["QUBESD_SOCKET"] == str(tmp_path / f"{name}.sock")
            assert env["REHEARSAL_QREXEC_SOCKET"] == str(tmp_path / f"{name}.qrexec.sock")
            assert os.path.exists(env["QREXEC_CLIENT"]) and os.path.exists(env["REHEARSAL_QREXEC_SOCKET"])
            # the policy admin API of each server, through the printed environment: its own policy files
            script = ("from ansible_collections.corral.qubes.plugins.module_utils import client, policy_client; "
                      "print(client.AdminClient().list_vms().keys() and policy_client.PolicyAdmin().list())")
            listed = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, **env), capture_output=True,
                                    text=True, check=False)
            assert listed.returncode == 0 and "90-default" in listed.stdout, listed
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
