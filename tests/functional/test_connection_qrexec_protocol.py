# SPDX-License-Identifier: GPL-3.0-or-later
"""The qrexec connection plugin's bytes: one qrexec call per command, through fake qrexec programs.

The fakes (fake_qrexec.py) run ``bash`` on this machine in place of the qube's shell, with the call's
standard streams, exactly as qubes.VMShell does inside a qube; so what these tests check is the
plugin's framing: quoting, the input after the command line, binary data, large files streamed in
both directions, exit statuses, standard error, and the errors of qrexec itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound

from qrexec_fake import Connections, FakeQrexec

BIG = 80 * 1024 * 1024  # more than 64 MiB: larger than any qrexec or Admin API buffer


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Fake qrexec programs; qubes work (running), halted (exists, halted); mgmt is the caller."""
    made = FakeQrexec(tmp_path / "qrexec", qubes=("work", "halted", "mgmt"), running=("work", "mgmt"),
                      allow=("qubes.VMRootShell:work", "qubes.VMShell:work", "qubes.VMRootShell:halted"))
    for key, value in made.env().items():
        monkeypatch.setenv(key, value)
    made.driver = Connections()
    yield made
    made.driver.close()


def dom0_conn(fake, qube="work", **options):
    options.setdefault("qrexec_daemon_dir", str(fake.daemon_dir))
    return fake.driver.connection(remote_addr=qube, qrexec_from="dom0", qrexec_client=fake.qrexec_client, **options)


def vm_conn(fake, qube="work", **options):
    return fake.driver.connection(remote_addr=qube, qrexec_from="vm", qrexec_client_vm=fake.qrexec_client_vm, **options)


def random_file(path, size: int) -> str:
    """A file of ``size`` random bytes; its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as stream:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * 1024 * 1024))
            stream.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("make", [dom0_conn, vm_conn], ids=["dom0", "vm"])
def test_a_command_is_one_call_with_its_exit_status_and_both_streams(fake, make):
    conn = make(fake)
    assert conn.exec_command("echo out; printf 'e\\0rr' >&2; exit 3") == (3, b"out\n", b"e\x00rr")
    assert conn.exec_command("true") == (0, b"", b"")
    for status in (1, 2, 125, 126, 127, 255):
        assert conn.exec_command(f"exit {status}")[0] == status
    # a command of its own that fails the way a refused call does is still the command's result
    assert conn.exec_command("echo 'Request refused' >&2; exit 126") == (126, b"", b"Request refused\n")
    assert len(fake.calls()) == 9


def test_quoting_carries_every_character(fake):
    conn = dom0_conn(fake)
    nasty = "a'b\"c $HOME `id` \\n \\\\ ; | & > < * ? ~ #\n second line\t\u00e9\u4e2d ' '' '\\''"
    rc, out, err = conn.exec_command(f"printf %s {shlex.quote(nasty)}")
    assert (rc, out.decode(), err) == (0, nasty, b"")
    # the command itself spans lines and reads the rest of the input after its own line
    rc, out, _err = conn.exec_command("read first\nread second\nprintf '%s|%s' \"$first\" \"$second\"",
                                      in_data=b"one\ntwo\nthree\n")
    assert (rc, out) == (0, b"one|two")
    assert len(fake.calls()) == 2


@pytest.mark.parametrize("shell", ["/bin/bash", "/bin/dash"])
def test_the_input_after_the_command_line_reaches_the_command_byte_for_byte(fake, shell, monkeypatch):
    # bash (Qubes' services) reads a pipe a byte at a time; dash reads blocks, and would swallow the input
    # that follows the command line if the plugin sent it before the command runs
    monkeypatch.setenv("FAKE_QREXEC_SHELL", shell)
    fake.driver.close()
    fake.driver = Connections()
    conn = dom0_conn(fake)
    every_byte = bytes(range(256)) * 64
    rc, out, _err = conn.exec_command("cat", in_data=every_byte)
    assert rc == 0 and out == every_byte
    # no newline at the end, a NUL first, several MiB: what pipelining hands a Python interpreter
    data = b"\0" + os.urandom(6 * 1024 * 1024) + b"no newline"
    rc, out, _err = conn.exec_command("sha256sum | cut -d' ' -f1", in_data=data)
    assert rc == 0 and out.decode().strip() == hashlib.sha256(data).hexdigest()
    rc, out, _err = conn.exec_command("wc -c", in_data=data)
    assert int(out) == len(data)
    # pipelining as Ansible does it: the module is the interpreter's standard input
    rc, out, _err = conn.exec_command(f"/bin/sh -c '{sys.executable} && sleep 0'",
                                      in_data=b"import sys, json\nprint(json.dumps({'argv': sys.argv[1:]}))\n")
    assert rc == 0 and json.loads(out) == {"argv": []}


@pytest.mark.parametrize("make", [dom0_conn, vm_conn], ids=["dom0", "vm"])
def test_put_and_fetch_binary_files_byte_for_byte(fake, make, tmp_path):
    conn = make(fake)
    source = tmp_path / "every-byte"
    source.write_bytes(bytes(range(256)) * 16 + b"\n\n\r\n\0")
    dest = tmp_path / "in the qube" / "it's here"
    dest.parent.mkdir()
    dest.write_bytes(b"old content that is longer than nothing")
    conn.put_file(str(source), str(dest))
    assert dest.read_bytes() == source.read_bytes()
    assert sorted(os.listdir(dest.parent)) == ["it's here"]  # no temporary file left behind
    back = tmp_path / "fetched"
    conn.fetch_file(str(dest), str(back))
    assert back.read_bytes() == source.read_bytes()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    conn.put_file(str(empty), str(dest))
    assert dest.read_bytes() == b""
    conn.fetch_file(str(dest), str(back))
    assert back.read_bytes() == b""
    assert len(fake.calls()) == 4


def test_a_large_file_is_streamed_both_ways_not_held_in_memory(fake, tmp_path):
    source = tmp_path / "big.bin"
    digest = random_file(source, BIG)
    dest = tmp_path / "qube" / "big.bin"
    dest.parent.mkdir()
    back = tmp_path / "back.bin"
    conn = dom0_conn(fake)
    conn.exec_command("true")
    before = conn.peak_memory_kib()
    conn.put_file(str(source), str(dest))
    conn.fetch_file(str(dest), str(back))
    growth = conn.peak_memory_kib() - before
    assert sha256_of(dest) == digest and sha256_of(back) == digest
    # 80 MiB went through each way; the process grew by a few buffers at most
    assert growth < 16 * 1024, f"peak memory grew by {growth} KiB for an {BIG >> 20} MiB file"
    assert [call["service"] for call in fake.calls()] == ["qubes.VMShell"] * 3


def test_put_and_fetch_failures_name_the_qube(fake, tmp_path):
    conn = dom0_conn(fake)
    with pytest.raises(AnsibleFileNotFound):
        conn.put_file(str(tmp_path / "missing"), str(tmp_path / "x"))
    assert fake.calls() == []  # nothing was sent for a file that is not there
    source = tmp_path / "small"
    source.write_bytes(b"x")
    with pytest.raises(AnsibleError, match=r"copying .* to .*/no/such/dir/x in the qube work failed \(exit status 2\): .*Directory nonexistent"):
        conn.put_file(str(source), str(tmp_path / "no" / "such" / "dir" / "x"))
    with pytest.raises(AnsibleError, match=r"fetching .*/nothing from the qube work failed \(exit status 1\): cat: "):
        conn.fetch_file(str(tmp_path / "nothing"), str(tmp_path / "fetched"))


def test_dom0_and_bad_names_are_refused_before_any_call(fake):
    for name in ("dom0", "@adminvm"):
        with pytest.raises(AnsibleConnectionFailure, match=f"not to {name}: use Ansible's local connection"):
            dom0_conn(fake, name).exec_command("true")
    with pytest.raises(AnsibleConnectionFailure, match=r"'bad name;' is not a qube name"):
        dom0_conn(fake, "bad name;").exec_command("true")
    with pytest.raises(AnsibleConnectionFailure, match=r"remote_user 'root:QUBESRPC x' for the qube work is not a user"):
        dom0_conn(fake, remote_user="root:QUBESRPC x").exec_command("true")
    assert fake.calls() == []


def test_the_qube_option_overrides_the_host(fake):
    conn = fake.driver.connection(remote_addr="some-host", qube="work", qrexec_from="dom0",
                                  qrexec_client=fake.qrexec_client, qrexec_daemon_dir=str(fake.daemon_dir))
    assert conn.exec_command("true")[0] == 0
    assert fake.calls()[0]["target"] == "work"


def test_qrexec_errors_from_dom0_name_the_qube(fake, tmp_path):
    # the plugin sees a daemon socket the fake does not (a qube that stopped, or vanished, since)
    seen = tmp_path / "seen"
    seen.mkdir()
    for qube in ("halted", "ghost"):
        (seen / f"qrexec.{qube}").touch()
    with pytest.raises(AnsibleConnectionFailure, match=r"the qube halted is not running \(qrexec-client exit status 1"):
        dom0_conn(fake, "halted", qrexec_daemon_dir=str(seen)).exec_command("true")
    with pytest.raises(AnsibleConnectionFailure, match=r"the qube ghost does not exist \(qrexec-client exit status 1"):
        dom0_conn(fake, "ghost", qrexec_daemon_dir=str(seen)).exec_command("true")


def test_a_halted_qube_without_qubesd_fails_naming_the_qube(fake, tmp_path):
    conn = dom0_conn(fake, "halted", qubesd_socket=str(tmp_path / "no-qubesd.sock"))
    with pytest.raises(AnsibleConnectionFailure, match=r"cannot read the qrexec_timeout of the qube halted from qubesd"):
        conn.exec_command("true")
    assert fake.calls() == []


def test_from_a_management_qube(fake):
    # root: qubes.VMRootShell; a refused call names the qube, the service and the rule it needs
    assert vm_conn(fake).exec_command("id -u") == (0, b"0\n", b"")
    with pytest.raises(AnsibleConnectionFailure) as refused:
        vm_conn(fake, "mgmt").exec_command("true")
    message = str(refused.value)
    assert "the qrexec policy refused qubes.VMRootShell from " in message and " to the qube mgmt" in message
    assert "qubes.VMRootShell * " in message and " mgmt allow" in message and "Request refused" in message
    with pytest.raises(AnsibleConnectionFailure, match="to the qube nowhere, or that qube does not exist"):
        vm_conn(fake, "nowhere").exec_command("true")
    # another user: qubes.VMShell (the qube's default user)
    assert vm_conn(fake, remote_user="user").exec_command("true")[0] == 0
    # a halted target is started by dom0's qrexec, with no Admin API call (no qubesd here at all)
    assert not (fake.daemon_dir / "qrexec.halted").exists()
    assert vm_conn(fake, "halted").exec_command("echo up") == (0, b"up\n", b"")
    assert (fake.daemon_dir / "qrexec.halted").exists()
    assert [(c.get("service"), c.get("target"), c.get("allowed")) for c in fake.calls() if "service" in c] == [
        ("qubes.VMRootShell", "work", True), ("qubes.VMRootShell", "mgmt", False),
        ("qubes.VMRootShell", "nowhere", False), ("qubes.VMShell", "work", True),
        ("qubes.VMRootShell", "halted", True)]


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root (runuser)")
def test_remote_user_from_dom0(fake):
    assert dom0_conn(fake, remote_user="nobody").exec_command("id -un") == (0, b"nobody\n", b"")
    assert dom0_conn(fake).exec_command("id -un") == (0, b"root\n", b"")
    assert [call["user"] for call in fake.calls()] == ["nobody", "root"]


def test_auto_detection_prefers_dom0s_client(fake):
    conn = fake.driver.connection(remote_addr="work", qrexec_client=fake.qrexec_client,
                                  qrexec_client_vm=fake.qrexec_client_vm, qrexec_daemon_dir=str(fake.daemon_dir))
    conn.exec_command("true")
    conn = fake.driver.connection(remote_addr="work", qrexec_client=str(fake.bin / "absent"),
                                  qrexec_client_vm=fake.qrexec_client_vm)
    conn.exec_command("true")
    assert [call["side"] for call in fake.calls()] == ["dom0", "vm"]
    conn = fake.driver.connection(remote_addr="work", qrexec_client="no-such-qrexec-client", qrexec_client_vm="no-such-either")
    with pytest.raises(AnsibleConnectionFailure, match="cannot reach the qube work: neither no-such-qrexec-client"):
        conn.exec_command("true")
