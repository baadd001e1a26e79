# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.policy, the flow matrix and corral.qubes.clipboard_audit through ansible-playbook."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.corral.qubes.plugins.module_utils import client as client_mod
from ansible_collections.corral.qubes.plugins.module_utils import engine, policy, policy_client, policy_files
from harness import QREXEC_CLIENT
from playbook import Player, qube

SEED = {"secure": ["personal"], "personal": ["work"], "work": ["personal"], "untrusted": ["personal"]}
DOMAINS = ("secure", "personal", "work", "untrusted")
FLOWS = "{{ {'qubes.ClipboardPaste': matrix} | corral.qubes.flow_policy }}"


def write(name: str, **args) -> dict:
    """A corral.qubes.policy task."""
    return {"corral.qubes.policy": {"name": name, **args}}


def audit(matrix, **args) -> dict:
    """A corral.qubes.clipboard_audit task."""
    return {"corral.qubes.clipboard_audit": {"matrix": matrix, **args}}


@pytest.fixture
def admin(dom0, monkeypatch):
    """The policy admin API from dom0 (through the rehearsal's qrexec-client)."""
    monkeypatch.setenv("REHEARSAL_QREXEC_SOCKET", dom0.qrexec_socket)
    return policy_client.PolicyAdmin(client_mod.QrexecTransport.for_dom0(str(QREXEC_CLIENT)))


@pytest.fixture
def domains(dom0, player):
    """The article's four domains."""
    run = player.run([qube(name, label="red") for name in DOMAINS])
    assert not run.failed
    return DOMAINS


def snapshot(admin) -> dict:
    """Every policy file and its token."""
    files = {name: admin.get(name) for name in admin.list()}
    files.update({f"include/{name}": admin.include_get(name) for name in admin.include_list()})
    return files


def test_flow_matrix_written_checked_diffed_and_idempotent(dom0, player, admin, domains):
    task = dict(write("30-corral-flows", rules=FLOWS), vars={"matrix": SEED})
    before = snapshot(admin)
    checked = player.run([task], check=True, diff=True)[0]
    assert checked["changed"] and snapshot(admin) == before
    assert checked["diff"]["before"] == "" and "qubes.ClipboardPaste * secure personal allow\n" in \
        checked["diff"]["after"]
    assert checked["actions"] == [f"write policy file 30-corral-flows.policy ({1 + 12 + 4} lines)"]

    run = player.run([task, task])
    assert [r["changed"] for r in run.results] == [True, False]
    assert run[1]["policy_calls"] == 1  # an unchanged file is read alone, not the whole policy
    token, text = admin.get("30-corral-flows")
    assert text == run[0]["content"] and token == policy_files.token_of(text.encode())
    lines = text.splitlines()
    assert lines[0].startswith("# Managed by corral.qubes")
    assert "qubes.ClipboardPaste * secure work deny notify=no" in lines
    assert "qubes.ClipboardPaste * @adminvm personal deny notify=no" in lines
    policy.validate(text, "30-corral-flows.policy")
    assert "30-corral-flows" in admin.get_files("qubes.ClipboardPaste")

    report = player.run([audit(SEED)])[0]
    assert not report.get("failed") and report["undeclared"] == [] and report["blocked"] == []
    # One admin.vm.List, then properties and tags of the qubes the flows are about only, not of every qube.
    assert len(dom0.client().list_vms()) > len(DOMAINS) + 3
    assert report["api_calls"] == 1 + 2 * len(DOMAINS)
    # policy.GetFiles, then the files it names: not the whole policy directory.
    files = admin.get_files("qubes.ClipboardPaste")
    assert report["policy_calls"] == 1 + len(files) and len(files) < len(admin.list())
    pairs = {(flow["from"], flow["to"]): flow["allowed"] for flow in report["flows"]}
    assert len(pairs) == 12 + 4
    for source in DOMAINS:
        for target in DOMAINS:
            if source != target:
                assert pairs[source, target] == (target in SEED[source]), (source, target)
        assert pairs["dom0", source] is False

    # The rehearsal's GUI daemon stand-in obeys the written policy too.
    assert _paste(dom0, "secure", "personal") and not _paste(dom0, "personal", "secure")


def policy_services(dom0, mark: int) -> list[str]:
    """The policy admin services called since ``mark`` (an index into the qrexec call log)."""
    return [call["service"] for call in dom0.qrexec_calls()[mark:] if call.get("service", "").startswith("policy.")]


def test_dom0_reads_policy_files_itself_and_writes_them_through_the_api(dom0, player, admin, domains):
    env = {"CORRAL_POLICY_DIR": str(dom0.policy_dir)}
    task = dict(write("30-corral-flows", rules=FLOWS), vars={"matrix": SEED})
    mark = len(dom0.qrexec_calls())
    run = player.run([task, task], env=env)
    assert [r["changed"] for r in run.results] == [True, False]
    assert policy_services(dom0, mark) == ["policy.Replace"]  # the reads cost no qrexec call
    token, text = admin.get("30-corral-flows")
    assert text == run[0]["content"] and token == policy_files.token_of(text.encode())

    # an edit made by hand in dom0 is found, and replaced through the API with the token of what was read
    (dom0.policy_dir / "30-corral-flows.policy").write_text(text + "qubes.ClipboardPaste * work secure allow\n")
    mark = len(dom0.qrexec_calls())
    again = player.run([task], env=env, diff=True)[0]
    assert again["changed"] and "qubes.ClipboardPaste * work secure allow" in again["diff"]["before"]
    assert again["diff"]["after"] == text
    assert policy_services(dom0, mark) == ["policy.Replace"] and admin.get("30-corral-flows")[1] == text

    # the audit finds the files that decide the calls itself (those policy.GetFiles names), with no qrexec call
    mark = len(dom0.qrexec_calls())
    report = player.run([audit(SEED)], env=env)[0]
    assert not report.get("failed") and report["undeclared"] == [] and report["blocked"] == []
    assert policy_services(dom0, mark) == []
    files = admin.get_files("qubes.ClipboardPaste")
    # every file read from the directory (the whole policy parsed), none through the service
    assert report["policy_calls"] == len(admin.list()) + len(admin.include_list()) and len(files) < len(admin.list())


def _paste(dom0, source: str, target: str) -> bool:
    """Copy in ``source``, paste into ``target`` with the rehearsal's clipboard; whether the paste went through."""
    env = dom0.qube_env()
    base = [sys.executable, "-m", "rehearsal", "clipboard"]
    socket = ["--qrexec-socket", dom0.qrexec_socket]
    subprocess.run(base + ["copy", source, f"from {source}"] + socket, env=env, check=True, capture_output=True)
    pasted = subprocess.run(base + ["paste", target] + socket, env=env, check=False, capture_output=True, text=True)
    return pasted.returncode == 0 and f"from {source}" in pasted.stdout


def test_audit_fails_on_a_flow_the_matrix_does_not_declare(dom0, player, admin, domains):
    player.run([dict(write("30-corral-flows", rules=FLOWS), vars={"matrix": SEED})])
    admin.replace("20-shortcut", "qubes.ClipboardPaste * untrusted secure allow\n", "new")
    report = player.run([audit(SEED)])[0]
    assert report["failed"] and report["undeclared"] == [
        {"from": "untrusted", "to": "secure", "allowed": True, "declared": False,
         "why": "allow by 20-shortcut.policy:1"}]
    assert "untrusted -> secure (allow by 20-shortcut.policy:1)" in report["msg"]
    # Without the corral file, the defaults (ask, which counts as allow) let everything through.
    admin.remove("20-shortcut")
    player.run([write("30-corral-flows", state="absent")])
    open_report = player.run([audit(SEED)])[0]
    assert open_report["failed"] and len(open_report["undeclared"]) == 12 - 4 + 4
    # A declared flow the policy denies is a warning.
    admin.replace("20-tight", "qubes.ClipboardPaste * @anyvm @anyvm deny\nqubes.ClipboardPaste * @adminvm @anyvm deny\n",
                  "new")
    tight = player.run([audit(SEED)])[0]
    assert not tight.get("failed") and len(tight["blocked"]) == 4 and tight["warnings"]


def test_content_include_and_absent(dom0, player, admin):
    run = player.run([
        write("include/corral-updates", content="qubes.UpdatesProxy * @type:TemplateVM @default allow target=sys-net"),
        write("40-corral-updates", content="# templates\n!include include/corral-updates\n"),
        write("40-corral-updates", content="# templates\n!include include/corral-updates\n"),
        write("include/corral-updates", state="absent"),
        write("40-corral-updates", state="absent"),
        write("40-corral-updates", state="absent"),
        write("include/corral-updates", state="absent"),
    ])
    assert [r.get("changed") for r in run.results] == [True, True, False, False, True, False, True]
    assert run[3]["failed"] and "does not exist" in run[3]["msg"] and run[3]["field"] == "state"
    assert "40-corral-updates" not in admin.list() and "corral-updates" not in admin.include_list()


BAD = [
    # (task, field, words)
    (write("30-x", rules=[{"service": "qubes.ClipboardPaste", "source": "@anything", "target": "work",
                           "action": "allow"}]), "rules[0].source", "@anything"),
    (write("30-x", rules=[{"service": "qubes.Filecopy", "source": "work", "target": "personal", "action": "deny",
                           "redirect": "dom0"}]), "rules[0].redirect", "deny"),
    (write("30-x", rules=[{"service": "qubes.Filecopy", "source": "@default", "target": "personal",
                           "action": "allow"}]), "rules[0].source", "@default"),
    (write("30-x", rules=[{"service": "qubes.Filecopy", "source": "work", "target": "@default",
                           "action": "allow"}]), "rules[0].", "target="),
    (write("30-x", rules=[{"service": "qubes.Filecopy", "source": "work", "target": "personal",
                           "action": "allow", "notify": "maybe"}]), "rules[0].notify", "true/false"),
    (write("30-x", rules=[{"service": "qubes.Filecopy", "source": "work", "target": "personal",
                           "action": "allow", "expire": 5}]), "rules[0].expire", "unknown key"),
    (write("30-x", rules=[{"service": "qubes.Filecopy", "source": "work", "target": "@dispvm:@tag:x",
                           "action": "allow", "redirect": "@anyvm"}]), "rules[0].redirect", "@anyvm"),
    (write("30-x", rules=[{"service": "qubes Filecopy", "source": "work", "target": "personal",
                           "action": "allow"}]), "rules[0].service", "service"),
    (write("30-x", content="qubes.Filecopy * work personal allow\nqubes.Filecopy * work\n"), "content",
     "30-x.policy:2"),
    (write("30-x", content="qubes.Filecopy * work personal allow # why\n"), "content", "30-x.policy:1"),
    (write("30-x", content="!include include/nowhere\n"), "content", "does not exist"),
    (write("30-X", content=""), "name", "lowercase"),
    (write("30-x.policy", content=""), "name", "without the .policy suffix"),
    (write("corral", content=""), "name", "start a policy file's name with a number"),
    (write("30-x", content="", rules=[]), "rules", "either rules"),
    (write("30-x"), "rules", "either rules"),
    (write("include/admin-local-rwx", state="absent"), "state", "include"),
]


def test_bad_input_is_refused_with_file_line_and_field_and_nothing_is_written(dom0, player, admin):
    before = snapshot(admin)
    mark = dom0.mark()
    run = player.run([task for task, _field, _words in BAD])
    for (task, field, words), result in zip(BAD, run.results):
        assert result.get("failed"), (task, result)
        assert result["field"].startswith(field) and words in result["msg"], (task, result)
    assert snapshot(admin) == before
    assert dom0.writes_since(mark) == []


def test_a_concurrent_edit_is_detected_not_overwritten(dom0, admin):
    store = policy_files.ApiStore(admin)
    plan, _text = policy_files.plan_policy_file(store, {"name": "30-mine", "rules": [
        {"service": "qubes.Filecopy", "source": "work", "target": "personal", "action": "deny"}],
        "header": ""})
    admin.replace("30-mine", "qubes.Filecopy * work personal allow\n", "new")  # someone else, in between
    with pytest.raises(engine.ApplyError, match="changed by someone else"):
        plan.apply(None)
    assert admin.get("30-mine")[1] == "qubes.Filecopy * work personal allow\n"


def test_directory_store_writes_atomically(tmp_path, monkeypatch):
    directory = tmp_path / "policy.d"
    (directory / "include").mkdir(parents=True)
    (directory / "90-default.policy").write_text("qubes.Filecopy * @anyvm @anyvm ask\n")
    store = policy_files.DirectoryStore(str(directory))
    params = {"name": "30-flows", "rules": [{"service": "qubes.Filecopy", "source": "a", "target": "b",
                                             "action": "deny"}], "header": ""}
    plan, text = policy_files.plan_policy_file(store, params)
    plan.apply(None)
    assert (directory / "30-flows.policy").read_text() == text
    assert oct((directory / "30-flows.policy").stat().st_mode & 0o777) == "0o664"
    assert policy_files.plan_policy_file(store, params)[0].steps == []

    # Killed between writing and renaming: the old file stays whole and no temporary file is left.
    def interrupted(_src, _dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", interrupted)
    params["rules"][0]["action"] = "allow"
    plan, _text = policy_files.plan_policy_file(store, params)
    with pytest.raises(KeyboardInterrupt):
        plan.apply(None)
    monkeypatch.undo()
    assert (directory / "30-flows.policy").read_text() == text
    assert sorted(path.name for path in directory.iterdir()) == ["30-flows.policy", "90-default.policy", "include"]

    # A file changed behind the planner's back is not overwritten.
    plan, _text = policy_files.plan_policy_file(store, params)
    (directory / "30-flows.policy").write_text("qubes.Filecopy * a b ask\n")
    with pytest.raises(engine.ApplyError, match="changed by someone else"):
        plan.apply(None)


@pytest.mark.parametrize("release", ["4.3", "4.2"])
def test_dom0_audit_reads_the_runtime_policy_directory_of_r43_only(dom0_factory, tmp_path, release):
    """R4.3's qrexec also reads /run/qubes/policy.d (its file winning over one of the same name in
    /etc/qubes/policy.d); R4.2's does not. dom0's audit, which reads the files itself, sees what qrexec decides."""
    dom0 = dom0_factory(release=release)
    player = Player(dom0, tmp_path)
    env = {"CORRAL_POLICY_DIR": str(dom0.policy_dir), "CORRAL_RUNTIME_POLICY_DIR": str(dom0.runtime_policy_dir)}
    assert not player.run([qube(name, label="red") for name in DOMAINS]).failed
    player.run([dict(write("30-corral-flows", rules=FLOWS), vars={"matrix": SEED})], env=env)
    assert not player.run([audit(SEED)], env=env)[0].get("failed")
    assert _paste(dom0, "secure", "personal")
    # a transient rule, and a runtime copy of the flow file that lets personal paste into secure and secure no more
    # into personal
    dom0.runtime_policy_dir.mkdir(exist_ok=True)
    (dom0.runtime_policy_dir / "20-transient.policy").write_text("qubes.ClipboardPaste * untrusted work allow\n")
    flows = (dom0.policy_dir / "30-corral-flows.policy").read_text()
    (dom0.runtime_policy_dir / "30-corral-flows.policy").write_text(
        "qubes.ClipboardPaste * personal secure allow\nqubes.ClipboardPaste * secure personal deny\n" + flows)
    mark = len(dom0.qrexec_calls())
    report = player.run([audit(SEED)], env=env)[0]
    assert policy_services(dom0, mark) == []  # found without the policy admin service
    if release == "4.2":
        assert not report.get("failed") and report["undeclared"] == [] and report["blocked"] == [], report
        assert not _paste(dom0, "untrusted", "work") and not _paste(dom0, "personal", "secure")
        assert _paste(dom0, "secure", "personal")
        return
    assert report["failed"] and sorted((flow["from"], flow["to"], flow["why"]) for flow in report["undeclared"]) == [
        ("personal", "secure", "allow by 30-corral-flows.policy:1"), ("untrusted", "work", "allow by 20-transient.policy:1")]
    # the runtime copy of the flow file wins over the one in /etc/qubes/policy.d, which allows secure -> personal
    assert [(flow["from"], flow["to"]) for flow in report["blocked"]] == [("secure", "personal")]
    # the rehearsal's qrexec decides the same: the audit read what qrexec decides from
    assert _paste(dom0, "untrusted", "work") and _paste(dom0, "personal", "secure")
    assert not _paste(dom0, "secure", "personal")
