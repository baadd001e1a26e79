# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/runtime.yml: the admin_api action group holds exactly the modules that talk to qubesd."""

from __future__ import annotations

import pathlib

import yaml

from ansible_collections.corral.qubes.plugins.module_utils import tasks

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_admin_api_group_is_every_module_with_a_qubesd_socket():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    modules = {path.stem for path in (ROOT / "plugins" / "modules").glob("*.py")}
    with_socket = {kind for kind, spec in tasks.ARGUMENT_SPECS.items() if "qubesd_socket" in spec and kind in modules}
    assert sorted(runtime["action_groups"]["admin_api"]) == sorted(with_socket)
    assert "policy" not in with_socket  # it talks to the policy admin API: a qubesd_socket default would break it
