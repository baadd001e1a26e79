# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's site playbook with the reference layout (inventories/t420s), from the repository root."""

from __future__ import annotations

import subprocess

from playbook import BIN, ROOT, ansible_env


def site(dom0, tmp_path, *args):
    env = ansible_env(dom0, tmp_path)
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")  # the project's own configuration
    return subprocess.run([str(BIN / "ansible-playbook"), "site.yml", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)


def test_site_check_diff_on_a_fresh_dom0_changes_nothing(dom0, tmp_path):
    mark = dom0.mark()
    proc = site(dom0, tmp_path, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed: [dom0] => (item=work)" in proc.stdout
    assert "--- before" in proc.stdout and "failed=0" in proc.stdout
    assert dom0.writes_since(mark) == []
