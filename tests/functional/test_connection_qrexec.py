# SPDX-License-Identifier: GPL-3.0-or-later
"""Real ansible-playbook runs through the corral.qubes.qrexec connection, against a fresh rehearsal dom0.

The qubes, their power states and ``admin.vm.Start`` are the rehearsal dom0's; qrexec is the fake of
fake_qrexec.py, whose daemon directory follows the rehearsal's power states (DaemonWatcher), and whose
shell runs on this machine in place of the qube's root (each test writes only under its own tmp_path).
Every qrexec call is logged by the fake, so the tests count calls per command.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest
import yaml

from playbook import BIN, ansible_env, host_play
from qrexec_fake import DaemonWatcher, FakeQrexec

QREXEC_LINE = re.compile(r"^<(?P<qube>[^>]+)> QREXEC \S+ .* <<< ", re.M)
ADMIN_EVENTS = "admin.Events"


class Rig:
    """A rehearsal dom0, fake qrexec programs following it, and ansible-playbook runs through the plugin."""

    def __init__(self, dom0, tmp_path, ignore=()):
        self.dom0 = dom0
        self.tmp_path = tmp_path
        client = dom0.client()
        for name, label in (("work", "blue"), ("personal", "yellow")):
            if name not in client.list_vms():
                client.create("AppVM", name, label)
        qubes = sorted(client.list_vms())
        self.fake = FakeQrexec(tmp_path / "qrexec", qubes=qubes, running=(), caller="mgmt")
        self.watcher = DaemonWatcher(dom0, self.fake, ignore=ignore)
        self.count = 0
        self.work = tmp_path / "inside"
        self.work.mkdir()

    def env(self, pipelining: bool = True, **extra) -> dict:
        env = ansible_env(self.dom0, self.tmp_path)
        env.update(self.fake.env())
        env.update({"QREXEC_CLIENT": self.fake.qrexec_client, "QREXEC_CLIENT_VM": self.fake.qrexec_client_vm,
                    "CORRAL_QREXEC_DAEMON_DIR": str(self.fake.daemon_dir),
                    "ANSIBLE_PIPELINING": "1" if pipelining else "0",
                    "ANSIBLE_REMOTE_TMP": str(self.tmp_path / "remote-tmp")})
        env.update(extra)
        return env

    def play(self, host: str, tasks: list, gather: bool = False, pipelining: bool = True, hostvars=None,
             inventory=None, env=None, expect_rc=0):
        """Run ``tasks`` on ``host`` (every task may fail); the results, the output and the qrexec calls made."""
        self.count += 1
        playbook, out = host_play(self.tmp_path, self.count, host, tasks, gather)
        if inventory is None:
            inventory = self.tmp_path / f"inventory-{self.count}.yml"
            inventory.write_text(yaml.safe_dump({"all": {"hosts": {
                "localhost": {"ansible_connection": "local"},
                host: {"ansible_connection": "corral.qubes.qrexec", **(hostvars or {})}}}}))
        calls_before, api_mark = len(self.fake.calls()), self.dom0.mark()
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-vvv", "-i", str(inventory), str(playbook)],
                              env=self.env(pipelining, **(env or {})), capture_output=True, text=True, check=False,
                              timeout=300)
        output = proc.stdout + proc.stderr
        if expect_rc is not None:
            assert proc.returncode == expect_rc, output
        results = json.loads(out.read_text()) if out.exists() else []
        calls = self.fake.calls()[calls_before:]
        api = [call["method"] for call in self.dom0.calls_since(api_mark) if call["method"] != ADMIN_EVENTS]
        return results, output, calls, api

    def close(self):
        self.watcher.close()


@pytest.fixture
def rig(dom0, tmp_path):
    made = Rig(dom0, tmp_path)
    yield made
    made.close()


def calls_per_task(output: str) -> dict:
    """How many qrexec calls the plugin made in each task of the output (its -vvv lines)."""
    counts = {}
    for section in re.split(r"^TASK \[", output, flags=re.M)[1:]:
        name = section.split("]", 1)[0]
        found = len(QREXEC_LINE.findall(section))
        if found:
            counts[name] = found
    return counts


def sha1(path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324 - the checksum stat and copy report


def module_tasks(rig):
    """command, shell, copy (content and a binary file), template, file, stat, fetch: every result checked below."""
    inside = rig.work
    blob = rig.tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 300 + os.urandom(100_000))
    template = rig.tmp_path / "motd.j2"
    template.write_text("qube {{ inventory_hostname }}: {{ greeting }}\n")
    return blob, [
        {"ansible.builtin.command": {"argv": ["id", "-un"]}},
        {"ansible.builtin.shell": f"echo $((6 * 7)) | tee {inside}/shell.txt; echo to-stderr >&2"},
        {"ansible.builtin.copy": {"content": "it's \"quoted\" $HOME\n", "dest": f"{inside}/content.txt", "mode": "0640"}},
        {"ansible.builtin.copy": {"src": str(blob), "dest": f"{inside}/blob.bin", "mode": "0600"}},
        {"ansible.builtin.template": {"src": str(template), "dest": f"{inside}/motd"}, "vars": {"greeting": "héllo"}},
        {"ansible.builtin.file": {"path": f"{inside}/dir/sub", "state": "directory", "mode": "0750"}},
        {"ansible.builtin.stat": {"path": f"{inside}/blob.bin", "checksum_algorithm": "sha1"}},
        {"ansible.builtin.fetch": {"src": f"{inside}/blob.bin", "dest": str(rig.tmp_path / "fetched.bin"), "flat": True}},
        {"ansible.builtin.shell": "echo failing >&2; exit 7"},
    ]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_modules_inside_a_qube(rig, pipelining):
    blob, tasks = module_tasks(rig)
    results, output, calls, api = rig.play("work", tasks, gather=True, pipelining=pipelining)
    inside = rig.work
    assert [r.get("failed", False) for r in results] == [False] * 8 + [True], output
    assert results[0]["stdout"] == "root" and results[0]["rc"] == 0
    assert results[1]["stdout"] == "42" and results[1]["stderr"] == "to-stderr"
    assert (inside / "shell.txt").read_text() == "42\n"
    assert (inside / "content.txt").read_text() == "it's \"quoted\" $HOME\n"
    assert oct((inside / "content.txt").stat().st_mode & 0o777) == "0o640"
    assert (inside / "blob.bin").read_bytes() == blob.read_bytes() and results[3]["changed"]
    assert (inside / "motd").read_text() == "qube work: héllo\n"
    assert (inside / "dir" / "sub").is_dir() and oct((inside / "dir" / "sub").stat().st_mode & 0o777) == "0o750"
    assert results[6]["stat"]["checksum"] == sha1(blob)
    assert (rig.tmp_path / "fetched.bin").read_bytes() == blob.read_bytes()
    assert results[8]["rc"] == 7 and results[8]["stderr"] == "failing"
    assert "ansible_facts" not in results[0] and "Gathering Facts" in output
    # one qrexec call per command: what the plugin ran (its -vvv lines) is what qrexec saw, all into work
    assert len(calls) == len(QREXEC_LINE.findall(output)) and {c["target"] for c in calls} == {"work"}
    assert {(c["side"], c["service"], c["user"]) for c in calls} == {("dom0", "qubes.VMShell", "root")}
    if pipelining:
        # each module is one call; fetch adds the download; copy and template are Ansible's six steps
        # (temporary directory, stat, upload, chmod, the module, clean-up), the upload one call, streamed
        per_task = calls_per_task(output)
        assert per_task == {"Gathering Facts": 1, "task 0": 1, "task 1": 1, "task 2": 6, "task 3": 6, "task 4": 6,
                            "task 5": 1, "task 6": 1, "task 7": 2, "task 8": 1}, output
    # work was halted: started once (its qrexec_timeout read, then admin.vm.Start), nothing else through the API
    assert api == ["admin.vm.property.Get", "admin.vm.Start"]
    assert rig.dom0.client().list_vms("work")["work"].state == "Running"

    # again: nothing changes, the qube runs, no Admin API call at all
    results, output, calls, api = rig.play("work", tasks[2:6], pipelining=pipelining)
    assert [r["changed"] for r in results] == [False, False, False, False], output
    assert api == [] and len(calls) == len(QREXEC_LINE.findall(output))


def test_pipelining_makes_one_call_per_module(rig):
    inside = rig.work
    tasks = [{"ansible.builtin.command": "true"},
             {"ansible.builtin.file": {"path": f"{inside}/a", "state": "touch"}},
             {"ansible.builtin.stat": {"path": f"{inside}/a"}},
             {"ansible.builtin.shell": "exit 0"}]
    rig.dom0.client().start("work")
    _results, output, calls, api = rig.play("work", tasks, pipelining=True)
    assert len(calls) == 4 and api == [], output
    assert calls_per_task(output) == {f"task {index}": 1 for index in range(4)}
    _results, output, calls, _api = rig.play("work", tasks, pipelining=False)
    # without pipelining each module costs a temporary directory, the upload, and its run (with clean-up)
    assert len(calls) == len(QREXEC_LINE.findall(output)) and len(calls) >= 3 * 4, output


def test_the_inventory_plugin_hands_its_qubes_this_connection(rig):
    rig.dom0.client().start("personal")
    inventory = rig.tmp_path / "inventory.qubes.yml"
    inventory.write_text(yaml.safe_dump({"plugin": "corral.qubes.qubes", "connection": "corral.qubes.qrexec"}))
    results, output, calls, _api = rig.play("personal", [{"ansible.builtin.command": "echo hello"}],
                                            inventory=inventory)
    assert results[0]["stdout"] == "hello", output
    assert [c["target"] for c in calls] == ["personal"]


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root (runuser)")
def test_another_user_and_the_qube_variable(rig):
    rig.dom0.client().start("work")
    results, output, calls, _api = rig.play(
        "somehost", [{"ansible.builtin.command": "id -un"}],
        hostvars={"ansible_qrexec_qube": "work", "ansible_user": "nobody", "ansible_python_interpreter": "/usr/bin/python3"})
    assert results[0].get("stdout") == "nobody", output
    assert [(c["target"], c["user"]) for c in calls] == [("work", "nobody")]


def test_from_a_management_qube(rig):
    rig.fake.allow = ["qubes.VMRootShell:work"]
    results, output, calls, api = rig.play(
        "work", [{"ansible.builtin.command": "id -u"}, {"ansible.builtin.command": "echo again"}],
        hostvars={"ansible_qrexec_from": "vm"})
    assert [r["stdout"] for r in results] == ["0", "again"], output
    assert [(c["side"], c["service"], c["target"]) for c in calls if "service" in c] == [
        ("vm", "qubes.VMRootShell", "work")] * 2
    assert api == []  # dom0's qrexec started the target; the management qube made no Admin API call
    # refused by the policy: a clear error naming the qube and the service
    rig.fake.allow = []
    _results, output, _calls, api = rig.play("personal", [{"ansible.builtin.command": "true"}],
                                             hostvars={"ansible_qrexec_from": "vm"}, expect_rc=None)
    assert "UNREACHABLE" in output and "the qrexec policy refused qubes.VMRootShell from " in output
    assert "to the qube personal" in output and api == []


def unreachable(output: str, host: str) -> str:
    """The message of the host's unreachable result."""
    match = re.search(rf"fatal: \[{re.escape(host)}\]: UNREACHABLE! => (\{{.*?\}})\n", output, re.S)
    assert match, output
    return json.loads(match.group(1))["msg"]


def test_errors_name_the_qube(rig):
    client = rig.dom0.client()
    # a qube that does not exist: qubesd says so, nothing is started
    _r, output, calls, api = rig.play("ghost", [{"ansible.builtin.command": "true"}], expect_rc=None)
    assert "the qube ghost does not exist (No such domain: " in unreachable(output, "ghost")
    assert calls == [] and api == ["admin.vm.property.Get"]
    # dom0 as the target: refused before anything
    _r, output, calls, api = rig.play("dom0", [{"ansible.builtin.command": "true"}], expect_rc=None)
    assert "not to dom0: use Ansible's local connection" in unreachable(output, "dom0")
    assert calls == [] and api == []
    # a qube that cannot start: qubesd's error text
    client.feature_set("work", "prohibit-start", "under repair")
    _r, output, calls, api = rig.play("work", [{"ansible.builtin.command": "true"}], expect_rc=None)
    message = unreachable(output, "work")
    assert "the qube work did not start: QubesException: Qube start prohibited: under repair" in message
    assert calls == [] and api == ["admin.vm.property.Get", "admin.vm.Start"]


def test_a_qube_whose_qrexec_never_answers_times_out(dom0, tmp_path):
    rig = Rig(dom0, tmp_path, ignore=("personal",))
    try:
        dom0.client().property_set("personal", "qrexec_timeout", 1)
        _r, output, calls, api = rig.play("personal", [{"ansible.builtin.command": "true"}], expect_rc=None)
    finally:
        rig.close()
    assert "the qube personal started but its qrexec daemon" in unreachable(output, "personal")
    assert "within its qrexec_timeout of 1 s" in output
    assert calls == [] and api == ["admin.vm.property.Get", "admin.vm.Start"]


def test_admin_api_modules_refuse_this_connection(rig):
    """The collection's modules talk to qubesd, which is not inside a qube: refused, nothing run in the qube."""
    results, output, calls, api = rig.play("work", [{"corral.qubes.qube": {"name": "work", "label": "red"}}])
    assert results[0]["failed"] and "leads into the qube work, where there is no qubesd" in results[0]["msg"], output
    assert results[0]["msg"].startswith("corral.qubes.qube talks to qubesd")
    assert calls == [] and api == []
