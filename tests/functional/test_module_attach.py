# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.attach through ansible-playbook against fresh rehearsal dom0s (R4.3 and R4.2) with qube roots.

The block device is real to the rehearsal: a file in the backend qube set up with ``losetup -f --show`` inside
it through qrexec, which the backend's ``Available`` then lists as ``loop0``. What is attached is read back
through the Admin API (R4.3 ``Attached``, R4.2 ``List``), and the rehearsal's call log shows what each run
called.
"""

from __future__ import annotations

import subprocess

import pytest

from harness import QREXEC_CLIENT
from playbook import Player
from rehearsal import roots, rootfs

REASONS = roots.unavailable()
pytestmark = pytest.mark.skipif(bool(REASONS), reason=f"qube roots: {'; '.join(REASONS)}")
DISK = "storage:loop0"
MUTATING = ("admin.vm.device.block.Attach", "admin.vm.device.block.Detach", "admin.vm.device.block.Assign",
            "admin.vm.device.block.Unassign")


def inside(dom0, qube: str, command: str) -> subprocess.CompletedProcess:
    """A shell command as root in a running qube, through qrexec."""
    return subprocess.run([str(QREXEC_CLIENT), "-d", qube, "root:QUBESRPC qubes.VMShell dom0"], input=command,
                          capture_output=True, text=True, env=dom0.qube_env(), timeout=120, check=False)


@pytest.fixture(params=["4.3", "4.2"])
def lab(request, dom0_factory, tmp_path):
    """A fresh dom0 on real roots: 'storage' runs with two disk images behind loop0 and loop1, 'backup' and
    'other' run, 'parked' is halted."""
    rootfs.build()
    dom0 = dom0_factory(release=request.param, extra_args=("--roots", "on"))
    client = dom0.client()
    for name, label in (("storage", "red"), ("backup", "blue"), ("other", "green"), ("parked", "gray")):
        client.create("AppVM", name, label)
    for name in ("storage", "backup", "other"):
        client.start(name)
    made = inside(dom0, "storage", "set -e; for n in 0 1; do truncate -s 4M /home/user/disk$n.img; "
                                   "losetup -f --show /home/user/disk$n.img; done")
    assert made.returncode == 0 and made.stdout.split() == ["/dev/loop0", "/dev/loop1"], made
    dom0.player = Player(dom0, tmp_path)
    return dom0


def attach(**args) -> dict:
    """A corral.qubes.attach task."""
    return {"corral.qubes.attach": args}


def attached(dom0, qube: str) -> list[str]:
    """What the Admin API says is attached to ``qube`` now (R4.3 Attached; R4.2 List, the non-persistent lines)."""
    client = dom0.client()
    if dom0.release == "4.2":
        return sorted(line for line in client.call("admin.vm.device.block.List", qube).splitlines()
                      if line.endswith("persistent=no"))
    return sorted(client.call("admin.vm.device.block.Attached", qube).splitlines())


def methods(calls) -> list[str]:
    return [call["method"] for call in calls]


def test_attach_check_diff_idempotence_detach(lab):
    wanted = attach(name="backup", device=DISK, options={"read-only": True, "frontend-dev": "xvdi"})
    mark = lab.mark()
    checked = lab.player.run([wanted], check=True, diff=True)
    assert checked[0]["changed"] and checked[0]["release"] == lab.release
    assert lab.writes_since(mark) == [] and attached(lab, "backup") == []
    assert checked[0]["diff"] == {"before": {"backup": []},
                                  "after": {"backup": ["storage:loop0 (frontend-dev=xvdi, read-only=True)"]}}
    assert checked[0]["actions"][0].startswith("attach block device storage:loop0")
    assert not set(methods(lab.calls_since(mark))) & set(MUTATING)

    mark = lab.mark()
    run = lab.player.run([wanted], diff=True)
    assert run[0]["changed"] and run[0]["attached_before"] == []
    assert run[0]["attached_after"] == ["storage:loop0 (frontend-dev=xvdi, read-only=True)"]
    assert "--- before" in run.output and "+++ after" in run.output
    assert '+        "storage:loop0 (frontend-dev=xvdi, read-only=True)"' in run.output
    calls = lab.calls_since(mark)
    writes = lab.writes_since(mark)
    assert [(c["method"], c["dest"]) for c in writes] == [("admin.vm.device.block.Attach", "backup")]
    if lab.release == "4.2":
        assert "admin.vm.device.block.List" in methods(calls) and "admin.vm.device.block.Attached" not in methods(calls)
        assert writes[0]["arg"] == "storage+loop0"
        assert attached(lab, "backup") == ["storage+loop0 frontend-dev=xvdi read-only=True persistent=no"]
        assert "persistent=yes" not in lab.client().call("admin.vm.device.block.List", "backup")  # not assigned
    else:
        assert "admin.vm.device.block.Attached" in methods(calls) and "admin.vm.device.block.List" not in methods(calls)
        assert writes[0]["arg"] == "storage+loop0+0000+0000++_______"  # the id Available shows, as qrexec holds it
        [line] = attached(lab, "backup")
        assert line.startswith("storage+loop0:0000:0000::?****** ")
        assert "mode='manual'" in line and "_read-only='True'" in line and "_frontend-dev='xvdi'" in line
        assert lab.client().call("admin.vm.device.block.Assigned", "backup") == ""  # attached, not assigned

    mark = lab.mark()
    again = lab.player.run([wanted], diff=True)
    assert not again[0]["changed"] and "diff" not in again[0]
    assert lab.writes_since(mark) == [] and not set(methods(lab.calls_since(mark))) & set(MUTATING)
    assert again[0]["attached_before"] == again[0]["attached_after"] == run[0]["attached_after"]
    assert again[0]["api_calls"] == len(lab.calls_since(mark)) == 2  # admin.vm.List and the frontend's attachments

    mark = lab.mark()
    gone = lab.player.run([attach(name="backup", device=DISK, state="detached")] * 2, diff=True)
    assert [r["changed"] for r in gone.results] == [True, False]
    assert gone[0]["diff"] == {"before": {"backup": ["storage:loop0 (frontend-dev=xvdi, read-only=True)"]},
                               "after": {"backup": []}}
    assert [(c["method"], c["dest"]) for c in lab.writes_since(mark)] == [("admin.vm.device.block.Detach", "backup")]
    assert attached(lab, "backup") == []


def test_check_mode_changes_nothing_and_a_detached_device_stays_detached(lab):
    mark = lab.mark()
    run = lab.player.run([attach(name="backup", device=DISK), attach(name="backup", device=DISK, state="detached"),
                          attach(name="parked", device=DISK, state="detached")], check=True, diff=True)
    assert [r["changed"] for r in run.results] == [True, False, False], run.output
    assert run[0]["attached_after"] == ["storage:loop0"]
    assert lab.writes_since(mark) == [] and attached(lab, "backup") == []


def test_bad_input_fails_naming_the_field_with_nothing_changed(lab):
    setup = lab.player.run([attach(name="other", device="storage:loop1", options={"read-only": True}),
                            attach(name="backup", device=DISK)])
    assert [r["changed"] for r in setup.results] == [True, True]
    before = {qube: attached(lab, qube) for qube in ("backup", "other")}
    mark = lab.mark()
    run = lab.player.run([
        attach(name="backup", device="storage"),                                  # not BACKEND:PORT
        attach(name="backup", device="storage:loop7"),                            # no such port
        attach(name="parked", device=DISK),                                       # halted frontend
        attach(name="nowhere", device=DISK),                                      # no such frontend
        attach(name="backup", device="vault:loop0"),                              # no such backend
        attach(name="backup", device="parked:loop0"),                             # backend not running
        attach(name="backup", device="storage:loop1"),                            # attached to running 'other'
        attach(name="backup", device=DISK, options={"read-only": True}),          # attached with other options
        attach(name="backup", device=DISK, options={"fast": True}),               # unknown option
        attach(name="backup", device=DISK, options={"frontend-dev": "xvda"}),     # the qube's own root
        attach(name="backup", device=DISK, options={"devtype": "floppy"}),        # not a devtype
        attach(name="backup", device=DISK, **{"class": "pci"}),                    # only block
        attach(name="storage", device=DISK),                                      # its own device
    ], diff=True)
    assert all(r["failed"] for r in run.results), [r.get("msg") for r in run.results]
    fields = [r.get("field") for r in run.results]
    assert fields == ["device", "device", "name", "name", "device", "device", "device", "options", "options.fast",
                      "options.frontend-dev", "options.devtype", None, "device"]
    msgs = [r["msg"] for r in run.results]
    assert "BACKEND:PORT" in msgs[0]
    assert "storage exposes no block device loop7; it exposes: storage:loop0, storage:loop1" in msgs[1]
    assert "parked is halted: attach needs it running; to attach at every start use corral.qubes.devices" in msgs[2]
    assert "no qube named 'nowhere'" in msgs[3] and "'vault'" in msgs[4] and "parked is halted" in msgs[5]
    assert "attached to running other" in msgs[6]
    assert "with no options), not with read-only=True: detach it first" in msgs[7]
    assert "value of class must be one of: block" in msgs[11]
    assert lab.writes_since(mark) == [] and not set(methods(lab.calls_since(mark))) & set(MUTATING)
    assert {qube: attached(lab, qube) for qube in ("backup", "other")} == before
