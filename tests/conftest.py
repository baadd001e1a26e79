# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest setup."""

import pathlib
import sys

import pytest
from hypothesis import HealthCheck, settings

ROOT = pathlib.Path(__file__).resolve().parent.parent

try:
    import ansible_collections.corral.qubes.plugins.module_utils.wire  # noqa: F401  pylint: disable=unused-import
except ImportError as exc:  # pragma: no cover - a setup problem, not a test result
    raise SystemExit(
        "ansible_collections.corral.qubes is not importable: run the tests through `make test` "
        "(or `make setup` first), which links the checkout into .collections/") from exc

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Property tests run in CI on slow, cold machines: no wall-clock deadline or generation-speed
# checks (they measure the machine, not the code), and no example database left in the tree.
settings.register_profile("corral", deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("corral")

# Tests of the rehearsal dom0 itself, the test host: its server, persistence, call log, network and qube roots.
# The collection code they drive is covered by the other tests, so the R4.3 leg (make r43-pytest) leaves these
# to the 3.11 leg with -m "not rehearsal_itself" and spends its time on what runs on a dom0.
REHEARSAL_ITSELF = {
    "functional/test_cli.py", "functional/test_dom0host.py", "functional/test_events.py", "functional/test_network.py",
    "functional/test_observe.py", "functional/test_persistence.py", "functional/test_qube_roots.py",
    "functional/test_robustness.py", "functional/test_transcript.py", "unit/test_nft.py", "unit/test_rootfs_sources.py",
    "unit/test_world.py",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "rehearsal_itself: a test of the rehearsal dom0, not of the collection")


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    for item in items:
        if pathlib.Path(item.fspath).resolve().relative_to(ROOT / "tests").as_posix() in REHEARSAL_ITSELF:
            item.add_marker(pytest.mark.rehearsal_itself)
