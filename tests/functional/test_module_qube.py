# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.qube through ansible-playbook against a fresh rehearsal dom0."""

from __future__ import annotations

import pytest

from playbook import qube

GiB = 1024 ** 3

WORK = qube("work", label="blue", netvm="sys-firewall", state="running",
            properties={"memory": 800, "maxmem": "4000", "vcpus": 1, "autostart": "yes"},
            features={"gui": True, "video-model": "cirrus", "answer": 42, "off": False},
            services={"cups": False, "crond": True},
            tags=["managed", "work"], volumes={"private": "4GiB"})


def test_create_everything_then_nothing_to_do(dom0, player):
    mark = dom0.mark()
    run = player.run([WORK], diff=True)
    result = run[0]
    assert result["changed"] and not result.get("failed"), result
    assert result["actions"][0] == "create AppVM work from template fedora-42-xfce"
    assert result["actions"][-1] == "start work"
    assert result["diff"]["before"] == {"name": "work", "state": "absent"}
    summary = {"name": "work", "class": "AppVM", "state": "running", "label": "blue",
               "template": "fedora-42-xfce", "netvm": "sys-firewall"}
    assert result["qube"] == summary
    assert result["diff"]["after"]["features"] == {"gui": "1", "video-model": "cirrus", "answer": "42", "off": "",
                                                   "service.cups": "", "service.crond": "1"}

    client = dom0.client()
    props = client.property_get_all("work")
    assert (props["memory"].value, props["memory"].is_default) == ("800", False)
    assert props["maxmem"].value == "4000" and props["vcpus"].value == "1" and props["autostart"].value == "True"
    assert (props["netvm"].value, props["netvm"].is_default) == ("sys-firewall", False)
    assert props["label"].value == "blue" and props["template"].value == "fedora-42-xfce"
    assert client.feature_get("work", "answer") == "42"
    assert client.feature_get("work", "off") == ""
    assert client.feature_get("work", "service.crond") == "1"
    assert set(client.tag_list("work")) >= {"managed", "work", "created-by-dom0"}
    assert client.volume_info("work", "private")["size"] == 4 * GiB
    assert client.list_vms("work")["work"].state == "Running"
    assert len(dom0.writes_since(mark)) == len(result["actions"])  # one write per step, no more

    mark = dom0.mark()
    again = player.run([WORK], diff=True)
    assert again.changed == 0 and again[0]["actions"] == [] and "diff" not in again[0]
    assert again[0]["qube"] == summary
    assert dom0.writes_since(mark) == []
    reads = [call["method"] for call in dom0.calls_since(mark)]
    assert "admin.vm.property.Get" not in reads  # properties come from one GetAll
    assert reads.count("admin.vm.property.GetAll") <= 3


def test_check_mode_reports_and_changes_nothing(dom0, player):
    mark = dom0.mark()
    run = player.run([WORK, qube("sys-firewall", properties={"memory": 1000}, state="running")],
                     check=True, diff=True)
    assert run[0]["changed"] and run[1]["changed"]
    assert run[0]["diff"]["after"]["state"] == "running"
    assert run[1]["diff"] == {"before": {"name": "sys-firewall", "state": "halted", "properties": {"memory": "400 (default)"}},
                              "after": {"name": "sys-firewall", "state": "running", "properties": {"memory": "1000"}}}
    assert run[1]["actions"] == ["set sys-firewall memory = '1000'", "start sys-firewall"]
    assert dom0.writes_since(mark) == []
    assert "work" not in dom0.client().list_vms()
    assert "--- before" in run.output and "+++ after" in run.output


def test_power_states(dom0, player):
    steps = [("running", "Running", ["create AppVM p from template fedora-42-xfce", "start p"]),
             ("paused", "Paused", ["pause p"]),
             ("running", "Running", ["unpause p"]),
             ("paused", "Paused", ["pause p"]),
             ("halted", "Halted", ["unpause p", "shut down p"]),
             ("paused", "Paused", ["start p", "pause p"]),
             ("killed", "Halted", ["kill p"]),
             ("running", "Running", ["start p"]),
             ("killed", "Halted", ["kill p"]),
             ("present", "Halted", [])]
    for state, power, actions in steps:
        run = player.run([qube("p", label="red", state=state), qube("p", label="red", state=state)])
        assert run[0]["actions"] == actions, (state, run[0])
        assert run[1]["changed"] is False, (state, run[1])
        assert dom0.client().list_vms("p")["p"].state == power
    mark = dom0.mark()
    run = player.run([qube("p", state="running"), qube("p", state="absent"), qube("p", state="absent")])
    assert run[1]["actions"] == ["kill p", "remove p"] and run[2]["changed"] is False
    assert "qube" not in run[1] and "qube" not in run[2]
    assert [c["method"] for c in dom0.writes_since(mark)] == ["admin.vm.Start", "admin.vm.Kill", "admin.vm.Remove"]
    assert "p" not in dom0.client().list_vms()


def test_property_reset_and_explicit_defaults(dom0, player):
    run = player.run([qube("q", label="green"),
                      qube("q", properties={"memory": 400}),     # same value as the default, now explicit
                      qube("q", properties={"memory": 400}),
                      qube("q", properties={"memory": "*default*"}),
                      qube("q", properties={"memory": "*default*"}),
                      qube("q", netvm=""),                       # no network
                      qube("q", netvm=""),
                      qube("q", netvm="*default*"),
                      qube("q", properties={"virt_mode": "HVM", "kernel": ""}),
                      qube("q", properties={"virt_mode": "hvm", "kernel": ""}),
                      qube("q", label="purple", qubesd_socket=dom0.socket),
                      qube("q", label="purple", pool="varlibqubes")], diff=True)
    assert [r["changed"] for r in run.results] == [True, True, False, True, False, True, False, True, True, False,
                                                   True, False]
    assert run[3]["diff"] == {"before": {"name": "q", "state": "halted", "properties": {"memory": "400"}},
                              "after": {"name": "q", "state": "halted", "properties": {"memory": "(default)"}}}
    props = dom0.client().property_get_all("q")
    assert props["memory"].is_default and props["netvm"].is_default and props["netvm"].value == "sys-firewall"
    assert props["virt_mode"].value == "hvm" and props["kernel"].value == "" and not props["kernel"].is_default


def test_features_services_and_tags(dom0, player):
    client = dom0.client()
    run = player.run([
        qube("t", label="red", features={"a": "x", "b": 1.5}, services={"s": True}, tags=["one", "two"]),
        qube("t", features={"a": None, "b": "1.5"}, services={"s": None}, tags=["two", "three"]),
        qube("t", features={"a": None}, services={"s": None}, tags=["two", "three"]),
        qube("t", tags=["four"], tags_mode="add"),
        qube("t", tags=["four"], tags_mode="add"),
        qube("t", tags=[]),
    ])
    assert [r["changed"] for r in run.results] == [True, True, False, True, False, True]
    assert sorted(run[1]["actions"]) == sorted(["remove feature a of t", "remove feature service.s of t",
                                                "add tag three to t", "remove tag one from t"])
    assert client.feature_list("t") == ["b"]
    tags = client.tag_list("t")
    assert "created-by-dom0" in tags and "guivm-dom0" in tags
    assert not {"one", "two", "three", "four"} & set(tags)


def test_volumes_grow_only(dom0, player):
    run = player.run([qube("v", label="red", volumes={"private": "3GiB", "volatile": 12 * GiB}),
                      qube("v", volumes={"private": 3 * GiB}),
                      qube("v", volumes={"private": "3221225472"}),
                      qube("v", volumes={"private": "5g"})])
    assert [r["changed"] for r in run.results] == [True, False, False, True]
    assert run[3]["actions"] == ["grow v private volume from 3GiB to 5GiB"]
    assert dom0.client().volume_info("v", "private")["size"] == 5 * GiB
    assert dom0.client().volume_info("v", "volatile")["size"] == 12 * GiB


def test_classes_clone_pool_and_template_based_standalone(dom0, player):
    client = dom0.client()
    run = player.run([
        qube("win7", **{"class": "StandaloneVM"}, label="blue", netvm="",
             properties={"virt_mode": "hvm", "kernel": "", "memory": 4096, "maxmem": 0},
             volumes={"root": "60GiB"}),
        qube("bsd", **{"class": "StandaloneVM"}, template="fedora-42-xfce", label="purple",
             properties={"memory": 1024}),
        qube("tpl", **{"class": "TemplateVM"}, label="black", pool="varlibqubes"),
        qube("dvm", label="red", template="tpl", properties={"template_for_dispvms": True}),
        qube("disp", **{"class": "DispVM"}, label="red", template="dvm"),
        qube("dvm2", clone_from="dvm", label="orange", tags=["cloned"]),
        qube("bsd", **{"class": "StandaloneVM"}, template="debian-13-xfce", label="purple",
             properties={"memory": 1024}),
    ])
    assert not run.failed, run.results
    assert [r["changed"] for r in run.results] == [True, True, True, True, True, True, False]
    vms = client.list_vms()
    assert {name: vms[name].klass for name in ("win7", "bsd", "tpl", "dvm", "disp", "dvm2")} == {
        "win7": "StandaloneVM", "bsd": "StandaloneVM", "tpl": "TemplateVM", "dvm": "AppVM", "disp": "DispVM",
        "dvm2": "AppVM"}
    assert client.volume_info("win7", "root")["size"] == 60 * GiB
    fedora_root = client.volume_info("fedora-42-xfce", "root")
    assert client.volume_info("bsd", "root")["size"] == fedora_root["size"]
    assert client.feature_list("bsd") == client.feature_list("fedora-42-xfce")
    assert client.property_get("disp", "template").value == "dvm"
    dvm2 = client.property_get_all("dvm2")
    assert dvm2["template"].value == "tpl" and dvm2["label"].value == "orange"
    assert dvm2["template_for_dispvms"].value == "True"
    assert "cloned" in client.tag_list("dvm2")
    assert client.volume_info("tpl", "private")["pool"] == "varlibqubes"


def test_shutdown_if_needed(dom0, player):
    run = player.run([qube("s", label="red", state="running")])
    mark = dom0.mark()
    refused = player.run([qube("s", template="debian-13-xfce", properties={"memory": 600})])
    assert refused[0]["failed"] and refused[0]["field"] == "shutdown_if_needed"
    assert "needs it halted" in refused[0]["msg"]
    assert dom0.writes_since(mark) == []
    run = player.run([qube("s", template="debian-13-xfce", shutdown_if_needed=True),
                      qube("s", template="debian-13-xfce", shutdown_if_needed=True)])
    assert run[0]["actions"] == ["shut down s", "set s template = 'debian-13-xfce'", "start s"]
    assert run[1]["changed"] is False
    client = dom0.client()
    assert client.property_get("s", "template").value == "debian-13-xfce"
    assert client.list_vms("s")["s"].state == "Running"
    run = player.run([qube("s", properties={"vcpus": 1}, template="fedora-42-xfce", state="halted")])
    assert run[0]["actions"] == ["shut down s", "set s template = 'fedora-42-xfce'", "set s vcpus = '1'"]


BAD_INPUT = [
    (qube("work", label="blue", properties={"memory": 800, "no_such_thing": 1}), "properties.no_such_thing",
     "AppVM has no property 'no_such_thing'"),
    (qube("work", label="blue", properties={"memory": "lots"}), "properties.memory", "expected an integer"),
    (qube("work", label="blue", properties={"memory": 0}), "properties.memory", "greater than 0"),
    (qube("work", label="blue", properties={"debug": "maybe"}), "properties.debug", "expected a boolean"),
    (qube("work", label="blue", properties={"virt_mode": "kvm"}), "properties.virt_mode", "one of pv, pvh, hvm"),
    (qube("work", label="blue", properties={"qid": 5}), "properties.qid", "set by qubesd"),
    (qube("work", label="pink"), "label", "unknown label 'pink'"),
    (qube("work"), "label", "a new qube needs a label"),
    (qube("work", label="blue", template="fedora-99"), "template", "no qube named 'fedora-99'"),
    (qube("work", label="blue", template="sys-net"), "template", "an AppVM needs a TemplateVM"),
    (qube("work", label="blue", netvm="default-dvm"), "netvm", "does not provide network"),
    (qube("work", label="blue", netvm="nowhere"), "netvm", "no qube named 'nowhere'"),
    (qube("sys-net", netvm="sys-firewall"), "netvm", "network loop"),
    (qube("sys-firewall", netvm="sys-firewall"), "netvm", "cannot be its own netvm"),
    (qube("1work", label="blue"), "name", "not a valid qube name"),
    (qube("a" * 32, label="blue"), "name", "shorter than 32"),
    (qube("sys-net", volumes={"private": "1GiB"}), "volumes.private", "only grow"),
    (qube("sys-net", volumes={"private": "lots"}), "volumes.private", "cannot read 'lots' as a size"),
    (qube("sys-net", volumes={"root": "20GiB"}), "volumes.root", "follows its template"),
    (qube("sys-net", **{"class": "StandaloneVM"}), "class", "cannot be changed"),
    (qube("sys-net", pool="no-pool"), "pool", "no storage pool named 'no-pool'"),
    (qube("sys-net", pool={"private": "linux-kernel"}), "pool", "chosen only when a qube is created"),
    (qube("sys-net", label="*default*"), "label", "has no default"),
    (qube("sys-firewall", template="*default*"), "template", "cannot be reset"),
    (qube("sys-net", tags=["ok", "not ok"]), "tags[1]", "invalid tag"),
    (qube("sys-net", tags=["created-by-me"]), "tags[0]", "set by qubesd"),
    (qube("sys-net", features={"bad name": 1}), "features.bad name", "invalid feature name"),
    (qube("sys-net", features={"x": "tab\there"}), "features.x", "printable ASCII"),
    (qube("sys-net", services={"cups": "on"}), "services.cups", "true, false or null"),
    (qube("sys-net", label="blue", properties={"label": "red"}), "label", "keep one"),
    (qube("sys-firewall", state="absent"), "state", "cannot be removed while"),
    (qube("sys-net", state="halted"), "state", "provides network to running sys-firewall:"),
    (qube("copy", clone_from="missing"), "clone_from", "no qube named 'missing'"),
    (qube("copy", clone_from="sys-net", **{"class": "TemplateVM"}), "class", "keeps the class"),
    (qube("disp", label="red", **{"class": "DispVM"}, template="fedora-42-xfce"), "template",
     "template_for_dispvms"),
]


@pytest.mark.parametrize("chunk", range(0, len(BAD_INPUT), 11))
def test_bad_input_fails_before_any_change(dom0, player, chunk):
    player.run([qube("unrelated", label="red", state="running")])  # sys-firewall and sys-net run for it
    cases = BAD_INPUT[chunk:chunk + 11]
    before = dom0.client().list_vms()
    mark = dom0.mark()
    run = player.run([task for task, _field, _text in cases])
    for (task, field, text), result in zip(cases, run.results):
        assert result.get("failed"), (task, result)
        assert result["field"] == field, (task, result)
        assert text in result["msg"], (task, result["msg"])
        assert result["changed"] is False
    assert dom0.writes_since(mark) == [], "bad input made a mutating call"
    assert dom0.client().list_vms() == before


def test_a_failing_step_reports_what_was_done(dom0_factory, player):
    dom0 = dom0_factory(extra_args=["--fault", "admin.vm.feature.Set:2:fail"], name="faulty")
    player.dom0 = dom0
    run = player.run([qube("f", label="red", features={"a": "1", "b": "2", "c": "3"})])
    result = run[0]
    assert result["failed"] and result["changed"] is True
    assert result["actions_done"] == ["create AppVM f from template fedora-42-xfce", "set feature a of f = '1'"]
    assert "set feature b of f = '2' failed" in result["msg"]
    again = player.run([qube("f", label="red", features={"a": "1", "b": "2", "c": "3"})])
    assert again[0]["actions"] == ["set feature b of f = '2'", "set feature c of f = '3'"]


def test_running_qube_moving_to_a_halted_netvm_starts_it_first(dom0, player):
    run = player.run([qube("net2", label="red", properties={"provides_network": True}, netvm="sys-firewall"),
                      qube("r", label="red", state="running")])
    checked = player.run([qube("r", netvm="net2")], check=True)
    assert checked[0]["actions"] == ["start net2, the new netvm of running r", "set r netvm = 'net2'"]
    run = player.run([qube("r", netvm="net2"), qube("r", netvm="net2")])
    assert not run.failed and run[1]["changed"] is False
    client = dom0.client()
    assert client.property_get("r", "netvm").value == "net2"
    assert client.list_vms("net2")["net2"].state == "Running"
    moved_back = player.run([qube("r", netvm="sys-firewall"), qube("net2", state="halted")])
    assert not moved_back.failed and client.list_vms("net2")["net2"].state == "Halted"
    halted = player.run([qube("r", netvm="net2", state="halted")])  # net2 is halted again: stop r first
    assert halted[0]["actions"] == ["shut down r", "set r netvm = 'net2'"]


def test_running_qube_reset_to_a_halted_default_netvm_starts_it_first(dom0, player):
    # r runs behind sys-net, so sys-firewall (the default netvm) is still halted.
    run = player.run([qube("r", label="red", netvm="sys-net", state="running")])
    client = dom0.client()
    assert not run.failed and client.list_vms("sys-firewall")["sys-firewall"].state == "Halted"
    checked = player.run([qube("r", netvm="*default*")], check=True)
    assert checked[0]["actions"] == ["start sys-firewall, the new netvm of running r", "reset r netvm to its default"]
    run = player.run([qube("r", netvm="*default*"), qube("r", netvm="*default*")])
    assert not run.failed and [r["changed"] for r in run.results] == [True, False]
    netvm = client.property_get("r", "netvm")
    assert (netvm.value, netvm.is_default) == ("sys-firewall", True)


def test_release_42_dom0(dom0_factory, player):
    dom0 = dom0_factory(release="4.2", name="r42")
    player.dom0 = dom0
    mark = dom0.mark()
    run = player.run([qube("my.qube", label="red"),
                      qube("work", label="red", properties={"bootmode": "default"}),
                      qube("work", label="red", template="fedora-41-xfce", properties={"memory": 500},
                           state="running"),
                      qube("work", label="red", template="fedora-41-xfce", properties={"memory": 500},
                           state="running")])
    assert run[0]["field"] == "name" and "R4.2" in run[0]["msg"]
    assert run[1]["field"] == "properties.bootmode"
    assert [c["method"] for c in dom0.writes_since(mark)][:1] == ["admin.vm.Create.AppVM"]
    assert run[2]["changed"] and run[3]["changed"] is False
    assert dom0.client().list_vms("work")["work"].state == "Running"


def test_unreachable_qubesd_is_a_clear_failure(dom0, player, tmp_path):
    run = player.run([qube("x", label="red", qubesd_socket=str(tmp_path / "nothing.sock")),
                      {"corral.qubes.qube_info": {"qubesd_socket": str(tmp_path / "nothing.sock")}}])
    for result in run.results:
        assert result["failed"] and "Failed to connect to qubesd service" in result["msg"], result


def test_check_mode_of_a_layout_on_a_fresh_dom0(dom0, player):
    """Qubes created by earlier tasks do not exist yet in check mode: warnings, not failures."""
    layout = [qube("net", label="blue", properties={"provides_network": True}, netvm="sys-firewall"),
              qube("behind", label="red", netvm="net", state="running"),
              qube("copy", clone_from="behind", tags=["x"]),
              qube("tpl", **{"class": "TemplateVM"}, label="black"),
              qube("app", label="red", template="tpl", volumes={"private": "3GiB"}),
              qube("solo", **{"class": "StandaloneVM"}, template="tpl", label="red")]
    mark = dom0.mark()
    checked = player.run(layout, check=True)
    assert not checked.failed and checked.changed == len(layout), checked.results
    assert dom0.writes_since(mark) == []
    assert "net does not exist yet" in " ".join(checked[1]["warnings"])
    assert checked[2]["actions"][0] == "clone behind to copy (behind does not exist yet)"
    assert checked[4]["actions"][0] == "create AppVM app from template tpl"
    applied = player.run(layout)
    assert not applied.failed and applied.changed == len(layout), applied.results
    assert player.run(layout).changed == 0
    bad = player.run([qube("other", label="red", netvm="nowhere")], check=True)
    assert "warnings" in bad[0] and bad[0]["changed"]
    assert player.run([qube("other", label="red", netvm="nowhere")])[0]["field"] == "netvm"


def test_in_process_and_module_process_agree(dom0, dom0_factory, player):
    """On a local connection the action plugin runs the task in-process; with a task environment the module
    process runs, and sees that environment (here: another dom0's socket)."""
    other = dom0_factory(name="other")
    as_module = {"environment": {"QUBESD_SOCKET": other.socket}}
    args = {"label": "red", "properties": {"memory": 500}, "tags": ["x"]}
    run = player.run([{**qube("m1", **args), **as_module}, qube("m2", **args),
                      {**qube("m1", **args), **as_module}, qube("m2", **args),
                      qube("m3", label="red", colour="blue"), {**qube("m3", label="red", colour="blue"), **as_module},
                      {**qube("m3", label="red", state="asleep"), **as_module}, qube("m3", label="red", state="asleep")])
    assert "m1" in other.client().list_vms() and "m1" not in dom0.client().list_vms()
    assert "m2" in dom0.client().list_vms() and "m2" not in other.client().list_vms()
    assert run[0]["actions"] == [a.replace("m2", "m1") for a in run[1]["actions"]]
    assert run[0]["qube"] == {**run[1]["qube"], "name": "m1"}
    assert run[2]["changed"] is False and run[3]["changed"] is False
    for index in (4, 5):
        assert run[index]["failed"] and "Unsupported parameters" in run[index]["msg"] and "colour" in run[index]["msg"]
    for index in (6, 7):
        assert run[index]["failed"] and "state" in run[index]["msg"] and "asleep" in run[index]["msg"]


def test_check_mode_for_every_state_changes_nothing(dom0, player):
    player.run([qube("c", label="red", state="running")])
    tasks = [qube("c", state=state) for state in ("halted", "paused", "killed", "absent")]
    tasks += [qube("c", template="debian-13-xfce", shutdown_if_needed=True), qube("c", volumes={"private": "9GiB"}),
              qube("c", tags=["t"], features={"f": 1}, services={"s": False}), qube("c", state="running")]
    mark = dom0.mark()
    run = player.run(tasks, check=True, diff=True)
    assert [r["changed"] for r in run.results] == [True, True, True, True, True, True, True, False]
    assert [r["diff"]["after"]["state"] for r in run.results[:4]] == ["halted", "paused", "halted", "absent"]
    assert run[3]["actions"] == ["kill c", "remove c"]
    assert dom0.writes_since(mark) == []
    assert dom0.client().list_vms("c")["c"].state == "Running"
    warned = player.run([qube("c", properties={"memory": 700, "vcpus": 1, "autostart": True}),
                         qube("c", properties={"memory": 800}, state="halted")])
    assert warned[0]["warnings"] == ["c is running: memory, vcpus take effect when it next starts "
                                     "(shut it down and start it, or use state: halted then running)"]
    assert "warnings" not in warned[1]


def test_a_clone_that_fails_half_way_is_removed(dom0_factory, player):
    dom0 = dom0_factory(extra_args=["--fault", "admin.vm.volume.CloneTo:1:fail"], name="fc")  # a short name: AF_UNIX paths are short
    player.dom0 = dom0
    run = player.run([qube("copy", clone_from="default-dvm", label="orange"),
                      qube("copy", clone_from="default-dvm", label="orange"),
                      qube("copy", clone_from="default-dvm", label="orange")])
    assert run[0]["failed"] and "removed the half-made copy, so a new run starts over" in run[0]["msg"]
    assert run[1]["actions"][:2] == ["clone default-dvm to copy",
                                     "copy 1 property, 1 feature, 0 tags, firewall, volumes private of "
                                     "default-dvm to copy"]
    assert not run[1].get("failed") and run[2]["changed"] is False
    props = dom0.client().property_get_all("copy")
    assert props["template_for_dispvms"].value == "True" and props["label"].value == "orange"


def test_a_diff_names_its_qube_and_has_one_shape_for_create_and_change(dom0, player):
    """label, template and netvm sit at the top of the diff whether the qube is created or changed."""
    created = player.run([qube("shape", label="red", netvm="sys-firewall", properties={"memory": 500})], diff=True)[0]
    after = created["diff"]["after"]
    assert list(after)[:5] == ["name", "state", "class", "label", "template"] and after["name"] == "shape"
    assert after["netvm"] == "sys-firewall" and after["properties"] == {"memory": "500"}
    changed = player.run([qube("shape", label="blue", netvm="", properties={"memory": 600})], diff=True)[0]
    assert changed["diff"]["before"] == {"name": "shape", "state": "halted", "label": "red", "netvm": "sys-firewall",
                                         "properties": {"memory": "500"}}
    assert changed["diff"]["after"] == {"name": "shape", "state": "halted", "label": "blue", "netvm": "",
                                        "properties": {"memory": "600"}}
