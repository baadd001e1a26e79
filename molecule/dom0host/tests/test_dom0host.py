# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify the reference layout on the dom0 host, over ssh: dom0's files, modes and PAM order, the key check
through qrexec, the policy directory, parsed whole with the collection's policy grammar, and Whonix (its qubes,
the updates proxy's decisions, and a Whonix template's install through sys-whonix)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import pathlib
import json
import secrets
import sys
import tarfile

import yaml

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import policy

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
from ykchalresp import YKCHALRESP  # noqa: E402  pylint: disable=wrong-import-position
from whonix_checks import check_updates_proxy_decisions, check_whonix_qubes  # noqa: E402  pylint: disable=wrong-import-position

GROUP_VARS = pathlib.Path(__file__).resolve().parents[3] / "inventories" / "t420s" / "group_vars" / "qubes_admin"
YUBIKEY = yaml.safe_load((GROUP_VARS / "yubikey.yml").read_text())
CONVERGE = yaml.safe_load((pathlib.Path(__file__).resolve().parents[1] / "converge.yml").read_text())
SECRET = CONVERGE[0]["vars"]["yubikey_secret_key"]
KEYS = "/etc/qubes/yk-keys"


def values(host, name: str) -> list[str]:
    """The lines of a key file that are not comments (as yk-auth reads them)."""
    return [line.strip() for line in host.file(f"{KEYS}/{name}").content_string.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_dom0_files_and_modes(host):
    assert host.package("qubes-yubikey-dom0").is_installed
    folder = host.file(KEYS)
    assert folder.is_directory and folder.mode == 0o700 and folder.user == "root"
    for name, wanted in (("vm", YUBIKEY["yubikey_usb_qube"]), ("yk-slot", str(YUBIKEY["yubikey_slot"])),
                         ("yk-secret-key.hex", SECRET)):
        item = host.file(f"{KEYS}/{name}")
        assert item.mode == 0o600 and item.user == "root" and item.group == "root", name
        assert values(host, name) == [wanted], name
    rule = [line for line in host.file("/etc/pam.d/yubikey").content_string.splitlines() if not line.startswith("#")]
    assert rule == ["auth [success=done default=ignore] pam_exec.so expose_authtok quiet /usr/bin/yk-auth"]
    service = host.file("/etc/qubes-rpc/custom.LockScreen")
    assert service.mode == 0o755 and service.user == "root"


def test_pam_order(host):
    for name in YUBIKEY["yubikey_pam_services"]:
        rules = [line for line in host.file(f"/etc/pam.d/{name}").content_string.splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        assert rules[0] == "auth include yubikey", name
        assert rules.count("auth include yubikey") == 1, name


def host_policy(host) -> policy.Policy:
    """The whole directory /etc/qubes/policy.d of the host, parsed as qrexec would load it."""
    packed = host.check_output("tar -C /etc/qubes/policy.d -cf - . | base64 -w0")
    sources, directories = {}, set()
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed))) as archive:
        for member in archive.getmembers():
            name = member.name[2:] if member.name.startswith("./") else member.name
            if member.isdir() and name and name != ".":
                directories.add(name)
            elif member.isfile() and not os.path.basename(name).startswith("."):
                sources[name] = archive.extractfile(member).read().decode("utf-8")
    return policy.Policy(sources, sorted(directories))


def test_the_policy_directory_is_valid_and_decides(host):
    """The whole directory, parsed as qrexec would load it (a syntax error anywhere would deny everything)."""
    loaded = host_policy(host)
    info = {name: policy.QubeInfo(name=name, klass="AdminVM" if name == "dom0" else "AppVM")
            for name in ("dom0", "sys-usb", "personal")}
    assert loaded.evaluate("custom.LockScreen", "", "sys-usb", "dom0", info).allowed
    assert not loaded.evaluate("custom.LockScreen", "", "personal", "dom0", info).allowed
    assert not loaded.evaluate("qubes.InputKeyboard", "", "sys-usb", "dom0", info).allowed


def test_the_key_check_accepts_the_key_and_refuses_another(host):
    """What dom0's check does: a random 64-byte challenge through qrexec to the USB qube, its answer against
    HMAC-SHA1 of the secret in /etc/qubes/yk-keys."""
    vm, slot = values(host, "vm")[0], values(host, "yk-slot")[0]
    key = bytes.fromhex(values(host, "yk-secret-key.hex")[0])
    start(host, vm)

    def plug(slot_answering: str, secret: str) -> None:
        script = base64.b64encode(YKCHALRESP.format(slot=slot_answering, secret=secret).encode()).decode()
        host.check_output(f"echo 'echo {script} | base64 -d > /usr/local/bin/ykchalresp && "
                          f"chmod 0755 /usr/local/bin/ykchalresp' | qrexec-client -d {vm} 'root:QUBESRPC qubes.VMShell dom0'")

    def answered() -> bool:
        challenge = secrets.token_bytes(64)
        result = host.run(f"echo 'ykchalresp -{slot} -x {challenge.hex()}' | "
                          f"qrexec-client -d {vm} 'root:QUBESRPC qubes.VMShell dom0'")
        return result.rc == 0 and hmac.compare_digest(result.stdout.strip(),
                                                      hmac.new(key, challenge, hashlib.sha1).hexdigest())

    plug(slot, SECRET)
    assert answered()
    plug(slot, secrets.token_hex(20))
    assert not answered()
    plug("1" if slot == "2" else "2", SECRET)
    assert not answered()


def start(host, qube: str) -> None:
    """The USB qube running (yk-auth's qvm-run -a starts it), with the collection's qube module."""
    result = host.ansible("corral.qubes.qube", f"name={qube} state=running", check=False,
                          extra_vars={"ansible_python_interpreter": "/usr/bin/python3"})
    assert not result.get("failed") and result["qube"]["state"] == "running", result


def test_the_tool_is_in_the_usb_qubes_template(host):
    start(host, "sys-usb")
    out = host.check_output("echo 'dpkg -s ykpers' | qrexec-client -d sys-usb 'root:QUBESRPC qubes.VMShell dom0'")
    assert "install ok installed" in out


def admin():
    """A client of the host's qubesd, through its socket as this machine sees it."""
    return client_mod.AdminClient(client_mod.SocketTransport(os.environ["QUBESD_SOCKET"]))


def test_whonix_qubes_tags_and_properties():
    check_whonix_qubes(admin())


def test_updates_proxy_decisions_for_each_template(host):
    check_updates_proxy_decisions(admin(), host_policy(host))


def test_a_whonix_template_installs_through_sys_whonix(host):
    """apt in whonix-gateway-18: every qubes.UpdatesProxy call it makes ends at sys-whonix (the host's qrexec log)."""
    template = "whonix-gateway-18"
    start(host, template)
    log = "/var/log/qubes/qrexec.jsonl"
    mark = len(host.file(log).content_string.splitlines())
    out = host.check_output("echo 'apt-get update -q >/dev/null 2>&1; apt-get install -y -q firefox >/dev/null 2>&1; "
                            f"dpkg -s firefox | grep ^Status' | qrexec-client -d {template} 'root:QUBESRPC qubes.VMShell dom0'")
    assert out == "Status: install ok installed", out
    calls = [json.loads(line) for line in host.file(log).content_string.splitlines()[mark:]]
    proxied = [call for call in calls if call["service"] == "qubes.UpdatesProxy"]
    assert proxied and {(call["source"], call["final"]) for call in proxied} == {(template, "sys-whonix")}, proxied
    assert admin().current_state("sys-whonix")["power_state"] == "Running"
