# SPDX-License-Identifier: GPL-3.0-or-later
"""Template packages through the updates proxy: apt in a template, qubes.UpdatesProxy, the update qube, the world."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness import QREXEC_CLIENT
from repo_world import GREETING, REPO_ADDRESS, SOURCES, hello_world
from rehearsal import network, roots, rootfs

REASONS = roots.unavailable() + network.unavailable()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots with network realisation: {'; '.join(REASONS)}")
TEMPLATE = "debian-13-xfce"


@pytest.fixture
def lab(dom0_factory, tmp_path):
    """A rehearsal dom0 with real roots whose world serves a repository with the package corral-hello."""
    rootfs.build()
    world = hello_world(tmp_path, b"hello from the repo\n")
    dom0 = dom0_factory(extra_args=("--roots", "on", "--network", "on", "--world", str(world)))
    dom0.client().start(TEMPLATE)
    assert run(dom0, f"rm -f /etc/apt/sources.list.d/*; echo '{SOURCES}' > /etc/apt/sources.list").returncode == 0
    return dom0


def run(dom0, command: str) -> subprocess.CompletedProcess:
    """A command as root in the template."""
    return subprocess.run([str(QREXEC_CLIENT), "-d", TEMPLATE, "root:QUBESRPC qubes.VMShell dom0"],
                          input=command.encode(), capture_output=True, env=dom0.qube_env(), timeout=300, check=False)


def access_log(dom0) -> list[list[str]]:
    """The world's HTTP requests: [client address, method, path, status]."""
    path = os.path.join(network.Layout(dom0.state_dir).run_dir, "http-access.log")
    with open(path, encoding="utf-8") as handle:
        return [line.split() for line in handle]


def test_apt_installs_in_a_template_through_the_updates_proxy(lab):
    """apt in the template → 127.0.0.1:8082 → qubes.UpdatesProxy → sys-net (started) → the world's repository."""
    client = lab.client()
    assert client.property_get(TEMPLATE, "netvm").value == ""
    assert client.current_state("sys-net")["power_state"] == "Halted"
    result = run(lab, "cat /etc/apt/apt.conf.d/01qubes-proxy; apt-get update 2>&1; "
                      "apt-get install -y corral-hello 2>&1; cat " + GREETING)
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert 'Acquire::http::Proxy "http://127.0.0.1:8082/";' in out
    assert out.endswith("hello from the repo\n")
    assert client.current_state("sys-net")["power_state"] == "Running"
    calls = [c for c in lab.qrexec_calls() if c["service"] == "qubes.UpdatesProxy"]
    assert calls and all((c["source"], c["target"], c["decision"], c["final"]) ==
                         (TEMPLATE, "@default", "allow", "sys-net") for c in calls)
    assert [c.get("started", False) for c in calls].count(True) == 1
    sys_net = client.property_get("sys-net", "ip").value
    requests = access_log(lab)
    assert {request[0] for request in requests} == {sys_net}, "every request came through sys-net"
    assert ["GET", "/./corral-hello_1.0_all.deb", "200"] in [request[1:] for request in requests]
    # the template itself has no way out: only loopback
    direct = run(lab, f"python3 -c \"import socket; socket.create_connection(('{REPO_ADDRESS}', 80), timeout=2)\"")
    assert direct.returncode != 0 and b"unreachable" in direct.stderr


def test_with_the_updates_proxy_denied_nothing_installs_and_the_error_says_why(lab):
    """A policy that names no update qube for the template: apt fails, naming qubes.UpdatesProxy and the policy."""
    (lab.policy_dir / "30-no-updates.policy").write_text(
        "qubes.UpdatesProxy * @type:TemplateVM @default deny\n", encoding="utf-8")
    result = run(lab, "apt-get update 2>&1; apt-get install -y corral-hello 2>&1")
    out = result.stdout.decode()
    assert result.returncode != 0
    assert "qubes.UpdatesProxy from debian-13-xfce refused by the qrexec policy" in out
    assert "Unable to locate package corral-hello" in out
    assert lab.client().current_state("sys-net")["power_state"] == "Halted"
    calls = [c for c in lab.qrexec_calls() if c["service"] == "qubes.UpdatesProxy"]
    assert calls and all(c["decision"] == "deny" for c in calls)
    assert not os.path.exists(os.path.join(network.Layout(lab.state_dir).run_dir, "http-access.log"))
