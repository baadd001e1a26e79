# SPDX-License-Identifier: GPL-3.0-or-later
"""The role corral.qubes.windows against fresh rehearsal dom0s (R4.3 and R4.2) whose qubes run on real roots.

The user's Windows ISO is a stand-in the tests make (windows_media.py), put in a qube's home; the answer-file ISO
is built by xorriso inside the offline media qube, through the qrexec connection; the rehearsal's HVM installer
stand-in reads both images behind the CD-ROMs the role attaches, checks the answer file and "installs". What the
media held is read back from the images themselves, the answer file against tests/data/unattend.xsd.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess

import jinja2
import xmlschema

import pytest
import yaml

from harness import QREXEC_CLIENT
from playbook import BIN, ROOT, ansible_env
from rehearsal import installer, network, roots, rootfs
import windows_media

REASONS = roots.unavailable() + windows_media.missing()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots and ISO tools: {'; '.join(REASONS)}")
NETWORK = not network.unavailable()
FEATURE = "corral-windows-install"
POWER = ("admin.vm.Start", "admin.vm.Unpause", "admin.vm.Shutdown", "admin.vm.Kill")
PASSWORD, ADMIN_PASSWORD, KEY = "Corr4l-user-S3cret", "Corr4l-admin-S3cret", "QW7RT-YU8PK-MN3BV-CX2ZL-9HJKD"
SCHEMA = ROOT / "tests" / "data" / "unattend.xsd"


@pytest.fixture(params=["4.3", "4.2"])
def lab(request, dom0_factory, tmp_path):
    """A fresh dom0 with qube roots (and network realisation where it can run), and the Windows ISO in 'untrusted'."""
    rootfs.build()
    dom0 = dom0_factory(release=request.param, extra_args=(
        "--roots", "on", "--network", "on" if NETWORK else "off", "--install-delay", "0.5"))
    client = dom0.client()
    client.create("AppVM", "untrusted", "red")
    client.start("untrusted")
    home = pathlib.Path(dom0.state_dir) / "qubes" / "untrusted" / "private" / "home" / "user"
    dom0.iso_sha256 = windows_media.make_windows_iso(home / "win7.iso")
    client.shutdown("untrusted", wait=True)
    return dom0


def entry(dom0, **overrides) -> dict:
    base = {"iso": {"qube": "untrusted", "path": "/home/user/win7.iso", "sha256": dom0.iso_sha256},
            "edition": "Windows 7 PROFESSIONAL", "computer_name": "WORK", "locale": "de-DE",
            "timezone": "W. Europe Standard Time", "user": {"name": "user", "password": PASSWORD},
            "admin_password": ADMIN_PASSWORD, "product_key": KEY, "root_gib": 30, "timeout": 60,
            "first_logon_commands": ["cmd /c echo ready"]}
    base.update(overrides)
    return base


def play(dom0, tmp_path, qubes: dict, *args, env: dict | None = None, extra: dict | None = None):
    """The role with ``qubes`` as windows_qubes, from a playbook on dom0 (localhost)."""
    book = tmp_path / "windows.yml"
    book.write_text(yaml.safe_dump([{"name": "Windows qubes", "hosts": "localhost", "connection": "local",
                                     "gather_facts": False, "roles": [{"role": "corral.qubes.windows"}]}]))
    values = tmp_path / "windows-vars.yml"
    values.write_text(yaml.safe_dump({"windows_qubes": qubes, "windows_poll": 1, **(extra or {})}))
    environment = {**ansible_env(dom0, tmp_path), **(env or {})}
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(book), "-e", f"@{values}", *args]
    return subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=600)


def inside(dom0, qube: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(QREXEC_CLIENT), "-d", qube, "root:QUBESRPC qubes.VMShell dom0"], input=command,
                          capture_output=True, text=True, env=dom0.qube_env(), timeout=120, check=False)


def power(dom0) -> dict:
    return {line.split(" ", 1)[0]: line.split("state=")[1].split(" ")[0]
            for line in dom0.client().call("admin.vm.List", "dom0").splitlines()}


def render(dom0, qube: str, values: dict) -> str:
    """The answer file the role makes for ``values``, from the role's template and the qube's Qubes settings."""
    from ansible_collections.corral.qubes.plugins.module_utils import windows  # pylint: disable=import-outside-toplevel

    props = {name: {"value": dom0.client().property_get(qube, name).value} for name in ("ip", "visible_gateway", "dns")}
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)  # the template lookup's settings
    template = env.from_string((ROOT / "roles" / "windows" / "templates" / "autounattend.xml.j2").read_text())
    w = windows.entry(values)
    return template.render(w=w, net=windows.network(w, props))


def installer_log(dom0, qube: str) -> str:
    path = pathlib.Path(dom0.state_dir) / "qubes" / qube / "installer.log"
    return path.read_text() if path.exists() else ""


def methods(calls) -> list[str]:
    return [c["method"] for c in calls]


def test_windows_is_installed_once_then_a_rerun_reads_only(lab, tmp_path):
    values = entry(lab)
    mark = lab.mark()
    first = play(lab, tmp_path, {"work": values})
    assert first.returncode == 0 and "failed=0" in first.stdout, first.stdout + first.stderr
    client = lab.client()
    # the qube as Qubes documents it for Windows
    props = {name: client.property_get("work", name).value for name in
             ("virt_mode", "kernel", "memory", "maxmem", "qrexec_timeout")}
    assert props == {"virt_mode": "hvm", "kernel": "", "memory": "4096", "maxmem": "0", "qrexec_timeout": "7200"}
    assert client.list_vms("work")["work"].klass == "StandaloneVM"
    assert client.property_get("windows-media", "netvm").value == ""  # the media qube is offline
    # installed: the guest powered itself off, the record holds a salted digest, the setup feature is gone
    assert power(lab)["work"] == "Halted"
    record = client.feature_get("work", FEATURE)
    assert record.startswith("pbkdf2-sha256:") and hashlib.sha256(render(lab, "work", values).encode()).hexdigest() not in record
    features = client.feature_list("work")
    assert "video-model" not in features and "qrexec" not in features and "gui" not in features
    assert int(client.volume_info("work", "root")["usage"]) > 16 * 1024 ** 3
    # the medium held exactly the answer file the role renders, at its root (the stand-in read it from the ISO)
    answer = render(lab, "work", values)
    log = installer_log(lab, "work")
    assert f"sha256 {hashlib.sha256(answer.encode()).hexdigest()[:12]}" in log and "shuts it down" in log
    xmlschema.XMLSchema11(str(SCHEMA)).validate(answer)
    setup = installer.check_answer(answer.encode(), 30 * 1024 ** 3)
    ip = client.property_get("work", "ip").value
    assert setup["network"] == {"address": ip, "prefix": 8, "gateway": client.property_get("work", "visible_gateway").value,
                                "dns": client.property_get("work", "dns").value.split()}
    # the device calls of the release: the CD-ROMs are for the first boot only
    calls = [c["method"] for c in lab.calls_since(mark) if c.get("dest") == "work"]
    if lab.release == "4.3":
        assert calls.count("admin.vm.device.block.Assign") == 2 and calls.count("admin.vm.device.block.Unassign") == 2
        assert calls.index("admin.vm.device.block.Assign") < calls.index("admin.vm.Start") < calls.index(
            "admin.vm.device.block.Unassign")
        assert client.device_assigned("work", "block") == []
    else:
        assert calls.count("admin.vm.device.block.Attach") == 2 and calls.count("admin.vm.device.block.Set.persistent") == 2
        assert client.device_list("work", "block") == []
    # the loop devices and the secret-holding files are gone from the media qube
    assert inside(lab, "windows-media", "losetup -a; ls /home/user/corral-media").stdout == ""
    assert inside(lab, "untrusted", "losetup -a").stdout == ""
    # the second run: reads only, no qube started, no qrexec call
    mark, qrexec_mark = lab.mark(), len(lab.qrexec_calls())
    second = play(lab, tmp_path, {"work": values})
    assert second.returncode == 0 and "changed=0" in second.stdout and "failed=0" in second.stdout, second.stdout
    assert lab.writes_since(mark) == [] and not [c for c in lab.calls_since(mark) if c["method"] in POWER]
    assert len(lab.qrexec_calls()) == qrexec_mark
    # check mode on the installed qube: nothing to do, nothing connected
    check = play(lab, tmp_path, {"work": values}, "--check", "--diff")
    assert check.returncode == 0 and "changed=0" in check.stdout, check.stdout
    assert lab.writes_since(mark) == [] and len(lab.qrexec_calls()) == qrexec_mark

