# SPDX-License-Identifier: GPL-3.0-or-later
"""The role corral.qubes.windows against fresh rehearsal dom0s (R4.3 and R4.2) whose qubes run on real roots.

The user's Windows ISO is a stand-in the tests make (install_media.py), put in a qube's home; the answer-file ISO
is built by xorriso inside the offline media qube, through the qrexec connection; the rehearsal's HVM installer
stand-in reads both images behind the CD-ROMs the role attaches, checks the answer file and "installs". What the
media held is read back from the images themselves, the answer file against tests/data/unattend.xsd.
"""

from __future__ import annotations

import hashlib
import pathlib

import jinja2
import xmlschema

import pytest

from playbook import ROOT
from rehearsal import installer, network, roots, rootfs
import install_media
from os_roles import inside, installer_log, play_role, power

REASONS = roots.unavailable() + install_media.missing()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots and ISO tools: {'; '.join(REASONS)}")
NETWORK = not network.unavailable()
FEATURE = "corral-windows-install"
POWER = ("admin.vm.Start", "admin.vm.Unpause", "admin.vm.Shutdown", "admin.vm.Kill")
PASSWORD, ADMIN_PASSWORD, KEY = "Corr4l-user-S3cret", "Corr4l-admin-S3cret", "QW7RT-YU8PK-MN3BV-CX2ZL-9HJKD"
SCHEMA = ROOT / "tests" / "data" / "unattend.xsd"


@pytest.fixture(params=["4.3", "4.2"])
def lab(request, dom0_factory):
    """A fresh dom0 with qube roots (and network realisation where it can run), and the Windows ISO in 'untrusted'."""
    return windows_lab(dom0_factory, request.param)


def windows_lab(dom0_factory, release: str, plain_iso: bool = False):
    """The dom0 of :func:`lab` on ``release``; with ``plain_iso``, also an ISO no firmware boots (plain.iso)."""
    rootfs.build()
    dom0 = dom0_factory(release=release, extra_args=(
        "--roots", "on", "--network", "on" if NETWORK else "off", "--install-delay", "0.5"))
    client = dom0.client()
    client.create("AppVM", "untrusted", "red")
    client.start("untrusted")
    home = pathlib.Path(dom0.state_dir) / "qubes" / "untrusted" / "private" / "home" / "user"
    dom0.iso_sha256 = install_media.make_windows_iso(home / "win7.iso")
    if plain_iso:
        install_media.make_windows_iso(home / "plain.iso", bootable=False)
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
    """The role with ``qubes`` as windows_qubes."""
    return play_role(dom0, tmp_path, "windows", {"windows_qubes": qubes, "windows_poll": 1, **(extra or {})}, *args, env=env)


def render(dom0, qube: str, values: dict) -> str:
    """The answer file the role makes for ``values``, from the role's template and the qube's Qubes settings."""
    from ansible_collections.corral.qubes.plugins.module_utils import windows  # pylint: disable=import-outside-toplevel

    props = {name: {"value": dom0.client().property_get(qube, name).value} for name in ("ip", "visible_gateway", "dns")}
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)  # the template lookup's settings
    template = env.from_string((ROOT / "roles" / "windows" / "templates" / "autounattend.xml.j2").read_text())
    w = windows.entry(values)
    return template.render(w=w, net=windows.network(w, props))


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
    # setup's two reboots powered the qube off; it was started again from its disk each time, without media
    assert "(specialize)" in log and "(oobeSystem)" in log and log.index("(specialize)") < log.index("(oobeSystem)")
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
        assert calls.count("admin.vm.Start") == 3
        assert client.device_assigned("work", "block") == []
    else:
        assert calls.count("admin.vm.device.block.Attach") == 2 and calls.count("admin.vm.device.block.Set.persistent") == 2
        assert calls.count("admin.vm.Start") == 3
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


@pytest.fixture
def lab43(dom0_factory):
    """lab on R4.3 only (the behaviour below does not depend on the release), with plain.iso too."""
    return windows_lab(dom0_factory, "4.3", plain_iso=True)


def test_a_changed_answer_file_is_reported_and_applied_only_with_reinstall(lab43, tmp_path):
    values = entry(lab43)
    assert play(lab43, tmp_path, {"work": values}).returncode == 0
    record = lab43.client().feature_get("work", FEATURE)
    changed = dict(values, computer_name="WORK2")
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    second = play(lab43, tmp_path, {"work": changed})
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout
    warned = " ".join((second.stdout + second.stderr).split())
    assert "work: the answer file (or install script) changed since the system was installed" in warned and "reinstall: true" in warned
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
    assert lab43.client().feature_get("work", FEATURE) == record
    third = play(lab43, tmp_path, {"work": dict(changed, reinstall=True)})
    assert third.returncode == 0 and "failed=0" in third.stdout, third.stdout
    assert [c for c in lab43.calls_since(mark) if c["method"] == "admin.vm.Start" and c.get("dest") == "work"]
    new = lab43.client().feature_get("work", FEATURE)
    assert new.startswith("pbkdf2-sha256:") and new != record
    # reinstalled from the new answer file: the next run with it is a no-op again
    mark = lab43.mark()
    fourth = play(lab43, tmp_path, {"work": dict(changed, reinstall=True)})
    assert fourth.returncode == 0 and "changed=0" in fourth.stdout and lab43.writes_since(mark) == []


def test_check_mode_on_a_fresh_dom0_touches_nothing(lab43, tmp_path):
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    # with post-install settings too: check mode has no qube to set them on yet, and says what it would install
    check = play(lab43, tmp_path, {"work": entry(lab43, post_install={"features": {"os": "Windows"}})}, "--check", "--diff")
    assert check.returncode == 0 and "failed=0" in check.stdout, check.stdout + check.stderr
    assert "work: would install from untrusted:/home/user/win7.iso" in check.stdout
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
    assert "work" not in power(lab43) and "windows-media" not in power(lab43)


BAD = [
    ({"product_key": "QW7RT-YU8PK-MN3BV-CX2ZL"}, "work.product_key: not of the form XXXXX-XXXXX-XXXXX-XXXXX-XXXXX"),
    ({"product_key": "qw7rt-yu8pk-mn3bv-cx2zl-9hjkd"}, "work.product_key: not of the form"),
    ({"locale": "xx-XX"}, "work.locale: not a language Windows 7 knows"),
    ({"timezone": "Europe/Berlin"}, "work.timezone: not a Windows time zone name"),
    ({"iso": {"qube": "untrusted", "path": "/home/user/win7.iso"}}, "work.iso.sha256: required, 64 hexadecimal digits"),
    ({"root_gib": 12}, "work.root_gib: expected GiB for the root volume (amd64 setup's minimum) (an integer of at least 20)"),
    ({"class": "AppVM"}, "work.class: expected StandaloneVM or TemplateVM"),
    ({"computer_name": "A-NAME-FAR-TOO-LONG"}, "work.computer_name: expected 1 to 15"),
    ({"tools": True}, "tools: Qubes Windows Tools are not available for this guest on Qubes R4.3"),
    ({"colour": "blue"}, "work.colour: unknown key"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m.split(":")[0] + str(i) for i, (_c, m) in enumerate(BAD)])
def test_bad_input_fails_before_any_change(lab43, tmp_path, change, message):
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    run = play(lab43, tmp_path, {"work": entry(lab43, **change)})
    assert run.returncode != 0 and message in " ".join(run.stdout.split()), run.stdout
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
    for secret in (PASSWORD, ADMIN_PASSWORD, KEY, KEY.lower(), KEY[:23]):
        assert secret not in run.stdout + run.stderr


@pytest.mark.parametrize("iso, message", [
    ({"sha256": "0" * 64}, "work.iso: untrusted:/home/user/win7.iso has sha256 "),
    ({"path": "/home/user/missing.iso"}, "work.iso: untrusted:/home/user/missing.iso does not exist"),
])
def test_a_missing_or_mismatching_iso_fails_before_the_qubes_change(lab43, tmp_path, iso, message):
    mark = lab43.mark()
    values = entry(lab43)
    run = play(lab43, tmp_path, {"work": dict(values, iso={**values["iso"], **iso})})
    assert run.returncode != 0 and message in " ".join(run.stdout.split()), run.stdout
    # reading the ISO started the qube that holds it (as qvm-start --cdrom would): nothing else
    assert [(c["method"], c["dest"]) for c in lab43.writes_since(mark)] == [("admin.vm.Start", "untrusted")]
    assert "work" not in power(lab43)


def test_an_existing_qube_that_is_not_hvm_is_refused(lab43, tmp_path):
    client = lab43.client()
    client.create("StandaloneVM", "work", "orange")
    client.property_set("work", "virt_mode", "pvh")
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    run = play(lab43, tmp_path, {"work": entry(lab43)})
    assert run.returncode != 0 and "work exists with virt_mode pvh and no install record" in " ".join(run.stdout.split())
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark


def test_a_running_qube_to_install_is_refused_before_any_change(lab43, tmp_path):
    client = lab43.client()
    client.create("StandaloneVM", "work", "orange")
    client.property_set("work", "virt_mode", "hvm")
    client.property_set("work", "kernel", "")
    client.start("work")
    mark, qrexec_mark = lab43.mark(), len(lab43.qrexec_calls())
    run = play(lab43, tmp_path, {"work": entry(lab43)})
    assert run.returncode != 0, run.stdout
    assert "windows_qubes: work: the qube is running; an install starts it from its media, so shut it down first" in \
        " ".join(run.stdout.split()), run.stdout
    assert lab43.writes_since(mark) == [] and len(lab43.qrexec_calls()) == qrexec_mark
    assert "windows-media" not in power(lab43)


def test_a_power_off_count_above_setups_ends_in_a_clear_time_out(lab43, tmp_path):
    """One power-off more than setup makes: the finished Windows is started again, runs, and the wait says why."""
    run = play(lab43, tmp_path, {"work": entry(lab43, setup_power_offs=4, timeout=6)})
    assert run.returncode != 0
    text = " ".join(run.stdout.split())
    assert "work did not power off within 6 s (after 3 of the 4 power-offs expected)" in text
    assert "a desktop: the installer powers the qube off fewer times than expected" in text
    assert power(lab43)["work"] == "Running" and FEATURE not in lab43.client().feature_list("work")
    lab43.client().kill("work")


def test_without_a_bootable_medium_the_wait_times_out_clearly(lab43, tmp_path):
    values = entry(lab43, timeout=3)
    values["iso"] = {"qube": "untrusted", "path": "/home/user/plain.iso",
                     "sha256": hashlib.sha256((pathlib.Path(lab43.state_dir) / "qubes" / "untrusted" / "private" / "home"
                                               / "user" / "plain.iso").read_bytes()).hexdigest()}
    run = play(lab43, tmp_path, {"work": values})
    assert run.returncode != 0
    text = " ".join(run.stdout.split())
    assert "work did not power off within 3 s: its installer did not finish" in text
    assert "no bootable device" in text
    assert installer.NO_BOOT in installer_log(lab43, "work")
    assert power(lab43)["work"] == "Running" and FEATURE not in lab43.client().feature_list("work")
    # the media were taken off again, the answer file removed from the media qube
    assert inside(lab43, "windows-media", "ls /home/user/corral-media").stdout == ""


def test_secrets_are_in_no_output_diff_or_log(lab43, tmp_path):
    log = tmp_path / "ansible.log"
    run = play(lab43, tmp_path, {"work": entry(lab43)}, "-vvv", "--diff", env={"ANSIBLE_LOG_PATH": str(log)})
    assert run.returncode == 0, run.stdout[-3000:]
    texts = {"output": run.stdout + run.stderr, "log": log.read_text(),
             "call log": pathlib.Path(lab43.call_log).read_text(),
             "qrexec log": pathlib.Path(lab43.qrexec_log).read_text()}
    for where, text in texts.items():
        for secret in (PASSWORD, ADMIN_PASSWORD, KEY):
            assert secret not in text, f"{secret} in the {where}"
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in texts["output"]  # the answer file parameter, masked


@pytest.mark.skipif(not NETWORK, reason=f"network realisation: {'; '.join(network.unavailable())}")
def test_the_installed_windows_reaches_what_its_whitelist_allows(lab43, tmp_path):
    assert play(lab43, tmp_path, {"work": entry(lab43)}).returncode == 0
    client = lab43.client()
    client.call("admin.vm.firewall.Set", "work",
                payload="action=accept dsthost=192.0.2.20 proto=tcp dstports=443-443\naction=drop\n")
    client.start("work")
    layout = network.Layout(lab43.state_dir)
    assert network.probe(layout, "work", "192.0.2.20", 443) == network.CONNECTED
    assert network.probe(layout, "work", "192.0.2.40", 443) == "prohibited"
    client.kill("work")


@pytest.mark.skipif(not NETWORK, reason=f"network realisation: {'; '.join(network.unavailable())}")
def test_a_wrong_address_in_the_answer_file_breaks_the_network(lab43, tmp_path):
    wrong = entry(lab43, network={"address": "10.137.0.250"})
    assert play(lab43, tmp_path, {"work": wrong}).returncode == 0
    client = lab43.client()
    client.start("work")
    layout = network.Layout(lab43.state_dir)
    assert network.probe(layout, "work", "192.0.2.20", 443, timeout=1.0) != network.CONNECTED
    client.kill("work")
