# SPDX-License-Identifier: GPL-3.0-or-later
"""The role corral.qubes.whonix, then corral.qubes.qubes, against rehearsal dom0s (R4.3 and R4.2).

Real ansible-playbook runs; what they built is read back through the Admin API (the calls qvm-prefs, qvm-tags and
qvm-features make), and the updates and clipboard decisions are evaluated by the rehearsal's qrexec policy (the
files the run wrote plus the defaults of a fresh dom0), not taken from what the role reports.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from ansible_collections.corral.qubes.plugins.module_utils import engine, flows, whonix
from harness import QREXEC_CLIENT
from playbook import BIN, ROOT, ansible_env
from repo_world import GREETING, REPO_ADDRESS, SOURCES, hello_world
from rehearsal import network, rootfs, roots
from rehearsal.policy_admin import PolicyStore

VERSIONS = {"4.3": 18, "4.2": 17}
LAYOUT = {"work": {"label": "blue", "netvm": "sys-firewall"}}
FLOWS = {"qubes.ClipboardPaste": {"work": [], "anon-whonix": []}}
MUTATING_POWER = ("admin.vm.Start", "admin.vm.Unpause")


def play(dom0, tmp_path, *args, extra: dict | None = None) -> subprocess.CompletedProcess:
    """The whonix role then the qubes role, as the collection playbook runs them, with a small layout."""
    env = ansible_env(dom0, tmp_path)
    playbook = tmp_path / "whonix-play.yml"
    playbook.write_text(yaml.safe_dump([
        {"name": "Whonix", "hosts": "localhost", "gather_facts": False, "roles": [{"role": "corral.qubes.whonix"}]},
        {"name": "Qubes", "hosts": "localhost", "gather_facts": False, "roles": [{"role": "corral.qubes.qubes"}]},
    ]))
    inventory = tmp_path / "inventory.yml"
    values = {"ansible_connection": "local", "qubes_layout": LAYOUT, "qubes_flows": FLOWS, **(extra or {})}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": values}}}))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False, timeout=600)


def decide(dom0, source: str, target: str = "@default", service: str = "qubes.UpdatesProxy"):
    """The rehearsal's qrexec policy decision for a call, with the system as the Admin API shows it."""
    system = flows.system_of(engine.Reader(dom0.client()))
    store = PolicyStore(str(dom0.policy_dir), dom0.release)
    return store.evaluate(service, "", source, target, system, assume_yes_for_ask=service.startswith("qubes.Clip"))


def prop(client, qube: str, name: str) -> str:
    return client.property_get(qube, name).value


@pytest.mark.parametrize("release", ["4.3", "4.2"])
def test_whonix_converges_then_a_rerun_changes_nothing(dom0_factory, tmp_path, release):
    dom0 = dom0_factory(release)
    version = VERSIONS[release]
    gateway_tpl, workstation_tpl = f"whonix-gateway-{version}", f"whonix-workstation-{version}"
    dvm = f"{workstation_tpl}-dvm"
    first = play(dom0, tmp_path)
    assert first.returncode == 0 and "failed=0" in first.stdout, first.stdout + first.stderr
    # one task installs the templates, then creates the qubes (based on them: the other way would fail), the gateway
    # after the layout's own qubes
    assert "TASK [corral.qubes.qubes : The layout (templates, qubes," in first.stdout
    written = [call["dest"] for call in dom0.calls_since(0) if call.get("mutating") and call.get("result") == "ok"]
    first_write = {name: written.index(name) for name in ("work", "sys-whonix", dvm, "anon-whonix")}
    assert first_write["work"] < first_write["sys-whonix"] < first_write[dvm] < first_write["anon-whonix"]
    client = dom0.client()
    vms = client.list_vms()
    assert vms[gateway_tpl].klass == vms[workstation_tpl].klass == "TemplateVM"
    for template, feature in ((gateway_tpl, "whonix-gw"), (workstation_tpl, "whonix-ws")):
        assert client.feature_get(template, feature) == "1"
        assert client.feature_get(template, "template-reponame") == "qubes-templates-community"
        assert "whonix-updatevm" in client.tag_list(template)  # qubesd's Whonix addon, in the rehearsal's model
    r43 = release == "4.3"
    # sys-whonix
    assert prop(client, "sys-whonix", "template") == gateway_tpl and prop(client, "sys-whonix", "label") == "black"
    assert prop(client, "sys-whonix", "netvm") == "sys-firewall"
    assert prop(client, "sys-whonix", "provides_network") == prop(client, "sys-whonix", "autostart") == "True"
    assert prop(client, "sys-whonix", "memory") == "500"
    assert client.feature_get("sys-whonix", "servicevm") == "1"
    tags = set(client.tag_list("sys-whonix"))
    assert "anon-gateway" in tags and ("sdwdate-gui-server" in tags) == r43 and "anon-vm" not in tags
    # the Whonix disposable template and anon-whonix
    assert prop(client, dvm, "template") == workstation_tpl and prop(client, dvm, "template_for_dispvms") == "True"
    assert client.feature_get(dvm, "appmenus-dispvm") == "1"
    assert prop(client, "anon-whonix", "template") == workstation_tpl and prop(client, "anon-whonix", "label") == "red"
    assert prop(client, "anon-whonix", "default_dispvm") == dvm
    for qube in (dvm, "anon-whonix"):
        assert prop(client, qube, "netvm") == "sys-whonix", qube
        tags = set(client.tag_list(qube))
        assert "anon-vm" in tags and ("sdwdate-gui-client" in tags) == r43 and "anon-gateway" not in tags, qube
        assert ("gui-events-max-delay" in client.feature_list(qube)) == r43, qube
    assert "anon-vm" not in client.tag_list("work")
    # updates: the Whonix templates through sys-whonix only, the others as the defaults say
    for template in (gateway_tpl, workstation_tpl):
        decision = decide(dom0, template)
        assert (decision.allowed, decision.target, decision.file) == (True, "sys-whonix",
                                                                      "45-corral-whonix-updates.policy"), decision
        assert not decide(dom0, template, "sys-net").allowed
        assert not decide(dom0, template, "sys-firewall").allowed
    others = [name for name, entry in vms.items() if entry.klass == "TemplateVM" and not name.startswith("whonix-")]
    assert len(others) == 2
    for template in others:
        decision = decide(dom0, template)
        assert (decision.allowed, decision.target, decision.file) == (True, "sys-net", "90-default.policy"), template
    # the clipboard: nothing into or out of anon-whonix (the flow file, and the audit of the run)
    for source, target in (("anon-whonix", "work"), ("work", "anon-whonix"), ("dom0", "anon-whonix")):
        assert not decide(dom0, source, target, "qubes.ClipboardPaste").allowed, (source, target)
    # the audit of the layout task read the policy that decides the clipboard (through the policy admin API)
    assert "policy.GetFiles" in [call["service"] for call in dom0.qrexec_calls()]
    # a second run: nothing changes, nothing is written, no qube started, no qrexec call into a qube
    mark, qrexec_mark = dom0.mark(), len(dom0.qrexec_calls())
    again = play(dom0, tmp_path)
    assert again.returncode == 0 and "changed=0" in again.stdout and "failed=0" in again.stdout, again.stdout
    calls = dom0.calls_since(mark)
    assert [call for call in calls if call.get("mutating")] == []
    assert [call for call in calls if call["method"] in MUTATING_POWER] == []
    assert [call for call in dom0.qrexec_calls()[qrexec_mark:] if call["final"] != "dom0"] == []
    print(f"R{release} no-op: {len(calls)} Admin API calls")


def test_updates_of_every_template_through_whonix(dom0_factory, tmp_path):
    dom0 = dom0_factory()
    run = play(dom0, tmp_path, extra={"whonix_updates_all_templates": True})
    assert run.returncode == 0 and "failed=0" in run.stdout, run.stdout + run.stderr
    vms = dom0.client().list_vms()
    templates = [name for name, entry in vms.items() if entry.klass == "TemplateVM"]
    assert len(templates) == 4
    for template in templates:
        decision = decide(dom0, template)
        assert (decision.allowed, decision.target) == (True, "sys-whonix"), (template, decision)
        assert not decide(dom0, template, "sys-net").allowed or not template.startswith("whonix-")
    # an AppVM is no template: the updates proxy stays closed to it
    assert not decide(dom0, "work").allowed


def test_check_mode_on_a_fresh_dom0_writes_nothing(dom0_factory, tmp_path):
    dom0 = dom0_factory()
    mark = dom0.mark()
    run = play(dom0, tmp_path, "--check", "--diff")
    assert run.returncode == 0 and "failed=0" in run.stdout, run.stdout + run.stderr
    assert "--- before: sys-whonix" in run.stdout and "--- before: anon-whonix" in run.stdout
    assert "qubes.UpdatesProxy * @tag:whonix-updatevm @default allow target=sys-whonix" in run.stdout
    assert dom0.writes_since(mark) == []
    assert not (dom0.policy_dir / "45-corral-whonix-updates.policy").exists()


@pytest.mark.parametrize("release, extra, words", [
    ("4.3", {"whonix_version": 17}, ["whonix_version: Whonix 17 is not for Qubes R4.3", "whonix-gateway-18"]),
    ("4.2", {"whonix_version": 18}, ["whonix_version: Whonix 18 is not for Qubes R4.2", "whonix-gateway-17"]),
    ("4.3", {"whonix_workstation_netvm": "sys-firewall"},
     ["whonix_workstation_netvm: sys-firewall is not a Whonix gateway"]),
    ("4.3", {"qubes_layout": {**LAYOUT, "anon-work": {"template": "whonix-workstation-18", "netvm": "work"}}},
     ["qubes_layout.anon-work.netvm: anon-work is a Whonix workstation", "its netvm work is not a Whonix gateway"]),
    ("4.3", {"qubes_layout": {**LAYOUT, "anon-whonix": {"netvm": "*default*"}}},
     ["qubes_layout.anon-whonix.netvm: anon-whonix is a Whonix workstation", "would give it the global default_netvm"]),
    ("4.3", {"qubes_templates": [{"names": ["whonix-gateway-17"], "enablerepo": ["qubes-templates-community"]}]},
     ["qubes_templates[0].names[0]: Whonix 17 is not for Qubes R4.3"]),
], ids=["17-on-r43", "18-on-r42", "ws-netvm-setting", "ws-netvm-in-layout", "ws-netvm-default", "17-template-on-r43"])
def test_bad_input_fails_before_any_write(dom0_factory, tmp_path, release, extra, words):
    dom0 = dom0_factory(release)
    mark = dom0.mark()
    run = play(dom0, tmp_path, extra=extra)
    assert run.returncode != 0, run.stdout
    assert "corral.qubes.whonix : Whonix, checked for the release" in run.stdout
    assert "nothing was changed" in run.stdout
    for word in words:
        assert word in run.stdout, run.stdout
    assert dom0.writes_since(mark) == []
    assert "changed=0" in run.stdout


# ---------------------------------------------------------------- the rehearsal's model of qubesd's Whonix addon


def install_whonix(dom0, tmp_path, version: int) -> None:
    proc = subprocess.run([str(ROOT / "rehearsal" / "bin" / "dom0" / "qvm-template"),
                           "--enablerepo=qubes-templates-community", "--yes", "install",
                           f"whonix-gateway-{version}", f"whonix-workstation-{version}"],
                          env=ansible_env(dom0, tmp_path), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("release", ["4.3", "4.2"])
def test_addon_model_on_create_and_load(dom0_factory, tmp_path, release):
    """What a qvm-create from a Whonix template shows on a dom0 with the addon, and what a qubesd restart keeps."""
    dom0 = dom0_factory(release)
    version = VERSIONS[release]
    install_whonix(dom0, tmp_path, version)
    gw, ws = templates = (f"whonix-gateway-{version}", f"whonix-workstation-{version}")
    client = dom0.client()
    for template in templates:
        assert "whonix-updatevm" in client.tag_list(template)
    assert "whonix-updatevm" not in client.tag_list(client.property_get(None, "default_template").value)
    # a workstation before any gateway exists: no netvm (sys-whonix does not exist), default_dispvm at its default
    client.call("admin.vm.Create.AppVM", "dom0", ws, "name=anon-early label=red")
    netvm = client.property_get("anon-early", "netvm")
    assert (netvm.value, netvm.is_default) == ("", False)
    assert client.property_get("anon-early", "default_dispvm").is_default
    # the gateway, then a workstation: netvm sys-whonix, default_dispvm <template>-dvm once it exists
    client.call("admin.vm.Create.AppVM", "dom0", gw, "name=sys-whonix label=black")
    client.property_set("sys-whonix", "provides_network", True)
    assert "anon-gateway" in client.tag_list("sys-whonix")
    client.call("admin.vm.Create.AppVM", "dom0", ws, f"name={ws}-dvm label=red")
    client.call("admin.vm.Create.AppVM", "dom0", ws, "name=anon-late label=red")
    assert client.property_get("anon-late", "netvm").value == "sys-whonix"
    assert client.property_get("anon-late", "default_dispvm").value == f"{ws}-dvm"
    assert ("gui-events-max-delay" in client.feature_list("anon-late")) == (release == "4.3")
    # the template's features choose another gateway and disposable template
    client.call("admin.vm.Create.AppVM", "dom0", gw, "name=sys-whonix2 label=black")
    client.property_set("sys-whonix2", "provides_network", True)
    client.feature_set(ws, "whonix-default-gw", "sys-whonix2")
    client.feature_set(ws, "whonix-default-dispvm", "anon-late")
    client.call("admin.vm.Create.AppVM", "dom0", ws, "name=anon-other label=red")
    assert client.property_get("anon-other", "netvm").value == "sys-whonix2"
    assert client.property_get("anon-other", "default_dispvm").value == "anon-late"
    wanted = {"anon-vm"} | ({"sdwdate-gui-client"} if release == "4.3" else set())
    for qube in ("anon-early", "anon-late", "anon-other"):
        assert wanted <= set(client.tag_list(qube)), qube
    # an AppVM of another template gets nothing of it
    client.call("admin.vm.Create.AppVM", "dom0", "", "name=plain label=red")
    assert not {"anon-vm", "anon-gateway"} & set(client.tag_list("plain"))
    # qubesd starting again: the addon's tags are there (a removed one comes back at load)
    client.tag_remove("anon-late", "anon-vm")
    dom0.restart()
    assert "anon-vm" in dom0.client().tag_list("anon-late")


# ---------------------------------------------------------------- a Whonix template's packages, on real qube roots

ROOT_REASONS = roots.unavailable() + network.unavailable()


@pytest.mark.skipif(bool(ROOT_REASONS), reason=f"qube roots with network realisation: {'; '.join(ROOT_REASONS)}")
def test_a_whonix_template_installs_through_sys_whonix(dom0_factory, tmp_path):
    """apt in whonix-gateway-18 → qubes.UpdatesProxy → the policy the role wrote → sys-whonix (started), whose proxy
    runs in sys-whonix's own network namespace and reaches the repository through sys-firewall and sys-net."""
    rootfs.build()
    world = hello_world(tmp_path, b"hello through whonix\n")
    dom0 = dom0_factory(extra_args=("--roots", "on", "--network", "on", "--world", str(world)))
    converged = play(dom0, tmp_path)
    assert converged.returncode == 0 and "failed=0" in converged.stdout, converged.stdout + converged.stderr
    client = dom0.client()
    assert client.current_state("sys-whonix")["power_state"] == "Halted"
    template = "whonix-gateway-18"
    client.start(template)
    mark = len(dom0.qrexec_calls())
    result = subprocess.run([str(QREXEC_CLIENT), "-d", template, "root:QUBESRPC qubes.VMShell dom0"],
                            input=(f"rm -f /etc/apt/sources.list.d/*; echo '{SOURCES}' > /etc/apt/sources.list; "
                                   "apt-get update 2>&1; apt-get install -y corral-hello 2>&1; "
                                   f"cat {GREETING}").encode(),
                            capture_output=True, env=dom0.qube_env(), timeout=300, check=False)
    out = result.stdout.decode()
    assert result.returncode == 0 and out.endswith("hello through whonix\n"), out
    calls = [c for c in dom0.qrexec_calls()[mark:] if c["service"] == "qubes.UpdatesProxy"]
    assert calls and all((c["source"], c["target"], c["decision"], c["final"]) ==
                         (template, "@default", "allow", "sys-whonix") for c in calls), calls
    # sys-whonix was started for it, and with it its netvm chain
    for qube in ("sys-whonix", "sys-firewall", "sys-net"):
        assert client.current_state(qube)["power_state"] == "Running", qube
    requests = [line.split() for line in open(os.path.join(network.Layout(dom0.state_dir).run_dir,
                                                           "http-access.log"), encoding="utf-8")]
    assert ["GET", "/./corral-hello_1.0_all.deb", "200"] in [request[1:] for request in requests]
    # the proxy that answers runs in sys-whonix (its host name; its own connections fail there, in its namespace)
    probe = ("import urllib.request as u, urllib.error as e\n"
             "o = u.build_opener(u.ProxyHandler({'http': 'http://127.0.0.1:8082'}))\n"
             f"try:\n    o.open('http://{REPO_ADDRESS}:81/', timeout=20)\n"
             "except e.HTTPError as x:\n    print(x.code, x.read().decode())\n")
    answer = subprocess.run([str(QREXEC_CLIENT), "-d", template, "root:QUBESRPC qubes.VMShell dom0"],
                            input=f"cat > /tmp/probe.py <<'EOF'\n{probe}EOF\npython3 /tmp/probe.py 2>&1\n".encode(),
                            capture_output=True, env=dom0.qube_env(), timeout=120, check=False).stdout.decode()
    assert answer.startswith("502") and "qubes.UpdatesProxy in sys-whonix" in answer, answer
    print(f"whonix template install: the repository saw {sorted({request[0] for request in requests})}; "
          f"sys-whonix {client.property_get('sys-whonix', 'ip').value}, sys-net {client.property_get('sys-net', 'ip').value}")


def test_a_layout_given_as_an_extra_variable_is_refused_clearly(dom0_factory, tmp_path):
    """Extra variables are above the facts the role sets: Whonix would be left out silently; the role says so."""
    dom0 = dom0_factory()
    extra = tmp_path / "extra.yml"
    extra.write_text(yaml.safe_dump({"qubes_layout": LAYOUT}))
    mark = dom0.mark()
    run = play(dom0, tmp_path, "-e", f"@{extra}")
    assert run.returncode != 0
    assert "Whonix, checked for the release of this dom0" in run.stdout
    assert "is given as an extra variable (-e)" in " ".join(run.stdout.split()), run.stdout
    assert dom0.writes_since(mark) == []


def test_extra_variables_are_named_in_any_form_and_allowed_without_whonix(dom0_factory, tmp_path):
    """-e as JSON naming two of the variables: both named; one that includes Whonix already (what the role would
    set) hides nothing; with whonix_enabled false nothing is hidden either. Either way the run goes on."""
    dom0 = dom0_factory()
    given = json.dumps({"qubes_templates": [], "qubes_policies": {}})
    mark = dom0.mark()
    run = play(dom0, tmp_path, "-e", given)
    assert run.returncode != 0
    assert "qubes_templates and qubes_policies are given as an extra variable" in " ".join(run.stdout.split())
    assert dom0.writes_since(mark) == []
    with_whonix = whonix.merge(whonix.expand({}, "4.3"), {}, [], {})
    run = play(dom0, tmp_path, "-e", json.dumps({"qubes_policies": with_whonix["qubes_policies"]}), "--check")
    assert run.returncode == 0 and "failed=0" in run.stdout, run.stdout
    run = play(dom0, tmp_path, "-e", given, extra={"whonix_enabled": False, "qubes_flows": {}})
    assert run.returncode == 0 and "failed=0" in run.stdout, run.stdout
    assert "sys-whonix" not in dom0.client().list_vms()
