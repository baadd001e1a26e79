# SPDX-License-Identifier: GPL-3.0-or-later
"""Qube roots: a running qube really runs, in its own namespaces and root; qrexec services run inside it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import QREXEC_CLIENT, QREXEC_CLIENT_VM, ROOT
from rehearsal import netns, network, roots, rootfs

REASONS = roots.unavailable()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots: {'; '.join(REASONS)}")


@pytest.fixture(scope="session")
def base_root():
    """The cached base root filesystem (built here on first use; every worker waits for one build)."""
    path, seconds, built = rootfs.build()
    if built:
        print(f"base root filesystem built in {seconds:.1f} s")
    return path


@pytest.fixture
def lab(dom0_factory, base_root):  # pylint: disable=unused-argument
    """A fresh rehearsal dom0 whose running qubes run on real roots."""
    dom0 = dom0_factory(extra_args=("--roots", "on"))
    dom0.client().create("AppVM", "work", "blue", template="debian-13-xfce")
    return dom0


def dom0_run(dom0, qube: str, command: str, user: str = "root", stdin: bytes = b"",
             service: str = "qubes.VMShell") -> subprocess.CompletedProcess:
    """``qrexec-client -d QUBE "USER:QUBESRPC SERVICE dom0"`` with the commands on stdin."""
    return subprocess.run([str(QREXEC_CLIENT), "-d", qube, f"{user}:QUBESRPC {service} dom0"],
                          input=command.encode() + stdin, capture_output=True, env=dom0.qube_env(), timeout=60,
                          check=False)


def sh(dom0, qube: str, command: str, user: str = "root") -> str:
    """A command's stdout (it must succeed)."""
    result = dom0_run(dom0, qube, command, user)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def restart(client, qube: str) -> None:
    """Shut a qube down (waiting) and start it again."""
    client.shutdown(qube, wait=True)
    client.start(qube)


def test_a_command_runs_inside_the_qube(lab):
    """Hostname, PID 1, namespaces, users: the qube's own; the daemon file marks it running."""
    client = lab.client()
    marker = os.path.join(lab.daemon_dir, "qrexec.work")
    assert not os.path.exists(marker)
    client.start("work")
    assert os.path.exists(marker)
    out = sh(lab, "work", "hostname; cat /etc/hostname; tr '\\0' ' ' < /proc/1/cmdline; echo;"
                          "readlink /proc/self/ns/net /proc/self/ns/pid /proc/self/ns/mnt; id -u; ls /proc | grep -c '^[0-9]'")
    lines = out.splitlines()
    assert lines[0] == lines[1] == "work"
    assert roots.MARKER in lines[2]
    host = [os.readlink(f"/proc/self/ns/{kind}") for kind in ("net", "pid", "mnt")]
    assert all(inside != outside for inside, outside in zip(lines[3:6], host))
    assert lines[6] == "0"
    assert int(lines[7]) < 10, "only the qube's own processes are visible"
    assert sh(lab, "work", "id -un; echo $HOME; pwd", user="DEFAULT").split() == ["user", "/home/user", "/home/user"]
    assert sh(lab, "work", "getent passwd user root | cut -d: -f1,3,6").split() == ["user:1000:/home/user", "root:0:/root"]
    # the qube with a netvm is in the namespace the network realisation made for it
    namespace = network.Layout(lab.state_dir).namespace("work")
    if netns.exists(namespace):
        assert lines[3] == f"net:[{os.stat(os.path.join(netns.NETNS_DIR, namespace)).st_ino}]"


def test_an_appvm_root_is_thrown_away_its_private_data_kept(lab):
    """Root changes of an AppVM are gone after a restart; /home and /rw persist."""
    client = lab.client()
    client.start("work")
    sh(lab, "work", "echo root-change > /etc/marker; echo rw-data > /rw/config-note")
    sh(lab, "work", "echo home-data > ~/note", user="DEFAULT")
    restart(client, "work")
    out = sh(lab, "work", "cat /etc/marker 2>&1; cat /rw/config-note /home/user/note; stat -c %U /home/user/note")
    assert out.splitlines() == ["cat: /etc/marker: No such file or directory", "rw-data", "home-data", "user"]


def test_a_template_change_reaches_its_appvm_after_the_appvm_restarts(lab):
    """As in Qubes: an AppVM sees its template's root as it was when the AppVM started."""
    client = lab.client()
    client.start("work")
    client.start("debian-13-xfce")
    sh(lab, "debian-13-xfce", "echo from-template > /etc/template-marker")
    assert "No such file" in dom0_run(lab, "work", "cat /etc/template-marker").stderr.decode()
    client.shutdown("debian-13-xfce", wait=True)
    restart(client, "work")
    assert sh(lab, "work", "cat /etc/template-marker") == "from-template\n"
    # and the template's own change persists across its restart
    client.start("debian-13-xfce")
    assert sh(lab, "debian-13-xfce", "cat /etc/template-marker") == "from-template\n"


def test_a_standalone_starts_as_a_copy_of_its_template_and_keeps_its_root(lab):
    """A StandaloneVM cloned from a template has the template's root, then a root of its own."""
    client = lab.client()
    client.start("debian-13-xfce")
    sh(lab, "debian-13-xfce", "echo template-state > /etc/origin")
    client.shutdown("debian-13-xfce", wait=True)
    client.create("StandaloneVM", "alone", "red")
    client.volume_clone_to("alone", "root", client.volume_clone_from("debian-13-xfce", "root"))
    client.start("alone")
    assert sh(lab, "alone", "cat /etc/origin; hostname") == "template-state\nalone\n"
    sh(lab, "alone", "echo mine > /etc/standalone-only")
    restart(client, "alone")
    assert sh(lab, "alone", "cat /etc/standalone-only") == "mine\n"
    client.start("debian-13-xfce")
    assert "No such file" in dom0_run(lab, "debian-13-xfce", "cat /etc/standalone-only").stderr.decode()
    client.shutdown("alone", wait=True)
    client.remove("alone")
    assert not os.path.exists(os.path.join(lab.state_dir, "qubes", "alone"))


def test_exit_status_stderr_and_binary_data_come_back_exactly(lab):
    """Status and stderr byte-exact; 12 MiB of random bytes round-trip through the qube."""
    client = lab.client()
    client.start("work")
    result = dom0_run(lab, "work", "printf 'out\\n'; printf '\\000\\377 err\\n' >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, b"out\n", b"\x00\xff err\n")
    data = os.urandom(12 * 1024 * 1024)
    result = subprocess.run([str(QREXEC_CLIENT), "-d", "work", "DEFAULT:cat"], input=data, capture_output=True,
                            env=lab.qube_env(), timeout=120, check=False)
    assert result.returncode == 0 and result.stderr == b""
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(data).digest()
    # a service's argument and caller
    result = subprocess.run([str(QREXEC_CLIENT), "-d", "work", "root:QUBESRPC qubes.VMShell mgmt"],
                            input=b'echo "$QREXEC_REMOTE_DOMAIN"', capture_output=True, env=lab.qube_env(),
                            timeout=60, check=False)
    assert result.stdout == b"mgmt\n"


def test_dom0_qrexec_client_does_not_start_a_halted_qube(lab):
    """A halted qube stays halted: status 1 and its name; a missing one: status 1, no such domain."""
    result = dom0_run(lab, "work", "true")
    assert result.returncode == 1
    assert result.stderr == b"qrexec-client: domain work is not running\n"
    assert lab.client().current_state("work")["power_state"] == "Halted"
    result = dom0_run(lab, "nosuch", "true")
    assert result.returncode == 1 and b"no such domain" in result.stderr


def test_qrexec_client_vm_obeys_the_policy_and_starts_the_target(lab):
    """Denied: 126 and Request refused, nothing started; allowed: the halted target starts and answers."""
    client = lab.client()
    env = lab.qube_env("sys-net")

    def call(target, service, stdin=b"id -un; hostname"):
        return subprocess.run([str(QREXEC_CLIENT_VM), target, service], input=stdin, capture_output=True, env=env,
                              timeout=60, check=False)

    result = call("work", "qubes.VMShell")
    assert (result.returncode, result.stderr) == (126, b"Request refused\n")
    assert client.current_state("work")["power_state"] == "Halted"
    (lab.policy_dir / "20-test.policy").write_text("qubes.VMShell * sys-net work allow\n"
                                                   "qubes.VMRootShell * sys-net work allow\n")
    result = call("work", "qubes.VMShell")
    assert (result.returncode, result.stdout) == (0, b"user\nwork\n"), result.stderr
    assert client.current_state("work")["power_state"] == "Running"
    assert call("work", "qubes.VMRootShell", b"id -un").stdout == b"root\n"
    assert call("work", "qubes.NoSuchService").returncode == 126  # the policy denies it
    logged = [(c["source"], c["target"], c["service"], c["decision"], c.get("started", False), c["status"])
              for c in lab.qrexec_calls() if c["source"] == "sys-net"]
    assert logged == [("sys-net", "work", "qubes.VMShell", "deny", False, 126),
                      ("sys-net", "work", "qubes.VMShell", "allow", True, 0),
                      ("sys-net", "work", "qubes.VMRootShell", "allow", False, 0),
                      ("sys-net", "work", "qubes.NoSuchService", "deny", False, 126)]
    assert all("payload" not in entry and "stdin" not in entry for entry in lab.qrexec_calls())


def _inits_of(state_dir: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if argv[0] != b"unshare" and roots.MARKER.encode() in argv and \
                    any(a.startswith(state_dir.encode()) for a in argv):
                found.append(int(entry))
    return found


def test_nothing_is_left_when_the_server_stops_or_after_a_crash(lab):
    """A stop ends every qube's processes; a killed server's inits are ended by the next start."""
    client = lab.client()
    client.start("work")
    client.start("debian-13-xfce")
    state = os.path.realpath(lab.state_dir)
    running = sorted(name for name, entry in client.list_vms().items() if entry.state == "Running")
    assert running == ["debian-13-xfce", "dom0", "sys-firewall", "sys-net", "work"]
    assert sorted(os.listdir(lab.daemon_dir)) == [f"qrexec.{name}" for name in running if name != "dom0"]
    assert len(_inits_of(state)) == 4
    sleeper = subprocess.Popen([str(QREXEC_CLIENT), "-d", "work", "DEFAULT:sleep 600"], env=lab.qube_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    lab.stop()
    assert _inits_of(state) == []
    assert sleeper.wait(timeout=10) != 0
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        assert state not in handle.read()
    lab.start()
    assert len(_inits_of(state)) == 4, "the qubes the state holds as running run again"
    lab.proc.send_signal(signal.SIGKILL)
    lab.proc.wait()
    lab.proc = None
    left = _inits_of(state)
    assert len(left) == 4
    lab.start()
    assert not set(left) & set(_inits_of(state))
    assert sh(lab, "work", "hostname") == "work\n"


def test_a_paused_qube_does_not_run(lab):
    """Pause stops every process of the qube (state T); Unpause lets them go on."""
    client = lab.client()
    client.start("work")
    sleeper = subprocess.Popen([str(QREXEC_CLIENT), "-d", "work", "DEFAULT:sleep 300"], env=lab.qube_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        state = os.path.realpath(lab.state_dir)
        init = _inits_of(state)
        init = [pid for pid in init if _cmdline(pid).count(f"{state}/qubes/work/mnt".encode())][0]
        namespace = os.readlink(f"/proc/{init}/ns/pid")

        def states():
            found = []
            for entry in os.listdir("/proc"):
                try:
                    if entry.isdigit() and os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                        with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                            found.append(handle.read().rsplit(")", 1)[1].split()[0])
                except OSError:
                    continue
            return found

        assert len(states()) >= 2 and "T" not in states()
        client.pause("work")
        assert set(states()) == {"T"}
        waiting = subprocess.Popen([str(QREXEC_CLIENT), "-d", "work", "DEFAULT:echo ran"], env=lab.qube_env(),
                                   stdout=subprocess.PIPE)
        time.sleep(0.5)
        assert waiting.poll() is None, "a call into a paused qube waits"
        client.unpause("work")
        assert waiting.communicate(timeout=30)[0] == b"ran\n"
        assert "T" not in states()
        assert sh(lab, "work", "echo alive") == "alive\n"
    finally:
        sleeper.kill()
        sleeper.wait()


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read()


def test_rootfs_build_reports_the_cached_root(base_root):
    """``python -m rehearsal rootfs build`` finds the cached root and says so (and where)."""
    result = subprocess.run([sys.executable, "-m", "rehearsal", "rootfs", "build"], capture_output=True, text=True,
                            cwd=ROOT, check=False, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{base_root}: cached in ")
    assert rootfs.ready()
