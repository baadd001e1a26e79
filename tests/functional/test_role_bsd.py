# SPDX-License-Identifier: GPL-3.0-or-later
"""The role corral.qubes.bsd against fresh rehearsal dom0s (R4.3 and R4.2) whose qubes run on real roots.

The user's FreeBSD ISO is a stand-in the tests make (install_media.py), put in a qube's home. The qube that holds
it lends it read-only to the offline media qube as a block device; xorriso there remasters it with the install
script; the rehearsal's bsdinstall stand-in reads the image behind the CD-ROM the role attaches, checks the script
and "installs". What the media held is read back from the images with xorriso, not from the role's template.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

from rehearsal import network, roots, rootfs
import install_media
from os_roles import inside, installer_log, play_role, power

REASONS = roots.unavailable() + install_media.missing()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots and ISO tools: {'; '.join(REASONS)}")
NETWORK = not network.unavailable()
FEATURE = "corral-bsd-install"
POWER = ("admin.vm.Start", "admin.vm.Unpause", "admin.vm.Shutdown", "admin.vm.Kill")
# a SHA-512 crypt hash of a test password: secret all the same (no_log), searched for in every output and log
HASH = "$6$corralBSDsalt$" + "Q3x9" * 21 + "Zz"
MEDIA = "/home/user/corral-media"


def bsd_lab(dom0_factory, release: str):
    """A fresh dom0 with qube roots (and network realisation where it can run), the FreeBSD ISO in 'untrusted'."""
    rootfs.build()
    dom0 = dom0_factory(release=release, extra_args=(
        "--roots", "on", "--network", "on" if NETWORK else "off", "--install-delay", "0.5"))
    client = dom0.client()
    client.create("AppVM", "untrusted", "red")
    client.start("untrusted")
    dom0.iso = pathlib.Path(dom0.state_dir) / "qubes" / "untrusted" / "private" / "home" / "user" / "FreeBSD.iso"
    dom0.iso_sha256 = install_media.make_freebsd_iso(dom0.iso)
    client.shutdown("untrusted", wait=True)
    return dom0


@pytest.fixture(params=["4.3", "4.2"])
def lab(request, dom0_factory):
    return bsd_lab(dom0_factory, request.param)


@pytest.fixture
def lab43(dom0_factory):
    return bsd_lab(dom0_factory, "4.3")


def entry(dom0, **overrides) -> dict:
    base = {"iso": {"qube": "untrusted", "path": "/home/user/FreeBSD.iso", "sha256": dom0.iso_sha256},
            "root_password_hash": HASH, "root_gib": 12, "timeout": 60, "sshd": True,
            "distributions": ["kernel.txz", "base.txz", "lib32.txz"]}
    base.update(overrides)
    return base


def play(dom0, tmp_path, qubes: dict, *args, env: dict | None = None, extra: dict | None = None):
    """The role with ``qubes`` as bsd_qubes."""
    return play_role(dom0, tmp_path, "bsd", {"bsd_qubes": qubes, "bsd_poll": 1, **(extra or {})}, *args, env=env)


def boot_records(path: pathlib.Path) -> list[str]:
    """xorriso's El Torito report without the block addresses, which a remastered image moves."""
    lines = []
    for line in install_media.el_torito(path).splitlines():
        if line.startswith("El Torito catalog "):
            line = re.sub(r":\s+\d+", ": LBA", line)  # the catalog's block, then the number of entries
        elif line.startswith("El Torito boot img"):
            line = re.sub(r"\s+\d+$", "", line)  # the image's block, last
        if line.startswith("El Torito"):
            lines.append(line)
    return lines


def extract(iso: pathlib.Path, inner: str, dest: pathlib.Path) -> bytes:
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", inner, str(dest)],
                   check=True, capture_output=True)
    return dest.read_bytes()


def test_freebsd_is_installed_once_then_a_rerun_reads_only(lab, tmp_path):
    log = tmp_path / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log)}
    mark = lab.mark()
    first = play(lab, tmp_path, {"bsd": entry(lab)}, "-vvv", "--diff", env=env, extra={"bsd_keep_media": True})
    assert first.returncode == 0 and "failed=0" in first.stdout, first.stdout[-4000:] + first.stderr
    client = lab.client()
    props = {name: client.property_get("bsd", name).value for name in ("virt_mode", "kernel", "memory", "maxmem")}
    assert props == {"virt_mode": "hvm", "kernel": "", "memory": "1024", "maxmem": "0"}
    assert client.list_vms("bsd")["bsd"].klass == "StandaloneVM"
    assert client.property_get("bsd-media", "netvm").value == ""  # the media qube is offline
    assert "qrexec" not in client.feature_list("bsd") and "gui" not in client.feature_list("bsd")
    # installed: bsdinstall's reboot powered the qube off, the record holds a salted digest
    assert power(lab)["bsd"] == "Halted" and client.feature_get("bsd", FEATURE).startswith("pbkdf2-sha256:")
    assert int(client.volume_info("bsd", "root")["usage"]) > 2 * 1024 ** 3
    ip, gateway = client.property_get("bsd", "ip").value, client.property_get("bsd", "visible_gateway").value
    said = installer_log(lab, "bsd")
    assert "bsdinstall: installing kernel.txz base.txz lib32.txz" in said and f"xn0 {ip}/8 via {gateway}" in said
    assert "FreeBSD installed; its last step shuts it down" in said
    # the remastered ISO (kept for this test): the original's boot records and files, the script at /etc/installerconfig
    media_home = pathlib.Path(lab.state_dir) / "qubes" / "bsd-media" / "private" / "home" / "user" / "corral-media"
    remastered = media_home / "bsd.iso"
    assert boot_records(remastered) == boot_records(lab.iso) and len(boot_records(lab.iso)) >= 5
    script = extract(remastered, "/etc/installerconfig", tmp_path / "installerconfig").decode()
    assert extract(remastered, "/usr/freebsd-dist/MANIFEST", tmp_path / "m1") == extract(
        lab.iso, "/usr/freebsd-dist/MANIFEST", tmp_path / "m2")
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    assert f'sysrc ifconfig_xn0="inet {ip}/8"' in script and f"echo '{HASH}' | pw usermod root -H 0" in script
    # the device calls of the release: the user's ISO lent to the media qube, then the CD-ROM for the first boot only
    calls = lab.calls_since(mark)
    to_media = [c["method"] for c in calls if c.get("dest") == "bsd-media" and ".device.block." in c["method"]]
    to_bsd = [c["method"] for c in calls if c.get("dest") == "bsd"]
    if lab.release == "4.3":
        assert to_media.count("admin.vm.device.block.Attach") == 1 and to_media.count("admin.vm.device.block.Detach") >= 1
        assert to_bsd.count("admin.vm.device.block.Assign") == 1 and to_bsd.count("admin.vm.device.block.Unassign") == 1
        assert to_bsd.index("admin.vm.device.block.Assign") < to_bsd.index("admin.vm.Start") < to_bsd.index(
            "admin.vm.device.block.Unassign")
        assert client.device_assigned("bsd", "block") == []
    else:
        assert to_media.count("admin.vm.device.block.Attach") == 1 and to_media.count("admin.vm.device.block.Detach") >= 1
        assert to_bsd.count("admin.vm.device.block.Attach") == 1 and to_bsd.count("admin.vm.device.block.Set.persistent") == 1
        assert client.device_list("bsd", "block") == []
    # nothing lent or looped any more
    assert inside(lab, "bsd-media", "losetup -a; ls /dev/xvdi 2>/dev/null").stdout == ""
    assert inside(lab, "untrusted", "losetup -a").stdout == ""
    # the second run: reads only, no qube started, no qrexec call
    mark, qrexec_mark = lab.mark(), len(lab.qrexec_calls())
    second = play(lab, tmp_path, {"bsd": entry(lab)}, "--diff", env=env)
    assert second.returncode == 0 and "changed=0" in second.stdout and "failed=0" in second.stdout, second.stdout
    assert lab.writes_since(mark) == [] and not [c for c in lab.calls_since(mark) if c["method"] in POWER]
    assert len(lab.qrexec_calls()) == qrexec_mark
    # the hash is in no output, diff or log (only in the media the test kept)
    texts = {"output": first.stdout + first.stderr + second.stdout, "log": log.read_text(),
             "call log": pathlib.Path(lab.call_log).read_text(), "qrexec log": pathlib.Path(lab.qrexec_log).read_text()}
    for where, text in texts.items():
        assert HASH not in text and HASH[15:40] not in text, f"the hash in the {where}"
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in texts["output"]


def test_check_mode_then_a_changed_script_reported_and_not_applied(lab43, tmp_path):
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    check = play(lab43, tmp_path, {"bsd": entry(lab43)}, "--check", "--diff")
    assert check.returncode == 0 and "failed=0" in check.stdout, check.stdout + check.stderr
    assert "bsd: would install from untrusted:/home/user/FreeBSD.iso" in check.stdout
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
    assert "bsd" not in power(lab43) and "bsd-media" not in power(lab43)
    assert play(lab43, tmp_path, {"bsd": entry(lab43)}).returncode == 0
    record = lab43.client().feature_get("bsd", FEATURE)
    assert inside(lab43, "bsd-media", f"ls {MEDIA}").stdout == ""  # the script and the ISO removed
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    changed = play(lab43, tmp_path, {"bsd": entry(lab43, hostname="other")})
    assert changed.returncode == 0 and "changed=0" in changed.stdout, changed.stdout
    warned = " ".join((changed.stdout + changed.stderr).split())
    assert "bsd: the answer file (or install script) changed since the system was installed" in warned and "reinstall: true" in warned
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
    assert lab43.client().feature_get("bsd", FEATURE) == record


@pytest.mark.skipif(not NETWORK, reason=f"network realisation: {'; '.join(network.unavailable())}")
def test_the_installed_freebsd_reaches_what_its_whitelist_allows_and_dhcp_would_leave_it_offline(lab43, tmp_path):
    assert play(lab43, tmp_path, {"bsd": entry(lab43)}).returncode == 0
    client = lab43.client()
    client.call("admin.vm.firewall.Set", "bsd",
                payload="action=accept dsthost=192.0.2.20 proto=tcp dstports=443-443\naction=drop\n")
    client.start("bsd")
    layout = network.Layout(lab43.state_dir)
    assert network.probe(layout, "bsd", "192.0.2.20", 443) == network.CONNECTED
    assert network.probe(layout, "bsd", "192.0.2.40", 443) == "prohibited"
    client.kill("bsd")
    # a script that asks for DHCP on Xen's interface gets no address in Qubes: the guest is offline
    dhcp = entry(lab43, reinstall=True, setup_commands=['sysrc ifconfig_xn0="DHCP"'])
    assert play(lab43, tmp_path, {"bsd": dhcp}).returncode == 0
    assert "no address: xn0 asks for DHCP" in installer_log(lab43, "bsd")
    client.start("bsd")
    assert network.probe(layout, "bsd", "192.0.2.20", 443, timeout=1.0) != network.CONNECTED
    client.kill("bsd")


BAD = [
    ({"root_password_hash": "not-a-hash"}, "bsd.root_password_hash: expected a SHA-512 crypt hash"),
    ({"root_gib": 2}, "bsd.root_gib: expected GiB for the root volume (an integer of at least 4)"),
    ({"distributions": ["base.txz"]}, "bsd.distributions: expected base.txz and kernel.txz among them"),
    ({"iso": {"qube": "untrusted", "path": "/home/user/FreeBSD.iso"}}, "bsd.iso.sha256: required"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(":")[0] + str(i) for i, (_c, m) in enumerate(BAD)])
def test_bad_input_fails_before_any_change(lab43, tmp_path, change, message):
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    run = play(lab43, tmp_path, {"bsd": entry(lab43, **change)})
    assert run.returncode != 0 and message in " ".join(run.stdout.split()), run.stdout
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
    assert HASH not in run.stdout + run.stderr


def test_a_mismatching_iso_or_an_existing_pvh_qube_fails_before_the_qubes_change(lab43, tmp_path):
    mark = lab43.mark()
    values = entry(lab43)
    run = play(lab43, tmp_path, {"bsd": dict(values, iso={**values["iso"], "sha256": "0" * 64})})
    assert run.returncode != 0 and "bsd.iso: untrusted:/home/user/FreeBSD.iso has sha256 " in " ".join(run.stdout.split())
    # reading the ISO started the qube that holds it: nothing else
    assert [(c["method"], c["dest"]) for c in lab43.writes_since(mark)] == [("admin.vm.Start", "untrusted")]
    client = lab43.client()
    client.create("StandaloneVM", "bsd", "purple")
    client.property_set("bsd", "virt_mode", "pvh")
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    run = play(lab43, tmp_path, {"bsd": values})
    assert run.returncode != 0 and "bsd exists with virt_mode pvh and no install record" in " ".join(run.stdout.split())
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
