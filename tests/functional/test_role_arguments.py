# SPDX-License-Identifier: GPL-3.0-or-later
"""corral.qubes.role_arguments: every role of site.yml checked in its first task, before anything is read."""

from __future__ import annotations

import json
import subprocess

from playbook import BIN, ROOT, ansible_env


def site(dom0, tmp_path, extra: dict):
    values = tmp_path / "extra.json"
    values.write_text(json.dumps(extra))
    env = {**ansible_env(dom0, tmp_path), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "CORRAL_POLICY_DIR": str(dom0.policy_dir)}
    return subprocess.run([str(BIN / "ansible-playbook"), "site.yml", "-e", f"@{values}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=600)


def arguments(*roles) -> dict:
    return {"corral.qubes.role_arguments": {"roles": list(roles)}}


def test_site_fails_in_its_first_task_naming_each_roles_bad_variable(dom0, tmp_path):
    mark = dom0.mark()
    proc = site(dom0, tmp_path, {"whonix_gateway_memory": "lots", "fedora_templates": "fedora-42-xfce",
                                 "qubes_prune": "maybe"})
    assert proc.returncode != 0, proc.stdout
    failed = proc.stdout.split("fatal: [dom0]:", 1)[1]
    assert "nothing was read or changed" in failed
    assert "corral.qubes.whonix (main): argument 'whonix_gateway_memory' is of type" in failed, failed
    assert "corral.qubes.fedora (main): argument 'fedora_templates' is of type" in failed, failed
    assert "corral.qubes.qubes (converge): argument 'qubes_prune' is of type" in failed, failed
    assert "corral.qubes.hardware (main):" not in failed  # its variables are fine
    # the first task of the play: no other task ran, nothing was read from dom0 (the run's callback subscribed to
    # qubesd's events when the task started, which reads nothing)
    assert proc.stdout.count("TASK [") == 1, proc.stdout
    assert [call["method"] for call in dom0.calls_since(mark)] == ["admin.Events"]


def test_valid_variables_and_role_defaults_pass(dom0, player):
    # the variables of the play, over the defaults of the spec (the roles are not imported here)
    run = player.run([arguments("corral.qubes.hardware", {"name": "corral.qubes.qubes", "entry_point": "converge"})],
                     play={"vars": {"hardware_dom0_memory_mib": "4096", "qubes_prune": True}})
    assert run[0]["roles"] == ["corral.qubes.hardware (main)", "corral.qubes.qubes (converge)"], run[0]
    assert not run[0].get("failed") and not run[0]["changed"]


def test_bad_variables_are_reported_by_role(dom0, player):
    run = player.run([arguments("corral.qubes.hardware", "corral.qubes.whonix")],
                     play={"vars": {"hardware_dom0_memory_mib": "lots", "whonix_gateway_memory": [1]}})
    errors = run[0]["argument_errors"]
    assert set(errors) == {"corral.qubes.hardware (main)", "corral.qubes.whonix (main)"}, run[0]
    assert "hardware_dom0_memory_mib" in errors["corral.qubes.hardware (main)"][0]
    assert "whonix_gateway_memory" in errors["corral.qubes.whonix (main)"][0]


def test_roles_it_does_not_know_fail_naming_the_option(dom0, player):
    run = player.run([arguments("corral.qubes.nosuch"), arguments({"name": "corral.qubes.qubes", "entry_point": "x"}),
                      arguments(), {"corral.qubes.role_arguments": {"roles": ["corral.qubes.bsd"], "extra": 1}}])
    assert run.failed == [0, 1, 2, 3]
    assert "'corral.qubes.nosuch' is not a role of corral.qubes" in run[0]["msg"] and run[0]["field"] == "roles"
    assert "corral.qubes.fedora" in run[0]["msg"]  # the roles it knows are listed
    assert "has no entry point 'x'; entry points: converge, main" in run[1]["msg"], run[1]["msg"]
    assert run[2]["msg"].startswith("roles: expected a non-empty list")
    assert run[3]["msg"].startswith("extra: not an option") and run[3]["field"] == "extra"
