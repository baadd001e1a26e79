# SPDX-License-Identifier: GPL-3.0-or-later
"""The callback corral.qubes.preload: the Jinja plugins a task's worker finds already loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from playbook import BIN, ROOT

PROBE = '''
import sys

from ansible.plugins.action import ActionBase
from ansible.plugins.loader import filter_loader, test_loader


class ActionModule(ActionBase):
    """What this worker process has loaded before the task templates anything."""

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result["builtin_filters"] = bool(filter_loader._cached_non_collection_wrappers)
        result["builtin_tests"] = bool(test_loader._cached_non_collection_wrappers)
        result["collection_filters"] = sorted(
            name.rsplit(".", 1)[1] for name in sys.modules
            if name.startswith("ansible_collections.corral.qubes.plugins.filter."))
        return result
'''


def run(tmp_path, callbacks: str | None) -> tuple[dict, str]:
    """A play with one probe task (its worker reports what it found loaded) and one task using the filters."""
    (tmp_path / "action_plugins").mkdir(exist_ok=True)
    (tmp_path / "action_plugins" / "probe.py").write_text(PROBE)
    out = tmp_path / "probe.json"
    tasks = [{"name": "probe", "probe": {}, "register": "found"},
             {"name": "a filter of each kind", "ansible.builtin.assert": {"that": [
                 "({'a': 1} | dict2items | length) == 1", "'x' is match('x')",
                 "({'work': {'label': 'red'}} | corral.qubes.layout_qubes)['work']['label'] == 'red'"]}},
             {"ansible.builtin.copy": {"content": "{{ found | to_json }}", "dest": str(out), "mode": "0600"}}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n" + (f"callbacks_enabled = {callbacks}\n" if callbacks else ""))
    env = dict(os.environ, ANSIBLE_CONFIG=str(config), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-vvv", str(playbook)],
                          env=env, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_workers_find_the_filters_loaded_by_the_controller(tmp_path):
    filters = sorted(path.stem for path in (ROOT / "plugins" / "filter").glob("*.py"))
    documented = list((ROOT / "plugins" / "filter").glob("*.yml"))  # one documentation file per filter

    found, output = run(tmp_path, "corral.qubes.preload")
    assert found["builtin_filters"] and found["builtin_tests"]
    assert found["collection_filters"] == filters
    assert f"corral.qubes.preload: {2 + len(documented)} Jinja plugins loaded before the first task" in output

    # without the callback each worker loads them itself, on first use
    found, output = run(tmp_path, None)
    assert not found["builtin_filters"] and not found["builtin_tests"] and found["collection_filters"] == []
    assert "corral.qubes.preload" not in output
