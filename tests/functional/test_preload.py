# SPDX-License-Identifier: GPL-3.0-or-later
"""The callback corral.qubes.preload: the Jinja plugins a task's worker finds already loaded."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import yaml

from ansible_collections.corral.qubes.plugins.callback import preload
from playbook import BIN, ROOT

PROBE = '''
import gc
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
        result["lookups"] = sorted(name.rsplit(".", 1)[1] for name in sys.modules
                                   if name.startswith("ansible_collections.ansible.builtin.plugins.lookup."))
        result["frozen"] = gc.get_freeze_count()
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
    assert found["lookups"] == sorted(preload.LOOKUPS)
    loaded = 2 + len(documented) + len(preload.LOOKUPS)
    assert f"corral.qubes.preload: {loaded} Jinja plugins loaded before the first task" in output
    # what the controller built before the play is frozen in the worker too
    assert found["frozen"] > 10000, found
    assert "objects frozen before the play's first task" in output
    assert "the lexer is not built" not in output

    # without the callback each worker loads them itself, on first use
    found, output = run(tmp_path, None)
    assert not found["builtin_filters"] and not found["builtin_tests"] and found["collection_filters"] == []
    assert found["lookups"] == []
    assert found["frozen"] == 0
    assert "corral.qubes.preload" not in output


LEXERS = '''
try:
    from ansible._internal._templating._jinja_bits import AnsibleEnvironment
    lexers = AnsibleEnvironment._lexer_cache
except ImportError:  # ansible-core 2.18: jinja2 keeps the lexers
    import jinja2.lexer
    lexers = jinja2.lexer._lexer_cache
from ansible.template import Templar
from ansible.parsing.dataloader import DataLoader
from ansible_collections.corral.qubes.plugins.callback import preload
before = len(lexers)
preload.build_lexer()
after = len(lexers)
templar = Templar(loader=DataLoader())
templar.template(preload.trust_as_template("{{ 1 + 1 }}"))
print(before, after, len(lexers))
'''


def test_the_controller_builds_the_lexer_a_task_templar_uses():
    """build_lexer fills ansible-core's lexer cache with the lexer a task's templar then finds (no second one)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"))
    proc = subprocess.run([sys.executable, "-c", "from ansible.utils.collection_loader._collection_finder import "
                           "_AnsibleCollectionFinder as F; F(paths=[__import__('os').environ"
                           "['ANSIBLE_COLLECTIONS_PATH']])._install()\n" + LEXERS],
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    before, after, later = (int(count) for count in proc.stdout.split())
    assert after == before + 1 and later == after, proc.stdout  # built once, then found


LOOKUP_CALL = re.compile(r"\b(?:lookup|query|q)\(\s*['\"](?:ansible\.builtin\.)?([a-z_]+)['\"]")


def test_the_lookups_preloaded_are_those_the_roles_and_playbooks_name():
    files = [*ROOT.glob("roles/*/*/*.yml"), *ROOT.glob("playbooks/*.yml"),
             *ROOT.glob("inventories/*/group_vars/*/*.yml")]
    named = {name for path in files for name in LOOKUP_CALL.findall(path.read_text())}
    assert named == set(preload.LOOKUPS), named
