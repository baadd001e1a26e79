# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole layout checked before the first change (role corral.qubes.qubes and corral.qubes.layout_check):
typos fail with their path and no mutating call, check mode assumes only what the layout creates, qube_info's
output pasted back rebuilds the same firewall, drift is reported and pruned only on request."""

from __future__ import annotations

import copy
import pathlib
import subprocess

import pytest
import yaml

from playbook import BIN, ROOT, ansible_env

REFERENCE = ROOT / "inventories" / "t420s" / "group_vars" / "qubes_admin"


def reference_vars() -> dict:
    """The reference layout's variables (layout.yml, network.yml, whonix.yml, and fedora.yml's templates and clones).

    What goes inside the templates (packages, files) is left out: these tests need no qube roots.
    """
    data = {}
    for name in ("layout.yml", "network.yml", "whonix.yml", "fedora.yml"):
        data.update(yaml.safe_load((REFERENCE / name).read_text()) or {})
    data["fedora_templates"] = {name: {key: value for key, value in entry.items() if key in ("clone_from", "label")}
                                for name, entry in data["fedora_templates"].items()}
    return data


def run_role(dom0, tmp_path: pathlib.Path, variables: dict, *args, name: str = "play",
             env: dict | None = None) -> subprocess.CompletedProcess:
    """ansible-playbook with Whonix added to the layout and the layout check first, then the roles
    corral.qubes.fedora (the templates) and corral.qubes.qubes, as site.yml runs them, with ``variables`` against ``dom0``."""
    playbook = tmp_path / f"{name}.yml"
    whonix = {"name": "Whonix added to the layout", "ansible.builtin.include_role": {"name": "corral.qubes.whonix"}}
    check = {"name": "The layout check first",
             "ansible.builtin.include_role": {"name": "corral.qubes.qubes", "tasks_from": "check"}}
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": variables,
                                         "pre_tasks": [whonix, check],
                                         "roles": [{"role": "corral.qubes.fedora"}, {"role": "corral.qubes.qubes"}]}]))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook), *args],
                          env={**ansible_env(dom0, tmp_path), **(env or {})}, capture_output=True, text=True, check=False,
                          timeout=600)


def flat(output: str) -> str:
    """Output with its whitespace runs made single spaces: ansible-core 2.18 wraps warnings at the terminal width."""
    return " ".join(output.split())


def policy_admin_calls(dom0, mark: int) -> list[str]:
    """The policy admin services called since ``mark`` (an index into the qrexec call log)."""
    return [call["service"] for call in dom0.qrexec_calls()[mark:] if call.get("service", "").startswith("policy.")]


def mutating(dom0, mark: int) -> list:
    """Mutating calls (refused ones too) since ``mark``: a check that failed must have made none."""
    return [call for call in dom0.calls_since(mark) if call.get("mutating")]


def typo(path: str, value):
    """The reference layout with one value changed (``path`` as keys separated by '/', list indexes as ints)."""
    data = reference_vars()
    *parents, last = path.split("/")
    holder = data
    for key in parents:
        holder = holder[int(key)] if isinstance(holder, list) else holder[key]
    if isinstance(holder, list):
        holder[int(last)] = value
    elif value is None:
        del holder[last]
    else:
        holder[last] = value
    return data


def rename_key(data: dict, path: str, new: str) -> dict:
    *parents, last = path.split("/")
    holder = data
    for key in parents:
        holder = holder[key]
    holder[new] = holder.pop(last)
    return data


TYPOS = [
    # (the layout, the path and words the failure names)
    (rename_key(reference_vars(), "qubes_layout/secure/label", "lable"),
     "qubes_layout.secure.lable: unknown key (did you mean label?)"),
    (typo("qubes_tasks/9/domain", "secrue"), "qubes_tasks[9].domain: no qube named 'secrue'"),
    (typo("qubes_flows/qubes.ClipboardPaste/secure", ["persnal"]),
     "qubes_flows.qubes.ClipboardPaste.secure[0]: no qube named 'persnal'"),
    (typo("qubes_layout/secure/netvm", "sys-firewal"), "qubes_layout.secure.netvm: no qube named 'sys-firewal'"),
    (typo("qubes_layout/personal/template", "fedora-24-xfce"), "qubes_layout.personal.template: no qube named"),
    (typo("qubes_network/secrue", "whitelist"), "qubes_network.secrue: no qube named 'secrue'"),
    (typo("qubes_prefs/default_netvm", "sys-firewal"), "qubes_prefs.default_netvm: no qube named 'sys-firewal'"),
    (typo("qubes_layout/sys-usb/devices/0/class", "pcie"), "qubes_layout.sys-usb.devices[0].class"),
    (typo("qubes_policies/50-config-input/0/source", "sys-ubs"), "qubes_policies.50-config-input[0].source"),
    (typo("qubes_destinations/my_bank/0/dstport", "443"), "destinations.my_bank[0].dstport: unknown key"),
    (typo("qubes_tasks/0/reach", ["company_mial"]), "qubes_tasks[0].reach: no destination named 'company_mial'"),
    (typo("qubes_layout/vault/state", "absent"), "qubes_tasks[12].domain: vault is removed by this layout"),
    (typo("qubes_layout/secure/firewall", [{"action": "accept", "dsthost": "other.example.com"}]),
     "qubes_layout.secure.firewall: differs from qubes_network.secure"),
    (typo("qubes_layout/work/properties/memroy", 100), "qubes_layout.work.properties.memroy"),
]


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_each_typo_class_fails_with_its_path_and_changes_nothing(dom0, tmp_path, check):
    """Every typo class at once per run (one fresh dom0), each failing the first task with its path."""
    for number, (data, words) in enumerate(TYPOS):
        mark = dom0.mark()
        proc = run_role(dom0, tmp_path, data, *(["--check"] if check else []), name=f"typo{number}")
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, (words, out)
        assert words in out, (words, out)
        assert "TASK [corral.qubes.qubes : The whole layout, checked before any change]" in out
        assert "TASK [corral.qubes.qubes : Templates of the layout" not in out, out
        assert mutating(dom0, mark) == [], words


def test_every_problem_is_listed_at_once(dom0, tmp_path):
    data = rename_key(reference_vars(), "qubes_layout/secure/label", "lable")
    data["qubes_tasks"][9]["domain"] = "secrue"
    data["qubes_flows"]["qubes.ClipboardPaste"]["secure"] = ["persnal"]
    data["qubes_layout"]["untrusted"]["netvm"] = "sys-firewal"
    mark = dom0.mark()
    proc = run_role(dom0, tmp_path, data)
    assert proc.returncode != 0
    assert "the layout has 4 problems, nothing was changed" in proc.stdout, proc.stdout
    for words in ("qubes_layout.secure.lable", "qubes_tasks[9].domain", "ClipboardPaste.secure[0]",
                  "qubes_layout.untrusted.netvm: no qube named 'sys-firewal': not in the layout and not on the "
                  "system; did you mean sys-firewall?"):
        assert words in proc.stdout
    assert mutating(dom0, mark) == []


def test_check_mode_assumes_only_what_the_layout_creates(dom0, tmp_path, player):
    # the role: the reference layout passes in check mode (sys-vpn-work is created by the layout) ...
    proc = run_role(dom0, tmp_path, reference_vars(), "--check")
    assert proc.returncode == 0, proc.stdout
    assert "sys-vpn-work does not exist yet; check mode assumes an earlier task of this run creates it" in flat(
        proc.stdout + proc.stderr)
    # ... and the module with created_in_run refuses a name nothing creates, as a real run does
    tasks = [{"corral.qubes.qube": {"name": "a", "label": "red", "netvm": "net-a", "created_in_run": ["a", "net-a"]}},
             {"corral.qubes.qube": {"name": "b", "label": "red", "netvm": "sys-firewal", "created_in_run": ["b"]}},
             {"corral.qubes.firewall": {"name": "c", "policy": "allow_all", "created_in_run": []}}]
    mark = dom0.mark()
    checked = player.run(tasks, check=True)
    assert not checked[0].get("failed") and "net-a does not exist yet" in " ".join(checked[0]["warnings"])
    assert checked[1]["failed"] and checked[1]["field"] == "netvm"
    assert "no qube named 'sys-firewal'; nothing in this run creates it" in checked[1]["msg"]
    assert checked[2]["failed"] and "no qube named 'c'" in checked[2]["msg"]
    assert mutating(dom0, mark) == []


def firewalls(dom0, qubes) -> dict:
    client = dom0.client()
    return {name: client.firewall_get(name) for name in qubes}


def test_qube_info_output_pasted_back_rebuilds_the_same_firewall(dom0_factory, tmp_path, player):
    """site's layout built on one dom0, read back with qube_info, pasted as qubes_layout (no network intent) into
    a fresh dom0's run: the same rules on every qube, and the pasted firewall is applied, not ignored."""
    built = dom0_factory(name="built")
    reference = reference_vars()
    first = run_role(built, tmp_path, reference, name="build")
    assert first.returncode == 0, first.stdout
    layout_qubes = list(reference["qubes_layout"])
    info = player.__class__(built, tmp_path).run([{"corral.qubes.qube_info": {"names": layout_qubes}}])[0]
    pasted = info["qubes"]
    assert pasted["secure"]["firewall"][0]["dsthost"] == "bank.example.com"
    fresh = dom0_factory(name="fresh")
    variables = {"qubes_templates": reference["qubes_templates"], "fedora_templates": reference["fedora_templates"],
                 "qubes_layout": pasted}
    mark = fresh.mark()
    proc = run_role(fresh, tmp_path, variables, name="paste")
    assert proc.returncode == 0, proc.stdout
    assert firewalls(fresh, layout_qubes) == firewalls(built, layout_qubes)
    assert any(call["method"] == "admin.vm.firewall.Set" and call["dest"] == "secure"
               for call in fresh.calls_since(mark))
    again = run_role(fresh, tmp_path, variables, name="paste-again")
    assert "changed=0" in again.stdout, again.stdout
    # editing the pasted firewall is a change (it was ignored before)
    edited = copy.deepcopy(variables)
    edited["qubes_layout"]["secure"]["firewall"][0]["dsthost"] = "bank2.example.com"
    third = run_role(fresh, tmp_path, edited, name="paste-edited")
    assert third.returncode == 0 and "changed=1" in third.stdout, third.stdout
    assert any("bank2.example.com" in line for line in fresh.client().firewall_get("secure"))
    # pasted with the network intent kept as well: the same rules, so no conflict and no change
    both = dict(reference, qubes_layout=pasted)
    kept = run_role(fresh, tmp_path, both, name="paste-both")
    assert kept.returncode == 0, kept.stdout


def test_drift_is_reported_and_pruned_only_on_request(dom0, tmp_path):
    rules = [{"service": "qubes.Filecopy", "source": "keep", "target": "@anyvm", "action": "deny"}]
    small = {"qubes_layout": {"old-work": {"label": "red", "tags": ["x"]}, "keep": {"label": "blue"}},
             "qubes_templates": [{"names": ["fedora-42-xfce", "debian-13-xfce"]}],
             "qubes_policies": {"40-old": rules, "41-kept": rules}}
    assert run_role(dom0, tmp_path, small, name="small").returncode == 0
    client = dom0.client()
    assert client.feature_get("old-work", "corral-created") == "1"
    client.tag_set("keep", "legacy")
    smaller = {"qubes_layout": {"keep": {"label": "blue"}},
               "qubes_templates": [{"names": ["fedora-42-xfce", "debian-13-xfce"]}],
               "qubes_policies_elsewhere": ["41-kept"]}
    mark, qrexec_mark = dom0.mark(), len(dom0.qrexec_calls())
    report = run_role(dom0, tmp_path, smaller, name="smaller")
    assert report.returncode == 0 and "changed=0" in report.stdout, report.stdout
    said = flat(report.stdout + report.stderr)
    assert "qubes on the system that the layout does not declare:" in said
    assert "(created by corral.qubes: old-work; prune removes those)" in said
    assert "sys-net" in said.split("does not declare:")[1].split("[WARNING]")[0]
    assert "keep has tags the layout does not declare: legacy" in said
    # policy files: only those corral.qubes wrote (its header), not the seeded ones, not those declared elsewhere
    assert "policy files written by corral.qubes that the layout does not declare: 40-old (" in said
    assert (dom0.policy_dir / "40-old.policy").exists()
    through_api = policy_admin_calls(dom0, qrexec_mark)
    assert "policy.List" in through_api and "policy.Get" in through_api  # each file a qrexec call
    # dom0 reads its policy directory itself: the same drift, and no policy admin call at all
    qrexec_mark = len(dom0.qrexec_calls())
    direct = run_role(dom0, tmp_path, smaller, name="smaller-dom0", env={"CORRAL_POLICY_DIR": str(dom0.policy_dir)})
    assert direct.returncode == 0 and "changed=0" in direct.stdout, direct.stdout
    assert "policy files written by corral.qubes that the layout does not declare: 40-old (" in flat(
        direct.stdout + direct.stderr)
    assert policy_admin_calls(dom0, qrexec_mark) == []
    assert mutating(dom0, mark) == [] and "old-work" in client.list_vms()
    pruning = dict(smaller, qubes_prune=True)
    checked = run_role(dom0, tmp_path, pruning, "--check", "--diff", name="prune-check")
    assert checked.returncode == 0 and "--- before: prune: old-work" in checked.stdout, checked.stdout
    assert "changed: [localhost]" in checked.stdout.split("TASK [corral.qubes.qubes : The layout")[1]
    assert mutating(dom0, mark) == []
    pruned = run_role(dom0, tmp_path, pruning, name="prune")
    assert pruned.returncode == 0, pruned.stdout
    vms = client.list_vms()
    assert "old-work" not in vms and "sys-net" in vms and "default-dvm" in vms  # only what corral created


def test_a_missing_qubesd_socket_is_reported_once(dom0, tmp_path):
    env_socket = str(tmp_path / "nothing.sock")
    data = reference_vars()
    data["qubes_qubesd_socket"] = env_socket
    proc = run_role(dom0, tmp_path, data)
    assert proc.returncode != 0
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
    assert len(failures) == 1 and f"Failed to connect to qubesd service at {env_socket}" in failures[0], proc.stdout
    assert "TASK [corral.qubes.qubes : Qubes of the layout]" not in proc.stdout
