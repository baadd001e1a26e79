# SPDX-License-Identifier: GPL-3.0-or-later
"""The role corral.qubes.yubikey on a dom0 host: dom0's files, modes and PAM order, the tool in the USB qube's
template, no-op runs, refusals before any change, secrets nowhere, and the key check through qrexec."""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import sys

import pytest

from dom0hosts import REASONS, Dom0Host, recap

pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"dom0 host: {'; '.join(REASONS)}")

SECRET = "5f3c9a1e7b2d4c6f8a0b1c2d3e4f5a6b7c8d9e0f"
OTHER = "00112233445566778899aabbccddeeff00112233"
PASSWORD_SHA1 = hashlib.sha1(b"correct horse").hexdigest()
KEYS = "/etc/qubes/yk-keys"

USB_QUBE = """
- name: The USB qube, as the layout makes it
  hosts: qubes_admin
  gather_facts: false
  tasks:
    - name: sys-usb
      corral.qubes.qube: {name: sys-usb, template: fedora-42-xfce, label: red, netvm: "", state: running}
"""

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "molecule" / "shared"))
from ykchalresp import YKCHALRESP  # noqa: E402  pylint: disable=wrong-import-position

PLAY = """
- name: The YubiKey login
  hosts: qubes_admin
  gather_facts: false
  roles:
    - role: corral.qubes.yubikey
      yubikey_secret_key: "{secret}"
{extra}
"""


CHECK = r"""
# What dom0's check does (qubes-yubikey-dom0's yk-auth): the USB qube and the slot from the key's files, a random
# 64-byte challenge through qrexec to the USB qube (qubes.VMShell, as root), the answer against HMAC-SHA1 of the
# secret from /etc/qubes/yk-keys.
import hashlib, hmac, secrets, subprocess, sys
def value(name):
    with open("/etc/qubes/yk-keys/" + name, encoding="ascii") as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")][0]
vm, slot = value("vm"), value("yk-slot")
key = bytes.fromhex(value("yk-secret-key.hex").replace(" ", ""))
challenge = secrets.token_bytes(64)
proc = subprocess.run(["qrexec-client", "-d", vm, "root:QUBESRPC qubes.VMShell dom0"],
                      input=f"ykchalresp -{slot} -x {challenge.hex()}\n".encode(), capture_output=True, timeout=60)
answer = proc.stdout.decode().strip()
good = proc.returncode == 0 and hmac.compare_digest(answer, hmac.new(key, challenge, hashlib.sha1).hexdigest())
print("accepted" if good else "refused")
sys.exit(0 if good else 1)
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """One dom0 host for the module."""
    made = Dom0Host(tmp_path_factory.mktemp("ykhost"), f"cqy{os.getpid() % 100000}").start()
    yield made
    made.stop()


def play(host, name: str, secret: str = SECRET, usb_qube: bool = True, **variables) -> str:
    """A playbook file: sys-usb (unless not ``usb_qube``), then the role with the secret and ``variables``."""
    extra = "".join(f"      {key}: {value!r}\n" if not isinstance(value, (list, bool)) else f"      {key}: {value}\n"
                    for key, value in variables.items()).replace("True", "true").replace("False", "false")
    path = host.directory / f"{name}.yml"
    path.write_text((USB_QUBE if usb_qube else "") + PLAY.format(secret=secret, extra=extra), encoding="utf-8")
    return path


def stat(host, path: str) -> str:
    """mode owner:group of a file in the host."""
    return host.sh(f"stat -c '%a %U:%G' {path}").stdout.strip()


def snapshot(host) -> str:
    """What the role may change in dom0: the key's files and the PAM files (names, modes, checksums)."""
    return host.sh(f"cd / && find {KEYS} /etc/pam.d -type f 2>/dev/null | sort | xargs -r stat -c '%n %a' ; "
                   f"find {KEYS} /etc/pam.d -type f 2>/dev/null | sort | xargs -r sha256sum; "
                   "dpkg -s qubes-yubikey-dom0 2>/dev/null | grep Status || true").stdout


@pytest.mark.parametrize("variables, message", [
    ({"secret": "12345"}, "yubikey_secret_key: expected the HMAC-SHA1 secret of the key's slot as 40 hex digits"),
    ({"secret": "g" * 40}, "yubikey_secret_key: expected the HMAC-SHA1 secret of the key's slot as 40 hex digits"),
    ({"yubikey_slot": 3}, "yubikey_slot"),
    ({"yubikey_pam_services": ["lightdm", "no-such-greeter"]}, "no PAM file /etc/pam.d/no-such-greeter"),
    ({"yubikey_login_password_hashed": "abc"}, "yubikey_login_password_hashed: expected the SHA-1"),
    ({"yubikey_pam_services": ["lightdm", "yubikey"]}, "yubikey_pam_services: yubikey: expected names of service files"),
])
def test_bad_input_fails_before_any_change(host, variables, message):
    before, calls, qrexec = snapshot(host), len(host.log("rehearsal-calls.jsonl")), len(host.log("qrexec.jsonl"))
    secret = variables.pop("secret", SECRET)
    run = host.playbook(play(host, "bad", secret=secret, usb_qube=False, **variables), "--diff", "-vvv")
    assert run.returncode != 0 and message in run.stdout, run.stdout[-3000:]
    assert snapshot(host) == before
    assert [c for c in host.log("rehearsal-calls.jsonl")[calls:] if c.get("mutating")] == []
    assert host.log("qrexec.jsonl")[qrexec:] == []
    assert secret not in run.stdout


def test_check_mode_reports_and_touches_nothing(host):
    before, calls, qrexec = snapshot(host), len(host.log("rehearsal-calls.jsonl")), len(host.log("qrexec.jsonl"))
    run = host.playbook(play(host, "check"), "--check", "--diff")
    assert run.returncode == 0, run.stdout[-4000:]
    if "install ok installed" not in before:  # a dom0 this role has not configured yet
        assert "qubes-dom0-update -y qubes-yubikey-dom0" in run.stdout and recap(run.stdout)["changed"] >= 5
    assert snapshot(host) == before and SECRET not in run.stdout
    assert [c for c in host.log("rehearsal-calls.jsonl")[calls:] if c.get("mutating")] == []
    assert [e for e in host.log("qrexec.jsonl")[qrexec:] if e.get("final") != "dom0"] == []


def test_converge_then_nothing_to_do_and_the_key_answers(host):
    log_path = host.directory / "ansible.log"
    first = host.playbook(play(host, "site"), "--diff", "-vvv", env=host.env(ANSIBLE_LOG_PATH=str(log_path)))
    assert first.returncode == 0, first.stdout[-5000:]
    assert recap(first.stdout)["changed"] >= 6

    # dom0's files, modes, owners; the package from qubes-dom0-update
    assert "install ok installed" in host.sh("dpkg -s qubes-yubikey-dom0").stdout
    assert stat(host, KEYS) == "700 root:root"
    for name, value in (("vm", "sys-usb"), ("yk-slot", "2"), ("yk-secret-key.hex", SECRET)):
        assert stat(host, f"{KEYS}/{name}") == "600 root:root"
        lines = [line for line in host.read(f"{KEYS}/{name}").splitlines() if not line.startswith("#")]
        assert lines == [value]
    assert host.sh(f"test -e {KEYS}/login-pass-hashed.hex || echo none").stdout.strip() == "none"
    rule = [line for line in host.read("/etc/pam.d/yubikey").splitlines() if not line.startswith("#")]
    assert rule == ["auth [success=done default=ignore] pam_exec.so expose_authtok quiet /usr/bin/yk-auth"]
    for service in ("lightdm", "xfce4-screensaver"):
        rules = [line for line in host.read(f"/etc/pam.d/{service}").splitlines() if line and not line.startswith("#")]
        assert rules[0] == "auth include yubikey" and rules.count("auth include yubikey") == 1
        assert rules[1:] == ["@include common-auth", "@include common-account", "@include common-session"]
        assert stat(host, f"/etc/pam.d/{service}") == "644 root:root"
    login = [line for line in host.read("/etc/pam.d/login").splitlines() if line and not line.startswith("#")]
    assert "auth include yubikey" not in login  # only the services named

    # the tool in sys-usb's template, installed through the updates proxy; the digest recorded
    assert "install ok installed" in host.sh(
        "echo 'dpkg -s ykpers' | qrexec-client -d sys-usb 'root:QUBESRPC qubes.VMShell dom0'").stdout
    assert host.sh("python3 -m rehearsal call admin.vm.feature.Get fedora-42-xfce "
                   "--arg corral-yubikey-digest").stdout.startswith("sha256:")

    # the secret is nowhere: not in -vvv output, diff, Ansible's log, the rehearsal's call log or qrexec log
    for where, text in (("output", first.stdout), ("ANSIBLE_LOG_PATH", log_path.read_text(encoding="utf-8")),
                        ("call log", host.log_text("rehearsal-calls.jsonl")),
                        ("qrexec log", host.log_text("qrexec.jsonl"))):
        assert SECRET not in text and SECRET.upper() not in text, where

    # the second run: nothing changes, no qube starts, no qrexec call into a qube
    calls, qrexec = len(host.log("rehearsal-calls.jsonl")), len(host.log("qrexec.jsonl"))
    second = host.playbook(play(host, "site"), "--diff")
    assert second.returncode == 0 and recap(second.stdout)["changed"] == 0, second.stdout[-4000:]
    assert [c for c in host.log("rehearsal-calls.jsonl")[calls:] if c.get("mutating")] == []
    assert [e for e in host.log("qrexec.jsonl")[qrexec:] if e.get("final") != "dom0"] == []
    check = host.playbook(play(host, "site"), "--check", "--diff")
    assert check.returncode == 0 and recap(check.stdout)["changed"] == 0, check.stdout[-4000:]

    # the key check of dom0: the right key is accepted, a wrong key or slot refused
    def key(slot: str, secret: str) -> None:
        """The stand-in key in sys-usb, answering from ``slot`` with ``secret``."""
        script = base64.b64encode(YKCHALRESP.format(slot=slot, secret=secret).encode()).decode()
        host.sh(f"echo 'echo {script} | base64 -d > /usr/local/bin/ykchalresp && chmod 0755 /usr/local/bin/ykchalresp' "
                "| qrexec-client -d sys-usb 'root:QUBESRPC qubes.VMShell dom0'")

    def check_key() -> str:
        return host.sh("python3 -", stdin=CHECK, check=False).stdout.strip()

    key("2", SECRET)
    assert check_key() == "accepted"
    key("2", OTHER)
    assert check_key() == "refused"
    key("1", SECRET)
    assert check_key() == "refused"
    key("2", SECRET)
    assert check_key() == "accepted"


MANDATORY = {"yubikey_mandatory": True, "yubikey_slot": 1, "yubikey_login_password_hashed": PASSWORD_SHA1,
             "yubikey_pam_services": ["lightdm", "xfce4-screensaver", "login"], "yubikey_lock_on_removal": True}


def test_mandatory_mode_password_login_and_the_lock_on_removal(host):
    run = host.playbook(play(host, "mandatory", **MANDATORY), "--diff")
    assert run.returncode == 0, run.stdout[-4000:]
    assert PASSWORD_SHA1 not in run.stdout and SECRET not in run.stdout
    rule = [line for line in host.read("/etc/pam.d/yubikey").splitlines() if not line.startswith("#")]
    assert rule == ["auth [success=done] pam_exec.so expose_authtok quiet /usr/bin/yk-auth"]
    assert stat(host, f"{KEYS}/login-pass-hashed.hex") == "600 root:root"
    assert PASSWORD_SHA1 in host.read(f"{KEYS}/login-pass-hashed.hex")
    login = host.read("/etc/pam.d/login").splitlines()
    rules = [line for line in login if line.strip() and not line.lstrip().startswith("#")]
    assert rules[0] == "auth include yubikey"
    # the screen lock on removal: dom0's service, its policy line, the udev rule kept in sys-usb's /rw
    assert stat(host, "/etc/qubes-rpc/custom.LockScreen") == "755 root:root"
    assert 'DISPLAY="${DISPLAY:-:0}" exec xflock4' in host.read("/etc/qubes-rpc/custom.LockScreen")
    assert "custom.LockScreen * sys-usb dom0 allow" in host.read("/etc/qubes/policy.d/30-corral-yubikey.policy")
    # kept in /rw/config for each start, and active already in the running sys-usb
    inside = host.sh("echo 'cat /rw/config/corral-yubikey-lock.rules /rw/config/rc.local; echo ---; "
                     "cat /etc/udev/rules.d/99-corral-yubikey-lock.rules' | "
                     "qrexec-client -d sys-usb 'root:QUBESRPC qubes.VMShell dom0'").stdout
    kept, active = inside.split("---\n")
    assert 'ENV{ID_SECURITY_TOKEN}=="1", RUN+="/usr/bin/qrexec-client-vm dom0 custom.LockScreen"' in kept
    assert "/etc/udev/rules.d/99-corral-yubikey-lock.rules" in kept
    assert 'RUN+="/usr/bin/qrexec-client-vm dom0 custom.LockScreen"' in active
    calls, qrexec = len(host.log("rehearsal-calls.jsonl")), len(host.log("qrexec.jsonl"))
    again = host.playbook(play(host, "mandatory", usb_qube=False, **MANDATORY))
    assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert [c for c in host.log("rehearsal-calls.jsonl")[calls:] if c.get("mutating")] == []
    assert [e for e in host.log("qrexec.jsonl")[qrexec:] if e.get("final") != "dom0"] == []
    # back to the optional key without a password (mandatory given as the string "false", as an INI inventory or
    # -e gives it): the hashed password goes, the key may be missing again
    back = host.playbook(play(host, "back", yubikey_mandatory="false"))
    assert back.returncode == 0, back.stdout[-3000:]
    assert "default=ignore" in host.read("/etc/pam.d/yubikey")
    assert host.sh(f"test -e {KEYS}/login-pass-hashed.hex || echo none").stdout.strip() == "none"
