# SPDX-License-Identifier: GPL-3.0-or-later
"""The in-process path of the action plugins reports exactly what the module process reports.

Each play runs twice on two fresh rehearsal dom0s in the same state: once as it
comes (local connection: the task runs inside Ansible's process) and once with
a task environment (which sends every task to a module process). The
registered results are compared key by key.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from harness import XL
from playbook import ROOT, Player, prefs, qube

TEST_COLLECTIONS = pathlib.Path(__file__).resolve().parent / "collections"
COLLECTIONS = f"{ROOT / '.collections'}:{TEST_COLLECTIONS}"
MODULE_PROCESS = {"CORRAL_QUBES_TEST_PATH": "module process"}
SECRET = "pl4nted-S3cret-7f1c"
WORK = {"template": "fedora-42-xfce", "label": "blue"}
WHITELIST = {"name": "work", "policy": "whitelist", "rules": [{"action": "accept", "dsthost": "192.0.2.7", "proto": "tcp",
                                                              "dstports": 443}]}
FLOWS = {"name": "30-flows", "rules": [{"service": "qubes.ClipboardPaste", "source": "work",
                                        "target": "personal", "action": "deny"}]}


def firewall(**args) -> dict:
    return {"corral.qubes.firewall": args}


def policy(**args) -> dict:
    return {"corral.qubes.policy": args}


def audit(**args) -> dict:
    return {"corral.qubes.clipboard_audit": args}


def info(**args) -> dict:
    return {"corral.qubes.qube_info": args}


def devices(**args) -> dict:
    return {"corral.qubes.devices": args}


def hardware(**args) -> dict:
    return {"corral.qubes.hardware_check": {"xl_command": str(XL), **args}}


def template(**args) -> dict:
    return {"corral.qubes.template": args}


def os_install(**args) -> dict:
    return {"corral.qubes.os_install": args}


def layout_check(**args) -> dict:
    return {"corral.qubes.layout_check": args}


def attach(**args) -> dict:
    return {"corral.qubes.attach": args}


def layout(**args) -> dict:
    return {"corral.qubes.layout": args}


NIC = {"class": "pci", "device": "dom0:00_19.0"}
MAIL_FIREWALL = {"mail": {"policy": "whitelist", "rules": WHITELIST["rules"]}}
PROFILE = {"name": "t420s", "memory_mib": 16384, "cores": 2, "threads": 4, "vtx": True, "vtd": True}


# Every module: a change, the same again (no change), and each kind of bad input the argument spec or the
# task itself refuses, plus an alias warning.
CASES = [
    qube("work", **WORK),
    qube("work", **WORK),
    qube("personal", template="fedora-42-xfce", label="yellow", klass="AppVM", **{"class": "AppVM"}),
    qube("work", bogus=1),
    qube("work", state="gone"),
    qube("work", shutdown_if_needed="maybe"),
    {"corral.qubes.qube": {"label": "red"}},
    qube("work", label="chartreuse"),
    qube("work", netvm="no-such-netvm"),
    prefs(clockvm="sys-firewall"),
    prefs(clockvm="sys-firewall"),
    prefs(no_such_pref=1),
    {"corral.qubes.prefs": {}},
    firewall(**WHITELIST),
    firewall(**WHITELIST),
    firewall(name="work", rules=[{"action": "accept", "dsthost": "192.0.2.0/33"}]),
    firewall(name="work", policy="bogus"),
    firewall(name="work", qubes={"work": {"policy": "allow_all"}}),
    policy(**FLOWS),
    policy(**FLOWS),
    policy(name="30-flows", rules=[{"service": "qubes.ClipboardPaste", "source": "@default", "target": "work",
                                    "action": "deny"}]),
    policy(name="flows", content=""),
    policy(name="30-flows", rules=[], content="", unknown=True),
    audit(matrix={"work": [], "personal": []}),
    audit(matrix={"work": ["nobody"]}),
    audit(),
    info(names=["work"]),
    info(names=["missing"]),
    info(sections=["bogus"]),
    devices(name="work", devices=[NIC], classes=["pci"]),
    devices(name="work", devices=[NIC], classes=["pci"]),
    devices(name="work", devices=[{"class": "pci", "device": "dom0:99_99.9"}]),
    devices(name="work", devices=[dict(NIC, mode="sometimes")]),
    hardware(profile=PROFILE),
    hardware(profile=PROFILE, layout={"big": {"properties": {"memory": 64000, "autostart": True}}}),
    hardware(profile=PROFILE, xl_command=7, unknown=1),
    template(names=["debian-12-minimal"]),
    template(names=["debian-12-minimal"]),
    template(names=["fedora-42-xfec"]),
    template(names=["fedora-42-xfce"], state="absent"),
    template(names=["debian-12-minimal"], state="gone"),
    layout_check(layout={"work": {"label": "blue"}}, network={"work": "allow_all"}),
    layout_check(layout={"work": {"lable": "blue"}}, tasks=[{"domain": "wrok"}]),
    layout_check(layout=[], prune="maybe"),
    os_install(name="work", answer_file="<unattend/>", state="status"),
    os_install(name="work", answer_file="<unattend/>", state="status"),
    os_install(name="no-such-qube", answer_file="<unattend/>", state="status"),
    os_install(name="work", answer_file="<unattend/>", state="gone"),
    os_install(name="work"),
    layout(qubes={"mail": {"label": "blue", "netvm": ""}}, prefs={"clockvm": "sys-net"}, firewall=MAIL_FIREWALL),
    layout(qubes={"mail": {"label": "blue", "netvm": ""}}, prefs={"clockvm": "sys-net"}, firewall=MAIL_FIREWALL),
    layout(qubes={"mail": {"label": "blue"}}, devices={"mail": [dict(NIC, mode="sometimes")]}),
    layout(templates=[{"names": ["debian-12-minimal"], "state": "gone"}]),
    layout(policies=[{"rules": []}], audits=[{"matrix": {"work": []}, "bogus": 1}]),
    attach(name="work", device="sys-net:loop0", state="detached"),
    attach(name="work", device="work:loop0"),
    attach(name="work", device="sys-firewall"),
    attach(name="work", device="sys-net:loop0", options={"read-only": True}),
    attach(name="work", device="sys-firewall:loop0", **{"class": "usb"}),
    {"corral.qubes.qube": {"qubes": {"notes": {"label": "black", "netvm": ""}, "work": WORK}}},
    {"corral.qubes.qube": {"qubes": {"notes": {"label": "black", "netvm": ""}, "work": WORK}}},
    {"corral.qubes.qube": {"qubes": {"notes": {"label": "no-such-colour"}}}},
]

# A qubesd (and policy admin service) whose every reply is unreadable: an unexpected exception in each module.
GARBLED = [qube("work", **WORK), prefs(clockvm="sys-firewall"), firewall(**WHITELIST), policy(**FLOWS),
           audit(matrix={"work": []}), info(), devices(name="work", devices=[NIC]), hardware(profile=PROFILE),
           template(names=["debian-12-minimal"]), layout_check(layout={"work": {}}),
           os_install(name="work", answer_file="<unattend/>", state="status"),
           attach(name="work", device="sys-net:loop0", state="detached"), layout(qubes={"work": WORK})]


@pytest.fixture
def both_ways(dom0_factory, tmp_path):
    """Run a play in-process and as module processes, on two fresh dom0s; return both runs."""

    def run(tasks, extra_args=(), env=None, options=(), **kwargs):
        runs = []
        for way in ("in-process", "module"):
            directory = tmp_path / way
            directory.mkdir(exist_ok=True)
            dom0 = dom0_factory(name=way, extra_args=extra_args)
            tasks_of_way = tasks if way == "in-process" else [dict(task, environment=MODULE_PROCESS) for task in tasks]
            environment = {"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS, "ANSIBLE_REMOTE_TMP": str(directory / "remote-tmp"),
                           **(env or {})}
            runs.append(Player(dom0, directory).run(tasks_of_way, expect_rc=None, env=environment,
                                                    options=options, **kwargs))
        return runs

    return run


def unordered(result: dict) -> dict:
    """The result with what differs by chance made equal: Ansible's list of boolean words (a set, printed in each
    process's hash order) sorted, and the qubes' random UUIDs (each dom0 makes its own) replaced."""
    def sort_words(match):
        return match.group(1) + ", ".join(sorted(match.group(2).split(", ")))
    if isinstance(result.get("exception"), str):
        if "in run_guarded" in result["exception"]:
            # the task's own traceback: the same frames, from the checkout or from the module's payload; what
            # ansible-core chains after it names an action or a module failure
            own = result["exception"].split("\n\nThe above ", 1)[0]
            result = dict(result, exception=re.sub(r'File "[^"]*?/ansible_collections/', 'File "', own))
        else:
            # a failure the task reported itself has no traceback of its own; ansible-core 2.19 shows the stack of
            # the module's exit (module) or says it has none (in-process)
            result = dict(result, exception="<no traceback of the task>")
    text = re.sub(r"(Valid booleans include: )([^\"]*)", sort_words, json.dumps(result))
    return json.loads(re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text))


def assert_same(in_process, module):
    """Equal results, task by task and key by key, with a readable message when not."""
    assert len(in_process.results) == len(module.results)
    for index, (mine, theirs) in enumerate(zip(in_process.results, module.results)):
        mine, theirs = unordered(mine), unordered(theirs)
        for key in sorted(set(mine) | set(theirs)):
            assert mine.get(key, "<missing>") == theirs.get(key, "<missing>"), (
                f"task {index}, key {key!r}:\n in-process: {json.dumps(mine.get(key, '<missing>'))}\n"
                f" module:     {json.dumps(theirs.get(key, '<missing>'))}")


def test_every_module_reports_the_same_both_ways(both_ways):
    in_process, module = both_ways(CASES, diff=True)
    assert_same(in_process, module)
    results = in_process.results
    # the cases are what they say: changes, no-ops, refusals
    assert [results[i]["changed"] for i in (0, 1, 9, 10, 13, 14, 18, 19)] == [True, False] * 4
    assert results[0]["diff"]["after"]["label"] == "blue"
    assert results[2]["warnings"] == ["Both option class and its alias klass are set."]
    assert results[3]["msg"].startswith("Unsupported parameters for (corral.qubes.qube) module: bogus.")
    assert results[22]["msg"].startswith("Unsupported parameters for (corral.qubes.policy) module: unknown.")
    assert "value of state must be one of" in results[4]["msg"]
    assert "shutdown_if_needed" in results[5]["msg"] and "bool" in results[5]["msg"]
    assert results[6]["field"] == "name" and "give either name" in results[6]["msg"]
    # the qubes option: many qubes in one task, then nothing to do, then bad input naming the qube
    batch = results[-3:]
    assert [batch[i]["changed"] for i in (0, 1)] == [True, False]
    assert [d["before_header"] for d in batch[0]["diff"]] == ["notes"]  # work is as WORK wants it already
    assert batch[2]["failed"] and batch[2]["field"] == "qubes.notes.label"
    assert results[7]["field"] == "label" and results[8]["field"] == "netvm"
    failed = {i for i, result in enumerate(results) if result.get("failed")}
    assert {3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 24, 25, 27, 28} <= failed
    assert {0, 1, 2, 9, 10, 13, 14, 18, 19, 26, 29, 30, 33, 36, 37}.isdisjoint(failed)
    assert {31, 32, 34, 35} <= failed
    assert [results[i]["changed"] for i in (29, 30, 36, 37)] == [True, False, True, False]
    assert {38, 39, 40} <= failed and "fedora-42-xfce" in results[38]["msg"]  # the close name suggested
    assert 41 not in failed and {42, 43} <= failed
    assert [problem["path"] for problem in results[42]["problems"]] == ["qubes_layout.work.lable", "qubes_tasks[0].domain"]
    attach_cases = results[-8:-3]
    assert not attach_cases[0].get("failed") and not attach_cases[0]["changed"]  # a halted qube has nothing attached
    assert [result.get("field") for result in attach_cases[1:]] == ["device", "device", "name", None]
    assert all(result["failed"] for result in attach_cases[1:])
    # a layout in one task: a change, nothing to do, a bad step named from the task's options, bad entries
    layout_cases = results[49:54]
    assert [layout_cases[i]["changed"] for i in (0, 1)] == [True, False]
    assert set(layout_cases[0]["steps"]) == {"qubes", "prefs", "firewall"}
    assert all(result["failed"] for result in layout_cases[2:])
    assert layout_cases[2]["field"].startswith("devices.mail"), layout_cases[2]
    # the module path really ran as a module process, and the in-process path did not
    assert "AnsiballZ_qube" not in in_process.output


def test_every_module_is_compared():
    # every module that can run as a module process (role_arguments cannot: it needs the task's variables, so its
    # action plugin is all of it)
    modules = {path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if "def main(" in path.read_text()}
    assert "qube" in modules and "role_arguments" not in modules
    compared = {next(iter(task)).rsplit(".", 1)[1] for task in CASES}
    garbled = {next(iter(task)).rsplit(".", 1)[1] for task in GARBLED}
    assert compared == modules and garbled == modules


def test_check_mode_reports_the_same_both_ways(both_ways):
    in_process, module = both_ways(CASES, check=True, diff=True)
    assert_same(in_process, module)
    assert in_process[0]["changed"] and in_process[0]["diff"]["before"] == {"name": "work", "state": "absent"}
    assert in_process[1]["changed"]  # nothing was created: the same plan again


def test_an_unexpected_exception_is_a_failure_with_its_traceback(both_ways):
    # DISPLAY_TRACEBACK for ansible-core 2.19 and later, -vvv before: where Ansible shows a module's traceback
    in_process, module = both_ways(GARBLED, extra_args=["--fault", "*:1+:garble"], options=("-vvv",),
                                   env={"ANSIBLE_DISPLAY_TRACEBACK": "error"})
    assert_same(in_process, module)
    for run in (in_process, module):
        assert all(result["failed"] for result in run.results), run.output
        assert run[0]["msg"].startswith("corral.qubes.qube failed unexpectedly: UnicodeDecodeError: ")
        assert run[3]["msg"].startswith("corral.qubes.policy failed unexpectedly: UnicodeDecodeError: ")
        assert "Traceback (most recent call last)" in run[0]["exception"]
        assert run.output.count("failed unexpectedly: UnicodeDecodeError") >= 7
        assert "line " in run.output and "in run_guarded" in run.output  # the traceback, shown


def test_no_log_values_are_masked_everywhere_both_ways(both_ways):
    tasks = [
        {"corral_test.probe.echo": {"name": "alice", "secret": SECRET}},
        {"corral_test.probe.echo": {"name": "bob", "passphrase": SECRET}},
        {"corral_test.probe.echo": {"name": "carol", "secret": SECRET, "fail": True}},
        {"corral_test.probe.echo": {"name": "dave", "secret": SECRET, "bogus": SECRET}},
    ]
    for check in (False, True):
        in_process, module = both_ways(tasks, check=check, diff=True, options=("-vvv",))
        assert_same(in_process, module)
        for run in (in_process, module):
            assert SECRET not in run.output and SECRET not in json.dumps(run.results)
            assert run[0]["said"] == "alice knows ********"
            # a value that is the secret is replaced whole, a text that contains it has it starred out
            masked = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
            assert run[0]["nested"] == {"list": [masked, {"deeper": masked}]}
            assert run[0]["warnings"] == ["a warning that names the secret ********"]
            assert run[1]["said"] == "bob knows ********"
            assert run[2]["failed"] and run[2]["msg"] == "failed holding ********"
            assert run[3]["failed"] and "bogus" in run[3]["msg"]
            assert f'"secret": "{masked}"' in run.output  # the invocation, masked
        assert "AnsiballZ_echo" in module.output and "AnsiballZ_echo" not in in_process.output


def test_the_module_path_leaves_no_temporary_files(dom0, tmp_path):
    remote_tmp = tmp_path / "remote-tmp"
    run = Player(dom0, tmp_path).run(
        [dict(qube("work", **WORK), environment=MODULE_PROCESS), dict(prefs(clockvm="nope"), environment=MODULE_PROCESS)],
        env={"ANSIBLE_REMOTE_TMP": str(remote_tmp)}, expect_rc=None)
    assert run[0]["changed"] and run[1]["failed"]
    assert remote_tmp.is_dir() and list(remote_tmp.iterdir()) == []


def test_async_tasks_run_as_modules(dom0, tmp_path):
    task = dict(qube("work", **WORK), **{"async": 60, "poll": 1})
    run = Player(dom0, tmp_path).run([task, dict(task, name="again")])
    assert run[0]["changed"] and run[0]["finished"] and run[0]["qube"]["label"] == "blue"
    assert not run[1]["changed"] and run[1]["finished"]
    assert dom0.client().property_get("work", "label").value == "blue"


def test_a_connection_into_a_qube_is_refused_unless_it_reaches_the_admin_api(dom0, tmp_path):
    into_qube = {"connection": "corral_test.probe.qrexec"}
    mark = dom0.mark()
    run = Player(dom0, tmp_path).run(
        [dict(qube("work", **WORK), **into_qube),
         dict(info(), **into_qube),
         dict(qube("work", **WORK), **into_qube, vars={"corral_qubes_admin_host": True})],
        env={"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS}, expect_rc=None)
    for result in run.results[:2]:
        assert result["failed"] and "leads into the qube localhost, where there is no qubesd" in result["msg"]
        assert "delegate_to" in result["msg"] and "corral_qubes_admin_host: true" in result["msg"]
    assert run.results[0]["msg"].startswith("corral.qubes.qube talks to qubesd")
    assert dom0.calls_since(mark)[:1] == [] or run[2]["changed"]
    # declared as reaching the Admin API (a management qube): the module runs through that connection
    assert run[2]["changed"] and not run[2].get("failed")
    assert dom0.client().property_get("work", "label").value == "blue"


@pytest.mark.parametrize("way", ["in-process", "module"])
def test_module_defaults_for_the_admin_api_group(dom0, tmp_path, way):
    env = {"QUBESD_SOCKET": None}  # only module_defaults says where qubesd is
    tasks = [qube("work", **WORK), prefs(clockvm="sys-firewall"), firewall(**WHITELIST), info(names=["work"]),
             audit(matrix={"work": []}, domains=["work"])]
    if way == "module":
        tasks = [dict(task, environment=MODULE_PROCESS) for task in tasks]
    run = Player(dom0, tmp_path).run(tasks, env=env, expect_rc=None, play={
        "module_defaults": {"group/corral.qubes.admin_api": {"qubesd_socket": dom0.socket}}})
    assert [result.get("failed", False) for result in run.results[:4]] == [False] * 4, run.output
    assert run[0]["changed"] and run[1]["changed"] and run[2]["changed"]
    assert run[3]["qubes"]["work"]["label"] == "blue"
    # the audit read the qubes through the socket module_defaults named (and found dom0 -> work allowed)
    assert run[4]["api_calls"] > 0 and [flow["from"] for flow in run[4]["undeclared"]] == ["dom0"]
