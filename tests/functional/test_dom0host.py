# SPDX-License-Identifier: GPL-3.0-or-later
"""The dom0 host: the rehearsal dom0 in namespaces of its own over a Debian root, reached by ssh, whose files
are real; the collection runs there with its production defaults and no environment variable."""

from __future__ import annotations

import os

import pytest

from dom0hosts import REASONS, Dom0Host, recap
from rehearsal import dom0host

pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"dom0 host: {'; '.join(REASONS)}")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """One dom0 host for this module (its name is its network namespace: one per worker)."""
    made = Dom0Host(tmp_path_factory.mktemp("dom0host"), f"cqt{os.getpid() % 100000}").start()
    yield made
    made.stop()


def test_it_is_a_machine_of_its_own_with_dom0_paths(host):
    out = host.sh("hostname; python3 -c 'import sys; print(sys.version_info[:2])'; test -S /var/run/qubesd.sock && "
                  "echo socket; ls /etc/qubes/policy.d; cat /etc/qubes-release; ls /var/run/qubes; "
                  "command -v qrexec-client qvm-template xl qubes-dom0-update; ip -o addr show | wc -l").stdout
    lines = out.splitlines()
    assert lines[0] == host.host.name and lines[1] == "(3, 11)" and lines[2] == "socket"
    assert "90-default.policy" in lines and "35-compat.policy" in lines
    assert any(line.startswith("Qubes release 4.3") for line in lines)
    assert "/usr/bin/qubes-dom0-update" in lines and "/usr/sbin/xl" in lines
    assert lines[-1] == "2"  # loopback only (IPv4 and IPv6): the host has no route out


def test_modules_run_there_with_production_defaults_and_no_environment(host, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: qubes_admin
  gather_facts: false
  tasks:
    - name: A qube, through /var/run/qubesd.sock
      corral.qubes.qube: {name: probe-a, label: green}
    - name: A policy file, through the policy admin API (qrexec-client)
      corral.qubes.policy:
        name: 30-probe
        rules: [{service: qubes.Filecopy, source: probe-a, target: "@anyvm", action: deny}]
    - name: The qube read back
      corral.qubes.qube_info: {names: [probe-a], sections: []}
    - name: Nothing from the rehearsal in the module's environment
      ansible.builtin.command: env
      register: env_out
      changed_when: false
    - name: Show it
      ansible.builtin.debug: {var: env_out.stdout_lines}
""", encoding="utf-8")
    run = host.playbook(playbook)
    assert run.returncode == 0, run.stdout[-4000:]
    assert recap(run.stdout)["changed"] == 2
    assert "QUBESD_SOCKET" not in run.stdout and "REHEARSAL_" not in run.stdout
    # the real directory of dom0 holds the file, written by the rehearsal's policy admin service
    assert "qubes.Filecopy * probe-a @anyvm deny" in host.read("/etc/qubes/policy.d/30-probe.policy")
    again = host.playbook(playbook)
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]


def test_qubes_dom0_update_installs_from_the_local_repository(host):
    out = host.sh("dpkg -s qubes-input-proxy >/dev/null 2>&1 && echo before; qubes-dom0-update -y qubes-input-proxy "
                  ">/dev/null && dpkg -s qubes-input-proxy | grep -E '^(Status|Version)'", check=True).stdout
    assert "before" not in out and "install ok installed" in out and dom0host.debrepo.STAND_IN_VERSION in out
    refused = host.sh("qubes-dom0-update -y no-such-dom0-package", check=False)
    assert refused.returncode != 0 and "no-such-dom0-package" in refused.stdout + refused.stderr
    unsure = host.sh("qubes-dom0-update --frobnicate x", check=False)
    assert unsure.returncode == 2 and "--frobnicate" in unsure.stderr


def test_qubes_run_on_roots_inside_the_host(host):
    out = host.sh("python3 -m rehearsal call admin.vm.Start sys-net; ls /var/run/qubes; "
                  "echo hostname | qrexec-client -d sys-net 'root:QUBESRPC qubes.VMShell dom0'").stdout
    assert "qrexec.sys-net" in out.split() and out.split()[-1] == "sys-net"


def test_it_survives_a_restart(host):
    host.sh("mkdir -p /etc/corral-probe && echo kept > /etc/corral-probe/file")
    host.stop()
    assert host.host.info() is None and not os.path.exists(f"/run/netns/{host.host.name}")
    host.start()
    assert host.sh("cat /etc/corral-probe/file; test -S /var/run/qubesd.sock && echo up").stdout.split() == ["kept", "up"]


def test_ssh_config_and_status(host):
    from rehearsal import __main__ as cli  # pylint: disable=import-outside-toplevel
    assert cli.main(["dom0host", "status", "--dir", host.host.directory, "--name", host.host.name]) == 0
    text = host.host.write_ssh_config()
    assert f"Host {host.host.name}\n" in text and "ProxyCommand ip netns exec %h nc 127.0.0.1 %p" in text
