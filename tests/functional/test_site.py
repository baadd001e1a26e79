# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's site playbook with the reference layout (inventories/t420s), from the repository root."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from playbook import BIN, ROOT, ansible_env
from rehearsal import network, rootfs, roots
import install_media


REASONS = roots.unavailable() + network.unavailable()
needs_roots = pytest.mark.skipif(bool(REASONS), reason=f"site.yml's Fedora role runs inside qube roots: {'; '.join(REASONS)}")


@pytest.fixture
def dom0(dom0_factory):
    """A fresh R4.3 rehearsal dom0 whose qubes run on real roots (the Fedora role configures its templates)."""
    rootfs.build()
    return dom0_factory(extra_args=("--roots", "on", "--network", "on"))


def site(dom0, tmp_path, *args, env: dict | None = None, playbook: str = "site.yml"):
    env = {**ansible_env(dom0, tmp_path), **(env or {})}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")  # the project's own configuration (the preload callback on)
    env["CORRAL_POLICY_DIR"] = str(dom0.policy_dir)  # dom0 reads its policy directory itself, as a real one does
    env["CORRAL_RUNTIME_POLICY_DIR"] = str(dom0.runtime_policy_dir)  # and on R4.3 its runtime policy directory
    return subprocess.run([str(BIN / "ansible-playbook"), playbook, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)


@needs_roots
def test_site_check_diff_on_a_fresh_dom0_changes_nothing(dom0, tmp_path):
    mark = dom0.mark()
    proc = site(dom0, tmp_path, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--- before: work\n+++ after: work" in proc.stdout  # the qubes task's diff of each qube
    assert "--- before" in proc.stdout and "failed=0" in proc.stdout
    assert '+        "action=accept dsthost=bank.example.com proto=tcp dstports=443-443",' in proc.stdout
    assert dom0.writes_since(mark) == []


def test_production_socket_path_without_configuration(tmp_path):
    """In private user and mount namespaces the rehearsal serves /var/run/qubesd.sock, as qubesd does in dom0, and the
    site playbook runs with no socket configured at all."""
    state = tmp_path / "state"
    # root in a user namespace runs no qube roots: the Fedora role's templates without what goes inside them
    reference = yaml.safe_load((ROOT / "inventories/t420s/group_vars/qubes_admin/fedora.yml").read_text())
    outside = {name: {k: v for k, v in entry.items() if k in ("clone_from", "label")}
               for name, entry in reference["fedora_templates"].items()}
    (tmp_path / "outside.json").write_text(json.dumps({"fedora_templates": outside}))
    script = (
        "mount -t tmpfs corral-run /run && "
        f"{sys.executable} -m rehearsal run --fresh --state {state} --socket /var/run/qubesd.sock -- "
        f"env -u QUBESD_SOCKET {BIN / 'ansible-playbook'} site.yml -e @{tmp_path / 'outside.json'}")
    env = {key: value for key, value in os.environ.items() if key != "QUBESD_SOCKET"}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the Fedora template and its clone (one task), then the layout (Whonix's templates, qubes, devices, firewall,
    # flow and input policies, in one task)
    assert "failed=0" in proc.stdout and "changed=2" in proc.stdout, proc.stdout
    assert "sys-vpn-work" in (state / "qubes.json").read_text()
    assert not os.path.exists("/var/run/qubesd.sock") or os.path.exists("/etc/qubes-release")


@needs_roots
def test_site_builds_the_devices_and_a_second_run_changes_nothing(dom0, tmp_path):
    proc = site(dom0, tmp_path)
    assert proc.returncode == 0 and "failed=0" in proc.stdout, proc.stdout + proc.stderr
    client = dom0.client()
    assigned = {name: sorted(line.split(" ", 1)[0] for line in
                             client.call("admin.vm.device.pci.Assigned", name).splitlines())
                for name in ("sys-net", "sys-usb")}
    assert assigned == {
        "sys-net": ["dom0+00_19.0:0x8086:0x1502::p020000", "dom0+03_00.0:0x8086:0x0085::p028000"],
        "sys-usb": ["dom0+00_1a.0:0x8086:0x1c2d::p0c0320", "dom0+00_1d.0:0x8086:0x1c26::p0c0320"]}
    assert client.property_get("sys-usb", "virt_mode").value == "hvm"
    assert (dom0.state_dir and (dom0.policy_dir / "50-config-input.policy").read_text().count("sys-usb dom0") == 3)
    mark, qrexec_mark = dom0.mark(), len(dom0.qrexec_calls())
    again = site(dom0, tmp_path)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
    assert dom0.writes_since(mark) == []
    # a no-op: only reads, no qube started, a few reads per qube (the rehearsal's call log)
    calls = dom0.calls_since(mark)
    assert not [call for call in calls if call.get("mutating")]
    assert not [call for call in calls if call["method"] in ("admin.vm.Start", "admin.vm.Unpause")]
    # no qrexec call into a qube, and none to dom0's policy admin service: dom0 reads its policy files itself,
    # the audit's too (the files that decide the clipboard found as policy.GetFiles finds them)
    qrexec = dom0.qrexec_calls()[qrexec_mark:]
    assert [call for call in qrexec if call["final"] != "dom0"] == []
    assert [call["service"] for call in qrexec if call["service"].startswith("policy.")] == []
    qubes = len(client.list_vms()) - 1
    print(f"no-op site.yml: {len(calls)} calls for {qubes} qubes")
    # 70 for 20 qubes: one qube list for the run, its events watched (73 with a list per reading task), a qube's own
    # volumes read without its volume list (76 before), templates' versions not read by the roles, the Fedora
    # digests read by its layout task (94 before; 101 with the qubes role's nine tasks, 136 without the shared
    # reads, 188 before the speed work)
    assert len(calls) <= 3.5 * qubes
    methods = [call["method"] for call in calls]
    assert methods.count("admin.vm.List") == 1 and methods.count("admin.Events") == 1, methods
    assert not [call for call in calls if call["method"] == "admin.vm.volume.List"]
    # with no Windows qube, FreeBSD qube or YubiKey login configured, the play ends for the host before the task
    # that would include their roles (a meta task's condition costs no task)
    assert "TASK [The Windows qubes, the FreeBSD qubes and the YubiKey login" not in again.stdout, again.stdout
    # nothing inside a template to change: the Fedora role ends before the include of what goes inside (end_role)
    assert "TASK [corral.qubes.fedora : Configure inside each template that changed]" not in again.stdout, again.stdout
    # the preflight is one task: Whonix is checked with the rest of the layout and the machine against its profile
    # in the whole-layout check, and the rest of the play takes the layout with Whonix from its result; neither the
    # Whonix role's tasks nor the hardware role's run
    assert "TASK [corral.qubes.qubes : The whole layout, checked before any change]" in again.stdout, again.stdout
    assert "TASK [corral.qubes.whonix :" not in again.stdout and "TASK [corral.qubes.hardware :" not in again.stdout
    assert again.stdout.count("TASK [") == 6, again.stdout  # 4 tasks in workers and the 2 meta tasks that end early
    # the no-op still audits the clipboard, from the policy files qrexec reads: a transient rule in R4.3's runtime
    # directory that lets untrusted paste into work fails the next run, naming the flow, and nothing is written
    dom0.runtime_policy_dir.mkdir(exist_ok=True)
    (dom0.runtime_policy_dir / "10-transient.policy").write_text("qubes.ClipboardPaste * untrusted work allow\n")
    mark = dom0.mark()
    audited = site(dom0, tmp_path)
    assert audited.returncode != 0, audited.stdout
    assert ("qubes.ClipboardPaste allows flows the matrix does not declare: untrusted -> work (allow by "
            "10-transient.policy:1)") in " ".join(audited.stdout.split()), audited.stdout
    assert dom0.writes_since(mark) == []


def test_site_takes_the_layout_with_whonix_from_its_check_or_as_given_without_whonix(dom0_factory, tmp_path):
    """The roles after site.yml's whole-layout check take the layout from its result: with Whonix added (check mode
    would create sys-whonix and the Fedora templates' qubes), or as given with whonix_enabled false."""
    dom0 = dom0_factory()
    network = yaml.safe_load((ROOT / "inventories/t420s/group_vars/qubes_admin/network.yml").read_text())
    flows = {service: {source: [target for target in targets if target != "anon-whonix"]
                       for source, targets in matrix.items() if source != "anon-whonix"}
             for service, matrix in network["qubes_flows"].items()}
    mark = dom0.mark()
    with_whonix = site(dom0, tmp_path, "--check", "--diff")
    without = site(dom0, tmp_path, "--check", "--diff", "-e", json.dumps({"whonix_enabled": False, "qubes_flows": flows}))
    for proc in (with_whonix, without):
        assert proc.returncode == 0 and "failed=0" in proc.stdout, proc.stdout + proc.stderr
        assert "+++ after: work" in proc.stdout
    assert "+++ after: sys-whonix" in with_whonix.stdout and "+++ after: anon-whonix" in with_whonix.stdout
    assert "sys-whonix" not in without.stdout and "45-corral-whonix-updates" not in without.stdout
    assert dom0.writes_since(mark) == []


def test_site_refuses_a_layout_given_as_an_extra_variable_before_any_change(dom0_factory, tmp_path):
    """site.yml checks Whonix within its whole-layout check; a layout given with -e (which Ansible puts above the facts
    that add Whonix) fails that check, naming the variable, before anything is written. The check fails before the
    Fedora role, so the qubes need no roots."""
    dom0 = dom0_factory()
    reference = yaml.safe_load((ROOT / "inventories/t420s/group_vars/qubes_admin/layout.yml").read_text())
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump({"qubes_layout": reference["qubes_layout"]}))
    mark = dom0.mark()
    proc = site(dom0, tmp_path, "-e", f"@{extra}")
    assert proc.returncode != 0, proc.stdout
    words = " ".join(proc.stdout.split())
    assert "qubes_layout is given as an extra variable (-e)" in words, proc.stdout
    assert "TASK [corral.qubes.qubes : The whole layout, checked before any change]" in proc.stdout
    assert "Fedora templates from the template repositories" not in proc.stdout
    assert dom0.writes_since(mark) == []


@needs_roots
def test_site_installs_the_templates_then_converges_without_qvm_template(dom0, tmp_path):
    """The first run installs the layout's Whonix templates before the qubes; the second changes nothing, makes no
    write and starts no qvm-template (the stand-in logs every run beside the socket)."""
    log = pathlib.Path(dom0.socket).parent / "qvm-template.jsonl"
    first = site(dom0, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    # one task installs the Whonix templates, then creates the qubes based on them (which would fail the other way)
    assert "TASK [corral.qubes.qubes : The layout (templates, qubes," in first.stdout
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    # fedora-42-minimal (the source of secure's clone) by the Fedora role, then Whonix by the qubes role
    assert [run["command"] for run in runs] == ["list", "install", "list", "install"]
    client = dom0.client()
    assert client.feature_get("whonix-gateway-18", "template-name") == "whonix-gateway-18"
    assert client.feature_get("fedora-42-minimal", "template-name") == "fedora-42-minimal"
    mark, count = dom0.mark(), len(runs)
    second = site(dom0, tmp_path)
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout + second.stderr
    assert dom0.writes_since(mark) == []
    assert len(log.read_text().splitlines()) == count


@needs_roots
def test_site_installs_windows_and_freebsd_once_their_isos_and_secrets_are_given(dom0, tmp_path):
    """The reference inventory's Windows and FreeBSD entries (windows.yml, bsd.yml), switched on as a user does, with
    the ISOs and the secrets in a vars file: check mode says what it would install and changes nothing; the run
    installs Windows in work and FreeBSD in bsd; the next run is a no-op in which the qubes role and the OS roles
    agree on both qubes; no secret is anywhere."""
    assert site(dom0, tmp_path).returncode == 0  # the layout, untrusted and work (an HVM shell) among its qubes
    client = dom0.client()
    client.start("untrusted")
    home = pathlib.Path(dom0.state_dir) / "qubes" / "untrusted" / "private" / "home" / "user"
    sha256 = install_media.make_windows_iso(home / "win7.iso")
    bsd_sha256 = install_media.make_freebsd_iso(home / "FreeBSD.iso")
    client.shutdown("untrusted", wait=True)
    secrets = {"windows_work_password": "Site-user-S3cret", "windows_work_admin_password": "Site-admin-S3cret",
               "windows_work_product_key": "QW7RT-YU8PK-MN3BV-CX2ZL-9HJKD",
               "bsd_root_password_hash": "$6$siteBSDsalt$" + "S1te" * 21 + "Hh"}
    vault = tmp_path / "vault.yml"
    vault.write_text(yaml.safe_dump({"windows_work_iso": {"qube": "untrusted", "path": "/home/user/win7.iso",
                                                          "sha256": sha256},
                                     "bsd_iso": {"qube": "untrusted", "path": "/home/user/FreeBSD.iso",
                                                 "sha256": bsd_sha256},
                                     "windows_poll": 1, "bsd_poll": 1, **secrets}))
    log_path = tmp_path / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log_path)}

    mark, qrexec_mark = dom0.mark(), len(dom0.qrexec_calls())
    check = site(dom0, tmp_path, "-e", f"@{vault}", "--check", "--diff", env=env)
    assert check.returncode == 0 and "failed=0" in check.stdout, check.stdout + check.stderr
    assert "work: would install from untrusted:/home/user/win7.iso" in check.stdout
    assert "bsd: would install from untrusted:/home/user/FreeBSD.iso" in check.stdout
    # nothing written, and no qrexec call into a qube (the policy reads go to dom0's policy admin service)
    assert dom0.writes_since(mark) == []
    assert [call for call in dom0.qrexec_calls()[qrexec_mark:] if call["final"] != "dom0"] == []
    assert "corral-windows-install" not in client.feature_list("work")
    assert "corral-bsd-install" not in client.feature_list("bsd")

    first = site(dom0, tmp_path, "-e", f"@{vault}", "--diff", "-v", env=env)
    assert first.returncode == 0 and "failed=0" in first.stdout, first.stdout + first.stderr
    assert client.feature_get("work", "corral-windows-install").startswith("pbkdf2-sha256:")
    assert client.property_get("work", "label").value == "blue"  # the layout's, which the entry repeats
    assert client.feature_get("bsd", "corral-bsd-install").startswith("pbkdf2-sha256:")
    assert client.property_get("bsd", "label").value == "purple"

    mark, qrexec_mark = dom0.mark(), len(dom0.qrexec_calls())
    again = site(dom0, tmp_path, "-e", f"@{vault}", "--diff", env=env)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
    calls = dom0.calls_since(mark)
    assert not [call for call in calls if call.get("mutating")]
    assert not [call for call in calls if call["method"] in ("admin.vm.Start", "admin.vm.Unpause")]
    assert [call for call in dom0.qrexec_calls()[qrexec_mark:] if call["final"] != "dom0"] == []
    qubes = len(client.list_vms()) - 1
    print(f"no-op site.yml with Windows and FreeBSD: {len(calls)} calls for {qubes} qubes")
    assert len(calls) <= 10 * qubes

    logs = (pathlib.Path(dom0.call_log).read_text() + pathlib.Path(dom0.qrexec_log).read_text()
            + log_path.read_text())
    for secret in secrets.values():
        for text in (check.stdout, check.stderr, first.stdout, first.stderr, again.stdout, logs):
            assert secret not in text
